"""Learned binary weight masks (Zhao et al. 2020; Meissner et al. 2022): the method and its mechanism
(parametrizations over the component map's weight sites, export)."""

from debiaslit.methods.masks.export import apply_masks, export_pretrained, load_masks, save_masks
from debiaslit.methods.masks.masked_weights import (
    FixedMask,
    LearnedMask,
    MaskedModel,
    MaskTarget,
    attach_masks,
    remove_masks,
)
from debiaslit.methods.masks.module import MaskMethod

__all__ = [
    "FixedMask",
    "LearnedMask",
    "MaskMethod",
    "MaskTarget",
    "MaskedModel",
    "apply_masks",
    "attach_masks",
    "export_pretrained",
    "load_masks",
    "remove_masks",
    "save_masks",
]
