"""A wall-clock budget (config.total_seconds), the held-out validation split,
and test-time flip averaging."""

import json

import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config
from test_train import train_until_interrupted
from vit_jax import data
from vit_jax.training import budget, loop as train, optim, steps


def test_the_plan_fits_steps_evaluations_and_checkpoints_in_the_budget():
  every_10 = lambda s: s % 10 == 0
  plan = lambda remaining, start=0: budget.plan_total_steps(
      remaining=remaining, start=start, steps_seconds=lambda total: (total - start) * 1.0, eval_seconds=5.0,
      checkpoint_seconds=1.0, evaluates=every_10, checkpoints=every_10)
  # 60 steps, evaluations and checkpoints after steps 10..50, and after the last: 60 + 5 * 6 + 6 = 96 s.
  assert plan(100.0) == 60 and plan(96.0) == 60 and plan(95.9) == 59
  assert plan(100.0, start=8) == 66  # Steps 9..66, six evaluations (10..60) and the last: 58 + 36 + 6 = 100 s.
  assert plan(6.9) == 0 and plan(7.0) == 1  # Not even one step: the run stops where it is.


def test_the_low_res_steps_are_the_first_fraction_of_the_plan():
  seconds = budget.stage_steps_seconds(start=10, low_res_fraction=0.5, low_res_seconds=1.0, full_seconds=4.0)
  assert seconds(40) == 10 * 1.0 + 20 * 4.0  # Steps 11..20 small, 21..40 full size.
  assert seconds(30) == 5 * 1.0 + 15 * 4.0 and seconds(100) == 40 * 1.0 + 50 * 4.0  # The switch moves with T.
  assert budget.stage_steps_seconds(30, 0.5, 1.0, 4.0)(40) == 10 * 4.0  # After it only full size.


def test_the_validation_split_is_fixed_and_disjoint():
  images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1).repeat(3, -1)
  dataset = data.Dataset(images, np.arange(50, dtype=np.int32) % 10, tuple('abcdefghij'), tuple(map(str, range(50))))
  rest, held = data.split_off(dataset, 12)
  assert (len(rest), len(held)) == (38, 12)
  assert sorted(np.concatenate([rest.images[:, 0, 0, 0], held.images[:, 0, 0, 0]])) == list(range(50))
  again_rest, again_held = data.split_off(dataset, 12)
  np.testing.assert_array_equal(held.images, again_held.images)
  assert not np.array_equal(held.images[:, 0, 0, 0], np.arange(12))  # Drawn at random, not the first ones.


def test_test_time_flip_averages_an_image_and_its_mirror():
  config = tiny_config(test_time_flip=True)
  model = train.build_model(config, 10)
  graphdef, params = nnx.split(model)
  mesh = steps.make_mesh()
  predict = steps.make_predict(graphdef, mean=config.data.mean, std=config.data.std, flip=True, mesh=mesh)
  images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
  np.testing.assert_allclose(predict(params, images), predict(params, images[:, :, ::-1]), rtol=1e-5, atol=1e-5)
  plain = steps.make_predict(graphdef, mean=config.data.mean, std=config.data.std, mesh=mesh)
  assert not np.allclose(plain(params, images), plain(params, images[:, :, ::-1]), atol=1e-5)


def records(workdir):
  return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def test_smaller_images_get_a_resized_position_embedding():
  model = train.build_model(tiny_config(), 10)  # 32x32 images, patch 8: a 4x4 grid.
  np.testing.assert_array_equal(model.position_embedding(4, 4), model.pos_embed[...])
  small = model.position_embedding(2, 2)  # [1, 1 + 4, D]: the class token's part is kept.
  assert small.shape == (1, 5, 64)
  np.testing.assert_array_equal(small[:, 0], model.pos_embed[...][:, 0])
  assert model(np.zeros((3, 16, 16, 3), np.float32)).shape == (3, 10)


class FakeClock:
  """Seconds that pass only where the test says: in a train step (full size
  or small images) and an evaluation batch, so the plan is tested exactly,
  whatever the machine's load."""

  def __init__(self, monkeypatch, full_step: float, low_res_step: float, eval_batch: float):
    self.now, self.full_step, self.low_res_step = 0.0, full_step, low_res_step  # A test may change the costs.
    make_train_step, evaluate = steps.make_train_step, steps.evaluate

    def timed_make_train_step(*args, image_size=None, **kwargs):
      step = make_train_step(*args, image_size=image_size, **kwargs)

      def timed_step(*step_args):
        self.now += self.low_res_step if image_size else self.full_step
        return step(*step_args)
      return timed_step

    def timed_evaluate(predict, variables, images, batch_size):
      self.now += eval_batch * -(-len(images) // batch_size)
      return evaluate(predict, variables, images, batch_size)
    monkeypatch.setattr(steps, 'make_train_step', timed_make_train_step)
    monkeypatch.setattr(steps, 'evaluate', timed_evaluate)

  def __call__(self) -> float:
    return self.now


def test_a_time_budget_is_planned_and_met(tmp_path, monkeypatch):
  clock = FakeClock(monkeypatch, full_step=1.0, low_res_step=0.25, eval_batch=2.0)
  config = tiny_config(total_epochs=0.0, total_seconds=60.0, **{'aug.randaugment_layers': 0,  # Compiles fast.
                                                                'low_res_stage.fraction': 0.5})
  result = train.train_and_evaluate(config, str(tmp_path), clock=clock)
  report = json.loads((tmp_path / 'report.json').read_text())
  plans = [r for r in records(tmp_path) if 'plan' in r]
  assert len(plans) == 1 and plans[0]['step'] == budget.CALIBRATION_STEPS
  first = plans[0]['plan']
  assert (first['low_res_step_seconds'], first['step_seconds'], first['eval_seconds']) == (0.25, 1.0, 2.0)
  assert report['steps'] == report['plan']['total_steps'] > 3 * 9  # Several epochs of 9 steps.
  # The budget is met, and nearly filled: one more step (and its evaluation) would not have fit.
  assert 60.0 - (1.0 + 2.0) < report['train_seconds'] <= 60.0, report
  low = budget.low_res_steps(0.5, report['steps'])
  evals = [r['step'] for r in records(tmp_path) if 'val_accuracy' in r]
  assert evals == [s for s in range(9, report['steps'], 9)] + [report['steps']]
  spent = (8 * 0.25 + 8 * 1.0 + 2 * 2.0  # Calibration (small images), its full-size probe, the timed evaluation.
           + (low - 8) * 0.25 + (report['steps'] - low) * 1.0 + len(evals) * 2.0)
  assert report['train_seconds'] == pytest.approx(spent)  # Every second of the clock is accounted for.
  assert result['test_accuracy'] == report['test_accuracy']


def test_steps_faster_than_planned_extend_the_run_to_its_budget(tmp_path, monkeypatch):
  clock = FakeClock(monkeypatch, full_step=1.0, low_res_step=0.25, eval_batch=2.0)
  config = tiny_config(total_epochs=0.0, total_seconds=60.0, eval_every_epochs=100, checkpoint_every_epochs=100,
                       **{'aug.randaugment_layers': 0, 'low_res_stage.fraction': 0.5})
  halve = lambda step: step == budget.CALIBRATION_STEPS and setattr(clock, 'full_step', 0.5)  # After calibration.
  train.train_and_evaluate(config, str(tmp_path), clock=clock, on_step=halve)
  report, log = json.loads((tmp_path / 'report.json').read_text()), records(tmp_path)
  first = next(r['plan']['total_steps'] for r in log if 'plan' in r)
  # No evaluation before the last: the plan is redone at the logged steps (every 5), and the run fills its budget
  # to within one step (not charging an evaluation at an earlier plan's end).
  assert report['steps'] > first and 60.0 - 0.5 < report['train_seconds'] <= 60.0, report
  replans = [r['replan'] for r in log if 'replan' in r]
  assert {r['step'] for r in log if 'replan' in r} <= set(range(5, report['steps'], 5))
  low = [r for r in replans if r['low_res_fraction']]
  assert low and all(r['low_res_fraction'] == 0.0 for r in replans[len(low):])  # Once past the switch, it stays.
  switch = budget.low_res_steps(0.5, low[-1]['total_steps'])
  assert switch < report['steps'] * 0.5, (switch, report['steps'])  # The run grew after it reached full size.


def test_the_switch_to_full_size_moves_with_the_plan_until_the_run_reaches_it():
  never = lambda step: False
  plan = budget.Plan(budget_seconds=100.0, total_steps=40, step_seconds=1.0, eval_seconds=0.0,
                     checkpoint_seconds=0.0, low_res_fraction=0.5, low_res_step_seconds=0.5)
  plan.replan(step=10, elapsed=10.0, evaluates=never, checkpoints=never)  # Before the switch at step 20.
  assert plan.low_res_fraction == 0.5 and plan.low_res_steps() == round(0.5 * plan.total_steps) > 20
  plan = budget.Plan(budget_seconds=100.0, total_steps=40, step_seconds=1.0, eval_seconds=0.0,
                     checkpoint_seconds=0.0, low_res_fraction=0.5, low_res_step_seconds=0.5)
  assert plan.replan(step=25, elapsed=25.0, evaluates=never, checkpoints=never) == 100  # 75 full-size steps of 1 s.
  assert plan.low_res_steps() == 0  # Not back to small images at step 26 (half of 100 would be 50).


def test_a_budgeted_run_resumes_with_its_plan(tmp_path, monkeypatch):
  clock = FakeClock(monkeypatch, full_step=1.0, low_res_step=0.25, eval_batch=2.0)
  config = tiny_config(total_epochs=0.0, total_seconds=40.0, **{'aug.randaugment_layers': 0})

  train_until_interrupted(config, tmp_path, budget.CALIBRATION_STEPS + 5, clock=clock)  # After the plan.
  train.train_and_evaluate(config, str(tmp_path), clock=clock)
  report = json.loads((tmp_path / 'report.json').read_text())
  assert len([r for r in records(tmp_path) if 'plan' in r]) == 1  # Resumed with its plan, not calibrated again.
  assert report['steps'] == report['plan']['total_steps'] > budget.CALIBRATION_STEPS + 5
  last = next(r for r in reversed(records(tmp_path)) if 'lr' in r)  # The lr of the last step, step T - 1.
  total, warmup = report['steps'], train._schedule_steps(config, 9)[1]
  expected = optim.learning_rate(total - 1, total, peak_lr=config.optim.lr, warmup_steps=warmup, decay_type='cosine',
                                 min_lr=config.schedule.min_lr)
  assert last['step'] == total and last['lr'] == pytest.approx(float(expected), rel=1e-5)  # Cosine ends with the plan.


def test_replanning_corrects_the_stage_that_was_measured():
  plan = budget.Plan(budget_seconds=100.0, total_steps=100, step_seconds=1.0, eval_seconds=0.0,
                     checkpoint_seconds=0.0, low_res_fraction=0.5, low_res_step_seconds=0.5)
  plan.rescale(first=0, last=20, seconds=4.0)  # Small images: 0.2 s a step, not 0.5.
  assert (plan.low_res_step_seconds, plan.step_seconds) == (0.2, 1.0)
  plan.rescale(first=60, last=70, seconds=15.0)  # Full size: 1.5 s.
  assert (plan.low_res_step_seconds, plan.step_seconds) == (0.2, 1.5)
  plan.rescale(first=40, last=60, seconds=2 * (10 * 0.2 + 10 * 1.5))  # Across the switch at 50: both, twice as slow.
  assert plan.low_res_step_seconds == pytest.approx(0.4) and plan.step_seconds == pytest.approx(3.0)
  never = lambda step: False
  assert plan.replan(step=60, elapsed=40.0, evaluates=never, checkpoints=never) == 60 + 20  # 60 s left, 3 s a step.
  assert plan.replan(step=60, elapsed=100.0, evaluates=never, checkpoints=never) == 61  # Spent: one more, the last.


def test_the_cadence_logs_evaluates_and_checkpoints_at_epoch_ends_and_the_last_step():
  from vit_jax.training.cadence import Cadence
  cadence = Cadence(steps_per_epoch=10, log_every_steps=4, eval_every_epochs=2, checkpoint_every_epochs=1,
                    validating=True)
  assert [s for s in range(1, 36) if cadence.logs(s, 35)] == [4, 8, 12, 16, 20, 24, 28, 32, 35]
  assert [s for s in range(1, 36) if cadence.evaluates(s, 35)] == [20, 35]
  assert [s for s in range(1, 36) if cadence.checkpoints(s, 35)] == [10, 20, 30, 35]
  assert [s for s in range(1, 36) if cadence.periodic_evaluation(s)] == [20]  # The last step's is the plan's to add.
  blind = Cadence(10, 4, 2, 1, validating=False)
  assert not any(blind.evaluates(s, 35) for s in range(1, 36)) and blind.checkpoints(35, 35)
