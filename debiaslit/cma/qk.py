"""AtP*'s QK fix (Kramár et al. 2024, arXiv 2403.00745): a query or key patch moves a softmax that may be
saturated, so the new attention pattern is computed exactly and only its effect on m is linearised:
Δ̂ = ⟨A′ − A, ∂m/∂A⟩ (METHODS.md §1.4b, weak spot 2).

Scores are recovered as log A (softmax(log A + ΔS) = softmax(S + ΔS): the row constant cancels, masked keys
stay at 0), so only the score scale of the architecture is needed. Query unit j of head h at rows P shifts
row p by Δq_pj · k_tj · scale; key unit j at columns P shifts column t ∈ P of every row i by
q_ij · Δk_tj · scale, renormalised in closed form over the P changed columns.
"""

from __future__ import annotations

import torch
from torch import nn

from debiaslit.errors import ConfigError

QK_ARCHITECTURES = ("bert", "roberta", "gpt2")


def score_scale(model: nn.Module, head_dim: int) -> float:
    """The factor of q·k in the attention scores; ConfigError where the QK fix does not apply."""
    config = model.config
    arch = config.model_type
    plain_gpt2 = arch == "gpt2" and config.scale_attn_weights and not config.scale_attn_by_inverse_layer_idx
    if arch not in ("bert", "roberta") and not plain_gpt2:
        raise ConfigError(
            f"the AtP* QK fix supports {', '.join(QK_ARCHITECTURES)} (scores q·k/√d, no rotary "
            f"embeddings); {arch!r} is not supported: use estimator attribution for it"
        )
    return head_dim**-0.5


def _rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x [N, ..., T, C] at per-example rows positions [N, P] of dim -2 -> [N, ..., P, C]."""
    index = positions.view(positions.shape[0], *[1] * (x.dim() - 3), positions.shape[1], 1)
    return x.gather(-2, index.expand(*x.shape[:-2], positions.shape[1], x.shape[-1]))


def query_effects(
    probs: torch.Tensor,
    grad: torch.Tensor,
    keys: torch.Tensor,
    delta_q: torch.Tensor,
    positions: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Δ̂ [N, H·d] of every query unit patched at its rows.

    probs, grad: [N, H, T, T] (A and ∂m/∂A); keys [N, T, H·d]; delta_q [N, P, H·d] (t − z at ``positions``).
    """
    n, heads, _, length = probs.shape
    d = keys.shape[-1] // heads
    a, g = _rows(probs, positions), _rows(grad, positions)  # [N, H, P, T]
    k = keys.view(n, length, heads, d).permute(0, 2, 3, 1)  # [N, H, d, T]
    dq = delta_q.view(n, -1, heads, d).permute(0, 2, 3, 1)  # [N, H, d, P]
    out = []
    for h in range(heads):  # [N, d, P, T] per head
        shift = dq[:, h, :, :, None] * k[:, h, :, None, :] * scale
        a_h, g_h = a[:, h, None], g[:, h, None]
        shift = shift.masked_fill(a_h == 0, float("-inf"))
        top = shift.amax(-1, keepdim=True).clamp_min(torch.finfo(shift.dtype).min)
        w = a_h * (shift - top).exp()
        new = w / w.sum(-1, keepdim=True)
        out.append(((new - a_h) * g_h).sum((-1, -2)))
    return torch.cat(out, -1)


def key_effects(
    probs: torch.Tensor,
    grad: torch.Tensor,
    queries: torch.Tensor,
    delta_k: torch.Tensor,
    positions: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Δ̂ [N, H·d] of every key unit patched at its columns ``positions`` [N, P], for every query row.

    Over the changed columns: A′_t = A_t e^{Δ_t} / Z with Z = Σ_{u∉P} A_u + Σ_{u∈P} A_u e^{Δ_u}, shifted by
    max(0, max Δ) so that a saturating shift neither overflows nor loses the row.
    """
    n, heads, length, _ = probs.shape
    d = queries.shape[-1] // heads
    columns = torch.zeros(n, length, dtype=torch.bool, device=probs.device)
    columns[torch.arange(n, device=probs.device)[:, None], positions] = True
    cols = positions[:, None, None, :].expand(n, heads, length, positions.shape[1])
    a_p, g_p = probs.gather(-1, cols), grad.gather(-1, cols)  # [N, H, T, P]
    clean = (probs * grad).sum(-1)  # ⟨A_i, G_i⟩ [N, H, T]
    rest = probs.masked_fill(columns[:, None, None, :], 0).sum(-1)  # Σ_{u∉P} A_u, no cancellation
    fixed = clean - (a_p * g_p).sum(-1)  # Σ_{u∉P} A_u G_u
    q = queries.view(n, length, heads, d).permute(0, 2, 3, 1)  # [N, H, d, T]
    dk = delta_k.view(n, -1, heads, d).permute(0, 2, 3, 1)  # [N, H, d, P]
    out = []
    for h in range(heads):  # [N, d, T, P] per head
        a_h, g_h = a_p[:, h, None], g_p[:, h, None]
        shift = (q[:, h, :, :, None] * dk[:, h, :, None, :] * scale).masked_fill(a_h == 0, float("-inf"))
        top = shift.amax(-1).clamp_min(0.0)  # [N, d, T]
        w = a_h * (shift - top[..., None]).exp()
        base = (-top).exp()
        z = rest[:, h, None] * base + w.sum(-1)
        num = fixed[:, h, None] * base + (w * g_h).sum(-1)
        out.append((num / z - clean[:, h, None]).sum(-1))
    return torch.cat(out, -1)
