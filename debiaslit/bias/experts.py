"""Bias experts (Jeon et al. 2023): K one-vs-rest binary bias classifiers combined by a product of experts.

Expert k says "the class is k" with probability σ(s_k). Their product, conditioned on exactly one class
being true, is ``p_k ∝ σ(s_k)·Π_{j≠k}(1 − σ(s_j))``. Dividing every term by the class-independent
``Π_j (1 − σ(s_j))`` leaves ``p_k ∝ σ(s_k)/(1 − σ(s_k)) = exp(s_k)``: the combination is ``softmax(s)``,
but of scores trained with per-class binary losses, which are not pulled towards the majority class
the way a softmax classifier's are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def one_vs_rest_poe(scores: torch.Tensor) -> torch.Tensor:
    """``p_k ∝ σ(s_k)·Π_{j≠k}(1 − σ(s_j))`` for expert log-odds ``scores`` [N, K], in log space."""
    log_yes, log_no = F.logsigmoid(scores), F.logsigmoid(-scores)
    return torch.softmax(log_yes + log_no.sum(-1, keepdim=True) - log_no, dim=-1)


def one_vs_rest_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over experts of each expert's class-balanced binary cross-entropy (positives weighted by
    K − 1, so every expert sees its class and the rest with equal total weight when classes are even)."""
    k = scores.shape[-1]
    targets = F.one_hot(labels, k).to(scores.dtype)
    pos_weight = torch.full((k,), float(k - 1), dtype=scores.dtype, device=scores.device)
    return F.binary_cross_entropy_with_logits(scores, targets, pos_weight=pos_weight)
