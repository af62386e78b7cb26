"""The loss interface and plain cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationLoss(nn.Module):
    """Base class: ``forward(logits, labels, batch) -> scalar loss``.

    ``batch`` is the full training batch, so losses can read per-example extras such as
    ``batch["bias_probs"]`` without the methods knowing about them.
    """

    #: Batch keys this loss needs besides ``labels`` (checked before the first step).
    requires: tuple[str, ...] = ()

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError


class CrossEntropy(ClassificationLoss):
    """Mean cross-entropy on the gold labels (ERM)."""

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        return F.cross_entropy(logits, labels)
