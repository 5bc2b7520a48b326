"""Vision Transformer (ViT / DeiT) as one Flax NNX module tree.

Options are constructor arguments (through `ViTConfig`), not copies of the
class: the stem (patch, conv or ResNet; see vit_jax.models.stems),
LayerScale, DropPath, a DeiT distillation token, CLS or mean pooling, bf16
compute. Numerics follow timm so weights can be exchanged with it:
exact-erf GELU, LayerNorm eps 1e-6, a fused qkv projection.

    model = create_model('deit_tiny', num_classes=10)      # vit_jax.models
    logits = model(images)                                  # [B, 10]
    logits = model(images, train=True, rngs=nnx.Rngs(dropout=key))

The model holds no RNG state: dropout and DropPath take their randomness
from the `rngs` given at call time, so its variables (parameters, and the
BatchNorm statistics of conv stems) are plain pytrees (`nnx.split(model)`)
that a jitted train step can carry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from vit_jax.models.layers import TRUNC_NORMAL, DropPath, LayerScale, Linear, dropout
from vit_jax.models.stems import STEMS


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Shape and options of a ViT; vit_jax.models.PRESETS names the variants."""

  image_size: int = 32
  patch_size: int = 4  # Pixels per token side, for every stem.
  stem: str = 'patch'  # 'patch', 'conv' or 'resnet' (vit_jax.models.stems).
  stem_width: int = 64  # Channels of the first conv / ResNet stage of the 'conv' and 'resnet' stems.
  num_classes: int = 10
  dim: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_dim: int | None = None  # None: 4 * dim.
  qkv_bias: bool = True
  pool: str = 'cls'  # 'cls' (class token) or 'mean' (average of patch tokens).
  distillation_token: bool = False  # DeiT: a second token with its own head.
  layerscale_init: float | None = None  # e.g. 1e-4 enables LayerScale (γ).
  dropout: float = 0.0  # After the embedding, in the MLP and after attention.
  attention_dropout: float = 0.0
  drop_path: float = 0.0  # Stochastic depth rate of the last block (linear).
  dtype: str = 'float32'  # Compute dtype; parameters stay float32.

  def __post_init__(self):
    for name in ('image_size', 'patch_size', 'num_classes', 'dim', 'depth', 'num_heads', 'mlp_dim', 'stem_width'):
      value = getattr(self, name)
      if not (value is None and name == 'mlp_dim') and not (isinstance(value, int) and value > 0):
        raise ValueError(f'{name} must be a positive integer, got {value!r}.')
    for name in ('dropout', 'attention_dropout', 'drop_path'):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f'{name} must be in [0, 1), got {getattr(self, name)!r}.')
    if self.dtype not in ('float32', 'bfloat16', 'float16'):
      raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}.")
    if self.image_size % self.patch_size:
      raise ValueError(f'image_size {self.image_size} is not a multiple of patch_size {self.patch_size}.')
    if self.stem not in STEMS:
      raise ValueError(f'stem must be one of {", ".join(map(repr, STEMS))}, got {self.stem!r}.')
    if self.stem != 'patch' and self.patch_size & (self.patch_size - 1):
      raise ValueError(f'the {self.stem!r} stem halves the image per layer: patch_size must be a power of 2, '
                       f'got {self.patch_size}.')
    if self.dim % self.num_heads:
      raise ValueError(f'dim {self.dim} is not divisible by num_heads {self.num_heads}.')
    if self.pool not in ('cls', 'mean'):
      raise ValueError(f"pool must be 'cls' or 'mean', got {self.pool!r}.")
    if self.pool == 'mean' and self.distillation_token:
      raise ValueError('a distillation token needs pool="cls".')

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2


def _linear(din: int, dout: int, cfg: ViTConfig, rngs: nnx.Rngs, use_bias: bool = True) -> Linear:
  return Linear(din, dout, use_bias=use_bias, dtype=cfg.dtype, kernel_init=TRUNC_NORMAL, rngs=rngs)


def _layer_norm(cfg: ViTConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
  return nnx.LayerNorm(cfg.dim, epsilon=1e-6, dtype=cfg.dtype, rngs=rngs)


class Attention(nnx.Module):
  """Multi-head self-attention with a fused qkv projection (timm layout)."""

  def __init__(self, cfg: ViTConfig, rngs: nnx.Rngs):
    self.num_heads = cfg.num_heads
    self.attention_dropout = cfg.attention_dropout
    self.qkv = _linear(cfg.dim, 3 * cfg.dim, cfg, rngs, use_bias=cfg.qkv_bias)
    self.proj = _linear(cfg.dim, cfg.dim, cfg, rngs)

  def __call__(self, x, *, train: bool, rngs, return_weights: bool = False):
    b, n, d = x.shape  # [B, N, D]
    qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
    dropping = train and self.attention_dropout > 0
    if not (return_weights or dropping or jax.default_backend() == 'cpu'):
      out = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])  # [B, N, H, Dh]; fused kernels.
      return self.proj(out.reshape(b, n, d)), None
    # Heads first: XLA's CPU batched dots run forward + backward 18% faster on [B, H, N, Dh] operands than on
    # dot_product_attention's [B, N, H, Dh] (cpu_quick's shape; results/profile_cpu.md).
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each [B, H, N, Dh]
    logits = jnp.einsum('bhqd,bhkd->bhqk', q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(x.dtype)  # [B, H, N, N]
    out = jnp.einsum('bhqk,bhkd->bhqd', dropout(weights, self.attention_dropout, train=train, rngs=rngs), v)
    return self.proj(out.transpose(0, 2, 1, 3).reshape(b, n, d)), weights if return_weights else None


class Mlp(nnx.Module):
  def __init__(self, cfg: ViTConfig, rngs: nnx.Rngs):
    hidden = cfg.mlp_dim or 4 * cfg.dim
    self.dropout = cfg.dropout
    self.fc1 = _linear(cfg.dim, hidden, cfg, rngs)
    self.fc2 = _linear(hidden, cfg.dim, cfg, rngs)

  def __call__(self, x, *, train: bool, rngs):
    x = jax.nn.gelu(self.fc1(x), approximate=False)
    x = dropout(x, self.dropout, train=train, rngs=rngs)
    return dropout(self.fc2(x), self.dropout, train=train, rngs=rngs)


class Block(nnx.Module):
  """Pre-norm transformer block: x + γ·attn(norm(x)), x + γ·mlp(norm(x))."""

  def __init__(self, cfg: ViTConfig, drop_path: float, rngs: nnx.Rngs):
    self.dropout = cfg.dropout
    self.norm1 = _layer_norm(cfg, rngs)
    self.attn = Attention(cfg, rngs)
    self.norm2 = _layer_norm(cfg, rngs)
    self.mlp = Mlp(cfg, rngs)
    self.ls1 = LayerScale(cfg.dim, cfg.layerscale_init) if cfg.layerscale_init else None
    self.ls2 = LayerScale(cfg.dim, cfg.layerscale_init) if cfg.layerscale_init else None
    self.drop_path = DropPath(drop_path)

  def __call__(self, x, *, train: bool, rngs, return_weights: bool = False):  # x: [B, N, D]
    y, weights = self.attn(self.norm1(x), train=train, rngs=rngs, return_weights=return_weights)
    y = dropout(y, self.dropout, train=train, rngs=rngs)
    x = x + self.drop_path(self.ls1(y) if self.ls1 else y, train=train, rngs=rngs)
    y = self.mlp(self.norm2(x), train=train, rngs=rngs)
    x = x + self.drop_path(self.ls2(y) if self.ls2 else y, train=train, rngs=rngs)
    return x, weights


class ViT(nnx.Module):
  """Vision Transformer classifier; see `ViTConfig` for the options."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.stem = STEMS[cfg.stem](cfg, rngs)
    self.num_prefix_tokens = 0 if cfg.pool == 'mean' else 1 + int(cfg.distillation_token)
    tokens_init = nnx.initializers.normal(stddev=1e-6)
    self.cls_token = nnx.Param(tokens_init(rngs.params(), (1, 1, cfg.dim))) if cfg.pool == 'cls' else None
    self.dist_token = nnx.Param(tokens_init(rngs.params(), (1, 1, cfg.dim))) if cfg.distillation_token else None
    self.pos_embed = nnx.Param(
        TRUNC_NORMAL(rngs.params(), (1, self.num_prefix_tokens + cfg.num_patches, cfg.dim)))
    rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
    self.blocks = nnx.List([Block(cfg, rate, rngs) for rate in rates])
    self.norm = _layer_norm(cfg, rngs)
    self.head = _linear(cfg.dim, cfg.num_classes, cfg, rngs)
    self.head_dist = _linear(cfg.dim, cfg.num_classes, cfg, rngs) if cfg.distillation_token else None

  def embed(self, images, *, train: bool = False, rngs=None):
    """Images [B, H, W, 3] (normalised floats) -> tokens [B, P + N, D]. Images
    of another size than cfg.image_size get a resized position embedding."""
    x = self.stem(images.astype(self.cfg.dtype), train=train)  # [B, H/p, W/p, D]
    b, h, w, _ = x.shape
    x = x.reshape(b, h * w, self.cfg.dim)  # [B, N, D]
    prefix = [t[...] for t in (self.cls_token, self.dist_token) if t is not None]
    if prefix:
      x = jnp.concatenate([jnp.broadcast_to(t, (b, 1, self.cfg.dim)).astype(x.dtype) for t in prefix] + [x], 1)
    x = x + self.position_embedding(h, w).astype(x.dtype)
    return dropout(x, self.cfg.dropout, train=train, rngs=rngs)

  def position_embedding(self, h: int, w: int):
    """The position embedding [1, P + h * w, D] for an h x w patch grid:
    the learned one, its patch part resized (bilinear) where the grid differs."""
    pos, side = self.pos_embed[...], self.cfg.image_size // self.cfg.patch_size
    if (h, w) == (side, side):
      return pos
    prefix, grid = pos[:, :self.num_prefix_tokens], pos[:, self.num_prefix_tokens:].reshape(1, side, side, -1)
    grid = jax.image.resize(grid, (1, h, w, self.cfg.dim), 'bilinear')
    return jnp.concatenate([prefix, grid.reshape(1, h * w, self.cfg.dim)], 1)

  def __call__(self, images, *, train: bool = False, rngs: nnx.Rngs | None = None,
               return_intermediates: bool = False) -> Any:
    """Images [B, H, W, 3] -> logits [B, num_classes] (float32).

    With a distillation token the class and distillation heads are averaged
    (DeiT inference); `heads()` gives both for a distillation loss. With
    `return_intermediates=True` returns (logits, dict) where the dict holds
    the tokens after each block ([depth] of [B, N, D]) and the attention
    weights of each block ([depth] of [B, H, N, N]).
    """
    if train and rngs is None and (self.cfg.dropout or self.cfg.drop_path or self.cfg.attention_dropout):
      raise ValueError('train=True with dropout or drop_path needs rngs=nnx.Rngs(dropout=key).')
    x, intermediates = self.features(images, train=train, rngs=rngs, return_weights=return_intermediates)
    cls_logits, dist_logits = self._heads(x)
    logits = cls_logits if dist_logits is None else (cls_logits + dist_logits) / 2
    return (logits, intermediates) if return_intermediates else logits

  def heads(self, images, *, train: bool = False, rngs=None):
    """(class-head logits, distillation-head logits or None), each [B, K]."""
    return self._heads(self.features(images, train=train, rngs=rngs)[0])

  def features(self, images, *, train: bool = False, rngs=None, return_weights: bool = False):
    """Images -> (tokens after the last block [B, P + N, D], not normed;
    {'tokens': [depth] of [B, P + N, D], 'attention': [depth] of [B, H, N', N'] or None})."""
    tokens, weights = [], []
    x = self.embed(images, train=train, rngs=rngs)
    for block in self.blocks:
      x, w = block(x, train=train, rngs=rngs, return_weights=return_weights)
      tokens.append(x)
      weights.append(w)
    return x, {'tokens': tokens, 'attention': weights}

  def _heads(self, x):  # x: [B, P + N, D] -> (logits [B, K], distillation logits [B, K] or None)
    if self.cfg.pool == 'mean':  # timm: pool the patch tokens, then norm (its fc_norm).
      return self.head(self.norm(x.mean(axis=1))).astype(jnp.float32), None
    x = self.norm(x)
    cls_logits = self.head(x[:, 0]).astype(jnp.float32)
    if self.head_dist is None:
      return cls_logits, None
    return cls_logits, self.head_dist(x[:, 1]).astype(jnp.float32)
