"""A generic NLI table reader: TSV / CSV / JSONL with any column names or positions, labels by name.

For files none of the fixed formats of :mod:`debiaslit.data.nli_readers` fit, e.g. the headerless
``premise<TAB>hypothesis<TAB>label`` subsets McCoy et al. publish. TSVs are read with ``QUOTE_NONE``
(MNLI text holds unbalanced quotes), CSVs with standard quoting. Every bad row is reported at once with
its line number, as the other readers do.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from debiaslit.data.nli_readers import NLIReadResult, RowCollector, json_objects
from debiaslit.data.schema import NLI_LABELS
from debiaslit.errors import ConfigError, DataFormatError

TABLE_FORMATS = ("tsv", "csv", "jsonl")
ROLES = ("premise", "hypothesis", "label", "id")
_REQUIRED = ROLES[:3]
Roles = dict[str, str | int]
AddRow = Callable[[int, Mapping], None]


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in TABLE_FORMATS:
            raise ConfigError(f"TableNLI format must be 'auto' or one of {TABLE_FORMATS}, got {fmt!r}")
        return fmt
    return {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix.lower(), "tsv")


def _columns(columns: Mapping[str, str | int] | None, header: bool, fmt: str) -> Roles:
    if columns is None:
        named = header or fmt == "jsonl"
        columns = {role: role if named else i for i, role in enumerate(_REQUIRED)}
    unknown = sorted(set(columns) - set(ROLES))
    missing = [role for role in _REQUIRED if role not in columns]
    if unknown or missing:
        raise ConfigError(
            f"TableNLI columns must name {', '.join(_REQUIRED)} (and optionally id); "
            f"unknown {unknown}, missing {missing}"
        )
    positional = [role for role, col in columns.items() if isinstance(col, int)]
    if fmt == "jsonl" and positional:
        raise ConfigError(f"TableNLI columns {positional}: a JSONL file has field names, not positions")
    if not header and fmt != "jsonl" and len(positional) != len(columns):
        raise ConfigError("TableNLI with header: false takes column positions (0-based integers) only")
    return dict(columns)


def _label_lookup(label_map: Mapping[str | int, str] | None) -> dict[str, str] | None:
    if label_map is None:
        return None
    lookup = {str(raw).strip(): name.strip().lower() for raw, name in label_map.items()}
    bad = sorted({name for name in lookup.values() if name not in NLI_LABELS})
    if bad:
        raise ConfigError(f"TableNLI label_map maps to {bad}; targets must be {', '.join(NLI_LABELS)}")
    return lookup


def read_table(
    path: str | Path,
    fmt: str = "auto",
    columns: Mapping[str, str | int] | None = None,
    header: bool = True,
    label_map: Mapping[str | int, str] | None = None,
    source: str | None = None,
) -> NLIReadResult:
    """Read ``path`` as TSV / CSV / JSONL (``fmt="auto"``: from the extension, default TSV).

    ``columns`` maps the roles ``premise``, ``hypothesis``, ``label`` and optional ``id`` to header names
    or 0-based positions (default: columns named like the roles; without a header, positions 0, 1, 2).
    With ``label_map`` every raw label must be one of its keys; without it labels are NLI label names
    (any case; ``-`` = no consensus, dropped and counted). Ids are ``<source>:<id>`` or
    ``<source>:<line>``, ``source`` defaulting to the file stem.
    """
    path = Path(path)
    fmt = _format_of(path, fmt)
    roles = _columns(columns, header, fmt)
    lookup = _label_lookup(label_map)
    unit = "field" if fmt == "jsonl" else "column"
    labels = sorted(lookup) if lookup is not None else list(NLI_LABELS)
    expected = (
        f"a {fmt.upper()} file with "
        + ", ".join(f"{role} in {unit} {col!r}" for role, col in roles.items())
        + f" and labels among {labels}"
    )
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (expected {expected})")
    collector = RowCollector(str(path), source or path.stem, expected)

    def add(line: int, record: Mapping[str | int, object]) -> None:
        label = record[roles["label"]]
        if lookup is not None:
            raw = str(label).strip()
            if raw not in lookup:
                collector.problem(line, f"label {raw!r} is not a key of label_map {sorted(lookup)}")
                return
            label = lookup[raw]
        row_id = record[roles["id"]] if "id" in roles else None
        collector.add(line, row_id, record[roles["premise"]], record[roles["hypothesis"]], label)

    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            if fmt == "jsonl":
                _read_jsonl(file, roles, collector, add)
            else:
                _read_delimited(file, fmt, roles, header, collector, add)
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err})") from err
    return collector.result()


def _read_jsonl(file: Iterable[str], roles: Roles, collector: RowCollector, add: AddRow) -> None:
    for line, obj in json_objects(file, collector, [str(c) for c in roles.values()]):
        add(line, obj)


def _read_delimited(
    file: Iterable[str], fmt: str, roles: Roles, header: bool, collector: RowCollector, add: AddRow
) -> None:
    quoting = {"quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    reader = csv.reader(file, delimiter="\t" if fmt == "tsv" else ",", **quoting)
    names: list[str] | None = None
    width: int | None = None
    try:
        if header:
            names = next(reader, None)
            if names is None:
                raise DataFormatError(f"{collector.where}: the file is empty (expected {collector.expected})")
            absent = [c for c in roles.values() if isinstance(c, str) and c not in names]
            if absent:
                raise DataFormatError(
                    f"{collector.where}: line 1: header {names[:12]} lacks column(s) {absent}"
                )
            width = len(names)
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            width = width or len(row)
            if len(row) != width:
                collector.problem(line, f"{len(row)} columns, expected {width}")
                continue
            if max((c for c in roles.values() if isinstance(c, int)), default=-1) >= width:
                collector.problem(line, f"{len(row)} columns, too few for the positions {dict(roles)}")
                continue
            record: dict[str | int, object] = dict(enumerate(row))
            if names is not None:
                record.update(zip(names, row, strict=True))
            add(line, record)
    except csv.Error as err:
        raise DataFormatError(f"{collector.where}: line {reader.line_num}: {err}") from err
