"""The one folder a run writes its tables, figures and masks to."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl


def run_dir(trainer: pl.Trainer) -> Path | None:
    """``logs/<name>/version_N`` of the trainer's logger, or ``None`` when nothing may be written.

    ``None`` without a logger, with a logger that has no run folder (``log_dir``) of its own, and under
    ``fast_dev_run`` (its DummyLogger has none): such runs leave no files. Call it on every rank (the path is broadcast from
    rank 0); write on rank 0 only.
    """
    log_dir = None if trainer.fast_dev_run else getattr(trainer.logger, "log_dir", None)
    return None if log_dir is None else Path(trainer.strategy.broadcast(str(log_dir)))
