"""How class scores become evaluated predictions (one rule for training-time and post-hoc evaluation)."""

from __future__ import annotations

import torch

from debiaslit.data.schema import NLI_LABELS

ENTAILMENT = NLI_LABELS.index("entailment")


def predict_classes(scores: torch.Tensor, binary: bool) -> torch.Tensor:
    """Argmax over the 3 NLI classes; on HANS-style sets 0 = entailment, 1 = non-entailment
    (neutral and contradiction collapse, McCoy et al. 2019)."""
    preds = scores.argmax(-1)
    return (preds != ENTAILMENT).long() if binary else preds
