"""Over-correction guard: unlearning can push a pair type's bias past zero into the reverse bias.

Per pair type (0 Winogender, 1 / 2 WinoBias type 1 / 2) a running mean of the bias gap
``score(advantaged) − score(disadvantaged)`` is kept from the (global, pre-update) scores of each step.
Once its sign differs from the sign it started with, that type is *flipped*: ``stop`` takes its pairs
out of the objective, ``swap`` pushes them the other way (advantaged and disadvantaged exchanged),
until the running gap returns to its original sign. State lives in buffers, so checkpoints resume it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from debiaslit.errors import ConfigError

GuardMode = Literal["none", "stop", "swap"]
GUARD_MODES = ("none", "stop", "swap")
PAIR_TYPES = 3


class OverCorrectionGuard(nn.Module):
    """Running bias gap per pair type and what to do with types whose bias has flipped sign.

    Args:
        mode: ``none`` (track and log only), ``stop`` or ``swap``.
        momentum: Weight of the old running gap in each update (0: the current batch alone).
    """

    def __init__(self, mode: GuardMode = "none", momentum: float = 0.9) -> None:
        super().__init__()
        if mode not in GUARD_MODES:
            raise ConfigError(f"model.init_args.guard must be one of {GUARD_MODES}, got {mode!r}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"model.init_args.guard_momentum must lie in [0, 1), got {momentum}")
        self.mode, self.momentum = mode, momentum
        self.register_buffer("running", torch.zeros(PAIR_TYPES, dtype=torch.float64))
        self.register_buffer("initial_sign", torch.zeros(PAIR_TYPES, dtype=torch.float64))
        self.register_buffer("flipped", torch.zeros(PAIR_TYPES, dtype=torch.bool))
        self.register_buffer("flips", torch.zeros(PAIR_TYPES, dtype=torch.long))
        self.register_buffer("flipped_steps", torch.zeros(PAIR_TYPES, dtype=torch.long))

    def roles(self, pair_type: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(swap [B] bool, weight [B] float) of each pair under the current state."""
        flipped = self.flipped.to(pair_type.device)[pair_type]
        if self.mode == "swap":
            return flipped, torch.ones_like(flipped, dtype=torch.float32)
        if self.mode == "stop":
            return torch.zeros_like(flipped), (~flipped).float()
        return torch.zeros_like(flipped), torch.ones_like(flipped, dtype=torch.float32)

    @torch.no_grad()
    def update(self, gap_sum: torch.Tensor, count: torch.Tensor) -> None:
        """Fold in one step's per-type gap sums and pair counts (already summed over DDP ranks)."""
        gap_sum, count = gap_sum.to(self.running), count.to(self.running)
        seen = count > 0
        mean = gap_sum / count.clamp_min(1)
        first = seen & (self.initial_sign == 0)
        smoothed = self.momentum * self.running + (1 - self.momentum) * mean
        self.running.copy_(torch.where(first, mean, torch.where(seen, smoothed, self.running)))
        self.initial_sign.copy_(torch.where(first, torch.sign(mean), self.initial_sign))
        now = torch.sign(self.running) * self.initial_sign < 0
        self.flips += (now & ~self.flipped).long()
        self.flipped.copy_(now)
        self.flipped_steps += now.long()
