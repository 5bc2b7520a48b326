"""Ablation sweeps: one train.py run per point of a grid over config fields.

    python -m vit_jax.sweep --config configs/cpu_quick.py --out results/sweeps/patch \
        --grid model.patch_size=2,4,8 --seeds 0,1 --set total_seconds=120
    python -m vit_jax.sweep ... --grid model.depth+model.dim=2+256,4+192,8+128   # fields that move together

Each run is `train.py` in its own process and work directory
(OUT/runs/<name>), so a sweep that is stopped goes on where it was when
started again (finished runs are kept, an unfinished one resumes). At the
end OUT holds table.md and table.json (per point: the values, test and
validation accuracy, steps, seconds; the mean and spread over seeds) and
plot.png. Exit status: 0 all runs done; 1 a run failed (the others go on);
2 a bad argument.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np

from vit_jax.files import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_grid(specs: list[str]) -> list[dict]:
  """['a=1,2', 'b+c=3+4,5+6'] -> the product of the axes, as dicts of field -> value."""
  axes = []
  for spec in specs:
    fields, sep, values = spec.partition('=')
    if not sep or not values:
      raise ValueError(f'--grid {spec!r}: give FIELD=V1,V2 or FIELD1+FIELD2=A1+B1,A2+B2.')
    names = fields.split('+')
    points = [point.split('+') for point in values.split(',')]
    if any(len(p) != len(names) for p in points):
      raise ValueError(f'--grid {spec!r}: each value needs {len(names)} parts joined by "+".')
    axes.append([dict(zip(names, map(_literal, p))) for p in points])
  return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def run_name(point: dict, seed: int) -> str:
  """{'model.depth': 2, 'distill.teacher_workdir': 'runs/t'} -> 'depth-2_teacher_workdir-runs_t-e49359_seed-0':
  one folder name; a value with characters a name cannot hold (a path's '/') is
  cleaned and keeps a short hash of itself, so that two values never share a run."""
  parts = []
  for field, value in point.items():
    text = str(value)
    safe = re.sub(r'[^A-Za-z0-9.=-]+', '_', text)
    if safe != text:
      safe += '-' + hashlib.sha1(text.encode()).hexdigest()[:6]
    parts.append(f'{field.rsplit(".", 1)[-1]}-{safe}')
  return '_'.join(parts) + f'_seed-{seed}'


def run_point(config: str, point: dict, seed: int, fixed: list[str], workdir: str) -> dict | None:
  """Trains (or resumes) one run; its report, or None if it failed."""
  report_path = os.path.join(workdir, 'report.json')
  if not os.path.exists(report_path):
    flags = [f'--config.{k}={v}' for k, v in {**point, 'seed': seed}.items()] + [f'--config.{f}' for f in fixed]
    command = [sys.executable, os.path.join(ROOT, 'train.py'), f'--config={config}', f'--workdir={workdir}',
               '--config.progress_bar=False', *flags]
    print(f'{os.path.basename(workdir)}: ' + ' '.join(command[2:]), flush=True)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode in (130, 143) or done.returncode < 0:  # Ctrl-C or SIGTERM reached the run too, or killed.
      raise KeyboardInterrupt
    if done.returncode:
      print(f'  failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}', file=sys.stderr)
      return None
  with open(report_path) as f:
    return json.load(f)


def summarise(points: list[dict], seeds: list[int], reports: dict) -> list[dict]:
  rows = []
  for point in points:
    done = [reports[run_name(point, s)] for s in seeds if reports.get(run_name(point, s))]
    test = [r['test_accuracy'] for r in done]
    rows.append({**point, 'runs': len(done), 'test_accuracy': float(np.mean(test)) if test else None,
                 'test_accuracy_std': float(np.std(test)) if len(test) > 1 else None,
                 'val_accuracy': float(np.mean([r['val_accuracy'] for r in done if r.get('val_accuracy') is not None]
                                               or [np.nan])),
                 'steps': float(np.mean([r['steps'] for r in done])) if done else None,
                 'train_seconds': float(np.mean([r['train_seconds'] for r in done])) if done else None})
  return rows


def write_outputs(out: str, rows: list[dict], header: str) -> None:
  fields = [k for k in rows[0] if k not in ('runs', 'test_accuracy', 'test_accuracy_std', 'val_accuracy', 'steps',
                                            'train_seconds')]
  pct = lambda v: '–' if v is None or v != v else f'{100 * v:.2f}%'
  lines = [header, '', '| ' + ' | '.join(fields) + ' | test (mean) | ± (std over seeds) | val | steps | seconds | runs |',
           '|' + '---|' * (len(fields) + 6)]
  for r in rows:
    lines.append('| ' + ' | '.join(str(r[f]) for f in fields) + f' | {pct(r["test_accuracy"])} | '
                 f'{pct(r["test_accuracy_std"])} | {pct(r["val_accuracy"])} | {r["steps"] or "–"} | '
                 f'{round(r["train_seconds"]) if r["train_seconds"] else "–"} | {r["runs"]} |')
  atomic_write(os.path.join(out, 'table.md'), ('\n'.join(lines) + '\n').encode())
  atomic_write(os.path.join(out, 'table.json'), (json.dumps({'header': header, 'rows': rows}, indent=2) + '\n').encode())
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  labels = ['\n'.join(f'{f.rsplit(".", 1)[-1]}={r[f]}' for f in fields) for r in rows]
  longest = max(len(line) for label in labels for line in label.split('\n'))  # Characters of 8-point text.
  fig, ax = plt.subplots(figsize=(1.2 + max(1.1, 0.075 * longest) * len(rows), 3.2))
  means = [100 * (r['test_accuracy'] or 0) for r in rows]
  bars = ax.bar(range(len(rows)), means, yerr=[100 * (r['test_accuracy_std'] or 0) for r in rows], capsize=4)
  ax.bar_label(bars, [f'{m:.2f}' if r['runs'] else 'no run' for m, r in zip(means, rows)], fontsize=8,
               label_type='center', color='white')
  ax.set_xticks(range(len(rows)), labels, fontsize=8)
  ax.set_ylabel('test accuracy (%)')
  ax.set_ylim(0, max(means + [1]) * 1.15)
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
  plt.close(fig)
  atomic_write(os.path.join(out, 'plot.png'), buffer.getvalue())


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog='python -m vit_jax.sweep', description=__doc__.split('\n')[0])
  parser.add_argument('--config', required=True, help='a config file, as for train.py')
  parser.add_argument('--out', required=True, help='folder for the runs, table.md, table.json and plot.png')
  parser.add_argument('--grid', action='append', required=True, help='FIELD=V1,V2 (repeat for a product)')
  parser.add_argument('--seeds', default='0', help='comma-separated seeds: every point runs once per seed')
  parser.add_argument('--set', action='append', default=[], help='FIELD=VALUE for every run (e.g. the budget)')
  args = parser.parse_args(argv)
  try:
    points = parse_grid(args.grid)
    seeds = [int(s) for s in args.seeds.split(',')]
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  path, colon, variant = args.config.partition(':')  # configs/writeup_b.py:hybrid
  out, config = os.path.abspath(args.out), os.path.abspath(path) + colon + variant
  os.makedirs(os.path.join(out, 'runs'), exist_ok=True)
  reports = {}
  try:
    for point in points:
      for seed in seeds:
        name = run_name(point, seed)
        reports[name] = run_point(config, point, seed, args.set, os.path.join(out, 'runs', name))
  except KeyboardInterrupt:
    print('Sweep interrupted; the same command goes on where it stopped.', file=sys.stderr)
    return 130
  rows = summarise(points, seeds, reports)
  header = (f'Sweep of `{args.config}` over {", ".join(args.grid)}; seeds {args.seeds}; '
            f'{" ".join(args.set) or "config defaults"}.')
  write_outputs(args.out, rows, header)
  print(f'Wrote {os.path.join(args.out, "table.md")}')
  return 0 if all(reports.values()) else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
