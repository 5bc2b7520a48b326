"""Orbax checkpoints of a run, checksummed, the last two kept of each series.

    workdir/checkpoints/latest/<step>/   full TrainState, to resume
    workdir/checkpoints/best/<step>/     params (EMA ones when enabled) of the
                                         best evaluation so far

Orbax writes a checkpoint to a temporary folder and renames it when complete
(and removes such folders left by a killed run). After that, the SHA-256 of
every file goes into `<step>/sha256.json`. A checkpoint whose files do not
match it, or that has none (killed before it was written), is damaged: it
is deleted with one warning line, and the one before it is used.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from vit_jax.files import atomic_write, sha256_tree

MANIFEST = 'sha256.json'


STORAGE_ERRORS = ('RESOURCE_EXHAUSTED', 'PERMISSION_DENIED', 'UNAVAILABLE', 'DATA_LOSS')  # tensorstore's, for I/O.


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (a full disk, ...); the message says which is kept."""


def _short(error: BaseException) -> str:
  """The gist of a storage error: 'No space left on device', not a page of tensorstore context."""
  text = ' '.join(str(error).split())
  for gist in ('No space left on device', 'Disk quota exceeded', 'Permission denied', 'Read-only file system'):
    if gist.lower() in text.lower():
      return gist
  return getattr(error, 'strerror', None) or text[:150] or type(error).__name__


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _manager(directory: str, read_only: bool = False) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      max_to_keep=2, enable_async_checkpointing=False, cleanup_tmp_directories=not read_only, read_only=read_only))


def damage(directory: str, step: int) -> str | None:
  """Why the checkpoint at `step` in `directory` cannot be trusted, or None."""
  root = os.path.join(directory, str(step))
  try:
    with open(os.path.join(root, MANIFEST)) as f:
      expected = json.load(f)
  except FileNotFoundError:
    return 'no checksums: the run was stopped while saving it'
  except (OSError, ValueError):
    return 'its checksum file is unreadable'
  found = sha256_tree(root, skip=(MANIFEST,))
  changed = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
  return f'{len(changed)} of its files are missing or changed, e.g. {changed[0]}' if changed else None


def _restore_newest_sound(manager: ocp.CheckpointManager, like, what: str, delete: bool):
  """(step, tree) of the newest undamaged checkpoint, else (None, None);
  warns in one line for each damaged one (deleting it where `delete`)."""
  for step in sorted(manager.all_steps(), reverse=True):
    problem = damage(str(manager.directory), step)
    if problem is None:
      return step, manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))
    print(f'warning: the {what} checkpoint of step {step} is damaged ({problem}); using the one before.',
          file=sys.stderr)
    if delete:
      manager.delete(step)
  return None, None


def saved_steps(workdir: str) -> list[int]:
  """Steps of the latest-state checkpoints in `workdir`, without opening them."""
  directory = os.path.join(workdir, 'checkpoints', 'latest')
  return [int(name) for name in os.listdir(directory) if name.isdigit()] if os.path.isdir(directory) else []


class Checkpoints:
  """The two checkpoint series of one work directory."""

  def __init__(self, workdir: str):
    root = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self.latest = _manager(os.path.join(root, 'latest'))
    self.best = _manager(os.path.join(root, 'best'))

  def _save(self, manager: ocp.CheckpointManager, step: int, tree) -> None:
    if step in manager.all_steps():  # Saved before an interruption: replace it.
      manager.delete(step)
    try:
      manager.save(step, args=ocp.args.StandardSave(tree), force=True)
      manager.wait_until_finished()
    except (OSError, ValueError, RuntimeError) as e:  # Orbax reports a full disk as ValueError('RESOURCE_EXHAUSTED...').
      if not (isinstance(e, OSError) or 'os_error_code' in str(e) or str(e).startswith(STORAGE_ERRORS)):
        raise
      kept = [s for s in manager.all_steps() if s != step]
      raise CheckpointWriteError(
          f'cannot write the checkpoint of step {step} in {str(manager.directory)!r} ({_short(e)}); '
          + (f'the one of step {max(kept)} is kept, and the same command resumes from it once there is room.'
             if kept else 'free some space and run the same command again.')) from None
    if jax.process_index() == 0:
      root = os.path.join(str(manager.directory), str(step))
      atomic_write(os.path.join(root, MANIFEST), json.dumps(sha256_tree(root, skip=(MANIFEST,)), indent=0).encode())
    ocp.multihost.sync_global_processes(f'vit_jax_checksums_{step}')

  def restore_latest(self, state_like):
    """(step, state) of the newest sound latest checkpoint, laid out (sharded)
    like `state_like`; (None, None) if there is none."""
    return _restore_newest_sound(self.latest, state_like, 'latest', delete=True)

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save_latest(self, step: int, state) -> None:
    self._save(self.latest, step, state)

  def drop_best_after(self, step: int) -> None:
    """Forgets best checkpoints past `step` (a run resumed from an earlier state
    evaluates them again) and damaged ones."""
    for s in self.best.all_steps():
      if s > step or damage(str(self.best.directory), s):
        self.best.delete(s)

  def save_best(self, step: int, params) -> None:
    self._save(self.best, step, params)

  def restore_best(self, params_like):
    """(step, params) of the newest sound best checkpoint, or (None, None)."""
    return _restore_newest_sound(self.best, params_like, 'best', delete=True)

  def close(self) -> None:
    for manager in (self.latest, self.best):
      manager.wait_until_finished()
      manager.close()

  def __enter__(self) -> Checkpoints:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def restore_best_params(workdir: str, params_like: Any):
  """The best params saved by a run in `workdir`, shaped like `params_like`
  (e.g. `nnx.state(create_model(...))`); a damaged newest
  copy falls back to the best before it."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints', 'best')
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'no checkpoint in {directory!r}; train first with: python train.py --workdir {shlex.quote(workdir)}')
  manager = _manager(directory, read_only=True)
  step, params = _restore_newest_sound(manager, params_like, 'best', delete=False)
  manager.close()
  if step is None:
    raise FileNotFoundError(f'no sound checkpoint in {directory!r}; train again with: python train.py --workdir {shlex.quote(workdir)}')
  return params


def model_of_run(workdir: str):
  """(model with the best variables of the finished run in `workdir`, its
  config as a dict); FileNotFoundError naming what is missing."""
  from flax import nnx

  from vit_jax import models
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  with open(os.path.join(workdir, 'report.json')) as f:  # Written at the end of a run: its class count.
    num_classes = len(json.load(f)['per_class_accuracy'])
  model = models.build(models.section_config(config['model'], image_size=config['data']['image_size'],
                                             num_classes=num_classes))
  nnx.update(model, restore_best_params(workdir, nnx.state(model)))
  return model, config
