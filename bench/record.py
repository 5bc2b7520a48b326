"""What every benchmark result names: command, commit, host and date."""

import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_cpu() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    model = platform.processor() or platform.machine()
  return f'{model}, {os.cpu_count()} cores'


def write_record(path: str, **fields) -> None:
  """Writes fields, after the command, commit, date and host, to JSON at `path` atomically."""
  sys.path.insert(0, ROOT)
  from vit_jax.report import atomic_write
  commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
  dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
  record = {'command': 'python ' + ' '.join(sys.argv), 'commit': commit + ('+uncommitted changes' if dirty else ''),
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'host': host_cpu(), **fields}
  atomic_write(path, (json.dumps(record, indent=2) + '\n').encode())
