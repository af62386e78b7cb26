"""Learned binary weight masks (Zhao et al. 2020; Meissner et al. 2022): binarizers, schedules, the
parametrization mechanism over the component map, export, and CMA-guided selection."""

from debiaslit.masks.binarizers import BINARIZERS, Binarizer, get_binarizer
from debiaslit.masks.cma_selection import read_neurons, select_units
from debiaslit.masks.export import apply_masks, export_pretrained, load_masks, save_masks
from debiaslit.masks.masked_weights import (
    FixedMask,
    LearnedMask,
    MaskedModel,
    MaskTarget,
    attach_masks,
    remove_masks,
)
from debiaslit.masks.schedules import CubicSchedule

__all__ = [
    "BINARIZERS",
    "Binarizer",
    "CubicSchedule",
    "FixedMask",
    "LearnedMask",
    "MaskTarget",
    "MaskedModel",
    "apply_masks",
    "attach_masks",
    "export_pretrained",
    "get_binarizer",
    "load_masks",
    "read_neurons",
    "remove_masks",
    "save_masks",
    "select_units",
]
