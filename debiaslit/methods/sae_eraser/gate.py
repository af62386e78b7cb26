"""Gates over SAE latents (METHODS.md §6.4): one logit per latent, near-open at the start.

``sigmoid_temp``: g = σ(m/T) while training, with m initialised to +m0 (g ≈ 1, not the seed design's
σ(0) = 0.5) and T annealed exponentially from ``temperature[0]`` to ``temperature[1]``; evaluation uses
the deployed mask 1[g > 0.5] = 1[m > 0]. ``hard_concrete``: the stretched hard-concrete gate of
:class:`debiaslit.gates.HardConcrete` with log α = m. Either way only these F parameters train.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from debiaslit.errors import ConfigError
from debiaslit.gates import HardConcrete

GATES = ("sigmoid_temp", "hard_concrete")


def annealed_temperature(step: int, total: int, start: float, end: float) -> float:
    """T_t = T_0 · (T_1 / T_0)^(t / total): exponential from ``start`` at step 0 to ``end`` at ``total``."""
    fraction = min(max(step / max(1, total), 0.0), 1.0)
    return start * (end / start) ** fraction


class LatentGate(nn.Module):
    """The gate of one site's F latents.

    Args:
        num_latents: F, the SAE's latent count.
        kind: ``sigmoid_temp`` or ``hard_concrete``.
        init_logit: m0; every logit starts there (open gate). Warm starts close some afterwards.
    """

    def __init__(self, num_latents: int, kind: str = "sigmoid_temp", init_logit: float = 4.0) -> None:
        super().__init__()
        if kind not in GATES:
            raise ConfigError(f"model.init_args.gate must be one of {GATES}, got {kind!r}")
        if not init_logit > 0:
            raise ConfigError(f"model.init_args.init_logit must be > 0 (an open gate), got {init_logit}")
        self.kind = kind
        self.logits = nn.Parameter(torch.full((num_latents,), float(init_logit)))
        self.temperature = 1.0
        self.hard_concrete = HardConcrete()

    def forward(self) -> torch.Tensor:
        """Gate values: soft / sampled while training, the deployed 0/1 mask in eval mode."""
        if not self.training:
            return self.deployed_mask()
        if self.kind == "hard_concrete":
            return self.hard_concrete(self.logits, 0.0, True)
        return torch.sigmoid(self.logits / self.temperature)

    def keep_probability(self) -> torch.Tensor:
        """Differentiable open-gate measure: σ(m/T), or P(gate ≠ 0) for hard-concrete."""
        if self.kind == "hard_concrete":
            return self.hard_concrete.keep_probability(self.logits)
        return torch.sigmoid(self.logits / self.temperature)

    def erased(self) -> torch.Tensor:
        """Indices of the latents the deployed mask removes."""
        return torch.nonzero(self.deployed_mask() == 0).flatten()

    @torch.no_grad()
    def deployed_mask(self) -> torch.Tensor:
        """1 for kept, 0 for erased latents (σ(m/T) > 0.5 ⇔ m > 0; hard-concrete's evaluation gate)."""
        if self.kind == "hard_concrete":
            return self.hard_concrete(self.logits, 0.0, False)
        return (self.logits > 0).to(self.logits.dtype)

    @torch.no_grad()
    def close(self, latents: torch.Tensor) -> None:
        """Start ``latents`` closed (logit −m0: g ≈ 0): the attribution warm start."""
        self.logits[latents] = -self.logits.abs().max().clamp_min(math.ulp(1.0))
