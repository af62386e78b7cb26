"""Expected calibration error, reported for every bias model (an over-confident bias model over-weights)."""

from __future__ import annotations

import torch


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins over (0, 1] (Guo et al. 2017).

    Confidence is the top probability; ``ECE = Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|``. A confidence of
    exactly ``k / n_bins`` falls in bin ``k`` (bins are closed on the right).
    """
    probs = torch.as_tensor(probs, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if len(labels) == 0:
        return float("nan")
    conf, pred = probs.max(-1)
    correct = (pred == labels).double()
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    ece = torch.zeros((), dtype=torch.float64)
    for b in range(n_bins):
        members = bins == b
        if members.any():
            ece += members.double().mean() * (correct[members].mean() - conf[members].mean()).abs()
    return float(ece)
