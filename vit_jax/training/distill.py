"""Knowledge distillation from a frozen teacher (DeiT, Touvron et al. 2021;
Hinton et al. 2015), chosen with `config.distill`:

    teacher = distill.load_teacher('workdirs/resnet18', num_classes=10, mean=..., std=...)
    objective = distill.objective(teacher.graphdef, losses.softmax_xent, kind='hard', temperature=1.0, alpha=0.5)
    loss, logits = objective(student, inputs, targets, rngs, teacher.variables)

The teacher runs inside the jitted train step on the student's (augmented,
mixed) batch, in inference mode, with no gradient. A student with a
distillation token learns the teacher through its distillation head and
the labels through its class head (inference averages the two); a student
without one learns both through its one head.
  'hard'  (1 - alpha) * loss(class head, labels) + alpha * CE(distillation head, teacher's argmax)  (DeiT: alpha 0.5)
  'soft'  (1 - alpha) * loss(class head, labels)
          + alpha * T^2 * KL(softmax(teacher / T) || softmax(distillation head / T))  (write-up B)
"""

from __future__ import annotations

import shlex
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from vit_jax.training.checkpoint import model_of_run
from vit_jax.training.validate import ConfigError

KINDS = ('hard', 'soft')


class Teacher(NamedTuple):
  graphdef: nnx.GraphDef
  variables: Any  # nnx.State: the best-on-validation variables of the teacher's run.
  name: str


def load_teacher(workdir: str, *, num_classes: int, mean, std) -> Teacher:
  """The model trained by `python train.py --workdir workdir`, with its best
  variables; ConfigError (one line, what to do) where there is none or it
  does not fit the student's data."""
  field = f'config.distill.teacher_workdir={workdir!r}'
  try:
    teacher, config = model_of_run(workdir)
  except FileNotFoundError as e:
    raise ConfigError(f'{field}: no finished training run there ({e.filename or e!r} is missing); train the teacher '
                      f'first, e.g. python train.py --config configs/resnet18.py --workdir {shlex.quote(workdir)}') from None
  except (ValueError, KeyError, TypeError) as e:  # A config.json or checkpoint that describes no model.
    raise ConfigError(f'{field}: not a usable run ({str(e).splitlines()[0][:150]}).') from None
  if teacher.cfg.num_classes != num_classes:
    raise ConfigError(f'{field}: the teacher predicts {teacher.cfg.num_classes} classes, the student {num_classes}.')
  if [list(config['data'][k]) for k in ('mean', 'std')] != [list(mean), list(std)]:
    raise ConfigError(f'{field}: the teacher was trained with another data.mean/std than the student; '
                      'give the student the same normalisation.')
  graphdef, variables = nnx.split(teacher)
  return Teacher(graphdef, variables, config['model']['name'])


def objective(teacher_graphdef, loss, *, kind: str, temperature: float, alpha: float):
  """objective(model, inputs, targets, rngs, teacher_variables) -> (mean loss,
  logits [B, K]) for vit_jax.training.steps.make_train_step."""
  if kind not in KINDS:
    raise ValueError(f"distill kind must be 'hard' or 'soft', got {kind!r}.")

  def apply(model, inputs, targets, rngs, teacher_variables):
    teacher_logits = jax.lax.stop_gradient(nnx.merge(teacher_graphdef, teacher_variables)(inputs))  # [B, K]
    if hasattr(model, 'heads'):
      class_logits, distill_logits = model.heads(inputs, train=True, rngs=rngs)
    else:
      class_logits, distill_logits = model(inputs, train=True, rngs=rngs), None
    logits = class_logits if distill_logits is None else (class_logits + distill_logits) / 2
    distill_logits = class_logits if distill_logits is None else distill_logits
    if kind == 'hard':
      taught = optax.softmax_cross_entropy_with_integer_labels(distill_logits, jnp.argmax(teacher_logits, -1))
    else:
      t = temperature
      taught = t**2 * optax.kl_divergence(jax.nn.log_softmax(distill_logits / t), jax.nn.softmax(teacher_logits / t))
    return ((1 - alpha) * loss(class_logits, targets) + alpha * taught).mean(), logits

  return apply
