"""The training loop: data -> model -> optimizer -> steps -> checkpoints -> report.

    from vit_jax import train
    report = train.train_and_evaluate(config, workdir='workdirs/run1')

A run started again in the same work directory resumes from its latest
checkpoint: same data order, same random augmentations, same result as an
uninterrupted run. Ctrl-C (or SIGTERM, through train.py) saves a checkpoint
before stopping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from flax import nnx
from tqdm import tqdm

from vit_jax import data as data_lib
from vit_jax import optim, report, steps
from vit_jax.checkpoint import Checkpoints
from vit_jax.files import atomic_write
from vit_jax.models import ViT, ViTConfig


class ConfigError(ValueError):
  """The config is inconsistent; the message says which field to change."""


def _schedule_steps(config, steps_per_epoch: int) -> tuple[int, int]:
  """(total_steps, warmup_steps): durations given in epochs or steps."""
  given = [k for k in ('total_epochs', 'total_steps') if config.get(k)]
  if len(given) != 1:
    raise ConfigError(f'give exactly one of config.total_epochs and config.total_steps (got {given or "neither"}).')
  total = config.total_steps or round(config.total_epochs * steps_per_epoch)
  warmup = config.schedule.get('warmup_steps') or round(config.schedule.get('warmup_epochs', 0) * steps_per_epoch)
  return int(total), int(warmup)


def build_model(config, num_classes: int, seed: int = 0) -> ViT:
  """The ViT described by config.model: a preset name and its overrides."""
  overrides = dict(config.model)
  preset = overrides.pop('preset')
  try:
    model_cfg = ViTConfig.preset(preset, num_classes=num_classes, image_size=config.data.image_size, **overrides)
  except TypeError as e:
    raise ConfigError(f'config.model: {e}') from None
  return ViT(model_cfg, rngs=nnx.Rngs(seed))


def _check_batch(config, num_train: int) -> None:
  devices = jax.device_count()
  for name in ('batch_size', 'eval_batch_size'):
    if config[name] % devices:
      raise ConfigError(f'config.{name}={config[name]} must be a multiple of the {devices} devices.')
  if config.batch_size > num_train:
    raise ConfigError(f'config.batch_size={config.batch_size} is larger than the {num_train} training images.')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_step: Callable[[int], None] | None = None) -> dict:
  """Trains (or resumes) in `workdir`, then writes and returns the report.
  `on_step(step)` is called after every step (a hook for tests and tools)."""
  is_main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)

  # ----------------------------------------------------------------- data
  splits = data_lib.load(config.data.source, ('train', 'test'), image_size=config.data.image_size,
                         data_dir=config.data.get('data_dir') or None)
  train_data, test_data = splits['train'], splits['test']
  num_classes, num_train = len(train_data.class_names), len(train_data)
  _check_batch(config, num_train)
  mesh = steps.make_mesh()
  train_images = steps.put_replicated(train_data.images, mesh)
  train_labels = steps.put_replicated(train_data.labels, mesh)
  test_images = steps.put_replicated(test_data.images, mesh)

  # ------------------------------------------------- model and optimizer
  steps_per_epoch = num_train // config.batch_size
  total_steps, warmup_steps = _schedule_steps(config, steps_per_epoch)
  peak_lr = config.optim.lr * config.batch_size / config.optim.get('lr_base_batch_size', config.batch_size)
  schedule = optim.learning_rate_schedule(peak_lr=peak_lr, total_steps=total_steps, warmup_steps=warmup_steps,
                                          decay_type=config.schedule.decay_type,
                                          min_lr=config.schedule.get('min_lr', 0.0))
  tx = optim.adamw(schedule, weight_decay=config.optim.weight_decay, b1=config.optim.get('b1', 0.9),
                   b2=config.optim.get('b2', 0.999), grad_clip_norm=config.optim.get('grad_clip_norm'))
  model = build_model(config, num_classes, config.seed)
  graphdef, state = steps.init_state(model, tx, num_train=num_train, seed=config.seed,
                                     use_ema=bool(config.optim.get('ema_decay')), mesh=mesh)
  del model
  train_step = steps.make_train_step(graphdef, tx, schedule, config, mesh=mesh, num_classes=num_classes,
                                     num_train=num_train)
  predict = steps.make_predict(graphdef, config, mesh=mesh)

  # ---------------------------------------------------------- checkpoints
  checkpoints = Checkpoints(workdir)
  metrics_log = report.MetricsLog(workdir)
  try:
    restored = checkpoints.restore_latest(state)
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(f'cannot resume from the checkpoint in {workdir}: it does not match this config '
                      f'({str(e).splitlines()[0][:150]}); use another --workdir.') from None
  if restored is not None:
    state = restored
  start_step = int(jax.device_get(state.step))
  if is_main:
    metrics_log.truncate(start_step)
    atomic_write(os.path.join(workdir, 'config.json'), config.to_json_best_effort(indent=2).encode())
    if start_step:
      print(f'Resuming from step {start_step} in {workdir}.')

  def eval_params(state):
    return state.ema_params if state.ema_params is not None else state.params

  def run_eval(state, step):
    preds = steps.evaluate(predict, eval_params(state), test_images, config.eval_batch_size)
    accuracy = float((preds == test_data.labels).mean())
    if step > checkpoints.best_step():
      checkpoints.save_best(step, eval_params(state), accuracy)
    return preds, accuracy

  # ------------------------------------------------------------------ loop
  progress = tqdm(total=total_steps, initial=start_step, disable=not (is_main and config.progress_bar),
                  unit='step', dynamic_ncols=True)
  step, last_log, preds, metrics = start_step, None, None, None
  try:
    while step < total_steps:
      with jax.transfer_guard('disallow'):
        in_flight = metrics
        state, metrics = train_step(state, train_images, train_labels)
        if in_flight is not None:  # Keep one step queued: progress shows finished steps.
          jax.block_until_ready(in_flight)
      step += 1
      progress.update()
      epoch_end = step % steps_per_epoch == 0 or step == total_steps
      if step % config.log_every_steps == 0 or step == total_steps:
        metrics = jax.device_get(metrics)
        if not (np.isfinite(metrics['loss']) and np.isfinite(metrics['grad_norm'])):
          raise FloatingPointError(f'loss or gradient norm is not finite at step {step} ({metrics}); '
                                   'lower config.optim.lr or set config.optim.grad_clip_norm.')
        now = time.perf_counter()
        record = {'step': step, 'epoch': step / steps_per_epoch, **{k: float(v) for k, v in metrics.items()}}
        if last_log is not None:
          record['images_per_sec_per_device'] = ((step - last_log[0]) * config.batch_size
                                                 / (now - last_log[1]) / jax.device_count())
        last_log = (step, now)
        progress.set_postfix(loss=f'{record["loss"]:.3f}', lr=f'{record["lr"]:.2e}')
        if is_main:
          metrics_log.write(record)
      epoch = round(step / steps_per_epoch, 3)
      if epoch_end and (step == total_steps or (step // steps_per_epoch) % config.eval_every_epochs == 0):
        preds, accuracy = run_eval(state, step)
        progress.write(f'epoch {epoch:g}: test accuracy {accuracy:.4f}')
        if is_main:
          metrics_log.write({'step': step, 'epoch': epoch, 'test_accuracy': accuracy})
        last_log = None  # Evaluation time is not training throughput.
      if epoch_end and (step == total_steps or (step // steps_per_epoch) % config.checkpoint_every_epochs == 0):
        checkpoints.save_latest(step, state)
      if on_step is not None:
        on_step(step)
  except KeyboardInterrupt:
    progress.close()
    checkpoints.save_latest(step, state)
    checkpoints.close()
    print(f'Interrupted at step {step}; checkpoint saved. Run the same command again to resume.')
    raise
  progress.close()

  # ---------------------------------------------------------------- report
  if preds is None:  # Resumed a finished run: evaluate its final state.
    preds, accuracy = run_eval(state, step)
  checkpoints.close()
  summary = {'steps': step, 'epochs': step / steps_per_epoch, 'devices': jax.device_count(),
             'device_kind': jax.devices()[0].device_kind, 'data': config.data.source}
  result = {'test_accuracy': accuracy}
  if is_main:
    result = report.write_report(workdir, labels=test_data.labels, preds=preds, images=test_data.images,
                                 class_names=test_data.class_names, records=metrics_log.read(), extra=summary)
    print(f'Test accuracy {result["test_accuracy"]:.4f} after {step} steps; report in '
          f'{os.path.join(workdir, "report.json")}')
  return result

