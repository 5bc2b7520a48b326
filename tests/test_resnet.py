"""ResNet-18 (CIFAR variant): its shape, and training it with the ViT's train step."""

import functools

import jax
import numpy as np
from flax import nnx

from vit_jax.training import losses, optim, steps
from vit_jax.data import augment
from vit_jax.models import create_model
from tests.tiny_train_config import tiny_config


def test_resnet18_has_the_cifar_shape():
  model = nnx.eval_shape(lambda: create_model('resnet18', num_classes=10))  # Shapes only: no compute.
  assert sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))) == 11_173_962  # As kuangliu/pytorch-cifar.
  images = jax.ShapeDtypeStruct((2, 32, 32, 3), np.float32)
  features = nnx.eval_shape(lambda m, x: m.trunk(x, train=False), model, images)
  assert features.shape == (2, 4, 4, 512)


def test_a_train_step_updates_params_and_batchnorm_statistics():
  config = tiny_config()
  model = create_model('resnet18', num_classes=10, width=8, stage_sizes=(1, 1))
  mesh = steps.make_mesh()
  rng = np.random.default_rng(0)
  images = steps.put_replicated(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), mesh)
  labels = steps.put_replicated(rng.integers(0, 10, (16,), dtype=np.int32), mesh)
  tx = optim.adamw(weight_decay=0.05)
  graphdef, state = steps.init_state(model, tx, num_train=16, seed=0, use_ema=False, mesh=mesh)
  before = jax.tree.map(np.array, state)
  augment_batch = functools.partial(augment.augment_batch, aug=config.aug, num_classes=10, mean=config.data.mean,
                                    std=config.data.std)
  train_step = steps.make_train_step(graphdef, tx, lambda step, total: 1e-3, losses.objective(losses.softmax_xent),
                                     augment_batch, batch_size=8, seed=0, mesh=mesh, num_train=16)
  state, metrics = train_step(state, images, labels)
  assert np.isfinite(metrics['loss'])
  for path in (('head', 'kernel'), ('trunk', 'stem', 'conv', 'kernel')):
    old, new = before.params, state.params
    for key in path:
      old, new = old[key], new[key]
    assert not np.array_equal(old[...], new[...]), path
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), before.model_state, state.model_state)
  assert all(jax.tree.leaves(moved))  # Every BatchNorm mean and variance.
  predict = steps.make_predict(graphdef, mean=config.data.mean, std=config.data.std, mesh=mesh)
  assert predict(steps.eval_variables(state), images[:8]).shape == (8, 10)
