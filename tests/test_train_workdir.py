"""One train.py at a time in a work directory: a second one is refused in one
line (exit 2) and changes nothing; a lock left by a killed run blocks nothing;
a work directory that cannot be written is refused before any work."""

import fcntl
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT

CONFIG = 'tests/tiny_train_config.py'


def start(workdir, *args):
  return subprocess.Popen([sys.executable, 'train.py', f'--config={CONFIG}', f'--workdir={workdir}', *args],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_run_on_the_same_workdir_is_refused_while_the_first_holds_it(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  with open(workdir / '.lock-process-0', 'a') as held:  # What a running train.py holds.
    fcntl.flock(held, fcntl.LOCK_EX)
    second = start(workdir)
    _, stderr = second.communicate(timeout=120)
  assert second.returncode == 2, stderr
  assert stderr.splitlines() == [f"error: another train.py is running in --workdir {str(workdir)!r}; wait for it "
                                 'to finish, or use another --workdir.']
  assert sorted(p.name for p in workdir.iterdir()) == ['.lock-process-0']  # Nothing written.


@pytest.mark.slow  # Two trainings at once: half a minute.
def test_two_runs_started_together_one_trains_the_other_is_refused(tmp_path):
  workdir = tmp_path / 'run'
  runs = [start(workdir, '--config.total_epochs=1') for _ in range(2)]
  results = [(p.wait(timeout=300), p.communicate()) for p in runs]
  assert sorted(status for status, _ in results) == [0, 2], results
  refused = next(stderr for status, (_, stderr) in results if status == 2)
  assert 'another train.py is running' in refused and 'Traceback' not in refused
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [(r['step'], 'val_accuracy' in r) for r in records] == [(5, False), (9, False), (9, True)]  # Each once.


@pytest.mark.slow  # A run killed, then one to the end: half a minute.
def test_a_lock_left_by_a_killed_run_blocks_nothing(tmp_path):
  workdir = tmp_path / 'run'
  first = start(workdir, '--config.total_epochs=1')
  deadline = time.time() + 120
  while not (workdir / 'config.json').exists() and time.time() < deadline and first.poll() is None:
    time.sleep(0.01)
  first.kill()
  first.communicate()
  assert (workdir / '.lock-process-0').exists()
  second = start(workdir, '--config.total_epochs=1')
  _, stderr = second.communicate(timeout=300)
  assert second.returncode == 0, stderr
  assert json.loads((workdir / 'report.json').read_text())['steps'] == 9


@pytest.fixture
def unwritable(tmp_path):
  """A folder this process cannot write in: a read-only tmpfs for root (who may
  write anywhere else), a folder without write permission otherwise."""
  folder = tmp_path / 'locked'
  folder.mkdir()
  (folder / 'existing').mkdir()
  if os.geteuid() != 0:
    os.chmod(folder / 'existing', 0o500)
    os.chmod(folder, 0o500)
    yield folder
    os.chmod(folder, 0o700)
    os.chmod(folder / 'existing', 0o700)
    return
  subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(folder)], check=True)
  (folder / 'existing').mkdir()
  subprocess.run(['mount', '-o', 'remount,ro', str(folder)], check=True)
  yield folder
  subprocess.run(['umount', str(folder)], check=True)


@pytest.mark.parametrize('name', ['existing', 'new'])
def test_an_unwritable_workdir_is_exit_status_2_whether_it_exists_or_not(unwritable, name):
  result = subprocess.run([sys.executable, 'train.py', f'--config={CONFIG}', f'--workdir={unwritable / name}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
  assert result.stderr.startswith(f'error: --workdir {str(unwritable / name)!r} cannot be used (')
  assert result.stderr.endswith('; give a folder you can write to.\n')
