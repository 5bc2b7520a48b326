"""Layers shared by the models: a CPU-friendly Linear, DropPath, LayerScale,
dropout, and the conv-BatchNorm-ReLU unit of the conv stems and ResNet.

Randomness (dropout, DropPath) comes from the `rngs` given at call time, so
models hold no RNG state; BatchNorm's running statistics are `nnx.BatchStat`
variables, updated when called with `train=True`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

TRUNC_NORMAL = nnx.initializers.truncated_normal(stddev=0.02)


class Linear(nnx.Linear):
  """nnx.Linear that multiplies 2-D operands: [..., din] is flattened to
  [M, din] first. XLA's CPU dot is 1.4x slower forward and 2.7x slower
  forward + backward on [B, N, din] operands (the weight gradient then
  contracts two dims; `python bench/matmul.py dense`); the parameters are
  nnx.Linear's."""

  def __call__(self, x):  # [..., din] -> [..., dout]
    return super().__call__(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def dropout(x, rate: float, *, train: bool, rngs: nnx.Rngs | None):
  if not train or rate == 0.0:
    return x
  keep = 1.0 - rate
  mask = jax.random.bernoulli(rngs.dropout(), keep, x.shape)
  return jnp.where(mask, x / keep, 0).astype(x.dtype)


class DropPath(nnx.Module):
  """Stochastic depth: drops the whole residual branch per example."""

  def __init__(self, rate: float):
    self.rate = rate

  def __call__(self, x, *, train: bool, rngs: nnx.Rngs | None):  # x: [B, ...]
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(rngs.dropout(), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


class LayerScale(nnx.Module):
  """Learnable per-channel γ on a residual branch (CaiT)."""

  def __init__(self, dim: int, init: float):
    self.gamma = nnx.Param(jnp.full((dim,), init, jnp.float32))

  def __call__(self, x):
    return x * self.gamma[...].astype(x.dtype)


class ConvBN(nnx.Module):
  """Conv (no bias), BatchNorm, optional ReLU: [B, H, W, C] -> [B, H/s, W/s, C']."""

  def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, relu: bool = True,
               zero_init_scale: bool = False, dtype: str = 'float32', rngs: nnx.Rngs):
    self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding=(kernel - 1) // 2, use_bias=False,
                         dtype=dtype, kernel_init=nnx.initializers.kaiming_normal(), rngs=rngs)
    self.norm = nnx.BatchNorm(cout, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs,
                              scale_init=nnx.initializers.zeros if zero_init_scale else nnx.initializers.ones)
    self.relu = relu

  def __call__(self, x, *, train: bool):
    x = self.norm(self.conv(x), use_running_average=not train)
    return jax.nn.relu(x) if self.relu else x
