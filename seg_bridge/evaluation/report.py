"""What an evaluation writes into --out: metrics.json, metrics.md, plots/ and worst/.

    metrics.json    per configuration: metrics overall ('*') and per prompt at
                    its settings; with --calibrate also every grid point's
                    overall metrics, the choice and the metrics at it
    metrics.md      the same as tables, one row per configuration and prompt
    plots/          N_pr.png: precision against recall at IoU 0.5, per prompt;
                    N_sweep.png: the calibrated metric against --min-score,
                    a panel per CLIPSeg --threshold, the choice starred;
                    comparison.png: the configurations side by side
    worst/N/PROMPT/ the images that prompt did worst on (lowest IoU), each the
                    prediction beside the ground truth

Files are replaced whole (atomic writes; plots/ and worst/ staged, then swapped in).
"""

from __future__ import annotations

import itertools
import json
import os
import re

import numpy as np

from vit_jax.files import atomic_write, staged_dir

COLUMNS = ('gIoU', 'cIoU', 'AP', 'AP50', 'AP75', 'cgF1', 'precision', 'recall', 'MCC')


def slug(index: int, name: str) -> str:
  """A configuration's file-name prefix: its number and its name, tamed."""
  return f'{index}-' + (re.sub(r'[^\w.-]+', '_', name).strip('_')[:40] or 'configuration')


def _cell(value) -> str:
  if value is None:
    return '–'
  return f'{value:.1f}' if isinstance(value, float) and abs(value) > 1.0 else f'{value:.3f}'


def markdown(report: dict) -> str:
  """metrics.md: a table of every configuration and prompt, then each calibration's choice."""
  lines = [f'# Evaluation on {report["truth"]!r}', '',
           f'{report["images"]} images, prompts: {", ".join(report["prompts"])}; {len(report["skipped"])} '
           'images left out (metrics.json lists them). Definitions: `python -m seg_bridge.evaluate --help`.', '',
           '| configuration | prompt | ' + ' | '.join(COLUMNS) + ' | s / image |',
           '|' + '---|' * (len(COLUMNS) + 3)]
  for config in report['configurations']:
    seconds = config['seconds_per_image']
    for name, metrics in config['metrics'].items():
      lines.append(f'| {config["name"]} | {"all" if name == "*" else name} | '
                   + ' | '.join(_cell(metrics[c]) for c in COLUMNS)
                   + f' | {_cell(seconds) if name == "*" else ""} |')
  for config in report['configurations']:
    calibration = config.get('calibration')
    if not calibration:
      continue
    metric = calibration['metric']
    lines += ['', f'## Calibration of {config["name"]} for {metric}', '',
              '| prompt | threshold | min-score | ' + metric + ' there | at the settings as given |', '|---|---|---|---|---|']
    for name, choice in calibration['best'].items():
      lines.append(f'| {"all (one setting)" if name == "*" else name} | {choice["threshold"]} | '
                   f'{choice["min_score"]} | {_cell(choice[metric])} | {_cell(calibration["as_given"][name][metric])} |')
    lines.append(f'\nEach prompt at its own choice: {metric} {_cell(calibration["calibrated"]["*"][metric])} over all; '
                 f'settings file {calibration["settings_file"]!r}.')
  return '\n'.join(lines) + '\n'


def write_tables(out: str, report: dict) -> None:
  atomic_write(os.path.join(out, 'metrics.json'), json.dumps(report, indent=1).encode())
  atomic_write(os.path.join(out, 'metrics.md'), markdown(report).encode())


def write_plots(out: str, report: dict) -> None:
  """plots/ (see the module docstring), replaced whole."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  with staged_dir(os.path.join(out, 'plots'), replace=True) as staging:
    recall = np.linspace(0, 1, 101)
    for index, config in enumerate(report['configurations'], start=1):
      name = slug(index, config['name'])
      figure, axes = plt.subplots(figsize=(5, 4))
      for prompt in report['prompts']:
        if config['metrics'][prompt]['pr_iou50'] is not None:
          axes.plot(recall, config['metrics'][prompt]['pr_iou50'], label=prompt)
      axes.set(xlabel='recall', ylabel='precision', title=f'{config["name"]}: IoU 0.5', xlim=(0, 1), ylim=(0, 1.02))
      axes.legend(fontsize='small')
      figure.savefig(os.path.join(staging, f'{name}_pr.png'), dpi=100, bbox_inches='tight')
      plt.close(figure)
      if config.get('calibration'):
        _plot_sweep(plt, config, report['prompts'], os.path.join(staging, f'{name}_sweep.png'))
    shown = ('gIoU', 'cIoU', 'AP', 'MCC')
    figure, axes = plt.subplots(figsize=(1.5 + 1.2 * len(shown) * len(report['configurations']) ** 0.5, 4))
    width = 0.8 / len(report['configurations'])
    for k, config in enumerate(report['configurations']):
      axes.bar(np.arange(len(shown)) + k * width, [config['metrics']['*'][m] or 0.0 for m in shown], width,
               label=config['name'])
    axes.set_xticks(np.arange(len(shown)) + 0.4 - width / 2, shown)
    axes.set(ylim=(min(0.0, *(c['metrics']['*']['MCC'] for c in report['configurations'])), 1), title='all prompts')
    axes.legend(fontsize='small')
    figure.savefig(os.path.join(staging, 'comparison.png'), dpi=100, bbox_inches='tight')
    plt.close(figure)


def _plot_sweep(plt, config: dict, prompts: list[str], path: str) -> None:
  """The calibrated metric against --min-score, a line per prompt; a panel per CLIPSeg threshold."""
  calibration = config['calibration']
  metric, grid = calibration['metric'], calibration['grid']
  thresholds = list(dict.fromkeys(p['threshold'] for p in grid))
  columns = min(len(thresholds), 4)
  rows = -(-len(thresholds) // columns)
  figure, panels = plt.subplots(rows, columns, figsize=(1 + 4 * columns, 3.5 * rows), sharey=True, squeeze=False,
                                layout='constrained')
  best = calibration['best'].get('*')
  for threshold, axes in zip(thresholds, panels.flat):
    for prompt in ['*', *prompts]:
      points = [(p['min_score'], p['metrics'][prompt][metric]) for p in grid
                if p['threshold'] == threshold and p['metrics'][prompt][metric] is not None]
      if points:
        axes.plot(*zip(*points), marker='.', label='all' if prompt == '*' else prompt)
    if best and best['threshold'] == threshold:
      axes.plot(best['min_score'], best[metric], 'k*', markersize=12, label='chosen (all)')
    axes.set(xlabel='--min-score', title=config['name'] if len(thresholds) == 1 else f'--threshold {threshold}')
    axes.legend(fontsize='small')
  for axes in panels[:, 0]:
    axes.set_ylabel(metric)
  for axes in panels.flat[len(thresholds):]:
    axes.set_visible(False)
  if len(thresholds) > 1:
    figure.suptitle(config['name'])
  figure.savefig(path, dpi=100, bbox_inches='tight')
  plt.close(figure)


def side_by_side(image: np.ndarray, predicted, truth) -> np.ndarray:
  """The prediction's overlay beside the ground truth's, as one RGB image."""
  from seg_bridge.outputs import overlay
  gap = np.full((image.shape[0], 8, 3), 255, np.uint8)
  return np.concatenate([np.asarray(overlay(image, predicted)), gap, np.asarray(overlay(image, truth))], axis=1)


def _instances(rles: list[dict], scores: list[float], label: str) -> list:
  """COCO RLE masks as Instances to draw (empty ones left out)."""
  from pycocotools import mask as mask_utils

  from seg_bridge.maskers.candidates import mask_boxes
  from seg_bridge.types import Instance
  masks = [mask_utils.decode(r).astype(bool) for r in rles]
  return [Instance(label, m, s, mask_boxes(m)) for m, s in zip(masks, scores) if m.any()]


def write_worst(out: str, worst: dict[str, dict[str, list]], load) -> list[str]:
  """worst/N/PROMPT/K_IMAGE.png from {config slug: {prompt: [(iou, Pair, image path)]}};
  load(path) -> RGB image or an ImageError (each image is loaded once). Returns a
  line per image it could not read."""
  from PIL import Image

  from seg_bridge.outputs import safe_stem
  from vit_jax.images import ImageError
  problems = []
  with staged_dir(os.path.join(out, 'worst'), replace=True) as staging:
    pictures = []  # (image path, file to write, pair): drawn image by image.
    for config, prompts in worst.items():
      for prompt, rows in prompts.items():
        folder = os.path.join(staging, config, safe_stem(prompt))
        os.makedirs(folder, exist_ok=True)
        for rank, (iou, pair, path) in enumerate(rows, start=1):
          stem = safe_stem(os.path.splitext(pair.image)[0])
          pictures.append((path, os.path.join(folder, f'{rank:02d}_iou{iou:.2f}_{stem}.png'), pair))
    for path, group in itertools.groupby(sorted(pictures, key=lambda p: p[0]), key=lambda p: p[0]):
      try:
        image = load(path)
      except ImageError as e:
        problems.append(str(e))
        continue
      for _, file, pair in group:
        truth = (_instances(pair.truth, [1.0] * len(pair.truth), f'{pair.prompt} (truth)')
                 + _instances(pair.crowd, [1.0] * len(pair.crowd), f'{pair.prompt} (crowd)'))
        Image.fromarray(side_by_side(image, _instances(pair.predicted, pair.scores, pair.prompt), truth)).save(file)
  return problems
