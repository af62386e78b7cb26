"""One folder per method (a LightningModule each, all on the shared backbone module)."""

from debiaslit.methods.base import BackboneModule, ClassifierModule
from debiaslit.methods.erm import ERM
from debiaslit.methods.lm_analysis import LMAnalysis
from debiaslit.methods.masks import MaskMethod
from debiaslit.methods.unit_scaling import UnitScaling

__all__ = ["BackboneModule", "ClassifierModule", "ERM", "LMAnalysis", "MaskMethod", "UnitScaling"]
