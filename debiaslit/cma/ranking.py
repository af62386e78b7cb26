"""How well a screen (attribution, AtP*, IG) ranks the units of each site, measured against exact effects.

Rank quality is measured inside each site (component × layer at one position mode): a Spearman pooled over
sites is dominated by the differences in magnitude between sites (a random ranking inside every site still
scores ≈ 0.98, METHODS.md §1.4b). A site whose exact effects are all at or below the noise floor has no
effect to rank (e.g. layer-0 [CLS] Q/K/V, identical for every input) and is reported as such.

Ranking is by effect, largest first (the top-p % convention of the curves and of ``neurons.csv``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from debiaslit.cma.selection import spearman

NO_EFFECT = "no effect"
RANKED = "ranked"
#: Effects at or below this fraction of the largest |exact effect| of the analysis count as zero.
RELATIVE_FLOOR = 1e-6


def noise_floor(exact: dict[str, torch.Tensor], relative: float = RELATIVE_FLOOR) -> float:
    """The absolute floor: ``relative`` × the largest |exact effect| over every site."""
    largest = max((float(v.abs().max()) for v in exact.values() if v.numel()), default=0.0)
    return relative * largest


def _top(values: torch.Tensor, k: int) -> torch.Tensor:
    return values.topk(min(k, values.numel())).indices


def _recall(exact: torch.Tensor, screen: torch.Tensor, k: int, within: int) -> float:
    """Fraction of the exact top-k that the screen ranks inside its top-``within``."""
    truth = set(_top(exact, k).tolist())
    return len(truth & set(_top(screen, within).tolist())) / len(truth)


def site_quality(
    exact: torch.Tensor,
    screen: torch.Tensor,
    floor: float,
    k_values: tuple[int, ...] = (20,),
    percent: float = 1.0,
) -> dict[str, Any]:
    """Screen vs exact on every unit of one site (full ground truth).

    For K = each of ``k_values`` and ``percent`` % of the units: recall of the exact top-K inside the screen's
    top-K and top-3K; the Spearman inside the site; the largest exact effect outside the screen's top-3K of
    the largest K (what verifying 3K candidates would miss), absolute and relative to the top exact effect.
    """
    n = exact.numel()
    out: dict[str, Any] = {"n_units": n, "max_exact": float(exact.abs().max()) if n else 0.0}
    if n == 0 or out["max_exact"] <= floor:
        return {**out, "status": NO_EFFECT}
    out["status"] = RANKED
    out["spearman"] = spearman(screen, exact)
    ks = {f"k{k}": k for k in k_values} | {f"p{percent:g}": max(1, math.ceil(n * percent / 100))}
    for name, k in ks.items():
        out[f"recall_{name}_in_top_k"] = _recall(exact, screen, k, k)
        out[f"recall_{name}_in_top_3k"] = _recall(exact, screen, k, 3 * k)
    k = k_values[0]
    outside = torch.ones(n, dtype=torch.bool)
    outside[_top(screen, 3 * k)] = False
    missed = float(exact[outside].max()) if bool(outside.any()) else float("nan")  # nothing left out
    out["max_missed_effect"] = missed
    out["max_missed_vs_top"] = missed / float(exact.max()) if float(exact.max()) > 0 else float("nan")
    return out


def verification_units(
    screen: torch.Tensor, top_k: int, n_random: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The screen's top ``top_k`` units and a uniform sample of ``n_random`` of the others (sorted)."""
    top = _top(screen, top_k)
    rest = torch.ones(screen.numel(), dtype=torch.bool)
    rest[top] = False
    others = rest.nonzero().flatten()
    sample = others[torch.randperm(others.numel(), generator=generator)[:n_random]]
    return top.sort().values, sample.sort().values


def verified_quality(
    screen: torch.Tensor, top: torch.Tensor, sample: torch.Tensor, exact: torch.Tensor, floor: float
) -> dict[str, Any]:
    """Screen vs exact on the verified units of one site: the screen's top-K and a random sample.

    ``exact`` holds the exact effects of ``torch.cat([top, sample]).sort()`` in that order. With k = ⌈K/3⌉:
    recall of the exact top-k among the verified units inside the screen's top-k and top-K (a sampled unit
    that beats the screen's picks lowers it), the Spearman over the verified units, the largest exact
    effect in the random sample, and the estimated number of units outside the top-K that beat the k-th
    best verified one (sample hits × rest / sample).
    """
    units = torch.cat([top, sample]).sort().values
    out: dict[str, Any] = {
        "n_units": screen.numel(),
        "n_verified_top": top.numel(),
        "n_verified_random": sample.numel(),
        "max_exact": float(exact.abs().max()) if exact.numel() else 0.0,
    }
    if exact.numel() == 0 or out["max_exact"] <= floor:
        return {**out, "status": NO_EFFECT}
    out["status"] = RANKED
    out["spearman"] = spearman(screen[units], exact)
    k = max(1, math.ceil(top.numel() / 3))
    verified_screen = screen[units]
    out["k"] = k
    out["recall_k_in_top_k"] = _recall(exact, verified_screen, k, k)
    out["recall_k_in_top_3k"] = _recall(exact, verified_screen, k, top.numel())
    in_sample = torch.isin(units, sample)
    sampled = exact[in_sample]
    kth = float(exact.topk(min(k, exact.numel())).values[-1])
    out["max_random_effect"] = float(sampled.max()) if sampled.numel() else float("nan")
    hits = int((sampled > kth).sum())
    rest = screen.numel() - top.numel()
    out["estimated_missed"] = hits * rest / sampled.numel() if sampled.numel() else float("nan")
    return out


def sites_markdown(sites: dict[str, dict[str, Any]]) -> str:
    """The per-site table of a hybrid run (verified units only) as markdown."""
    lines = [
        "| site | units | Spearman (verified) | recall top-k in top-k | recall top-k in top-K | "
        "max random-sample effect | est. missed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in sites.items():
        if row["status"] == NO_EFFECT:
            lines.append(f"| {key} | {row['n_units']} | no effect (max {row['max_exact']:.2g}) | | | | |")
            continue
        cells = [
            row.get(c, float("nan"))
            for c in (
                "spearman",
                "recall_k_in_top_k",
                "recall_k_in_top_3k",
                "max_random_effect",
                "estimated_missed",
            )
        ]
        lines.append(f"| {key} | {row['n_units']} | " + " | ".join(f"{c:.3g}" for c in cells) + " |")
    return "\n".join(lines)
