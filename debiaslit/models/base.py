"""The LightningModule every debiasing method derives from: backbone, optimiser, NLI evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from debiaslit.errors import ConfigError
from debiaslit.losses import ClassificationLoss, CrossEntropy
from debiaslit.metrics import GroupAccuracy
from debiaslit.metrics.predictions import predict_classes
from debiaslit.metrics.results_table import EvalResult, write_results

HANS_MAPPINGS = ("argmax", "prob_sum")
TOKEN_FIELDS = ("input_ids", "attention_mask", "token_type_ids")
#: Architectures read left to right: their summary of a sequence is the last attended token.
_LAST_TOKEN_POOLED = ("gpt2", "gpt_neox")


def pooled_features(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, model: nn.Module
) -> torch.Tensor:
    """One vector per sequence from the last hidden layer: [CLS] (position 0) for encoders, the last
    attended token for decoders. Used as h(x) by losses that need features (learned-mixin)."""
    if getattr(model.config, "model_type", "") not in _LAST_TOKEN_POOLED:
        return hidden[:, 0]
    if attention_mask is None:
        return hidden[:, -1]
    last = attention_mask.long().sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class DebiasModule(pl.LightningModule):
    """Sequence-classification backbone + the evaluation every method shares.

    Methods differ in what they train (all weights, masks, selected rows) and share the
    ``loss`` (cross-entropy, or a bias-aware loss from ``debiaslit.losses``). Evaluation reports micro
    accuracy per evaluation set, per-class accuracy, and for HANS-style sets the accuracy of each
    heuristic x gold-label cell and subcase, after collapsing 3-way predictions to binary.

    Args:
        backbone: Hub id, local directory, ``minilm-l6`` or a tiny test model (``tiny-bert``, ...).
        num_labels: Output classes (3 for NLI).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: Fraction of the optimisation steps with linear warm-up; linear decay after.
        dropout: Overrides every dropout probability of the backbone (``None`` keeps the config's).
        hans_mapping: ``argmax`` (entailment iff argmax is entailment, McCoy et al.) or ``prob_sum``
            (entailment iff p_ent > p_neu + p_con).
        init_weights_from: A Lightning ``.ckpt`` to take the weights from (not the hyper-parameters;
            use ``--ckpt_path`` only to resume).
        loss: The training objective; ``CrossEntropy`` when not given.
    """

    def __init__(
        self,
        backbone: str = "tiny-bert",
        num_labels: int = 3,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        dropout: float | None = None,
        hans_mapping: str = "argmax",
        init_weights_from: str | None = None,
        loss: ClassificationLoss | None = None,
    ) -> None:
        super().__init__()
        if hans_mapping not in HANS_MAPPINGS:
            raise ConfigError(f"model.hans_mapping must be one of {HANS_MAPPINGS}, got '{hans_mapping}'")
        if not 0.0 <= warmup_ratio < 1.0:
            raise ConfigError(f"model.warmup_ratio must lie in [0, 1), got {warmup_ratio}")
        self.save_hyperparameters(ignore=["loss"])
        self.loss = loss if loss is not None else CrossEntropy()
        from debiaslit.backbones import load_backbone

        # new heads (and tiny models) are initialised from the run's seed (seed_everything), not a constant
        self.model, _ = load_backbone(
            backbone, task="sequence-classification", num_labels=num_labels, seed=torch.initial_seed()
        )
        # from_pretrained returns the model in eval mode and Lightning keeps each submodule's mode, so
        # without this, dropout would stay off during training
        self.model.train()
        if dropout is not None:
            for module in self.model.modules():
                if isinstance(module, nn.Dropout):
                    module.p = dropout
        bind = getattr(self.loss, "bind_backbone", None)
        if bind is not None:  # losses with parameters sized by the backbone (learned-mixin's gate)
            bind(self.model.config.hidden_size)
        if init_weights_from:
            self._load_weights(init_weights_from)
        self._features: tuple[torch.Tensor, torch.Tensor] | None = None
        self.eval_metrics = nn.ModuleDict()
        self.eval_subgroup_metrics = nn.ModuleDict()
        self._eval_sets: list[Any] = []

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop saved loss parameters the configured loss lacks (the loss is not a hyper-parameter:
        ``ERM.load_from_checkpoint(path)`` of a learned-mixin run predicts with the main model only;
        pass ``loss=LearnedMixin(...)`` to restore the gate too)."""
        own = set(self.state_dict())
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("loss.") and k not in own]:
            del state[key]

    def _load_weights(self, path: str) -> None:
        if not Path(path).is_file():
            raise ConfigError(f"model.init_weights_from: checkpoint file '{path}' does not exist")
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        backbone_state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        self.model.load_state_dict(backbone_state)

    # ----------------------------------------------------------------------------------- model
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in TOKEN_FIELDS if k in batch}
        if not (self.training and "features" in self.loss.requires):
            return self.model(**inputs).logits
        out = self.model(**inputs, output_hidden_states=True)
        features = pooled_features(out.hidden_states[-1], batch.get("attention_mask"), self.model)
        self._features = (out.logits, features)  # only ever used with these very logits
        return out.logits

    def training_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The method's objective: the configured loss on the gold labels.

        A loss that requires ``features`` gets the pooled last hidden state of the forward pass that
        produced ``logits`` (see :func:`pooled_features`); a loss with ``set_progress`` (annealing)
        gets ``global_step / estimated_stepping_batches``.
        """
        if "features" in self.loss.requires and "features" not in batch and self._features is not None:
            (produced_with, features), self._features = self._features, None
            if produced_with is logits:
                batch = {**batch, "features": features}
        set_progress = getattr(self.loss, "set_progress", None)
        if set_progress is not None and self._trainer is not None:
            set_progress(self.trainer.global_step / max(1, int(self.trainer.estimated_stepping_batches)))
        missing = [k for k in self.loss.requires if k not in batch]
        if missing:
            raise ConfigError(
                f"model.loss {type(self.loss).__name__} needs batch fields {missing}; configure the "
                "DataModule to provide them (e.g. a bias model for bias_probs)"
            )
        return self.loss(logits, batch["labels"], batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        loss = self.training_loss(logits, batch)
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", acc)
        return loss

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.hparams.warmup_ratio * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------ evaluation
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "eval_datasets"):
            return
        self._eval_sets = list(datamodule.eval_datasets.values())
        for ds in self._eval_sets:
            if ds.name not in self.eval_metrics:
                self.eval_metrics[ds.name] = GroupAccuracy(len(ds.group_names))
                self.eval_subgroup_metrics[ds.name] = GroupAccuracy(max(1, len(ds.subgroup_names)))

    def eval_predictions(self, logits: torch.Tensor, binary: bool) -> torch.Tensor:
        """Class predictions; on HANS-style sets 0 = entailment, 1 = non-entailment."""
        if not binary or self.hparams.hans_mapping == "argmax":
            return predict_classes(logits, binary)
        probs = logits.softmax(-1)
        return (probs[:, 0] <= probs[:, 1:].sum(-1)).long()

    def _eval_step(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        ds = self._eval_sets[dataloader_idx]
        preds = self.eval_predictions(self(batch), ds.is_hans)
        self.eval_metrics[ds.name].update(preds, batch["labels"], batch["groups"])
        if ds.subgroup_names:
            self.eval_subgroup_metrics[ds.name].update(preds, batch["labels"], batch["subgroups"])

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        logits = self(batch)
        return {"index": batch["index"], "probs": logits.softmax(-1), "labels": batch["labels"]}

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

    def _finish_eval(self, stage: str) -> None:
        results = []
        for ds in self._eval_sets:
            cells = self.eval_metrics[ds.name].compute()
            subcases = self.eval_subgroup_metrics[ds.name].compute() if ds.subgroup_names else None
            self.eval_metrics[ds.name].reset()
            self.eval_subgroup_metrics[ds.name].reset()
            results.append(EvalResult.from_counts(ds, cells, subcases))
        if self.trainer.sanity_checking or not results:
            return
        scalars = {f"{stage}/{k}": v for r in results for k, v in r.scalars().items()}
        self.log_dict(scalars, add_dataloader_idx=False, sync_dist=False)
        # trainer.log_dir broadcasts from rank 0: every rank must read it, outside rank_zero_only
        self._report(stage, results, Path(self.trainer.log_dir or "."))

    @rank_zero_only
    def _report(self, stage: str, results: list[EvalResult], log_dir: Path) -> None:
        table = write_results(results, log_dir / "results", stage, self.current_epoch)
        logger = self.logger
        if logger is not None and hasattr(logger.experiment, "add_text"):
            logger.experiment.add_text(f"{stage}/results", table, self.trainer.global_step)
        print(f"\n[debiaslit] {stage} results (epoch {self.current_epoch}):\n{table}\n", flush=True)
