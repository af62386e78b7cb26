"""A test-only callback that SIGKILLs its own ``debiaslit fit`` at a chosen global step.

Added on the command line (``--trainer.callbacks+=tests.reliability.kill.KillAt``; the repository root on
PYTHONPATH). SIGKILL cannot be caught: no ``finally``, no Lightning exception hook, no flushing, exactly
what an out-of-memory kill or a pre-empted cluster job does.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning.pytorch as pl
from fsspec.implementations.local import LocalFileOpener
from lightning.pytorch.callbacks import Callback

PHASES = ("mid_epoch", "checkpoint")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(Callback):
    """SIGKILL at global step ``step``: right after that optimiser step (``mid_epoch``), or halfway
    through writing ``last.ckpt`` at that step (``checkpoint``).

    ``checkpoint`` cuts Lightning's own write: its ``_atomic_save`` writes the bytes through fsspec's
    ``LocalFileOpener`` (inside a transaction: into a temporary file, moved onto the target on commit);
    the next ``write`` for ``last.ckpt`` writes half its bytes, syncs them to disk, and the process dies.
    """

    def __init__(self, step: int, phase: str = "mid_epoch") -> None:
        if phase not in PHASES:
            raise ValueError(f"KillAt.phase must be one of {PHASES}, got {phase!r}")
        self.step, self.phase = step, phase

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.phase == "mid_epoch" and trainer.global_step == self.step:
            _die()

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if self.phase == "checkpoint" and trainer.global_step == self.step:
            original = LocalFileOpener.write

            def write_half_then_die(opener: LocalFileOpener, data: bytes) -> int:
                if not str(opener.path).endswith("last.ckpt"):
                    return original(opener, data)
                opener.f.write(data[: len(data) // 2])
                opener.f.flush()
                os.fsync(opener.f.fileno())
                _die()
                return 0  # never reached

            LocalFileOpener.write = write_half_then_die
