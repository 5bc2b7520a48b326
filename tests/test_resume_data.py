"""A run resumed over changed data: refused in one line naming the splits;
with --resume_with_changes it goes on and the validation images it started
with (those still there) stay out of training. The validation split is drawn
by a hash of each image's name, so other images come and go around it."""

import json
import shutil
import tarfile

import pytest

from conftest import tiny_config
from test_train import train_until_interrupted
from tiny_train_config import FIXTURE
from vit_jax import data
from vit_jax.training import loop as train
from vit_jax.training.validate import ConfigError


def test_the_held_out_images_do_not_depend_on_the_others():
  keys = [f'cls/{k:04d}.jpg' for k in range(500)]
  _, held = data.held_out(keys, 50)
  chosen = {keys[i] for i in held}
  more = keys + [f'cls/new{k}.jpg' for k in range(5)]
  fewer = [k for k in keys if k not in sorted(chosen)[:3]]
  for other in (more, fewer, keys[::-1]):
    _, again = data.held_out(other, 50)
    # Each image is ranked by its own name: at most as many leave as were added or removed.
    assert len(chosen & {other[i] for i in again}) >= 50 - 5
  _, kept = data.held_out(more, 50, keep=sorted(chosen))
  assert {more[i] for i in kept} == chosen


@pytest.fixture
def folder(tmp_path):
  with tarfile.open(FIXTURE) as tar:
    tar.extractall(tmp_path / 'images', filter='data')
  return tmp_path / 'images'


@pytest.mark.parametrize('pipeline', ['memory', 'stream'])
def test_changed_data_is_refused_then_resumed_with_the_old_validation_images(folder, tmp_path, pipeline):
  if pipeline == 'stream':
    pytest.importorskip('grain')
  config = tiny_config(total_epochs=2, **{'data.source': f'folder:{folder}', 'data.pipeline': pipeline,
                                          'data.workers': 0, 'aug.randaugment_layers': 0})
  workdir = tmp_path / 'run'
  train_until_interrupted(config, workdir, step=9)  # Epoch 1 evaluated and saved; killed in the second.
  record = json.loads((workdir / 'data.json').read_text())
  old_val = set(record['val_keys'])
  assert len(old_val) == 100 and record['listings']['train']['images'] == 1000
  removed = sorted(old_val)[:3]
  for key in removed:
    (folder / 'train' / key).unlink()
  for k in range(5):
    shutil.copy(folder / 'train' / 'cat' / '0050.jpg', folder / 'train' / 'cat' / f'new{k}.jpg')
  with pytest.raises(ConfigError, match=r"holds a run started on other data \(train 1000 -> 1002 images") as raised:
    train.train_and_evaluate(config, str(workdir))
  assert '\n' not in str(raised.value) and '--resume_with_changes' in str(raised.value)
  report = train.train_and_evaluate(config, str(workdir), resume_with_changes=True)
  assert report['steps'] == 18 and report['num_val_images'] == 97
  record = json.loads((workdir / 'data.json').read_text())
  assert set(record['val_keys']) == old_val - set(removed)
  assert (workdir / 'data_until_step_9.json').exists()
