"""The edit at one residual site (METHODS.md §6.4): x′ = dec(g ⊙ f) + (x − x̂) with f = enc(x).

Written as x + (dec(g ⊙ f) − dec(f)): for g = 1 the bracket is exactly zero (the same computation
twice), so an all-open gate leaves the model bit for bit as it was, whatever the SAE's reconstruction
error. For an affine decoder the bracket is −W_decᵀ((1 − g) ⊙ f): the decoder contribution of the
removed latents, nothing else. The SAE is frozen; gradients reach the gate and, through enc(x), the
gates of earlier sites.
"""

from __future__ import annotations

from typing import Protocol

import torch


class SparseCoder(Protocol):
    """What the edit needs of an SAE (``debiaslit.sae.SparseAutoencoder`` or any module like it)."""

    d_in: int
    d_sae: int

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, f: torch.Tensor) -> torch.Tensor: ...


def gated_edit(x: torch.Tensor, sae: SparseCoder, gate: torch.Tensor) -> torch.Tensor:
    """``x`` ([..., d]) with the latents scaled by ``gate`` ([F]) and the SAE error term kept."""
    flat = x.reshape(-1, x.shape[-1])
    f = sae.encode(flat)
    delta = sae.decode(f * gate.to(f.dtype)) - sae.decode(f)
    return x + delta.view_as(x).to(x.dtype)


def ablation_gate(num_latents: int, erased: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """A 0/1 gate that removes the latents ``erased`` and keeps every other one."""
    gate = torch.ones(num_latents, device=device)
    gate[erased.to(gate.device)] = 0.0
    return gate
