"""neurons.csv (one row per unit and estimator of a CMA run): its writer, its reader, and the unit
selections that methods configure (all units, or the top units of a CMA result).

A selection resolves, for a backbone's component map, to {(component, layer): unit indices, or None
for every unit}; a (component, layer) it lacks is left alone. Masks give scores only to the weight
rows producing the selected units (learned causal-grounded masking); PCGU updates only their rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from debiaslit.backbones.components import COMPONENTS, ComponentMap
from debiaslit.errors import ConfigError, DataFormatError
from debiaslit.utils.files import atomic_path

#: Columns of neurons.csv as written (one row per unit): ``effect`` is exact wherever an exact value was
#: computed (``exact`` = 1, ``estimator`` = exact), else the screen's estimate; ``estimate`` is the screen's
#: value of every unit (empty in exact-only runs). The reader needs REQUIRED_COLUMNS only.
NEURON_COLUMNS = (
    "component", "layer", "index", "effect", "log_effect", "estimator", "n_examples", "exact", "estimate"
)  # fmt: skip
REQUIRED_COLUMNS = ("component", "layer", "index", "effect", "estimator", "n_examples")
GRANULARITIES = ("weight", "row")

Units = dict[tuple[str, int], torch.Tensor | None]


def write_neurons(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write neurons.csv (atomically) with :data:`NEURON_COLUMNS`; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=NEURON_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


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
    option: str = "units",
) -> dict[tuple[str, int], torch.Tensor]:
    """(component, layer) → sorted unit indices of the top ``top_percent`` % units by effect.

    Largest effect first (the CMA module's top-p % convention), ranked among the rows of the given
    components and layers only. A file with one row per unit (an ``exact`` column: the exact value wherever
    one was computed, else the estimate) is ranked as it is; an older file with several estimators' rows
    for the same units needs ``estimator``. Errors name ``<option>.init_args.<name>``.
    """
    if not 0.0 < top_percent <= 100.0:
        raise ConfigError(f"{option}.init_args.top_percent must lie in (0, 100], got {top_percent}")
    rows = read_neurons(path)
    estimators = sorted({r["estimator"] for r in rows})
    if estimator is None and len(estimators) > 1 and "exact" not in rows[0]:
        raise ConfigError(
            f"{path} holds estimators {estimators}; choose one with {option}.init_args.estimator"
        )
    if estimator is not None:
        if estimator not in estimators:
            raise ConfigError(f"{option}.init_args.estimator {estimator!r} not in {path} (has {estimators})")
        rows = [r for r in rows if r["estimator"] == estimator]
    wanted_layers = set(layers)
    rows = [r for r in rows if r["component"] in components and r["layer"] in wanted_layers]
    if not rows:
        raise ConfigError(
            f"{path} has no units of the components {list(components)} in layers {sorted(wanted_layers)}"
        )
    keep = max(1, math.ceil(len(rows) * top_percent / 100.0))
    rows.sort(key=lambda r: (-r["effect"], r["component"], r["layer"], r["index"]))
    chosen: dict[tuple[str, int], list[int]] = {}
    for r in rows[:keep]:
        chosen.setdefault((r["component"], r["layer"]), []).append(r["index"])
    return {key: torch.tensor(sorted(set(units)), dtype=torch.long) for key, units in chosen.items()}


class UnitSelection:
    """Which components and layers a method acts on, and which of their units.

    Args:
        components: Weight-site components (``Q K V AO I O``, all by default).
        layers: Layer indices (all by default).
        include_head: Also the pooler and task-head Linear layers (masks: Zhao et al. mask them).
        granularity: Masks only: ``weight`` (one score per weight) or ``row`` (one per output unit).
    """

    def __init__(
        self,
        components: list[str] | None = None,
        layers: list[int] | None = None,
        include_head: bool = False,
        granularity: Literal["weight", "row"] = "weight",
    ) -> None:
        self.components, self.layers = components, layers
        self.include_head, self.granularity = include_head, granularity

    def targets(self, cmap: ComponentMap, option: str) -> tuple[list[str], list[int]]:
        """The checked (components, layers); ConfigError naming ``<option>.init_args.<name>``."""
        components = list(COMPONENTS if self.components is None else self.components)
        layers = list(range(cmap.num_layers)) if self.layers is None else list(self.layers)
        if not components:
            raise ConfigError(f"{option}.init_args.components is empty; choose from {', '.join(COMPONENTS)}")
        if self.granularity not in GRANULARITIES:
            raise ConfigError(
                f"{option}.init_args.granularity must be one of {GRANULARITIES}, got {self.granularity!r}"
            )
        for name, values, check in (
            ("layers", layers, lambda layer: cmap.layer_module_path(layer)),
            ("components", components, lambda component: cmap.weight_site(component, 0)),
        ):
            for value in values:
                try:
                    check(value)
                except ConfigError as err:
                    raise ConfigError(f"{option}.init_args.{name}: {err}") from err
        return components, layers

    def resolve(self, cmap: ComponentMap, option: str = "units") -> Units:
        """{(component, layer): unit indices or None (all)} for the backbone of ``cmap``."""
        raise NotImplementedError


class AllUnits(UnitSelection):
    """Every unit of the chosen components and layers."""

    def resolve(self, cmap: ComponentMap, option: str = "units") -> Units:
        components, layers = self.targets(cmap, option)
        return {(c, layer): None for layer in layers for c in components}


class TopCMAUnits(UnitSelection):
    """The top ``top_percent`` % units by effect of a CMA ``neurons.csv``, among the chosen
    components and layers (``estimator``: which one, when the file holds several)."""

    def __init__(
        self,
        neurons_csv: str,
        top_percent: float = 10.0,
        estimator: str | None = None,
        components: list[str] | None = None,
        layers: list[int] | None = None,
        include_head: bool = False,
        granularity: Literal["weight", "row"] = "weight",
    ) -> None:
        super().__init__(components, layers, include_head, granularity)
        self.neurons_csv, self.top_percent, self.estimator = neurons_csv, top_percent, estimator

    def resolve(self, cmap: ComponentMap, option: str = "units") -> Units:
        components, layers = self.targets(cmap, option)
        chosen = select_units(self.neurons_csv, self.top_percent, components, layers, self.estimator, option)
        for (component, layer), units in chosen.items():
            n_units = cmap.size(component)
            bad = units[(units < 0) | (units >= n_units)]
            if bad.numel():
                raise ConfigError(
                    f"{self.neurons_csv}: unit {int(bad[0])} of {component} layer {layer} out of range "
                    f"0..{n_units - 1} for this backbone ({option}.init_args.neurons_csv)"
                )
        return {
            (c, layer): chosen[(c, layer)] for layer in layers for c in components if (c, layer) in chosen
        }
