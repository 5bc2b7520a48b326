"""End-to-end training on the committed CIFAR fixture: learning, outputs,
resume after interruption, and the command line."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from conftest import ROOT, tiny_config
from vit_jax.training import checkpoint, loop as train


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """One real run, shared by the tests that read its outputs."""
  workdir = tmp_path_factory.mktemp('run')
  config = tiny_config(total_epochs=25, **{'aug.randaugment_layers': 0})  # 225 steps of 100 images
  return config, workdir, train.train_and_evaluate(config, str(workdir))


def test_tiny_vit_learns_real_cifar_images_well_above_chance(trained):
  _, workdir, report = trained
  assert report['test_accuracy'] >= 0.2  # Chance is 0.10 on the 300 test images.
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  losses = [r['loss'] for r in records if 'loss' in r]
  assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.2


def test_run_writes_metrics_checkpoints_report_and_pictures(trained):
  config, workdir, report = trained
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  steps = [r['step'] for r in records if 'loss' in r]
  assert steps == sorted(set(steps)) and steps[-1] == 25 * 9  # 900 training images: 100 are held out.
  assert all(np.isfinite(r['images_per_sec_per_device']) for r in records if 'images_per_sec_per_device' in r)
  evals = [r for r in records if 'val_accuracy' in r]
  assert len(evals) == 25 and not [r for r in records if 'test_accuracy' in r]  # Test: once, in the report.
  saved = json.loads((workdir / 'report.json').read_text())
  assert saved['test_accuracy'] == report['test_accuracy']
  # The test evaluation used the parameters of the best validation accuracy (the first, on ties).
  best = max(evals, key=lambda r: r['val_accuracy'])
  assert (saved['tested_step'], saved['val_accuracy']) == (best['step'], best['val_accuracy'])
  cm = np.array(saved['confusion_matrix'])
  assert cm.shape == (10, 10) and cm.sum() == 300 and cm.trace() / 300 == pytest.approx(saved['test_accuracy'])
  assert set(saved['per_class_accuracy']) == {'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
                                              'horse', 'ship', 'truck'}
  for picture in ('curves.png', 'confusion_matrix.png', 'predictions.png', 'attention.png'):
    with Image.open(workdir / picture) as img:
      assert img.format == 'PNG' and img.size[0] > 300
  assert not list(workdir.glob('.*.tmp'))
  # The best checkpoint holds the params of the best evaluation.
  model = train.build_model(config, 10)
  params_like = nnx.state(model)
  best = checkpoint.restore_best_params(str(workdir), params_like)
  assert jax.tree.structure(best) == jax.tree.structure(params_like)


def train_until_interrupted(config, workdir, step: int, **options) -> None:
  """Runs `config` in `workdir` until a KeyboardInterrupt after `step` (as
  Ctrl-C does); `options` go to train_and_evaluate."""
  def interrupt(done):
    if done == step:
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, str(workdir), on_step=interrupt, **options)


def final_state(workdir):
  ckpt = checkpoint.Checkpoints(str(workdir))
  state = ckpt.latest.restore(ckpt.latest.latest_step())
  ckpt.close()
  return state


@pytest.mark.slow  # Two tiny trainings, one interrupted and resumed: half a minute (as the kill test).
def test_interrupted_run_resumes_to_the_same_parameters(tmp_path):
  config = tiny_config(total_epochs=3, log_every_steps=1, **{'optim.ema_decay': 0.9})
  train.train_and_evaluate(config, str(tmp_path / 'straight'))

  train_until_interrupted(config, tmp_path / 'resumed', 14)  # Mid-epoch, after the epoch-1 checkpoint.
  assert final_state(tmp_path / 'resumed')['step'] == 14
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))

  expected, got = final_state(tmp_path / 'straight'), final_state(tmp_path / 'resumed')
  assert expected['step'] == got['step'] == 27
  for name in ('params', 'ema_params', 'opt_state'):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), expected[name], got[name])
  assert not np.allclose(expected['params']['head']['kernel']['value'], expected['ema_params']['head']['kernel']['value'])
  steps = [json.loads(line)['step'] for line in (tmp_path / 'resumed' / 'metrics.jsonl').read_text().splitlines()
           if 'loss' in line]
  assert steps == list(range(1, 28))  # Logged once each, no repeats after the resume.


def test_resuming_with_another_model_is_a_clear_error(tmp_path):
  train.train_and_evaluate(tiny_config(total_epochs=1), str(tmp_path))
  other = tiny_config(total_epochs=2, **{'model.dim': 32})
  with pytest.raises(train.ConfigError, match=r'holds a run started with other settings \(model.dim 64 -> 32, '):
    train.train_and_evaluate(other, str(tmp_path))
  with pytest.raises(train.ConfigError, match='does not match this config'):  # Changes allowed, but not this one.
    train.train_and_evaluate(other, str(tmp_path), resume_with_changes=True)


def test_diverging_run_stops_with_a_clear_error(tmp_path):
  config = tiny_config(total_epochs=1, log_every_steps=1, **{'optim.lr': 1e30, 'aug.randaugment_layers': 0})
  with pytest.raises(FloatingPointError, match='not finite'):
    train.train_and_evaluate(config, str(tmp_path))


def test_config_errors_are_clear(tmp_path):
  with pytest.raises(train.ConfigError, match='exactly one'):
    train.train_and_evaluate(tiny_config(total_steps=5), str(tmp_path))
  with pytest.raises(train.ConfigError, match='batch_size'):
    train.train_and_evaluate(tiny_config(batch_size=5000), str(tmp_path))
  with pytest.raises(train.ConfigError, match='config.model'):
    train.build_model(tiny_config(**{'model.depht': 3}), 10)


def run_cli(*args, cwd=ROOT):
  return subprocess.run([sys.executable, 'train.py', *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_rejects_an_unknown_config_key_in_one_line():
  result = run_cli('--config', 'configs/cpu_quick.py', '--config.optim.lrr=1')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      'error: bad config override (\'lrr\' Did you mean "lr" instead of "lrr"?); see the fields of the config file.']


def test_cli_splits_the_cpu_into_config_cpu_devices(tmp_path):
  result = run_cli('--config=tests/tiny_train_config.py', f'--workdir={tmp_path}', '--config.cpu_devices=2',
                   '--config.total_epochs=1', '--config.aug.randaugment_layers=0')
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads((tmp_path / 'report.json').read_text())['devices'] == 2  # JAX's default on a CPU is one.


def test_cli_missing_data_is_one_sentence(tmp_path):
  result = run_cli('--config', 'configs/cpu_quick.py', '--config.data.source=folder:/nowhere',
                   f'--workdir={tmp_path}', '--config.model.stem=conv',
                   '--config.model.stem_width=16')  # A model field that the config file leaves unset: accepted.
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith("error: image folder '/nowhere' does not exist")
  assert 'Traceback' not in result.stderr
