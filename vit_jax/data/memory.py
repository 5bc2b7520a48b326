"""Image-classification data sets loaded once into uint8 arrays.

A source is a string:
  'cifar10'                        CIFAR-10 from a local copy, else downloaded once (vit_jax.data.cifar10);
  'tfds:cifar10', 'tfds:cifar100'  TensorFlow Datasets (downloads on first use);
  'folder:PATH'                    an image-folder tree `split/class/image.jpg`,
                                   as a directory or a .tar / .tar.gz / .tgz of one.

    splits = load('cifar10', ('train', 'test'))
    splits['train'].images  # uint8 [50000, 32, 32, 3]

Class order in a folder is the sorted class-directory names (as torchvision's
ImageFolder); for CIFAR-10 that is its label order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from vit_jax.data import DataError, Dataset
from vit_jax.data.archives import tar_entries
from vit_jax.images import IMAGE_SUFFIXES, ImageError, decode, resize_square


def load(source: str, splits: Sequence[str] = ('train', 'test'), *, image_size: int | None = None,
         data_dir: str | None = None) -> dict[str, Dataset]:
  """Loads `splits` of `source` (see module docstring). Images whose size
  differs from `image_size` are resized to it; all must agree otherwise."""
  kind, _, location = source.partition(':')
  if source == 'cifar10':
    from vit_jax.data import cifar10
    path = cifar10.locate()
    if os.path.basename(path) != cifar10.ARCHIVE:  # A JPEG copy: an image folder.
      return _load_folder(path, splits, image_size)
    loaded = cifar10.read_binary(path, splits)
    return loaded if not image_size or image_size == 32 else {
        split: dataclasses.replace(d, images=np.stack([resize_square(im, image_size) for im in d.images]))
        for split, d in loaded.items()}
  if kind == 'tfds' and location:
    return {split: _load_tfds(location, split, data_dir, image_size) for split in splits}
  if kind == 'folder' and location:
    return _load_folder(location, splits, image_size)
  raise DataError(f"unknown data source {source!r}: use 'cifar10', 'tfds:NAME' or 'folder:PATH'.")


def split_off(data: Dataset, size: int, seed: int = 0, keep: Sequence[str] | None = None) -> tuple[Dataset, Dataset]:
  """(the rest, `size` held-out images) for validation (model selection off the
  test set): held_out's draw, the same in every run."""
  rest, held = held_out(data.names, size, seed, keep)
  part = lambda index: Dataset(data.images[index], data.labels[index], data.class_names,
                               tuple(data.names[i] for i in index))
  return part(rest), part(held)


def held_out(keys: Sequence[str], size: int, seed: int = 0,
             keep: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(sorted indices of the rest, sorted indices of the held-out ones) of the
  images named `keys`: the `size` whose SHA-256 of (seed, key) is smallest,
  so an image stays where it was when others are added or removed; or, with
  `keep` (the names held out when a run started), those of them still here."""
  if keep is not None:
    kept = set(keep)
    held = np.array([i for i, key in enumerate(keys) if key in kept], np.int64)
  else:
    ranks = [hashlib.sha256(f'{seed}:{key}'.encode()).digest() for key in keys]
    held = np.sort(np.argsort(np.array(ranks, dtype='S32'), kind='stable')[:size])
  return np.setdiff1d(np.arange(len(keys)), held), held


def listing_digest(source) -> dict:
  """{'images', 'sha256'} of a split's listing (its class names and the keys of
  its images, in order): equal exactly where the same images were listed."""
  keys = list(source.keys())
  text = json.dumps([list(source.class_names), keys])
  return {'images': len(keys), 'sha256': hashlib.sha256(text.encode()).hexdigest()}


_WARNED: set[str] = set()


def warn_empty_class(folder: str) -> None:
  """Says once per process that a class folder holds no images (the memory
  and the streamed readers may both list it)."""
  key = os.path.normpath(folder)
  if key not in _WARNED:
    _WARNED.add(key)
    print(f'warning: the class folder {folder}/ holds no images; it is left out.', file=sys.stderr)


# ------------------------------------------------------------------ folders

def _load_folder(path: str, splits: Sequence[str], image_size: int | None) -> dict[str, Dataset]:
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise DataError(f'image folder {path!r} does not exist; give a directory or .tar.gz laid out as split/class/image.jpg.')
  files: dict[str, dict[str, list[tuple[str, bytes]]]] = {split: {} for split in splits}
  folders: dict[str, set[str]] = {split: set() for split in splits}  # Class folders, with or without images.
  for name, content in _walk(path):
    parts = name.strip('/').split('/')
    if content is None:  # A folder.
      if len(parts) >= 2 and parts[-2] in folders:
        folders[parts[-2]].add(parts[-1])
      continue
    if len(parts) < 3 or parts[-3] not in files or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
      continue
    folders[parts[-3]].add(parts[-2])
    files[parts[-3]].setdefault(parts[-2], []).append((name, content))
  missing = [split for split in splits if not files[split]]
  if missing:
    raise DataError(f'{path!r} has no images under {", ".join(missing)}/CLASS/; expected split/class/image.jpg.')
  for split in splits:
    for empty in sorted(folders[split] - set(files[split])):
      warn_empty_class(f'{path}/{split}/{empty}')
  class_names = tuple(sorted(files[splits[0]]))
  out = {}
  for split in splits:
    unknown = sorted(set(files[split]) - set(class_names))
    if unknown:
      raise DataError(f'{path!r}: classes {unknown} in {split}/ are not in {splits[0]}/'
                      + (' (their folders there hold no images).' if set(unknown) & folders[splits[0]] else '.'))
    named = [(name, content, label) for label, cls in enumerate(class_names)
             for name, content in sorted(files[split].get(cls, []))]
    images = _stack([_decode(name, content, image_size) for name, content, _ in named], path)
    labels = np.array([label for _, _, label in named], np.int32)
    keys = tuple('/'.join(name.strip('/').split('/')[-2:]) for name, _, _ in named)  # class/file
    out[split] = Dataset(images, labels, class_names, keys)
  return out


def _walk(path: str) -> Iterator[tuple[str, bytes | None]]:
  """(relative name, bytes) of every file of a directory or archive, and
  (name, None) of every folder; DataError where any of it cannot be read."""
  if os.path.isdir(path):
    def unreadable(error: OSError):
      raise DataError(f'cannot read {error.filename!r} in {path!r} ({error.strerror}).')
    try:
      for root, dirs, names in os.walk(path, onerror=unreadable):
        for n in dirs:
          yield os.path.relpath(os.path.join(root, n), path).replace(os.sep, '/'), None
        for n in names:
          full = os.path.join(root, n)
          with open(full, 'rb') as f:
            yield os.path.relpath(full, path).replace(os.sep, '/'), f.read()
    except OSError as e:
      raise DataError(f'cannot read {e.filename!r} in {path!r} ({e.strerror}).') from None
    return
  for member, content in tar_entries(path):
    if member.isfile():
      yield member.name, content
    elif member.isdir():
      yield member.name, None


def _decode(name: str, content: bytes, image_size: int | None) -> np.ndarray:
  try:
    image = decode(content, name)
  except ImageError as e:
    raise DataError(f'cannot decode an image of the data set: {e}') from None
  return resize_square(image, image_size) if image_size else image


def describe(splits: dict[str, Dataset]) -> str:
  """What was read, in one line: images per split and per class."""
  parts = []
  for split, data in splits.items():
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    each = f'{counts[0]:,} each' if counts.min() == counts.max() else f'{counts.min():,} to {counts.max():,} a class'
    parts.append(f'{split} {len(data):,} images in {np.count_nonzero(counts)} classes ({each})')
  return 'Data: ' + '; '.join(parts) + '.'


def _stack(images: list[np.ndarray], path: str) -> np.ndarray:
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise DataError(f'images in {path!r} have different sizes {sorted(shapes)[:3]}...; set --config.data.image_size to resize them.')
  return np.stack(images)


# --------------------------------------------------------------------- TFDS

def _check_network(host: str = 'storage.googleapis.com', timeout: float = 5.0) -> None:
  """Fails in seconds, not after minutes of TFDS retries, when offline."""
  if any(os.environ.get(v) for v in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY')):
    return  # Behind a proxy a direct connection says nothing.
  try:
    socket.create_connection((host, 443), timeout=timeout).close()
  except OSError as e:
    raise OSError(f'no network: cannot reach {host}') from e

def _load_tfds(name: str, split: str, data_dir: str | None, image_size: int | None) -> Dataset:
  import tensorflow_datasets as tfds  # Heavy import; only this source needs it.
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      _check_network()
    builder.download_and_prepare(file_format='array_record')
    records = builder.as_data_source(split=split)
    examples = [records[i] for i in range(len(records))]
  except Exception as e:  # TFDS raises many types; the user needs one sentence.
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    raise DataError(
        f'could not load TFDS data set {name!r} split {split!r} ({reason}); without network access, '
        f'use an image folder instead: --config.data.source=folder:PATH/TO/cifar10-jpeg.tar.gz') from None
  class_names = tuple(builder.info.features['label'].names)
  images = []
  for ex in examples:
    image = np.asarray(ex['image'], np.uint8)
    if image.ndim == 2 or image.shape[-1] == 1:
      image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
    images.append(resize_square(image, image_size) if image_size else image)
  return Dataset(_stack(images, f'tfds:{name}'), np.array([ex['label'] for ex in examples], np.int32), class_names,
                 tuple(str(i) for i in range(len(examples))))
