"""train.py on streamed data (config.data.pipeline='stream'): it trains,
evaluates every image once, resumes to the same run, and 'auto' picks the
path by size."""

import json
import tarfile

import jax
import numpy as np
import pytest

pytest.importorskip('grain')

from conftest import tiny_config  # noqa: E402
from test_train import final_state, train_until_interrupted  # noqa: E402
from tiny_train_config import FIXTURE  # noqa: E402
from vit_jax.training import loop as train  # noqa: E402
from vit_jax.data import feeds  # noqa: E402


def streamed(folder, **overrides):
  return tiny_config(**{'data.source': f'folder:{folder}', 'data.pipeline': 'stream', 'data.workers': 0,
                        'aug.randaugment_layers': 0, **overrides})


@pytest.mark.slow  # A streamed training with two workers: half a minute.
def test_a_streamed_run_trains_and_tests_every_image_once(jpeg_folder, tmp_path, capsys):
  result = train.train_and_evaluate(streamed(jpeg_folder, total_epochs=1, **{'data.workers': 2}), str(tmp_path))
  report = json.loads((tmp_path / 'report.json').read_text())
  assert report['num_test_images'] == 300 and sum(sum(row) for row in report['confusion_matrix']) == 300
  assert report['steps'] == 9 and result['test_accuracy'] == report['test_accuracy']
  assert 'Data (streamed, 2 workers): train 900 images in 10 classes; validation 100; test 300.' in \
      capsys.readouterr().out
  assert (tmp_path / 'predictions.png').exists() and (tmp_path / 'attention.png').exists()


@pytest.mark.slow  # Three streamed trainings: about a minute.
def test_an_interrupted_streamed_run_resumes_to_the_same_parameters(jpeg_folder, tmp_path):
  config = streamed(jpeg_folder, total_epochs=2, log_every_steps=1, **{'optim.ema_decay': 0.9})
  train.train_and_evaluate(config, str(tmp_path / 'straight'))

  train_until_interrupted(config, tmp_path / 'resumed', 12)  # Mid-epoch, after the epoch-1 checkpoint.
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  expected, got = final_state(tmp_path / 'straight'), final_state(tmp_path / 'resumed')
  assert expected['step'] == got['step'] == 18
  for name in ('params', 'ema_params', 'opt_state'):
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), expected[name], got[name])
  records = [(tmp_path / run / 'metrics.jsonl').read_text().splitlines() for run in ('straight', 'resumed')]
  strip = lambda lines: [{k: v for k, v in json.loads(line).items() if k not in ('elapsed_seconds',
                                                                                'images_per_sec_per_device')}
                         for line in lines]
  assert strip(records[0]) == strip(records[1])


def test_auto_streams_only_what_does_not_fit_and_lists_the_data_once(jpeg_folder, monkeypatch, capsys):
  from vit_jax.data import sources
  opened = []
  monkeypatch.setattr(sources, 'open_source', lambda spec, split, *a, _open=sources.open_source, **k: (
      opened.append(split), _open(spec, split, *a, **k))[1])
  config = streamed(jpeg_folder, **{'data.pipeline': 'auto', 'data.memory_limit_gb': 0.004})  # 1,000 images: 0.003.
  mesh = jax.make_mesh((jax.device_count(),), ('data',))
  assert isinstance(feeds.open_feed(config, mesh), feeds.InMemory)
  assert 'Data pipeline: memory (the training split is 0.00307 GB decoded' in capsys.readouterr().out
  config.data.memory_limit_gb = 0.002
  opened.clear()
  assert isinstance(feeds.open_feed(config, mesh), feeds.Streamed)
  assert 'Data pipeline: stream' in capsys.readouterr().out
  assert opened == ['train', 'test']


@pytest.mark.slow  # Four streamed runs of train.py, three killed at random moments: about two minutes.
def test_a_streamed_run_killed_at_random_moments_resumes_to_the_same_run(jpeg_folder, tmp_path):
  import os
  import random
  import signal
  import subprocess
  import sys
  import time

  from conftest import ROOT
  from test_train_hardening import assert_same_outcome, outcome
  args = ['--config=tests/tiny_train_config.py', f'--config.data.source=folder:{jpeg_folder}',
          '--config.data.pipeline=stream', '--config.data.workers=2', '--config.total_epochs=3',
          '--config.aug.randaugment_layers=0', '--config.optim.ema_decay=0.9']

  def start(workdir, log):  # Output to a file: no pipe that a worker could hold open.
    return subprocess.Popen([sys.executable, 'train.py', f'--workdir={workdir}', *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(log, 'w'), start_new_session=True)
  straight = start(tmp_path / 'straight', tmp_path / 'straight.log')
  assert straight.wait(timeout=600) == 0, (tmp_path / 'straight.log').read_text()
  rng = random.Random(1)
  for k in range(3):
    process = start(tmp_path / 'killed', tmp_path / f'killed{k}.log')
    time.sleep(rng.uniform(4, 14))  # Loading, compiling, training, evaluating or checkpointing.
    os.killpg(process.pid, signal.SIGKILL)  # The job and its workers, as a scheduler kills a job.
    process.wait(timeout=60)
    assert 'Traceback' not in (tmp_path / f'killed{k}.log').read_text()
  finish = start(tmp_path / 'killed', tmp_path / 'finish.log')
  assert finish.wait(timeout=600) == 0, (tmp_path / 'finish.log').read_text()
  assert_same_outcome(outcome(tmp_path / 'straight'), outcome(tmp_path / 'killed'))


@pytest.mark.slow  # Two streamed trainings, one of them a two-host cluster: a few minutes.
def test_two_hosts_stream_their_shares_and_train_like_one(jpeg_folder, tmp_path):
  from test_parallel import assert_same_run, finish, start
  overrides = {'data.source': f'folder:{jpeg_folder}', 'data.pipeline': 'stream', 'data.workers': 1}
  one = finish(start(tmp_path / 'one', local_devices=2, overrides=overrides))
  two_hosts = finish(start(tmp_path / 'two_hosts', local_devices=1, num_processes=2, overrides=overrides))
  assert one[1]['devices'] == two_hosts[1]['devices'] == 2
  assert_same_run(one, two_hosts)
  report = json.loads((tmp_path / 'two_hosts' / 'report.json').read_text())
  assert report['num_test_images'] == 300 and sum(map(sum, report['confusion_matrix'])) == 300


@pytest.mark.parametrize('fraction,allowed', [(0.0, 0), (0.001, 1)])
def test_max_bad_fraction_allows_that_share_of_the_training_images_and_no_more(tmp_path, fraction, allowed):
  from vit_jax.data import DataError
  folder = tmp_path / 'images'
  with tarfile.open(FIXTURE) as tar:
    tar.extractall(folder, filter='data')
  # One more unreadable image than allowed (about 1,000 training images: 0.001 allows 1).
  for path in [folder / 'train' / 'cat' / '0099.jpg', *(folder / 'train' / 'dog' / f'x{k}.jpg' for k in range(allowed))]:
    path.write_bytes(b'\xff\xd8 not a jpeg')
  config = streamed(folder, total_epochs=1, **{'data.max_bad_fraction': fraction, 'data.val_size': 0})
  with pytest.raises(DataError, match=rf'{allowed + 1} images of the training split cannot be read or decoded'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()  # Failed before its first checkpoint: no work directory left.
