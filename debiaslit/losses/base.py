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

    #: Batch keys this loss needs besides ``labels`` (checked before every step). ``features`` is
    #: special: the method then passes the pooled hidden state ``feature_layer`` of the same forward pass.
    requires: tuple[str, ...] = ()
    #: Which hidden state ``features`` pools (``-1``: the last layer; self-debiasing reads a shallow one).
    feature_layer: int = -1

    def bind_backbone(self, hidden_size: int) -> None:
        """Called once by the method with the backbone's hidden size (losses with parameters sized
        by it, such as learned-mixin's gate, build them here)."""

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1], set by the method before every step (annealing)."""

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
