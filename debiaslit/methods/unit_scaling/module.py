"""A fine-tuned classifier evaluated with its top-NIE units weakened or zeroed (no training)."""

from __future__ import annotations

import torch

from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.neurons import UnitSelection
from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator
from debiaslit.methods.base import ClassifierModule
from debiaslit.methods.unit_scaling.hooks import scale_fn


class UnitScaling(ClassifierModule):
    """DebiasNeuro's causal-grounded masking (Sae Lim et al. 2024): the weights of an earlier run
    (``init_weights_from``), with the ``units`` of a CMA result (``TopCMAUnits(neurons_csv, top_percent)``)
    multiplied by ``alpha`` at token ``position`` on every forward. Inference only: use ``debiaslit
    validate`` / ``test`` / ``predict``; choose ``alpha`` and ``top_percent`` on an in-distribution
    held-out set (``bench/debias_mnli.py`` does), never on HANS.

    Args:
        units: Which units (``debiaslit.cma.neurons``).
        alpha: The factor (0 zeroes the units; DebiasNeuro's grid: 0.9, 0.97).
        position: Token index (0 = [CLS], as DebiasNeuro), or None for every token.
        Others: see :class:`~debiaslit.methods.base.ClassifierModule`.
    """

    def __init__(
        self,
        units: UnitSelection,
        alpha: float = 0.0,
        position: int | None = 0,
        backbone: str = "tiny-bert",
        num_labels: int = 3,
        init_weights_from: str | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        if not alpha >= 0:
            raise ConfigError(f"model.alpha must be >= 0, got {alpha}")
        super().__init__(backbone, num_labels, init_weights_from=init_weights_from, evaluator=evaluator)
        self.save_hyperparameters(ignore=["evaluator", "loss", "units"])
        cmap = ComponentMap.for_model(self.model)
        self.units = units.resolve(cmap, "model.units")
        for (component, layer), index in self.units.items():
            cmap.activation_site(component, layer).register_hook(self.model, scale_fn(index, alpha, position))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        raise ConfigError(
            "UnitScaling is an inference-time intervention: run `debiaslit validate/test/predict` with "
            "model.init_weights_from set to the fine-tuned checkpoint"
        )
