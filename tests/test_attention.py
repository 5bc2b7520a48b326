"""Attention rollout and class-token maps, in the report and from the command line."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from vit_jax import attention
from vit_jax.models import ViT, ViTConfig


def test_rollout_follows_attention_through_the_residual_paths():
  n = 5  # The class token and 4 patches.
  to_patch_3 = jnp.zeros((1, 2, n, n)).at[:, :, :, 3].set(1.0)  # Every token attends to token 3 only.
  joint = attention.rollout([to_patch_3])
  np.testing.assert_allclose(joint[0, 0], [0.5, 0, 0, 0.5, 0])  # Half itself (the residual), half token 3.
  uniform = jnp.full((1, 1, n, n), 1 / n)
  np.testing.assert_allclose(attention.rollout([uniform, uniform]).sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize('pool', ['cls', 'mean'])
def test_maps_cover_the_patch_grid_and_sum_to_one(pool):
  model = ViT(ViTConfig(dim=32, depth=2, num_heads=2, patch_size=8, pool=pool), rngs=nnx.Rngs(0))
  maps = attention.attention_maps(model, np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32))
  assert set(maps) == {'rollout', 'last_layer'}
  for m in maps.values():
    assert m.shape == (3, 4, 4) and np.allclose(m.sum((1, 2)), 1.0, atol=1e-5) and (m >= 0).all()


def test_the_command_draws_any_image_for_a_runs_checkpoint(tmp_path, finished_run):
  workdir = finished_run
  assert (workdir / 'attention.png').exists()  # The report's, for the first test images.
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), np.uint8)).save(tmp_path / 'a.jpg')
  Image.new('L', (50, 50)).save(tmp_path / 'gray.png')
  out = tmp_path / 'maps.png'
  assert attention.main([str(workdir), str(tmp_path / 'a.jpg'), str(tmp_path / 'gray.png'), '--out', str(out)]) == 0
  with Image.open(out) as img:
    assert img.format == 'PNG' and img.size[1] > 200  # Two rows.
  (tmp_path / 'bad.jpg').write_bytes(b'not an image')
  assert attention.main([str(workdir), str(tmp_path / 'bad.jpg'), '--out', str(tmp_path / 'no.png')]) == 2
  assert attention.main([str(tmp_path / 'nowhere'), str(tmp_path / 'a.jpg'), '--out', str(tmp_path / 'no.png')]) == 2
  assert not (tmp_path / 'no.png').exists()
