"""DeiT distillation: the teacher's part of the loss, and a run taught by a trained teacher."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from tests.tiny_train_config import tiny_config
from vit_jax.training import distill, loop as train, losses
from vit_jax.models import create_model
from vit_jax.training.validate import ConfigError

TINY_RESNET = dict(name='resnet18', width=8, stage_sizes=(1, 1), dtype='float32')


def student():
  return create_model('vit', num_classes=10, dim=32, depth=1, num_heads=2, patch_size=8, distillation_token=True)


def teacher(seed):
  graphdef, variables = nnx.split(create_model('resnet18', seed=seed, num_classes=10, width=8, stage_sizes=(1,)))
  return graphdef, variables


def grads(objective, *args):
  graphdef, params = nnx.split(student(), nnx.Param)
  x = jax.random.normal(jax.random.key(0), (6, 32, 32, 3))
  y = jax.nn.one_hot(jnp.arange(6) % 10, 10)
  loss = lambda p, *args: objective(nnx.merge(graphdef, p), x, y, nnx.Rngs(dropout=0), *args)[0]
  return jax.jit(jax.grad(loss))(params, *args)


@pytest.mark.parametrize('kind', distill.KINDS)
def test_the_teacher_changes_the_students_gradients(kind):
  graphdef, first = teacher(0)
  _, second = teacher(1)
  taught = distill.objective(graphdef, losses.softmax_xent, kind=kind, temperature=4.0, alpha=0.5)
  by_first, by_second = grads(taught, first), grads(taught, second)
  differ = {path: not np.allclose(a, b) for (path, a), (_, b) in zip(nnx.to_flat_state(by_first),
                                                                     nnx.to_flat_state(by_second))}
  assert differ[('head_dist', 'kernel')] and differ[('blocks', 0, 'attn', 'qkv', 'kernel')]
  assert not differ[('head', 'kernel')]  # The class head learns the labels only.
  untaught = distill.objective(graphdef, losses.softmax_xent, kind=kind, temperature=4.0, alpha=0.0)
  plain = grads(lambda model, x, y, rngs: (losses.softmax_xent(model.heads(x)[0], y).mean(), None))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), grads(untaught, first), plain)


def test_the_losses_are_deits_and_hintons():
  graphdef, variables = teacher(0)
  model = student()
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  y = jax.nn.one_hot(jnp.array([1, 2, 3, 4]), 10)
  t = nnx.merge(graphdef, variables)(x)
  class_logits, distill_logits = model.heads(x)
  ce = optax.softmax_cross_entropy(class_logits, y)
  hard = distill.objective(graphdef, losses.softmax_xent, kind='hard', temperature=1.0, alpha=0.5)
  loss, logits = hard(model, x, y, nnx.Rngs(dropout=0), variables)
  expected = 0.5 * ce + 0.5 * optax.softmax_cross_entropy_with_integer_labels(distill_logits, t.argmax(-1))
  np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
  np.testing.assert_allclose(logits, (class_logits + distill_logits) / 2, rtol=1e-5)
  soft = distill.objective(graphdef, losses.softmax_xent, kind='soft', temperature=3.0, alpha=0.7)
  p, log_q = jax.nn.softmax(t / 3), jax.nn.log_softmax(distill_logits / 3)
  kl = (p * (jnp.log(p) - log_q)).sum(-1)
  np.testing.assert_allclose(soft(model, x, y, nnx.Rngs(dropout=0), variables)[0], (0.3 * ce + 0.7 * 9 * kl).mean(),
                             rtol=1e-5)


@pytest.fixture(scope='module')
def teacher_dir(tmp_path_factory):
  """A tiny ResNet trained by train.py for one epoch."""
  workdir = tmp_path_factory.mktemp('teacher')
  train.train_and_evaluate(tiny_config(model=TINY_RESNET, total_epochs=1), str(workdir))
  return workdir


@pytest.mark.slow  # Two trainings by train.py, a ResNet teacher then its student: over a minute.
def test_a_student_learns_from_a_teacher_trained_by_train_py(tmp_path, teacher_dir):
  config = tiny_config(total_epochs=1, **{'model.distillation_token': True, 'model.pool': 'cls'})
  config.distill = dict(teacher_workdir=str(teacher_dir), kind='soft', temperature=4.0, alpha=0.5)
  result = train.train_and_evaluate(config, str(tmp_path / 'student'))
  assert 0.0 <= result['test_accuracy'] <= 1.0
  assert json.loads((tmp_path / 'student' / 'config.json').read_text())['distill']['teacher_workdir'] == str(teacher_dir)


def test_a_missing_or_unfit_teacher_is_one_clear_error(tmp_path, finished_run):
  teacher_dir = finished_run  # Any finished run can teach.
  mean, std = tiny_config().data.mean, tiny_config().data.std
  with pytest.raises(ConfigError, match='no finished training run there .* train the teacher first'):
    distill.load_teacher(str(tmp_path), num_classes=10, mean=mean, std=std)
  with pytest.raises(ConfigError, match='another data.mean/std'):
    distill.load_teacher(str(teacher_dir), num_classes=10, mean=(0.5, 0.5, 0.5), std=std)
  with pytest.raises(ConfigError, match='the teacher predicts 10 classes, the student 100'):
    distill.load_teacher(str(teacher_dir), num_classes=100, mean=mean, std=std)
  (tmp_path / 'config.json').write_text('{"model": {"name": "resnet18", "depth": 3}, "data": {"image_size": 32}}')
  (tmp_path / 'report.json').write_text('{"per_class_accuracy": {"a": 1.0}}')
  with pytest.raises(ConfigError, match='not a usable run'):
    distill.load_teacher(str(tmp_path), num_classes=10, mean=mean, std=std)
