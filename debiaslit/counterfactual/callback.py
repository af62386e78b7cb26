"""``CounterfactualInference``: TIE / TE_model after ``debiaslit test``, from the same run."""

from __future__ import annotations

import json
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info

from debiaslit.counterfactual.inference import METHODS, OBJECTIVES
from debiaslit.counterfactual.saved import SavedSet, counterfactual_evaluate, save_predictions
from debiaslit.errors import ConfigError
from debiaslit.metrics.results_table import results_markdown, write_results
from debiaslit.utils.files import write_text_atomic
from debiaslit.utils.run_dir import run_dir


class CounterfactualInference(pl.Callback):
    """At the end of ``test``: fit ``c`` on ``fit_on`` and write TIE / TE_model results for every set.

    Needs ``data.init_args.bias`` (the evaluation batches then carry ``bias_probs``). Writes
    ``results/test_<method>_epochEE.{csv,md}``, ``counterfactual/predictions.json`` (reusable with
    :func:`debiaslit.counterfactual.load_predictions`) and ``counterfactual/fitted.json`` (c per method),
    and logs ``test_<method>/<set>/...`` scalars. Under DDP every rank gathers all predictions.

    Args:
        fit_on: The in-distribution evaluation set to fit c on (e.g. ``mnli_dev_matched``, or the
            held-out split).
        methods: Any of ``tie``, ``te_model``.
        objective: ``reference`` (c4n code, default) or ``cfvqa`` (the paper's stated objective) for TIE.
    """

    def __init__(
        self,
        fit_on: str,
        methods: list[str] | None = None,
        objective: str = "reference",
        epochs: int = 16,
        lr: float = 1e-4,
        batch_size: int = 64,
        seed: int = 42,
    ) -> None:
        self.fit_on = fit_on
        self.methods = list(methods or METHODS)
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"CounterfactualInference.methods: '{m}' is not one of {METHODS}")
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"CounterfactualInference.objective must be one of {OBJECTIVES}, got '{objective}'"
            )
        self.objective = objective
        self.fit_options = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
        self._rows: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows = {}

    @torch.no_grad()
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: dict[str, torch.Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "bias_probs" not in batch:
            raise ConfigError(
                "CounterfactualInference needs bias probabilities on the evaluation sets: "
                "set data.init_args.bias"
            )
        p_m = pl_module(batch).float().softmax(-1)
        self._rows.setdefault(dataloader_idx, []).append(
            (batch["index"].cpu(), p_m.cpu(), batch["bias_probs"].float().cpu())
        )

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datasets = list(trainer.datamodule.eval_datasets.values())
        local = {k: [tuple(t.tolist() for t in row) for row in rows] for k, rows in self._rows.items()}
        shards = [local]
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            shards = [None] * trainer.world_size
            dist.all_gather_object(shards, local)
        sets = {}
        for k, ds in enumerate(datasets):
            p_m = torch.zeros(len(ds), 3)
            p_b = torch.zeros(len(ds), 3)
            seen = torch.zeros(len(ds), dtype=torch.bool)
            for shard in shards:
                for index, pm, pb in shard.get(k, []):
                    p_m[index], p_b[index] = torch.tensor(pm), torch.tensor(pb)
                    seen[index] = True
            if not seen.all():  # a zero row would count as "entailment" and enter the fit of c
                missing = int((~seen).sum())
                raise ConfigError(
                    f"CounterfactualInference: evaluation set '{ds.name}' has {missing} of {len(ds)} rows "
                    "without predictions (e.g. trainer.limit_test_batches < 1.0); TIE / TE_model need "
                    "every row: test on full sets"
                )
            sets[ds.name] = SavedSet.from_dataset(ds, p_m, p_b)
        log_dir = run_dir(trainer)  # None under fast_dev_run: nothing is written
        fitted = {}
        for method in self.methods:
            objective = self.objective if method == "tie" else "reference"
            results, c = counterfactual_evaluate(sets, self.fit_on, method, objective, **self.fit_options)
            fitted[method] = {"c": c, "objective": objective, "fit_on": self.fit_on, **self.fit_options}
            if trainer.is_global_zero:
                listed = list(results.values())
                table = (
                    results_markdown(listed)
                    if log_dir is None
                    else write_results(listed, log_dir / "results", f"test_{method}", trainer.current_epoch)
                )
                rank_zero_info(
                    f"\n[debiaslit] counterfactual {method} (c = {c:.4f}, {objective}):\n{table}\n"
                )
                if trainer.logger is not None:
                    scalars = {
                        f"test_{method}/{k}": v for r in results.values() for k, v in r.scalars().items()
                    }
                    trainer.logger.log_metrics({**scalars, f"test_{method}/c": c}, step=trainer.global_step)
        if trainer.is_global_zero and log_dir is not None:
            save_predictions(
                log_dir / "counterfactual" / "predictions.json", list(sets.values()), {"fitted": fitted}
            )
            write_text_atomic(log_dir / "counterfactual" / "fitted.json", json.dumps(fitted, indent=2))
        self.fitted = fitted
