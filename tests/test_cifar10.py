"""The 'cifar10' source on a machine with nothing but the clone: CIFAR-10 is
found where a copy is, else downloaded once from its home (here a server on
127.0.0.1 serving a small archive in the official binary format, whose size
and SHA-256 stand in for the pinned ones), checked, cached and reused;
damaged or offline, one line says what to do."""

import hashlib
import io
import tarfile

import numpy as np
import pytest

from conftest import tiny_config
from vit_jax.training import loop as train
from vit_jax.data import DataError, cifar10, memory

CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


def binary_archive(per_batch: int = 60, test: int = 100) -> bytes:
  """The official layout: cifar-10-batches-bin/{data_batch_1-5,test_batch}.bin, batches.meta.txt;
  record k of a batch: label k % 10, every byte of its red plane k, green 2k, blue 3k (mod 256)."""
  def batch(count):
    records = []
    for k in range(count):
      planes = [np.full(1024, (c * k) % 256, np.uint8) for c in (1, 2, 3)]
      records.append(np.concatenate([[k % 10], *planes]).astype(np.uint8).tobytes())
    return b''.join(records)
  files = {f'data_batch_{i}.bin': batch(per_batch) for i in range(1, 6)}
  files.update({'test_batch.bin': batch(test), 'batches.meta.txt': '\n'.join(CLASSES).encode() + b'\n\n'})
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
    for name, content in files.items():
      info = tarfile.TarInfo(f'cifar-10-batches-bin/{name}')
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  return buffer.getvalue()


@pytest.fixture
def home(tmp_path, monkeypatch, http_folder):
  """A machine with nothing but the clone: no copy beside it, an empty cache,
  CIFAR-10's home on 127.0.0.1 serving the small archive as the pinned one."""
  served, url = http_folder
  content = binary_archive()
  (served / cifar10.ARCHIVE).write_bytes(content)
  monkeypatch.setattr(cifar10, 'BESIDE_REPOSITORY', tmp_path / 'nothing')
  monkeypatch.setattr(cifar10, 'SHA256', hashlib.sha256(content).hexdigest())
  monkeypatch.setattr(cifar10, 'SIZE', len(content))
  monkeypatch.setenv('VIT_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setenv(cifar10.MIRROR, f'{url}/{cifar10.ARCHIVE}')
  monkeypatch.delenv('VIT_JAX_DATA', raising=False)
  return served, tmp_path / 'cache' / 'datasets' / cifar10.ARCHIVE, content


def test_it_is_downloaded_once_checked_then_read_from_the_cache(home, capsys):
  served, cached, content = home
  assert cifar10.locate() == str(cached) and cached.read_bytes() == content
  assert 'Downloading CIFAR-10 (once' in capsys.readouterr().err
  (served / cifar10.ARCHIVE).unlink()  # The server is gone: the cached copy serves.
  assert cifar10.locate() == str(cached) and 'Downloading' not in capsys.readouterr().err
  assert sorted(p.name for p in cached.parent.iterdir()) == [cifar10.ARCHIVE]


def test_the_binary_archive_reads_as_the_official_layout(home):
  splits = memory.load('cifar10', ('train', 'test'))
  train_split, test_split = splits['train'], splits['test']
  assert train_split.images.shape == (300, 32, 32, 3) and test_split.images.shape == (100, 32, 32, 3)
  assert train_split.class_names == CLASSES and train_split.labels[:12].tolist() == [*range(10), 0, 1]
  assert train_split.images[7, 5, 9].tolist() == [7, 14, 21]  # Record 7: red 7, green 14, blue 21 everywhere.
  assert train_split.names[7] == 'horse/data_batch_1-00007' and len(set(train_split.names)) == 300
  assert memory.load('cifar10', ('test',), image_size=16)['test'].images.shape == (100, 16, 16, 3)


def test_a_damaged_download_is_refused_and_nothing_is_kept(home):
  served, cached, content = home
  (served / cifar10.ARCHIVE).write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
  with pytest.raises(DataError, match=r'cannot be downloaded \(.*damaged or not the expected file') as raised:
    cifar10.locate()
  assert '\n' not in str(raised.value) and not list(cached.parent.iterdir())


def test_offline_one_line_says_where_to_put_it(home, monkeypatch):
  _, cached, _ = home
  monkeypatch.setenv(cifar10.MIRROR, 'http://127.0.0.1:1/cifar-10-binary.tar.gz')  # Nothing listens.
  with pytest.raises(DataError) as raised:
    memory.load('cifar10')
  message = str(raised.value)
  assert f"put cifar-10-binary.tar.gz (from {cifar10.URL}) in '{cached.parent}'" in message
  assert 'VIT_JAX_DATA' in message and '\n' not in message


def test_a_local_copy_comes_first(home, tmp_path, monkeypatch):
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / cifar10.JPEG_COPY).write_bytes(b'')
  monkeypatch.setenv('VIT_JAX_DATA', str(mine))
  assert cifar10.locate() == str(mine / cifar10.JPEG_COPY)
  monkeypatch.delenv('VIT_JAX_DATA')
  beside = tmp_path / 'shared' / 'data'
  beside.mkdir(parents=True)
  (beside / cifar10.JPEG_COPY).write_bytes(b'')
  monkeypatch.setattr(cifar10, 'BESIDE_REPOSITORY', beside)
  assert cifar10.locate() == str(beside / cifar10.JPEG_COPY)


def test_a_clone_with_nothing_else_trains_on_it(home, tmp_path):
  config = tiny_config(total_epochs=1, batch_size=50, eval_batch_size=50, **{'data.source': 'cifar10',
                                                                               'data.val_size': 50})
  report = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert report['steps'] == 5 and 0.0 <= report['test_accuracy'] <= 1.0
