"""One mediation analysis over a probe set: reference means, TE, estimates, hybrid verification.

Plain torch; the only distributed hook is ``reduce`` (sum a flat tensor over processes), so the
Lightning callback shards the probe rows across ranks and passes the strategy's all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from debiaslit.cma.attribution import attribution_effects
from debiaslit.cma.effects import EffectSums, ratio_effect
from debiaslit.cma.exact import exact_effects
from debiaslit.cma.probe import Probe
from debiaslit.cma.selection import compare, top_units
from debiaslit.cma.setup import Intervention, MediationSetup
from debiaslit.errors import ConfigError

ESTIMATORS = ("attribution", "exact", "hybrid")
Reduce = Callable[[torch.Tensor], torch.Tensor]


def _no_reduce(t: torch.Tensor) -> torch.Tensor:
    return t


def _reduce_dicts(dicts: Sequence[dict[str, torch.Tensor]], reduce: Reduce) -> None:
    """Sum every tensor of ``dicts`` over processes in one collective (sorted keys: same order everywhere)."""
    entries = [(d, k) for d in dicts for k in sorted(d)]
    if not entries:
        return
    flat = reduce(torch.cat([d[k].reshape(-1).double() for d, k in entries]))
    offset = 0
    for d, k in entries:
        n = d[k].numel()
        d[k] = flat[offset : offset + n].view_as(d[k]).cpu()
        offset += n


@dataclass
class AnalysisResult:
    """Estimates (``attribution``) and/or exact effects; for hybrid, the verified units and Spearman."""

    estimate: EffectSums | None = None
    exact: EffectSums | None = None
    verified: dict[str, torch.Tensor] = field(default_factory=dict)
    spearman: float = float("nan")
    spearman_by_component: dict[str, float] = field(default_factory=dict)
    total_effect: float | None = None


def analyse(
    setup: MediationSetup,
    probe: Probe,
    intervention: Intervention,
    estimator: str = "attribution",
    rows: Sequence[int] | None = None,
    reference_rows: Sequence[int] | None = None,
    batch_size: int = 32,
    verify_top_k: int = 16,
    reduce: Reduce = _no_reduce,
) -> AnalysisResult:
    """NIE of every unit of ``setup.mediators`` over the probe ``rows`` (all by default).

    ``estimator``: ``attribution`` (first order, every unit), ``exact`` (every unit, batched) or
    ``hybrid`` (attribution for every unit, exact for the top ``verify_top_k`` of each mediator).
    Every process must call this with its own disjoint ``rows`` (and ``reference_rows``); the
    result is identical on all of them.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"unknown cma estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    rows = list(range(len(probe))) if rows is None else list(rows)
    reference = None
    if intervention.kind in ("reference", "mean"):
        source = probe.reference if intervention.kind == "reference" else probe.items
        if not source:
            raise ConfigError(f"cma intervention {intervention.kind!r} needs a non-empty reference set")
        ref_rows = list(range(len(source))) if reference_rows is None else list(reference_rows)
        batches = Probe(source, probe.pad_token_id).batches(ref_rows, batch_size)
        reference = setup.reference_stats(b for b, _ in batches)
        for m in setup.mediators:  # a rank without reference rows contributes zeros
            reference.sums.setdefault(m.key, torch.zeros(m.width(setup.cmap), dtype=torch.float64))
            reference.count.setdefault(m.key, torch.zeros((), dtype=torch.float64))
        _reduce_dicts([reference.sums, reference.count], reduce)

    def prepared():
        """(batch, target function, m_null, m_cf or None) per probe batch."""
        for batch, cf_batch in probe.batches(rows, batch_size):
            clean, m_null = setup.capture(batch)
            cf, m_cf = setup.capture(cf_batch) if cf_batch is not None else (None, None)

            def targets(z: dict[str, torch.Tensor], cf: dict | None = cf) -> dict[str, torch.Tensor]:
                return setup.targets(z, intervention, counterfactual=cf, reference=reference)

            yield batch, clean, targets, m_null, m_cf

    result = AnalysisResult()
    te = {"sum": torch.zeros((), dtype=torch.float64), "n": torch.zeros((), dtype=torch.float64)}
    estimate = EffectSums() if estimator in ("attribution", "hybrid") else None
    exact = EffectSums() if estimator == "exact" else None
    for batch, clean, targets, m_null, m_cf in prepared():
        if m_cf is not None:
            te["sum"] = te["sum"] + ratio_effect(m_cf - m_null).double().sum().cpu()
        te["n"] = te["n"] + m_null.shape[0]
        if estimate is not None:
            estimate = estimate.merge(attribution_effects(setup, batch, targets))
        if exact is not None:
            exact = exact.merge(exact_effects(setup, batch, targets(clean)))
    every_unit = {m.key: setup.n_units(m) for m in setup.mediators}
    for sums in (estimate, exact):
        if sums is not None:
            _finish(sums, every_unit, reduce)
    _reduce_dicts([te], reduce)
    if probe.counterfactual is not None:
        result.total_effect = float(te["sum"] / te["n"])
    result.estimate, result.exact = estimate, exact
    if estimator == "hybrid":
        result.verified = top_units(estimate.nie(), verify_top_k)
        verified = EffectSums()
        for batch, clean, targets, _, _ in prepared():
            verified = verified.merge(exact_effects(setup, batch, targets(clean), units=result.verified))
        _finish(verified, {k: len(v) for k, v in result.verified.items()}, reduce)
        result.exact = verified
        result.spearman, result.spearman_by_component = compare(estimate, verified, result.verified)
    return result


def _finish(sums: EffectSums, sizes: dict[str, int], reduce: Reduce) -> None:
    """Fill the keys a rank without rows lacks with zeros, then sum over processes."""
    for store in (sums.ratio, sums.log):
        for key, size in sizes.items():
            store.setdefault(key, torch.zeros(size, dtype=torch.float64))
    count = {"n": torch.tensor(float(sums.count))}
    _reduce_dicts([sums.ratio, sums.log, count], reduce)
    sums.count = int(count["n"])
