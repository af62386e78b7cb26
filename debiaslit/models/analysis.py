"""LMAnalysis: a pretrained language model under ``debiaslit validate``, for analysis-only runs.

Nothing is trained. Validation measures Vig's total effect (TE) of the counterfactual prompts, and an
:class:`~debiaslit.callbacks.nie.NIECallback` in the config computes the mediation effects.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from debiaslit.cma.effects import TokenOddsRatio, ratio_effect
from debiaslit.cma.setup import logits_of, model_inputs


class LMAnalysis(pl.LightningModule):
    """A causal (``causal-lm``) or masked (``masked-lm``) language model evaluated on prompt pairs.

    It loads a language-model head instead of a classifier and has no optimiser.

    Args:
        backbone: Hub id, local directory or tiny test model (``tiny-gpt2``).
        task: ``causal-lm`` or ``masked-lm``.
    """

    def __init__(self, backbone: str = "tiny-gpt2", task: str = "causal-lm") -> None:
        super().__init__()
        self.save_hyperparameters()
        from debiaslit.backbones import load_backbone

        self.model, _ = load_backbone(backbone, task=task)
        self.measure = TokenOddsRatio()
        # metric objects sync once at epoch end: ranks may run different numbers of eval batches
        self.total_effect = MeanMetric()
        self.log_odds = MeanMetric()

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        cf = {k.removeprefix("cf_"): v for k, v in batch.items() if k.startswith("cf_")}
        m = self.measure.log_y(logits_of(self.model(**model_inputs(batch))), batch)
        m_cf = self.measure.log_y(logits_of(self.model(**cf)), batch)
        self.total_effect.update(ratio_effect(m_cf - m))
        self.log_odds.update(m)
        self.log("val/total_effect", self.total_effect, on_step=False, on_epoch=True)
        self.log("val/log_odds_anti_stereo", self.log_odds, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> None:
        raise RuntimeError("LMAnalysis is for `debiaslit validate` only; it has nothing to train")
