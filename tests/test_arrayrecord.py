"""ArrayRecord shards: the converter stages its output and cleans it on every
failure (bad options, a full disk, a read-only folder, a killed run), and the
reader refuses a cut shard or an edited index at open, counts a record that
fails its checksum as an unreadable image, and ends a run over a damaged
shard in one line naming it and how to rewrite it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('grain')

from conftest import ROOT, mounted  # noqa: E402
from vit_jax.data import arrayrecord, sources, stream  # noqa: E402
from vit_jax.data import DataError  # noqa: E402


@pytest.fixture(scope='module')
def images(tmp_path_factory):
  """train: 2 classes x 12 JPEGs; test: 2 x 3."""
  root = tmp_path_factory.mktemp('images')
  for split, count in (('train', 12), ('test', 3)):
    for k, cls in enumerate(('ant', 'bee')):
      (root / split / cls).mkdir(parents=True)
      for i in range(count):
        pixels = np.random.default_rng(100 * k + i).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / split / cls / f'{i:02d}.jpg')
  return root


@pytest.fixture
def shards(images, tmp_path):
  out = tmp_path / 'shards'
  arrayrecord.convert(f'folder:{images}', str(out), ['train', 'test'], records_per_shard=8)
  return out


def convert_cli(*args):
  result = subprocess.run([sys.executable, '-m', 'vit_jax.data.arrayrecord', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  return result.returncode, result.stdout, result.stderr


# ------------------------------------------------------------------ converter

@pytest.mark.parametrize('option,phrase', [
    ('0', 'give a positive number of images per shard'),
    ('-5', 'give a positive number of images per shard'),
    ('x', "invalid int value: 'x'"),
])
def test_bad_converter_options_are_one_line_and_leave_nothing(images, tmp_path, option, phrase):
  status, out, err = convert_cli(f'folder:{images}', tmp_path / 'out', f'--records-per-shard={option}')
  assert status == 2 and phrase in err.strip().splitlines()[-1] and 'Traceback' not in err
  assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize('kind,phrase', [('tmpfs', 'No space left on device'), ('read-only', 'Read-only file system')])
def test_a_full_disk_or_a_read_only_folder_is_one_line_and_leaves_nothing(images, tmp_path, kind, phrase):
  where = mounted(kind, tmp_path / 'mount')
  try:
    status, out, err = convert_cli(f'folder:{images}', where / 'out', '--records-per-shard=4')
    assert status == 2 and len(err.strip().splitlines()) == 1 and phrase in err, err
    assert f"error: cannot write '{where / 'out'}'" in err and 'nothing was kept' in err
    assert os.listdir(where) == []  # Neither OUT nor OUT.partial.
  finally:
    subprocess.run(['umount', str(where)], check=True)


def test_a_killed_conversions_leftover_goes_at_the_next_run(images, tmp_path):
  (tmp_path / 'out.partial').mkdir()
  (tmp_path / 'out.partial' / 'train-00000.array_record').write_bytes(b'half')
  status, out, err = convert_cli(f'folder:{images}', tmp_path / 'out')
  assert status == 0 and sorted(os.listdir(tmp_path)) == ['out'], err
  index = json.loads((tmp_path / 'out' / 'index.json').read_text())
  assert index['splits']['train']['counts'] == [24] and index['sha256'] == sources.index_digest(index)


# --------------------------------------------------------------------- reader

@pytest.mark.parametrize('cut', [0.1, 0.5, 0.99, 'grown'])
def test_a_shard_cut_or_grown_is_refused_at_open(shards, cut):
  shard = shards / 'train-00001.array_record'
  data = shard.read_bytes()
  shard.write_bytes(data + b'\0' if cut == 'grown' else data[:int(len(data) * cut)])
  with pytest.raises(DataError) as raised:
    sources.open_source(f'arrayrecord:{shards}', 'train')
  message = str(raised.value)
  assert f"the shard '{shard}' is " in message and 'python -m vit_jax.data.arrayrecord folder:' in message
  assert '\n' not in message


@pytest.mark.parametrize('edit', [
    lambda index: index.update(class_names=index['class_names'][::-1]),
    lambda index: index['splits']['train'].update(count=20),
    lambda index: index.pop('sha256'),
])
def test_an_edited_index_is_refused(shards, edit):
  path = shards / 'index.json'
  index = json.loads(path.read_text())
  edit(index)
  path.write_text(json.dumps(index))
  with pytest.raises(DataError, match="index.json' was changed after it was written .*write the shards again"):
    sources.open_source(f'arrayrecord:{shards}', 'train')


def test_a_flipped_byte_reads_as_an_unreadable_image_never_as_another_one(shards):
  source = sources.open_source(f'arrayrecord:{shards}', 'train')
  clean = [source[i] for i in range(len(source))]
  shard = shards / 'train-00000.array_record'
  data = shard.read_bytes()
  rng = np.random.default_rng(0)
  caught = 0
  for position in [*range(0, 300, 23), *rng.integers(0, len(data), 40)]:
    damaged = bytearray(data)
    damaged[position] ^= 0x5A
    shard.write_bytes(bytes(damaged))
    source = sources.open_source(f'arrayrecord:{shards}', 'train')
    for i in range(len(source)):
      read = source[i]
      assert read == clean[i] or read[0] == b''  # Checked by its chunk's hash: right or unreadable.
      caught += read[0] == b''
  assert caught  # Some flips land in records (the rest in headers and padding the reader does not use).
  shard.write_bytes(data)


def test_a_damaged_shard_ends_a_stream_in_one_line_naming_it(shards):
  shard = shards / 'train-00000.array_record'
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF  # In the middle of the records: the shard's 8 records fail their checksum.
  shard.write_bytes(bytes(data))
  source = sources.open_source(f'arrayrecord:{shards}', 'train')
  bad = [source.name(i) for i in range(len(source)) if source[i][0] == b'']
  assert bad and all(name.startswith(f'{shard}[') for name in bad)
  tight = stream.Stream(source, global_batch=24, image_size=16, seed=0, train=True, workers=1, replacement_tries=2)
  # Training replaces an unreadable image by the next one; two in a row give up, in a Grain worker: one
  # DataError here, not the worker's traceback.
  with pytest.raises(DataError, match=r"cannot be decoded.* The source may be damaged: write the shards again"):
    list(tight.batches(0, 3))


def test_train_py_over_a_cut_shard_is_one_line_and_leaves_no_work_directory(shards, tmp_path):
  shard = shards / 'test-00000.array_record'
  shard.write_bytes(shard.read_bytes()[:1000])
  result = subprocess.run([sys.executable, 'train.py', '--config=tests/tiny_train_config.py',
                           f'--workdir={tmp_path / "run"}', f'--config.data.source=arrayrecord:{shards}',
                           '--config.data.pipeline=stream', '--config.data.val_size=4', '--config.batch_size=8'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and f"the shard '{shard}' is 1,000 bytes" in lines[-1], result.stderr
  assert 'Traceback' not in result.stderr and not (tmp_path / 'run').exists()
