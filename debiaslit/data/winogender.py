"""Winogender schemas (Rudinger et al. 2018): sentences, male/female/neutral minimal pairs, occupation folds.

The three upstream TSVs are joined into one record per sentence so that metrics (METHODS.md §8.3) need no
further look-ups; folds split by occupation because PCGU trains on these sentences.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from debiaslit.errors import ConfigError, DataFormatError

GENDERS: tuple[str, ...] = ("male", "female", "neutral")
OCCUPATION, PARTICIPANT = 0, 1  # values of ``answer``: whom the pronoun refers to
SENTENCES_FILE, TEMPLATES_FILE, STATS_FILE = "all_sentences.tsv", "templates.tsv", "occupations-stats.tsv"
_MAX_REPORTED = 20


@dataclass(frozen=True)
class WinogenderExample:
    """One instantiated sentence; ``answer`` 0 = the pronoun refers to the occupation, 1 = the participant."""

    uid: str
    occupation: str
    participant: str
    answer: int
    gender: str
    sentence: str
    bergsma_pct_female: float
    bls_pct_female: float
    template: str

    @property
    def gotcha(self) -> bool | None:
        """Whether the occupation's BLS majority gender points to the wrong referent (§8.3); None if neutral.

        Female pronoun: gotcha if (answer = OCCUPATION and BLS < 50 %) or (answer = PARTICIPANT and
        BLS >= 50 %); reversed for a male pronoun.
        """
        if self.gender == "neutral":
            return None
        pronoun_fits_majority = (self.gender == "female") == (self.bls_pct_female >= 50)
        return pronoun_fits_majority != (self.answer == OCCUPATION)


@dataclass(frozen=True)
class WinogenderPair:
    """The male/female/neutral versions of one sentence (same occupation, participant and answer)."""

    male: WinogenderExample
    female: WinogenderExample
    neutral: WinogenderExample

    @property
    def uid(self) -> str:
        return f"{self.male.occupation}.{self.male.participant}.{self.male.answer}"

    @property
    def occupation(self) -> str:
        return self.male.occupation


@dataclass
class WinogenderData:
    """The sentences and their male/female/neutral groups (the pairs hold the same example objects)."""

    examples: list[WinogenderExample]
    pairs: list[WinogenderPair]


def _read_tsv(path: Path, columns: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each data row; header and column counts checked, all bad lines reported."""
    if not path.is_file():
        raise DataFormatError(
            f"{path}: no such file (expected a Winogender TSV with columns {list(columns)})"
        )
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: the file is empty (expected the header {list(columns)})")
        if header != list(columns):
            raise DataFormatError(f"{path}: header {header} is not {list(columns)}")
        rows = [(reader.line_num, row) for row in reader if row]
    bad = [line for line, row in rows if len(row) != len(columns)]
    if bad:
        raise DataFormatError(
            f"{path}: {len(bad)} row(s) without exactly {len(columns)} tab-separated columns, "
            f"lines {bad[:_MAX_REPORTED]}"
        )
    if not rows:
        raise DataFormatError(f"{path}: no data rows")
    return rows


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        raise DataFormatError(f"{path}: {len(problems)} problem(s):\n  {shown}")


def read_occupation_stats(path: str | Path) -> dict[str, tuple[float, float]]:
    """occupation -> (Bergsma % female, BLS % female) from an ``occupations-stats.tsv``."""
    path = Path(path)
    stats: dict[str, tuple[float, float]] = {}
    problems = []
    for line, (occupation, bergsma, bls, _year) in _read_tsv(
        path, ("occupation", "bergsma_pct_female", "bls_pct_female", "bls_year")
    ):
        if occupation in stats:
            problems.append(f"line {line}: occupation {occupation!r} is listed twice")
            continue
        try:
            stats[occupation] = (float(bergsma), float(bls))
        except ValueError:
            problems.append(f"line {line}: percentages {bergsma!r}, {bls!r} are not numbers")
    _raise_problems(path, problems)
    return stats


def _read_templates(path: Path) -> dict[tuple[str, int], tuple[str, str]]:
    """(occupation, answer) -> (participant, template)."""
    templates: dict[tuple[str, int], tuple[str, str]] = {}
    problems = []
    columns = ("occupation(0)", "other-participant(1)", "answer", "sentence")
    for line, (occupation, participant, answer, template) in _read_tsv(path, columns):
        if answer not in ("0", "1"):
            problems.append(f"line {line}: answer {answer!r} is not 0 or 1")
        elif (occupation, int(answer)) in templates:
            problems.append(f"line {line}: a second template for {occupation!r} with answer {answer}")
        else:
            templates[occupation, int(answer)] = (participant, template)
    _raise_problems(path, problems)
    return templates


def read_winogender(directory: str | Path) -> WinogenderData:
    """Read ``all_sentences.tsv`` joined with its template and occupation statistics, plus minimal pairs."""
    directory = Path(directory)
    stats = read_occupation_stats(directory / STATS_FILE)
    templates = _read_templates(directory / TEMPLATES_FILE)
    path = directory / SENTENCES_FILE
    examples, problems = [], []
    for line, (sentid, sentence) in _read_tsv(path, ("sentid", "sentence")):
        parts = sentid.split(".")
        if len(parts) != 5 or parts[4] != "txt" or parts[2] not in ("0", "1") or parts[3] not in GENDERS:
            problems.append(
                f"line {line}: sentid {sentid!r} is not occupation.participant.answer(0|1).gender"
                f"({'|'.join(GENDERS)}).txt"
            )
            continue
        occupation, participant, answer, gender = parts[0], parts[1], int(parts[2]), parts[3]
        if occupation not in stats:
            problems.append(f"line {line}: occupation {occupation!r} is missing from {STATS_FILE}")
            continue
        if (occupation, answer) not in templates:
            problems.append(
                f"line {line}: no template in {TEMPLATES_FILE} for {occupation!r} with answer {answer}"
            )
            continue
        template_participant, template = templates[occupation, answer]
        if participant not in (template_participant, "someone"):
            problems.append(
                f"line {line}: participant {participant!r} is neither {template_participant!r} nor someone"
            )
            continue
        bergsma, bls = stats[occupation]
        examples.append(
            WinogenderExample(
                uid=sentid,
                occupation=occupation,
                participant=participant,
                answer=answer,
                gender=gender,
                sentence=sentence.strip(),
                bergsma_pct_female=bergsma,
                bls_pct_female=bls,
                template=template,
            )
        )
    _raise_problems(path, problems)
    return WinogenderData(examples, _group_pairs(path, examples))


def _group_pairs(path: Path, examples: list[WinogenderExample]) -> list[WinogenderPair]:
    groups: dict[tuple[str, str, int], dict[str, WinogenderExample]] = {}
    problems = []
    for ex in examples:
        group = groups.setdefault((ex.occupation, ex.participant, ex.answer), {})
        if ex.gender in group:
            problems.append(f"{ex.uid} appears twice")
        group[ex.gender] = ex
    problems += [
        f"{'.'.join(map(str, key))} lacks {sorted(set(GENDERS) - set(g))}"
        for key, g in groups.items()
        if len(g) != len(GENDERS)
    ]
    _raise_problems(path, problems)
    return [WinogenderPair(g["male"], g["female"], g["neutral"]) for g in groups.values()]


class _HasOccupation(Protocol):
    @property
    def occupation(self) -> str: ...


T = TypeVar("T", bound=_HasOccupation)


def split_by_occupation(
    items: Sequence[T], *, val_fraction: float | None = None, n_folds: int | None = None, seed: int = 0
) -> list[tuple[list[T], list[T]]]:
    """(train, eval) splits in which train and eval never share an occupation.

    Give ``val_fraction`` for one split (a fraction of the occupations held out) or ``n_folds`` for
    cross-validation folds over occupations; works on examples and pairs alike.
    """
    if (val_fraction is None) == (n_folds is None):
        raise ConfigError("pass exactly one of val_fraction or n_folds")
    occupations = sorted({item.occupation for item in items})
    random.Random(seed).shuffle(occupations)
    if n_folds is not None:
        if not 2 <= n_folds <= len(occupations):
            raise ConfigError(
                f"n_folds must be in 2..{len(occupations)} (the number of occupations), got {n_folds}"
            )
        held_out = [set(occupations[k::n_folds]) for k in range(n_folds)]
    else:
        n_val = round(len(occupations) * val_fraction) if 0 < val_fraction < 1 else 0
        if not 0 < n_val < len(occupations):
            raise ConfigError(
                f"val_fraction={val_fraction} of {len(occupations)} occupations leaves train or eval empty"
            )
        held_out = [set(occupations[:n_val])]
    return [
        ([it for it in items if it.occupation not in fold], [it for it in items if it.occupation in fold])
        for fold in held_out
    ]
