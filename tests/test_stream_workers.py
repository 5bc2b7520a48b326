"""A streamed run's Grain workers cannot outlive their trainer: killed with
SIGKILL alone (as the OOM killer does), at random moments, with 0, 1 and 4
workers, no process of the run is left a few seconds later (checked by its
session: the trainer's, every worker's and multiprocessing's resource
tracker's)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('grain')

from conftest import ROOT  # noqa: E402

BOUND = 10.0  # Seconds for the workers to notice (stream.PARENT_POLL_SECONDS) and end.


def session_processes(session: int) -> list[tuple[int, str]]:
  """(pid, command) of the live processes of `session` (zombies left out)."""
  found = []
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        command = f.read().replace(b'\0', b' ').decode(errors='replace')[:120]
    except OSError:
      continue
    if fields[0] != 'Z' and int(fields[3]) == session:  # state, ppid, pgrp, session
      found.append((int(entry), command))
  return found


@pytest.mark.slow  # Six trainers started and killed: about two minutes.
@pytest.mark.parametrize('workers', [0, 1, 4])
def test_a_trainer_killed_alone_leaves_no_process_behind(jpeg_folder, tmp_path, workers):
  rng = random.Random(workers)
  for k in range(2):
    process = subprocess.Popen(
        [sys.executable, 'train.py', '--config=tests/tiny_train_config.py', f'--workdir={tmp_path / "run"}',
         f'--config.data.source=folder:{jpeg_folder}', '--config.data.pipeline=stream',
         f'--config.data.workers={workers}', '--config.total_epochs=20', '--config.aug.randaugment_layers=0'],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(rng.uniform(3, 15))  # Importing, listing, starting workers, compiling or training.
    before = session_processes(process.pid)
    os.kill(process.pid, signal.SIGKILL)  # The trainer alone: its workers get no signal.
    process.wait(timeout=30)
    deadline = time.monotonic() + BOUND
    while session_processes(process.pid) and time.monotonic() < deadline:
      time.sleep(0.2)
    left = session_processes(process.pid)
    if left:
      os.killpg(process.pid, signal.SIGKILL)
    assert not left, f'left after {BOUND:g} s (the run had {len(before)} processes): {left}'
