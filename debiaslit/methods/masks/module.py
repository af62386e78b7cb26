"""Learned binary weight masks as a debiasing method (Zhao et al. 2020; Meissner et al. 2022).

The backbone's weights stay frozen (by default) and a binary mask over the Q/K/V/AO/I/O weights of
the chosen layers is learned with the shared ``loss``: cross-entropy to fit a task by masking
(Zhao), or a bias-aware loss on an already fine-tuned model to prune shortcuts (Meissner).
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_only

from debiaslit.backbones.components import COMPONENTS, ComponentMap
from debiaslit.cma.neurons import select_units
from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator
from debiaslit.gates import CubicSchedule, get_binarizer
from debiaslit.losses import ClassificationLoss
from debiaslit.methods.base import ClassifierModule
from debiaslit.methods.masks.export import export_pretrained, save_masks
from debiaslit.methods.masks.masked_weights import attach_masks

PENALTIES = ("none", "l1_sigmoid", "l0_expected", "lagrangian")


class MaskMethod(ClassifierModule):
    """Learn binary masks over backbone weights; W is frozen and never changed in place.

    Defaults reproduce Zhao et al.: threshold 0.01, 5 % pruned at initialisation, lr 1e-3, no weight
    decay, no penalty. Other arguments are :class:`~debiaslit.methods.base.ClassifierModule`'s.

    Args:
        components: Components to mask (``Q K V AO I O``, all by default).
        layers: Layer indices to mask (all by default).
        granularity: ``weight`` (one score per weight) or ``row`` (one per output neuron).
        binarizer: ``threshold`` | ``sigmoid_threshold`` | ``topk`` | ``hard_concrete``.
        threshold: τ of ``threshold``, final τ_f of ``sigmoid_threshold``.
        threshold_initial: Starting τ of the cubic schedule (default: ``threshold``).
        initial_sparsity: Fraction pruned at step 0 (``uniform`` init; ``topk``: 1 − starting top-t).
        final_sparsity: ``topk`` only: pruned fraction at the end of the schedule.
        init: ``uniform`` (Zhao: U(cut − π0·w, cut + (1 − π0)·w)) or ``constant`` (scores 0, Meissner).
        init_width: w of the uniform init (0.6 with τ = 0.01, π0 = 0.05 gives Zhao's U(−0.02, 0.58)).
        schedule: ``constant`` or ``cubic`` (threshold / top-t over the run's optimiser steps).
        warmup_fraction: Start plateau of the cubic schedule, as a fraction of the run's steps.
        cooldown_fraction: End plateau of the cubic schedule, as a fraction of the run's steps.
        penalty: ``none`` | ``l1_sigmoid`` (mean σ(S), Meissner) | ``l0_expected`` (hard_concrete) |
            ``lagrangian`` (λ1(ŝ − s*) + λ2(ŝ − s*)², λ by gradient ascent: reaches ``target_sparsity``).
        penalty_lambda: Final penalty weight; ramped with the schedule's progress (λ_t = λ·τ_t/τ_f).
        target_sparsity: s* of the ``lagrangian`` penalty (ramped with the schedule's progress).
        train_backbone: Also train the (masked) backbone weights.
        train_classifier: Train the pooler and task head (a new head on an un-fine-tuned model).
        mask_classifier: Also mask the pooler and task-head Linear layers (Zhao).
        cma_neurons_csv: A CMA ``neurons.csv``: mask only the rows producing its top units.
        cma_top_percent: Percentage of the ranked units (masked components and layers) to mask.
        cma_estimator: Estimator to read when the file holds several.
    """

    def __init__(
        self,
        backbone: str = "tiny-bert",
        num_labels: int = 3,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.0,
        dropout: float | None = None,
        init_weights_from: str | None = None,
        loss: ClassificationLoss | None = None,
        evaluator: Evaluator | None = None,
        components: list[str] | None = None,
        layers: list[int] | None = None,
        granularity: str = "weight",
        binarizer: str = "threshold",
        threshold: float = 0.01,
        threshold_initial: float | None = None,
        initial_sparsity: float = 0.05,
        final_sparsity: float | None = None,
        init: str = "uniform",
        init_width: float = 0.6,
        schedule: str = "constant",
        warmup_fraction: float = 0.0,
        cooldown_fraction: float = 0.0,
        penalty: str = "none",
        penalty_lambda: float = 10.0,
        target_sparsity: float = 0.1,
        train_backbone: bool = False,
        train_classifier: bool = False,
        mask_classifier: bool = False,
        cma_neurons_csv: str | None = None,
        cma_top_percent: float = 10.0,
        cma_estimator: str | None = None,
    ) -> None:
        super().__init__(
            backbone,
            num_labels,
            lr,
            weight_decay,
            warmup_ratio,
            dropout,
            init_weights_from,
            loss,
            evaluator,
        )
        self.binarizer = get_binarizer(binarizer)
        if penalty not in PENALTIES:
            raise ConfigError(f"model.penalty must be one of {PENALTIES}, got {penalty!r}")
        if penalty == "l0_expected" and binarizer != "hard_concrete":
            raise ConfigError("model.penalty l0_expected needs binarizer: hard_concrete")
        sparsities = (initial_sparsity, final_sparsity, target_sparsity)
        for name, value in zip(
            ("initial_sparsity", "final_sparsity", "target_sparsity"), sparsities, strict=True
        ):
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{name} must lie in [0, 1), got {value}")
        self.schedule = self._make_schedule()
        cmap = ComponentMap.for_model(self.model)
        components = list(COMPONENTS if components is None else components)
        layers = list(range(cmap.num_layers)) if layers is None else list(layers)
        for layer in layers:
            cmap.layer_module_path(layer)  # ConfigError naming the valid range
        selected = None
        if cma_neurons_csv:
            selected = select_units(cma_neurons_csv, cma_top_percent, components, layers, cma_estimator)

        for param in self.model.parameters():
            param.requires_grad_(train_backbone)
        if train_classifier:
            for path in cmap.task_head_paths:
                self.model.get_submodule(path).requires_grad_(True)
        self.masked = attach_masks(
            self.model,
            components,
            layers,
            self.binarizer,
            self.schedule.start,
            granularity=granularity,
            sparsity=initial_sparsity if init == "uniform" else 0.0,
            width=init_width,
            init=init,
            selected_units=selected,
            mask_heads=mask_classifier,
            seed=int(torch.randint(2**31 - 1, ()).item()),
        )
        if penalty == "lagrangian":  # multipliers maximise the loss: their gradient is negated
            self.lagrange = torch.nn.Parameter(torch.zeros(2))
            self.lagrange.register_hook(torch.neg)
        self._total_steps = 1
        self._progress = self.schedule.progress(0, 1)
        self._previous_masks: dict[str, torch.Tensor] | None = None

    def _make_schedule(self) -> CubicSchedule:
        hp = self.hparams
        plateaus = {"warmup_fraction": hp.warmup_fraction, "cooldown_fraction": hp.cooldown_fraction}
        if hp.binarizer == "topk":
            final = hp.initial_sparsity if hp.final_sparsity is None else hp.final_sparsity
            return CubicSchedule(1.0 - hp.initial_sparsity, 1.0 - final, hp.schedule, **plateaus)
        if hp.binarizer == "hard_concrete":
            return CubicSchedule(0.0, 0.0, "constant")
        start = hp.threshold if hp.threshold_initial is None else hp.threshold_initial
        return CubicSchedule(start, hp.threshold, hp.schedule, **plateaus)

    # ------------------------------------------------------------------------------- training
    def on_train_start(self) -> None:
        self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        """Schedule from the global step: resuming or validating never shifts it."""
        step = self.trainer.global_step
        self.masked.set_value(self.schedule.value(step, self._total_steps))
        self._progress = self.schedule.progress(step, self._total_steps)

    def penalty(self) -> torch.Tensor | None:
        """The sparsity term added to the loss (None without penalty).

        ``l1_sigmoid`` / ``l0_expected``: λ_t · mean keep probability, λ_t ramped like the schedule;
        ``lagrangian``: λ1·gap + λ2·gap² with gap = expected sparsity − s*_t.
        """
        if self.hparams.penalty == "none":
            return None
        if self.hparams.penalty == "lagrangian":
            gap = self.masked.expected_sparsity() - self.hparams.target_sparsity * self._progress
            self.log("mask/expected_sparsity_gap", gap.detach())
            return self.lagrange[0] * gap + self.lagrange[1] * gap**2
        keep = self.masked.mean_keep_probability(expected_l0=self.hparams.penalty == "l0_expected")
        return self.hparams.penalty_lambda * self._progress * keep

    def training_loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor], features: torch.Tensor | None = None
    ) -> torch.Tensor:
        loss = super().training_loss(logits, batch, features)
        penalty = self.penalty()
        if penalty is None:
            return loss
        self.log("mask/penalty", penalty)
        return loss + penalty

    # -------------------------------------------------------------------------------- logging
    def on_train_epoch_end(self) -> None:
        """Sparsity per component × layer (+ global, + bits flipped since last epoch) and a heatmap.

        Masks are identical on every DDP rank (same init, all-reduced gradients): no sync needed.
        """
        masks = self.masked.hard_masks()
        scalars = {f"mask/sparsity/{k}": v for k, v in self.masked.sparsity(masks).items()}
        scalars["mask/schedule_value"] = self.masked.mask_module(self.masked.paths[0]).current
        if self._previous_masks is not None:
            flipped = sum(int((masks[p] != self._previous_masks[p]).sum()) for p in masks)
            scalars["mask/flipped"] = flipped / sum(m.numel() for m in masks.values())
        self._previous_masks = masks
        if self.logger is not None:  # scalars and heatmap at the same explicit step
            self.logger.log_metrics(scalars, step=self.trainer.global_step)
        self._log_heatmap(scalars)

    def sparsity_grid(self, sparsity: dict[str, float]) -> tuple[list[str], list[int], list[list[float]]]:
        """(components, layers, [layer][component] sparsity; NaN where not masked)."""
        comps = list(dict.fromkeys(t.component for t in self.masked.targets if t.layer >= 0))
        layers = sorted({t.layer for t in self.masked.targets if t.layer >= 0})
        grid = [[sparsity.get(f"{c}/layer_{lyr}", float("nan")) for c in comps] for lyr in layers]
        return comps, layers, grid

    @rank_zero_only
    def _log_heatmap(self, scalars: dict[str, float]) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if not hasattr(experiment, "add_figure"):
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sparsity = {k.removeprefix("mask/sparsity/"): v for k, v in scalars.items()}
        comps, layers, grid = self.sparsity_grid(sparsity)
        fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(comps), 1.2 + 0.4 * len(layers)))
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0)
        ax.set_xticks(range(len(comps)), comps)
        ax.set_yticks(range(len(layers)), [str(lyr) for lyr in layers])
        ax.set_xlabel("component")
        ax.set_ylabel("layer")
        ax.set_title(f"pruned fraction (global {sparsity['global']:.3f})")
        for row, values in enumerate(grid):
            for col, value in enumerate(values):
                ax.text(col, row, f"{value:.3f}", ha="center", va="center", fontsize=7, color="white")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        experiment.add_figure("mask/sparsity_heatmap", fig, self.trainer.global_step, close=True)

    def on_fit_end(self) -> None:
        log_dir = Path(self.trainer.log_dir or ".")  # every rank reads it (broadcast), rank 0 writes
        self.write_outputs(log_dir)

    @rank_zero_only
    def write_outputs(self, log_dir: Path) -> None:
        """Final sparsity table (``mask_sparsity.{csv,md}``) and ``masks.safetensors`` in ``log_dir``."""
        log_dir.mkdir(parents=True, exist_ok=True)
        sparsity = self.masked.sparsity()
        comps, layers, grid = self.sparsity_grid(sparsity)
        with (log_dir / "mask_sparsity.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["layer", *comps])
            writer.writerows(
                [[lyr, *(f"{v:.6f}" for v in row)] for lyr, row in zip(layers, grid, strict=True)]
            )
        lines = ["| layer | " + " | ".join(comps) + " |", "|---:|" + "---:|" * len(comps)]
        lines += [
            f"| {lyr} | " + " | ".join(f"{v:.4f}" for v in row) + " |"
            for lyr, row in zip(layers, grid, strict=True)
        ]
        heads = {k: v for k, v in sparsity.items() if k.startswith("head/")}
        lines += ["", *(f"- {k}: {v:.4f}" for k, v in heads.items()), f"- global: {sparsity['global']:.4f}"]
        table = "\n".join(lines) + "\n"
        (log_dir / "mask_sparsity.md").write_text(table)
        save_masks(self.masked, log_dir / "masks.safetensors")
        print(f"\n[debiaslit] mask sparsity (pruned fraction):\n{table}", flush=True)

    # --------------------------------------------------------------------------------- export
    def export_pretrained(self, directory: str | Path, tokenizer: object | None = None) -> Path:
        """Plain transformers directory with the masks multiplied into the weights."""
        return export_pretrained(self.model, directory, tokenizer)

    def save_masks(self, path: str | Path) -> Path:
        """The masks alone (bit-packed safetensors + module-name map)."""
        return save_masks(self.masked, path)
