"""Causal mediation analysis (METHODS.md §1): NIE of neurons and attention heads, exact and first order.

Plain torch, usable without Lightning::

    setup = MediationSetup(model, ClassProbability(0), mediators_for(cmap, ["Q", "I", "head"]), "cls")
    clean, m = setup.capture(batch)
    targets = setup.targets(clean, Intervention("reference"), reference=setup.reference_stats(ref_batches))
    exact = exact_effects(setup, batch, targets).nie()            # {"Q/layer_0": tensor[n_units], ...}
    estimate = attribution_effects(setup, batch, lambda z: setup.targets(z, ...)).nie()
    result = analyse(setup, probe, Intervention("reference"), estimator="hybrid", screen="atp_qk")
    result.effects()   # exact where verified, else the screen's estimate; result.sites: ranking per site

:class:`~debiaslit.cma.callback.NIECallback` runs :func:`analyse` at validation end.
"""

from debiaslit.cma.attribution import (
    atp_qk_effects,
    atp_star_effects,
    attribution_deltas,
    attribution_effects,
    ig_deltas,
    ig_effects,
)
from debiaslit.cma.callback import NIECallback
from debiaslit.cma.effects import (
    ClassLogOdds,
    ClassProbability,
    EffectMeasure,
    EffectSums,
    TokenOddsRatio,
    make_measure,
    ratio_effect,
    total_effect,
)
from debiaslit.cma.exact import ExactRunner, direct_effects, exact_effects
from debiaslit.cma.mediators import MEDIATOR_COMPONENTS, POSITIONS, Mediator, mediators_for, resolve_positions
from debiaslit.cma.neurons import read_neurons, select_units
from debiaslit.cma.probe import NLIProbe, Probe
from debiaslit.cma.ranking import site_quality, verified_quality
from debiaslit.cma.run import ESTIMATORS, SCREENS, AnalysisResult, UnitEffects, analyse
from debiaslit.cma.selection import greedy, nie_all_vs_sum, spearman, top_k_joint, top_percent_mean
from debiaslit.cma.setup import INTERVENTIONS, Intervention, MediationSetup, ReferenceStats

__all__ = [
    "ESTIMATORS",
    "SCREENS",
    "INTERVENTIONS",
    "MEDIATOR_COMPONENTS",
    "POSITIONS",
    "AnalysisResult",
    "ClassLogOdds",
    "ClassProbability",
    "EffectMeasure",
    "EffectSums",
    "ExactRunner",
    "Intervention",
    "MediationSetup",
    "NIECallback",
    "NLIProbe",
    "Mediator",
    "Probe",
    "ReferenceStats",
    "TokenOddsRatio",
    "UnitEffects",
    "analyse",
    "atp_qk_effects",
    "atp_star_effects",
    "attribution_deltas",
    "attribution_effects",
    "direct_effects",
    "exact_effects",
    "greedy",
    "ig_deltas",
    "ig_effects",
    "make_measure",
    "mediators_for",
    "nie_all_vs_sum",
    "ratio_effect",
    "read_neurons",
    "resolve_positions",
    "select_units",
    "site_quality",
    "spearman",
    "top_k_joint",
    "top_percent_mean",
    "total_effect",
    "verified_quality",
]
