"""train.py against hostile input and interruptions, as a subprocess: a bad
flag or config value is one line (exit 2) before any work; killed or stopped
at any moment (compiling, evaluating, writing a checkpoint), a run resumes to
the same parameters, metrics log and best checkpoint as one never stopped; a
damaged checkpoint falls back to the one before it."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import ROOT, tiny_config
from vit_jax.training import checkpoint, loop as train
from vit_jax.data import DataError

CONFIG = 'tests/tiny_train_config.py'


def command(workdir, *args):
  return [sys.executable, 'train.py', f'--config={CONFIG}', f'--workdir={workdir}', *args]


def run(workdir, *args, timeout=300):
  return subprocess.run(command(workdir, *args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# Config values, checked in-process by the entry train.py calls (its CLI turns
# ConfigError and DataError into one line, exit 2, as the CLI cases below show):
# (overrides, a phrase of the message)
CONFIG_CASES = [
    ({'batch_size': 0}, 'config.batch_size=0: must be a positive integer'),
    ({'batch_size': -100}, 'config.batch_size=-100: must be a positive integer'),
    ({'eval_batch_size': 0}, 'config.eval_batch_size=0'),
    ({'optim.lr': -0.001}, 'config.optim.lr=-0.001: must be a positive number'),
    ({'optim.lr': float('nan')}, 'config.optim.lr=nan'),
    ({'optim.lr': float('inf')}, 'config.optim.lr=inf'),
    ({'optim.weight_decay': -1.0}, 'config.optim.weight_decay'),
    ({'optim.b2': 1.0}, 'config.optim.b2=1.0: must be a number in [0, 1)'),
    ({'optim.ema_decay': 1.5}, 'config.optim.ema_decay'),
    ({'total_epochs': -2.0}, 'config.total_epochs=-2'),
    ({'total_epochs': 0.0}, 'give exactly one of config.total_epochs, config.total_steps and config.total_seconds'),
    ({'total_steps': 5}, 'give exactly one of'),
    ({'total_seconds': 60.0}, '(got total_epochs and total_seconds)'),
    ({'total_epochs': 0.0, 'total_seconds': -5.0}, 'config.total_seconds=-5.0: must be a number >= 0'),
    ({'data.val_size': -1}, 'config.data.val_size=-1: must be an integer >= 0'),
    ({'data.val_size': 1000}, 'config.data.val_size=1000 holds out all 1000 training images'),
    ({'total_epochs': 0.01}, 'the run would have 0 steps'),
    ({'schedule.warmup_epochs': 5.0}, 'the warmup (45 steps) is longer than the run (18 steps)'),
    ({'schedule.decay_type': 'linear'}, "config.schedule.decay_type='linear': must be 'cosine' or 'onecycle'"),
    ({'log_every_steps': 0}, 'config.log_every_steps=0'),
    ({'eval_every_epochs': 0}, 'config.eval_every_epochs=0'),
    ({'checkpoint_every_epochs': -1}, 'config.checkpoint_every_epochs=-1'),
    ({'data.image_size': 0}, 'config.data.image_size=0'),
    ({'data.std': (0.2, 0.0, 0.2)}, 'config.data.std'),
    ({'aug.label_smoothing': 1.0}, 'config.aug.label_smoothing=1.0'),
    ({'aug.randaugment_magnitude': 50.0}, 'must be a number in [0, 10]'),
    ({'aug.crop_padding': -4}, 'config.aug.crop_padding=-4'),
    ({'model.name': 'vit_huge'}, "unknown model 'vit_huge'"),
    ({'loss': 'hinge'}, "config.loss='hinge'"),
    ({'optim.name': 'lion'}, "config.optim.name='lion'"),
    ({'model.stem': 'swin'}, "stem must be one of 'patch', 'conv', 'resnet'"),
    ({'distill.kind': 'medium'}, "config.distill.kind='medium'"),
    ({'distill.alpha': 2.0}, 'config.distill.alpha=2.0: must be a number in [0, 1]'),
    ({'distill.teacher_workdir': '/nonexistent'}, 'no finished training run there'),
    ({'model.patch_size': 5}, 'image_size 32 is not a multiple of patch_size 5'),
    ({'model.num_heads': 3}, 'dim 64 is not divisible by num_heads 3'),
    ({'model.depth': 0}, 'depth must be a positive integer'),
    ({'model.dropout': 1.5}, 'dropout must be in [0, 1)'),
    ({'model.dtype': 'float8'}, "dtype must be 'float32', 'bfloat16' or 'float16'"),
    ({'batch_size': 5000}, 'is larger than the 900 training images left after holding out config.data.val_size=100.'),
    ({'data.source': 'folder:/nowhere'}, "image folder '/nowhere' does not exist"),
    ({'data.source': 'folder:train.py'}, "cannot read the archive 'train.py'"),
    ({'data.source': 'imagenet'}, "unknown data source 'imagenet'"),
]


@pytest.mark.parametrize('overrides, phrase', CONFIG_CASES, ids=[str(c[0]) for c in CONFIG_CASES])
def test_bad_config_values_are_one_line_before_any_work(tmp_path, overrides, phrase):
  with pytest.raises((train.ConfigError, DataError)) as raised:
    train.train_and_evaluate(tiny_config(**overrides), str(tmp_path / 'run'))
  message = str(raised.value)
  assert phrase in message and '\n' not in message, message
  assert not (tmp_path / 'run' / 'checkpoints').exists()


# The command line itself: (flags, a phrase of the one-line message)
CLI_CASES = [
    (['--config.batch_size=0'], 'config.batch_size=0: must be a positive integer'),  # A ConfigError,
    (['--config.data.source=folder:/nowhere'], "image folder '/nowhere' does not exist"),  # a DataError.
    (['--config.batch_size=30'], 'must be a multiple of the'),  # With 4 simulated devices (see XLA_FLAGS below).
    (['--config.test_time_flip=maybe'], 'test_time_flip'),
    (['--config.model.depht=3'], 'Did you mean "depth"'),
    (['--config.optim.lrr=1'], 'Did you mean "lr"'),
    (['--config.batch_size=many'], "invalid literal for int() with base 10: 'many'"),
    (['--config.cpu_devices=-1'], 'config.cpu_devices=-1: must be an integer >= 0'),
    (['--no_such_flag'], 'Unknown command line flag'),
    (['extra'], "unexpected arguments: 'extra'"),
    (['--config=configs/none.py'], "cannot load the config file: "),
    (['--config=configs/writeup_b.py:huge'], 'configs/writeup_b.py:huge: choose one of plain, conv, hybrid'),
    (['--workdir=README.md'], "--workdir 'README.md' cannot be used"),
]


def check_case(tmp_path, k, args, phrase):
  workdir = tmp_path / f'case{k}'
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  result = subprocess.run(command(workdir, *args), cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
  lines = result.stderr.strip().splitlines()
  problems = [
      result.returncode != 2 and f'exit status {result.returncode}',
      'Traceback' in result.stderr and 'a traceback',
      not (len(lines) == 1 and lines[0].startswith('error: ') and phrase in lines[0]) and f'not {phrase!r} in one line',
      (workdir / 'checkpoints').exists() and 'checkpoints written',
  ]
  problems = [p for p in problems if p]
  return f'{args}: {", ".join(problems)}; stderr: {lines[-3:]}' if problems else None


def test_bad_flags_are_one_line_before_any_work(tmp_path):
  with ThreadPoolExecutor(3) as pool:
    outcomes = list(pool.map(lambda case: check_case(tmp_path, case[0], *case[1]), enumerate(CLI_CASES)))
  failures = [o for o in outcomes if o]
  assert not failures, '\n'.join(failures)


def test_a_config_file_that_does_not_load_is_one_line(tmp_path):
  broken = tmp_path / 'broken.py'
  broken.write_text('def get_config(:\n')
  result = run(tmp_path / 'run', f'--config={broken}')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith('error: ')


def test_divergence_is_one_line_and_keeps_no_temporary_checkpoint(tmp_path):
  result = run(tmp_path, '--config.optim.lr=1e30', '--config.log_every_steps=1')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and re.fullmatch(
      r'error: training diverged: the loss or gradient norm is not finite at step \d+; lower config.optim.lr or '
      r'set config.optim.grad_clip_norm.', lines[0]), lines
  assert not list(tmp_path.rglob('*tmp*'))


def test_resuming_with_other_settings_is_refused_and_keeps_the_config(tmp_path, capsys):
  train.train_and_evaluate(tiny_config(total_epochs=1), str(tmp_path))
  original = (tmp_path / 'config.json').read_text()
  result = run(tmp_path, '--config.total_epochs=1', '--config.batch_size=50')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines() == [
      f'error: {str(tmp_path)!r} holds a run started with other settings (batch_size 100 -> 50); use another --workdir, '
      'or pass --resume_with_changes to go on with the new ones.']
  assert (tmp_path / 'config.json').read_text() == original
  # Settings that do not change the computation may change.
  train.train_and_evaluate(tiny_config(total_epochs=1, log_every_steps=2), str(tmp_path))
  # An explicit override goes on, and keeps the old settings beside the new.
  capsys.readouterr()
  train.train_and_evaluate(tiny_config(total_epochs=2), str(tmp_path), resume_with_changes=True)
  assert 'Resuming with changed settings: total_epochs 1.0 -> 2.0.\n' in capsys.readouterr().out  # Only that.
  assert json.loads((tmp_path / 'config_until_step_9.json').read_text())['total_epochs'] == 1
  assert json.loads((tmp_path / 'config.json').read_text())['total_epochs'] == 2
  assert json.loads((tmp_path / 'report.json').read_text())['steps'] == 18


# ------------------------------------------------------------ interruptions

KILL_CONFIG = ['--config.total_epochs=3', '--config.aug.randaugment_layers=0', '--config.optim.ema_decay=0.9']
TIMING = ('images_per_sec_per_device', 'elapsed_seconds')


def outcome(workdir):
  """What a finished run leaves: final state, metrics log, best checkpoint, report."""
  records = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
             for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  ckpt = checkpoint.Checkpoints(str(workdir))
  state = ckpt.latest.restore(ckpt.latest_step())
  best_steps = ckpt.best.all_steps()
  ckpt.close()
  params_like = nnx.state(train.build_model(tiny_config(), 10))
  best = checkpoint.restore_best_params(str(workdir), params_like)
  report = json.loads((workdir / 'report.json').read_text())
  return state, records, max(best_steps), best, report['test_accuracy']


def assert_same_outcome(expected, got):
  (state_a, records_a, best_step_a, best_a, acc_a), (state_b, records_b, best_step_b, best_b, acc_b) = expected, got
  assert records_a == records_b
  assert best_step_a == best_step_b and acc_a == acc_b
  for a, b in ((state_a, state_b), (best_a, best_b)):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  result = run(workdir, *KILL_CONFIG)
  assert result.returncode == 0, result.stderr
  return workdir, outcome(workdir)


def compiling(workdir, since):
  """config.json is written just before the first step is compiled."""
  return (workdir / 'config.json').stat().st_mtime > since


def writing_a_checkpoint(workdir, since):
  return any('tmp' in p.name for p in (workdir / 'checkpoints' / 'latest').glob('*'))


def evaluating(workdir, since):
  """A new, complete checkpoint at an epoch's end whose evaluation is not logged yet."""
  saved = {int(p.name) for p in (workdir / 'checkpoints' / 'latest').glob('*')
           if p.name.isdigit() and p.stat().st_mtime > since and (p / 'sha256.json').exists()}
  log = workdir / 'metrics.jsonl'
  logged = {json.loads(line)['step'] for line in log.read_text().splitlines() if 'val_accuracy' in line} \
      if log.exists() else set()
  return any(s % 9 == 0 and s not in logged for s in saved)  # 9 steps per epoch.


def stop_when(workdir, moment, signum, delay=0.0, timeout=120):
  """Starts the run, sends `signum` once `moment(workdir, start time)` holds
  (plus `delay` s); returns (exit status, stderr). A stop while compiling
  runs without the session's compilation cache, so that XLA really compiles."""
  since = time.time()
  env = {k: v for k, v in os.environ.items() if not (moment is compiling and k == 'JAX_COMPILATION_CACHE_DIR')}
  process = subprocess.Popen(command(workdir, *KILL_CONFIG), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
  deadline = time.time() + timeout
  while process.poll() is None and time.time() < deadline:
    try:
      if moment(workdir, since):
        break
    except (OSError, ValueError):  # A file caught mid-write.
      pass
    time.sleep(0.002)
  time.sleep(delay)
  process.send_signal(signum)
  _, stderr = process.communicate(timeout=120)
  return process.returncode, stderr


@pytest.mark.slow  # Five runs of the tiny config, each stopped somewhere else, then one to finish: about 2 minutes.
def test_killed_and_stopped_at_any_moment_resumes_to_the_same_run(tmp_path, uninterrupted):
  reference_dir, expected = uninterrupted
  workdir = tmp_path / 'run'
  rng = random.Random(0)
  stops = [(compiling, signal.SIGTERM, 0.5, 143), (writing_a_checkpoint, signal.SIGKILL, 0.0, -9), (evaluating, signal.SIGKILL, 0.0, -9),
           (evaluating, signal.SIGINT, 0.0, 130), (compiling, signal.SIGKILL, rng.uniform(0, 3), None)]  # None: killed or done.
  for moment, signum, delay, status in stops:
    returncode, stderr = stop_when(workdir, moment, signum, delay)
    assert 'Traceback' not in stderr and 'Segmentation fault' not in stderr
    assert returncode == status or status is None and returncode in (-9, 0), (moment.__name__, returncode, stderr)
  result = run(workdir, *KILL_CONFIG)
  assert result.returncode == 0, result.stderr
  assert_same_outcome(expected, outcome(workdir))
  assert not list(workdir.rglob('*tmp*'))


def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, uninterrupted):
  reference_dir, expected = uninterrupted
  workdir = tmp_path / 'run'
  shutil.copytree(reference_dir, workdir)
  (workdir / 'report.json').unlink()
  latest = workdir / 'checkpoints' / 'latest'
  assert sorted(int(p.name) for p in latest.iterdir()) == [18, 27]  # The last two are kept.
  data = max((p for p in (latest / '27').rglob('*') if p.is_file() and p.name != 'sha256.json'),
             key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])  # Truncated, as by a full disk.
  result = run(workdir, *KILL_CONFIG)
  assert result.returncode == 0, result.stderr
  assert 'warning: the latest checkpoint of step 27 is damaged' in result.stderr
  assert 'Resuming from step 18' in result.stdout
  assert_same_outcome(expected, outcome(workdir))


def test_a_damaged_best_checkpoint_falls_back_to_the_best_before(tmp_path, uninterrupted):
  reference_dir, _ = uninterrupted
  workdir = tmp_path / 'run'
  shutil.copytree(reference_dir, workdir)
  ckpt = checkpoint.Checkpoints(str(workdir))
  step = max(ckpt.best.all_steps())
  older = ckpt.best.restore(step)
  ckpt.save_best(step + 1, jax.tree.map(lambda x: x + 1, older))  # A newer best, then damaged:
  ckpt.close()
  manifest = workdir / 'checkpoints' / 'best' / str(step + 1) / 'sha256.json'
  manifest.write_text(manifest.read_text().replace('"', "'", 1))  # Unreadable checksums.
  params_like = nnx.state(train.build_model(tiny_config(), 10))
  params = checkpoint.restore_best_params(str(workdir), params_like)
  assert len(jax.tree.leaves(params)) == len(jax.tree.leaves(older))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(older)):  # Both in sorted key order.
    np.testing.assert_array_equal(a, b)

# ------------------------------------------------------------------- a full disk

@pytest.fixture
def small_disk(tmp_path):
  """A tmpfs of a given size (remountable), as a full disk; root only."""
  if os.geteuid() != 0 or not shutil.which('mount'):
    pytest.skip('mounting a small tmpfs (a disk that fills up) needs root')
  mount = tmp_path / 'disk'
  mount.mkdir()

  def resize(size: int):
    options = f'size={size}' if not os.path.ismount(mount) else f'remount,size={size}'
    subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(mount)], check=True)
    return mount
  yield resize
  if os.path.ismount(mount):
    subprocess.run(['umount', str(mount)], check=True)


def disk_usage(folder) -> int:
  return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


@pytest.mark.slow  # Two runs on a small tmpfs: half a minute.
def test_a_disk_full_while_checkpointing_is_one_line_and_loses_nothing(uninterrupted, small_disk):
  reference_dir, expected = uninterrupted
  checkpoints = reference_dir / 'checkpoints'
  latest, best = (disk_usage(next((checkpoints / s).iterdir())) for s in ('latest', 'best'))
  disk = small_disk(2 * latest + 2 * best + 64 * 1024)  # Room for two epochs' checkpoints, not for a third.
  workdir = disk / 'run'
  result = run(workdir, *KILL_CONFIG)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and 'Traceback' not in result.stderr and len(lines) == 1, result.stderr
  failed = re.fullmatch(r"error: cannot write the checkpoint of step (\d+) in '.*' \(No space left on device\); the "
                        r'one of step (\d+) is kept, and the same command resumes from it once there is room\.',
                        lines[0])
  assert failed and int(failed[1]) in (18, 27), lines
  small_disk(64 * 1024 * 1024)  # Room again: the same command finishes the run as if never stopped.
  result = run(workdir, *KILL_CONFIG)
  assert result.returncode == 0, result.stderr
  assert re.search(r'Resuming from step (9|18|27) in', result.stdout), result.stdout
  assert_same_outcome(expected, outcome(workdir))
  assert not list(workdir.rglob('*tmp*'))


@pytest.mark.slow
def test_compiled_steps_are_cached_for_the_next_run_and_a_damaged_cache_only_costs_time(tmp_path):
  env = {key: value for key, value in os.environ.items() if key != 'JAX_COMPILATION_CACHE_DIR'}
  env['VIT_JAX_CACHE'] = str(tmp_path / 'cache')  # train.py keeps compiled steps in $VIT_JAX_CACHE/xla.
  runs = {}
  for name in ('first', 'damaged'):
    result = subprocess.run(command(tmp_path / name, '--config.total_epochs=1'), cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0 and 'Traceback' not in result.stderr and 'Warning' not in result.stderr, \
        result.stderr[-2000:]
    runs[name] = json.loads((tmp_path / name / 'report.json').read_text())
    entries = list((tmp_path / 'cache' / 'xla').iterdir())
    assert any('train_step' in entry.name for entry in entries)
    for entry in entries:
      entry.write_bytes(b'damaged')
  assert runs['damaged']['test_accuracy'] == runs['first']['test_accuracy']
