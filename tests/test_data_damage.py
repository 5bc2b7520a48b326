"""A data set is read completely or refused: archives cut or damaged at many
places, of both kinds (.tar, .tar.gz), never train on fewer images; what was
read is counted once; an empty class folder is said."""

import gzip
import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from vit_jax import data
from vit_jax.data import DataError

CLASSES, PER_CLASS = ('ant', 'bee', 'cat'), {'train': 6, 'test': 2}


def png(value: int) -> bytes:
  buffer = io.BytesIO()
  Image.new('RGB', (8, 8), (value, 0, 0)).save(buffer, format='PNG')
  return buffer.getvalue()


def tar_bytes() -> bytes:
  """A complete .tar of split/class/image.png, with folder entries, as tar writes it."""
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode='w') as tar:
    for split, count in PER_CLASS.items():
      for cls in CLASSES:
        folder = tarfile.TarInfo(f'{split}/{cls}')
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for k in range(count):
          content = png(10 * k)
          member = tarfile.TarInfo(f'{split}/{cls}/{k:04d}.png')
          member.size = len(content)
          tar.addfile(member, io.BytesIO(content))
  return buffer.getvalue()


TAR = tar_bytes()
GZ = gzip.compress(TAR, mtime=0)
MEMBER_OFFSETS = [m.offset for m in tarfile.open(fileobj=io.BytesIO(TAR))]  # Where each header starts.
END = MEMBER_OFFSETS[-1] + 512 + 512  # After the last member (a header and one block of data).


def flip(content: bytes, at: int) -> bytes:
  return content[:at] + bytes([content[at] ^ 0x5A]) + content[at + 1:]


# (name, archive suffix, bytes): each is damaged or cut; none may load.
DAMAGED = [
    *[(f'tar cut at member {k}', '.tar', TAR[:MEMBER_OFFSETS[k]]) for k in (1, 10, 20, len(MEMBER_OFFSETS) - 1)],
    ('tar cut after its last member, before the end blocks', '.tar', TAR[:END]),
    ('tar cut inside a member', '.tar', TAR[:MEMBER_OFFSETS[12] + 512 + 100]),
    ('tar cut inside a header', '.tar', TAR[:MEMBER_OFFSETS[7] + 200]),
    ('tar with a header in the middle damaged', '.tar', flip(TAR, MEMBER_OFFSETS[15] + 10)),
    ('tar with the last header damaged', '.tar', flip(TAR, MEMBER_OFFSETS[-1] + 20)),
    ('tar with its end-of-archive block damaged', '.tar', flip(TAR, END + 100)),
    *[(f'tar.gz cut at {p}%', '.tar.gz', GZ[:len(GZ) * p // 100]) for p in (5, 30, 50, 90, 99)],
    ('tar.gz without its length', '.tar.gz', GZ[:-4]),
    ('tar.gz without its checksum and length', '.tar.gz', GZ[:-8]),
    ('tar.gz with its checksum damaged', '.tar.gz', flip(GZ, len(GZ) - 6)),
    ('tar.gz with its length damaged', '.tar.gz', flip(GZ, len(GZ) - 2)),
    ('tar.gz with its data damaged near the end', '.tar.gz', flip(GZ, len(GZ) - 30)),
    ('tar.gz with its data damaged in the middle', '.tar.gz', flip(GZ, len(GZ) // 2)),
    ('tar.gz of a tar cut at a member', '.tar.gz', gzip.compress(TAR[:MEMBER_OFFSETS[20]], mtime=0)),
    ('tar.gz of a tar with a damaged header', '.tar.gz', gzip.compress(flip(TAR, MEMBER_OFFSETS[9] + 3), mtime=0)),
]


def write(tmp_path, suffix: str, content: bytes) -> str:
  path = tmp_path / f'data{suffix}'
  path.write_bytes(content)
  return str(path)


@pytest.mark.parametrize('name,suffix,content', DAMAGED, ids=[case[0] for case in DAMAGED])
def test_a_damaged_or_cut_archive_is_refused_in_one_line(tmp_path, name, suffix, content):
  with pytest.raises(DataError) as raised:
    data.load(f'folder:{write(tmp_path, suffix, content)}', ('train', 'test'))
  message = str(raised.value)
  assert '\n' not in message and len(message) < 400, message
  assert 'damaged' in message or 'cut short' in message, message
  assert 'not in train' not in message  # Not blamed on the layout.


@pytest.mark.parametrize('suffix,content', [('.tar', TAR), ('.tar.gz', GZ)])
def test_a_complete_archive_loads_every_image_and_says_so(tmp_path, suffix, content):
  splits = data.load(f'folder:{write(tmp_path, suffix, content)}', ('train', 'test'))
  for split, count in PER_CLASS.items():
    np.testing.assert_array_equal(np.bincount(splits[split].labels), [count] * len(CLASSES))
  assert data.describe(splits) == ('Data: train 18 images in 3 classes (6 each); '
                                   'test 6 images in 3 classes (2 each).')


def test_zeros_padding_after_the_end_may_be_damaged_without_loss(tmp_path):
  assert len(TAR) > END + 1024 + 100  # tar pads to a record of 10240 bytes.
  damaged = flip(TAR, END + 1024 + 50)  # Past both end-of-archive blocks: nothing is lost.
  splits = data.load(f'folder:{write(tmp_path, ".tar", damaged)}', ('train', 'test'))
  assert len(splits['train']) == 18


def test_an_empty_class_folder_is_said(tmp_path, capsys):
  for split, count in (('train', 3), ('test', 1)):
    for cls in ('ant', 'bee'):
      for k in range(count):
        path = tmp_path / split / cls / f'{k}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(k))
  (tmp_path / 'train' / 'cat').mkdir()
  splits = data.load(f'folder:{tmp_path}', ('train', 'test'))
  assert splits['train'].class_names == ('ant', 'bee')
  pytest.importorskip('grain')
  from vit_jax.data import sources
  sources.open_source(f'folder:{tmp_path}', 'train')  # Both readers list it (pipeline 'auto'): said once.
  err = capsys.readouterr().err
  assert err.count('the class folder ') == 1 and f"{tmp_path}/train/cat/ holds no images; it is left out" in err
  (tmp_path / 'test' / 'cat').mkdir()
  (tmp_path / 'test' / 'cat' / '0.png').write_bytes(png(1))
  with pytest.raises(DataError, match=r"classes \['cat'\] in test/ are not in train/ \(their folders there hold no"):
    data.load(f'folder:{tmp_path}', ('train', 'test'))


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads any file')
def test_an_unreadable_folder_is_refused_not_skipped(tmp_path):
  for cls in ('ant', 'bee'):
    (tmp_path / 'train' / cls).mkdir(parents=True)
    (tmp_path / 'train' / cls / '0.png').write_bytes(png(1))
  os.chmod(tmp_path / 'train' / 'bee', 0)
  try:
    with pytest.raises(DataError, match='cannot read'):
      data.load(f'folder:{tmp_path}', ('train',))
  finally:
    os.chmod(tmp_path / 'train' / 'bee', 0o755)


def test_train_py_refuses_a_cut_archive_in_one_line(tmp_path):
  archive = write(tmp_path, '.tar.gz', GZ[:len(GZ) // 2])
  result = subprocess.run(
      [sys.executable, 'train.py', '--config=tests/tiny_train_config.py', f'--workdir={tmp_path / "run"}',
       f'--config.data.source=folder:{archive}'], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith('error: cannot read the archive') and result.stderr.count('\n') == 1, result.stderr
  assert not os.path.exists(tmp_path / 'run' / 'checkpoints')
