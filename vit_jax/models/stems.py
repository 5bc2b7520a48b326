"""ViT stems: images [B, H, W, 3] -> a grid of token embeddings [B, H/p, W/p, D].

Every stem reduces the image by the config's `patch_size` p, so the token
grid (and the position embedding sized from it) is the same for all stems:
  'patch'   one p x p convolution of stride p (ViT, DeiT);
  'conv'    log2(p) 3x3 conv-BN-ReLU layers of stride 2, widths stem_width,
            2*stem_width, ..., then a 1x1 convolution to D ("Early
            convolutions help transformers see better", Xiao et al. 2021);
  'resnet'  the first log2(p) + 1 stages of a CIFAR ResNet (two basic blocks
            each, widths stem_width * 2**stage), then a 1x1 convolution to D
            (the hybrid ViT of Dosovitskiy et al. 2021; write-up B).
A new stem is one class here and one line in STEMS.
"""

from __future__ import annotations

import math

from flax import nnx

from vit_jax.models.layers import ConvBN
from vit_jax.models.resnet import ResNetTrunk


def _project(cin: int, cfg, rngs: nnx.Rngs, kernel: int = 1) -> nnx.Conv:
  return nnx.Conv(cin, cfg.dim, (kernel, kernel), strides=kernel, padding='VALID', dtype=cfg.dtype,
                  kernel_init=nnx.initializers.lecun_normal(), rngs=rngs)


class PatchStem(nnx.Module):
  def __init__(self, cfg, rngs: nnx.Rngs):
    self.proj = _project(3, cfg, rngs, kernel=cfg.patch_size)

  def __call__(self, images, *, train: bool):  # [B, H, W, 3] -> [B, H/p, W/p, D]
    return self.proj(images)


class ConvStem(nnx.Module):
  def __init__(self, cfg, rngs: nnx.Rngs):
    widths = [cfg.stem_width * 2**i for i in range(int(math.log2(cfg.patch_size)))]
    self.convs = nnx.List([ConvBN(cin, cout, 3, stride=2, dtype=cfg.dtype, rngs=rngs)
                           for cin, cout in zip([3] + widths, widths)])
    self.proj = _project(widths[-1] if widths else 3, cfg, rngs)

  def __call__(self, images, *, train: bool):  # [B, H, W, 3] -> [B, H/p, W/p, D]
    x = images
    for conv in self.convs:
      x = conv(x, train=train)
    return self.proj(x)


class ResNetStem(nnx.Module):
  def __init__(self, cfg, rngs: nnx.Rngs):
    stages = int(math.log2(cfg.patch_size)) + 1
    self.trunk = ResNetTrunk((2,) * stages, cfg.stem_width, cfg.dtype, rngs)
    self.proj = _project(self.trunk.channels, cfg, rngs)

  def __call__(self, images, *, train: bool):  # [B, H, W, 3] -> [B, H/p, W/p, D]
    return self.proj(self.trunk(images, train=train))


STEMS = {'patch': PatchStem, 'conv': ConvStem, 'resnet': ResNetStem}
