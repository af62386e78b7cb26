"""One vector per sequence from a backbone's hidden states."""

from __future__ import annotations

import torch
from torch import nn

#: Architectures read left to right: their summary of a sequence is the last attended token.
LAST_TOKEN_POOLED = ("gpt2", "gpt_neox")


def pooled_features(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, model: nn.Module
) -> torch.Tensor:
    """[CLS] (position 0) for encoders, the last attended token for decoders; used as h(x) by losses
    that need features (learned-mixin)."""
    if getattr(model.config, "model_type", "") not in LAST_TOKEN_POOLED:
        return hidden[:, 0]
    if attention_mask is None:
        return hidden[:, -1]
    last = attention_mask.long().sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
