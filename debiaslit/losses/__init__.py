"""Classification losses shared by every method (ERM, masks, the bias-aware family).

A loss is an ``nn.Module`` so that losses with parameters (learned-mixin) are trained with the
model. Every loss takes the main model's logits and gold labels, plus whatever per-example extras
the batch carries (``bias_probs``, ``teacher_probs``, ``features``); a loss that needs an extra the
batch lacks raises a clear error.
"""

from debiaslit.losses.base import ClassificationLoss, CrossEntropy

__all__ = ["ClassificationLoss", "CrossEntropy"]
