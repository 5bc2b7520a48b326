"""When a training step logs, evaluates and checkpoints (pure Python).

    cadence = Cadence(steps_per_epoch=390, log_every_steps=50, eval_every_epochs=1, checkpoint_every_epochs=1,
                      validating=True)
    cadence.logs(step, total_steps)          # every log_every_steps-th step, and the last
    cadence.evaluates(step, total_steps)     # the end of every eval_every_epochs-th epoch, and the last step
    cadence.checkpoints(step, total_steps)   # likewise, and wherever it evaluates (saved first)

The last step's evaluation and checkpoint are not periodic: a time budget
plans with `periodic_evaluation` and `periodic_checkpoint` and adds those of
the last step where its end falls.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Cadence:
  steps_per_epoch: int
  log_every_steps: int
  eval_every_epochs: int
  checkpoint_every_epochs: int
  validating: bool  # A validation split exists (data.val_size > 0).

  def _periodic(self, step: int, every_epochs: int) -> bool:  # At the end of every `every_epochs`-th epoch.
    return step % self.steps_per_epoch == 0 and (step // self.steps_per_epoch) % every_epochs == 0

  def periodic_evaluation(self, step: int) -> bool:
    return self.validating and self._periodic(step, self.eval_every_epochs)

  def periodic_checkpoint(self, step: int) -> bool:
    return self._periodic(step, self.checkpoint_every_epochs)

  def logs(self, step: int, total_steps: int) -> bool:
    return step % self.log_every_steps == 0 or step == total_steps

  def evaluates(self, step: int, total_steps: int) -> bool:
    return self.validating and (step == total_steps or self._periodic(step, self.eval_every_epochs))

  def checkpoints(self, step: int, total_steps: int) -> bool:
    return step == total_steps or self.periodic_checkpoint(step) or self.evaluates(step, total_steps)
