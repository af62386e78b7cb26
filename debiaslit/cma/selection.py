"""Aggregation and selection: top-p % per layer, Spearman, NIE-all / NIE-sum, top-k, greedy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from debiaslit.cma.effects import ratio_effect
from debiaslit.cma.exact import ExactRunner
from debiaslit.cma.mediators import Mediator
from debiaslit.errors import ConfigError

Unit = tuple[Mediator, int]


def top_percent_mean(effects: torch.Tensor, percent: float = 2.5) -> float:
    """Mean of the top ``percent`` % units by effect (at least one): Vig's per-layer curve value."""
    if not 0 < percent <= 100:
        raise ConfigError(f"cma top_percent must lie in (0, 100], got {percent}")
    k = max(1, math.ceil(effects.numel() * percent / 100))
    return float(effects.float().topk(k).values.mean())


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation (nan when fewer than 3 values or a constant input)."""
    if a.numel() < 3 or float(a.std()) == 0 or float(b.std()) == 0:
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks of a 1-d tensor, ties sharing the mean of their ranks (as Spearman needs)."""
    x = x.double().flatten()
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # rank of the last member of each distinct value
    return (last - (counts.double() - 1) / 2)[inverse]


def nie_all_vs_sum(runner: ExactRunner, unit_set: dict[Mediator, torch.Tensor]) -> dict[str, float]:
    """NIE-all (the set patched jointly) and NIE-sum (per-example sum of single-unit NIEs, averaged)."""
    joint = runner.joint([unit_set])[0]
    singles = torch.cat([runner.single_units(m, u) for m, u in unit_set.items()])
    return {
        "nie_all": float(ratio_effect(joint).mean()),
        "nie_sum": float(ratio_effect(singles).sum(0).mean()),
    }


def _as_set(units: Sequence[Unit]) -> dict[Mediator, torch.Tensor]:
    out: dict[Mediator, list[int]] = {}
    for mediator, unit in units:
        out.setdefault(mediator, []).append(unit)
    return {m: torch.tensor(u) for m, u in out.items()}


def top_k_joint(runner: ExactRunner, ranking: Sequence[Unit], k: int) -> list[float]:
    """Joint NIE of the top-i units for i = 1..k, from cumulative masks in one batched run."""
    if not ranking:
        raise ConfigError("top_k_joint got an empty ranking")
    k = min(k, len(ranking))
    deltas = runner.joint([_as_set(ranking[: i + 1]) for i in range(k)])
    return ratio_effect(deltas).mean(1).tolist()


def greedy(runner: ExactRunner, candidates: Sequence[Unit], k: int) -> list[tuple[Unit, float]]:
    """Greedy selection: add the candidate that most raises the joint NIE, ``k`` times (exact, batched).

    Each step evaluates every remaining candidate joined with the current set in one batched run.
    """
    if not candidates:
        raise ConfigError("greedy selection got no candidate units")
    chosen: list[tuple[Unit, float]] = []
    remaining = list(candidates)
    for _ in range(min(k, len(remaining))):
        base = [u for u, _ in chosen]
        deltas = runner.joint([_as_set([*base, c]) for c in remaining])
        joint = ratio_effect(deltas).mean(1)
        best = int(joint.argmax())
        chosen.append((remaining.pop(best), float(joint[best])))
    return chosen
