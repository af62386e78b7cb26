"""Remove the run folders of a run that failed before it produced anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from debiaslit.utils.run_dir import logger_folder

#: Files Lightning writes into a run folder before the first step (logger events, configs).
BOOKKEEPING = ("events.out.tfevents.*", "config.yaml", "hparams.yaml", "metrics.csv")


def _only_bookkeeping(folder: Path) -> bool:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return all(any(p.match(pattern) for pattern in BOOKKEEPING) for p in files)


class RemoveFailedRun(Callback):
    """A run that raises before its first training step and before writing any result leaves no
    ``logs/<name>/version_N`` (the logger creates it before the data is even read, so a bad data path
    would otherwise leave empty versions behind)."""

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not trainer.is_global_zero or trainer.global_step > 0 or trainer.fast_dev_run:
            return
        # this rank's view, not run_dir: other ranks may not reach this hook to broadcast
        folder = logger_folder(trainer)
        if folder is not None and folder.is_dir() and _only_bookkeeping(folder):
            shutil.rmtree(folder)
            for parent in (folder.parent, folder.parent.parent):  # logs/<name>, logs: when now empty
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
