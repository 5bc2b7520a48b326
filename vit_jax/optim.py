"""Optimizer and learning-rate schedules of the DeiT recipe (Optax)."""

from __future__ import annotations

import jax
import optax

NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'dist_token')


def decay_mask(params):
  """True for weights that get weight decay: matrices and conv kernels; not
  norms, biases, LayerScale γ, the position embedding or the tokens."""
  def decays(path, leaf):
    names = {getattr(p, 'key', getattr(p, 'name', None)) for p in path}
    return leaf.ndim >= 2 and not names & set(NO_DECAY_NAMES)
  return jax.tree_util.tree_map_with_path(decays, params)


def learning_rate_schedule(*, peak_lr: float, total_steps: int, warmup_steps: int, decay_type: str,
                           min_lr: float = 0.0) -> optax.Schedule:
  """'cosine': linear warmup from 0, then cosine to `min_lr`.
  'onecycle': OneCycle (Smith 2018) with cosine warmup over `warmup_steps`,
  starting and ending far below the peak (peak/25 and peak/25e4)."""
  if decay_type == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0, peak_lr, warmup_steps, max(total_steps, warmup_steps + 1), min_lr)
  if decay_type == 'onecycle':
    return optax.cosine_onecycle_schedule(total_steps, peak_lr, pct_start=warmup_steps / max(total_steps, 1))
  raise ValueError(f"schedule.decay_type must be 'cosine' or 'onecycle', got {decay_type!r}.")


def adamw(schedule: optax.Schedule, *, weight_decay: float, b1: float = 0.9, b2: float = 0.999,
          grad_clip_norm: float | None = None) -> optax.GradientTransformation:
  """AdamW with decoupled weight decay on `decay_mask` weights only, after
  optional clipping of the global gradient norm."""
  parts = [optax.clip_by_global_norm(grad_clip_norm)] if grad_clip_norm else []
  parts.append(optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay, mask=decay_mask))
  return optax.chain(*parts)
