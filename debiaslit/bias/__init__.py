"""Bias models (hand-crafted HANS features + LR, hypothesis-only, shallow/fine-tuned, from a file),
cross-fitted so that training examples are scored out of sample, cached by example id.

``NLIDataModule(bias=BiasModelSpec(...))`` attaches the probabilities to every batch as
``bias_probs``; the bias-aware losses (:mod:`debiaslit.losses`) read them.
"""

from debiaslit.bias.build import BiasPredictions, bias_report, compute_bias_probs, make_bias_model
from debiaslit.bias.calibration import expected_calibration_error
from debiaslit.bias.crossfit import CrossFitResult, cross_fit_predict, fit_on_all
from debiaslit.bias.features import FEATURE_NAMES, hans_features
from debiaslit.bias.logistic import LogisticRegression
from debiaslit.bias.models import BackboneBiasModel, HansFeatureModel
from debiaslit.bias.probs_file import SplitProbs, read_probs_file, write_probs_file
from debiaslit.bias.spec import BIAS_KINDS, BiasModelSpec

__all__ = [
    "BIAS_KINDS",
    "FEATURE_NAMES",
    "BackboneBiasModel",
    "BiasModelSpec",
    "BiasPredictions",
    "CrossFitResult",
    "HansFeatureModel",
    "LogisticRegression",
    "SplitProbs",
    "bias_report",
    "compute_bias_probs",
    "cross_fit_predict",
    "expected_calibration_error",
    "fit_on_all",
    "hans_features",
    "make_bias_model",
    "read_probs_file",
    "write_probs_file",
]
