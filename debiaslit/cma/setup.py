"""The shared state of a mediation analysis: model, component map, measure, mediators, position.

:class:`MediationSetup` runs the clean and counterfactual forwards, captures activations at the
mediator sites and builds the intervention targets; the estimators (``exact``, ``attribution``) take it
as their first argument. Everything is plain torch: no Lightning needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.effects import EffectMeasure
from debiaslit.cma.mediators import (
    Mediator,
    at_least_fp32,
    check_position,
    gather_positions,
    resolve_positions,
)
from debiaslit.errors import ConfigError

#: Batch fields passed to the model; everything else (labels, token ids of the measure) is metadata.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INTERVENTIONS = ("counterfactual", "reference", "mean", "scale", "zero")


@dataclass(frozen=True)
class Intervention:
    """What a patched unit is set to (METHODS.md §1.2–§1.3).

    ``counterfactual``: its value under the counterfactual input at the same position (Vig);
    ``reference``: a reference statistic, the mean over a reference set (e.g. HOL); ``mean``: mean ablation
    (the mean over the probe set itself); ``scale``: ×``alpha`` ("weaken"); ``zero``: 0.
    """

    kind: str = "reference"
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in INTERVENTIONS:
            raise ConfigError(f"unknown cma intervention {self.kind!r}; valid: {', '.join(INTERVENTIONS)}")


@dataclass
class ReferenceStats:
    """Sum and count of activations over a reference set, per mediator key; merge shards by addition."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    count: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, key: str, values: torch.Tensor, weight: torch.Tensor) -> None:
        """``values`` [N, P, D] weighted by ``weight`` [N, P] (0 for padding)."""
        s = (values.double() * weight[..., None]).sum((0, 1))
        c = weight.double().sum()
        self.sums[key] = self.sums[key] + s if key in self.sums else s
        self.count[key] = self.count[key] + c if key in self.count else c

    def mean(self, key: str) -> torch.Tensor:
        if key not in self.sums or float(self.count[key]) == 0:
            raise ConfigError(f"the cma reference set is empty: no activations for {key}")
        return self.sums[key] / self.count[key]


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


def logits_of(output: object) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output[0]


def repeat_rows(batch: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    """Every per-example tensor repeated ``times`` (variant-major: row v·N + i is example i)."""
    n = batch["input_ids"].shape[0]
    return {
        k: v.repeat(times, *[1] * (v.dim() - 1)) if v.dim() and v.shape[0] == n else v
        for k, v in batch.items()
    }


class MediationSetup:
    """Model + measure + mediators + position; the common input of every estimator.

    Args:
        model: a transformers model (task head included); it is used in eval mode, never modified.
        measure: the effect measure y (see :mod:`debiaslit.cma.effects`).
        mediators: the (component, layer) sites to analyse (:func:`~debiaslit.cma.mediators.mediators_for`).
        position: ``cls``, ``last``, ``word`` (``batch["positions"]``), ``all`` or a token index.
        max_rows: memory budget of the exact estimator, in sequences per forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        measure: EffectMeasure,
        mediators: Sequence[Mediator],
        position: str | int = "cls",
        max_rows: int = 512,
    ) -> None:
        check_position(position)
        if max_rows < 1:
            raise ConfigError(f"cma max_rows must be >= 1, got {max_rows}")
        self.model, self.measure, self.position, self.max_rows = model, measure, position, max_rows
        self.cmap = ComponentMap.for_model(model)
        self.mediators = list(mediators)
        for med in self.mediators:
            med.site(self.cmap)  # validates component and layer

    def n_units(self, mediator: Mediator) -> int:
        return mediator.n_units(self.cmap)

    def positions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return resolve_positions(self.position, batch)

    def log_y(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """m = log y for every example (one plain forward)."""
        with torch.no_grad():
            return self.measure.log_y(logits_of(self.model(**model_inputs(batch))), batch)

    @contextmanager
    def reading(self, mediators: Iterable[Mediator], store: dict[str, torch.Tensor], for_grad: bool = False):
        """Hooks that store each mediator's activation [N, T, D] under its key while active.

        ``for_grad``: store a copy that is fed back into the model, so that the stored tensor is on the
        path to the output even where the component is a slice of a fused projection (GPT-2 Q/K/V).
        """
        handles = []
        for med in mediators:

            def read(act: torch.Tensor, key: str = med.key) -> torch.Tensor | None:
                store[key] = act.clone() if for_grad else act
                return store[key] if for_grad else None

            handles.append(med.site(self.cmap).register_hook(self.model, read))
        try:
            yield store
        finally:
            for h in handles:
                h.remove()

    def capture(
        self, batch: dict[str, torch.Tensor], mediators: Sequence[Mediator] | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Activations at the patched positions {key: [N, P, D]} and m = log y, from one forward."""
        mediators = self.mediators if mediators is None else mediators
        positions = self.positions(batch)
        with torch.no_grad(), self.reading(mediators, {}) as store:
            m = self.measure.log_y(logits_of(self.model(**model_inputs(batch))), batch)
        return {k: at_least_fp32(gather_positions(v, positions)) for k, v in store.items()}, m

    def reference_stats(self, batches: Iterable[dict[str, torch.Tensor]]) -> ReferenceStats:
        """Activation sums over a reference set (padding excluded when ``position='all'``)."""
        for mediator in self.mediators:
            mediator.width(self.cmap)  # patterns have no reference mean: ConfigError
        stats = ReferenceStats()
        for batch in batches:
            acts, _ = self.capture(batch)
            positions = self.positions(batch)
            weight = torch.ones(positions.shape, dtype=torch.float64)
            if self.position == "all" and "attention_mask" in batch:
                weight = batch["attention_mask"].double()
            for key, value in acts.items():
                stats.add(key, value.cpu(), weight)
        return stats

    def targets(
        self,
        clean: dict[str, torch.Tensor],
        intervention: Intervention,
        counterfactual: dict[str, torch.Tensor] | None = None,
        reference: ReferenceStats | None = None,
    ) -> dict[str, torch.Tensor]:
        """Target values T [N, P, D] per mediator, given the clean activations Z at the same positions."""
        kind, out = intervention.kind, {}
        if kind == "counterfactual" and counterfactual is None:
            raise ConfigError("cma intervention 'counterfactual' needs counterfactual inputs in the probe")
        if kind in ("reference", "mean") and reference is None:
            raise ConfigError(f"cma intervention {kind!r} needs a reference set; none was given")
        for key, z in clean.items():
            if kind == "counterfactual":
                t = counterfactual[key]
                if t.shape != z.shape:
                    raise ConfigError(
                        f"counterfactual activations {tuple(t.shape)} do not match the clean ones "
                        f"{tuple(z.shape)} at {key}: the two inputs must align token by token"
                    )
            elif kind in ("reference", "mean"):
                t = reference.mean(key).to(z.device, z.dtype).expand_as(z)
            elif kind == "scale":
                t = intervention.alpha * z
            else:
                t = torch.zeros_like(z)
            out[key] = t
        return out
