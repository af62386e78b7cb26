"""One folder per method (a LightningModule each, all on the shared backbone module)."""

from debiaslit.methods.base import BackboneModule, ClassifierModule
from debiaslit.methods.erm import ERM
from debiaslit.methods.lm_analysis import LMAnalysis
from debiaslit.methods.masks import MaskMethod
from debiaslit.methods.mlm_head import MLMHeadFit
from debiaslit.methods.pcgu import PCGUMethod
from debiaslit.methods.sae_eraser import SAEEraserMethod
from debiaslit.methods.sae_training import SAETrainer
from debiaslit.methods.unit_scaling import UnitScaling

__all__ = [
    "BackboneModule",
    "ClassifierModule",
    "ERM",
    "LMAnalysis",
    "MLMHeadFit",
    "MaskMethod",
    "PCGUMethod",
    "SAEEraserMethod",
    "SAETrainer",
    "UnitScaling",
]
