"""The professions list of Vig et al. (2020) / Bolukbasi et al. (2016) with its two gender scores.

Scores are negative for female-leaning and positive for male-leaning words; CMA (METHODS.md §1.2) selects
professions by the stereotypical score, so malformed entries are reported by index rather than skipped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from debiaslit.errors import DataFormatError

_MAX_REPORTED = 20


@dataclass(frozen=True)
class Profession:
    """``word`` has ``_`` replaced by a space (``assistant professor``), ready for templating."""

    word: str
    definitional: float
    stereotypical: float


def _is_score(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_professions(path: str | Path) -> list[Profession]:
    """Read a JSON list of ``[word, definitional, stereotypical]`` entries (professions*.json)."""
    path = Path(path)
    expected = "a JSON list of [word, definitional, stereotypical] entries"
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (expected {expected})")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"{path}: invalid JSON at line {err.lineno} ({err.msg}); expected {expected}"
        ) from err
    if not isinstance(entries, list) or not entries:
        found = "an empty list" if entries == [] else f"a JSON {type(entries).__name__}"
        raise DataFormatError(f"{path}: expected {expected}, found {found}")
    professions, problems, seen = [], [], {}
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and entry[0].strip()
            and _is_score(entry[1])
            and _is_score(entry[2])
        ):
            problems.append(f"entry {index}: {entry!r} is not [word, number, number]")
            continue
        word = entry[0].strip().replace("_", " ")
        if word in seen:
            problems.append(f"entry {index}: {word!r} repeats entry {seen[word]}")
            continue
        seen[word] = index
        professions.append(Profession(word, float(entry[1]), float(entry[2])))
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        raise DataFormatError(f"{path}: {len(problems)} malformed entr(y/ies) ({expected}):\n  {shown}")
    return professions
