"""Evaluation components passed to methods (``evaluator:``): NLI / HANS accuracy tables, the total
effect of counterfactual prompts, gender bias and LM quality of language models, concept-erasure tables."""

from debiaslit.evaluation.base import Evaluator
from debiaslit.evaluation.erasure import ErasureEvaluator
from debiaslit.evaluation.nli import NLIEvaluator
from debiaslit.evaluation.pair_bias import PairBiasEvaluator
from debiaslit.evaluation.prompt_effects import TotalEffectEvaluator

__all__ = ["ErasureEvaluator", "Evaluator", "NLIEvaluator", "PairBiasEvaluator", "TotalEffectEvaluator"]
