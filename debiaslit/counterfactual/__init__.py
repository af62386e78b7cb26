"""Counterfactual inference after training (TIE / TE_model, Udomcharoenchaikit et al. 2022)."""

from debiaslit.counterfactual.callback import CounterfactualInference
from debiaslit.counterfactual.inference import (
    METHODS,
    OBJECTIVES,
    CounterfactualPostProcessor,
    causal_effects,
    fuse,
)
from debiaslit.counterfactual.saved import (
    SavedSet,
    counterfactual_evaluate,
    load_predictions,
    save_predictions,
)

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "CounterfactualInference",
    "CounterfactualPostProcessor",
    "SavedSet",
    "causal_effects",
    "counterfactual_evaluate",
    "fuse",
    "load_predictions",
    "save_predictions",
]
