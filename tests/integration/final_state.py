"""A callback the method contract test adds to its fits, so the test can compare checkpoints, validate
and predict with the weights and logits the fitting process itself ended with."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from debiaslit.data.collate import PadCollator
from debiaslit.utils.run_dir import run_dir

FILE = "final_state.pt"


class SaveFinalState(Callback):
    """At the end of fit, rank 0 writes ``final_state.pt`` to the run folder: the state dict, the size of
    every evaluation set and, per set, a batch of ``rows`` examples (first, last and evenly between) with
    the eval-mode logits of the final model on it."""

    def __init__(self, rows: int = 5) -> None:
        self.rows = rows

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        folder = run_dir(trainer)  # broadcasts: every rank calls it
        if folder is None or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        collate = PadCollator(datamodule.tokenizer.pad_token_id or 0)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        batches, logits, sizes = {}, {}, {}
        pl_module.eval()
        with torch.no_grad():
            for name, ds in datamodule.eval_datasets.items():
                picks = sorted({round(k * (len(ds) - 1) / (self.rows - 1)) for k in range(self.rows)})
                batches[name] = collate([ds[i] for i in picks])
                logits[name] = pl_module(batches[name])
                sizes[name] = len(ds)
        pl_module.train()
        torch.save({"state_dict": state, "batches": batches, "logits": logits, "sizes": sizes}, folder / FILE)
