"""Lightning callbacks: checkpointing by run name, causal mediation analysis, counterfactual inference."""

from debiaslit.callbacks.checkpoint import RunCheckpoint
from debiaslit.callbacks.nie import NIECallback
from debiaslit.counterfactual.callback import CounterfactualInference

__all__ = ["CounterfactualInference", "NIECallback", "RunCheckpoint"]
