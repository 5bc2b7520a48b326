"""Ctrl-C and SIGTERM for the command lines (standard library only).

    stop = StopRequest()
    stop.install()               # SIGINT and SIGTERM raise KeyboardInterrupt ...
    with stop.deferred():        # ... except in here, where they are recorded
      while not stop.requested:  # and the loop stops at a safe point; a second
        step()                   # signal still raises at once.
    sys.exit(stop.exit_status)   # 130 for Ctrl-C, 143 for SIGTERM

Deferring matters where a signal could land in the middle of work that must
not be cut (a donated train step, XLA compiling, a checkpoint being written).
"""

from __future__ import annotations

import contextlib
import signal


class Interrupted(KeyboardInterrupt):
  """A run stopped at a signal after keeping its work; the message says what was kept."""


class StopRequest:
  """SIGINT and SIGTERM, as a request to stop."""

  def __init__(self):
    self.signal: int | None = None  # The first signal received.
    self._deferring = False

  def install(self) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
      signal.signal(signum, self._handle)

  def _handle(self, signum, frame) -> None:
    first = self.signal is None
    self.signal = self.signal or signum
    if self._deferring and first:
      return
    raise KeyboardInterrupt

  @contextlib.contextmanager
  def deferred(self):
    """Inside, a first signal only sets `requested`."""
    self._deferring = True
    try:
      yield self
    finally:
      self._deferring = False

  @property
  def requested(self) -> bool:
    return self.signal is not None

  @property
  def exit_status(self) -> int:
    """The shell's convention, 128 + signal number (130: Ctrl-C, 143: SIGTERM)."""
    return 128 + (self.signal or signal.SIGINT)
