"""Every config file (and variant) loads, passes the checks, and builds its model."""

import importlib
import pathlib

import pytest
from flax import nnx

from vit_jax import train
from vit_jax.validate import check_config

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
