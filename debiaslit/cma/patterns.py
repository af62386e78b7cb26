"""Attention-pattern mediators (Vig et al.'s heads): the post-softmax pattern of one head, patched.

transformers 5 has no ``head_mask``; a site here switches the model to a registered attention function
(eager attention plus hooks on the probabilities) for as long as a hook is registered, and back after.
The hook sees the probabilities of layer ``l`` as [N, T_query, heads · T_key] so that the mediator
machinery (positions on dim 1, unit dims on the last) applies unchanged: unit h = head h's key columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from debiaslit.backbones.components import get_module

ATTENTION_NAME = "debiaslit_pattern"
_HOOKS: dict[int, list[Callable[[torch.Tensor], torch.Tensor]]] = {}
_USERS = "_debiaslit_pattern_users"


def _attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention whose probabilities pass through the hooks registered for ``module``."""
    scores = torch.matmul(query, key.transpose(2, 3)) * (
        query.size(-1) ** -0.5 if scaling is None else scaling
    )
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    probs = scores.softmax(-1)
    for hook in _HOOKS.get(id(module), ()):
        probs = hook(probs)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION_NAME, _attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)


class _Handle:
    def __init__(self, model: nn.Module, module: nn.Module, hook: Callable) -> None:
        self.model, self.module, self.hook = model, module, hook

    def remove(self) -> None:
        hooks = _HOOKS.get(id(self.module), [])
        if self.hook in hooks:
            hooks.remove(self.hook)
            users, previous = getattr(self.model, _USERS)
            if users == 1:
                self.model.set_attn_implementation(previous)
                delattr(self.model, _USERS)
            else:
                setattr(self.model, _USERS, (users - 1, previous))


@dataclass(frozen=True)
class PatternSite:
    """The attention probabilities of one layer (module = the one passed to attention functions)."""

    layer: int
    module_path: str

    def register_hook(self, model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> _Handle:
        """Call ``fn(probs as [N, T_q, H·T_k])``; a returned tensor replaces the probabilities."""
        _register_attention()
        module = get_module(model, self.module_path)

        def hook(probs: torch.Tensor) -> torch.Tensor:
            n, heads, t_q, t_k = probs.shape
            new = fn(probs.permute(0, 2, 1, 3).reshape(n, t_q, heads * t_k))
            return probs if new is None else new.reshape(n, t_q, heads, t_k).permute(0, 2, 1, 3)

        users, previous = getattr(model, _USERS, (0, model.config._attn_implementation))
        if users == 0:
            model.set_attn_implementation(ATTENTION_NAME)
        setattr(model, _USERS, (users + 1, previous))
        _HOOKS.setdefault(id(module), []).append(hook)
        return _Handle(model, module, hook)
