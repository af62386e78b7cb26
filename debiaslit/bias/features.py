"""Hand-crafted HANS features of a premise/hypothesis pair (Clark et al. 2019, ``build_mnli_bias_only.py``).

The fastText similarity features of the reference need word vectors, which are not available offline;
negation words in the hypothesis are added instead (a known hypothesis-side cue of contradiction).
Tokenisation is the one word overlap uses everywhere (:func:`debiaslit.data.overlap.overlap_words`).
"""

from __future__ import annotations

import math

from debiaslit.data.overlap import overlap_words

NEGATION_WORDS = frozenset(
    {"not", "no", "never", "nobody", "nothing", "none", "nowhere", "neither", "nor", "n't"}
)
FEATURE_NAMES: tuple[str, ...] = (
    "contiguous_subsequence",
    "all_words_in_premise",
    "overlap_rate",
    "log_length_diff",
    "hypothesis_negation",
)


def _is_contiguous(needle: list[str], haystack: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def hans_features(premise: str, hypothesis: str) -> list[float]:
    """The :data:`FEATURE_NAMES` values: h is a contiguous subsequence of p; every h word is in p;
    the fraction of h words (with repeats) in p; ``log(max(len p − len h, 1))``; any negation word in h."""
    p, h = overlap_words(premise), overlap_words(hypothesis)
    vocab = set(p)
    in_premise = [w in vocab for w in h]
    return [
        float(_is_contiguous(h, p)),
        float(bool(h) and all(in_premise)),
        sum(in_premise) / len(h) if h else 0.0,
        math.log(max(len(p) - len(h), 1)),
        float(any(w in NEGATION_WORDS or w.endswith("n't") for w in h)),
    ]
