"""Streamed image batches with Grain, for data sets that do not fit in memory.

    source = sources.open_source('folder:/data/imagenet', 'train')
    stream = Stream(source, global_batch=256, image_size=224, seed=0, train=True, workers=4)
    for batch in stream.batches(start=step):  # this host's share of each global batch
      batch.images, batch.labels                # uint8 [256 / hosts, 224, 224, 3], int32 [256 / hosts]

Every batch is a pure function of (seed, its number): epoch e reads the split
in the order of numpy's permutation drawn from (seed, e), and example k of
the global stream takes its crop and flip from (seed, k). So any number of
workers, and any number of hosts sharing a global batch, see the same global
batches, and a run resumes exactly at batch s by starting there: the step
counter of the checkpoint is the whole state of the data.

Workers (Grain's `mp_prefetch`: processes that import numpy and PIL, never
JAX) decode, and with crop='random_resized' (ImageNet's recipe) take an
Inception-style random-resized crop to `image_size` and a flip for
training, and for evaluation resize the short side to image_size /
crop_fraction and take the centre. With crop='resize' (CIFAR's recipe, as
the in-memory path) they resize the whole image to image_size for both, and
the device crops and flips as it does for data in memory. An image that cannot be
decoded is named in `Batch.bad`, and in training replaced by the next
readable one of the split, in evaluation left out (`Batch.valid` False):
the caller counts them and decides when there are too many.
Evaluation reads each image once over all hosts; the last batch is padded
(`Batch.valid` is False there).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image

from vit_jax.data import DataError
from vit_jax.images import ImageError, decode, resize_square

ENDLESS = 2**40  # Batches of a training stream without a planned end (a time budget).
REPLACEMENT_TRIES = 16  # Unreadable images in a row before a batch gives up.
PARENT_POLL_SECONDS = 0.5  # How often a worker checks that its trainer is alive.


@dataclasses.dataclass(frozen=True)
class Batch:
  images: np.ndarray  # uint8 [B, S, S, 3]: this host's share of a global batch.
  labels: np.ndarray  # int32 [B]
  valid: np.ndarray  # bool [B]: False for the padding of evaluation's last batch, and its unreadable images.
  bad: tuple[str, ...] = ()  # Unreadable images (training: each replaced by the next readable one).


def random_resized_crop(width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """(left, top, right, bottom) of an Inception-style crop: a random share
  `scale` of the area with an aspect ratio in `ratio` (log-uniform), as
  torchvision's RandomResizedCrop draws it; the centre after 10 misses."""
  area = width * height
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    w, h = round(np.sqrt(target * aspect)), round(np.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
      return left, top, left + w, top + h
  aspect = width / height  # Fallback: the whole image, its aspect clamped to `ratio`.
  w, h = (width, round(width / ratio[0])) if aspect < ratio[0] else (
      (round(height * ratio[1]), height) if aspect > ratio[1] else (width, height))
  w, h = min(w, width), min(h, height)
  left, top = (width - w) // 2, (height - h) // 2
  return left, top, left + w, top + h


def center_crop(width: int, height: int, image_size: int, crop_fraction: float) -> tuple[int, int, int, int]:
  """The centre square that becomes image_size pixels once the short side is
  resized to image_size / crop_fraction."""
  side = min(width, height) * crop_fraction
  left, top = (width - side) / 2, (height - side) / 2
  return round(left), round(top), round(left + side), round(top + side)


def train_image(pixels: np.ndarray, image_size: int, rng: np.random.Generator) -> np.ndarray:
  """Random-resized crop to image_size (bicubic) and a flip half the time."""
  height, width = pixels.shape[:2]
  box = random_resized_crop(width, height, rng)
  out = np.asarray(Image.fromarray(pixels).resize((image_size, image_size), Image.BICUBIC, box=box))
  return out[:, ::-1] if rng.random() < 0.5 else out


def eval_image(pixels: np.ndarray, image_size: int, crop_fraction: float) -> np.ndarray:
  height, width = pixels.shape[:2]
  box = center_crop(width, height, image_size, crop_fraction)
  return np.asarray(Image.fromarray(pixels).resize((image_size, image_size), Image.BICUBIC, box=box))


CROPS = ('random_resized', 'resize')


class Stream:
  """The batches of one split of `source` (len, [i] -> (encoded bytes, label),
  name(i)), as this host's share of every global batch."""

  def __init__(self, source, *, global_batch: int, image_size: int, seed: int, train: bool, workers: int = 0,
               buffer: int = 2, threads: int = 1, crop: str = 'random_resized', crop_fraction: float = 0.875,
               process_index: int = 0, process_count: int = 1, replacement_tries: int = REPLACEMENT_TRIES):
    if crop not in CROPS:
      raise ValueError(f'crop={crop!r}: use one of {CROPS}.')
    if global_batch % process_count:
      raise ValueError(f'the global batch {global_batch} is not a multiple of the {process_count} hosts.')
    if not len(source):
      raise ValueError('the split holds no images.')
    self.source, self.global_batch, self.image_size, self.seed, self.train = (source, global_batch, image_size,
                                                                              seed, train)
    self.workers, self.buffer, self.threads = workers, buffer, threads
    self.crop, self.crop_fraction, self.replacement_tries = crop, crop_fraction, replacement_tries
    self.local_batch = global_batch // process_count
    self.first = process_index * self.local_batch  # This host's place in every global batch.
    self._orders: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    """Batches in one pass over the split (evaluation: the last one padded)."""
    return -(-len(self.source) // self.global_batch)

  def _order(self, epoch: int) -> np.ndarray:
    if epoch not in self._orders:
      self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.source))}
    return self._orders[epoch]

  def _example(self, index: int, bad: list[str]) -> tuple[np.ndarray, int]:
    """(pixels, label) of image `index`, or of the next readable one (naming
    each unreadable one in `bad`)."""
    for attempt in range(self.replacement_tries):
      k = (index + attempt) % len(self.source)
      data, label = self.source[k]
      try:
        return decode(data, self.source.name(k)), label
      except ImageError:
        bad.append(self.source.name(k))
    raise ImageError(f'{self.replacement_tries} images in a row cannot be decoded, e.g. {bad[-1]!r}.')

  def batch(self, number: int) -> Batch:
    """This host's share of global batch `number` (a pure function of it)."""
    count = len(self.source)
    positions = number * self.global_batch + self.first + np.arange(self.local_batch)
    images = np.zeros((self.local_batch, self.image_size, self.image_size, 3), np.uint8)
    labels = np.zeros(self.local_batch, np.int32)
    valid = np.broadcast_to(self.train or positions < count, (self.local_batch,)).copy()
    bad: list[str] = []
    for j, position in enumerate(positions):
      if self.train:
        index = int(self._order(int(position // count))[position % count])
      elif position < count:
        index = int(position)
      else:
        continue  # Padding.
      if self.train:
        pixels, labels[j] = self._example(index, bad)
      else:  # Evaluation reads each image once: an unreadable one is left out (valid False), not replaced.
        data, labels[j] = self.source[index]
        try:
          pixels = decode(data, self.source.name(index))
        except ImageError:
          bad.append(self.source.name(index))
          valid[j] = False
          continue
      if self.crop == 'resize':
        images[j] = resize_square(pixels, self.image_size)  # As vit_jax.data.memory loads it.
      elif self.train:
        images[j] = train_image(pixels, self.image_size, np.random.default_rng([self.seed, 1, int(position)]))
      else:
        images[j] = eval_image(pixels, self.image_size, self.crop_fraction)
    return Batch(images, labels, valid, tuple(bad))

  def batches(self, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
    """Batches start, start + 1, ... (to `stop`; training: endless by
    default, evaluation: one pass), made ahead by the workers."""
    import grain
    stop = stop if stop is not None else (ENDLESS if self.train else len(self))
    dataset = grain.MapDataset.range(start, stop).map(self.batch)
    iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=self.threads, prefetch_buffer_size=self.buffer))
    if self.workers:
      from absl import flags
      if not flags.FLAGS.is_parsed():  # Grain <= 0.2.18 reads an absl flag in its workers (google/grain#1355).
        flags.FLAGS.mark_as_parsed()
      iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers,
                                                                   per_worker_buffer_size=self.buffer),
                                      worker_init_fn=functools.partial(_exit_with_parent, os.getpid()))
    return _explained(iter(iterable), getattr(self.source, 'repair', None))


def _explained(batches: Iterator[Batch], repair: str | None) -> Iterator[Batch]:
  """The batches, with a batch that gave up on unreadable images (raised in a
  worker, and re-raised here with the worker's traceback) as one DataError."""
  try:
    yield from batches
  except ImageError as e:
    raise DataError(f'{e}' + (f' The source may be damaged: {repair}.' if repair else '')) from None


def _exit_with_parent(parent: int, worker_index: int, worker_count: int) -> None:
  """Ends a worker as soon as `parent` (the trainer's process id, taken in
  the trainer) is gone, however it ended: Grain's workers would outlive a
  trainer killed with SIGKILL and wait for it forever, and with them
  multiprocessing's resource tracker. The id is the trainer's own, not the
  worker's parent at this moment: a trainer killed while the worker started
  up has already left it to init. (Linux's parent-death signal would fire
  when the *thread* that started the worker ends, and Grain starts workers
  from a thread pool.)"""
  def watch():
    while os.getppid() == parent:
      time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)
  if os.getppid() != parent:
    os._exit(1)
  threading.Thread(target=watch, daemon=True, name='exit-with-trainer').start()
