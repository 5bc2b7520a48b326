"""Planning a run to a wall-clock budget (`config.total_seconds`).

The first CALIBRATION_STEPS steps run with the schedule's length open (their
learning rate does not depend on it: warmup, or the start of the decay);
then the step count is planned so that the remaining steps, with the
evaluations and checkpoints they bring, fit in what is left of the budget.
"""

from __future__ import annotations

from collections.abc import Callable

CALIBRATION_STEPS = 8  # The first compiles; the median of the other seven is the step time.


def plan_total_steps(*, remaining: float, start: int, step_seconds: float, eval_seconds: float,
                     checkpoint_seconds: float, evaluates: Callable[[int], bool],
                     checkpoints: Callable[[int], bool]) -> int:
  """The largest total step count T >= start whose steps start+1..T, each
  step's evaluation (where `evaluates(step)`) and checkpoint (where
  `checkpoints(step)`), and the last step's evaluation and checkpoint (always
  done) take at most `remaining` seconds; `start` if not even one step fits."""
  def extras(step, last: bool) -> float:
    evaluating = last or evaluates(step)
    return evaluating * eval_seconds + (evaluating or checkpoints(step)) * checkpoint_seconds

  total, spent = start, 0.0  # spent: steps start+1..total, as steps before the last.
  while spent + step_seconds + extras(total + 1, last=True) <= remaining:
    total += 1
    spent += step_seconds + extras(total, last=False)
  return total
