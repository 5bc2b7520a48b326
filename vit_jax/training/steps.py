"""The training state and the jitted train and eval steps, data-parallel.

Parallelism is declared: a 1-D device mesh ('data',) over every device of
every host; the batch is sharded over it, parameters are replicated, and
jit inserts the gradient all-reduce (the modern pmap). With data in memory
(`in_memory`) the data set is replicated on the devices and a step picks
its batch itself from the epoch's permutation (kept in the state): the host
feeds nothing per step. Streamed, the step gets each batch as an array
sharded over the mesh (vit_jax.data.feeds).
The steps take resolved values and callables (the augmentation, the
objective, the learning rate), not the run's config.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vit_jax.data import augment


@struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken.
  params: Any  # nnx.State of the model's Params.
  model_state: Any  # nnx.State of its other variables (BatchNorm statistics); empty for a plain ViT.
  opt_state: Any
  ema_params: Any  # Exponential moving average of params, or None.
  perm: jax.Array  # int32 [N]: this epoch's order of the training set.
  total_steps: jax.Array  # int32 scalar: the schedule's length; UNPLANNED until a time budget is planned.


UNPLANNED = 2**30  # A schedule length that no run reaches: warmup and decay as if the run went on.


def make_mesh() -> Mesh:
  return jax.make_mesh((jax.device_count(),), ('data',), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_replicated(array: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array (the same on every host) as a replicated global array."""
  return jax.make_array_from_callback(array.shape, replicated(mesh), lambda index: array[index])


def _epoch_permutation(seed_key, epoch, n: int):
  return jax.random.permutation(jax.random.fold_in(seed_key, epoch), n).astype(jnp.int32)


def init_state(model: nnx.Module, tx: optax.GradientTransformation, *, num_train: int, seed: int,
               use_ema: bool, mesh: Mesh) -> tuple[nnx.GraphDef, TrainState]:
  """Splits `model` into its graph definition and a replicated TrainState."""
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
  key = jax.random.key(seed)

  @functools.partial(jax.jit, out_shardings=replicated(mesh))
  def init(params, model_state):
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=tx.init(params), ema_params=params if use_ema else None,
                      perm=_epoch_permutation(key, 0, num_train), total_steps=jnp.int32(UNPLANNED))
  return graphdef, init(params, model_state)


def eval_variables(state: TrainState):
  """All the model's variables to evaluate (and keep as the best checkpoint):
  the EMA params where there are, else the params, and the other state."""
  return nnx.merge_state(state.ema_params if state.ema_params is not None else state.params, state.model_state)


def with_total_steps(state: TrainState, total_steps: int, mesh: Mesh) -> TrainState:
  """`state` with the schedule's length set (a planned time budget)."""
  return state.replace(total_steps=jax.device_put(jnp.int32(total_steps), replicated(mesh)))


def with_training_count(state: TrainState, num_train: int, batch_size: int, seed: int, mesh: Mesh) -> TrainState:
  """`state` over a training split of another size (a run resumed with changed
  data): the rest of this epoch follows a new permutation of the new split."""
  epoch = int(jax.device_get(state.step)) // max(1, num_train // batch_size)
  perm = _epoch_permutation(jax.random.key(seed), epoch, num_train)
  return state.replace(perm=jax.device_put(perm, replicated(mesh)))


def make_train_step(graphdef, tx, learning_rate, objective, augment_batch, *, batch_size: int, seed: int,
                    mesh: Mesh, num_train: int, ema_decay: float = 0.0, image_size: int | None = None,
                    in_memory: bool = True):
  """Returns train_step(state, images, labels, *objective_args) -> (state,
  metrics). The state is donated; `images`/`labels` are the whole replicated
  training set (`in_memory`), or the step's global batch, sharded over the
  mesh (streamed).

  augment_batch(key, images uint8 [B, H, W, 3], labels [B]) -> (inputs
    float32 [B, H, W, 3], targets [B, K]);
  objective(model, inputs, targets, rngs, *objective_args) -> (mean loss,
    logits [B, K]) (vit_jax.training.losses.objective; vit_jax.training.distill.objective,
    whose argument is the teacher's variables);
  learning_rate(step, total_steps) scales `tx`'s updates for a learning
    rate of 1 (see vit_jax.training.optim).
  With `image_size` the augmented batch is resized to it (antialiased)
  before the model.
  """
  steps_per_epoch = num_train // batch_size
  seed_key = jax.random.key(seed)
  batch_sharding = NamedSharding(mesh, P('data'))

  @functools.partial(jax.jit, donate_argnums=0, out_shardings=(replicated(mesh), replicated(mesh)))
  def train_step(state: TrainState, images, labels, *objective_args):
    perm = state.perm
    if in_memory:  # Pick the batch from the epoch's permutation.
      epoch, index = state.step // steps_per_epoch, state.step % steps_per_epoch
      perm = jax.lax.cond(index == 0, lambda: _epoch_permutation(seed_key, epoch, num_train), lambda: state.perm)
      batch_index = jax.lax.dynamic_slice(perm, (index * batch_size,), (batch_size,))
      batch_index = jax.lax.with_sharding_constraint(batch_index, batch_sharding)
      images, labels = images[batch_index], labels[batch_index]
    step_key = jax.random.fold_in(jax.random.fold_in(seed_key, 1), state.step)
    aug_key, dropout_key = jax.random.split(step_key)
    x, y = augment_batch(aug_key, images, labels)
    if image_size and image_size != x.shape[1]:
      x = jax.image.resize(x, (x.shape[0], image_size, image_size, x.shape[3]), 'linear', antialias=True)

    def loss_fn(params):
      model = nnx.merge(graphdef, params, state.model_state, copy=True)  # New variables: BatchNorm updates its own.
      loss, logits = objective(model, x, y, nnx.Rngs(dropout=dropout_key), *objective_args)
      return loss, (logits, nnx.state(model, nnx.Not(nnx.Param)))

    (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    lr = learning_rate(state.step, state.total_steps)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, jax.tree.map(lambda u: -lr * u, updates))
    ema = state.ema_params
    if ema is not None:
      ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
    metrics = {
        'loss': loss,
        'grad_norm': optax.tree.norm(grads),
        'lr': lr,
        'train_accuracy': jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(y, -1)),  # vs. mixed targets
    }
    new_state = state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state,
                              ema_params=ema, perm=perm)
    return new_state, metrics

  return train_step


def make_predict(graphdef, *, mean, std, flip: bool = False, mesh: Mesh):
  """Returns predict(variables, images uint8 [B, H, W, 3]) -> logits [B, K]
  (batch sharded over the mesh, logits replicated for the host); `variables`
  as from `eval_variables`. With `flip` the logits of each image and its
  mirror image are averaged."""
  batch_sharding = NamedSharding(mesh, P('data'))

  @functools.partial(jax.jit, out_shardings=replicated(mesh))
  def predict(variables, images):
    images = jax.lax.with_sharding_constraint(images, batch_sharding)
    model = nnx.merge(graphdef, variables)
    x = augment.normalize(images, mean, std)
    return (model(x) + model(x[:, :, ::-1])) / 2 if flip else model(x)

  return predict


def evaluate(predict, variables, images: jax.Array, batch_size: int) -> np.ndarray:
  """Predicted classes [N] for a replicated on-device split; the last batch is
  padded to `batch_size` (a multiple of the device count)."""
  n = images.shape[0]
  preds = []
  for start in range(0, n, batch_size):
    batch = images[start:start + batch_size]
    if batch.shape[0] < batch_size:
      batch = jnp.pad(batch, ((0, batch_size - batch.shape[0]), (0, 0), (0, 0), (0, 0)))
    preds.append(np.asarray(jax.device_get(jnp.argmax(predict(variables, batch), -1))))
  return np.concatenate(preds)[:n]
