"""Probes on pooled representations: fitted full-batch and deterministically, so that the same features
give the same probe on every DDP rank, and scored on examples they were not fitted on.

The pooling of the features is not chosen here: callers pool through
:func:`debiaslit.backbones.pooling.pool_sequence` with one configured ``pooling`` for fitting and
applying alike (the seed eraser fitted its probe on mean-pooled and applied it to sum-pooled
activations, METHODS.md §6.3).
"""

from __future__ import annotations

import torch
from torch import nn


class Probe(nn.Module):
    """Standardisation (from the fitting features) followed by a linear map or a one-hidden-layer MLP.

    Args:
        dim: Feature size.
        num_classes: Output classes.
        hidden: Hidden units of the MLP; 0 gives a linear probe.
    """

    def __init__(self, dim: int, num_classes: int, hidden: int = 0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        if hidden:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
            )
        else:
            self.net = nn.Linear(dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.scale)


def fit_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    hidden: int = 0,
    steps: int = 100,
    l2: float = 1e-4,
    seed: int = 0,
) -> Probe:
    """A probe fitted by full-batch L-BFGS (strong-Wolfe line search, at most ``steps`` iterations) on
    cross-entropy + ``l2``·‖W‖²; its initialisation uses ``seed`` alone.

    Full-batch steps make the result independent of example order (gathered DDP features arrive in
    rank order) and fit the probe to convergence: an under-trained probe would flatter an erasure.
    The returned probe is frozen (``requires_grad`` off) and in eval mode. Works inside validation
    (inference mode): the features are copied out of it.
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _fit(features.detach().float().clone(), labels.clone(), num_classes, hidden, steps, l2, seed)


def _fit(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    hidden: int,
    steps: int,
    l2: float,
    seed: int,
) -> Probe:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = Probe(features.shape[1], num_classes, hidden)
    probe = probe.to(features.device)
    probe.mean.copy_(features.mean(0))
    probe.scale.copy_(features.std(0, unbiased=False).clamp_min(1e-6))
    weights = [p for p in probe.parameters() if p.ndim == 2]
    optimizer = torch.optim.LBFGS(
        probe.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(probe(features), labels)
        loss = loss + l2 * sum(w.pow(2).sum() for w in weights)
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe.requires_grad_(False).eval()


@torch.no_grad()
def accuracy(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``labels`` the probe's argmax predicts."""
    if labels.numel() == 0:
        return float("nan")
    return float((probe(features.float()).argmax(-1) == labels).float().mean())


def held_out_accuracy(
    features: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    num_classes: int,
    hidden: int = 0,
    steps: int = 100,
    seed: int = 0,
) -> float:
    """Accuracy of a probe fitted afresh on the examples of even ``index`` and scored on the odd ones
    (the honest check after an erasure: a new probe, not the one the erasure was trained against)."""
    fit_rows = index % 2 == 0
    probe = fit_probe(features[fit_rows], labels[fit_rows], num_classes, hidden, steps, seed=seed)
    return accuracy(probe, features[~fit_rows], labels[~fit_rows])
