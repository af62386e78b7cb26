"""Word overlap between premise and hypothesis, and the high/low-overlap (HOL/LOL) treatment sets.

Word overlap is the bias HANS probes and the treatment variable of the NLI causal mediation analysis
(METHODS.md §1.3, Sae Lim et al. 2024). CMA, the DataModule and the reports all select their HOL/LOL
sets through :func:`overlap_subsets`, so the cut-offs are computed one way everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from debiaslit.data.schema import HANS_LABELS, NLI_LABELS, NLIExample
from debiaslit.errors import ConfigError

#: Characters removed before splitting on whitespace.
OVERLAP_PUNCTUATION = ".?!,;:"
_STRIP = str.maketrans("", "", OVERLAP_PUNCTUATION)
OVERLAP_MODES: tuple[str, ...] = ("percentile", "absolute")


def overlap_words(text: str) -> list[str]:
    """Lower-cased words with ``.?!,;:`` removed (anywhere in the word), empty tokens dropped."""
    return [w for w in text.lower().translate(_STRIP).split() if w]


def word_overlap(premise: str, hypothesis: str) -> float:
    """Fraction of hypothesis words (counted with repeats) that occur in the premise.

    A hypothesis without words has overlap 0.0 (nothing of it is supported by the premise).
    """
    hyp = overlap_words(hypothesis)
    if not hyp:
        return 0.0
    vocab = set(overlap_words(premise))
    return sum(w in vocab for w in hyp) / len(hyp)


@dataclass
class OverlapSubsets:
    """Indices of the high- and low-overlap examples and the cut-offs actually used.

    ``high_idx``/``low_idx`` index into the sequence given to :func:`overlap_subsets` and are sorted.
    ``scores`` holds the overlap of every example; ``label_counts`` the per-label sizes after balancing.
    """

    high_idx: list[int]
    low_idx: list[int]
    high_threshold: float
    low_threshold: float
    scores: list[float]
    mode: str = "percentile"
    high_label_counts: dict[str, int] = field(default_factory=dict)
    low_label_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Flat dict of thresholds and set sizes, for logging next to CMA / training results."""
        return {
            "overlap_mode": self.mode,
            "high_threshold": self.high_threshold,
            "low_threshold": self.low_threshold,
            "n_high": len(self.high_idx),
            "n_low": len(self.low_idx),
            "n_total": len(self.scores),
            **{f"n_high/{k}": v for k, v in self.high_label_counts.items()},
            **{f"n_low/{k}": v for k, v in self.low_label_counts.items()},
        }


def _ordinal(x: float) -> str:
    if float(x).is_integer():
        n = int(x)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return f"{x:g}th"


def _check_options(mode: str, high: float, low: float) -> None:
    if mode not in OVERLAP_MODES:
        raise ConfigError(f"overlap mode '{mode}' is unknown; expected one of {OVERLAP_MODES}")
    lo, hi = (0.0, 100.0) if mode == "percentile" else (0.0, 1.0)
    what = "a percentile" if mode == "percentile" else "an overlap value"
    for name, value in (("high", high), ("low", low)):
        if not lo <= value <= hi:
            raise ConfigError(
                f"overlap {name}={value} is outside [{lo:g}, {hi:g}]; with mode='{mode}' it is {what}"
            )
    if low > high:
        raise ConfigError(f"overlap low={low} is greater than high={high} (mode='{mode}')")


def _balance(
    idx: list[int], labels: list[str], all_labels: list[str], rng: random.Random, name: str
) -> list[int]:
    """Sample without replacement down to the smallest class (over every label of the full set)."""
    by_label: dict[str, list[int]] = {lab: [] for lab in all_labels}
    for i in idx:
        by_label[labels[i]].append(i)
    smallest = min(by_label, key=lambda lab: len(by_label[lab]))
    k = len(by_label[smallest])
    if k == 0:
        raise ConfigError(
            f"balance_labels=True empties the {name} subset: it holds no '{smallest}' examples "
            f"(counts { ({lab: len(v) for lab, v in by_label.items()}) }); use balance_labels=False or "
            "widen the thresholds"
        )
    return sorted(i for lab in all_labels for i in rng.sample(by_label[lab], k))


def overlap_subsets(
    examples: Sequence[NLIExample],
    mode: str = "percentile",
    high: float = 95,
    low: float = 5,
    balance_labels: bool = False,
    seed: int = 0,
) -> OverlapSubsets:
    """Select the high-overlap (HOL) and low-overlap (LOL) examples.

    ``mode="percentile"``: HOL = overlap >= the ``high``-th percentile of the overlap scores, LOL =
    overlap <= the ``low``-th percentile (numpy's linear interpolation). ``mode="absolute"``: ``high`` and
    ``low`` are overlap values in [0, 1]. ``balance_labels`` samples each subset without replacement down
    to its smallest label class (every label of ``examples`` counts, so a subset missing a label is an
    error, not a silently one-class "balanced" set). An empty subset raises :class:`ConfigError` naming
    the filter that emptied it.
    """
    _check_options(mode, high, low)
    if not examples:
        raise ConfigError("overlap_subsets got no examples: the high- and low-overlap subsets would be empty")
    scores = [word_overlap(e.premise, e.hypothesis) for e in examples]
    if mode == "percentile":
        arr = np.asarray(scores, dtype=float)
        high_thr = float(np.percentile(arr, high))
        low_thr = float(np.percentile(arr, low))
        high_desc, low_desc = f", {_ordinal(high)} percentile", f", {_ordinal(low)} percentile"
    else:
        high_thr, low_thr = float(high), float(low)
        high_desc = low_desc = ", absolute threshold"
    high_idx = [i for i, s in enumerate(scores) if s >= high_thr]
    low_idx = [i for i, s in enumerate(scores) if s <= low_thr]
    for name, idx, op, thr, desc in (
        ("high-overlap", high_idx, ">=", high_thr, high_desc),
        ("low-overlap", low_idx, "<=", low_thr, low_desc),
    ):
        if not idx:
            raise ConfigError(
                f"the {name} subset (overlap {op} {thr:.4g}{desc}) is empty over {len(scores)} examples "
                f"(overlap ranges from {min(scores):.4g} to {max(scores):.4g})"
            )
    labels = [e.label for e in examples]
    known = {lab: i for i, lab in enumerate(NLI_LABELS + HANS_LABELS[1:])}
    all_labels = sorted(set(labels), key=lambda lab: (known.get(lab, len(known)), lab))
    if balance_labels:
        rng = random.Random(seed)
        high_idx = _balance(high_idx, labels, all_labels, rng, "high-overlap")
        low_idx = _balance(low_idx, labels, all_labels, rng, "low-overlap")

    def counts(idx: list[int]) -> dict[str, int]:
        return {lab: sum(labels[i] == lab for i in idx) for lab in all_labels}

    return OverlapSubsets(
        high_idx=high_idx,
        low_idx=low_idx,
        high_threshold=high_thr,
        low_threshold=low_thr,
        scores=scores,
        mode=mode,
        high_label_counts=counts(high_idx),
        low_label_counts=counts(low_idx),
    )
