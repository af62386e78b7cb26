"""``debiaslit predict`` output: ``predictions/<set>.csv`` per evaluation set in the run folder."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from debiaslit.data.schema import NLI_LABELS
from debiaslit.utils.files import atomic_path
from debiaslit.utils.run_dir import run_dir


def _gather(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's rows on every rank (ranks predict disjoint shards)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]


class PredictionCSVWriter(BasePredictionWriter):
    """One CSV per evaluation set: uid, gold label, one probability per class, predicted label.

    Needs a DataModule with ``eval_datasets`` (NLI) and an evaluator whose ``predict_step`` returns
    ``index``, ``probs`` and ``preds`` (:class:`~debiaslit.evaluation.NLIEvaluator`). Rows are sorted
    by dataset order; nothing is written without a run folder (``fast_dev_run``).
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        folder = run_dir(trainer)
        datasets = list(getattr(trainer.datamodule, "eval_datasets", {}).values())
        # one list of batches per dataloader; Lightning flattens it when there is a single loader
        per_loader = [predictions] if len(datasets) == 1 else predictions
        for ds, batches in zip(datasets, per_loader, strict=True):
            rows = _gather([row for batch in batches for row in _rows(ds, batch)])
            if folder is None or not trainer.is_global_zero:
                continue
            rows.sort(key=lambda r: r.pop("_index"))
            out = folder / "predictions" / f"{ds.name}.csv"
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["uid"])
                writer.writeheader()
                writer.writerows(rows)


def _rows(ds: Any, batch: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    out = []
    columns = batch["index"].tolist(), batch["probs"].tolist(), batch["preds"].tolist()
    for i, probs, pred in zip(*columns, strict=True):
        example = ds.examples[i]
        row: dict[str, Any] = {"_index": i, "uid": example.uid, "gold_label": example.label}
        names = NLI_LABELS if len(probs) == len(NLI_LABELS) else [f"class_{k}" for k in range(len(probs))]
        row.update({f"p_{name}": f"{p:.6f}" for name, p in zip(names, probs, strict=True)})
        row["predicted_label"] = ds.label_names[pred]
        out.append(row)
    return out
