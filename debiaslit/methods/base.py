"""What every method is built on: a backbone module (loading, task head, dropout, warm start,
optimiser and schedule, the evaluator passed in) and, for classifiers, training with a shared loss."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from debiaslit.backbones import load_backbone
from debiaslit.backbones.checkpoint_file import backbone_weights, read_checkpoint
from debiaslit.backbones.pooling import pooled_features
from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator, NLIEvaluator
from debiaslit.losses import ClassificationLoss, CrossEntropy

TOKEN_FIELDS = ("input_ids", "attention_mask", "token_type_ids")


class BackboneModule(pl.LightningModule):
    """A transformers backbone for one task, its optimiser, and an evaluator for validate / test.

    Args:
        backbone: Hub id, local directory, ``minilm-l6`` or a tiny test model (``tiny-bert``, ...).
        task: ``sequence-classification``, ``masked-lm``, ``causal-lm`` (see ``debiaslit.backbones``).
        num_labels: Output classes of a sequence classifier (3 for NLI).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: Fraction of the optimisation steps with linear warm-up; linear decay after.
        dropout: Overrides every dropout probability of the backbone (``None`` keeps the config's).
        init_weights_from: A Lightning ``.ckpt`` to take the weights from (not the hyper-parameters;
            use ``--ckpt_path`` only to resume).
        evaluator: What validate / test report (``None``: the method has nothing to evaluate).
    """

    def __init__(
        self,
        backbone: str = "tiny-bert",
        task: str = "sequence-classification",
        num_labels: int = 3,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        dropout: float | None = None,
        init_weights_from: str | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        super().__init__()
        if not lr >= 0:  # AdamW's own check would surface as a traceback once training starts
            raise ConfigError(f"model.lr must be >= 0, got {lr}")
        if not 0.0 <= warmup_ratio < 1.0:
            raise ConfigError(f"model.warmup_ratio must lie in [0, 1), got {warmup_ratio}")
        self.save_hyperparameters(ignore=["evaluator", "loss"])
        # new heads (and tiny models) are initialised from the run's seed (seed_everything), not a constant
        labels = {"num_labels": num_labels} if task == "sequence-classification" else {}
        self.model, _ = load_backbone(backbone, task=task, seed=torch.initial_seed(), **labels)
        # from_pretrained returns the model in eval mode and Lightning keeps each submodule's mode, so
        # without this, dropout would stay off during training
        self.model.train()
        if dropout is not None:
            for module in self.model.modules():
                if isinstance(module, nn.Dropout):
                    module.p = dropout
        self.evaluator = evaluator
        self._init_weights_from = init_weights_from

    def load_initial_weights(self) -> None:
        """Apply ``init_weights_from`` (subclasses call it once their own modules exist)."""
        path = self._init_weights_from
        if not path:
            return
        checkpoint = read_checkpoint(path, "model.init_weights_from")
        weights = backbone_weights(checkpoint, self.model, f"model.init_weights_from: '{path}'")
        self.model.load_state_dict(weights)

    # ----------------------------------------------------------------------------------- model
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The backbone's logits for the token fields of ``batch``."""
        return self.model(**{k: batch[k] for k in TOKEN_FIELDS if k in batch}).logits

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
        if self.evaluator is not None:
            self.evaluator.setup(self.trainer, self, stage)

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.evaluator is not None:
            self.evaluator.step(self, batch, dataloader_idx)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.evaluator is not None:
            self.evaluator.step(self, batch, dataloader_idx)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> Any:
        if self.evaluator is None:
            raise ConfigError(f"{type(self).__name__} has no evaluator: set model.evaluator to predict")
        return self.evaluator.predict_step(self, batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        if self.evaluator is not None:
            self.evaluator.epoch_end(self, "val")

    def on_test_epoch_end(self) -> None:
        if self.evaluator is not None:
            self.evaluator.epoch_end(self, "test")


class ClassifierModule(BackboneModule):
    """A sequence classifier trained with a shared ``loss`` (cross-entropy, or a bias-aware loss from
    ``debiaslit.losses``) and evaluated on NLI / HANS-style sets by default.

    Args:
        loss: The training objective; ``CrossEntropy`` when not given.
        evaluator: ``NLIEvaluator`` when not given.
        Others: see :class:`BackboneModule`.
    """

    def __init__(
        self,
        backbone: str = "tiny-bert",
        num_labels: int = 3,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        dropout: float | None = None,
        init_weights_from: str | None = None,
        loss: ClassificationLoss | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        super().__init__(
            backbone, "sequence-classification", num_labels, lr, weight_decay, warmup_ratio, dropout,
            init_weights_from, evaluator if evaluator is not None else NLIEvaluator(),
        )  # fmt: skip
        self.loss = loss if loss is not None else CrossEntropy()
        self.loss.bind_backbone(self.model.config.hidden_size)
        self.load_initial_weights()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop saved loss parameters the configured loss lacks (``ERM.load_from_checkpoint(path)`` of a
        learned-mixin run built outside the CLI predicts with the main model only)."""
        own = set(self.state_dict())
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("loss.") and k not in own]:
            del state[key]

    def logits_and_features(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits, and the pooled hidden state ``loss.feature_layer`` (the last by default) when the loss
        needs ``features`` (same forward)."""
        inputs = {k: batch[k] for k in TOKEN_FIELDS if k in batch}
        if "features" not in self.loss.requires:
            return self.model(**inputs).logits, None
        out = self.model(**inputs, output_hidden_states=True)
        layer, n = self.loss.feature_layer, len(out.hidden_states)
        if not -n <= layer < n:
            raise ConfigError(f"model.loss layer {layer} out of range: hidden states are 0..{n - 1}")
        return out.logits, pooled_features(out.hidden_states[layer], batch.get("attention_mask"), self.model)

    def training_loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor], features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The method's objective: the configured loss on the gold labels (``features`` go to losses
        that require them; the loss's training progress is set from the trainer first)."""
        if features is not None:
            batch = {**batch, "features": features}
        if self._trainer is not None:
            self.loss.set_progress(
                self.trainer.global_step / max(1, int(self.trainer.estimated_stepping_batches))
            )
        missing = [k for k in self.loss.requires if k not in batch]
        if missing:
            raise ConfigError(
                f"model.loss {type(self.loss).__name__} needs batch fields {missing}; configure the "
                "DataModule to provide them (e.g. a bias model for bias_probs)"
            )
        return self.loss(logits, batch["labels"], batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, features = self.logits_and_features(batch)
        loss = self.training_loss(logits, batch, features)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(-1) == batch["labels"]).float().mean())
        return loss
