"""The one folder a run writes its tables, figures and masks to."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl


def run_dir(trainer: pl.Trainer) -> Path | None:
    """``logs/<name>/version_N`` of the trainer's logger, or ``None`` when nothing may be written.

    ``None`` without a logger, with a logger that has no run folder (``log_dir``) of its own, and under
    ``fast_dev_run`` (its DummyLogger has none): such runs leave no files. Call it on every rank (the
    path is broadcast from rank 0); write on rank 0 only.
    """
    # DummyLogger answers every attribute with a no-op function: only a real path counts
    log_dir = None if trainer.fast_dev_run else getattr(trainer.logger, "log_dir", None)
    log_dir = str(log_dir) if isinstance(log_dir, (str, os.PathLike)) else None
    log_dir = trainer.strategy.broadcast(log_dir)
    return None if log_dir is None else Path(log_dir)
