"""One LightningModule per method (all derived from ``DebiasModule``), plus analysis-only modules."""

from debiaslit.models.analysis import LMAnalysis
from debiaslit.models.base import DebiasModule
from debiaslit.models.erm import ERM
from debiaslit.models.masks import MaskMethod

__all__ = ["DebiasModule", "ERM", "LMAnalysis", "MaskMethod"]
