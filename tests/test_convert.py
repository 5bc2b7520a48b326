"""Weights between vit_jax and timm both ways, and from Google's ViT .npz files."""

import jax
import numpy as np
import pytest
from flax import nnx

from tests.tiny_train_config import tiny_config
from vit_jax import convert
from vit_jax.training import loop as train
from vit_jax.models import ViT, ViTConfig
from vit_jax.training.validate import ConfigError

torch = pytest.importorskip('torch')
from timm.models import vision_transformer as timm_vit  # noqa: E402
from timm.models.deit import VisionTransformerDistilled  # noqa: E402


def logits_of(reference, x):
  with torch.no_grad():
    return reference.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()


def images(n=3, size=32, seed=0):
  return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize('fields', [dict(), dict(pool='mean'), dict(layerscale_init=0.1, mlp_dim=96),
                                    dict(distillation_token=True)])
def test_an_exported_model_gives_timm_the_same_logits(tmp_path, fields):
  from safetensors.torch import load_file
  model = ViT(ViTConfig(dim=48, depth=2, num_heads=3, num_classes=7, **fields), rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)  # Away from the init, so that every weight matters.
  nnx.update(model, jax.tree.map(lambda p: p + 0.1 * rng.normal(size=p.shape).astype(np.float32),
                                 nnx.state(model, nnx.Param)))
  convert.export_timm(model, str(tmp_path / 'model.safetensors'))
  timm_class = VisionTransformerDistilled if fields.get('distillation_token') else timm_vit.VisionTransformer
  reference = timm_class(**convert.timm_kwargs(model.cfg))
  reference.load_state_dict(load_file(str(tmp_path / 'model.safetensors')))  # Strict: every key used.
  x = images()
  np.testing.assert_allclose(logits_of(reference, x), model(x), atol=1e-5)


def test_import_resamples_the_grid_and_starts_a_new_head():
  torch.manual_seed(0)
  reference = timm_vit.VisionTransformer(img_size=64, patch_size=8, num_classes=1000, embed_dim=32, depth=1,
                                         num_heads=2)
  model = ViT(ViTConfig(image_size=32, patch_size=8, dim=32, depth=1, num_heads=2, num_classes=10), rngs=nnx.Rngs(0))
  head_before = np.array(model.head.kernel[...])
  notes = convert.load_timm_state_dict(model, reference.state_dict())
  assert notes == ['head: new (1000 -> 10 classes), left at its initialisation',
                   'pos_embed resampled from 65 to 17 tokens']
  np.testing.assert_array_equal(model.head.kernel[...], head_before)
  from timm.layers import resample_abs_pos_embed  # timm's own resampling (bicubic, antialiased): the reference.
  expected = resample_abs_pos_embed(reference.pos_embed.detach(), new_size=(4, 4), num_prefix_tokens=1)
  np.testing.assert_allclose(model.pos_embed[...], expected.numpy(), atol=1e-5)
  np.testing.assert_allclose(model.stem.proj.kernel[...], reference.patch_embed.proj.weight.detach().numpy()
                             .transpose(2, 3, 1, 0))


def google_npz(path, dim=48, heads=3, depth=2, patch=4, tokens=65, classes=7, mlp=96):
  """Random weights under Google's ViT names and shapes (google-research/vision_transformer)."""
  rng = np.random.default_rng(0)
  w = lambda *shape: rng.normal(scale=0.1, size=shape).astype(np.float32)
  arrays = {'cls': w(1, 1, dim), 'Transformer/posembed_input/pos_embedding': w(1, tokens, dim),
            'embedding/kernel': w(patch, patch, 3, dim), 'embedding/bias': w(dim),
            'Transformer/encoder_norm/scale': 1 + w(dim), 'Transformer/encoder_norm/bias': w(dim),
            'head/kernel': w(dim, classes), 'head/bias': w(classes)}
  for i in range(depth):
    b = f'Transformer/encoderblock_{i}'
    for n in ('LayerNorm_0', 'LayerNorm_2'):
      arrays[f'{b}/{n}/scale'], arrays[f'{b}/{n}/bias'] = 1 + w(dim), w(dim)
    for n in ('query', 'key', 'value'):
      arrays[f'{b}/MultiHeadDotProductAttention_1/{n}/kernel'] = w(dim, heads, dim // heads)
      arrays[f'{b}/MultiHeadDotProductAttention_1/{n}/bias'] = w(heads, dim // heads)
    arrays[f'{b}/MultiHeadDotProductAttention_1/out/kernel'] = w(heads, dim // heads, dim)
    arrays[f'{b}/MultiHeadDotProductAttention_1/out/bias'] = w(dim)
    arrays[f'{b}/MlpBlock_3/Dense_0/kernel'], arrays[f'{b}/MlpBlock_3/Dense_0/bias'] = w(dim, mlp), w(mlp)
    arrays[f'{b}/MlpBlock_3/Dense_1/kernel'], arrays[f'{b}/MlpBlock_3/Dense_1/bias'] = w(mlp, dim), w(dim)
  np.savez(path, **arrays)
  return path


def test_a_google_npz_loads_as_timm_loads_it(tmp_path):
  path = str(google_npz(tmp_path / 'ViT-tiny.npz'))
  reference = timm_vit.VisionTransformer(img_size=32, patch_size=4, num_classes=7, embed_dim=48, depth=2,
                                         num_heads=3, mlp_ratio=2.0)
  timm_vit._load_weights(reference, path)  # timm's own reader of these files: the reference.
  model = ViT(ViTConfig(dim=48, depth=2, num_heads=3, mlp_dim=96, num_classes=7), rngs=nnx.Rngs(0))
  assert convert.load_file(model, path) == []
  x = images(seed=2)
  np.testing.assert_allclose(model(x), logits_of(reference, x), atol=1e-5)


@pytest.mark.parametrize('name, content', [('w.safetensors', b'not weights'), ('w.npz', b'PK\x03\x04broken'),
                                           ('w.pth', b'\x80\x02garbage')])
def test_damaged_or_missing_weights_files_are_one_clear_error(tmp_path, name, content):
  model = ViT(ViTConfig(dim=32, depth=1, num_heads=2), rngs=nnx.Rngs(0))
  (tmp_path / name).write_bytes(content)
  with pytest.raises(ValueError, match=f"{name}' cannot be read as weights"):
    convert.load_file(model, str(tmp_path / name))
  with pytest.raises(FileNotFoundError, match='no weights file'):
    convert.load_file(model, str(tmp_path / 'missing.npz'))


def test_the_command_exports_a_runs_best_checkpoint_for_timm(tmp_path, finished_run):
  from safetensors.torch import load_file
  assert convert.main([str(finished_run), str(tmp_path / 'best.safetensors')]) == 0
  model = train.build_model(tiny_config(), 10)
  reference = timm_vit.VisionTransformer(**convert.timm_kwargs(model.cfg))
  reference.load_state_dict(load_file(str(tmp_path / 'best.safetensors')))
  assert convert.main([str(tmp_path / 'nowhere'), str(tmp_path / 'x.safetensors')]) == 2
  assert not (tmp_path / 'x.safetensors').exists()


def test_a_run_starts_from_pretrained_weights(tmp_path, capsys):
  from safetensors.torch import save_file
  torch.manual_seed(0)  # The tiny config's ViT (64/2/2, MLP 128, patch 8), pretrained at 64x64 on 1000 classes.
  reference = timm_vit.VisionTransformer(img_size=64, patch_size=8, num_classes=1000, embed_dim=64, depth=2,
                                         num_heads=2, mlp_ratio=2.0)
  path = str(tmp_path / 'pretrained.safetensors')
  save_file(reference.state_dict(), path)
  model = train.build_model(tiny_config(), 10)
  train.load_initial_weights(model, path)
  np.testing.assert_allclose(model.blocks[1].mlp.fc2.kernel[...], reference.blocks[1].mlp.fc2.weight.detach().numpy().T)
  train.train_and_evaluate(tiny_config(total_epochs=1, **{'init.weights': path}), str(tmp_path / 'run'))
  assert (f'Initial weights from {path!r}; head: new (1000 -> 10 classes), left at its initialisation; pos_embed '
          'resampled from 65 to 17 tokens.\n') in capsys.readouterr().out
  with pytest.raises(ConfigError, match="config.init.weights: no weights file '/nowhere.npz'; download it"):
    train.load_initial_weights(model, '/nowhere.npz')
