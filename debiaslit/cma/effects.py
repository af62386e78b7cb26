"""Effect measures y and the effects TE / NDE / NIE of Vig et al. (METHODS.md §1.2, §1.4).

Every measure returns m = log y per example in float32, so that an intervention's per-example effect
is Δ = m_intervened − m_null and Vig's ratio effect is y_intervened / y_null − 1 = exp(Δ) − 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from debiaslit.cma.mediators import at_least_fp32
from debiaslit.errors import ConfigError


class EffectMeasure(ABC):
    """log y(x) from model logits ([N, C] for classifiers, [N, T, V] for language models)."""

    name: str = "y"

    @abstractmethod
    def log_y(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def _class_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2:
            raise ConfigError(
                f"{type(self).__name__} needs classifier logits [N, C], got {tuple(logits.shape)}"
            )
        return at_least_fp32(logits)


@dataclass
class ClassProbability(EffectMeasure):
    """y = p(class | x), e.g. p(entailment) in the NLI word-overlap setup."""

    class_index: int = 0
    name: str = "p_class"

    def log_y(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._class_logits(logits).log_softmax(-1)[:, self.class_index]


@dataclass
class ClassLogOdds(EffectMeasure):
    """y = p / (1 − p) of one class; log y = log p − log(1 − p)."""

    class_index: int = 0
    name: str = "odds_class"

    def log_y(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logp = self._class_logits(logits).log_softmax(-1)[:, self.class_index]
        return logp - torch.log(-torch.expm1(logp))


@dataclass
class TokenOddsRatio(EffectMeasure):
    """Vig's y = p(anti-stereotypical token) / p(stereotypical token) for the next token.

    The token ids come from the batch (``anti_ids``, ``stereo_ids``: [N]); the prediction is read at
    ``batch["target_positions"]`` when given (a masked LM's [MASK]), else at the last non-padding
    token. The softmax normaliser cancels: log y = ℓ_anti − ℓ_stereo.
    """

    anti_key: str = "anti_ids"
    stereo_key: str = "stereo_ids"
    name: str = "odds_ratio"

    def log_y(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if logits.dim() != 3:
            raise ConfigError(
                f"TokenOddsRatio needs language-model logits [N, T, V], got {tuple(logits.shape)}"
            )
        missing = [k for k in (self.anti_key, self.stereo_key) if k not in batch]
        if missing:
            raise ConfigError(f"TokenOddsRatio needs batch fields {missing}")
        n = logits.shape[0]
        rows = torch.arange(n, device=logits.device)
        if "target_positions" in batch:  # e.g. the [MASK] of a masked LM prompt
            at = batch["target_positions"].to(logits.device)
        elif "attention_mask" in batch:
            at = batch["attention_mask"].to(logits.device).sum(1) - 1
        else:
            at = torch.full((n,), logits.shape[1] - 1, device=logits.device)
        step = at_least_fp32(logits[rows, at])
        anti, stereo = batch[self.anti_key].to(logits.device), batch[self.stereo_key].to(logits.device)
        return step[rows, anti] - step[rows, stereo]


MEASURES = {"class_prob": ClassProbability, "log_odds": ClassLogOdds, "odds_ratio": TokenOddsRatio}


def make_measure(kind: str, class_index: int = 0) -> EffectMeasure:
    """Measure by name: ``class_prob``, ``log_odds`` (of ``class_index``) or ``odds_ratio``."""
    if kind not in MEASURES:
        raise ConfigError(f"unknown cma effect measure {kind!r}; valid: {', '.join(MEASURES)}")
    return TokenOddsRatio() if kind == "odds_ratio" else MEASURES[kind](class_index=class_index)


def ratio_effect(delta: torch.Tensor) -> torch.Tensor:
    """Per-example Vig effect y_int / y_null − 1 from Δ = log y_int − log y_null."""
    return torch.expm1(delta)


def total_effect(m_null: torch.Tensor, m_counterfactual: torch.Tensor) -> float:
    """TE = mean_x [ y(x') / y(x) − 1 ]."""
    return float(ratio_effect(m_counterfactual - m_null).mean())


@dataclass
class EffectSums:
    """Sums over examples of the per-unit effects, so shards and ranks merge by addition.

    ``ratio`` = Σ_x (exp Δ − 1) and ``log`` = Σ_x Δ, each {mediator key: [n_units]}; ``count`` = N.
    """

    ratio: dict[str, torch.Tensor] = field(default_factory=dict)
    log: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0

    def add(self, key: str, delta: torch.Tensor) -> None:
        """Add per-example effects ``delta`` [n_units, N] of one mediator."""
        delta = delta.detach().double().cpu()
        for store, value in ((self.ratio, torch.expm1(delta).sum(1)), (self.log, delta.sum(1))):
            store[key] = store[key] + value if key in store else value

    def merge(self, other: EffectSums) -> EffectSums:
        out = EffectSums(count=self.count + other.count)
        for name in ("ratio", "log"):
            mine, theirs = getattr(self, name), getattr(other, name)
            getattr(out, name).update(
                {k: mine.get(k, 0) + theirs.get(k, 0) for k in dict.fromkeys([*mine, *theirs])}
            )
        return out

    def nie(self) -> dict[str, torch.Tensor]:
        """NIE per unit: mean over examples of y_int / y_null − 1."""
        return {k: (v / max(self.count, 1)).float() for k, v in self.ratio.items()}

    def mean_log(self) -> dict[str, torch.Tensor]:
        """mean_x Δ (log of the geometric-mean ratio): the robust summary."""
        return {k: (v / max(self.count, 1)).float() for k, v in self.log.items()}
