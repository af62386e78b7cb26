"""Gates shared by every method that learns a binary choice (weight masks, latent masks): binarizers
with straight-through or hard-concrete gradients and their schedules, score initialisations and
sparsity penalties. Configured as objects (``class_path`` + ``init_args``; short names work)."""

from debiaslit.gates.binarizers import Binarizer, HardConcrete, SigmoidThreshold, Threshold, TopK
from debiaslit.gates.inits import ConstantInit, ScoreInit, UniformInit, check_initial_masks
from debiaslit.gates.penalties import (
    ExpectedL0,
    L1Sigmoid,
    Lagrangian,
    NoPenalty,
    SparsityPenalty,
    expected_sparsity,
)
from debiaslit.gates.schedules import CubicSchedule

__all__ = [
    "Binarizer",
    "ConstantInit",
    "CubicSchedule",
    "ExpectedL0",
    "HardConcrete",
    "L1Sigmoid",
    "Lagrangian",
    "NoPenalty",
    "ScoreInit",
    "SigmoidThreshold",
    "SparsityPenalty",
    "Threshold",
    "TopK",
    "UniformInit",
    "check_initial_masks",
    "expected_sparsity",
]
