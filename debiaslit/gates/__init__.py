"""Gates shared by every method that learns a binary choice (weight masks, latent masks): binarizers
with straight-through or hard-concrete gradients, and the schedules of their thresholds."""

from debiaslit.gates.binarizers import BINARIZERS, Binarizer, get_binarizer
from debiaslit.gates.schedules import CubicSchedule

__all__ = ["BINARIZERS", "Binarizer", "CubicSchedule", "get_binarizer"]
