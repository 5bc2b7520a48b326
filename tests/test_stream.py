"""Streamed batches (vit_jax.data.stream on Grain) from tiny JPEG folders built
here: deterministic, the same with any number of workers or hosts, every
epoch a permutation, evaluation reading each image once, bad images
replaced and named; the same images from a folder, a .tar and ArrayRecord
shards."""

import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('grain')

from vit_jax import data  # noqa: E402
from vit_jax.data import arrayrecord, sources, stream  # noqa: E402
from vit_jax.data import DataError  # noqa: E402
from vit_jax.images import decode, resize_square  # noqa: E402

CLASSES = ('ant', 'bee', 'cat')


def jpeg(size, value, mode='RGB') -> bytes:
  rng = np.random.default_rng(value)
  pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).convert(mode).save(buffer, format='JPEG')
  return buffer.getvalue()


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  """train: 3 classes x 7 images of varied sizes (one grayscale, one corrupt); test: 3 x 3."""
  root = tmp_path_factory.mktemp('images')
  for split, count in (('train', 7), ('test', 3)):
    for k, cls in enumerate(CLASSES):
      (root / split / cls).mkdir(parents=True)
      for i in range(count):
        size = (40 + 13 * i, 30 + 7 * k)
        (root / split / cls / f'{i:02d}.jpg').write_bytes(jpeg(size, 100 * k + i, 'L' if i == 3 else 'RGB'))
  (root / 'train' / 'bee' / '99_corrupt.jpg').write_bytes(b'\xff\xd8\xff not a jpeg')
  return root


def stream_of(root, split='train', **kwargs):
  options = dict(global_batch=4, image_size=16, seed=0, train=split == 'train')
  return stream.Stream(sources.open_source(f'folder:{root}', split), **{**options, **kwargs})


def take(batches, n):
  return [next(batches) for _ in range(n)]


def test_the_same_seed_gives_the_same_batches_and_another_seed_others(folder):
  a, b = take(stream_of(folder).batches(), 6), take(stream_of(folder).batches(), 6)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x.images, y.images)
    np.testing.assert_array_equal(x.labels, y.labels)
  other = take(stream_of(folder, seed=1).batches(), 6)
  assert not all(np.array_equal(x.images, y.images) for x, y in zip(a, other))
  assert a[0].images.shape == (4, 16, 16, 3) and a[0].images.dtype == np.uint8 and a[0].valid.all()


def test_workers_and_a_later_start_give_the_same_stream(folder):
  expected = take(stream_of(folder).batches(), 8)
  with_workers = take(stream_of(folder, workers=2).batches(), 8)
  resumed = take(stream_of(folder).batches(start=5), 3)  # As a run resumed at step 5.
  for x, y in zip(expected, with_workers):
    np.testing.assert_array_equal(x.images, y.images)
  for x, y in zip(expected[5:], resumed):
    np.testing.assert_array_equal(x.images, y.images)
    np.testing.assert_array_equal(x.labels, y.labels)


def test_each_epoch_is_a_permutation_of_the_split(folder):
  source = sources.open_source(f'folder:{folder}', 'train')
  s = stream.Stream(source, global_batch=len(source), image_size=16, seed=0, train=True)
  first, second = s._order(0), s._order(1)
  assert sorted(first) == sorted(second) == list(range(len(source))) and not np.array_equal(first, second)
  labels = np.concatenate([b.labels for b in take(stream_of(folder, global_batch=22).batches(), 1)])
  assert np.bincount(labels, minlength=3).sum() == 22  # 21 readable + the corrupt one's replacement.


def test_two_hosts_read_disjoint_shares_whose_union_is_the_global_batch(folder):
  whole = take(stream_of(folder).batches(), 4)
  hosts = [take(stream_of(folder, process_index=h, process_count=2).batches(), 4) for h in (0, 1)]
  for k, batch in enumerate(whole):
    np.testing.assert_array_equal(np.concatenate([hosts[0][k].images, hosts[1][k].images]), batch.images)
    np.testing.assert_array_equal(np.concatenate([hosts[0][k].labels, hosts[1][k].labels]), batch.labels)


def test_evaluation_reads_every_image_once_and_pads_the_last_batch(folder):
  for hosts in (1, 2):
    shares = [list(stream_of(folder, 'test', process_index=h, process_count=hosts).batches()) for h in range(hosts)]
    labels = np.concatenate([b.labels[b.valid] for share in shares for b in share])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sum(b.valid.size for share in shares for b in share) == 12  # 3 batches of 4: 3 padded.


def test_an_unreadable_image_is_replaced_and_named(folder):
  bad = [name for b in take(stream_of(folder, global_batch=22).batches(), 3) for name in b.bad]
  assert bad and all(name.endswith('99_corrupt.jpg') for name in bad)


def test_a_folder_a_tar_and_arrayrecord_shards_give_the_same_stream(folder, tmp_path):
  archive = tmp_path / 'images.tar'
  with tarfile.open(archive, 'w') as tar:
    for split in ('train', 'test'):
      tar.add(folder / split, arcname=split)
  index = arrayrecord.convert(f'folder:{archive}', str(tmp_path / 'shards'), ['train', 'test'], records_per_shard=5)
  assert index['splits']['train']['count'] == 22 and len(index['splits']['train']['shards']) == 5
  assert sorted(os.listdir(tmp_path / 'shards'))[-1] == 'train-00004.array_record'
  for split in ('train', 'test'):
    by_name = {}
    for spec in (f'folder:{folder}', f'folder:{archive}', f'arrayrecord:{tmp_path / "shards"}'):
      source = sources.open_source(spec, split)
      by_name[spec] = sorted((source[i][1], source[i][0]) for i in range(len(source)))
      assert source.class_names == CLASSES
    first, *others = by_name.values()
    assert all(other == first for other in others)


@pytest.mark.parametrize('make,phrase', [
    (lambda root: root / 'nowhere', 'does not exist'),
    (lambda root: (root / 'empty' / 'train' / 'ant').mkdir(parents=True) or root / 'empty', 'has no images'),
    (lambda root: (root / 'x.tar.gz').write_bytes(b'\x1f\x8b rest') and root / 'x.tar.gz', 'is compressed'),
    (lambda root: (root / 'cut.tar').write_bytes(b'a' * 100) and root / 'cut.tar', 'cannot read the archive'),
])
def test_bad_folders_are_one_line(tmp_path, make, phrase):
  with pytest.raises(DataError, match=phrase) as raised:
    sources.open_source(f'folder:{make(tmp_path)}', 'train')
  assert '\n' not in str(raised.value)


def test_crops_are_inside_the_image_and_of_the_asked_shape():
  rng = np.random.default_rng(0)
  for width, height in [(40, 30), (300, 20), (20, 300), (1, 1), (224, 224)]:
    for _ in range(50):
      left, top, right, bottom = stream.random_resized_crop(width, height, rng)
      assert 0 <= left < right <= width and 0 <= top < bottom <= height
      aspect = (right - left) / (bottom - top)
      assert 3 / 4 - 0.2 <= aspect <= 4 / 3 + 0.2 or (right - left, bottom - top) in ((width, height),) or \
          min(width, height) < 4
  assert stream.center_crop(400, 200, 224, 0.875) == (112, 12, 288, 188)


def test_resize_crops_read_what_the_in_memory_loader_reads(folder):
  expected = data.load(f'folder:{folder}', ('test',), image_size=16)['test']
  batches = list(stream_of(folder, 'test', crop='resize').batches())
  images = np.concatenate([b.images[b.valid] for b in batches])
  np.testing.assert_array_equal(images, expected.images)
  np.testing.assert_array_equal(np.concatenate([b.labels[b.valid] for b in batches]), expected.labels)
  train = take(stream_of(folder, crop='resize', global_batch=21).batches(), 1)[0]  # One epoch, unflipped.
  source = sources.open_source(f'folder:{folder}', 'train')
  whole = {resize_square(decode(source[i][0], 'x'), 16).tobytes() for i in range(len(source))
           if 'corrupt' not in source.name(i)}
  assert len(whole) == 21 and {im.tobytes() for im in train.images} <= whole


def _settle(root):
  """Dates every folder under `root` a minute back (as data long in place)."""
  past = os.stat(root).st_mtime - 60
  for where, folders, _ in os.walk(root):
    os.utime(where, (past, past))


def test_a_listing_is_cached_until_a_class_folder_changes(folder, tmp_path, monkeypatch):
  import shutil
  root = tmp_path / 'copy'
  shutil.copytree(folder, root)
  _settle(root)
  first = sources.open_source(f'folder:{root}', 'train')
  listdir = os.listdir
  monkeypatch.setattr(os, 'listdir', lambda *a: pytest.fail('listed again'))
  again = sources.open_source(f'folder:{root}', 'train')
  assert again.paths == first.paths and list(again.labels) == list(first.labels)
  monkeypatch.setattr(os, 'listdir', listdir)
  (root / 'train' / 'cat' / '50.jpg').write_bytes(jpeg((20, 20), 7))
  assert len(sources.open_source(f'folder:{root}', 'train')) == len(first) + 1  # Changed just now: listed.
  _settle(root)
  assert len(sources.open_source(f'folder:{root}', 'train')) == len(first) + 1


def test_an_archive_listing_is_cached_until_the_archive_changes(folder, tmp_path, monkeypatch):
  archive = tmp_path / 'images.tar'
  with tarfile.open(archive, 'w') as tar:
    tar.add(folder / 'train', arcname='train')
  past = os.stat(archive).st_mtime - 60
  os.utime(archive, (past, past))
  first = sources.open_source(f'folder:{archive}', 'train')
  monkeypatch.setattr(sources, 'tar_entries', lambda *a, **k: pytest.fail('read again'))
  again = sources.open_source(f'folder:{archive}', 'train')
  assert again.names == first.names and np.array_equal(again.spans, first.spans)
  assert again[5] == first[5]
  monkeypatch.undo()
  with tarfile.open(archive, 'a') as tar:
    tar.addfile(tarfile.TarInfo('train/cat/new.jpg'), io.BytesIO(b''))
  assert len(sources.open_source(f'folder:{archive}', 'train')) == len(first) + 1


def test_an_unwritable_cache_only_costs_time(folder, tmp_path, monkeypatch):
  (tmp_path / 'file').write_text('')
  monkeypatch.setenv('VIT_JAX_CACHE', str(tmp_path / 'file' / 'cache'))  # Under a file: cannot be made.
  assert len(sources.open_source(f'folder:{folder}', 'train')) == 22


def test_evaluation_leaves_an_unreadable_image_out_instead_of_counting_another_twice(folder):
  source = sources.open_source(f'folder:{folder}', 'train')
  batches = list(stream.Stream(source, global_batch=8, image_size=16, seed=0, train=False).batches())
  valid = np.concatenate([b.valid for b in batches])
  bad = [name for b in batches for name in b.bad]
  assert len(bad) == 1 and bad[0].endswith('99_corrupt.jpg')
  assert valid.sum() == len(source) - 1 and valid.size == 24  # 22 images in 3 batches of 8: one out, two padding.
