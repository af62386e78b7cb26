"""The one folder a run writes its tables, figures and masks to."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl


def logger_folder(trainer: pl.Trainer, attribute: str = "log_dir") -> Path | None:
    """The logger's folder ``attribute`` (``log_dir``, ``root_dir``) as this rank sees it, or ``None``
    without a logger, under ``fast_dev_run``, or when the logger has no such folder. No broadcast."""
    # DummyLogger answers every attribute with a no-op function: only a real path counts
    value = None if trainer.fast_dev_run else getattr(trainer.logger, attribute, None)
    return Path(value) if isinstance(value, (str, os.PathLike)) else None


def run_dir(trainer: pl.Trainer) -> Path | None:
    """``logs/<name>/version_N`` of the trainer's logger, or ``None`` when nothing may be written.

    ``None`` without a logger, with a logger that has no run folder (``log_dir``) of its own, and under
    ``fast_dev_run`` (its DummyLogger has none): such runs leave no files. Call it on every rank (the
    path is broadcast from rank 0); write on rank 0 only.
    """
    folder = logger_folder(trainer)
    shared = trainer.strategy.broadcast(None if folder is None else str(folder))
    return None if shared is None else Path(shared)
