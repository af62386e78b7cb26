"""Evaluation components passed to methods (``evaluator:``): NLI / HANS accuracy tables, the total
effect of counterfactual prompts."""

from debiaslit.evaluation.base import Evaluator
from debiaslit.evaluation.nli import NLIEvaluator
from debiaslit.evaluation.prompt_effects import TotalEffectEvaluator

__all__ = ["Evaluator", "NLIEvaluator", "TotalEffectEvaluator"]
