"""Orbax checkpoints of a run: the latest training state and the best params.

    workdir/checkpoints/latest/<step>/   full TrainState, to resume
    workdir/checkpoints/best/<step>/     params (EMA ones when enabled) of the
                                         best test accuracy so far

Orbax writes each checkpoint to a temporary folder and renames it when
complete, so an interrupted save never leaves a checkpoint that looks whole.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def _accuracy(metrics) -> float:
  return metrics['accuracy']


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
  """The two checkpoint series of one work directory."""

  def __init__(self, workdir: str):
    root = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self.latest = ocp.CheckpointManager(os.path.join(root, 'latest'),
                                        options=ocp.CheckpointManagerOptions(max_to_keep=1))
    self.best = ocp.CheckpointManager(os.path.join(root, 'best'), options=ocp.CheckpointManagerOptions(
        max_to_keep=1, best_fn=_accuracy, best_mode='max'))

  def restore_latest(self, state_like):
    """The latest saved state, laid out (sharded) like `state_like`, or None."""
    step = self.latest.latest_step()
    if step is None:
      return None
    return self.latest.restore(step, args=ocp.args.StandardRestore(_abstract(state_like)))

  def save_latest(self, step: int, state) -> None:
    self.latest.save(step, args=ocp.args.StandardSave(state), force=True)

  def best_step(self) -> int:
    """Step of the latest evaluated checkpoint in the best series, or -1."""
    return max(self.best.all_steps(), default=-1)

  def save_best(self, step: int, params, accuracy: float) -> None:
    self.best.save(step, args=ocp.args.StandardSave(params), metrics={'accuracy': float(accuracy)}, force=True)

  def close(self) -> None:
    for manager in (self.latest, self.best):
      manager.wait_until_finished()
      manager.close()


def restore_best_params(workdir: str, params_like: Any):
  """The best params saved by a run in `workdir`, shaped like `params_like`
  (e.g. `nnx.split(ViT(cfg, rngs=...), nnx.Param)[1]`)."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints', 'best')
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      read_only=True, best_fn=_accuracy, best_mode='max'))
  step = manager.best_step()
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {directory}; train first with: python train.py --workdir {workdir}')
  return manager.restore(step, args=ocp.args.StandardRestore(_abstract(params_like)))
