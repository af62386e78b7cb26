"""Per-group accuracy with sum states (DDP-safe; replaces torchmetrics' group classes, wrong in 1.9)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class GroupAccuracy(Metric):
    """Accuracy inside each of ``num_groups`` groups, plus the example count of each group.

    States are per-group sums reduced with ``sum`` across processes, so every group's count is
    exact under DDP as long as each example is seen once (see ``UnrepeatedDistributedSampler``).
    """

    full_state_update = False

    def __init__(self, num_groups: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_groups < 1:
            raise ValueError(f"GroupAccuracy: num_groups must be >= 1, got {num_groups}")
        self.num_groups = num_groups
        self.add_state("correct", default=torch.zeros(num_groups, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(num_groups, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> None:
        if not (preds.shape == target.shape == groups.shape):
            raise ValueError(
                f"GroupAccuracy.update: preds {tuple(preds.shape)}, target {tuple(target.shape)} and "
                f"groups {tuple(groups.shape)} must have the same shape"
            )
        if groups.numel() and (groups.min() < 0 or groups.max() >= self.num_groups):
            raise ValueError(f"GroupAccuracy.update: group ids must lie in [0, {self.num_groups})")
        hit = (preds == target).long()
        self.correct += torch.bincount(groups, weights=hit, minlength=self.num_groups).long()
        self.total += torch.bincount(groups, minlength=self.num_groups)

    def compute(self) -> dict[str, torch.Tensor]:
        """``accuracy`` per group (NaN for empty groups), ``correct`` and ``total`` counts."""
        total = self.total.float()
        acc = torch.where(total > 0, self.correct.float() / total.clamp_min(1), torch.nan)
        return {"accuracy": acc, "correct": self.correct.clone(), "total": self.total.clone()}
