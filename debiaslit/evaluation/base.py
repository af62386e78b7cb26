"""The evaluation component a method is given (``evaluator:`` in the config, as anomalib passes its
evaluator): what the method reports at validation / test end, kept out of the method itself."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn


class Evaluator(nn.Module):
    """Collects per-batch statistics and reports them at epoch end.

    An ``nn.Module`` so that metric states move with the method to its device and sync under DDP.
    ``step`` receives the method itself: an evaluator runs whatever forward it needs (class logits,
    token log-probabilities of a sentence pair, probe features).
    """

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        """Build per-dataset state once the DataModule is known."""

    def step(self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        raise NotImplementedError

    def epoch_end(self, module: pl.LightningModule, stage: str) -> None:
        """Compute, log and write the results of ``stage`` (``val`` / ``test``); reset the states."""
        raise NotImplementedError

    def predict_step(
        self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int
    ) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not support `debiaslit predict`")
