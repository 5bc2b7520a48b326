"""From candidates to scores: one configuration's metrics at its settings, and
with a grid, at every grid point, the calibration's choice and the metrics there.

    grid = [(threshold key, min-score), ...]          # in order: ties go to the earlier
    scored = score(truth, records, grid, metric='cgF1')
"""

from __future__ import annotations

import statistics

from seg_bridge.evaluation.calibrate import choose
from seg_bridge.evaluation.metrics import Pair, evaluate_pairs, pair_iou
from seg_bridge.evaluation.sweep import at_point
from seg_bridge.evaluation.truth import Truth


def pairs_at(truth: Truth, records: dict[str, dict], threshold, min_score) -> list[Pair]:
  """Every (image, prompt) pair of the images with candidates, at a grid point
  (either setting may be a mapping prompt -> value)."""
  pairs = []
  for image in truth.images:
    record = records.get(image.name)
    if record is None:
      continue
    for prompt in truth.prompts:
      found = at_point(record, prompt, threshold, min_score)
      pairs.append(Pair(image.name, prompt, image.size, image.masks.get(prompt, []), [i['rle'] for i in found],
                        [i['score'] for i in found], image.crowd.get(prompt, [])))
  return pairs


def seconds_per_image(records: dict[str, dict]) -> float | None:
  seconds = [r['seconds'] for r in records.values() if r.get('seconds') is not None]
  return round(statistics.mean(seconds), 4) if seconds else None


def calibrated_point(best: dict, prompts: list[str]) -> tuple[dict, dict]:
  """The grid point with each prompt at its own choice (the overall one where it has none):
  ({prompt: threshold key}, {prompt: min-score})."""
  own = {p: best.get(p, best['*']) for p in prompts}
  return {p: c['threshold'] for p, c in own.items()}, {p: c['min_score'] for p, c in own.items()}


def score(truth: Truth, records: dict[str, dict], grid: list[tuple[str, float | None]], given: tuple,
          metric: str | None) -> dict:
  """{'metrics': at the settings the configuration runs with, ...}: without
  `metric`, at `given` (a grid point); with it, the grid's metrics, the best
  point overall and per prompt, and the metrics with each prompt at its own."""
  if metric is None:
    return {'metrics': evaluate_pairs(pairs_at(truth, records, *given), truth.prompts)}
  table = {point: evaluate_pairs(pairs_at(truth, records, *point), truth.prompts) for point in grid}
  best = choose(table, metric, truth.prompts)
  if '*' not in best:
    raise ValueError(f'{metric} is undefined on these labels at every grid point (no true instance to score): '
                     'calibrate for another metric, e.g. gIoU.')
  calibrated = evaluate_pairs(pairs_at(truth, records, *calibrated_point(best, truth.prompts)), truth.prompts)
  return {'metrics': calibrated, 'as_given': table[given], 'best': best, 'metric': metric,
          'grid': [{'threshold': t, 'min_score': m, 'metrics': {name: {k: v for k, v in values.items() if k != 'pr_iou50'}
                                                                 for name, values in table[(t, m)].items()}}
                   for t, m in grid]}


def worst_pairs(pairs: list[Pair], count: int, images: dict[str, str]) -> dict[str, list]:
  """Per prompt, its `count` pairs of lowest IoU among those with something
  true or predicted: [(iou, pair, image path)], worst first."""
  worst = {}
  for pair in pairs:
    if pair.truth or pair.predicted:
      worst.setdefault(pair.prompt, []).append((pair_iou(pair), pair, images[pair.image]))
  return {prompt: sorted(rows, key=lambda row: (row[0], row[1].image))[:count] for prompt, rows in worst.items()}
