"""The data layer: where training images come from and how they reach the step.

    archives.py     tar_entries(path): a .tar / .tar.gz read completely or refused
    memory.py       load(source): a whole data set decoded into uint8 arrays (CIFAR-sized)
    sources.py      open_source(source, split): random access to encoded images (streaming)
    stream.py       Stream: Grain workers decode, crop and flip each host's share of every batch
    feeds.py        open_feed(config, mesh): the train loop's batches and evaluations, in memory or streamed
    augment.py      the on-device augmentations (crops, flips, RandAugment, Mixup/CutMix, erasing)
    arrayrecord.py  python -m vit_jax.data.arrayrecord: an image folder as ArrayRecord shards
    cifar10.py      CIFAR-10 found locally or downloaded once (the 'cifar10' source)

A new kind of source is a class in sources.py (streamed) and, where it fits
in memory, a branch of memory.load. Only feeds.py and augment.py import JAX:
Grain's workers import what they run (stream, sources, memory), not it.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class DataError(Exception):
  """A data set could not be found or read; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  images: np.ndarray  # uint8 [N, H, W, 3]
  labels: np.ndarray  # int32 [N]
  class_names: tuple[str, ...]
  names: tuple[str, ...]  # [N]: 'class/file' for folders and archives, the index for TFDS (listing_digest, held_out).

  def keys(self) -> tuple[str, ...]:
    return self.names

  def __len__(self) -> int:
    return len(self.labels)


from vit_jax.data.memory import describe, held_out, listing_digest, load, split_off  # noqa: E402

__all__ = ['DataError', 'Dataset', 'describe', 'held_out', 'listing_digest', 'load', 'split_off']
