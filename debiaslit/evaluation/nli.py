"""NLI / HANS evaluation: micro and per-class accuracy per evaluation set, HANS heuristic x label cells
and subcases, results tables (CSV + markdown) and the table as TensorBoard text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from debiaslit.errors import ConfigError
from debiaslit.evaluation.base import Evaluator
from debiaslit.metrics import GroupAccuracy
from debiaslit.metrics.predictions import predict_classes
from debiaslit.metrics.results_table import EvalResult, results_markdown, write_results
from debiaslit.utils.run_dir import run_dir

HANS_MAPPINGS = ("argmax", "prob_sum")


class NLIEvaluator(Evaluator):
    """Accuracy of a sequence classifier on every evaluation set of an NLI DataModule.

    HANS-style sets are scored after collapsing 3-way predictions to binary. Counts are sum states
    (:class:`GroupAccuracy`), so under DDP every example is counted exactly once.

    Args:
        hans_mapping: ``argmax`` (entailment iff argmax is entailment, McCoy et al.) or ``prob_sum``
            (entailment iff p_ent > p_neu + p_con).
    """

    def __init__(self, hans_mapping: str = "argmax") -> None:
        super().__init__()
        if hans_mapping not in HANS_MAPPINGS:
            raise ConfigError(f"evaluator.hans_mapping must be one of {HANS_MAPPINGS}, got '{hans_mapping}'")
        self.hans_mapping = hans_mapping
        self.metrics = nn.ModuleDict()
        self.subgroup_metrics = nn.ModuleDict()
        self._sets: list[Any] = []

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "eval_datasets"):
            return
        self._sets = list(datamodule.eval_datasets.values())
        for ds in self._sets:
            if ds.name not in self.metrics:
                self.metrics[ds.name] = GroupAccuracy(len(ds.group_names)).to(module.device)
                self.subgroup_metrics[ds.name] = GroupAccuracy(max(1, len(ds.subgroup_names))).to(
                    module.device
                )

    def predictions(self, logits: torch.Tensor, binary: bool) -> torch.Tensor:
        """Class predictions; on HANS-style sets 0 = entailment, 1 = non-entailment."""
        if not binary or self.hans_mapping == "argmax":
            return predict_classes(logits, binary)
        probs = logits.softmax(-1)
        return (probs[:, 0] <= probs[:, 1:].sum(-1)).long()

    def step(self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        ds = self._sets[dataloader_idx]
        preds = self.predictions(module(batch), ds.is_hans)
        self.metrics[ds.name].update(preds, batch["labels"], batch["groups"])
        if ds.subgroup_names:
            self.subgroup_metrics[ds.name].update(preds, batch["labels"], batch["subgroups"])

    def predict_step(
        self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int
    ) -> dict[str, Any]:
        ds = self._sets[dataloader_idx]
        logits = module(batch)
        return {
            "index": batch["index"],
            "probs": logits.softmax(-1),
            "preds": self.predictions(logits, ds.is_hans),  # in the set's label space (HANS: binary)
            "labels": batch["labels"],
        }

    def epoch_end(self, module: pl.LightningModule, stage: str) -> None:
        results = []
        for ds in self._sets:
            cells = self.metrics[ds.name].compute()
            subcases = self.subgroup_metrics[ds.name].compute() if ds.subgroup_names else None
            self.metrics[ds.name].reset()
            self.subgroup_metrics[ds.name].reset()
            results.append(EvalResult.from_counts(ds, cells, subcases))
        trainer = module.trainer
        if trainer.sanity_checking or not results:
            return
        scalars = {f"{stage}/{k}": v for r in results for k, v in r.scalars().items()}
        module.log_dict(scalars, add_dataloader_idx=False, sync_dist=False)
        # run_dir broadcasts from rank 0: every rank must call it, outside rank_zero_only
        self._report(module, stage, results, run_dir(trainer))

    @rank_zero_only
    def _report(
        self, module: pl.LightningModule, stage: str, results: list[EvalResult], log_dir: Path | None
    ) -> None:
        if log_dir is None:  # fast_dev_run / no logger: print only, write nothing
            table = results_markdown(results)
        else:
            table = write_results(results, log_dir / "results", stage, module.current_epoch)
        logger = module.logger
        if logger is not None and hasattr(logger.experiment, "add_text"):
            logger.experiment.add_text(f"{stage}/results", table, module.trainer.global_step)
        print(f"\n[debiaslit] {stage} results (epoch {module.current_epoch}):\n{table}\n", flush=True)
