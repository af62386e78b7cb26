"""Neutral (non-gendered-pair) text for LM-quality checks and for fitting an MLM head: MNLI premises.

The premises are split by position so that text used to fit a head is never the held-out text that
later measures LM quality (every ``every``-th unique premise is held out).
"""

from __future__ import annotations

from pathlib import Path

from debiaslit.data.nli_readers import read_nli_file
from debiaslit.errors import ConfigError

PARTS = ("fit", "heldout")


def premise_sentences(path: str | Path, part: str, every: int = 10) -> list[str]:
    """Unique premises of an NLI file in file order; ``heldout``: every ``every``-th, ``fit``: the rest."""
    if part not in PARTS:
        raise ConfigError(f"neutral text part must be one of {PARTS}, got {part!r}")
    if every < 2:
        raise ConfigError(f"neutral text: every must be >= 2 (1 in every premises is held out), got {every}")
    premises = list(dict.fromkeys(e.premise.strip() for e in read_nli_file(path).examples))
    return [p for i, p in enumerate(premises) if (i % every == 0) == (part == "heldout")]
