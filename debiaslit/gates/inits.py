"""Initial scores of learned masks and the step-0 check that the masks can learn from them.

Rule of :func:`check_initial_masks`: an initialisation is refused when, at the binarizer's starting
value, it prunes 100 % of the gated entries (evaluation mask) or when no entry gets a non-zero
surrogate gradient (the masks could never change). Pruning nothing at step 0 is legitimate as long
as gradients flow: Meissner et al. start every score at 0 under a sigmoid threshold τ_0 = 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from debiaslit.errors import ConfigError
from debiaslit.gates.binarizers import Binarizer, describe


class ScoreInit:
    """Base class: :meth:`__call__` returns the initial scores of one matrix."""

    def __call__(self, shape: tuple[int, ...], cut: float, generator: torch.Generator) -> torch.Tensor:
        """Scores of ``shape``; ``cut`` is the binarizer's pruning cut at its starting value."""
        raise NotImplementedError

    def validate(self, option: str, binarizer: Binarizer) -> None:
        """ConfigError naming ``<option>.init_args.<name>`` for a setting out of range."""


class UniformInit(ScoreInit):
    """Zhao et al.: S ~ U(cut − π0·w, cut + (1 − π0)·w), so a fraction π0 = ``sparsity`` starts pruned.

    τ = 0.01, π0 = 0.05, w = 0.6 gives Zhao's U(−0.02, 0.58).
    """

    def __init__(self, sparsity: float = 0.05, width: float = 0.6) -> None:
        self.sparsity, self.width = sparsity, width

    def __repr__(self) -> str:
        return describe(self, sparsity=self.sparsity, width=self.width)

    def __call__(self, shape: tuple[int, ...], cut: float, generator: torch.Generator) -> torch.Tensor:
        low = cut - self.sparsity * self.width
        return low + self.width * torch.rand(shape, generator=generator)

    def validate(self, option: str, binarizer: Binarizer) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"{option}.init_args.sparsity must lie in [0, 1), got {self.sparsity}")
        if not self.width > 0.0:
            raise ConfigError(f"{option}.init_args.width must be positive, got {self.width}")
        cut = binarizer.score_cut(binarizer.start)
        if not math.isfinite(cut):
            raise ConfigError(
                f"{option}: UniformInit centres the scores on the binarizer's cut, but {binarizer!r} at "
                f"its starting value {binarizer.start:g} prunes {'no' if cut < 0 else 'every'} score; "
                "use ConstantInit (Meissner et al.: ConstantInit(value=0.0)) or a starting threshold "
                "strictly between 0 and 1"
            )


class ConstantInit(ScoreInit):
    """Every score starts at ``value`` (Meissner et al.: 0, σ(0) = 0.5)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def __repr__(self) -> str:
        return describe(self, value=self.value)

    def __call__(self, shape: tuple[int, ...], cut: float, generator: torch.Generator) -> torch.Tensor:
        return torch.full(shape, float(self.value))


def check_initial_masks(
    scores: Sequence[torch.Tensor],
    binarizer: Binarizer,
    init: ScoreInit,
    init_option: str,
    binarizer_option: str,
) -> None:
    """ConfigError when the initial ``scores`` prune everything or get no gradient (module docstring).

    Runs the binarizer once on each matrix at its starting value; the global RNG is left untouched
    (hard-concrete samples noise).
    """
    start = binarizer.start
    cut = binarizer.score_cut(start)
    which = f"{init_option} {init!r} with {binarizer_option} {binarizer!r}"
    with torch.no_grad():
        if not any(bool((binarizer(s, start, False) > 0.5).any()) for s in scores):
            raise ConfigError(
                f"{which} prunes 100 % of the masked weights at step 0 (a score at or below {cut:g} is "
                f"pruned at the starting value {start:g}): start the scores above {cut:g} (e.g. "
                f"ConstantInit(value > {cut:g}) or UniformInit(sparsity < 1)) or lower the binarizer's "
                "starting threshold"
            )
    with torch.random.fork_rng(devices=[]):
        for s in scores:
            leaf = s.detach().clone().requires_grad_(True)
            binarizer(leaf, start, True).sum().backward()
            if bool(leaf.grad.ne(0).any()):
                return
    raise ConfigError(
        f"{which} gives the scores no gradient at step 0 (the binarizer's surrogate gradient is exactly 0 "
        "at every initial score, e.g. σ'(S) = 0 in float32 for S ≳ 17), so the masks could never "
        f"change: start the scores nearer the cut {cut:g}"
    )
