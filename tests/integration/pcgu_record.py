"""A callback the PCGU DDP test adds to its fits: every rank writes the partitions it selected at each
step and its final weights, so the test can compare ranks and process counts."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from debiaslit.utils.run_dir import run_dir


class RecordSelections(Callback):
    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.steps.append(torch.cat(pl_module.last_selection.per_group).nonzero().flatten().cpu())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        folder = run_dir(trainer)  # broadcasts: every rank calls it
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"steps": self.steps, "state_dict": state}, folder / f"pcgu_rank{trainer.global_rank}.pt")
