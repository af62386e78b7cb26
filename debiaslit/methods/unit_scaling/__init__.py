"""CMA-guided intervention at inference (DebiasNeuro's causal-grounded masking): the top-NIE units of a
fine-tuned model weakened (×α) or zeroed by forward hooks, no training."""

from debiaslit.methods.unit_scaling.hooks import scaled_units
from debiaslit.methods.unit_scaling.module import UnitScaling

__all__ = ["UnitScaling", "scaled_units"]
