"""Score -> mask functions with their straight-through gradients (METHODS.md §2.3).

A binarizer turns a real score tensor S into a mask M of the same shape. ``value`` is the current
schedule value: the threshold τ_t for ``threshold`` / ``sigmoid_threshold``, the kept fraction t for
``topk``; ``hard_concrete`` ignores it. Forward values are exact 0/1 (the STE is added as
``S - S.detach()``, which is exactly zero), so a masked forward equals ``W * M`` bit for bit.
"""

from __future__ import annotations

import math

import torch

from debiaslit.errors import ConfigError

#: Hard-concrete constants (Louizos et al. 2018): temperature β, stretch interval (γ, ζ).
HC_BETA, HC_GAMMA, HC_ZETA = 2.0 / 3.0, -0.1, 1.1


def _straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return hard.to(soft.dtype) + (soft - soft.detach())


class Binarizer:
    """Base class; subclasses set :attr:`name` and implement :meth:`__call__`."""

    name = ""

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        raise NotImplementedError

    def score_cut(self, value: float) -> float:
        """Score at or below which a weight is pruned when the schedule is at ``value``."""
        return float(value)

    def keep_probability(self, scores: torch.Tensor) -> torch.Tensor:
        """Differentiable keep probability used by the penalties (σ(S))."""
        return torch.sigmoid(scores)


class ThresholdBinarizer(Binarizer):
    """Zhao et al. 2020: M = 1[S > τ], ∂L/∂S = ∂L/∂M."""

    name = "threshold"

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        return _straight_through(scores > value, scores)


class SigmoidThresholdBinarizer(Binarizer):
    """Meissner et al. 2022 / nn_pruning: M = 1[σ(S) > τ_t], ∂L/∂S = ∂L/∂M · σ'(S)."""

    name = "sigmoid_threshold"

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        prob = torch.sigmoid(scores)
        return _straight_through(prob > value, prob)

    def score_cut(self, value: float) -> float:
        if value <= 0.0:
            return -math.inf
        if value >= 1.0:
            return math.inf
        return math.log(value / (1.0 - value))


class TopKBinarizer(Binarizer):
    """Movement pruning: keep the ``int(t · numel)`` highest scores of the matrix, identity STE."""

    name = "topk"

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        flat = scores.reshape(-1)
        keep = max(1, int(value * flat.numel()))
        hard = torch.zeros_like(flat).index_fill_(0, flat.topk(keep, sorted=False).indices, 1.0)
        return _straight_through(hard.view_as(scores), scores)

    def score_cut(self, value: float) -> float:
        return 0.0


class HardConcreteBinarizer(Binarizer):
    """Louizos et al. 2018 stretched hard-concrete gate with S = log α.

    Training: u ~ U(0, 1), s = σ((log u − log(1 − u) + S)/β), gate = clamp(s(ζ − γ) + γ, 0, 1)
    (a reparameterised, mostly 0/1 sample). Evaluation: 1[clamp(σ(S)(ζ − γ) + γ, 0, 1) > 0.5],
    which is 1[S > 0].
    """

    name = "hard_concrete"

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        if not training:
            gate = (torch.sigmoid(scores) * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)
            return (gate > 0.5).to(scores.dtype)
        u = torch.rand_like(scores).clamp(1e-6, 1.0 - 1e-6)
        soft = torch.sigmoid((torch.log(u) - torch.log1p(-u) + scores) / HC_BETA)
        return (soft * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)

    def score_cut(self, value: float) -> float:
        return 0.0

    def keep_probability(self, scores: torch.Tensor) -> torch.Tensor:
        """P(gate ≠ 0) = σ(S − β log(−γ/ζ)): the expected-L0 term."""
        return torch.sigmoid(scores - HC_BETA * math.log(-HC_GAMMA / HC_ZETA))


BINARIZERS: dict[str, Binarizer] = {
    b.name: b
    for b in (ThresholdBinarizer(), SigmoidThresholdBinarizer(), TopKBinarizer(), HardConcreteBinarizer())
}


def get_binarizer(name: str) -> Binarizer:
    """The binarizer called ``name``; ConfigError lists the valid names."""
    if name not in BINARIZERS:
        raise ConfigError(f"model.binarizer must be one of {', '.join(BINARIZERS)}, got {name!r}")
    return BINARIZERS[name]
