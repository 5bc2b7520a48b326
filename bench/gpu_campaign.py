r"""The GPU campaign in one command: what to measure first whenever a GPU is lent.

    python bench/gpu_campaign.py --out results/gpu_campaign     # data: .data/cifar10-jpeg.tar.gz
    python bench/gpu_campaign.py --smoke --out /tmp/campaign        # every part for a few steps, on CPU

Within --minutes (9) on one GPU, into one folder:
  device.json            the device, driver and library versions, command, commit, date;
  throughput_ti4.json    bf16 train-step throughput of vit_jax against timm eager and timm + torch.compile at
  throughput_s4.json     DeiT-Ti/4 and DeiT-S/4, batch 256, sides alternated (bench/train_throughput.py);
  deit_ti/               configs/deit_ti.py trained for the time left (its report, metrics log, checkpoints);
  summary.json           the throughputs, the accuracy curve (validation accuracy by epoch and second) and the
                         seconds to 80 / 85 / 90% validation accuracy, and the test accuracy.
The data: the CIFAR-10 JPEG archive copied into .data/ (git-ignored; the device tool's `carry` takes it along:
the device machine reaches no network and not ../shared):

    mkdir -p .data && cp ../shared/data/cifar10-jpeg.tar.gz .data/
    run(command='python bench/gpu_campaign.py --out results/gpu_campaign', carry=['.data'], timeout_s=600)
--smoke runs the same parts on CPU for a few steps (tiny shapes, the test fixture), so the script is known to work
before a GPU is ever lent (tests/test_gpu_campaign.py).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from record import ROOT, provenance, write_record

SHAPES = {'ti4': dict(dim=192, depth=12, heads=3), 's4': dict(dim=384, depth=12, heads=6)}  # DeiT-Ti/4, DeiT-S/4.
TARGETS = (0.80, 0.85, 0.90)
MARGIN_SECONDS = 75  # Data loading, compiling and the final test evaluation come on top of a training budget.


def run(args: list[str], log: str, timeout: float) -> None:
  """Runs a command from the repository, its output in `log`; exits in one line if it fails."""
  with open(log, 'w') as f:
    code = subprocess.run(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
  if code:
    with open(log) as f:
      last = (f.read().strip().splitlines() or ['(no output)'])[-1]
    sys.exit(f'{" ".join(args[1:3])} failed ({last}); see {log}')


def device_record() -> dict:
  import jax
  record = {'jax': jax.__version__, 'devices': [str(d) for d in jax.devices()],
            'device_kind': jax.devices()[0].device_kind, 'python': platform.python_version()}
  try:
    record['nvidia_smi'] = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
                                           '--format=csv,noheader'], capture_output=True, text=True,
                                          timeout=30).stdout.strip()
  except (OSError, subprocess.TimeoutExpired):
    record['nvidia_smi'] = None
  try:
    import torch
    record['torch'] = torch.__version__
    record['torch_cuda'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
  except ImportError:
    record['torch'] = None
  return record


def curve(workdir: str) -> dict:
  """The validation accuracy by epoch and second, the seconds to each target, the test accuracy."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  points = [(r['epoch'], r['elapsed_seconds'], r['val_accuracy']) for r in records if 'val_accuracy' in r]
  reached = {f'{t:.0%}': next((s for _, s, a in points if a >= t), None) for t in TARGETS}
  with open(os.path.join(workdir, 'report.json')) as f:
    report = json.load(f)
  return {'curve': [{'epoch': e, 'seconds': s, 'val_accuracy': a} for e, s, a in points],
          'seconds_to_val_accuracy': reached, 'test_accuracy': report['test_accuracy'], 'steps': report['steps'],
          'train_seconds': report['train_seconds']}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', required=True, help='The results folder.')
  parser.add_argument('--data', default=os.path.join(ROOT, '.data', 'cifar10-jpeg.tar.gz'))
  parser.add_argument('--minutes', type=float, default=9.0, help='The whole campaign, throughput included.')
  parser.add_argument('--smoke', action='store_true', help='Every part for a few steps on CPU.')
  args = parser.parse_args()
  started, start = provenance(), time.monotonic()
  os.makedirs(args.out, exist_ok=True)
  if not args.smoke and not os.path.isfile(args.data):
    sys.exit(f'no data at {args.data!r}: copy ../shared/data/cifar10-jpeg.tar.gz there (git-ignored, carried).')
  write_record(os.path.join(args.out, 'device.json'), started, **device_record())

  throughput = {}
  for name, dims in SHAPES.items():
    if args.smoke:
      dims = dict(dim=32, depth=1, heads=2)
    out = os.path.join(args.out, f'throughput_{name}.json')
    options = (['--dtype', 'float32', '--batch-size', '8', '--steps', '2', '--warmup', '1', '--rounds', '1']
               if args.smoke else ['--dtype', 'bfloat16', '--batch-size', '256', '--steps', '30', '--warmup', '5',
                                   '--rounds', '2'])
    run([sys.executable, 'bench/train_throughput.py', '--sides', 'vit_jax,timm,timm-compile', '--patch', '4',
         '--dim', str(dims['dim']), '--depth', str(dims['depth']), '--heads', str(dims['heads']), *options,
         '--out', out], os.path.join(args.out, f'throughput_{name}.log'), timeout=1200)
    with open(out) as f:
      throughput[name] = {k: v for k, v in json.load(f).items() if k not in started}

  workdir = os.path.join(args.out, 'deit_ti')
  seconds = max(30.0, args.minutes * 60 - (time.monotonic() - start) - MARGIN_SECONDS)
  training = (['--config=tests/tiny_train_config.py', '--config.total_epochs=2'] if args.smoke else
              ['--config=configs/deit_ti.py', f'--config.data.source=folder:{os.path.abspath(args.data)}',
               '--config.total_epochs=0', f'--config.total_seconds={seconds:.0f}', '--config.eval_every_epochs=1'])
  run([sys.executable, 'train.py', *training, f'--workdir={workdir}', '--config.progress_bar=False'],
      os.path.join(args.out, 'deit_ti.log'), timeout=args.minutes * 60 + 600)
  write_record(os.path.join(args.out, 'summary.json'), started, smoke=args.smoke, throughput=throughput,
               deit_ti=curve(workdir), campaign_seconds=round(time.monotonic() - start, 1))
  print(f'Done in {time.monotonic() - start:.0f} s; results in {args.out!r}.')


if __name__ == '__main__':
  main()
