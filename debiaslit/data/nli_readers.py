"""NLI readers: GLUE/SNLI-style TSV, MultiNLI/SNLI JSONL, the MNLI dev file of McCoy et al. (2020), the Hub.

Every reader maps labels *by name* onto ``NLI_LABELS`` (sources disagree on label order, METHODS.md §0),
counts the rows it drops (no annotator consensus) in ``NLIReadResult.skipped``, and reports every malformed
row with its line number at once instead of merging or dropping rows silently. TSVs are read with
``csv.QUOTE_NONE``: MNLI has unbalanced ``"`` characters and default quoting merges rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from debiaslit.data.schema import NLI_LABELS, NLIExample
from debiaslit.errors import ConfigError, DataFormatError

MNLI_DEV_CORRECT_COLUMNS: tuple[str, ...] = (
    "index",
    "premise",
    "hypothesis",
    "gold_label",
    "number of correct responses (out of 100)",
)
_EXPECTED: dict[str, str] = {
    "glue_tsv": "a tab-separated file whose header names sentence1, sentence2 and gold_label (or label)",
    "multinli_jsonl": "one JSON object per line with sentence1, sentence2, gold_label (and pairID)",
    "snli_jsonl": "one JSON object per line with sentence1, sentence2, gold_label (and pairID)",
    "mnli_dev_correct": "a tab-separated file with the header " + " | ".join(MNLI_DEV_CORRECT_COLUMNS),
}
FORMATS: tuple[str, ...] = tuple(_EXPECTED)
#: Hub datasets this reader knows: name -> (config, splits with gold labels).
HUB_DATASETS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "nyu-mll/glue": ("mnli", ("train", "validation_matched", "validation_mismatched")),
    "nyu-mll/multi_nli": (None, ("train", "validation_matched", "validation_mismatched")),
    "stanfordnlp/snli": (None, ("train", "validation", "test")),
}
_NO_CONSENSUS = "-"
_MAX_REPORTED = 20


@dataclass
class NLIReadResult:
    """The examples read plus how many rows were dropped and why (reason -> count), so no drop is silent."""

    examples: list[NLIExample]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class RowCollector:
    """Builds examples from one input and gathers all its problems, so they are reported in one error."""

    where: str
    source: str
    expected: str
    unit: str = "line"
    no_consensus: str = "gold_label '-'"
    rows: int = 0
    examples: list[NLIExample] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[int, str]] = field(default_factory=list)
    first_seen: dict[str, int] = field(default_factory=dict)

    def problem(self, line: int, message: str) -> None:
        self.rows += 1
        self.problems.append((line, message))

    def add(self, line: int, row_id: object, premise: object, hypothesis: object, label: object) -> None:
        """Validate one row; ``label`` is a label name or ``"-"`` for "no annotator consensus"."""
        self.rows += 1
        uid = f"{self.source}:{line if row_id is None or row_id == '' else row_id}"
        if uid in self.first_seen:
            self.problems.append((line, f"duplicate id {uid!r} (also on {self.unit} {self.first_seen[uid]})"))
            return
        self.first_seen[uid] = line
        if not isinstance(premise, str) or not isinstance(hypothesis, str):
            self.problems.append((line, "premise/hypothesis is missing or not a string"))
            return
        name = label.strip().lower() if isinstance(label, str) else None
        if name == _NO_CONSENSUS:
            self.skipped[self.no_consensus] += 1
        elif name not in NLI_LABELS:
            self.problems.append((line, f"unknown label {label!r} (allowed: {', '.join(NLI_LABELS)})"))
        elif not premise.strip() or not hypothesis.strip():
            self.skipped["empty premise or hypothesis"] += 1
        else:
            self.examples.append(NLIExample(uid, premise.strip(), hypothesis.strip(), name))

    def result(self) -> NLIReadResult:
        if self.problems:
            shown = "\n".join(f"  {self.unit} {line}: {msg}" for line, msg in self.problems[:_MAX_REPORTED])
            more = len(self.problems) - _MAX_REPORTED
            raise DataFormatError(
                f"{self.where}: {len(self.problems)} malformed row(s) of {self.rows}"
                f" (expected {self.expected}):\n{shown}" + (f"\n  ... and {more} more" if more > 0 else "")
            )
        if self.rows == 0:
            raise DataFormatError(f"{self.where}: no data rows (expected {self.expected})")
        return NLIReadResult(self.examples, dict(self.skipped))


def read_nli_file(path: str | Path, fmt: str = "auto", source: str | None = None) -> NLIReadResult:
    """Read one local NLI file; ``fmt="auto"`` decides from the extension and the header line.

    ``source`` (default: the file stem) prefixes every uid, so ids stay unique across combined files.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in _EXPECTED:
        raise ConfigError(f"unknown NLI file format {fmt!r}; choose 'auto' or one of {', '.join(FORMATS)}")
    if not path.is_file():
        expected = _EXPECTED.get(fmt, "an NLI file: " + "; or ".join(sorted(set(_EXPECTED.values()))))
        raise DataFormatError(f"{path}: no such file (expected {expected})")
    try:
        with path.open(encoding="utf-8-sig", newline="\n") as file:
            first = file.readline()
            if not first.strip():
                what = "the file is empty" if not first else "line 1 is blank"
                raise DataFormatError(f"{path}: {what} (expected {_EXPECTED.get(fmt, 'an NLI file')})")
            if fmt == "auto":
                fmt = _detect_format(path, first.rstrip("\r\n"))
            file.seek(0)
            collector = RowCollector(str(path), source or path.stem, _EXPECTED[fmt])
            if fmt.endswith("_jsonl"):
                _parse_jsonl(file, collector)
            else:
                _parse_tsv(file, fmt, collector)
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err})") from err
    return collector.result()


def _detect_format(path: Path, first_line: str) -> str:
    if path.suffix == ".jsonl" or first_line.lstrip().startswith("{"):
        return "multinli_jsonl"
    header = first_line.split("\t")
    if header == list(MNLI_DEV_CORRECT_COLUMNS):
        return "mnli_dev_correct"
    if {"sentence1", "sentence2"} <= set(header):
        return "glue_tsv"
    raise DataFormatError(
        f"{path}: cannot tell the NLI format from the extension or the header {header[:6]}; "
        f"pass fmt= one of {', '.join(FORMATS)}"
    )


def json_objects(
    lines: Iterable[str], collector: RowCollector, fields: Iterable[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each JSON line holding ``fields``; every other line is a problem."""
    fields = list(fields)
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            collector.problem(line, f"invalid JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(obj, dict):
            collector.problem(line, f"expected a JSON object, found {type(obj).__name__}")
            continue
        missing = [k for k in fields if k not in obj]
        if missing:
            collector.problem(line, f"missing field(s) {', '.join(missing)}")
            continue
        yield line, obj


def _parse_jsonl(lines: Iterable[str], collector: RowCollector) -> None:
    for line, obj in json_objects(lines, collector, ("sentence1", "sentence2", "gold_label")):
        collector.add(line, obj.get("pairID"), obj["sentence1"], obj["sentence2"], obj["gold_label"])


def _tsv_columns(header: list[str], fmt: str, where: str) -> tuple[str, str, str, str | None]:
    """(premise, hypothesis, label, id) column names for ``fmt``, or an error naming what the header lacks."""
    if fmt == "mnli_dev_correct":
        if header != list(MNLI_DEV_CORRECT_COLUMNS):
            raise DataFormatError(f"{where}: header {header} is not {list(MNLI_DEV_CORRECT_COLUMNS)}")
        return "premise", "hypothesis", "gold_label", "index"
    label = next((c for c in ("gold_label", "label") if c in header), None)
    if label is None or not {"sentence1", "sentence2"} <= set(header):
        raise DataFormatError(f"{where}: header {header[:12]} lacks sentence1, sentence2 or gold_label/label")
    row_id = next((c for c in ("pairID", "index") if c in header), None)
    return "sentence1", "sentence2", label, row_id


def _parse_tsv(lines: Iterable[str], fmt: str, collector: RowCollector) -> None:
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader)
    premise, hypothesis, label, row_id = _tsv_columns(header, fmt, collector.where)
    count_column = MNLI_DEV_CORRECT_COLUMNS[-1]
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                collector.problem(line, f"{len(row)} tab-separated columns, the header has {len(header)}")
                continue
            record = dict(zip(header, row, strict=True))
            if fmt == "mnli_dev_correct" and not _is_int_in(record[count_column], 0, 100):
                collector.problem(line, f"{count_column} = {record[count_column]!r} is not an integer 0..100")
                continue
            collector.add(
                line, record[row_id] if row_id else None, record[premise], record[hypothesis], record[label]
            )
    except csv.Error as err:  # e.g. a bare carriage return inside a field
        raise DataFormatError(f"{collector.where}: line {reader.line_num}: {err}") from err


def _is_int_in(value: str, low: int, high: int) -> bool:
    try:
        return low <= int(value) <= high
    except ValueError:
        return False


def nli_examples_from_rows(
    rows: Iterable[Mapping[str, Any]], label_names: Sequence[str], source: str, where: str = "rows"
) -> NLIReadResult:
    """Convert Hub-style rows (premise, hypothesis, integer label, optional pairID/idx) into examples.

    Integer labels are decoded with the dataset's own ClassLabel ``label_names`` and then matched by name,
    never by position; label -1 (no consensus) is dropped and counted.
    """
    unknown = [n for n in label_names if n.lower() not in NLI_LABELS]
    if unknown:
        raise DataFormatError(f"{where}: label names {unknown} are not NLI labels ({', '.join(NLI_LABELS)})")
    collector = RowCollector(where, source, "premise, hypothesis and a ClassLabel label", "row", "label -1")
    for index, row in enumerate(rows):
        label = row.get("label")
        if label == -1:
            name: object = _NO_CONSENSUS
        elif isinstance(label, int) and 0 <= label < len(label_names):
            name = label_names[label]
        else:
            collector.problem(index, f"label {label!r} is not -1 or an index into {list(label_names)}")
            continue
        row_id = next((row[k] for k in ("pairID", "idx") if row.get(k) is not None), None)
        collector.add(index, row_id, row.get("premise"), row.get("hypothesis"), name)
    return collector.result()


def load_nli_from_hub(name: str, split: str, source: str | None = None) -> NLIReadResult:
    """Load MNLI/SNLI from the Hugging Face Hub (online); offline, read local files with ``read_nli_file``."""
    if name not in HUB_DATASETS:
        raise ConfigError(f"unknown Hub NLI dataset {name!r}; choose one of {', '.join(HUB_DATASETS)}")
    config, splits = HUB_DATASETS[name]
    if split not in splits:
        raise ConfigError(f"{name} has no labelled split {split!r}; choose one of {', '.join(splits)}")
    import datasets  # deferred: importing datasets is slow and only this function needs it

    where = f"{name}{f' ({config})' if config else ''} split {split!r}"
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except OSError as err:  # ConnectionError, offline mode, dataset not found
        raise DataFormatError(
            f"could not load {where} from the Hugging Face Hub ({err}). If you are offline, pass local files "
            "instead: read_nli_file(path) reads GLUE/SNLI TSV and MultiNLI/SNLI JSONL "
            "(HF_HUB_OFFLINE=1 makes this fail at once instead of after retries)."
        ) from err
    default_source = f"{name.rsplit('/', 1)[-1]}_{config + '_' if config else ''}{split}"
    return nli_examples_from_rows(dataset, dataset.features["label"].names, source or default_source, where)


class _HasUid(Protocol):
    @property
    def uid(self) -> str: ...


T = TypeVar("T", bound=_HasUid)


def split_train_val(
    examples: Sequence[T], val_fraction: float, seed: int, option: str = "val_fraction"
) -> tuple[list[T], list[T]]:
    """Deterministic seeded (train, val) split that depends on the uids only, not on the input order.

    Examples are ranked by a hash of (seed, uid) and the first ``round(n * val_fraction)`` go to val;
    both sides keep the input order. ``option`` is the name errors give the fraction (the option the
    user set, e.g. ``data.heldout_fraction``).
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"{option} must be in (0, 1), got {val_fraction}")
    n_val = round(len(examples) * val_fraction)
    if n_val == 0 or n_val == len(examples):
        raise ConfigError(
            f"{option}={val_fraction} of {len(examples)} examples leaves an empty train or held-out split"
        )

    def rank(i: int) -> tuple[bytes, str]:
        uid = examples[i].uid
        return hashlib.blake2b(f"{seed}\0{uid}".encode(), digest_size=8).digest(), uid

    val = set(sorted(range(len(examples)), key=rank)[:n_val])
    return (
        [ex for i, ex in enumerate(examples) if i not in val],
        [ex for i, ex in enumerate(examples) if i in val],
    )
