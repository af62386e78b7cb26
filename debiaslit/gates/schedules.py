"""Cubic schedules for the mask threshold / kept fraction (Sanh et al. 2020, nn_pruning).

v_t = v_f + (v_0 − v_f) · (1 − (t − w_i) / (T − w_i − w_f))³ between a warm-up plateau at v_0 (w_i
steps) and a cool-down plateau at v_f (w_f steps). t is ``trainer.global_step`` and T is
``trainer.estimated_stepping_batches``, so resuming a run or running validation never shifts it
(the reference implementation advanced its schedule on every forward call).
"""

from __future__ import annotations

from dataclasses import dataclass

from debiaslit.errors import ConfigError

SCHEDULES = ("constant", "cubic")


@dataclass(frozen=True)
class CubicSchedule:
    """From ``initial`` to ``final``; ``kind="constant"`` stays at ``final`` from step 0.

    Built by the binarizers, which own their schedule settings; :meth:`validate` names the options
    under the binarizer's configuration key.
    """

    initial: float
    final: float
    kind: str = "cubic"
    warmup_fraction: float = 0.0
    cooldown_fraction: float = 0.0

    def validate(self, option: str) -> None:
        """ConfigError naming ``<option>.init_args.<field>`` for a bad kind or plateau fraction."""
        if self.kind not in SCHEDULES:
            raise ConfigError(f"{option}.init_args.schedule must be one of {SCHEDULES}, got {self.kind!r}")
        for name in ("warmup_fraction", "cooldown_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{option}.init_args.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.warmup_fraction + self.cooldown_fraction >= 1.0:
            raise ConfigError(
                f"{option}.init_args.warmup_fraction + {option}.init_args.cooldown_fraction must be below 1"
            )

    def progress(self, step: int, total: int) -> float:
        """Fraction of the way from ``initial`` to ``final`` (0 during warm-up, 1 in cool-down)."""
        if self.kind == "constant":
            return 1.0
        total = max(1, int(total))
        warmup = round(self.warmup_fraction * total)
        ramp = total - warmup - round(self.cooldown_fraction * total)
        if ramp <= 0:
            return 0.0 if step < warmup else 1.0
        x = min(max((step - warmup) / ramp, 0.0), 1.0)
        return 1.0 - (1.0 - x) ** 3

    def value(self, step: int, total: int) -> float:
        return self.initial + (self.final - self.initial) * self.progress(step, total)

    @property
    def start(self) -> float:
        """Value at step 0."""
        return self.final if self.kind == "constant" else self.initial
