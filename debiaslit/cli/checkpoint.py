"""ModelCheckpoint that files checkpoints by run name instead of inside the logger directory."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """Writes to ``<root>/<logger name>/version_<N>/`` unless ``dirpath`` is given.

    The path is taken from rank 0's logger and broadcast, so every DDP process agrees on it.
    """

    def __init__(self, root: str = "checkpoints", **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None and trainer.logger is not None:
            version = trainer.logger.version
            version = version if isinstance(version, str) else f"version_{version}"
            path = Path(self.root) / str(trainer.logger.name) / version
            self.dirpath = trainer.strategy.broadcast(str(path))
        super().setup(trainer, pl_module, stage)
