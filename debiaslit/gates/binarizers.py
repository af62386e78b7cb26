"""Score -> mask functions with their straight-through gradients and their schedules (METHODS.md §2.3).

A binarizer turns a real score tensor S of any shape (weights, rows, SAE latents) into a mask M of
the same shape. ``value`` is the current schedule value: the threshold τ_t for :class:`Threshold` /
:class:`SigmoidThreshold`, the kept fraction t for :class:`TopK`; :class:`HardConcrete` ignores it.
Each binarizer owns its schedule (:meth:`Binarizer.value` at a step of a run), so the methods need no
per-binarizer logic. Forward values are exact 0/1 (the STE is added as ``S - S.detach()``, which is
exactly zero), so a masked forward equals ``W * M`` bit for bit. Settings are checked by
:meth:`Binarizer.validate`, called by the method with the option's configuration key.
"""

from __future__ import annotations

import math

import torch

from debiaslit.errors import ConfigError
from debiaslit.gates.schedules import CubicSchedule


def describe(obj: object, **fields: object) -> str:
    """``Name(a=1, b=None)``: how a configured object is shown in error messages."""
    return f"{type(obj).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"


def _straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return hard.to(soft.dtype) + (soft - soft.detach())


class Binarizer:
    """Base class: :meth:`__call__` maps scores to a mask; :attr:`schedule` moves its value over a run."""

    schedule = CubicSchedule(0.0, 0.0, "constant")

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        raise NotImplementedError

    def score_cut(self, value: float) -> float:
        """Score at or below which a weight is pruned when the schedule is at ``value``."""
        return float(value)

    def expected_keep(self, scores: torch.Tensor, value: float) -> torch.Tensor:
        """Differentiable kept indicator (the straight-through mask) for expected-sparsity targets."""
        return self(scores, value, True)

    def validate(self, option: str) -> None:
        """ConfigError naming ``<option>.init_args.<name>`` for a setting out of range."""
        self.schedule.validate(option)

    def value(self, step: int, total: int) -> float:
        """Schedule value at optimiser step ``step`` of ``total``."""
        return self.schedule.value(step, total)

    def progress(self, step: int, total: int) -> float:
        """Fraction of the way through the schedule (1 for a constant one)."""
        return self.schedule.progress(step, total)

    @property
    def start(self) -> float:
        return self.schedule.start

    def penalty_ramp(self, step: int, total: int) -> float:
        """Factor on a penalty's λ at ``step``: the schedule's progress (top-k: how far the kept
        fraction has moved; 1 for constant schedules and for hard-concrete)."""
        return self.progress(step, total)

    def validate_ramp(self, option: str) -> None:
        """ConfigError when :meth:`penalty_ramp` is undefined for these settings (none here)."""


class _ScheduledThreshold(Binarizer):
    """A threshold τ_t moved from ``threshold_initial`` to ``threshold`` by a constant or cubic schedule.

    The penalty ramp is λ_t = λ · τ_t / τ_f (nn_pruning's regularisation schedule). ``threshold: null``
    takes the method's published value (:attr:`default_threshold`).
    """

    #: τ_f of the paper the binarizer comes from.
    default_threshold: float

    def __init__(
        self,
        threshold: float | None = None,
        threshold_initial: float | None = None,
        schedule: str = "constant",
        warmup_fraction: float = 0.0,
        cooldown_fraction: float = 0.0,
    ) -> None:
        self.threshold = float(self.default_threshold if threshold is None else threshold)
        self.threshold_initial = threshold_initial
        start = self.threshold if threshold_initial is None else float(threshold_initial)
        self.schedule = CubicSchedule(start, self.threshold, schedule, warmup_fraction, cooldown_fraction)

    def __repr__(self) -> str:
        s = self.schedule
        return describe(
            self, threshold=self.threshold, threshold_initial=self.threshold_initial, schedule=s.kind,
            warmup_fraction=s.warmup_fraction, cooldown_fraction=s.cooldown_fraction,
        )  # fmt: skip

    def penalty_ramp(self, step: int, total: int) -> float:
        return self.value(step, total) / self.threshold

    def validate_ramp(self, option: str) -> None:
        if self.threshold <= 0.0 or self.schedule.initial < 0.0:
            raise ConfigError(
                f"the penalty ramp λ·τ_t/τ_f needs {option}.init_args.threshold > 0 and "
                f"{option}.init_args.threshold_initial >= 0, got τ_f = {self.threshold}, "
                f"τ_0 = {self.schedule.initial}"
            )


class Threshold(_ScheduledThreshold):
    """Zhao et al. 2020: M = 1[S > τ], ∂L/∂S = ∂L/∂M (identity straight-through); τ_f = 0.01 by default."""

    default_threshold = 0.01

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        return _straight_through(scores > value, scores)


class SigmoidThreshold(_ScheduledThreshold):
    """Meissner et al. 2022 / nn_pruning: M = 1[σ(S) > τ_t], ∂L/∂S = ∂L/∂M · σ'(S); τ_f = 0.1 by default."""

    default_threshold = 0.1

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        prob = torch.sigmoid(scores)
        return _straight_through(prob > value, prob)

    def score_cut(self, value: float) -> float:
        if value <= 0.0:
            return -math.inf
        if value >= 1.0:
            return math.inf
        return math.log(value / (1.0 - value))

    def validate(self, option: str) -> None:
        super().validate(option)
        for name, value in (("threshold", self.threshold), ("threshold_initial", self.schedule.initial)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{option}.init_args.{name} is a probability σ(S) and must lie in [0, 1]")


class TopK(Binarizer):
    """Movement pruning: keep the ``int(t · numel)`` highest scores of each matrix, identity STE.

    t moves from 1 − ``initial_sparsity`` to 1 − ``final_sparsity`` (default: stays).
    """

    def __init__(
        self,
        initial_sparsity: float = 0.05,
        final_sparsity: float | None = None,
        schedule: str = "constant",
        warmup_fraction: float = 0.0,
        cooldown_fraction: float = 0.0,
    ) -> None:
        self.initial_sparsity, self.final_sparsity = initial_sparsity, final_sparsity
        final = initial_sparsity if final_sparsity is None else final_sparsity
        self.schedule = CubicSchedule(
            1.0 - initial_sparsity, 1.0 - final, schedule, warmup_fraction, cooldown_fraction
        )

    def __repr__(self) -> str:
        return describe(
            self, initial_sparsity=self.initial_sparsity, final_sparsity=self.final_sparsity,
            schedule=self.schedule.kind,
        )  # fmt: skip

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        flat = scores.reshape(-1)
        keep = max(1, int(value * flat.numel()))
        hard = torch.zeros_like(flat).index_fill_(0, flat.topk(keep, sorted=False).indices, 1.0)
        return _straight_through(hard.view_as(scores), scores)

    def score_cut(self, value: float) -> float:
        return 0.0

    def validate(self, option: str) -> None:
        super().validate(option)
        for name in ("initial_sparsity", "final_sparsity"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"{option}.init_args.{name} must lie in [0, 1), got {value}")


class HardConcrete(Binarizer):
    """Louizos et al. 2018 stretched hard-concrete gate with S = log α, over a tensor of any shape.

    Training: u ~ U(0, 1), s = σ((log u − log(1 − u) + S)/β), gate = clamp(s(ζ − γ) + γ, 0, 1)
    (a reparameterised, mostly 0/1 sample). Evaluation: 1[clamp(σ(S)(ζ − γ) + γ, 0, 1) > 0.5],
    which is 1[S > 0] for the default γ, ζ. No schedule: ``value`` is ignored, so
    ``HardConcrete()(log_alpha, 0.0, training)`` gates any tensor (e.g. SAE latents).
    """

    def __init__(self, beta: float = 2.0 / 3.0, gamma: float = -0.1, zeta: float = 1.1) -> None:
        self.beta, self.gamma, self.zeta = beta, gamma, zeta

    def __repr__(self) -> str:
        return describe(self, beta=self.beta, gamma=self.gamma, zeta=self.zeta)

    def __call__(self, scores: torch.Tensor, value: float, training: bool) -> torch.Tensor:
        stretch = self.zeta - self.gamma
        if not training:
            gate = (torch.sigmoid(scores) * stretch + self.gamma).clamp(0.0, 1.0)
            return (gate > 0.5).to(scores.dtype)
        u = torch.rand_like(scores).clamp(1e-6, 1.0 - 1e-6)
        soft = torch.sigmoid((torch.log(u) - torch.log1p(-u) + scores) / self.beta)
        return (soft * stretch + self.gamma).clamp(0.0, 1.0)

    def score_cut(self, value: float) -> float:
        """Evaluation gate is open above σ⁻¹((0.5 − γ)/(ζ − γ)) (0 for the default γ, ζ)."""
        p = (0.5 - self.gamma) / (self.zeta - self.gamma)
        return round(math.log(p / (1.0 - p)), 12) + 0.0  # exactly 0.0 (not -4e-16 or -0.0) by default

    def keep_probability(self, scores: torch.Tensor) -> torch.Tensor:
        """P(gate ≠ 0) = σ(S − β log(−γ/ζ)): the expected-L0 term."""
        return torch.sigmoid(scores - self.beta * math.log(-self.gamma / self.zeta))

    def expected_keep(self, scores: torch.Tensor, value: float) -> torch.Tensor:
        return self.keep_probability(scores)

    def validate(self, option: str) -> None:
        if not (self.beta > 0.0 and self.gamma < 0.0 and self.zeta > 1.0):
            raise ConfigError(
                f"{option}.init_args: hard-concrete needs beta > 0, gamma < 0 and zeta > 1 "
                f"(Louizos et al.: 2/3, -0.1, 1.1), got {self!r}"
            )
