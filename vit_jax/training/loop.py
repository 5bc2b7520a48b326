"""The training loop: data -> model -> optimizer -> steps -> checkpoints -> report.

    from vit_jax.training import loop as train
    report = train.train_and_evaluate(config, workdir='workdirs/run1')

A run started again in the same work directory resumes from its latest
checkpoint: same data order, same random augmentations, same result as an
uninterrupted run. Ctrl-C (or SIGTERM, through train.py) saves a checkpoint
before stopping.

The run's length is given in epochs, steps or seconds (`total_seconds`: the
step count is planned from the measured step time; see vit_jax.training.budget).
Evaluations during training use a held-out part of the training set
(`data.val_size` images) and choose the best checkpoint; the test split is
evaluated once, at the end, with the best parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from tqdm import tqdm

from vit_jax import attention, convert, models
from vit_jax.training import budget, distill, losses, optim, report, resume, steps
from vit_jax.data import augment, feeds
from vit_jax.training.cadence import Cadence
from vit_jax.training.checkpoint import Checkpoints, saved_steps
from vit_jax.files import Busy, atomic_write, hold_lock
from vit_jax.interrupts import Interrupted, StopRequest
from vit_jax.training.validate import ConfigError, check_config, check_schedule


def _schedule_steps(config, steps_per_epoch: int) -> tuple[int | None, int]:
  """(total_steps, warmup_steps): durations given in epochs or steps; the
  total is None for a time budget (planned once the step time is known)."""
  total = None if config.get('total_seconds') else config.total_steps or round(config.total_epochs * steps_per_epoch)
  warmup = config.schedule.get('warmup_steps') or round(config.schedule.get('warmup_epochs', 0) * steps_per_epoch)
  return total if total is None else int(total), int(warmup)


def build_model(config, num_classes: int, seed: int = 0) -> nnx.Module:
  """The model described by config.model: a name from vit_jax.models.PRESETS and overrides of its fields."""
  try:
    model_cfg = models.section_config(config.model, num_classes=num_classes, image_size=config.data.image_size)
  except (TypeError, ValueError) as e:
    raise ConfigError(f'config.model: {e}') from None
  return models.build(model_cfg, seed=seed)


def load_initial_weights(model: nnx.Module, path: str) -> None:
  """Pretrained weights into `model` (vit_jax.convert.load_file: timm or
  Google ViT files; the grid resampled, a new head for another class count)."""
  try:
    notes = convert.load_file(model, path)
  except (FileNotFoundError, ValueError) as e:
    raise ConfigError(f'config.init.weights: {e}') from None
  print(f'Initial weights from {path!r}' + ''.join(f'; {note}' for note in notes) + '.')


def _objective(config, num_classes: int, mesh) -> tuple[Callable, tuple]:
  """The training objective (config.loss, and config.distill's teacher) and
  the arguments the train step passes it (the teacher's variables)."""
  loss = losses.get(config.get('loss', 'softmax_xent'))
  spec = config.get('distill') or {}
  if not spec.get('teacher_workdir'):
    return losses.objective(loss), ()
  teacher = distill.load_teacher(spec['teacher_workdir'], num_classes=num_classes, mean=config.data.mean,
                                 std=config.data.std)
  objective = distill.objective(teacher.graphdef, loss, kind=spec.get('kind', 'hard'),
                                temperature=spec.get('temperature', 1.0), alpha=spec.get('alpha', 0.5))
  return objective, (jax.device_put(teacher.variables, steps.replicated(mesh)),)


def _data_wait(waits: list[float], train_seconds: float) -> dict | None:
  """How long the steps of this session (the first left out: it starts the
  workers) waited for their batch: median, 99th percentile, share of time."""
  if not waits:
    return None
  return {'p50_ms': round(1e3 * float(np.median(waits)), 3), 'p99_ms': round(1e3 * float(np.percentile(waits, 99)), 3),
          'share': round(sum(waits) / max(train_seconds, 1e-9), 4), 'steps': len(waits)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       on_step: Callable[[int], None] | None = None, stop: StopRequest | None = None,
                       resume_with_changes: bool = False, clock: Callable[[], float] = time.perf_counter) -> dict:
  """Trains (or resumes) in `workdir`, then writes and returns the report
  (across hosts the first writes it; the others return its summary: steps,
  seconds, plan, test accuracy).

  One run at a time in a work directory: a second one is refused with
  ConfigError while the first holds its lock (released however it ends).

  on_step(step): called after every step (a hook for tests and tools).
  stop: a StopRequest; while training, a signal stops the run after the
    current step with a checkpoint (KeyboardInterrupt is raised then).
  resume_with_changes: resume even where the config differs from the run's.
  clock: seconds, for the time budget and throughput (a fake one in tests).
  """
  check_config(config, jax.device_count())
  created = not os.path.exists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    lock = hold_lock(os.path.join(workdir, f'.lock-process-{jax.process_index()}'))
  except Busy:
    raise ConfigError(f'another train.py is running in --workdir {workdir!r}; wait for it to finish, or use '
                      'another --workdir.') from None
  except OSError as e:
    raise ConfigError(f'--workdir {workdir!r} cannot be used ({e.strerror or e}); give a folder you can write '
                      'to.') from None
  with lock:
    try:
      return _train_and_evaluate(config, workdir, on_step=on_step, stop=stop,
                                 resume_with_changes=resume_with_changes, clock=clock)
    except BaseException:
      if created and not saved_steps(workdir):  # Failed before its first checkpoint: nothing to resume.
        shutil.rmtree(workdir, ignore_errors=True)
      raise


def _train_and_evaluate(config, workdir: str, *, on_step, stop, resume_with_changes: bool, clock) -> dict:
  is_main = jax.process_index() == 0
  saved = saved_steps(workdir)
  previous = resume.read_data(workdir) if saved else None
  if saved:
    resume.check_settings(config, workdir, resume_with_changes, max(saved))

  # ----------------------------------------------------------------- data
  mesh = steps.make_mesh()
  feed = feeds.open_feed(config, mesh, keep_val=resume.kept_validation(previous, config))
  if saved:
    resume.check_data(previous, feed, workdir, resume_with_changes, max(saved))
  if is_main:
    resume.write_data(workdir, config, feed)
  num_classes, num_train, val_size = len(feed.class_names), feed.num_train, feed.num_val
  if config.batch_size > num_train:
    raise ConfigError(f'config.batch_size={config.batch_size} is larger than the {num_train} training images'
                      + (f' left after holding out config.data.val_size={val_size}.' if val_size else '.'))

  # ------------------------------------------------- model and optimizer
  steps_per_epoch = num_train // config.batch_size
  total_steps, warmup_steps = _schedule_steps(config, steps_per_epoch)
  if total_steps is not None:
    check_schedule(config, total_steps, warmup_steps)
  peak_lr = config.optim.lr * config.batch_size / config.optim.get('lr_base_batch_size', config.batch_size)
  learning_rate = functools.partial(optim.learning_rate, peak_lr=peak_lr, warmup_steps=warmup_steps,
                                    decay_type=config.schedule.decay_type, min_lr=config.schedule.get('min_lr', 0.0))
  tx = optim.create(config.optim, mesh)
  model = build_model(config, num_classes, config.seed)
  if config.get('init', {}).get('weights'):  # Fine-tuning: a resumed run's checkpoint replaces these below.
    load_initial_weights(model, config.init.weights)
  recorded = (previous or {}).get('num_train', num_train)  # The checkpoint's permutation is of the recorded split.
  graphdef, state = steps.init_state(model, tx, num_train=recorded if feed.in_memory else 1, seed=config.seed,
                                     use_ema=bool(config.optim.get('ema_decay')), mesh=mesh)  # Streamed: no perm.
  del model
  aug = config.aug if not feed.crops_and_flips else ml_collections.ConfigDict(  # The workers did.
      {**config.aug.to_dict(), 'crop_padding': 0, 'flip': False})
  augment_batch = functools.partial(augment.augment_batch, aug=aug, num_classes=num_classes,
                                    mean=config.data.mean, std=config.data.std)
  objective, objective_args = _objective(config, num_classes, mesh)
  make_step = functools.partial(
      steps.make_train_step, graphdef, tx, learning_rate, objective, augment_batch, batch_size=config.batch_size,
      seed=config.seed, mesh=mesh, num_train=num_train, ema_decay=config.optim.get('ema_decay') or 0.0,
      in_memory=feed.in_memory)
  train_step = make_step()
  low_res = config.get('low_res_stage') or {'fraction': 0.0}
  low_res_step = make_step(image_size=low_res['image_size']) if low_res['fraction'] else None

  predict = steps.make_predict(graphdef, mean=config.data.mean, std=config.data.std,
                               flip=config.get('test_time_flip', False), mesh=mesh)

  # ------------------------------------------- checkpoints and resuming
  with Checkpoints(workdir) as checkpoints:  # Closed also on errors: no save is left half done.
    metrics_log = report.MetricsLog(workdir)
    try:
      start_step, restored = checkpoints.restore_latest(state)
    except (ValueError, KeyError, TypeError) as e:
      raise ConfigError(f'cannot resume from the checkpoint in {workdir!r}: it does not match this config '
                        f'({str(e).splitlines()[0][:150]}); use another --workdir.') from None
    if restored is not None:
      state = restored
    if feed.in_memory and recorded != num_train:  # Resumed with changed data (resume.check_data allowed it).
      state = steps.with_training_count(state, num_train, config.batch_size, config.seed, mesh)
    start_step = start_step or 0
    if total_steps is not None or restored is None:  # A time budget keeps the plan it resumes with.
      state = steps.with_total_steps(state, total_steps or steps.UNPLANNED, mesh)
    total_steps = int(jax.device_get(state.total_steps))
    checkpoints.drop_best_after(start_step)
    if is_main:
      metrics_log.truncate(start_step)
      atomic_write(os.path.join(workdir, 'config.json'), config.to_json_best_effort(indent=2).encode())
      if start_step:
        print(f'Resuming from step {start_step} in {workdir!r}.')
    records = [r for r in metrics_log.read() if r['step'] <= start_step]  # Also where another host truncates.
    evaluated = {r['step'] for r in records if 'val_accuracy' in r}
    best = max((r['val_accuracy'] for r in records if 'val_accuracy' in r), default=-1.0)
    plan = next((budget.Plan(**r.get('plan') or r['replan']) for r in reversed(records)
                 if 'plan' in r or 'replan' in r), None)
    seconds_before = max((r.get('elapsed_seconds', 0.0) for r in records), default=0.0)
    started = clock()

    def elapsed():  # Seconds of training in this work directory, over all resumptions.
      return seconds_before + clock() - started

    def run_eval(state, step):
      """Evaluates on the validation split; saves the best variables and logs the result, unless done before."""
      nonlocal best
      preds, labels = feed.evaluate(predict, steps.eval_variables(state), 'val', config.eval_batch_size)
      accuracy = float((preds == labels).mean())
      if step not in evaluated:
        if accuracy > best:
          checkpoints.save_best(step, steps.eval_variables(state))
          best = accuracy
        if is_main:
          metrics_log.write({'step': step, 'epoch': round(step / steps_per_epoch, 3), 'val_accuracy': accuracy,
                             'elapsed_seconds': elapsed()})
        evaluated.add(step)
        if is_main:
          tqdm.write(f'epoch {step / steps_per_epoch:g}: validation accuracy {accuracy:.4f}')

    cadence = Cadence(steps_per_epoch, config.log_every_steps, config.eval_every_epochs,
                      config.checkpoint_every_epochs, validating=val_size > 0)
    timer = budget.TimeBudget(plan, clock)

    def step_fn(step, total_steps):  # The first low_res_stage.fraction of the steps see smaller images.
      switch = (timer.plan.low_res_steps() if timer.plan is not None
                else budget.low_res_steps(low_res['fraction'], total_steps))
      return low_res_step if step < switch else train_step

    def measure(step, state, low_res_seconds):
      """A first plan: the full-size step (on a copy of the state, when the
      calibration steps were small), one evaluation batch and one checkpoint timed."""
      full_size = low_res_seconds
      if low_res_step is not None:
        probe, times, probe_inputs = jax.tree.map(jnp.copy, state), [], feed.probe_inputs(step)
        for _ in range(budget.CALIBRATION_STEPS):
          t = clock()
          probe, probe_metrics = train_step(probe, *probe_inputs, *objective_args)
          jax.block_until_ready(probe_metrics)
          times.append(clock() - t)
        full_size = float(np.median(times[1:]))
      eval_seconds = 0.0
      if val_size:
        for _ in range(2):  # The first compiles.
          t = clock()
          feed.evaluate(predict, steps.eval_variables(state), 'val', config.eval_batch_size, batches=1)
        eval_seconds = (clock() - t) * feed.eval_batches('val', config.eval_batch_size)
      t = clock()
      checkpoints.save_latest(step, state)
      return budget.Plan(config.total_seconds, steps.UNPLANNED, step_seconds=full_size, eval_seconds=eval_seconds,
                         checkpoint_seconds=clock() - t, low_res_fraction=low_res['fraction'],
                         low_res_step_seconds=low_res_seconds)

    def replan(step, state, first=False):
      # The plan adds the last step's evaluation and checkpoint where the new end falls, not at the old one.
      plan = timer.plan
      total = plan.replan(step=step, elapsed=elapsed(), evaluates=cadence.periodic_evaluation,
                          checkpoints=cadence.periodic_checkpoint)
      if jax.process_count() > 1:  # The hosts' clocks differ: all follow the first host's plan.
        total = plan.total_steps = int(multihost_utils.broadcast_one_to_all(np.int32(total)))
      if first and total <= warmup_steps:
        raise ConfigError(f'config.total_seconds={config.total_seconds} allows {total} steps of '
                          f'{plan.step_seconds:.3g} s, not more than the warmup ({warmup_steps}); raise it or '
                          'shorten config.schedule.warmup_epochs.')
      progress.total = total
      if is_main:
        metrics_log.write({'step': step, 'plan' if first else 'replan': dataclasses.asdict(plan)})
      return total, steps.with_total_steps(state, total, mesh)

    def log(step, metrics):
      """Writes the logged step's record (throughput since the last one); FloatingPointError where it diverged."""
      nonlocal last_log
      metrics = jax.device_get(metrics)
      if not (np.isfinite(metrics['loss']) and np.isfinite(metrics['grad_norm'])):
        raise FloatingPointError(f'the loss or gradient norm is not finite at step {step}; lower config.optim.lr '
                                 'or set config.optim.grad_clip_norm.')
      now = clock()
      record = {'step': step, 'epoch': step / steps_per_epoch, **{k: float(v) for k, v in metrics.items()},
                'elapsed_seconds': elapsed()}
      if last_log is not None:
        record['images_per_sec_per_device'] = ((step - last_log[0]) * config.batch_size
                                               / (now - last_log[1]) / jax.device_count())
      last_log = (step, now)
      progress.set_postfix(loss=f'{record["loss"]:.3f}', lr=f'{record["lr"]:.2e}')
      if is_main:
        metrics_log.write(record)
      return metrics

    # ------------------------------------------------------------------ loop
    progress = tqdm(total=None if total_steps == steps.UNPLANNED else total_steps, initial=start_step,
                    disable=not (is_main and config.progress_bar), unit='step', dynamic_ncols=True)
    step, last_log, metrics, data_waits = start_step, None, None, []
    inputs = feed.train_inputs(start_step)  # The batches of steps start_step + 1, ...
    with stop.deferred() if stop is not None else contextlib.nullcontext():  # Signals: at the end of a step.
      if step and cadence.evaluates(step, total_steps) and step not in evaluated:
        run_eval(state, step)  # Stopped during this evaluation: do it now.
      try:
        while step < total_steps:
          # data -> step
          calibrating = total_steps == steps.UNPLANNED
          t = clock()
          batch = next(inputs)
          data_waits.append(clock() - t)  # The host's time to hand over the batch: ~0 unless input-bound.
          with jax.transfer_guard('disallow'):
            in_flight = metrics
            state, metrics = step_fn(step, total_steps)(state, *batch, *objective_args)
            if calibrating:
              jax.block_until_ready(metrics)
              timer.time_calibration_step(clock() - t)
            elif in_flight is not None:  # Keep one step queued: progress shows finished steps.
              jax.block_until_ready(in_flight)
          step += 1
          progress.update()
          if timer.needs_mark():
            jax.block_until_ready(metrics)
            timer.set_mark(step)
          if cadence.logs(step, total_steps):
            metrics = log(step, metrics)
          # the time budget: a first plan once calibrated, then redone at every logged, saved or evaluated step
          if calibrating and timer.calibrated():
            timer.plan = measure(step, state, timer.calibration_seconds())
            total_steps, state = replan(step, state, first=True)
            if is_main:
              tqdm.write(f'Planned {total_steps} steps ({total_steps / steps_per_epoch:.3g} epochs) in '
                         f'{config.total_seconds:g} s.')
            last_log = None  # Planning time is not training throughput.
            timer.set_mark(step)
          checkpointing, evaluating = cadence.checkpoints(step, total_steps), cadence.evaluates(step, total_steps)
          replanning = timer.replans(step, total_steps, checkpointing or step % config.log_every_steps == 0)
          if replanning:  # Redo the plan with the times measured since the last one.
            jax.block_until_ready(metrics)
            timer.rescale(step)
          # checkpoint -> evaluate
          if checkpointing:
            t = clock()
            checkpoints.save_latest(step, state)  # Before evaluating: a stop during it does not lose it.
            if replanning:
              timer.plan.checkpoint_seconds = clock() - t
          if evaluating:
            t = clock()
            run_eval(state, step)
            last_log = None  # Evaluation time is not training throughput.
            if replanning:
              timer.plan.eval_seconds = clock() - t
          if replanning:
            total_steps, state = replan(step, state)
            timer.set_mark(step)
          if on_step is not None:
            on_step(step)
          if stop is not None and stop.requested and step < total_steps:
            raise KeyboardInterrupt
      except KeyboardInterrupt:
        progress.close()
        if checkpoints.latest_step() != step and not any(x.is_deleted() for x in jax.tree.leaves(state)):
          checkpoints.save_latest(step, state)
        raise Interrupted(f'Interrupted at step {step}; the checkpoint of step {checkpoints.latest_step()} is kept. '
                          'Run the same command again to resume.') from None
      progress.close()
      train_seconds = elapsed()

      # ---------------------------------------------------------------- report
      chosen_step, variables = checkpoints.restore_best(steps.eval_variables(state)) if val_size else (None, None)
      if variables is None:
        chosen_step, variables = step, steps.eval_variables(state)
      preds, test_labels = feed.evaluate(predict, variables, 'test', config.eval_batch_size)  # The one test evaluation.
      records = metrics_log.read()
      chosen = next((r['val_accuracy'] for r in records if r['step'] == chosen_step and 'val_accuracy' in r), None)
      summary = {'steps': step, 'epochs': step / steps_per_epoch, 'train_seconds': round(train_seconds, 2),
                 'plan': timer.plan and dataclasses.asdict(timer.plan), 'tested_step': chosen_step, 'val_accuracy': chosen,
                 'num_val_images': val_size, 'data_wait': _data_wait(data_waits[1:], train_seconds - seconds_before),
                 'devices': jax.device_count(),
                 'device_kind': jax.devices()[0].device_kind, 'data': config.data.source}
      result = {**summary, 'test_accuracy': float((preds == test_labels).mean())}  # The first host's is the report:
      if is_main:
        result = report.write_report(workdir, labels=test_labels, preds=preds, images=feed.sample,
                                     class_names=feed.class_names, records=records, extra=summary)
        model = nnx.merge(graphdef, jax.device_get(variables))
        if isinstance(model, models.ViT):  # Where it looks: the first test image of each of 6 classes.
          first = np.unique(test_labels[:len(feed.sample)], return_index=True)[1][:6]
          sample = feed.sample[first]
          maps = attention.attention_maps(model, augment.normalize(sample, config.data.mean, config.data.std))
          attention.save_attention_grid(os.path.join(workdir, 'attention.png'), sample, maps,
                                        titles=[feed.class_names[label] for label in test_labels[first]])
        which = f'step {chosen_step}, the best on validation' if val_size else 'the last step'
        print(f'Test accuracy {result["test_accuracy"]:.4f} (parameters of {which}) after {step} steps and '
              f'{train_seconds:.0f} s of training; report in {os.path.join(workdir, "report.json")}')
      return result
