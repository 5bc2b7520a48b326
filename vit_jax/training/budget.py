"""Planning a run to a wall-clock budget (`config.total_seconds`).

The first CALIBRATION_STEPS steps run with the schedule's length open (their
learning rate does not depend on it: warmup, or the start of the decay);
then the step count is planned so that the remaining steps, with the
evaluations and checkpoints they bring, fit in what is left of the budget.
The plan is redone with the times measured since the last one at every
logged step, checkpoint and evaluation, so a machine that gets busier or
freer (or steps that run faster queued than timed one by one) moves the
end, not the budget. The switch from small to full-size images moves with
the plan until the run reaches it, and stays where it was after.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

CALIBRATION_STEPS = 8  # The first compiles; the median of the other seven is the step time.


def plan_total_steps(*, remaining: float, start: int, steps_seconds: Callable[[int], float], eval_seconds: float,
                     checkpoint_seconds: float, evaluates: Callable[[int], bool],
                     checkpoints: Callable[[int], bool]) -> int:
  """The largest total step count T >= start whose steps start+1..T (taking
  `steps_seconds(T)` in all), each step's evaluation (where `evaluates(step)`)
  and checkpoint (where `checkpoints(step)`), and the last step's evaluation
  and checkpoint (always done) take at most `remaining` seconds; `start` if
  not even one step fits."""
  def extras(step, last: bool) -> float:
    evaluating = last or evaluates(step)
    return evaluating * eval_seconds + (evaluating or checkpoints(step)) * checkpoint_seconds

  total, extras_before = start, 0.0  # extras_before: of steps start+1..total, as steps before the last.
  while steps_seconds(total + 1) + extras_before + extras(total + 1, last=True) <= remaining:
    total += 1
    extras_before += extras(total, last=False)
  return total


def low_res_steps(low_res_fraction: float, total_steps: int) -> int:
  """How many of a run's first steps train on small images (low_res_stage)."""
  return round(low_res_fraction * total_steps)


def stage_steps_seconds(start: int, low_res_fraction: float, low_res_seconds: float,
                        full_seconds: float) -> Callable[[int], float]:
  """steps_seconds for plan_total_steps: the first low_res_steps(fraction, T)
  steps take `low_res_seconds`, the others `full_seconds`."""
  def seconds(total: int) -> float:
    low = min(max(low_res_steps(low_res_fraction, total) - start, 0), total - start)
    return low * low_res_seconds + (total - start - low) * full_seconds
  return seconds


@dataclasses.dataclass
class Plan:
  """A run's length planned from measured times, and redone as they change."""

  budget_seconds: float
  total_steps: int
  step_seconds: float  # A full-size step.
  eval_seconds: float
  checkpoint_seconds: float
  low_res_fraction: float = 0.0  # The first this fraction of the steps see small images; 0 once past them.
  low_res_step_seconds: float = 0.0

  def low_res_steps(self) -> int:
    return low_res_steps(self.low_res_fraction, self.total_steps)

  def steps_seconds(self, start: int) -> Callable[[int], float]:
    return stage_steps_seconds(start, self.low_res_fraction, self.low_res_step_seconds, self.step_seconds)

  def replan(self, *, step: int, elapsed: float, evaluates: Callable[[int], bool],
             checkpoints: Callable[[int], bool]) -> int:
    """Sets and returns the total step count that ends the run in the budget;
    at least step + 1 even where the budget is spent (a slower machine), so
    the run's last step is a step of this plan and ends its schedule."""
    if step >= self.low_res_steps():  # At full size already: a longer plan must not send the run back.
      self.low_res_fraction = 0.0
    self.total_steps = max(step + 1, plan_total_steps(
        remaining=self.budget_seconds - elapsed, start=step, steps_seconds=self.steps_seconds(step),
        eval_seconds=self.eval_seconds, checkpoint_seconds=self.checkpoint_seconds, evaluates=evaluates,
        checkpoints=checkpoints))
    return self.total_steps

  def rescale(self, *, first: int, last: int, seconds: float) -> None:
    """Steps first+1..last took `seconds` (the machine got busier or freer, or
    steps run faster queued than timed one by one): sets the step time of
    their stage to what they took; an interval across the switch to small
    images scales both by how far it is from what they predicted."""
    if last <= first or seconds <= 0:
      return
    switch = self.low_res_steps()
    if last <= switch:
      self.low_res_step_seconds = seconds / (last - first)
    elif first >= switch:
      self.step_seconds = seconds / (last - first)
    else:
      predicted = self.steps_seconds(first)(self.total_steps) - self.steps_seconds(last)(self.total_steps)
      self.step_seconds *= seconds / predicted
      self.low_res_step_seconds *= seconds / predicted


class TimeBudget:
  """The loop's side of a time budget: the calibration steps' times, the
  plan, and the mark (step, time) its step times were last checked from.

    budget = TimeBudget(plan, clock)         # plan: the resumed run's, or None
    budget.time_calibration_step(seconds)    # while the schedule's length is open
    budget.calibrated()                      # CALIBRATION_STEPS timed: make the first plan
    budget.replans(step, total, due)         # a mark and a due step: rescale, then replan
  """

  def __init__(self, plan: Plan | None, clock: Callable[[], float]):
    self.plan, self.clock = plan, clock
    self.step_times: list[float] = []
    self.mark: tuple[int, float] | None = None  # Not before a first step (compiling) is done.

  def time_calibration_step(self, seconds: float) -> None:
    self.step_times.append(seconds)

  def calibrated(self) -> bool:
    return len(self.step_times) == CALIBRATION_STEPS

  def calibration_seconds(self) -> float:
    """The median step time, the first (compiling) left out."""
    return statistics.median(self.step_times[1:])

  def needs_mark(self) -> bool:
    return self.mark is None and self.plan is not None

  def set_mark(self, step: int) -> None:
    self.mark = (step, self.clock())

  def replans(self, step: int, total_steps: int, due: bool) -> bool:
    """Whether to redo the plan at `step`: at a logged, checkpointed or evaluated step before the end."""
    return self.mark is not None and step < total_steps and due

  def rescale(self, step: int) -> None:
    """The plan's step times, from what the steps since the mark took."""
    self.plan.rescale(first=self.mark[0], last=step, seconds=self.clock() - self.mark[1])

