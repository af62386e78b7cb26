"""How faithful an SAE is on a batch of activations: the quantities SAE papers report (METHODS.md §6.4).

Sums, not means, so that batches (and DDP processes) can be added before dividing; the ``*_from``
functions turn the accumulated sums into the reported numbers.
"""

from __future__ import annotations

import torch


def reconstruction_sums(x: torch.Tensor, x_hat: torch.Tensor, f: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sufficient statistics over the rows of ``x`` ``[n, d]`` (float64, so sums over many batches stay
    exact enough): row count, Σ‖x − x̂‖², Σx (per dim), Σ‖x‖², active-latent count, fired-per-latent."""
    x, x_hat = x.double(), x_hat.double()
    return {
        "n": torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device),
        "sse": (x - x_hat).pow(2).sum(),
        "sum_x": x.sum(0),
        "sum_sq": x.pow(2).sum(),
        "active": (f != 0).sum().double(),
        "fired": (f != 0).sum(0).double(),
    }


def variance_explained_from(sums: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² (total variance over all dimensions)."""
    n = sums["n"]
    total = sums["sum_sq"] - sums["sum_x"].pow(2).sum() / n
    return 1 - sums["sse"] / total


def l0_from(sums: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean number of non-zero latents per row."""
    return sums["active"] / sums["n"]


def dead_fraction_from(fired: torch.Tensor) -> torch.Tensor:
    """Share of latents that never fired (``fired``: per-latent counts over a window of rows)."""
    return (fired == 0).double().mean()


def loss_recovered(clean: float, spliced: float, ablated: float) -> float:
    """(L_ablated − L_spliced) / (L_ablated − L_clean): 1 when splicing the SAE in costs nothing,
    0 when it is as bad as zero-ablating the site."""
    return (ablated - spliced) / (ablated - clean)
