"""CrowS-Pairs (Nangia et al. 2020): minimal sentence pairs, more vs less stereotyping, nine bias types.

Rows are checked and every bad one is reported by line, because a silently dropped or misread pair
moves the score, whose unbiased value is 50 %.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from debiaslit.errors import DataFormatError

BIAS_TYPES: tuple[str, ...] = (
    "race-color", "gender", "socioeconomic", "nationality", "religion", "age", "sexual-orientation",
    "physical-appearance", "disability",
)  # fmt: skip
DIRECTIONS = ("stereo", "antistereo")
COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
_MAX_REPORTED = 20


@dataclass(frozen=True)
class CrowsPair:
    """``more`` is the more stereotyping sentence; ``stereo`` False means it *violates* a stereotype
    about the disadvantaged group (the ``antistereo`` rows)."""

    uid: str
    more: str
    less: str
    stereo: bool
    bias_type: str


def read_crows_pairs(path: str | Path) -> list[CrowsPair]:
    """All pairs of ``crows_pairs_anonymized.csv`` (quoted CSV; the unnamed first column is the id)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            f"{path}: no such file (expected crows_pairs_anonymized.csv with {list(COLUMNS)})"
        )
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(f"{path}: header {reader.fieldnames} lacks the column(s) {missing}")
        pairs, problems = [], []
        for row in reader:
            line = reader.line_num
            values = {c: (row.get(c) or "").strip() for c in COLUMNS}
            uid = (row.get("") or "").strip() or str(line)
            if not values["sent_more"] or not values["sent_less"]:
                problems.append(f"line {line}: an empty sentence")
            elif values["sent_more"] == values["sent_less"]:
                problems.append(f"line {line}: sent_more and sent_less are identical")
            elif values["stereo_antistereo"] not in DIRECTIONS:
                problems.append(
                    f"line {line}: stereo_antistereo {values['stereo_antistereo']!r} not in {DIRECTIONS}"
                )
            elif values["bias_type"] not in BIAS_TYPES:
                problems.append(f"line {line}: bias_type {values['bias_type']!r} is not one of {BIAS_TYPES}")
            else:
                stereo = values["stereo_antistereo"] == "stereo"
                pairs.append(
                    CrowsPair(uid, values["sent_more"], values["sent_less"], stereo, values["bias_type"])
                )
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        raise DataFormatError(f"{path}: {len(problems)} bad row(s):\n  {shown}")
    if not pairs:
        raise DataFormatError(f"{path}: no pairs")
    return pairs
