"""End-to-end self-debiasing (Ghaddar et al. 2021): the bias model is a classifier head on the main
model's own shallow layer, trained jointly on the gold labels, so there is no separate bias model, no
cross-fitting and no cache. Its (detached) probabilities feed a bias-aware loss in place of
``batch["bias_probs"]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from debiaslit.errors import ConfigError
from debiaslit.losses.base import ClassificationLoss
from debiaslit.losses.bias_aware import BiasAwareLoss, ProductOfExperts


class SelfDebias(ClassificationLoss):
    """``L = combine(z, y; p_b = softmax(head(h_l)).detach()) + bias_weight · CE(head(h_l), y)``.

    ``h_l`` is the pooled hidden state after layer ``layer`` of the same forward pass (the method passes
    it as ``features``); ``head`` is a linear classifier built for the backbone's hidden size and saved in
    checkpoints. Each example is scored by the head before the step that trains on it, so within the first
    epoch the bias probabilities are out of sample.

    Args:
        combine: The bias-aware loss that uses the head's probabilities (``ProductOfExperts`` by
            default; ``Reweight``, ``UpweightErrors``, ``ConfidenceRegularization`` work too). It may not
            itself require ``features`` (learned-mixin's gate reads the last layer).
        layer: Hidden-state index the head reads (0 = embeddings, l = output of layer l).
        bias_weight: Weight of the head's own cross-entropy.
        detach_features: Stop the head's gradient into the encoder (default): otherwise the shallow layers
            would be trained to expose the shortcut to the head.
        num_labels: Classes of the head.
    """

    def __init__(
        self,
        combine: BiasAwareLoss | None = None,
        layer: int = 3,
        bias_weight: float = 1.0,
        detach_features: bool = True,
        num_labels: int = 3,
        hidden_size: int | None = None,
    ) -> None:
        super().__init__()
        self.combine = combine if combine is not None else ProductOfExperts()
        if "features" in self.combine.requires:
            raise ConfigError(f"SelfDebias combine: {type(self.combine).__name__} needs features of its own")
        if bias_weight < 0:
            raise ConfigError(f"SelfDebias bias_weight must be >= 0, got {bias_weight}")
        self.feature_layer = layer
        self.bias_weight = bias_weight
        self.detach_features = detach_features
        self.num_labels = num_labels
        self.requires = ("features", *(k for k in self.combine.requires if k != "bias_probs"))
        self.head: nn.Linear | None = None
        if hidden_size is not None:
            self.bind_backbone(hidden_size)

    def bind_backbone(self, hidden_size: int) -> None:
        if self.head is None:
            self.head = nn.Linear(hidden_size, self.num_labels)
        elif self.head.in_features != hidden_size:
            raise ConfigError(
                f"SelfDebias head was built for hidden size {self.head.in_features}, "
                f"the backbone has {hidden_size}"
            )

    def set_progress(self, progress: float) -> None:
        self.combine.set_progress(progress)

    def bias_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The shallow head's logits for pooled features of layer ``layer``."""
        if self.head is None:
            raise ConfigError("SelfDebias has no head: the model did not bind it to a backbone")
        h = features.detach() if self.detach_features else features
        return self.head(h.to(self.head.weight.dtype)).float()

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        bias_logits = self.bias_logits(batch["features"])
        probs = torch.softmax(bias_logits, -1).detach()
        main = self.combine(logits, labels, {**batch, "bias_probs": probs})
        return main + self.bias_weight * F.cross_entropy(bias_logits, labels)
