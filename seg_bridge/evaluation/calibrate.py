"""Calibration: the grid point that scores best, per prompt and overall, and
the settings file that carries it to segment.py, segment_video.py and the demo.

    best = choose(table, 'cgF1', prompts)     # table: {(threshold key, min-score): metrics}, in grid order
    write_settings('eval/settings.json', finder='clipseg', metric='cgF1', best=best, ...)
    python segment.py --settings eval/settings.json --prompt "dog, ball" photos/

The file holds, for the finder it was made with, the chosen --min-score (and,
for CLIPSeg, --threshold) of each calibrated prompt and, under '*', the
overall choice, which serves every other prompt. The grid runs through the
thresholds as listed and, within each, the min-scores from low to high; ties
go to the earlier point.
"""

from __future__ import annotations

import json

from seg_bridge.evaluation.sweep import ADAPTIVE
from vit_jax.files import atomic_write

KIND = 'seg_bridge calibration'
CALIBRATION_METRICS = ('gIoU', 'cIoU', 'AP', 'AP50', 'AP75', 'cgF1', 'pmF1', 'MCC')  # Each: higher is better.
DEFAULT_MIN_SCORES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05, 0.10 ... 0.95
DEFAULT_THRESHOLDS = (None, 0.3, 0.4, 0.5, 0.6)  # CLIPSeg: adaptive, then fixed heatmap thresholds.


class SettingsError(ValueError):
  """A settings file that cannot be used; the message says why, in one line."""


def choose(table: dict[tuple[str, float | None], dict], metric: str, prompts: list[str]) -> dict:
  """{'*' and each prompt: {'threshold': key, 'min_score': value, metric: its value}}: the
  grid point with the best `metric` over all prompts, and each prompt's own."""
  best = {}
  for name in ['*', *prompts]:
    point, value = None, None
    for key, metrics in table.items():  # In grid order.
      score = metrics[name][metric]
      if score is not None and (value is None or score > value):
        point, value = key, score
    if point is not None:
      best[name] = {'threshold': point[0], 'min_score': point[1], metric: value}
  return best


def write_settings(path: str, *, finder: str, metric: str, best: dict, configuration: str, made_by: str) -> dict:
  """The settings file (see the module docstring); returns what it holds."""
  settings = {'kind': KIND, 'finder': finder, 'metric': metric, 'configuration': configuration,
              'min_score': {name: choice['min_score'] for name, choice in best.items()},
              'scores': {name: choice[metric] for name, choice in best.items()}, 'made_by': made_by}
  if finder == 'clipseg':
    settings['threshold'] = {name: None if choice['threshold'] == ADAPTIVE else float(choice['threshold'])
                             for name, choice in best.items()}
  atomic_write(path, json.dumps(settings, indent=1).encode())
  return settings


def _load(path: str) -> dict:
  from seg_bridge.evaluation.truth import read_json
  settings = read_json(path, f'--settings {path!r}', SettingsError)
  if not isinstance(settings, dict) or settings.get('kind') != KIND:
    raise SettingsError(f'--settings {path!r} is not a settings file of python -m seg_bridge.evaluate --calibrate.')
  return settings


def finder_of(path: str) -> str:
  """The finder a settings file was calibrated for."""
  from seg_bridge.build import FINDER_CHOICES
  finder = _load(path).get('finder')
  if finder not in FINDER_CHOICES:
    raise SettingsError(f'--settings {path!r} is damaged: it names no known finder ({finder!r}).')
  return finder


def read_settings(path: str, finder: str) -> dict:
  """Options' fields from a settings file made for `finder`: {'min_score':
  {prompt or '*': value}, 'threshold': {...} (CLIPSeg) or None (adaptive
  throughout)}; SettingsError (one line) where it cannot serve."""
  settings = _load(path)
  if settings.get('finder') != finder:
    raise SettingsError(f'--settings {path!r} was calibrated for --finder {settings.get("finder")}, not {finder}: '
                        f'use that finder, or calibrate {finder} again.')
  wanted = {'min_score': False, **({'threshold': True} if finder == 'clipseg' else {})}
  chosen = {}
  for field, may_be_adaptive in wanted.items():
    values = settings.get(field)
    if not (isinstance(values, dict) and '*' in values and all(
        (v is None and may_be_adaptive) or (isinstance(v, (int, float)) and 0 <= v <= 1) for v in values.values())):
      raise SettingsError(f'--settings {path!r} is damaged: {field} is not a mapping of prompts (and "*") to '
                          'numbers in [0, 1].')
    chosen[field] = {str(k): None if v is None else float(v) for k, v in values.items()}
  if all(v is None for v in chosen.get('threshold', {}).values()):
    chosen['threshold'] = None  # CLIPSeg adaptive throughout (or another finder): the finder's own.
  return chosen
