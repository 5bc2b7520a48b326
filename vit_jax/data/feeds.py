"""Where the training loop's batches and evaluations come from.

    feed = open_feed(config, mesh)              # by config.data.pipeline: 'memory', 'stream' or 'auto'
    inputs = feed.train_inputs(start_step)      # next(inputs): the train step's arguments after the state
    preds, labels = feed.evaluate(predict, variables, 'val')   # every image of the split once

InMemory (CIFAR-sized data): the splits are decoded once into uint8 arrays
and replicated on the devices; the train step picks its batch itself, so the
host feeds nothing per step. Streamed (data that does not fit): Grain
workers decode, crop and flip each host's share of every global batch
(vit_jax.data.stream), and the step gets it as one array sharded over the mesh.
In both, the validation split is `data.val_size` images held out of the
training split by the same draw (by a hash of each image's name: it does not
move when images are added), and a batch depends only on the seed and the
step: a resumed run sees what an uninterrupted one saw. `listings` digests
what each split listed, so train.py refuses to resume over changed data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from vit_jax.data import DataError, memory
from vit_jax.training import steps

SAMPLE = 32  # Test images kept for the report's pictures.


class InMemory:
  """The splits as replicated device arrays (the fastest path where they fit)."""

  in_memory = True
  crops_and_flips = False  # The train step crops and flips (config.aug).

  def __init__(self, config, mesh, keep_val=None):
    splits = memory.load(config.data.source, ('train', 'test'), image_size=config.data.image_size,
                           data_dir=config.data.get('data_dir') or None)
    if jax.process_index() == 0:
      print(memory.describe(splits))
    train, test, val = splits['train'], splits['test'], None
    self.listings = {'train': memory.listing_digest(train), 'test': memory.listing_digest(test)}
    val_size = config.data.get('val_size', 0)
    if val_size:
      _check_val_size(val_size, len(train))
      train, val = memory.split_off(train, val_size, keep=keep_val)
    self.val_keys = val.keys() if val is not None else ()
    self.class_names, self.num_train, self.num_val = train.class_names, len(train), len(self.val_keys)
    self.arrays = {'train': (steps.put_replicated(train.images, mesh), steps.put_replicated(train.labels, mesh)),
                   'test': (steps.put_replicated(test.images, mesh), test.labels)}
    if val is not None:
      self.arrays['val'] = (steps.put_replicated(val.images, mesh), val.labels)
    self.sample = test.images  # For the report's pictures (all: as before streaming existed).

  def train_inputs(self, start_step: int) -> Iterator[tuple]:
    while True:
      yield self.arrays['train']

  def probe_inputs(self, step: int) -> tuple:
    """The arguments of one step, to time it."""
    return self.arrays['train']

  def evaluate(self, predict, variables, split: str, batch_size: int, batches: int | None = None):
    """(predicted classes, labels) of every image of `split` (of its first `batches` batches)."""
    images, labels = self.arrays[split]
    if batches is not None:
      images, labels = images[:batches * batch_size], labels[:batches * batch_size]
    return steps.evaluate(predict, variables, images, batch_size), labels

  def eval_batches(self, split: str, batch_size: int) -> int:
    return -(-self.arrays[split][0].shape[0] // batch_size)


class Streamed:
  """The splits streamed from disk by Grain workers (vit_jax.data.stream)."""

  in_memory = False

  def __init__(self, config, mesh, train=None, keep_val=None):
    """train: the training split's source where the caller has opened it."""
    from vit_jax.data import sources, stream
    spec, size = config.data.source, config.data.image_size
    train = train or sources.open_source(spec, 'train', data_dir=config.data.get('data_dir') or None)
    test = sources.open_source(spec, 'test', train.class_names, data_dir=config.data.get('data_dir') or None)
    self.listings = {'train': memory.listing_digest(train), 'test': memory.listing_digest(test)}
    val_size = config.data.get('val_size', 0)
    val = None
    if val_size:
      _check_val_size(val_size, len(train))
      rest, held = memory.held_out(train.keys(), val_size, keep=keep_val)
      train, val = sources.Subset(train, rest), sources.Subset(train, held)
    self.val_keys = tuple(val.keys()) if val is not None else ()
    self.class_names, self.num_train, self.num_val = train.class_names, len(train), len(self.val_keys)
    self.mesh, self.sharding = mesh, NamedSharding(mesh, P('data'))
    hosts = dict(process_index=jax.process_index(), process_count=jax.process_count())
    workers = config.data.get('workers', -1)
    workers = min(8, max(1, (os.cpu_count() or 2) - 1)) if workers < 0 else workers
    crop = config.data.get('stream_crop', 'resize')
    self.crops_and_flips = crop == 'random_resized'  # Else the train step crops and flips, as in memory.
    options = dict(image_size=size, seed=config.seed, workers=workers, crop=crop,
                   buffer=config.data.get('buffer', 2), **hosts)
    self.train = stream.Stream(train, global_batch=config.batch_size, train=True, **options)
    self.streams = {split: stream.Stream(source, global_batch=config.eval_batch_size, train=False,
                                         crop_fraction=config.data.get('eval_crop_fraction', 0.875), **options)
                    for split, source in (('test', test), ('val', val)) if source is not None}
    self.max_bad = config.data.get('max_bad_fraction', 0.001)
    self.bad: set[str] = set()  # Unreadable training images seen (replaced).
    self.left_out: set[str] = set()  # Unreadable images of the evaluated splits.
    if jax.process_index() == 0:
      print(f'Data (streamed, {options["workers"]} workers): train {len(train):,} images in '
            f'{len(train.class_names)} classes; validation {val_size:,}; test {len(test):,}.')
    first = next(self.streams['test'].batches(0, 1))
    self.sample = first.images[:SAMPLE]

  def _global(self, local: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.sharding, local)

  def _count_bad(self, batch) -> None:
    """DataError once more distinct images than config.data.max_bad_fraction
    of the training split could not be read (0: not one is allowed)."""
    self.bad.update(batch.bad)
    if len(self.bad) > self.max_bad * self.num_train:
      repair = getattr(self.train.source, 'repair', None)
      raise DataError(f'{len(self.bad)} images of the training split cannot be read or decoded (more than '
                      f'config.data.max_bad_fraction={self.max_bad}), e.g. {sorted(self.bad)[:3]}'
                      + (f'; if the shards are damaged, {repair}.' if repair else '.'))

  def train_inputs(self, start_step: int) -> Iterator[tuple]:
    for batch in self.train.batches(start=start_step):
      new = set(batch.bad) - self.bad
      self._count_bad(batch)
      if new and jax.process_index() == 0:
        print(f'warning: unreadable image(s) replaced by the next readable ones: {sorted(new)[:3]} '
              f'({len(self.bad)} so far).', file=sys.stderr)
      yield self._global(batch.images), self._global(batch.labels)

  def probe_inputs(self, step: int) -> tuple:
    """The arguments of one step, to time it (made here, not by the workers)."""
    batch = self.train.batch(step)
    return self._global(batch.images), self._global(batch.labels)

  def evaluate(self, predict, variables, split: str, batch_size: int, batches: int | None = None):
    """(predicted classes, labels) of every readable image of `split`; an
    unreadable one is left out and said once."""
    preds, labels = [], []
    for batch in self.streams[split].batches(0, batches):
      new = set(batch.bad) - self.left_out
      self.left_out.update(batch.bad)
      if new and jax.process_index() == 0:
        print(f'warning: {len(new)} unreadable image(s) of the {split} split left out of its evaluation: '
              f'{sorted(new)[:3]}.', file=sys.stderr)
      logits = predict(variables, self._global(batch.images))
      valid = multihost_utils.process_allgather(batch.valid, tiled=True)
      preds.append(np.asarray(jax.device_get(jnp.argmax(logits, -1)))[valid])
      labels.append(multihost_utils.process_allgather(batch.labels, tiled=True)[valid])
    return np.concatenate(preds), np.concatenate(labels)

  def eval_batches(self, split: str, batch_size: int) -> int:
    return len(self.streams[split])


def _check_val_size(val_size: int, num_train: int) -> None:
  from vit_jax.training.validate import ConfigError
  if val_size >= num_train:
    raise ConfigError(f'config.data.val_size={val_size} holds out all {num_train} training images; lower it (0: '
                      'no validation split).')


def _random_access_train(config):
  """The training split's streaming source, or None where the data cannot be
  streamed (a compressed archive) or Grain's readers are missing."""
  from vit_jax.data import sources
  if config.data.source.endswith(('.gz', '.tgz')):
    return None
  try:
    return sources.open_source(config.data.source, 'train', data_dir=config.data.get('data_dir') or None)
  except (DataError, ImportError):
    return None


def open_feed(config, mesh, keep_val=None):
  """The feed config.data.pipeline names ('auto': in memory where the decoded
  training split fits in config.data.memory_limit_gb, else streamed).
  keep_val: the validation images' keys to hold out again (a resumed run's),
  else memory.held_out's draw of config.data.val_size."""
  pipeline, train = config.data.get('pipeline', 'memory'), None
  if pipeline == 'auto':
    train = _random_access_train(config)
    size = None if train is None else len(train) * config.data.image_size ** 2 * 3 / 1e9  # Decoded: uint8 RGB.
    pipeline = 'stream' if size is not None and size > config.data.get('memory_limit_gb', 8.0) else 'memory'
    if jax.process_index() == 0 and size is not None:
      print(f'Data pipeline: {pipeline} (the training split is {size:.3g} GB decoded; '
            f'config.data.memory_limit_gb={config.data.get("memory_limit_gb", 8.0):g}).')
  if pipeline == 'stream':
    try:
      import grain  # noqa: F401
    except ImportError:
      raise DataError("config.data.pipeline='stream' needs Grain: pip install 'vit_jax[stream]'.") from None
    return Streamed(config, mesh, train, keep_val)
  return InMemory(config, mesh, keep_val)
