"""Sparsity penalties on learned gates, added to the training loss (METHODS.md §2.3).

A penalty sees the gates (objects with ``scores``, ``binarizer`` and the schedule value ``current``,
e.g. the weight masks' parametrizations) plus two factors from the binarizer's schedule at the
current step: ``ramp`` (on λ: τ_t/τ_f for threshold schedules, the schedule's progress for top-k, 1
for hard-concrete and constant schedules) and ``progress`` (on the Lagrangian's target).
``forward`` returns the terms to log: ``penalty`` (added to the loss) and any diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from debiaslit.errors import ConfigError
from debiaslit.gates.binarizers import Binarizer, HardConcrete


class Gate(Protocol):
    scores: torch.Tensor
    binarizer: Binarizer
    current: float


def expected_sparsity(gates: Sequence[Gate]) -> torch.Tensor:
    """Differentiable pruned fraction over every gated entry: 1 − mean of the binarizers'
    :meth:`~Binarizer.expected_keep` (straight-through masks, or P(gate ≠ 0) for hard-concrete)."""
    kept = [g.binarizer.expected_keep(g.scores, g.current) for g in gates]
    return 1.0 - torch.stack([k.sum() for k in kept]).sum() / sum(k.numel() for k in kept)


class SparsityPenalty(nn.Module):
    """Base class (an ``nn.Module`` so that learned multipliers are saved and optimised)."""

    def validate(self, option: str, binarizer: Binarizer, binarizer_option: str) -> None:
        """ConfigError for settings out of range or a binarizer this penalty cannot use."""

    def forward(self, gates: Sequence[Gate], ramp: float, progress: float) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class NoPenalty(SparsityPenalty):
    """No sparsity term (Zhao et al.)."""

    def forward(self, gates: Sequence[Gate], ramp: float, progress: float) -> dict[str, torch.Tensor]:
        return {}


class L1Sigmoid(SparsityPenalty):
    """λ_t · mean over matrices of mean σ(S) (nn_pruning / Meissner et al.), λ_t = ``lambda_`` · ramp."""

    def __init__(self, lambda_: float = 10.0) -> None:
        super().__init__()
        self.lambda_ = lambda_

    def keep(self, gates: Sequence[Gate]) -> torch.Tensor:
        return torch.stack([torch.sigmoid(g.scores).mean() for g in gates]).mean()

    def validate(self, option: str, binarizer: Binarizer, binarizer_option: str) -> None:
        if self.lambda_ < 0:
            raise ConfigError(f"{option}.init_args.lambda_ must be >= 0, got {self.lambda_}")
        binarizer.validate_ramp(binarizer_option)

    def forward(self, gates: Sequence[Gate], ramp: float, progress: float) -> dict[str, torch.Tensor]:
        return {"penalty": self.lambda_ * ramp * self.keep(gates)}


class ExpectedL0(L1Sigmoid):
    """λ · mean over matrices of mean P(gate ≠ 0) (Louizos et al.); needs a :class:`HardConcrete` gate."""

    def keep(self, gates: Sequence[Gate]) -> torch.Tensor:
        return torch.stack([g.binarizer.keep_probability(g.scores).mean() for g in gates]).mean()

    def validate(self, option: str, binarizer: Binarizer, binarizer_option: str) -> None:
        if not isinstance(binarizer, HardConcrete):
            raise ConfigError(
                f"{option} ExpectedL0 needs {binarizer_option}: HardConcrete, got {type(binarizer).__name__}"
            )
        super().validate(option, binarizer, binarizer_option)


class Lagrangian(SparsityPenalty):
    """λ1·gap + λ2·gap², gap = expected sparsity − s*·progress; the multipliers λ maximise the loss
    (their gradient is negated), so training is driven to the target sparsity s* (for comparing
    methods at equal sparsity)."""

    def __init__(self, target_sparsity: float = 0.1) -> None:
        super().__init__()
        self.target_sparsity = target_sparsity
        self.multipliers = nn.Parameter(torch.zeros(2))
        self.multipliers.register_hook(torch.neg)

    def validate(self, option: str, binarizer: Binarizer, binarizer_option: str) -> None:
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ConfigError(
                f"{option}.init_args.target_sparsity must lie in [0, 1), got {self.target_sparsity}"
            )

    def forward(self, gates: Sequence[Gate], ramp: float, progress: float) -> dict[str, torch.Tensor]:
        gap = expected_sparsity(gates) - self.target_sparsity * progress
        penalty = self.multipliers[0] * gap + self.multipliers[1] * gap**2
        return {"penalty": penalty, "expected_sparsity_gap": gap.detach()}
