"""Classification losses shared by every method (ERM, masks, the bias-aware family).

A loss is an ``nn.Module`` so that losses with parameters (learned-mixin) are trained with the
model. Every loss takes the main model's logits and gold labels, plus whatever per-example extras
the batch carries (``bias_probs``, ``teacher_probs``, ``features``); a loss that needs an extra the
batch lacks raises a clear error.
"""

from debiaslit.losses.base import ClassificationLoss, CrossEntropy
from debiaslit.losses.bias_aware import (
    BiasAwareLoss,
    ConfidenceRegularization,
    LearnedMixin,
    ProductOfExperts,
    Reweight,
    UpweightErrors,
    WeightedCrossEntropy,
    anneal_probs,
)
from debiaslit.losses.self_debias import SelfDebias

__all__ = [
    "BiasAwareLoss",
    "ClassificationLoss",
    "ConfidenceRegularization",
    "CrossEntropy",
    "LearnedMixin",
    "ProductOfExperts",
    "Reweight",
    "SelfDebias",
    "UpweightErrors",
    "WeightedCrossEntropy",
    "anneal_probs",
]
