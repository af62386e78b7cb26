"""LMAnalysis: a pretrained language model under ``debiaslit validate``, for analysis-only runs.

Nothing is trained. The evaluator (Vig's total effect by default) scores the counterfactual prompts,
and an :class:`~debiaslit.cma.callback.NIECallback` in the config computes the mediation effects.
"""

from __future__ import annotations

from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator
from debiaslit.evaluation.prompt_effects import TotalEffectEvaluator
from debiaslit.methods.base import BackboneModule

LM_TASKS = ("causal-lm", "masked-lm")


class LMAnalysis(BackboneModule):
    """A causal (``causal-lm``) or masked (``masked-lm``) language model evaluated on prompt pairs.

    Args:
        backbone: Hub id, local directory or tiny test model (``tiny-gpt2``).
        task: ``causal-lm`` or ``masked-lm``.
        evaluator: :class:`TotalEffectEvaluator` when not given.
    """

    def __init__(
        self, backbone: str = "tiny-gpt2", task: str = "causal-lm", evaluator: Evaluator | None = None
    ) -> None:
        if task not in LM_TASKS:
            raise ConfigError(f"model.task must be one of {LM_TASKS} for LMAnalysis, got {task!r}")
        super().__init__(
            backbone, task, evaluator=evaluator if evaluator is not None else TotalEffectEvaluator()
        )

    def configure_optimizers(self) -> None:
        raise ConfigError("LMAnalysis is for `debiaslit validate` only; it has nothing to train")
