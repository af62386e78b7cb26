"""Learned binary weight masks as a debiasing method (Zhao et al. 2020; Meissner et al. 2022).

The backbone's weights stay frozen (by default) and a binary mask over the Q/K/V/AO/I/O weights of
the chosen layers is learned with the shared ``loss``: cross-entropy to fit a task by masking
(Zhao), or a bias-aware loss on an already fine-tuned model to prune shortcuts (Meissner).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_only

from debiaslit.backbones import load_tokenizer
from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.neurons import AllUnits, UnitSelection
from debiaslit.data.schema import NLI_LABELS
from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator
from debiaslit.gates import Binarizer, NoPenalty, ScoreInit, SparsityPenalty, Threshold, UniformInit
from debiaslit.gates.inits import check_initial_masks
from debiaslit.losses import ClassificationLoss
from debiaslit.methods.base import ClassifierModule
from debiaslit.methods.masks.export import export_pretrained, save_masks
from debiaslit.methods.masks.masked_weights import attach_masks
from debiaslit.methods.masks.sparsity_report import sparsity_figure, write_sparsity_outputs
from debiaslit.utils.run_dir import run_dir

#: What trains besides the mask scores.
TRAINABLE = ("masks", "head", "all")
OPTION = "model.init_args"


class MaskMethod(ClassifierModule):
    """Learn binary masks over backbone weights; W is frozen and never changed in place.

    Defaults reproduce Zhao et al.: ``Threshold(0.01)``, ``UniformInit(0.05, 0.6)`` (5 % pruned at
    initialisation), lr 1e-3, no weight decay, no penalty. Other arguments are
    :class:`~debiaslit.methods.base.ClassifierModule`'s.

    Args:
        units: Which weights get masks (``debiaslit.cma.neurons``): ``AllUnits(components, layers,
            include_head, granularity)`` (default: every Q/K/V/AO/I/O weight of every layer) or
            ``TopCMAUnits(neurons_csv, top_percent, estimator, ...)`` (rows of a CMA result's top units).
        binarizer: Scores → mask, with its own schedule (``debiaslit.gates``): ``Threshold``,
            ``SigmoidThreshold``, ``TopK``, ``HardConcrete``.
        init: Initial scores: ``UniformInit(sparsity, width)`` (Zhao) or ``ConstantInit(value)`` (Meissner).
            Refused when it prunes 100 % at step 0 or gives the scores no gradient.
        penalty: Sparsity term added to the loss: ``NoPenalty`` (None), ``L1Sigmoid(lambda_)``,
            ``ExpectedL0(lambda_)`` (hard-concrete), ``Lagrangian(target_sparsity)``; λ is ramped by
            the binarizer (λ_t = λ·τ_t/τ_f for threshold schedules).
        trainable: What trains besides the scores: ``masks`` (nothing: frozen W), ``head`` (the pooler and
            task head, for a new head on a model not fine-tuned), ``all`` (every backbone weight too).
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
        units: UnitSelection | None = None,
        binarizer: Binarizer | None = None,
        init: ScoreInit | None = None,
        penalty: SparsityPenalty | None = None,
        trainable: Literal["masks", "head", "all"] = "masks",
    ) -> None:
        super().__init__(
            backbone, num_labels, lr, weight_decay, warmup_ratio, dropout, init_weights_from, loss, evaluator
        )
        self.units = AllUnits() if units is None else units
        self.binarizer = Threshold() if binarizer is None else binarizer
        self.score_init = UniformInit() if init is None else init
        self.penalty = NoPenalty() if penalty is None else penalty
        if trainable not in TRAINABLE:
            raise ConfigError(f"{OPTION}.trainable must be one of {TRAINABLE}, got {trainable!r}")
        self.binarizer.validate(f"{OPTION}.binarizer")
        self.score_init.validate(f"{OPTION}.init", self.binarizer)
        self.penalty.validate(f"{OPTION}.penalty", self.binarizer, f"{OPTION}.binarizer")
        cmap = ComponentMap.for_model(self.model)
        selected = self.units.resolve(cmap, f"{OPTION}.units")

        for param in self.model.parameters():
            param.requires_grad_(trainable == "all")
        if trainable == "head":
            for path in cmap.task_head_paths:
                self.model.get_submodule(path).requires_grad_(True)
        self.masked = attach_masks(
            self.model,
            selected,
            self.binarizer,
            self.score_init,
            granularity=self.units.granularity,
            mask_heads=self.units.include_head,
            seed=int(torch.randint(2**31 - 1, ()).item()),
        )
        check_initial_masks(
            [m.scores for m in self.masked.gates()], self.binarizer, self.score_init,
            f"{OPTION}.init", f"{OPTION}.binarizer",
        )  # fmt: skip
        self._total_steps = 1
        self._progress = self.binarizer.progress(0, 1)
        self._ramp = self.binarizer.penalty_ramp(0, 1)
        self._previous_masks: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------------------- training
    def on_train_start(self) -> None:
        self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        """Schedule from the global step: resuming or validating never shifts it."""
        step, total = self.trainer.global_step, self._total_steps
        self.masked.set_value(self.binarizer.value(step, total))
        self._progress = self.binarizer.progress(step, total)
        self._ramp = self.binarizer.penalty_ramp(step, total)

    def sparsity_penalty(self) -> torch.Tensor | None:
        """The penalty's term at the current step (None without one); its diagnostics are logged."""
        terms = self.penalty(self.masked.gates(), self._ramp, self._progress)
        for name, value in terms.items():
            if name != "penalty":
                self.log(f"mask/{name}", value)
        return terms.get("penalty")

    def training_loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor], features: torch.Tensor | None = None
    ) -> torch.Tensor:
        loss = super().training_loss(logits, batch, features)
        penalty = self.sparsity_penalty()
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
        sparsity = self.masked.sparsity(masks)
        scalars = {f"mask/sparsity/{k}": v for k, v in sparsity.items()}
        scalars["mask/schedule_value"] = self.masked.mask_module(self.masked.paths[0]).current
        if self._previous_masks is not None:
            flipped = sum(int((masks[p] != self._previous_masks[p]).sum()) for p in masks)
            scalars["mask/flipped"] = flipped / sum(m.numel() for m in masks.values())
        self._previous_masks = masks
        if self.logger is not None:  # scalars and heatmap at the same explicit step
            self.logger.log_metrics(scalars, step=self.trainer.global_step)
        self._log_heatmap(sparsity)

    @rank_zero_only
    def _log_heatmap(self, sparsity: dict[str, float]) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            fig = sparsity_figure(self.masked.targets, sparsity)
            experiment.add_figure("mask/sparsity_heatmap", fig, self.trainer.global_step, close=True)

    def on_fit_end(self) -> None:
        log_dir = run_dir(self.trainer)  # every rank calls it (broadcast), rank 0 writes
        if log_dir is not None:
            self.write_outputs(log_dir)

    @rank_zero_only
    def write_outputs(self, log_dir: Path) -> None:
        """``mask_sparsity.{csv,md,png}`` and ``masks.safetensors`` in ``log_dir``, written atomically."""
        table = write_sparsity_outputs(self.masked.targets, self.masked.sparsity(), log_dir / "mask_sparsity")
        save_masks(self.masked, log_dir / "masks.safetensors")
        print(f"\n[debiaslit] mask sparsity (pruned fraction):\n{table}", flush=True)

    # --------------------------------------------------------------------------------- export
    def label_names(self) -> tuple[str, ...] | None:
        """Class names of the head (the NLI labels for a 3-way head; None otherwise)."""
        return NLI_LABELS if self.hparams.num_labels == len(NLI_LABELS) else None

    def export_pretrained(self, directory: str | Path) -> Path:
        """Plain transformers directory with the masks multiplied into the weights, the backbone's
        tokenizer and the label names (``id2label``): loads with ``AutoModelForSequenceClassification``
        and ``AutoTokenizer`` without debiaslit."""
        tokenizer = load_tokenizer(self.hparams.backbone)
        return export_pretrained(self.model, directory, tokenizer, self.label_names())

    def save_masks(self, path: str | Path) -> Path:
        """The masks alone (bit-packed safetensors + module-name map)."""
        return save_masks(self.masked, path)
