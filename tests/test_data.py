"""Data sources: image folders and archives, TFDS, and bad input."""

import socket
import tarfile

import numpy as np
import pytest
from PIL import Image

from tiny_train_config import FIXTURE
from vit_jax import data
from vit_jax.data import memory
from vit_jax.data import DataError

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


def test_tar_gz_image_folder_loads_both_splits_in_label_order():
  splits = data.load(f'folder:{FIXTURE}')
  train, test = splits['train'], splits['test']
  assert train.images.shape == (1000, 32, 32, 3) and train.images.dtype == np.uint8
  assert test.images.shape == (300, 32, 32, 3)
  assert train.class_names == CIFAR10_CLASSES == test.class_names
  np.testing.assert_array_equal(np.bincount(train.labels), [100] * 10)
  assert 90 < test.images.mean() < 140  # Real photos, not blank decodes.


def test_directory_tree_gives_the_same_arrays_as_the_archive(tmp_path):
  with tarfile.open(FIXTURE) as tar:
    tar.extractall(tmp_path, filter='data')
  from_dir = data.load(f'folder:{tmp_path}', ('test',))['test']
  from_tar = data.load(f'folder:{FIXTURE}', ('test',))['test']
  np.testing.assert_array_equal(from_dir.images, from_tar.images)
  np.testing.assert_array_equal(from_dir.labels, from_tar.labels)


def write_image(path, image):
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path)


def test_odd_images_become_rgb_of_the_configured_size(tmp_path):
  write_image(tmp_path / 'train/a/gray.png', Image.new('L', (32, 32), 100))
  write_image(tmp_path / 'train/a/rgba.png', Image.new('RGBA', (32, 32), (10, 20, 30, 0)))
  write_image(tmp_path / 'train/b/big.jpg', Image.new('RGB', (64, 48), (200, 0, 0)))
  write_image(tmp_path / 'train/b/palette.gif', Image.new('P', (32, 32), 3))
  write_image(tmp_path / 'train/b/sixteen.png', Image.fromarray(np.full((32, 32), 40000, np.uint16)))
  ds = data.load(f'folder:{tmp_path}', ('train',), image_size=32)['train']
  assert ds.images.shape == (5, 32, 32, 3) and ds.class_names == ('a', 'b')
  assert tuple(ds.images[0, 0, 0]) == (100, 100, 100)


def test_mixed_sizes_without_image_size_is_a_clear_error(tmp_path):
  write_image(tmp_path / 'train/a/1.png', Image.new('RGB', (32, 32)))
  write_image(tmp_path / 'train/a/2.png', Image.new('RGB', (16, 16)))
  with pytest.raises(DataError, match='different sizes.*image_size'):
    data.load(f'folder:{tmp_path}', ('train',))


def test_corrupt_image_names_the_file(tmp_path):
  write_image(tmp_path / 'train/a/ok.png', Image.new('RGB', (32, 32)))
  (tmp_path / 'train/a/broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
  with pytest.raises(DataError, match='broken.jpg'):
    data.load(f'folder:{tmp_path}', ('train',))


@pytest.mark.parametrize('source,message', [
    ('folder:/no/such/place', 'does not exist'),
    ('imagenet', 'unknown data source'),
])
def test_bad_sources_are_one_sentence(source, message):
  with pytest.raises(DataError, match=message):
    data.load(source)


def test_missing_split_and_not_an_archive(tmp_path):
  write_image(tmp_path / 'train/a/1.png', Image.new('RGB', (32, 32)))
  with pytest.raises(DataError, match='no images under test'):
    data.load(f'folder:{tmp_path}')
  junk = tmp_path / 'junk.tar.gz'
  junk.write_bytes(b'garbage')
  with pytest.raises(DataError, match='cannot read the archive .* not a tar archive'):
    data.load(f'folder:{junk}')


def test_tfds_loading_code_runs_on_mocked_tfds(monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.setattr(memory, '_check_network', lambda: None)
  with tfds.testing.mock_data(num_examples=12):
    splits = data.load('tfds:cifar10', ('train', 'test'))
  assert splits['train'].images.shape == (12, 32, 32, 3) and splits['train'].images.dtype == np.uint8
  assert len(splits['test'].class_names) == 10


def test_tfds_without_network_fails_fast_and_names_the_folder_option(monkeypatch, tmp_path):
  def refuse(*args, **kwargs):
    raise OSError('network unreachable')
  monkeypatch.setattr(socket, 'create_connection', refuse)
  for var in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY'):
    monkeypatch.delenv(var, raising=False)
  with pytest.raises(DataError, match=r'no network.*--config.data.source=folder:'):
    data.load('tfds:cifar10', ('train',), data_dir=str(tmp_path))
