"""The total effect of counterfactual prompts on a language model (Vig et al.'s TE)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from debiaslit.cma.effects import TokenOddsRatio, ratio_effect
from debiaslit.cma.setup import logits_of, model_inputs
from debiaslit.evaluation.base import Evaluator


class TotalEffectEvaluator(Evaluator):
    """Mean TE = y(counterfactual prompt) / y(prompt) − 1 and the mean log odds of the anti-stereotypical
    pronoun, on batches with ``cf_*`` counterfactual inputs (``ProfessionPrompts``).

    Metric objects sync once at epoch end: ranks may run different numbers of evaluation batches.
    """

    def __init__(self) -> None:
        super().__init__()
        self.measure = TokenOddsRatio()
        self.total_effect = MeanMetric()
        self.log_odds = MeanMetric()

    def step(self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        model = module.model
        cf = {k.removeprefix("cf_"): v for k, v in batch.items() if k.startswith("cf_")}
        m = self.measure.log_y(logits_of(model(**model_inputs(batch))), batch)
        m_cf = self.measure.log_y(logits_of(model(**cf)), batch)
        self.total_effect.update(ratio_effect(m_cf - m))
        self.log_odds.update(m)
        module.log("val/total_effect", self.total_effect, on_step=False, on_epoch=True)
        module.log("val/log_odds_anti_stereo", self.log_odds, on_step=False, on_epoch=True)

    def epoch_end(self, module: pl.LightningModule, stage: str) -> None:
        """Logged through ``module.log`` with metric objects: Lightning computes and resets them."""
