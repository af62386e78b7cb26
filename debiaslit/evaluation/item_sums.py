"""Per-item sum states: every evaluation example's scores land at its dataset index, summed across
processes, so any statistic (per occupation, per bias type, flips against an earlier epoch) is computed
after one exact sync, and an example counted twice is caught instead of skewing a score."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ItemSums(Metric):
    """Named ``[size]`` float64 vectors plus ``seen`` (how often each index was added)."""

    full_state_update = False

    def __init__(self, size: int, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = names
        for name in (*names, "seen"):
            self.add_state(name, default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, index: torch.Tensor, **values: torch.Tensor) -> None:
        for name in self.names:
            getattr(self, name).index_add_(0, index, values[name].detach().double())
        self.seen.index_add_(0, index, torch.ones_like(index, dtype=torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        """The vectors (on CPU) and ``seen`` as a bool mask; ValueError if an index came twice."""
        if bool((self.seen > 1).any()):
            twice = (self.seen > 1).nonzero().flatten()[:10].tolist()
            raise ValueError(f"evaluation items {twice} were scored more than once (a repeating sampler?)")
        out = {name: getattr(self, name).cpu() for name in self.names}
        return out | {"seen": self.seen.cpu() > 0}
