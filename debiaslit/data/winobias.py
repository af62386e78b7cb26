"""WinoBias (Zhao et al. 2018): the bracketed ``N <sentence>`` files, occupation lists and gender-swap pairs.

Brackets mark the coreferent occupation mention and pronoun(s); they are removed and kept as character spans
of the plain sentence, so models see clean text while metrics still know what corefers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from debiaslit.errors import DataFormatError

_FILE_NAME = re.compile(r"(?P<stereotype>pro|anti)_stereotyped_type(?P<type>[12])\.txt\.(?P<split>\w+)")
_MAX_REPORTED = 20


@dataclass(frozen=True)
class Span:
    """``text`` == ``sentence[start:end]`` of the plain (bracket-free) sentence."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class WinoBiasExample:
    """One sentence; ``occupation`` is the first bracketed span (article kept), ``pronouns`` the others."""

    uid: str
    sentence: str
    spans: tuple[Span, ...]
    type: int
    stereotype: str

    @property
    def occupation(self) -> Span:
        return self.spans[0]

    @property
    def pronouns(self) -> tuple[Span, ...]:
        return self.spans[1:]


def _parse_brackets(text: str) -> tuple[str, tuple[Span, ...]] | str:
    """(plain sentence, spans), or a message saying what is wrong with the brackets."""
    plain: list[str] = []
    offsets: list[tuple[int, int]] = []
    start: int | None = None
    for char in text:
        if char == "[":
            if start is not None:
                return "nested '['"
            start = len(plain)
        elif char == "]":
            if start is None:
                return "']' without '['"
            offsets.append((start, len(plain)))
            start = None
        else:
            plain.append(char)
    if start is not None:
        return "unclosed '['"
    if len(offsets) < 2:
        return f"{len(offsets)} bracketed span(s), expected the occupation mention and at least one pronoun"
    sentence = "".join(plain)
    return sentence, tuple(Span(sentence[a:b], a, b) for a, b in offsets)


def read_winobias_file(path: str | Path) -> list[WinoBiasExample]:
    """Read one ``{pro,anti}_stereotyped_type{1,2}.txt.<split>`` file; its name gives stereotype and type."""
    path = Path(path)
    match = _FILE_NAME.fullmatch(path.name)
    if match is None:
        raise DataFormatError(f"{path}: the name is not {{pro,anti}}_stereotyped_type{{1,2}}.txt.<split>")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (expected WinoBias lines 'N <sentence with [spans]>')")
    stem = path.name.replace(".txt", "")
    examples: list[WinoBiasExample] = []
    problems: list[str] = []
    first_line: dict[int, int] = {}
    for line, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        number, _, rest = raw.strip().partition(" ")
        parsed = _parse_brackets(rest.strip())
        if not number.isdigit():
            problems.append(f"line {line}: does not start with a sentence number")
        elif isinstance(parsed, str):
            problems.append(f"line {line}: {parsed}")
        elif int(number) in first_line:
            problems.append(f"line {line}: number {number} already used on line {first_line[int(number)]}")
        else:
            first_line[int(number)] = line
            uid = f"{stem}:{int(number)}"
            examples.append(WinoBiasExample(uid, *parsed, int(match["type"]), match["stereotype"]))
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        raise DataFormatError(f"{path}: {len(problems)} malformed line(s):\n  {shown}")
    if not examples:
        raise DataFormatError(f"{path}: no sentences")
    return examples


def read_winobias(directory: str | Path, split: str = "dev") -> list[WinoBiasExample]:
    """All four pro/anti x type1/type2 files of one split (e.g. 4 x 396 dev sentences)."""
    return [
        example
        for stereotype in ("pro", "anti")
        for kind in (1, 2)
        for example in read_winobias_file(
            Path(directory) / f"{stereotype}_stereotyped_type{kind}.txt.{split}"
        )
    ]


def _lines(path: Path, what: str) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (expected {what})")
    lines = [
        (i, raw) for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if raw.strip()
    ]
    if not lines:
        raise DataFormatError(f"{path}: the file is empty (expected {what})")
    return lines


def read_occupations(path: str | Path) -> list[str]:
    """One occupation per line (``male_occupations.txt``, ``female_occupations.txt``; no final newline)."""
    return [raw.strip() for _, raw in _lines(Path(path), "one occupation per line")]


def read_swap_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Tab-separated word pairs (``generalized_swaps.txt``, ``extra_gendered_words.txt``), fields stripped.

    The pair order is not consistently male-female upstream, so none is implied.
    """
    path = Path(path)
    pairs, bad = [], []
    for line, raw in _lines(path, "one tab-separated word pair per line"):
        fields = [field.strip() for field in raw.split("\t")]
        if len(fields) == 2 and all(fields):
            pairs.append((fields[0], fields[1]))
        else:
            bad.append(line)
    if bad:
        raise DataFormatError(
            f"{path}: {len(bad)} line(s) are not two tab-separated words: lines {bad[:_MAX_REPORTED]}"
        )
    return pairs


MALE_PRONOUNS = frozenset({"he", "his", "him", "himself"})
FEMALE_PRONOUNS = frozenset({"she", "her", "hers", "herself"})
_ARTICLES = ("the ", "a ", "an ")


def referent_occupation(example: WinoBiasExample) -> str:
    """The bracketed occupation without its article, lower case (``[The developer]`` -> ``developer``)."""
    text = " ".join(example.occupation.text.lower().split())  # one upstream mention has two spaces
    for article in _ARTICLES:
        if text.startswith(article):
            return text[len(article) :]
    return text


def read_winobias_pairs(
    directory: str | Path, split: str = "dev"
) -> list[tuple[WinoBiasExample, WinoBiasExample]]:
    """(pro, anti) sentences of one split paired by type and sentence number (the upstream files agree
    on the numbering, not always on the line order); a number present in only one file is named."""
    examples = read_winobias(directory, split)
    anti = {(e.type, e.uid.rpartition(":")[2]): e for e in examples if e.stereotype == "anti"}
    pro = {(e.type, e.uid.rpartition(":")[2]): e for e in examples if e.stereotype == "pro"}
    unmatched = sorted(
        f"type{t} sentence {n} ({'pro' if (t, n) in pro else 'anti'} only)" for t, n in set(pro) ^ set(anti)
    )
    if unmatched:
        raise DataFormatError(
            f"{directory}: {len(unmatched)} WinoBias {split} sentence(s) without a pro/anti counterpart: "
            f"{unmatched[:_MAX_REPORTED]}"
        )
    return [(pro[key], anti[key]) for key in sorted(pro, key=lambda k: (k[0], int(k[1])))]
