"""The one example schema every NLI reader normalises to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: 3-way NLI label order used everywhere inside debiaslit (GLUE / Hugging Face order).
NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
#: HANS is binary; a 3-way prediction maps entailment -> entailment, neutral/contradiction -> non-entailment.
HANS_LABELS: tuple[str, ...] = ("entailment", "non-entailment")
HANS_HEURISTICS: tuple[str, ...] = ("lexical_overlap", "subsequence", "constituent")


@dataclass(frozen=True)
class NLIExample:
    """One premise/hypothesis pair.

    ``uid`` is stable across runs (source name + original pair id or line number) so that
    bias-model caches, DDP de-duplication and CMA probe sets can refer to examples by id.
    ``label`` is a label *name* from ``NLI_LABELS`` or ``HANS_LABELS``; indices are assigned later.
    """

    uid: str
    premise: str
    hypothesis: str
    label: str
    heuristic: str | None = None
    subcase: str | None = None
    template: str | None = None


def is_hans_style(examples: Iterable[NLIExample]) -> bool:
    """Binary HANS-style data (scored entailment vs non-entailment) rather than 3-way NLI."""
    return any(e.label == "non-entailment" or e.heuristic for e in examples)
