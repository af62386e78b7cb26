"""Bias models (hand-crafted HANS features + LR, bias experts, hypothesis-only, fine-tuned/shallow, an
earlier run's checkpoint, a probabilities file), cross-fitted so that training examples are scored out
of sample, cached by content and example id.

``NLIDataModule(bias=HansFeaturesBias(...))`` attaches the probabilities to every batch as
``bias_probs``; the bias-aware losses (:mod:`debiaslit.losses`) read them.
"""

from debiaslit.bias.build import BiasPredictions, bias_report, compute_bias_probs
from debiaslit.bias.calibration import expected_calibration_error
from debiaslit.bias.crossfit import CrossFitResult, cross_fit_predict, fit_on_all
from debiaslit.bias.experts import one_vs_rest_loss, one_vs_rest_poe
from debiaslit.bias.features import FEATURE_NAMES, hans_features
from debiaslit.bias.logistic import LogisticRegression
from debiaslit.bias.models import BackboneBiasModel, CheckpointModel, HansFeatureModel
from debiaslit.bias.probs_file import SplitProbs, read_probs_file, write_probs_file
from debiaslit.bias.spec import (
    BiasExpertsBias,
    BiasModelSpec,
    CheckpointBias,
    FinetunedBias,
    HansFeaturesBias,
    HypothesisOnlyBias,
    ProbsFileBias,
    TrainedBias,
)

__all__ = [
    "FEATURE_NAMES",
    "BackboneBiasModel",
    "BiasExpertsBias",
    "BiasModelSpec",
    "BiasPredictions",
    "CheckpointBias",
    "CheckpointModel",
    "CrossFitResult",
    "FinetunedBias",
    "HansFeatureModel",
    "HansFeaturesBias",
    "HypothesisOnlyBias",
    "LogisticRegression",
    "ProbsFileBias",
    "SplitProbs",
    "TrainedBias",
    "bias_report",
    "compute_bias_probs",
    "cross_fit_predict",
    "expected_calibration_error",
    "fit_on_all",
    "hans_features",
    "one_vs_rest_loss",
    "one_vs_rest_poe",
    "read_probs_file",
    "write_probs_file",
]
