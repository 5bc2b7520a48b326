r"""The streamed pipeline against the in-memory one in the real train loop:
the same config and steps, trained with config.data.pipeline='memory' and
'stream' (alternated, each train.py in its own process), per seed: test and
validation accuracy, training seconds, and how long each step waited for its
batch (p50 / p99 of the time `next()` blocks, from report.json's data_wait).

    mkdir -p /tmp/cifar10 && tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python bench/stream_vs_memory.py --source folder:/tmp/cifar10 --steps 600 --seeds 0,1 \
        --out results/stream_vs_memory_cpu.json

The source must be random-access (a folder, an uncompressed .tar, ArrayRecord
shards): both pipelines read the same images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from record import ROOT, provenance, write_record


def train(config: str, workdir: str, source: str, pipeline: str, seed: int, steps: int, extra: list[str]) -> dict:
  """report.json of one train.py run."""
  args = [sys.executable, 'train.py', f'--config={config}', f'--workdir={workdir}', f'--config.data.source={source}',
          f'--config.data.pipeline={pipeline}', f'--config.seed={seed}', '--config.total_seconds=0',
          f'--config.total_steps={steps}', '--config.progress_bar=False', *extra]
  run = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  if run.returncode:
    sys.exit(f'train.py ({pipeline}, seed {seed}) failed: {run.stderr.strip().splitlines()[-1]}')
  with open(os.path.join(workdir, 'report.json')) as f:
    return json.load(f)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/cpu_quick.py')
  parser.add_argument('--source', required=True, help="a random-access data source, e.g. 'folder:/tmp/cifar10'")
  parser.add_argument('--steps', type=int, default=600)
  parser.add_argument('--seeds', default='0,1')
  parser.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE', help='more config overrides')
  parser.add_argument('--out', default=None)
  args = parser.parse_args()
  started = provenance()
  extra = [f'--config.{item}' for item in args.set]
  runs = []
  with tempfile.TemporaryDirectory() as scratch:
    for seed in (int(s) for s in args.seeds.split(',')):
      for pipeline in ('memory', 'stream'):  # Alternated: the machine's state is shared alike.
        report = train(args.config, os.path.join(scratch, f'{pipeline}-{seed}'), args.source, pipeline, seed,
                       args.steps, extra)
        runs.append({'pipeline': pipeline, 'seed': seed, 'test_accuracy': report['test_accuracy'],
                     'val_accuracy': report['val_accuracy'], 'train_seconds': report['train_seconds'],
                     'data_wait': report['data_wait']})
        print(json.dumps(runs[-1]))
  mean = lambda pipeline, field: sum(r[field] for r in runs if r['pipeline'] == pipeline) / len(
      [r for r in runs if r['pipeline'] == pipeline])
  summary = {p: {'mean_test_accuracy': round(mean(p, 'test_accuracy'), 4),
                 'mean_train_seconds': round(mean(p, 'train_seconds'), 1)} for p in ('memory', 'stream')}
  print(json.dumps(summary))
  if args.out:
    write_record(args.out, started, config=args.config, source=args.source, steps=args.steps, summary=summary,
                 runs=runs)


if __name__ == '__main__':
  main()
