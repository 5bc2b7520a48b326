"""Optimizers by name and the learning-rate schedules (Optax).

    tx = optim.create(config.optim)   # config.optim.name: 'adamw', 'sgd' or 'muon'

As in big_vision, the optimizer gives updates for a learning rate of 1 and
the train step scales them by -learning_rate(step, total_steps): the length
of the schedule is a traced value (kept in the train state), so a run whose
length is planned from its measured speed (`config.total_seconds`) needs
one compilation, and a resumed run keeps its plan.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from optax import contrib

NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'dist_token')
DECAY_TYPES = ('cosine', 'onecycle')
# Fused projections whose parts Muon orthogonalizes apart (as modded-nanogpt does q, k and v): the name of the
# kernel's module -> its parts along the output axis. The qkv split: +0.8 and +1.4 points at 700 steps
# (results/cpu_recipe.md rows 35, 37).
FUSED_MATRICES = {'qkv': 3}


def _names(path) -> set:
  """The module and attribute names along a pytree path."""
  return {getattr(p, 'key', getattr(p, 'name', None)) for p in path}


def decay_mask(params):
  """True for weights that get weight decay: matrices and conv kernels; not
  norms, biases, LayerScale γ, the position embedding or the tokens."""
  def decays(path, leaf):
    return leaf.ndim >= 2 and not _names(path) & set(NO_DECAY_NAMES)
  return jax.tree_util.tree_map_with_path(decays, params)


def _cosine(start, end, fraction):
  """From `start` at fraction 0 to `end` at fraction 1 along half a cosine."""
  return end + (start - end) * 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip(fraction, 0.0, 1.0)))


def learning_rate(step, total_steps, *, peak_lr: float, warmup_steps: int, decay_type: str, min_lr: float = 0.0):
  """The learning rate at `step` of a `total_steps` run (both may be traced).

  'cosine': linear warmup from 0 over `warmup_steps`, then cosine to `min_lr`
  at `total_steps` (optax.warmup_cosine_decay_schedule).
  'onecycle': OneCycle (Smith 2018): cosine from peak/25 up to the peak over
  `warmup_steps`, then cosine down to peak/25e4 (optax.cosine_onecycle_schedule).
  """
  if decay_type not in DECAY_TYPES:
    raise ValueError(f"schedule.decay_type must be 'cosine' or 'onecycle', got {decay_type!r}.")
  step = jnp.asarray(step, jnp.float32)
  decay_steps = jnp.maximum(jnp.asarray(total_steps, jnp.float32) - warmup_steps, 1.0)
  decayed = (step - warmup_steps) / decay_steps
  if decay_type == 'cosine':
    warm = peak_lr * step / max(warmup_steps, 1)
    return jnp.where(step < warmup_steps, warm, _cosine(peak_lr, min_lr, decayed))
  warm = _cosine(peak_lr / 25, peak_lr, step / max(warmup_steps, 1))
  return jnp.where(step < warmup_steps, warm, _cosine(peak_lr, peak_lr / 25e4, decayed))


def _clipped(grad_clip_norm: float | None, *parts) -> optax.GradientTransformation:
  """`parts` chained, after clipping the global gradient norm to `grad_clip_norm` where it is set."""
  return optax.chain(*([optax.clip_by_global_norm(grad_clip_norm)] if grad_clip_norm else []), *parts)


def adamw(*, weight_decay: float, b1: float = 0.9, b2: float = 0.999,
          grad_clip_norm: float | None = None) -> optax.GradientTransformation:
  """AdamW directions for a learning rate of 1 (the step scales them by
  -learning_rate): optional clipping of the global gradient norm, Adam, and
  decoupled weight decay on `decay_mask` weights only."""
  return _clipped(grad_clip_norm, optax.scale_by_adam(b1=b1, b2=b2),
                  optax.add_decayed_weights(weight_decay, decay_mask))


def sgd(*, weight_decay: float, momentum: float = 0.9, nesterov: bool = True,
        grad_clip_norm: float | None = None) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum and L2 weight decay on `decay_mask`
  weights, added to the gradient (PyTorch's SGD): the ResNet recipe."""
  return _clipped(grad_clip_norm, optax.add_decayed_weights(weight_decay, decay_mask),
                  optax.trace(decay=momentum, nesterov=nesterov))


def stacked_matrices(inner: optax.GradientTransformation, mesh: Mesh | None = None) -> optax.GradientTransformation:
  """`inner` on the tree {'matrices': (M [k, m, n], ...), 'rest': the other
  leaves}: each group of k same-shape matrices stacked into one array, split
  over the devices of `mesh` along k (XLA pads an uneven split). A fused
  kernel of FUSED_MATRICES enters as its parts: the qkv kernel [D, 3D] as
  three [D, D] matrices, so that Muon orthogonalizes q, k and v apart.

  Muon's orthogonalization is per matrix: stacked and split, each
  data-parallel device orthogonalizes its share of every group and an
  all-gather returns the rest (distributed Muon, as Moonlight's), instead of
  every device orthogonalizing every matrix. On 2 CPU devices this halves
  cpu_quick's Newton-Schulz time (results/profile_cpu.md). Without a mesh,
  or on one device, it only batches them."""
  def constrain(x, split: bool):  # In a jitted step only: eager calls have no program to split.
    if mesh is None or mesh.size == 1 or not isinstance(x, jax.core.Tracer):
      return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(mesh.axis_names) if split else P()))

  def stack(tree):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    groups, parts = {}, {}  # (shape, dtype) -> [(leaf index, part index, part)]; leaf index -> its part count.
    for i, (path, leaf) in enumerate(leaves):
      if leaf.ndim == 2:
        parts[i] = max([FUSED_MATRICES[name] for name in _names(path) & FUSED_MATRICES.keys()], default=1)
        for j, part in enumerate(jnp.split(leaf, parts[i], axis=1)):
          groups.setdefault((part.shape, part.dtype), []).append((i, j, part))
    matrices = tuple(constrain(jnp.stack([part for _, _, part in group]), split=True) for group in groups.values())
    rest = [leaf for i, (_, leaf) in enumerate(leaves) if i not in parts]
    places = [[(i, j) for i, j, _ in group] for group in groups.values()]
    return {'matrices': matrices, 'rest': rest}, (treedef, places, parts)

  def unstack(stacked, layout):
    treedef, places, parts = layout
    matrix_parts = {i: [None] * n for i, n in parts.items()}
    for group, matrices in zip(places, stacked['matrices']):
      matrices = constrain(matrices, split=False)
      for k, (i, j) in enumerate(group):
        matrix_parts[i][j] = matrices[k]
    rest = iter(stacked['rest'])
    return treedef.unflatten([jnp.concatenate(matrix_parts[i], axis=1) if i in parts else next(rest)
                              for i in range(treedef.num_leaves)])

  def init(params):
    return inner.init(stack(params)[0])

  def update(updates, state, params=None):
    stacked, layout = stack(updates)
    stacked, state = inner.update(stacked, state, None if params is None else stack(params)[0])
    return unstack(stacked, layout), state

  return optax.GradientTransformation(init, update)


def _stacked_dimension_numbers(stacked):
  """Muon on the stacked matrices ([k, m, n]: m reduced, n out), Adam on the rest."""
  return {'matrices': tuple(contrib.MuonDimensionNumbers(1, 2) for _ in stacked['matrices']), 'rest': None}


def muon(*, weight_decay: float, b1: float = 0.9, b2: float = 0.999, momentum: float = 0.95, muon_rms: float = 0.2,
         ns_steps: int = 5, grad_clip_norm: float | None = None,
         mesh: Mesh | None = None) -> optax.GradientTransformation:
  """Muon (Jordan et al. 2024; optax.contrib.muon) on the matrices, Adam on
  the rest. Muon's updates are scaled to the RMS `muon_rms` times the
  learning rate (0.2: AdamW's, Liu et al. 2025, so AdamW's learning rate and
  weight decay carry over); `ns_steps` Newton-Schulz iterations orthogonalize
  them, split over the devices of `mesh` (`stacked_matrices`)."""
  inner = contrib.muon(1.0, ns_steps=ns_steps, beta=momentum, weight_decay=weight_decay, weight_decay_mask=decay_mask,
                       consistent_rms=muon_rms, adam_b1=b1, adam_b2=b2,
                       muon_weight_dimension_numbers=_stacked_dimension_numbers)
  return _clipped(grad_clip_norm, stacked_matrices(inner, mesh),
                  optax.scale(-1.0))  # optax's muon ends with the descent step (-lr); the train step takes that.


OPTIMIZERS = {'adamw': adamw, 'sgd': sgd, 'muon': muon}


def create(optim_config, mesh: Mesh | None = None) -> optax.GradientTransformation:
  """The optimizer `optim_config.name` (default 'adamw') with the fields of
  `optim_config` that it takes (the others, e.g. lr, are the train loop's),
  and the device mesh of the train step where it takes one."""
  name = optim_config.get('name', 'adamw')
  if name not in OPTIMIZERS:
    raise ValueError(f'unknown optimizer {name!r}; choose one of {", ".join(OPTIMIZERS)}.')
  optimizer = OPTIMIZERS[name]
  parameters = inspect.signature(optimizer).parameters
  fields = {k: optim_config[k] for k in parameters if k in optim_config and k != 'mesh'}
  return optimizer(**fields, **({'mesh': mesh} if 'mesh' in parameters else {}))
