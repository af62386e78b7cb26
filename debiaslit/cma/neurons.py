"""Restrict masks to the units a CMA result ranks highest (learned causal-grounded masking).

Reads a CMA ``neurons.csv`` (columns at least ``component, layer, index, effect, estimator,
n_examples``; one row per unit and estimator, as ``debiaslit.cma`` writes it) and keeps the top
``top_percent`` % of units by effect (largest first, the CMA module's top-p % convention) among the
masked components and layers. Only the weight rows producing those units get mask scores.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from debiaslit.errors import ConfigError, DataFormatError

REQUIRED_COLUMNS = ("component", "layer", "index", "effect", "estimator", "n_examples")


def read_neurons(path: str | Path) -> list[dict]:
    """Rows of a CMA ``neurons.csv`` with parsed ``layer``, ``index`` and ``effect``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"CMA neurons file {path} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(
                f"{path}: missing columns {missing}; expected at least {list(REQUIRED_COLUMNS)}"
            )
        rows, errors = [], []
        for line, row in enumerate(reader, start=2):
            try:
                layer, index, effect = int(row["layer"]), int(row["index"]), float(row["effect"])
            except (TypeError, ValueError):
                errors.append(f"line {line}: layer/index must be integers and effect a number, got {row}")
                continue
            if not math.isfinite(effect):
                errors.append(f"line {line}: effect is not finite ({row['effect']})")
                continue
            rows.append(dict(row, layer=layer, index=index, effect=effect))
    if errors:
        raise DataFormatError(f"{path}: {len(errors)} malformed rows:\n" + "\n".join(errors[:20]))
    if not rows:
        raise DataFormatError(f"{path}: no rows")
    return rows


def select_units(
    path: str | Path,
    top_percent: float,
    components: Sequence[str],
    layers: Sequence[int],
    estimator: str | None = None,
) -> dict[tuple[str, int], torch.Tensor]:
    """(component, layer) → sorted unit indices of the top ``top_percent`` % units by effect.

    Only rows whose component and layer are masked are ranked. A file with several estimators
    needs ``estimator``.
    """
    if not 0.0 < top_percent <= 100.0:
        raise ConfigError(f"model.cma_top_percent must lie in (0, 100], got {top_percent}")
    rows = read_neurons(path)
    estimators = sorted({r["estimator"] for r in rows})
    if estimator is None and len(estimators) > 1:
        raise ConfigError(f"{path} holds estimators {estimators}; choose one with model.cma_estimator")
    if estimator is not None:
        if estimator not in estimators:
            raise ConfigError(f"model.cma_estimator {estimator!r} not in {path} (has {estimators})")
        rows = [r for r in rows if r["estimator"] == estimator]
    wanted_layers = set(layers)
    rows = [r for r in rows if r["component"] in components and r["layer"] in wanted_layers]
    if not rows:
        raise ConfigError(
            f"{path} has no units of the masked components {list(components)} "
            f"in layers {sorted(wanted_layers)}"
        )
    keep = max(1, math.ceil(len(rows) * top_percent / 100.0))
    rows.sort(key=lambda r: (-r["effect"], r["component"], r["layer"], r["index"]))
    chosen: dict[tuple[str, int], list[int]] = {}
    for r in rows[:keep]:
        chosen.setdefault((r["component"], r["layer"]), []).append(r["index"])
    return {key: torch.tensor(sorted(set(units)), dtype=torch.long) for key, units in chosen.items()}
