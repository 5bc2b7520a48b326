"""ResNet (He et al. 2016), CIFAR variant: a 3x3 stem without max-pooling, so
32x32 images keep a 4x4 grid after the last stage.

    model = create_model('resnet18', num_classes=10)
    logits = model(images, train=True)   # [B, 10]; updates BatchNorm statistics

ResNet-18 is the teacher of DeiT distillation here (configs/resnet18.py);
its first stages are also a ViT stem (`stem='resnet'` in ViTConfig).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from vit_jax.models.layers import ConvBN, Linear


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
  image_size: int = 32
  num_classes: int = 10
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)  # Basic blocks per stage; channels width * 2**stage.
  width: int = 64
  dtype: str = 'float32'  # Compute dtype; parameters stay float32.

  def __post_init__(self):
    object.__setattr__(self, 'stage_sizes', tuple(self.stage_sizes))  # Also from a config's JSON list.
    for name in ('image_size', 'num_classes', 'width'):
      value = getattr(self, name)
      if not (isinstance(value, int) and value > 0):
        raise ValueError(f'{name} must be a positive integer, got {value!r}.')
    if not self.stage_sizes or not all(isinstance(n, int) and n > 0 for n in self.stage_sizes):
      raise ValueError(f'stage_sizes must be positive integers, got {self.stage_sizes!r}.')
    if self.dtype not in ('float32', 'bfloat16', 'float16'):
      raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}.")


class BasicBlock(nnx.Module):
  """relu(x + bn(conv(relu(bn(conv(x)))))), with a 1x1 projection where the shape changes."""

  def __init__(self, cin: int, cout: int, stride: int, dtype: str, rngs: nnx.Rngs):
    self.conv1 = ConvBN(cin, cout, 3, stride=stride, dtype=dtype, rngs=rngs)
    self.conv2 = ConvBN(cout, cout, 3, relu=False, zero_init_scale=True, dtype=dtype, rngs=rngs)
    self.shortcut = (ConvBN(cin, cout, 1, stride=stride, relu=False, dtype=dtype, rngs=rngs)
                     if stride != 1 or cin != cout else None)

  def __call__(self, x, *, train: bool):  # [B, H, W, cin] -> [B, H/stride, W/stride, cout]
    y = self.conv2(self.conv1(x, train=train), train=train)
    return jax.nn.relu(y + (self.shortcut(x, train=train) if self.shortcut else x))


class ResNetTrunk(nnx.Module):
  """Stem and stages: images [B, H, W, 3] -> features [B, H/s, W/s, channels],
  s = 2**(len(stage_sizes) - 1) (the first stage keeps the resolution)."""

  def __init__(self, stage_sizes, width: int, dtype: str, rngs: nnx.Rngs):
    self.stem = ConvBN(3, width, 3, dtype=dtype, rngs=rngs)
    blocks, cin = [], width
    for stage, size in enumerate(stage_sizes):
      cout = width * 2**stage
      for i in range(size):
        blocks.append(BasicBlock(cin, cout, 2 if stage and i == 0 else 1, dtype, rngs))
        cin = cout
    self.blocks = nnx.List(blocks)
    self.channels, self.stride = cin, 2**(len(stage_sizes) - 1)

  def __call__(self, images, *, train: bool):
    x = self.stem(images, train=train)
    for block in self.blocks:
      x = block(x, train=train)
    return x


class ResNet(nnx.Module):
  """ResNet classifier: trunk, global average pooling, linear head."""

  def __init__(self, cfg: ResNetConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.trunk = ResNetTrunk(cfg.stage_sizes, cfg.width, cfg.dtype, rngs)
    self.head = Linear(self.trunk.channels, cfg.num_classes, dtype=cfg.dtype, rngs=rngs)

  def __call__(self, images, *, train: bool = False, rngs: nnx.Rngs | None = None):
    """Images [B, H, W, 3] (normalised floats) -> logits [B, num_classes] (float32).
    `rngs` is unused (no dropout); it is accepted like the ViT's."""
    x = self.trunk(images.astype(self.cfg.dtype), train=train)  # [B, h, w, C]
    return self.head(x.mean(axis=(1, 2))).astype(jnp.float32)
