"""Per-example probability files (bias-model caches, teacher predictions, user-supplied bias files).

One JSON format, ``debiaslit.probs/1``::

    {"format": "debiaslit.probs/1",
     "label_order": ["contradiction", "entailment", "neutral"],     # order of every probs row
     "splits": {"train": {"uids": [...], "labels": [...], "probs": [[...], ...]}, "<eval set>": {...}},
     "meta": {...}}

Label orders differ between sources (METHODS.md §0), so rows are re-ordered **by label name** into
``NLI_LABELS`` when read. ``labels`` (gold label names) are optional; when present they are checked
against the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from debiaslit.data.schema import NLI_LABELS, NLIExample
from debiaslit.errors import DataFormatError
from debiaslit.utils.files import write_text_atomic

FORMAT = "debiaslit.probs/1"


@dataclass
class SplitProbs:
    """Probabilities of one split, rows in ``NLI_LABELS`` order."""

    uids: list[str]
    probs: torch.Tensor
    labels: list[str] | None = None

    def lookup(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.uids)}


def write_probs_file(
    path: str | Path,
    splits: dict[str, SplitProbs],
    label_order: tuple[str, ...] = NLI_LABELS,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``splits`` (rows in ``label_order``) atomically as a ``debiaslit.probs/1`` JSON."""
    payload = {
        "format": FORMAT,
        "label_order": list(label_order),
        "splits": {
            name: {
                "uids": s.uids,
                "labels": s.labels,
                "probs": [[round(float(p), 8) for p in row] for row in s.probs.tolist()],
            }
            for name, s in splits.items()
        },
        "meta": meta or {},
    }
    write_text_atomic(path, json.dumps(payload))


def read_probs_file(path: str | Path) -> tuple[dict[str, SplitProbs], dict[str, Any]]:
    """Read a ``debiaslit.probs/1`` file; rows come back in ``NLI_LABELS`` order, plus the ``meta``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"probabilities file '{path}' does not exist")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"probabilities file '{path}': not valid JSON ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataFormatError(f"probabilities file '{path}': expected a JSON object with format '{FORMAT}'")
    order = payload.get("label_order")
    if not isinstance(order, list) or sorted(order) != sorted(NLI_LABELS):
        raise DataFormatError(
            f"probabilities file '{path}': label_order must name each of {list(NLI_LABELS)} once, got {order}"
        )
    perm = [order.index(name) for name in NLI_LABELS]
    splits = {}
    for name, split in (payload.get("splits") or {}).items():
        uids, probs, labels = split.get("uids"), split.get("probs"), split.get("labels")
        where = f"probabilities file '{path}', split '{name}'"
        if not isinstance(uids, list) or not isinstance(probs, list) or len(uids) != len(probs):
            raise DataFormatError(f"{where}: needs lists `uids` and `probs` of equal length")
        if labels is not None and len(labels) != len(uids):
            raise DataFormatError(f"{where}: `labels` has {len(labels)} entries for {len(uids)} uids")
        tensor = torch.tensor(probs, dtype=torch.float32)
        if tensor.ndim != 2 or tensor.shape[1] != len(order):
            raise DataFormatError(f"{where}: every probs row needs {len(order)} values")
        if (tensor < 0).any() or ((tensor.sum(1) - 1).abs() > 1e-3).any():
            bad = int(((tensor < 0).any(1) | ((tensor.sum(1) - 1).abs() > 1e-3)).nonzero()[0])
            raise DataFormatError(f"{where}: row {bad} (uid {uids[bad]}) is not a probability vector")
        splits[name] = SplitProbs(uids=list(uids), probs=tensor[:, perm], labels=labels)
    return splits, payload.get("meta") or {}


_CACHE_HINT = "It was computed for other data: delete it, or point the cache option elsewhere"


def align(
    split: SplitProbs, examples: list[NLIExample], where: str, exact: bool, hint: str = _CACHE_HINT
) -> torch.Tensor:
    """Rows of ``split`` in the order of ``examples``; a clear error for missing ids and for gold labels
    that differ. ``exact`` also forbids ids the data lacks (a cache built for other data)."""
    index = split.lookup()
    missing = [e.uid for e in examples if e.uid not in index]
    extra = len(set(index) - {e.uid for e in examples}) if exact else 0
    if missing or extra:
        raise DataFormatError(
            f"{where}: ids do not match the data ({len(missing)} of {len(examples)} data ids missing, "
            f"e.g. {missing[:5]}; {extra} ids the data lacks). {hint}"
        )
    rows = [index[e.uid] for e in examples]
    if split.labels is not None:
        for e, r in zip(examples, rows, strict=True):
            stored = split.labels[r]
            if stored != e.label:
                raise DataFormatError(
                    f"{where}: example '{e.uid}' has gold label '{e.label}' in the data but '{stored}' "
                    "in the file: the file belongs to other data (or another label mapping)"
                )
    return split.probs[rows]
