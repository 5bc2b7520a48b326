"""Random-access sources of encoded images, for streaming (vit_jax.data.stream).

A source is `len(source)`, `source[i] -> (encoded image bytes, label)`,
`source.name(i)` (for messages) and `source.class_names`; it holds no open
file between calls, so Grain can send it to worker processes.

    open_source('folder:/data/imagenet', 'train')    # a directory, or an uncompressed .tar, of split/class/image
    open_source('arrayrecord:/data/in1k', 'train')   # shards written by python -m vit_jax.data.arrayrecord
    open_source('tfds:imagenet2012', 'train')        # a prepared TFDS data set (array_record files)

A split's classes are its sorted class folders (those with images); give
`class_names` (the training split's) to read another split in that order.
Listing a folder of a million images, or reading every header of a large
archive, takes minutes on network file systems: the listing is kept in
$VIT_JAX_CACHE (default ~/.cache/vit_jax) and used again while the folders'
modification times (the archive's size and time) are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from collections.abc import Callable, Sequence

import numpy as np

from vit_jax.data import DataError
from vit_jax.data.archives import tar_entries
from vit_jax.data.memory import warn_empty_class
from vit_jax.cache import cache_dir
from vit_jax.files import atomic_write
from vit_jax.images import IMAGE_SUFFIXES

INDEX = 'index.json'  # An ArrayRecord folder's table of contents.
SETTLED_SECONDS = 2.0  # A folder changed more recently may still change within its time stamp: not cached.


def _cached_listing(key: dict, stamps: list[int], build: Callable[[], dict]) -> dict:
  """build()'s {class: [entries]}, from the cache where `key` was listed with
  the same `stamps` (modification times in ns) before; kept there for next
  time unless a stamp is too recent to trust. A cache that cannot be read or
  written is only slower."""
  path = os.path.join(cache_dir(), 'listings', hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32] + '.json')
  try:
    with open(path) as f:
      cached = json.load(f)
    if cached['stamps'] == stamps:
      return {name: [tuple(e) if isinstance(e, list) else e for e in entries]
              for name, entries in cached['found'].items()}
  except (OSError, ValueError, KeyError, TypeError):
    pass
  found = build()
  if max(stamps, default=0) < (time.time() - SETTLED_SECONDS) * 1e9:
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      atomic_write(path, json.dumps({'key': key, 'stamps': stamps, 'found': found}).encode())
    except OSError:
      pass
  return found


def _classes(found: dict[str, list], where: str, class_names: Sequence[str] | None) -> tuple[str, ...]:
  """The class order: `class_names`, or the sorted classes with images; empty
  class folders are said, classes outside `class_names` refused."""
  for empty in sorted(k for k, v in found.items() if not v):
    warn_empty_class(f'{where}/{empty}')
  present = sorted(k for k, v in found.items() if v)
  if not present:
    raise DataError(f'{where!r} has no images in CLASS/ folders; expected split/class/image.jpg.')
  if class_names is None:
    return tuple(present)
  unknown = sorted(set(present) - set(class_names))
  if unknown:
    raise DataError(f'{where!r}: classes {unknown} are not among the training classes.')
  return tuple(class_names)


class FolderSource:
  """split/class/image files of a directory, read on demand."""

  def __init__(self, root: str, split: str, class_names: Sequence[str] | None = None):
    where = os.path.join(root, split)
    if not os.path.isdir(where):
      raise DataError(f'{root!r} has no folder {split}/; expected split/class/image.jpg.')
    try:
      folders = sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(where) if e.is_dir())
      found = _cached_listing(
          {'folder': os.path.abspath(where)}, [os.stat(where).st_mtime_ns] + [t for _, t in folders],
          lambda: {c: sorted(n for n in os.listdir(os.path.join(where, c)) if n.lower().endswith(IMAGE_SUFFIXES))
                   for c, _ in folders})
    except OSError as e:
      raise DataError(f'cannot read {e.filename!r} ({e.strerror}).') from None
    self.root, self.class_names = where, _classes(found, where, class_names)
    self.paths = [f'{c}/{n}' for c in self.class_names for n in found.get(c, [])]
    self.labels = np.array([k for k, c in enumerate(self.class_names) for _ in found.get(c, [])], np.int32)

  def __len__(self) -> int:
    return len(self.paths)

  def name(self, i: int) -> str:
    return os.path.join(self.root, self.paths[i])

  def keys(self) -> list[str]:
    return self.paths

  def __getitem__(self, i: int) -> tuple[bytes, int]:
    try:
      with open(self.name(i), 'rb') as f:
        return f.read(), int(self.labels[i])
    except OSError:
      return b'', int(self.labels[i])  # Unreadable now: the stream counts it as a bad image.


class TarSource:
  """split/class/image members of an uncompressed .tar, read by offset (the
  whole archive is checked once, as vit_jax.data.memory does)."""

  def __init__(self, path: str, split: str, class_names: Sequence[str] | None = None):
    with open(path, 'rb') as f:
      if f.read(2) in (b'\x1f\x8b', b'BZ') or path.endswith(('.gz', '.tgz', '.bz2', '.xz')):
        raise DataError(f'{path!r} is compressed, so its images cannot be read in any order; extract it, or '
                        f'convert it: python -m vit_jax.data.arrayrecord folder:{path} OUT.')
    status = os.stat(path)
    found = _cached_listing({'tar': os.path.abspath(path), 'split': split, 'size': status.st_size},
                            [status.st_mtime_ns], lambda: self._list(path, split))
    self.path = path
    self.class_names = _classes(found, f'{path}/{split}', class_names)
    entries = [(e, k) for k, c in enumerate(self.class_names) for e in sorted(found.get(c, []))]
    self.names = [name for (name, _, _), _ in entries]
    self.spans = np.array([(offset, size) for (_, offset, size), _ in entries], np.int64).reshape(-1, 2)
    self.labels = np.array([k for _, k in entries], np.int32)

  @staticmethod
  def _list(path: str, split: str) -> dict[str, list]:
    """{class: [(member name, data offset, size)]} of `split`, reading every header."""
    found: dict[str, list] = {}
    for member, _ in tar_entries(path, read=False):
      parts = member.name.strip('/').split('/')
      if len(parts) >= 2 and parts[-2] == split and member.isdir():
        found.setdefault(parts[-1], [])
      elif len(parts) >= 3 and parts[-3] == split and member.isfile() and parts[-1].lower().endswith(IMAGE_SUFFIXES):
        found.setdefault(parts[-2], []).append((member.name, member.offset_data, member.size))
    return found

  def __len__(self) -> int:
    return len(self.names)

  def name(self, i: int) -> str:
    return f'{self.path}:{self.names[i]}'

  def keys(self) -> list[str]:
    return ['/'.join(name.split('/')[-2:]) for name in self.names]  # class/file, as a folder's.

  def __getitem__(self, i: int) -> tuple[bytes, int]:
    offset, size = self.spans[i]
    with open(self.path, 'rb') as f:
      f.seek(offset)
      return f.read(size), int(self.labels[i])


def index_digest(index: dict) -> str:
  """SHA-256 of an ArrayRecord folder's index, its own 'sha256' field left out:
  an index edited by hand (classes reordered, counts changed) no longer matches."""
  body = {k: v for k, v in index.items() if k != 'sha256'}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class ArrayRecordSource:
  """The shards of one split written by `python -m vit_jax.data.arrayrecord`:
  records of a 4-byte little-endian label and the encoded image.

  Checked when opened: the index against its digest, each shard's size
  against the index (a shard cut short, or grown, is refused). A record
  that cannot be read (a flipped byte fails its chunk's checksum) reads
  as b'', which the stream counts as an unreadable image."""

  def __init__(self, root: str, split: str, class_names: Sequence[str] | None = None):
    try:
      with open(os.path.join(root, INDEX)) as f:
        index = json.load(f)
      entry = index['splits'][split]
      shards = [os.path.join(root, shard) for shard in entry['shards']]
    except (OSError, ValueError, KeyError, TypeError):
      raise DataError(f'{root!r} has no {split} split of ArrayRecord shards ({INDEX} missing or without it); '
                      'write them with python -m vit_jax.data.arrayrecord.') from None
    source = index.get('source', 'folder:PATH')
    self.repair = f'write the shards again: python -m vit_jax.data.arrayrecord folder:{source} NEW_FOLDER'
    if index.get('sha256') != index_digest(index):
      raise DataError(f'{os.path.join(root, INDEX)!r} was changed after it was written (or is from an older '
                      f'version); {self.repair}.')
    for shard, size in zip(shards, entry['sizes']):
      actual = os.path.getsize(shard) if os.path.isfile(shard) else None
      if actual != size:
        state = 'is missing' if actual is None else f'is {actual:,} bytes, not the {size:,} written'
        raise DataError(f'the shard {shard!r} {state}: it is damaged or cut short; {self.repair}.')
    if class_names is not None and list(class_names) != index['class_names']:
      raise DataError(f'{root!r}: its classes differ from the training classes.')
    self.root, self.split, self.shards, self.digest = root, split, shards, index['sha256']
    self.class_names, self.count = tuple(index['class_names']), entry['count']
    self.starts = np.cumsum([0] + entry['counts'])  # Record i is in the shard k with starts[k] <= i < starts[k + 1].
    self._readers: dict[int, object] = {}

  def _locate(self, i: int) -> tuple[int, int]:
    shard = int(np.searchsorted(self.starts, i, side='right')) - 1
    return shard, i - int(self.starts[shard])

  def __getstate__(self):
    return {**self.__dict__, '_readers': {}}  # Each worker opens its own readers.

  def __len__(self) -> int:
    return self.count

  def name(self, i: int) -> str:
    shard, position = self._locate(i)
    return f'{self.shards[shard]}[{position}]'

  def keys(self) -> list[str]:
    return [f'{self.digest[:16]}:{i}' for i in range(self.count)]  # Written once: its position names a record.

  def __getitem__(self, i: int) -> tuple[bytes, int]:
    shard, position = self._locate(i)
    try:
      if shard not in self._readers:
        from array_record.python.array_record_module import ArrayRecordReader
        self._readers[shard] = ArrayRecordReader(self.shards[shard], 'readahead_buffer_size:0')
      record = self._readers[shard].read([position])[0]
      return record[4:], struct.unpack('<i', record[:4])[0]
    except Exception:  # A damaged chunk or footer (the reader raises bare RuntimeErrors): an unreadable image.
      return b'', 0


class Subset:
  """Some images of a source (a held-out split), in the source's order."""

  def __init__(self, source, indices: np.ndarray):
    self.source, self.indices, self.class_names = source, indices, source.class_names
    self.repair = getattr(source, 'repair', None)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int):
    return self.source[int(self.indices[i])]

  def name(self, i: int) -> str:
    return self.source.name(int(self.indices[i]))

  def keys(self) -> list[str]:
    keys = self.source.keys()
    return [keys[int(i)] for i in self.indices]


class TfdsSource:
  """A TFDS data set prepared as array_record files, its images left encoded."""

  def __init__(self, name: str, split: str, data_dir: str | None = None):
    import tensorflow_datasets as tfds
    try:
      self.records = tfds.data_source(name, split=split, data_dir=data_dir, download=False,
                                      decoders={'image': tfds.decode.SkipDecoding()})
      self.class_names = tuple(tfds.builder(name, data_dir=data_dir).info.features['label'].names)
    except Exception as e:  # TFDS raises many types; the user needs one sentence.
      reason = ' '.join(str(e).split())[:200] or type(e).__name__
      raise DataError(f'TFDS data set {name!r} split {split!r} is not prepared as array_record files here '
                      f'({reason}); prepare it once with tfds.builder({name!r}).download_and_prepare('
                      "file_format='array_record').") from None
    self.label = name

  def __len__(self) -> int:
    return len(self.records)

  def name(self, i: int) -> str:
    return f'tfds:{self.label}[{i}]'

  def keys(self) -> list[str]:
    return [str(i) for i in range(len(self))]

  def __getitem__(self, i: int) -> tuple[bytes, int]:
    record = self.records[i]
    return record['image'], int(record['label'])


def open_source(spec: str, split: str, class_names: Sequence[str] | None = None, data_dir: str | None = None):
  """The source a spec names ('folder:PATH', 'arrayrecord:DIR', 'tfds:NAME')."""
  kind, _, location = spec.partition(':')
  location = os.path.expanduser(location)
  if kind == 'folder' and os.path.isdir(location):
    return FolderSource(location, split, class_names)
  if kind == 'folder' and os.path.isfile(location):
    return TarSource(location, split, class_names)
  if kind == 'folder' and location:
    raise DataError(f'image folder {location!r} does not exist; give a directory or .tar laid out as '
                    'split/class/image.jpg.')
  if kind == 'arrayrecord' and location:
    return ArrayRecordSource(location, split, class_names)
  if kind == 'tfds' and location:
    return TfdsSource(location, split, data_dir)
  raise DataError(f"unknown data source {spec!r}: use 'folder:PATH', 'arrayrecord:DIR' or 'tfds:NAME'.")
