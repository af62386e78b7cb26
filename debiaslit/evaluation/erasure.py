"""Concept-erasure evaluation (METHODS.md §6.4 metrics): every row of one table is an edit of the same
model on the same examples (no edit, the learned eraser, LEACE, SHIFT-style top-N ablation, random
latents of the same count, every latent removed: the floor of any latent mask, since the SAE error
term stays), scored by

* task accuracy of the method's task probe, per (task, concept) group and the worst group;
* accuracy of concept and task probes fitted afresh on the edited features (linear and MLP; fitted on
  even, scored on odd example indices), the honest check: a new probe, not the one erased against;
* latents removed, relative edit size Σ‖x′ − x‖² / Σ‖x‖² over attended read-site tokens, and the
  change of next-token loss for LM backbones.

The method provides ``representations(batch, row)``, ``task_logits(pooled, row)``,
``erased_latents(row)`` and ``lm_loss(batch, row)``. Under DDP the per-example values of every rank
are gathered (and de-duplicated by ``index``) before any probe is fitted, so 2 ranks give the table
of 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only

from debiaslit.errors import ConfigError
from debiaslit.evaluation.base import Evaluator
from debiaslit.evaluation.probes import held_out_accuracy
from debiaslit.metrics.results_table import comparison_markdown, write_comparison
from debiaslit.utils.files import save_png
from debiaslit.utils.run_dir import run_dir

ROWS = ("none", "eraser", "leace", "shift", "random", "all_latents")
#: Columns of the table, in order (``lm_loss_change`` only for LM backbones).
COLUMNS = (
    "row", "latents_erased", "task_acc", "worst_group_acc", "fresh_task_linear", "fresh_concept_linear",
    "fresh_concept_mlp", "concept_chance", "edit_size", "lm_loss_change",
)  # fmt: skip
PLOTTED = ("task_acc", "worst_group_acc", "fresh_concept_linear", "fresh_concept_mlp")


class ErasureEvaluator(Evaluator):
    """The erasure table of a method on its evaluation sets (batches with ``profession``, ``gender``,
    ``index``).

    Args:
        rows: Which edits to compare (``none`` is always computed: the others are measured against it).
        mlp_hidden: Hidden units of the fresh MLP probe.
        probe_steps: Full-batch steps of each fresh probe.
        seed: Initialisation seed of the fresh probes.
    """

    def __init__(
        self, rows: list[str] | None = None, mlp_hidden: int = 64, probe_steps: int = 100, seed: int = 0
    ) -> None:
        super().__init__()
        rows = list(ROWS if rows is None else rows)
        unknown = [r for r in rows if r not in ROWS]
        if unknown:
            raise ConfigError(f"evaluator.rows: unknown rows {unknown}; valid: {', '.join(ROWS)}")
        self.rows = ["none", *(r for r in rows if r != "none")]
        self.mlp_hidden, self.probe_steps, self.seed = mlp_hidden, probe_steps, seed
        self._store: dict[str, list[torch.Tensor]] = {}

    def _add(self, key: str, value: torch.Tensor) -> None:
        self._store.setdefault(key, []).append(value.detach().float().cpu())

    def step(self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        for key in ("profession", "gender", "index"):
            if key not in batch:
                raise ConfigError(
                    f"{type(self).__name__} needs batch field {key!r} (a Bias in Bios DataModule)"
                )
            self._add(key, batch[key])
        mask = batch.get("attention_mask")
        base_pooled, base_hidden = module.representations(batch, "none")
        weights = (
            torch.ones(base_hidden.shape[:2], device=base_hidden.device) if mask is None else mask.float()
        )
        for row in self.rows:
            pooled, hidden = (
                (base_pooled, base_hidden) if row == "none" else module.representations(batch, row)
            )
            self._add(f"{row}/features", pooled)
            self._add(f"{row}/task_pred", module.task_logits(pooled, row).argmax(-1))
            self._add(f"{row}/edit_sq", (((hidden - base_hidden).float() ** 2).sum(-1) * weights).sum(1))
            self._add(f"{row}/norm_sq", ((base_hidden.float() ** 2).sum(-1) * weights).sum(1))
            lm = module.lm_loss(batch, row)
            if lm is not None:
                self._add(f"{row}/lm_ce", lm[0])
                self._add(f"{row}/lm_tokens", lm[1])

    def _gathered(self) -> dict[str, torch.Tensor]:
        """Every rank's per-example values, concatenated and de-duplicated by ``index`` (DDP padding)."""
        local = {k: torch.cat(v) for k, v in self._store.items()}
        self._store = {}
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(parts, local)
            local = {k: torch.cat([p[k] for p in parts]) for k in local}
        if not local:
            return {}
        index = local["index"].long()
        order = torch.argsort(index, stable=True)
        first = torch.ones_like(order, dtype=torch.bool)
        first[1:] = index[order][1:] != index[order][:-1]
        keep = order[first]
        return {k: v[keep] for k, v in local.items()}

    def table(self, module: pl.LightningModule, values: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """One dict per row with the :data:`COLUMNS`."""
        prof, gender, index = values["profession"].long(), values["gender"].long(), values["index"].long()
        num_prof = int(module.hparams.num_professions)
        odd = gender[index % 2 == 1]
        chance = float(torch.bincount(odd, minlength=2).max()) / max(1, odd.numel())
        base_lm = None
        if "none/lm_ce" in values:
            base_lm = float(values["none/lm_ce"].sum() / values["none/lm_tokens"].sum())
        out = []
        for row in self.rows:
            feats, pred = values[f"{row}/features"], values[f"{row}/task_pred"].long()
            correct = (pred == prof).float()
            groups = [
                float(correct[(prof == p) & (gender == g)].mean())
                for p in range(num_prof)
                for g in range(2)
                if bool(((prof == p) & (gender == g)).any())
            ]
            erased = module.erased_latents(row)
            fit = {"index": index, "steps": self.probe_steps, "seed": self.seed}
            result = {
                "row": row,
                "latents_erased": 0 if erased is None else int(sum(e.numel() for e in erased)),
                "task_acc": float(correct.mean()),
                "worst_group_acc": min(groups),
                "fresh_task_linear": held_out_accuracy(feats, prof, num_classes=num_prof, **fit),
                "fresh_concept_linear": held_out_accuracy(feats, gender, num_classes=2, **fit),
                "fresh_concept_mlp": held_out_accuracy(
                    feats, gender, num_classes=2, hidden=self.mlp_hidden, **fit
                ),
                "concept_chance": chance,
                "edit_size": float(values[f"{row}/edit_sq"].sum() / values[f"{row}/norm_sq"].sum()),
                "lm_loss_change": None,
            }
            if base_lm is not None:
                lm = float(values[f"{row}/lm_ce"].sum() / values[f"{row}/lm_tokens"].sum())
                result["lm_loss_change"] = lm - base_lm
            out.append(result)
        return out

    def epoch_end(self, module: pl.LightningModule, stage: str) -> None:
        values = self._gathered()
        trainer = module.trainer
        if trainer.sanity_checking or not values:
            return
        rows = self.table(module, values)
        scalars = {
            f"{stage}/{r['row']}/{k}": float(v)
            for r in rows
            for k, v in r.items()
            if k != "row" and v is not None
        }
        module.log_dict(scalars, add_dataloader_idx=False, sync_dist=False)
        self._report(module, stage, rows, run_dir(trainer))

    @rank_zero_only
    def _report(
        self, module: pl.LightningModule, stage: str, rows: list[dict[str, Any]], log_dir: Path | None
    ) -> None:
        if log_dir is None:
            table = comparison_markdown(rows, COLUMNS)
        else:
            stem = f"{stage}_epoch{module.current_epoch:02d}_erasure"
            table = write_comparison(rows, COLUMNS, log_dir / "results", stem)
            save_png(
                erasure_figure(rows, f"{stage}, epoch {module.current_epoch}"),
                log_dir / "results" / f"{stem}.png",
            )
        experiment = getattr(module.logger, "experiment", None)
        if hasattr(experiment, "add_text"):
            experiment.add_text(f"{stage}/erasure", table, module.trainer.global_step)
        if hasattr(experiment, "add_figure"):
            fig = erasure_figure(rows, f"{stage}, epoch {module.current_epoch}")
            experiment.add_figure(f"{stage}/erasure", fig, module.trainer.global_step, close=True)
        print(f"\n[debiaslit] {stage} erasure (epoch {module.current_epoch}):\n{table}\n", flush=True)


def erasure_figure(rows: list[dict[str, Any]], title: str) -> Any:
    """Grouped bars: task, worst-group and fresh-concept-probe accuracies of every row, with the
    concept's chance level as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 3.5))
    width = 0.8 / len(PLOTTED)
    for j, metric in enumerate(PLOTTED):
        ax.bar(
            [i + (j - (len(PLOTTED) - 1) / 2) * width for i in range(len(rows))],
            [r[metric] for r in rows],
            width,
            label=metric,
        )
    ax.axhline(rows[0]["concept_chance"], color="k", linestyle="--", linewidth=1, label="concept chance")
    ax.set_xticks(range(len(rows)), [f"{r['row']}\n({r['latents_erased']} latents)" for r in rows])
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
