"""ViT shapes, parameter counts, options, and equivalence with timm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vit_jax.convert import load_timm_state_dict
from vit_jax.models import PRESETS, ViT, ViTConfig, create_model, model_config


def count_params(model) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_deit_tiny_shapes_and_parameter_count():
  model = create_model('deit_tiny', num_classes=10)
  images = jnp.zeros((2, 32, 32, 3))
  assert model(images).shape == (2, 10)
  # Patch embed 4*4*3*192+192, pos 65*192, cls 192, 12 blocks of 444,864, norm 384, head 1,930.
  assert count_params(model) == 9408 + 12480 + 192 + 12 * 444864 + 384 + 1930 == 5_362_762


@pytest.mark.parametrize('name', PRESETS)
def test_every_preset_builds_and_runs(name):
  model = nnx.eval_shape(lambda: create_model(name, num_classes=10))
  logits = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert logits.shape == (2, 10)


def test_writeup_presets_have_the_writeups_shapes():
  a, c, d = (model_config(name) for name in ('writeup_a', 'writeup_c', 'writeup_d'))
  assert (a.dim, a.depth, a.num_heads, a.patch_size) == (256, 10, 8, 4)
  assert (c.dim, c.depth, c.num_heads, c.dropout) == (256, 8, 8, 0.1)
  assert (d.dim, d.num_heads, d.mlp_dim, d.dropout) == (256, 8, 512, 0.1)


def test_options_change_the_tree_not_the_class():
  cfg = ViTConfig(dim=32, depth=2, num_heads=2, layerscale_init=1e-4, distillation_token=True)
  model = ViT(cfg, rngs=nnx.Rngs(0))
  assert model.pos_embed.shape == (1, 2 + 64, 32)  # cls + distillation token + 64 patches
  assert np.allclose(model.blocks[0].ls1.gamma[...], 1e-4)
  cls_logits, dist_logits = model.heads(jnp.ones((3, 32, 32, 3)))
  np.testing.assert_allclose(model(jnp.ones((3, 32, 32, 3))), (cls_logits + dist_logits) / 2, atol=1e-6)
  mean_model = ViT(ViTConfig(dim=32, depth=1, num_heads=2, pool='mean'), rngs=nnx.Rngs(0))
  assert mean_model.cls_token is None and mean_model.pos_embed.shape == (1, 64, 32)


def test_bad_shapes_are_rejected_with_a_clear_error():
  with pytest.raises(ValueError, match='not a multiple of patch_size'):
    ViTConfig(image_size=30, patch_size=4)
  with pytest.raises(ValueError, match="unknown model 'vit_huge'"):
    model_config('vit_huge')
  with pytest.raises(TypeError, match='stage_sizes'):
    model_config('deit_tiny', stage_sizes=(2, 2))  # A ResNet field.


def test_dropout_and_drop_path_are_random_in_training_only():
  model = ViT(ViTConfig(dim=32, depth=2, num_heads=2, dropout=0.2, drop_path=0.5), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  np.testing.assert_array_equal(model(x), model(x))
  a = model(x, train=True, rngs=nnx.Rngs(dropout=1))
  b = model(x, train=True, rngs=nnx.Rngs(dropout=1))
  c = model(x, train=True, rngs=nnx.Rngs(dropout=2))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  with pytest.raises(ValueError, match='needs rngs'):
    model(x, train=True)


def test_intermediates_and_explicit_attention_match_the_fused_path(monkeypatch):
  model = ViT(ViTConfig(dim=32, depth=3, num_heads=4), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  logits, inter = model(x, return_intermediates=True)
  np.testing.assert_allclose(logits, model(x), atol=1e-5)
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')  # Off CPU: jax.nn.dot_product_attention.
  np.testing.assert_allclose(logits, model(x), atol=1e-5)
  assert len(inter['tokens']) == 3 and inter['tokens'][0].shape == (2, 65, 32)
  weights = inter['attention'][0]
  assert weights.shape == (2, 4, 65, 65)
  np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = ViT(ViTConfig(dim=32, depth=2, num_heads=2, dtype='bfloat16'), rngs=nnx.Rngs(0))
  assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype('float32')}
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  logits = model(x)
  assert logits.dtype == jnp.float32
  f32 = ViT(ViTConfig(dim=32, depth=2, num_heads=2), rngs=nnx.Rngs(0))
  np.testing.assert_allclose(logits, f32(x), atol=0.05)


# ----------------------------------------------------------- timm reference

timm_cases = [
    (dict(), dict()),
    (dict(pool='mean'), dict(global_pool='avg', class_token=False)),
    (dict(layerscale_init=0.1, qkv_bias=False), dict(init_values=0.1, qkv_bias=False)),
]


@pytest.mark.parametrize('ours,theirs', timm_cases)
def test_same_logits_as_timm_on_the_same_random_weights(ours, theirs):
  torch = pytest.importorskip('torch')
  from timm.models.vision_transformer import VisionTransformer
  torch.manual_seed(0)
  reference = VisionTransformer(img_size=32, patch_size=4, num_classes=7, embed_dim=48, depth=2, num_heads=3,
                                **theirs).eval()
  with torch.no_grad():  # Move away from timm's init so every weight matters.
    for p in reference.parameters():
      p.add_(torch.randn_like(p) * 0.1)
  model = ViT(ViTConfig(dim=48, depth=2, num_heads=3, num_classes=7, **ours), rngs=nnx.Rngs(0))
  load_timm_state_dict(model, reference.state_dict())
  x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
  expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
  np.testing.assert_allclose(model(jnp.asarray(x)), expected, atol=2e-5)


def test_same_logits_as_timm_deit_distilled():
  torch = pytest.importorskip('torch')
  from timm.models.deit import VisionTransformerDistilled
  torch.manual_seed(0)
  reference = VisionTransformerDistilled(img_size=32, patch_size=4, num_classes=5, embed_dim=48, depth=2,
                                         num_heads=3).eval()
  with torch.no_grad():
    for p in reference.parameters():
      p.add_(torch.randn_like(p) * 0.1)
  model = ViT(ViTConfig(dim=48, depth=2, num_heads=3, num_classes=5, distillation_token=True), rngs=nnx.Rngs(0))
  load_timm_state_dict(model, reference.state_dict())
  x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
  np.testing.assert_allclose(model(jnp.asarray(x)), expected, atol=2e-5)


def test_timm_conversion_rejects_unknown_and_missing_keys():
  model = ViT(ViTConfig(dim=32, depth=1, num_heads=2), rngs=nnx.Rngs(0))
  with pytest.raises(KeyError, match='no counterpart'):
    load_timm_state_dict(model, {'blocks.0.attn.q_norm.weight': np.zeros(16)})
  with pytest.raises(KeyError, match='have nothing for'):
    load_timm_state_dict(model, {'cls_token': np.zeros((1, 1, 32))})
