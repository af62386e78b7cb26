"""One vector per sequence from a backbone's hidden states."""

from __future__ import annotations

import torch
from torch import nn

#: Architectures read left to right: their summary of a sequence is the last attended token.
LAST_TOKEN_POOLED = ("gpt2", "gpt_neox")

#: How :func:`pool_sequence` summarises a sequence: ``auto`` is :func:`pooled_features`.
POOLINGS = ("auto", "mean", "first", "last")


def last_attended(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The hidden state of each sequence's last attended position (right padding)."""
    if attention_mask is None:
        return hidden[:, -1]
    last = attention_mask.long().sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def pooled_features(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, model: nn.Module
) -> torch.Tensor:
    """[CLS] (position 0) for encoders, the last attended token for decoders; used as h(x) by losses
    that need features (learned-mixin)."""
    if getattr(model.config, "model_type", "") not in LAST_TOKEN_POOLED:
        return hidden[:, 0]
    return last_attended(hidden, attention_mask)


def pool_sequence(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, model: nn.Module, pooling: str = "auto"
) -> torch.Tensor:
    """One vector per sequence by ``pooling``; probes train and apply through this one function, so a
    probe never meets features pooled another way than those it was fitted on."""
    if pooling == "auto":
        return pooled_features(hidden, attention_mask, model)
    if pooling == "first":
        return hidden[:, 0]
    if pooling == "last":
        return last_attended(hidden, attention_mask)
    if pooling == "mean":
        if attention_mask is None:
            return hidden.mean(1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
