"""Every config file (and variant) loads, passes the checks, and builds its model."""

import dataclasses
import importlib
import pathlib

import pytest
from flax import nnx

from configs import FROM_DATA, model_section
from vit_jax import models
from vit_jax.training import loop as train
from vit_jax.training.validate import check_config

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / 'configs').glob('*.py') if p.stem != '__init__')
VARIANTS = [(name, None) for name in CONFIGS if name != 'writeup_b'] + [
    ('writeup_b', v) for v in ('plain', 'conv', 'hybrid', 'distilled')]


@pytest.mark.parametrize('name, variant', VARIANTS)
def test_every_config_is_valid_and_builds_its_model(name, variant):
  module = importlib.import_module(f'configs.{name}')
  assert module.__doc__ and 'python train.py --config configs/' in module.__doc__  # How to run it.
  assert 'Reaches:' in module.__doc__ or 'reported' in module.__doc__  # And what it reaches.
  config = module.get_config(variant) if variant else module.get_config()
  check_config(config)
  model = nnx.eval_shape(lambda: train.build_model(config, 10))
  assert model is not None


def test_an_unknown_variant_is_a_clear_error():
  from configs import writeup_b
  with pytest.raises(ValueError, match='choose one of plain, conv, hybrid, distilled'):
    writeup_b.get_config('huge')


@pytest.mark.parametrize('name, variant', VARIANTS)
def test_every_model_field_can_be_set_from_the_command_line(name, variant):
  """A locked config takes no new keys: each field of the model's architecture is in config.model."""
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config(variant) if variant else module.get_config()
  architecture = models.section_config(config.model, image_size=32, num_classes=10)
  assert set(config.model) == {'name'} | {f.name for f in dataclasses.fields(architecture)} - set(FROM_DATA)


def test_unset_model_fields_keep_the_presets_values_and_set_ones_override_them():
  section = model_section('writeup_b_conv', patch_size=4)
  assert section.stem is None and section.layerscale_init is None
  section.stem_width, section.depth = 16, 2
  cfg = models.section_config(section, image_size=32, num_classes=10)
  assert (cfg.stem, cfg.layerscale_init, cfg.dim, cfg.stem_width, cfg.depth) == ('conv', 1e-4, 192, 16, 2)
  with pytest.raises(TypeError, match='no model field widht'):
    model_section('resnet18', widht=32)
