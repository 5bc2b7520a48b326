"""What every benchmark result names (command, commit, host and date), the
CIFAR-10 copy they read, and their stopwatch."""

import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_JPEG = os.path.join(ROOT, '..', 'shared', 'data', 'cifar10-jpeg.tar.gz')  # The JPEG copy beside the repo.


def time_of(fn) -> float:
  """Wall-clock seconds of fn()."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def host_cpu() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    model = platform.processor() or platform.machine()
  return f'{model}, {os.cpu_count()} cores'


def provenance() -> dict:
  """Command, commit, date and host; call it when the run starts, so that the
  commit is the code that ran even if the tree changes meanwhile."""
  git = lambda *args: subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
  dirty = git('status', '--porcelain', '--untracked-files=no')
  script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)  # As run from the repository's root.
  return {'command': ' '.join(['python', script, *sys.argv[1:]]),
          'commit': git('rev-parse', '--short', 'HEAD') + (' + uncommitted changes' if dirty else ''),
          'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), 'host': host_cpu()}


def write_record(path: str, started: dict, **fields) -> None:
  """Writes provenance() taken at the start, then `fields`, to JSON at `path` atomically."""
  sys.path.insert(0, ROOT)
  from vit_jax.files import atomic_write
  atomic_write(path, (json.dumps({**started, **fields}, indent=2) + '\n').encode())
