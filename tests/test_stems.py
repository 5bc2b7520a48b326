"""ViT stems: patch, conv and ResNet; each sets the token grid from patch_size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vit_jax.models import ViTConfig, create_model


def tiny(**fields):
  return create_model('vit', num_classes=10, dim=32, depth=1, num_heads=2, stem_width=8, **fields)


@pytest.mark.parametrize('stem', ['patch', 'conv', 'resnet'])
@pytest.mark.parametrize('patch_size', [2, 4, 8])
def test_every_stem_gives_one_token_per_patch(stem, patch_size):
  model = tiny(stem=stem, patch_size=patch_size)
  tokens = model.embed(jnp.zeros((2, 32, 32, 3)))
  assert tokens.shape == (2, 1 + (32 // patch_size) ** 2, 32)  # The class token and the patch grid.
  assert model.pos_embed.shape == tokens.shape[:0] + (1,) + tokens.shape[1:]
  assert model(jnp.zeros((2, 32, 32, 3))).shape == (2, 10)


def test_conv_stems_are_convolutions_with_batchnorm():
  conv = tiny(stem='conv', patch_size=4)
  assert [c.conv.kernel.shape for c in conv.stem.convs] == [(3, 3, 3, 8), (3, 3, 8, 16)]  # Two stride-2 layers.
  resnet = tiny(stem='resnet', patch_size=4)
  assert len(resnet.stem.trunk.blocks) == 6 and resnet.stem.trunk.channels == 32  # 3 stages of 2 blocks: 8, 16, 32.
  assert len(nnx.state(resnet, nnx.BatchStat)) > 0 and len(nnx.state(tiny(), nnx.BatchStat)) == 0


def test_batchnorm_statistics_move_in_training_only():
  model = tiny(stem='conv', patch_size=4)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3)) * 3 + 1
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  model(x)
  assert jax.tree.all(jax.tree.map(np.array_equal, before, nnx.state(model, nnx.BatchStat)))
  model(x, train=True)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before, nnx.state(model, nnx.BatchStat))
  assert all(jax.tree.leaves(changed))


def test_stems_that_halve_need_a_power_of_two():
  with pytest.raises(ValueError, match='power of 2'):
    ViTConfig(stem='conv', image_size=36, patch_size=6)
  with pytest.raises(ValueError, match="stem must be one of 'patch', 'conv', 'resnet'"):
    ViTConfig(stem='swin')
