"""Concept objectives of the eraser (METHODS.md §6.4): what "the concept is gone" means in the loss.

* ``cross_cov``: ‖Cov(x′, z)‖_F² over the (global) batch, z the one-hot concept: the quantity LEACE
  drives to zero, after which no linear probe beats a constant predictor.
* ``adversarial``: cross-entropy of a concept probe trained on the edited features through gradient
  reversal (the probe minimises it, the gates maximise it).
* ``probe_chance``: cross-entropy of a frozen concept probe towards the uniform distribution (its
  minimum, log K, is reached when the probe can no longer tell the classes apart).
"""

from __future__ import annotations

import torch
from torch import nn

OBJECTIVES = ("cross_cov", "adversarial", "probe_chance")


def cross_covariance_norm(features: torch.Tensor, concept: torch.Tensor, num_classes: int) -> torch.Tensor:
    """‖(1/n) Σ (x_i − x̄)(z_i − z̄)ᵀ‖_F² for features [n, d] and concept labels [n]."""
    z = nn.functional.one_hot(concept, num_classes).to(features.dtype)
    x = features - features.mean(0)
    z = z - z.mean(0)
    return ((x.T @ z) / features.shape[0]).pow(2).sum()


def uniform_target_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −(1/K) Σ_k log softmax(logits)_k (BCE towards 0.5 for K = 2)."""
    return -logits.log_softmax(-1).mean(-1).mean()


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    """Identity forward, negated gradient backward (Ganin & Lempitsky 2015)."""
    return _ReverseGradient.apply(x)
