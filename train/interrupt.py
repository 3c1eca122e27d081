"""Ctrl-C and SIGTERM during training: one line, exit 130, resumable (issue 21).

No torch here: ``train.run`` installs :class:`StopOnSignal` before it imports torch (seconds), so
a signal that comes while a rank starts is not lost. The training loop (``train/trainer.py``)
reads the flag between two steps, every rank stops at the same step, the pending checkpoint is
completed, and :class:`TrainingInterrupted` carries the line to print.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

# Set by train.run's launcher for the ranks it starts through torchrun: an interrupted rank exits 0
# (torchrun would report a nonzero exit as a failed worker, with its error report) and the
# launcher, which saw the signal, exits 130.
LAUNCHER_ENV = "DOMAINLM_LAUNCHER"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Ctrl-C (SIGINT) or SIGTERM -> a request to stop that the training loop honours between two
    steps, on every rank at the same step (an all-reduce of the flag). A second SIGINT stops the
    process at once (the default action: no traceback); SIGTERM may come again (train.run's launcher
    repeats it until the ranks are gone), it only asks again. Install it as early as possible (train.run
    does, before importing torch); used as a context manager it restores the previous handlers."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous.setdefault(sig, signal.signal(sig, self._handle))
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 (signal handler signature)
        if self.signum and signum == signal.SIGINT:  # Ctrl-C twice: stop now, the hard way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> StopOnSignal:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()


class TrainingInterrupted(Exception):
    """Training stopped on a signal, on every rank after ``step`` steps; ``checkpoint_step`` is the
    newest complete checkpoint's step (None: none yet). ``message`` is the one line for the user."""

    def __init__(self, step: int, checkpoint_step: int | None, ckpt_every: int):
        self.step, self.checkpoint_step = step, checkpoint_step
        if checkpoint_step is not None:
            self.message = (f"interrupted at step {step}; last checkpoint step {checkpoint_step}; "
                            "rerun the same command to resume")
        else:
            why = "checkpoints are off (train.ckpt_every=-1)" if ckpt_every < 0 else \
                f"no checkpoint yet (train.ckpt_every={ckpt_every})"
            self.message = f"interrupted at step {step}; {why}: a rerun starts from step 0"
        super().__init__(self.message)
