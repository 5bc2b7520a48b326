"""Config checks before any work: every field in range, and a resumed run
given the settings it was started with.

    check_config(config, device_count=jax.device_count())   # ConfigError naming the field
    changed = config_changes(stored_json, config)            # [('batch_size', 128, 256)]
"""

from __future__ import annotations

import json
import math
from numbers import Integral, Real

from vit_jax import models
from vit_jax.training import losses, optim


class ConfigError(ValueError):
  """The config cannot be used; the message names the field and what to give."""


def _number(v) -> bool:
  return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v) -> bool:
  return isinstance(v, Integral) and not isinstance(v, bool)


POSITIVE_INT = ('a positive integer', lambda v: _integer(v) and v > 0)
NON_NEGATIVE_INT = ('an integer >= 0', lambda v: _integer(v) and v >= 0)
POSITIVE = ('a positive number', lambda v: _number(v) and v > 0)
NON_NEGATIVE = ('a number >= 0', lambda v: _number(v) and v >= 0)
FRACTION = ('a number in [0, 1]', lambda v: _number(v) and 0 <= v <= 1)
BELOW_ONE = ('a number in [0, 1)', lambda v: _number(v) and 0 <= v < 1)
RGB = ('three numbers (R, G, B)', lambda v: isinstance(v, (tuple, list)) and len(v) == 3 and all(map(_number, v)))
RGB_POSITIVE = ('three positive numbers (R, G, B)', lambda v: RGB[1](v) and all(x > 0 for x in v))

# Field -> (what it must be, test). Optional fields (config.get) are checked where present.
RULES = {
    'seed': NON_NEGATIVE_INT,
    'batch_size': POSITIVE_INT,
    'eval_batch_size': POSITIVE_INT,
    'total_epochs': NON_NEGATIVE,
    'total_steps': NON_NEGATIVE_INT,
    'total_seconds': NON_NEGATIVE,
    'test_time_flip': ('True or False', lambda v: isinstance(v, bool)),
    'log_every_steps': POSITIVE_INT,
    'cpu_devices': NON_NEGATIVE_INT,
    'eval_every_epochs': POSITIVE_INT,
    'checkpoint_every_epochs': POSITIVE_INT,
    'data.image_size': POSITIVE_INT,
    'data.val_size': NON_NEGATIVE_INT,
    'low_res_stage.image_size': POSITIVE_INT,
    'low_res_stage.fraction': FRACTION,
    'data.pipeline': ("'memory', 'stream' or 'auto'", lambda v: v in ('memory', 'stream', 'auto')),
    'data.memory_limit_gb': NON_NEGATIVE,
    'data.workers': ('an integer >= -1 (-1: one per core but one)', lambda v: _integer(v) and v >= -1),
    'data.buffer': POSITIVE_INT,
    'data.stream_crop': ("'resize' or 'random_resized'", lambda v: v in ('resize', 'random_resized')),
    'data.eval_crop_fraction': ('a number in (0, 1]', lambda v: _number(v) and 0 < v <= 1),
    'data.max_bad_fraction': FRACTION,
    'data.mean': RGB,
    'data.std': RGB_POSITIVE,
    'optim.lr': POSITIVE,
    'optim.lr_base_batch_size': POSITIVE,
    'optim.weight_decay': NON_NEGATIVE,
    'optim.b1': BELOW_ONE,
    'optim.b2': BELOW_ONE,
    'optim.grad_clip_norm': NON_NEGATIVE,
    'optim.ema_decay': BELOW_ONE,
    'optim.momentum': BELOW_ONE,
    'optim.muon_rms': POSITIVE,
    'optim.ns_steps': POSITIVE_INT,
    'distill.kind': ("'hard' or 'soft'", lambda v: v in ('hard', 'soft')),
    'distill.temperature': POSITIVE,
    'distill.alpha': FRACTION,
    'optim.nesterov': ('True or False', lambda v: isinstance(v, bool)),
    'schedule.decay_type': ("'cosine' or 'onecycle'", lambda v: v in ('cosine', 'onecycle')),
    'schedule.warmup_epochs': NON_NEGATIVE,
    'schedule.warmup_steps': NON_NEGATIVE_INT,
    'schedule.min_lr': NON_NEGATIVE,
    'aug.crop_padding': NON_NEGATIVE_INT,
    'aug.randaugment_layers': NON_NEGATIVE_INT,
    'aug.randaugment_magnitude': ('a number in [0, 10]', lambda v: _number(v) and 0 <= v <= 10),
    'aug.randaugment_magnitude_std': NON_NEGATIVE,
    'aug.random_erasing': FRACTION,
    'aug.label_smoothing': BELOW_ONE,
    'aug.mixup_alpha': NON_NEGATIVE,
    'aug.cutmix_alpha': NON_NEGATIVE,
    'aug.mix_switch_prob': FRACTION,
    'aug.mix_prob': FRACTION,
}

# Fields that do not change what a run computes: a resumed run may change them.
FREE_ON_RESUME = ('progress_bar', 'eval_batch_size', 'log_every_steps', 'checkpoint_every_epochs', 'data.data_dir',
                  'data.workers', 'data.buffer', 'data.memory_limit_gb')


def _get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    if part not in node:
      return None
    node = node[part]
  return node


def check_config(config, device_count: int = 1) -> None:
  """ConfigError, naming the field, for the first value out of range."""
  for field, (what, ok) in RULES.items():
    value = _get(config, field)
    if value is not None and not ok(value):
      raise ConfigError(f'config.{field}={value!r}: must be {what}.')
  given = [k for k in ('total_epochs', 'total_steps', 'total_seconds') if config.get(k)]
  if len(given) != 1:
    raise ConfigError('give exactly one of config.total_epochs, config.total_steps and config.total_seconds '
                      f'(got {" and ".join(given) or "none"}).')
  for name in ('batch_size', 'eval_batch_size'):
    if config[name] % device_count:
      raise ConfigError(f'config.{name}={config[name]} must be a multiple of the {device_count} devices.')
  try:
    model = models.section_config(config.model, image_size=config.data.image_size)
  except (TypeError, ValueError) as e:
    raise ConfigError(f'config.model: {e}') from None
  if config.optim.get('name', 'adamw') not in optim.OPTIMIZERS:
    raise ConfigError(f'config.optim.name={config.optim.name!r}: must be one of '
                      f'{", ".join(map(repr, optim.OPTIMIZERS))}.')
  if config.get('loss', 'softmax_xent') not in losses.LOSSES:
    raise ConfigError(f'config.loss={config.loss!r}: must be one of {", ".join(map(repr, losses.LOSSES))}.')
  low_res, patch = config.get('low_res_stage') or {}, getattr(model, 'patch_size', 1)  # ResNets take any size.
  if low_res.get('fraction') and low_res['image_size'] % patch:
    raise ConfigError(f"config.low_res_stage.image_size={low_res['image_size']}: must be a multiple of the patch "
                      f'size {patch}.')


def check_schedule(config, total_steps: int, warmup_steps: int) -> None:
  """The duration, once converted to steps, must give a run."""
  if total_steps < 1:
    raise ConfigError(f'the run would have {total_steps} steps; raise config.total_epochs or config.total_steps.')
  if warmup_steps and warmup_steps >= total_steps:
    raise ConfigError(f'the warmup ({warmup_steps} steps) is longer than the run ({total_steps} steps); shorten '
                      'config.schedule.warmup_epochs or warmup_steps.')


def _flatten(tree, prefix=''):
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f'{prefix}{key}.').items()}
  return {prefix[:-1]: tree}


def config_changes(stored_json: str, config) -> list[tuple[str, object, object]]:
  """(field, stored value, new value) for each field that changes what the
  run computes (not those in FREE_ON_RESUME)."""
  old, new = _flatten(json.loads(stored_json)), _flatten(json.loads(config.to_json_best_effort()))
  return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k) and k not in FREE_ON_RESUME]
