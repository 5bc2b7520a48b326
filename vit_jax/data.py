"""Image-classification data sets loaded once into uint8 arrays.

A source is a string:
  'tfds:cifar10', 'tfds:cifar100'  TensorFlow Datasets (downloads on first use);
  'folder:PATH'                    an image-folder tree `split/class/image.jpg`,
                                   as a directory or a .tar / .tar.gz / .tgz of one.

    splits = load('folder:../shared/data/cifar10-jpeg.tar.gz', ('train', 'test'))
    splits['train'].images  # uint8 [50000, 32, 32, 3]

Class order in a folder is the sorted class-directory names (as torchvision's
ImageFolder); for CIFAR-10 that is its label order.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import tarfile
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')


class DataError(Exception):
  """A data set could not be found or read; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  images: np.ndarray  # uint8 [N, H, W, 3]
  labels: np.ndarray  # int32 [N]
  class_names: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.labels)


def load(source: str, splits: Sequence[str] = ('train', 'test'), *, image_size: int | None = None,
         data_dir: str | None = None) -> dict[str, Dataset]:
  """Loads `splits` of `source` (see module docstring). Images whose size
  differs from `image_size` are resized to it; all must agree otherwise."""
  kind, _, location = source.partition(':')
  if kind == 'tfds' and location:
    return {split: _load_tfds(location, split, data_dir, image_size) for split in splits}
  if kind == 'folder' and location:
    return _load_folder(location, splits, image_size)
  raise DataError(f"unknown data source {source!r}: use 'tfds:NAME' or 'folder:PATH'.")


def split_off(data: Dataset, size: int, seed: int = 0) -> tuple[Dataset, Dataset]:
  """(the rest, `size` held-out images): a random split fixed by `seed`, the
  same in every run, for validation (model selection off the test set)."""
  order = np.random.default_rng(seed).permutation(len(data))
  held, rest = np.sort(order[:size]), np.sort(order[size:])
  part = lambda index: Dataset(data.images[index], data.labels[index], data.class_names)
  return part(rest), part(held)


# ------------------------------------------------------------------ folders

def _load_folder(path: str, splits: Sequence[str], image_size: int | None) -> dict[str, Dataset]:
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise DataError(f'image folder {path!r} does not exist; give a directory or .tar.gz laid out as split/class/image.jpg.')
  files: dict[str, dict[str, list[tuple[str, bytes]]]] = {split: {} for split in splits}
  for name, read in _walk(path):
    parts = name.strip('/').split('/')
    if len(parts) < 3 or parts[-3] not in files or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
      continue
    files[parts[-3]].setdefault(parts[-2], []).append((name, read()))
  missing = [split for split in splits if not files[split]]
  if missing:
    raise DataError(f'{path!r} has no images under {", ".join(missing)}/CLASS/; expected split/class/image.jpg.')
  class_names = tuple(sorted(files[splits[0]]))
  out = {}
  for split in splits:
    unknown = sorted(set(files[split]) - set(class_names))
    if unknown:
      raise DataError(f'{path!r}: classes {unknown} in {split}/ are not in {splits[0]}/.')
    named = [(name, data, label) for label, cls in enumerate(class_names)
             for name, data in sorted(files[split].get(cls, []))]
    images = _stack([_decode(name, data, image_size) for name, data, _ in named], path)
    labels = np.array([label for _, _, label in named], np.int32)
    out[split] = Dataset(images, labels, class_names)
  return out


def _walk(path: str) -> Iterator[tuple[str, callable]]:
  """(relative name, reader of its bytes) for every file of a dir or tar."""
  if os.path.isdir(path):
    for root, _, names in os.walk(path):
      for n in names:
        full = os.path.join(root, n)
        yield os.path.relpath(full, path).replace(os.sep, '/'), lambda full=full: open(full, 'rb').read()
    return
  try:
    with tarfile.open(path) as tar:
      for member in tar:
        if member.isfile():
          yield member.name, lambda member=member: tar.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    reason = 'not a tar archive' if isinstance(e, tarfile.ReadError) else ' '.join(str(e).split())[:150]
    raise DataError(f'cannot read archive {path!r} ({reason}); it must be a directory or a .tar/.tar.gz of '
                    'split/class/image files.') from None


def _decode(name: str, data: bytes, image_size: int | None) -> np.ndarray:
  try:
    with Image.open(io.BytesIO(data)) as img:
      img = img.convert('RGB')
      if image_size and img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BICUBIC)
      return np.asarray(img, np.uint8)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(f'cannot decode image {name!r}: {e}') from None


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
    if image_size and image.shape[:2] != (image_size, image_size):
      image = np.asarray(Image.fromarray(image).resize((image_size, image_size), Image.BICUBIC))
    images.append(image)
  return Dataset(_stack(images, f'tfds:{name}'), np.array([ex['label'] for ex in examples], np.int32), class_names)
