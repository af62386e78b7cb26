"""The fixed probe set a mediation analysis runs on: examples, aligned counterfactuals, a reference set.

Items are unpadded per-example dicts (token fields plus metadata such as ``anti_ids`` or ``positions``);
batches are padded per batch with the DataModules' :class:`PadCollator`, so sharding rows across DDP
ranks does not change any example's input.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from debiaslit.data.collate import PadCollator
from debiaslit.data.encoded import EncodedNLI
from debiaslit.data.overlap import overlap_subsets
from debiaslit.errors import ConfigError

Batch = dict[str, torch.Tensor]


@dataclass
class Probe:
    """Probe examples, optional aligned counterfactual inputs and an optional reference set.

    ``summary`` records how the sets were chosen (thresholds, sizes, items reported as unusable).
    """

    items: list[dict[str, Any]]
    pad_token_id: int
    counterfactual: list[dict[str, Any]] | None = None
    reference: list[dict[str, Any]] | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.items:
            raise ConfigError("the cma probe set is empty")
        if self.counterfactual is not None and len(self.counterfactual) != len(self.items):
            raise ConfigError(
                "cma probe: counterfactual inputs must align one-to-one with the probe examples"
            )
        if self.reference is not None and not self.reference:
            raise ConfigError("the cma reference set is empty: nothing to average the treatment value over")

    def __len__(self) -> int:
        return len(self.items)

    def _collate(self, items: Sequence[dict[str, Any]]) -> Batch:
        return PadCollator(self.pad_token_id)(list(items))

    def batches(self, rows: Sequence[int], batch_size: int) -> Iterator[tuple[Batch, Batch | None]]:
        """(probe batch, aligned counterfactual batch or None) over ``rows``."""
        for lo in range(0, len(rows), batch_size):
            part = rows[lo : lo + batch_size]
            cf = (
                None if self.counterfactual is None else self._collate([self.counterfactual[i] for i in part])
            )
            yield self._collate([self.items[i] for i in part]), cf

    def reference_batches(self, rows: Sequence[int], batch_size: int) -> Iterator[Batch]:
        if self.reference is None:
            raise ConfigError("the cma intervention needs a reference set but the probe has none")
        for lo in range(0, len(rows), batch_size):
            yield self._collate([self.reference[i] for i in rows[lo : lo + batch_size]])


def shard(n: int, rank: int, world: int) -> list[int]:
    """Rows of a rank: every ``world``-th row starting at ``rank`` (disjoint, covering 0..n-1)."""
    return list(range(rank, n, world))


class NLIProbe:
    """How an NLI probe set is drawn from one evaluation set of the DataModule: ``per_class`` examples per
    gold label, plus the high- (HOL) or low-overlap (LOL) pairs as the reference set.

    Args:
        probe_set: the evaluation set to draw from (the DataModule's first when null).
        per_class: probe examples per gold label (class-balanced, seeded).
        reference: ``high`` (HOL), ``low`` (LOL) or null (no reference set).
        overlap_mode, overlap_high, overlap_low: the HOL / LOL cut-offs of
            :func:`~debiaslit.data.overlap.overlap_subsets` (percentiles or absolute overlap rates).
        seed: seeds the label-balanced sampling of both sets.
    """

    def __init__(
        self,
        probe_set: str | None = None,
        per_class: int = 16,
        reference: str | None = "high",
        overlap_mode: str = "percentile",
        overlap_high: float = 95.0,
        overlap_low: float = 5.0,
        seed: int = 0,
    ) -> None:
        if reference not in ("high", "low", None):
            raise ConfigError(f"NLIProbe.reference must be 'high', 'low' or null, got {reference!r}")
        if per_class < 1:
            raise ConfigError(f"NLIProbe.per_class must be >= 1, got {per_class}")
        self.probe_set, self.per_class, self.reference, self.seed = probe_set, per_class, reference, seed
        self.overlap_mode, self.overlap_high, self.overlap_low = overlap_mode, overlap_high, overlap_low

    def build(self, dataset: EncodedNLI, pad_token_id: int) -> Probe:
        """The probe from ``dataset``; the reference examples are kept out of the probe set."""
        summary: dict[str, Any] = {"probe_set": dataset.name}
        ref_idx: list[int] = []
        if self.reference is not None:
            subsets = overlap_subsets(
                dataset.examples,
                self.overlap_mode,
                self.overlap_high,
                self.overlap_low,
                balance_labels=True,
                seed=self.seed,
            )
            ref_idx = subsets.high_idx if self.reference == "high" else subsets.low_idx
            summary.update(
                {f"reference/{k}": v for k, v in subsets.summary().items()}, reference=self.reference
            )
        taken = set(ref_idx)
        rng = random.Random(self.seed)
        probe_idx: list[int] = []
        for label in range(len(dataset.label_names)):
            pool = [i for i, y in enumerate(dataset.labels) if y == label and i not in taken]
            probe_idx += rng.sample(pool, min(self.per_class, len(pool)))
        probe_idx.sort()
        summary["n_probe"] = len(probe_idx)
        summary["n_reference"] = len(ref_idx)
        return Probe(
            items=[dataset[i] for i in probe_idx],
            pad_token_id=pad_token_id,
            reference=[dataset[i] for i in ref_idx] if self.reference is not None else None,
            summary=summary,
        )
