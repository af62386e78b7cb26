"""ModelCheckpoint that files checkpoints by run name instead of inside the logger directory."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import DummyLogger


def _no_run_folder(trainer: pl.Trainer) -> bool:
    """fast_dev_run (its DummyLogger) or no logger: such runs save no checkpoint."""
    return bool(trainer.fast_dev_run) or trainer.logger is None or isinstance(trainer.logger, DummyLogger)


class RunCheckpoint(ModelCheckpoint):
    """Writes to ``<root>/<logger name>/version_<N>/`` unless ``dirpath`` is given.

    The path is taken from rank 0's logger and broadcast, so every DDP process agrees on it. Without a
    run folder (``fast_dev_run``, no logger) and no ``dirpath``, nothing is saved: Lightning's own
    ``on_train_end`` would otherwise write ``last.ckpt`` even under ``fast_dev_run``.
    """

    def __init__(self, root: str = "checkpoints", **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self._disabled = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._disabled = self.dirpath is None and _no_run_folder(trainer)
        if self._disabled:
            return
        if self.dirpath is None:
            version = trainer.logger.version
            version = version if isinstance(version, str) else f"version_{version}"
            path = Path(self.root) / str(trainer.logger.name) / version
            self.dirpath = trainer.strategy.broadcast(str(path))
        super().setup(trainer, pl_module, stage)

    def _should_skip_saving_checkpoint(self, trainer: pl.Trainer) -> bool:
        return self._disabled or super()._should_skip_saving_checkpoint(trainer)

    def _should_save_on_exception(self, trainer: pl.Trainer) -> bool:
        return not self._disabled and super()._should_save_on_exception(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._disabled:
            super().on_train_end(trainer, pl_module)
