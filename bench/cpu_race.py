r"""The ten-minute CPU race: the main job against the same recipe in PyTorch.

    python bench/cpu_race.py --rounds 2 --out results/cpu_race.json

Runs `python train.py --config configs/cpu_quick.py` (vit_jax) and
bench/cpu_recipe_torch.py (PyTorch; `--torch-compile` for its
torch.compile variant) under the same training budget, each in its own
process, alternated (A B A B ...: the host's speed drifts, and torch's and
XLA's thread pools must never share one), and reports each run's test
accuracy, validation accuracy, steps and training seconds, the seconds of a
full-size step, a 16x16 step and an evaluation in its last budget plan,
and the medians per side. The load average before each run is recorded
(time on an otherwise idle machine), and whether train.py found its
compiled steps in its cache (~/.cache/vit_jax/xla, from an earlier run of
the same code): a user's second run starts with them. Both sides read the
same data and hold out the same validation images; data loading and the
final test evaluation come on top of the budget on both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from record import CIFAR10_JPEG, ROOT, provenance, write_record

sys.path.insert(0, ROOT)
from vit_jax.cache import compilation_cache_dir  # noqa: E402  (no JAX is imported)

PLAN_TIMES = ('step_seconds', 'low_res_step_seconds', 'eval_seconds')  # Each side's last plan: what a step costs.
BUDGET_FIELDS = ('config.total_seconds', 'config.total_steps', 'config.total_epochs')


def run_vit_jax(args, workdir: str) -> dict:
  cache = compilation_cache_dir()
  warm = os.path.isdir(cache) and any('train_step' in name for name in os.listdir(cache))
  command = [sys.executable, 'train.py', '--config=configs/cpu_quick.py', f'--workdir={workdir}',
             f'--config.data.source=folder:{args.data}', f'--config.data.val_size={args.val_size}',
             f'--config.total_seconds={args.seconds}', '--config.progress_bar=False', *args.set]
  _run(command, 'train.py')
  with open(os.path.join(workdir, 'report.json')) as f:
    report = json.load(f)
  return dict(test_accuracy=report['test_accuracy'], val_accuracy=report['val_accuracy'], steps=report['steps'],
              train_seconds=report['train_seconds'], **{key: report['plan'][key] for key in PLAN_TIMES},
              compiled_steps_cached_before=warm)


def run_pytorch(args, workdir: str, compile_: bool) -> dict:
  os.makedirs(workdir)
  out = os.path.join(workdir, 'result.json')
  command = [sys.executable, 'bench/cpu_recipe_torch.py', f'--data={args.data}', f'--val-size={args.val_size}',
             f'--seconds={args.seconds}', f'--out={out}', *(['--compile'] if compile_ else [])]
  _run(command, 'bench/cpu_recipe_torch.py')
  with open(out) as f:
    result = json.load(f)
  return {key: result[key] for key in ('test_accuracy', 'val_accuracy', 'steps', 'train_seconds', *PLAN_TIMES)}


def _run(command: list[str], name: str) -> None:
  run = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  if run.returncode:
    sys.exit(f'{name} failed: {(run.stderr.strip().splitlines() or ["(no output)"])[-1]}')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--seconds', type=float, default=600.0, help='The training budget of every run.')
  parser.add_argument('--torch-compile', action='store_true', help='Race PyTorch with torch.compile.')
  parser.add_argument('--data', default=CIFAR10_JPEG, help='A CIFAR-10-shaped image folder or .tar.gz of one.')
  parser.add_argument('--val-size', type=int, default=5000)
  parser.add_argument('--set', action='append', default=[], metavar='--config.FIELD=VALUE',
                      help='more train.py overrides (the PyTorch side does not take them: keep the recipe the same)')
  parser.add_argument('--out')
  args = parser.parse_args()
  if args.rounds < 1 or not args.seconds > 0:
    parser.error('--rounds must be at least 1 and --seconds positive.')
  if any(override.lstrip('-').split('=')[0] in BUDGET_FIELDS for override in args.set):
    parser.error('the budget is --seconds, the same for both sides: --set may not change it.')
  started = provenance()
  torch_side = 'pytorch + torch.compile' if args.torch_compile else 'pytorch'
  sides = {'vit_jax': lambda w: run_vit_jax(args, w), torch_side: lambda w: run_pytorch(args, w, args.torch_compile)}
  runs = {side: [] for side in sides}
  with tempfile.TemporaryDirectory() as tmp:
    for round_ in range(args.rounds):
      for side, run in sides.items():
        load = os.getloadavg()[0]
        result = {**run(os.path.join(tmp, f'{side}-{round_}')), 'load_before': round(load, 2)}
        runs[side].append(result)
        print(f'round {round_ + 1}: {side:>24} test {result["test_accuracy"]:.2%}, {result["steps"]} steps, '
              f'{result["train_seconds"]:.0f} s (load {load:.2f} before)', flush=True)
  keys = ('test_accuracy', 'steps', 'train_seconds', *PLAN_TIMES)
  medians = {side: {key: statistics.median(r[key] for r in results) for key in keys} for side, results in runs.items()}
  for side, m in medians.items():
    print(f'{side:>24}: test {m["test_accuracy"]:.2%} (median of {args.rounds}), {m["steps"]:.0f} steps')
  if args.out:
    write_record(args.out, started, budget_seconds=args.seconds, rounds=args.rounds, medians=medians, runs=runs)


if __name__ == '__main__':
  main()
