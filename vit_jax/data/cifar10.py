"""CIFAR-10 wherever it already is, or downloaded once: the 'cifar10' source.

    path = locate()              # the archive the CIFAR configs read
    splits = read_binary(path)   # {'train': Dataset, 'test': Dataset} of the official binary archive

The first of these is used:
  1. $VIT_JAX_DATA/cifar10-jpeg.tar.gz or $VIT_JAX_DATA/cifar-10-binary.tar.gz
     (a folder of data sets of your own);
  2. the JPEG copy beside the repository, ../shared/data/cifar10-jpeg.tar.gz,
     where it exists (the project's machines: the results were measured on it);
  3. the official archive in the user cache, cache_dir()/datasets/;
  4. else that archive downloaded into the cache, once, from CIFAR-10's home
     (Krizhevsky's page at the University of Toronto; $VIT_JAX_CIFAR10_URL
     for a mirror), with a progress bar, checked against the size and SHA-256
     that TFDS pins for it, resumable, bounded in time and rate as every
     download here (vit_jax.download). Offline, one line says where to put it.
"""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np

from vit_jax import download
from vit_jax.cache import cache_dir
from vit_jax.data import DataError, Dataset
from vit_jax.data.archives import tar_entries

URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
SIZE = 170_052_171  # Bytes, and its SHA-256: TFDS's url_checksums/cifar10.txt.
SHA256 = 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd'
MIRROR = 'VIT_JAX_CIFAR10_URL'
ARCHIVE = 'cifar-10-binary.tar.gz'
JPEG_COPY = 'cifar10-jpeg.tar.gz'
BESIDE_REPOSITORY = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data'
RECORD = 1 + 32 * 32 * 3  # A label byte, then the red, green and blue planes, row by row.


def candidates() -> list[str]:
  """The local copies looked for, in order."""
  found = []
  if os.environ.get('VIT_JAX_DATA'):
    found += [os.path.join(os.environ['VIT_JAX_DATA'], name) for name in (JPEG_COPY, ARCHIVE)]
  return found + [str(BESIDE_REPOSITORY / JPEG_COPY), os.path.join(cache_dir(), 'datasets', ARCHIVE)]


def locate(fetch: bool = True) -> str:
  """The path of a CIFAR-10 archive: a local copy, else (`fetch`) the official
  one downloaded into the cache; DataError when neither can be had."""
  for path in candidates():
    if os.path.isfile(path):
      return path
  target = candidates()[-1]
  url = os.environ.get(MIRROR) or URL
  if not fetch:
    raise DataError(f'CIFAR-10 is not here; put {ARCHIVE} ({URL}) in {os.path.dirname(target)!r}.')
  print(f'Downloading CIFAR-10 (once, {SIZE / 2**20:.0f} MiB) from {url} to {os.path.dirname(target)!r}',
        file=sys.stderr)
  try:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    download.fetch_file(url, target, sha256=SHA256, max_bytes=SIZE, max_seconds=3 * 3600)
  except OSError as e:  # DownloadError included: offline, refused, too slow, damaged.
    raise DataError(f'CIFAR-10 is not on this machine and cannot be downloaded ({e.strerror or e}); put {ARCHIVE} '
                    f'(from {URL}) in {os.path.dirname(target)!r}, or set VIT_JAX_DATA to a folder holding it, or '
                    'give --config.data.source=folder:PATH.') from None
  return target


def read_binary(path: str, splits=('train', 'test')):
  """{split: Dataset} of the official binary archive (data_batch_1-5.bin, test_batch.bin, batches.meta.txt)."""
  batches, class_names = {}, None
  for member, content in tar_entries(path):
    name = member.name.rsplit('/', 1)[-1]
    if name == 'batches.meta.txt':
      class_names = tuple(line.strip() for line in content.decode().splitlines() if line.strip())
    elif name.endswith('.bin'):
      batches[name.removesuffix('.bin')] = content
  files = {'train': [f'data_batch_{k}' for k in range(1, 6)], 'test': ['test_batch']}
  missing = [f for split in splits for f in files[split] if f not in batches]
  if class_names is None or missing or any(len(data) % RECORD for data in batches.values()):
    raise DataError(f'{path!r} is not the CIFAR-10 binary archive ({", ".join(missing) or "batches.meta.txt"} '
                    f'missing or cut); delete it to download it again.')
  out = {}
  for split in splits:
    records = np.concatenate([np.frombuffer(batches[f], np.uint8).reshape(-1, RECORD) for f in files[split]])
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # [N, 32, 32, 3] RGB
    labels = records[:, 0].astype(np.int32)
    names = tuple(f'{class_names[label]}/{f}-{k:05d}' for f in files[split]  # class/file, as a folder's.
                  for k, label in enumerate(np.frombuffer(batches[f], np.uint8)[::RECORD]))
    out[split] = Dataset(np.ascontiguousarray(images), labels, class_names, names)
  return out
