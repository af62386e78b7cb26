"""One mediation analysis over a probe set: reference means, TE, estimates, hybrid verification.

Plain torch; the only distributed hook is ``reduce`` (sum a flat tensor over processes), so the
Lightning callback shards the probe rows across ranks and passes the strategy's all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from debiaslit.cma.attribution import atp_qk_effects, atp_star_effects, attribution_effects, ig_effects
from debiaslit.cma.effects import EffectSums, ratio_effect
from debiaslit.cma.exact import exact_effects
from debiaslit.cma.probe import Probe
from debiaslit.cma.ranking import NO_EFFECT, RANKED, noise_floor, verification_units, verified_quality
from debiaslit.cma.setup import Intervention, MediationSetup
from debiaslit.errors import ConfigError

#: Screens estimate every unit at once (attribution; + AtP*'s QK fix; + GradDrop; integrated gradients);
#: ``exact`` patches every unit; ``hybrid`` screens, then verifies.
SCREENS = {
    "attribution": attribution_effects,
    "atp_qk": atp_qk_effects,
    "atp_star": atp_star_effects,
    "ig": ig_effects,
}
ESTIMATORS = (*SCREENS, "exact", "hybrid")
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
class UnitEffects:
    """One site's effects as used downstream: exact where computed, else the screen's estimate."""

    nie: torch.Tensor  # [n_units]
    log: torch.Tensor  # [n_units]: mean log ratio
    exact: torch.Tensor  # [n_units] bool: the value is exact
    estimate: torch.Tensor | None  # [n_units]: the screen's NIE (None for exact-only runs)


@dataclass
class AnalysisResult:
    """Screen estimates and/or exact effects; for hybrid, the verified units and the per-site table.

    ``exact`` holds, for hybrid runs, the effects of the units ``verified[key]`` (sorted) in that order.
    ``sites`` maps a mediator key to its ranking-quality row (:mod:`debiaslit.cma.ranking`).
    """

    estimate: EffectSums | None = None
    exact: EffectSums | None = None
    verified: dict[str, torch.Tensor] = field(default_factory=dict)
    verified_top: dict[str, torch.Tensor] = field(default_factory=dict)
    sites: dict[str, dict] = field(default_factory=dict)
    total_effect: float | None = None
    screen: str | None = None

    @property
    def count(self) -> int:
        return (self.estimate if self.estimate is not None else self.exact).count

    def effects(self) -> dict[str, UnitEffects]:
        """Per site: exact values wherever they exist, the screen's estimate elsewhere."""
        if self.estimate is None:
            return {
                k: UnitEffects(v, self.exact.mean_log()[k], torch.ones(v.numel(), dtype=torch.bool), None)
                for k, v in self.exact.nie().items()
            }
        est_nie, est_log = self.estimate.nie(), self.estimate.mean_log()
        ex_nie, ex_log = (self.exact.nie(), self.exact.mean_log()) if self.exact is not None else ({}, {})
        out = {}
        for key, estimate in est_nie.items():
            nie, log = estimate.clone(), est_log[key].clone()
            exact = torch.zeros(nie.numel(), dtype=torch.bool)
            units = self.verified.get(key)
            if units is not None and key in ex_nie:
                nie[units], log[units], exact[units] = ex_nie[key], ex_log[key], True
            out[key] = UnitEffects(nie, log, exact, estimate)
        return out


def analyse(
    setup: MediationSetup,
    probe: Probe,
    intervention: Intervention,
    estimator: str = "attribution",
    rows: Sequence[int] | None = None,
    reference_rows: Sequence[int] | None = None,
    batch_size: int = 32,
    verify_top_k: int = 16,
    verify_random: int = 16,
    screen: str = "attribution",
    seed: int = 0,
    reduce: Reduce = _no_reduce,
) -> AnalysisResult:
    """NIE of every unit of ``setup.mediators`` over the probe ``rows`` (all by default).

    ``estimator``: a screen (``attribution``: first order, every unit), ``exact`` (every unit, batched)
    or ``hybrid``: the ``screen`` for every unit, then exact effects for its top ``verify_top_k`` and a
    uniform random sample of ``verify_random`` other units of each site (seeded by ``seed``), so that
    units the screen ranked too low can show up; ``sites`` reports per site how well it ranked them.
    Every process must call this with its own disjoint ``rows`` (and ``reference_rows``); the
    result is identical on all of them.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"unknown cma estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    if screen not in SCREENS:
        raise ConfigError(f"unknown cma screen {screen!r}; valid: {', '.join(SCREENS)}")
    if verify_top_k < 1 or verify_random < 0:
        raise ConfigError(
            f"cma verify_top_k must be >= 1 and verify_random >= 0, got {verify_top_k} and {verify_random}"
        )
    screen_fn = SCREENS[estimator if estimator in SCREENS else screen]
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
    estimate = EffectSums() if estimator != "exact" else None
    exact = EffectSums() if estimator == "exact" else None
    for batch, clean, targets, m_null, m_cf in prepared():
        if m_cf is not None:
            te["sum"] = te["sum"] + ratio_effect(m_cf - m_null).double().sum().cpu()
        te["n"] = te["n"] + m_null.shape[0]
        if estimate is not None:
            estimate = estimate.merge(screen_fn(setup, batch, targets))
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
    result.screen = None if estimator == "exact" else (estimator if estimator in SCREENS else screen)
    if estimator == "exact":
        floor = noise_floor(exact.nie())
        result.sites = {
            k: {
                "status": NO_EFFECT if float(v.abs().max()) <= floor else RANKED,
                "max_exact": float(v.abs().max()),
            }
            for k, v in exact.nie().items()
        }
    if estimator == "hybrid":
        _verify(result, setup, prepared, verify_top_k, verify_random, seed, reduce)
    return result


def _verify(
    result: AnalysisResult,
    setup: MediationSetup,
    prepared,
    top_k: int,
    n_random: int,
    seed: int,
    reduce: Reduce,
) -> None:
    """Exact effects of each site's top screen units plus a random sample, and the per-site table."""
    generator = torch.Generator().manual_seed(seed)  # the same draw on every process
    screen_nie = result.estimate.nie()
    samples = {}
    for mediator in setup.mediators:
        key = mediator.key
        result.verified_top[key], samples[key] = verification_units(
            screen_nie[key], top_k, n_random, generator
        )
        result.verified[key] = torch.cat([result.verified_top[key], samples[key]]).sort().values
    verified = EffectSums()
    for batch, clean, targets, _, _ in prepared():
        verified = verified.merge(exact_effects(setup, batch, targets(clean), units=result.verified))
    _finish(verified, {k: len(v) for k, v in result.verified.items()}, reduce)
    result.exact = verified
    exact_nie = verified.nie()
    floor = noise_floor(exact_nie)
    result.sites = {
        key: verified_quality(screen_nie[key], result.verified_top[key], samples[key], exact_nie[key], floor)
        for key in result.verified
    }


def _finish(sums: EffectSums, sizes: dict[str, int], reduce: Reduce) -> None:
    """Fill the keys a rank without rows lacks with zeros, then sum over processes."""
    for store in (sums.ratio, sums.log):
        for key, size in sizes.items():
            store.setdefault(key, torch.zeros(size, dtype=torch.float64))
    count = {"n": torch.tensor(float(sums.count))}
    _reduce_dicts([sums.ratio, sums.log, count], reduce)
    sums.count = int(count["n"])
