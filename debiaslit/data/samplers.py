"""The sampler policy every DataModule shares (the CLI sets ``use_distributed_sampler: false``).

Training: a seeded ``DistributedSampler`` at every process count, so N processes at batch B see the
same global batches as 1 process at N·B; optionally grouped by length
(:class:`LengthGroupedSampler`). Evaluation: an unrepeated sampler, so under DDP every
example is evaluated exactly once (Lightning's default pads with duplicates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, DistributedSampler


def _world(trainer: Any) -> tuple[int, int]:
    return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)


class LengthGroupedSampler(DistributedSampler):
    """Seeded shuffle whose global batches hold sequences of similar length, so padding costs little.

    Dynamic padding pads each batch to its longest sequence: on MNLI pairs (mean 39 tokens) a random
    batch of 32 pads to ~93. Each epoch the shuffled order is cut into chunks of ``group`` global
    batches, each chunk sorted by length and split into global batches (``batch_size`` × processes),
    and the full batches shuffled (the short remainder stays last). Every process takes its strided
    share of each global batch, so N processes at B see the same global batches as 1 process at N·B.
    """

    def __init__(
        self,
        dataset: Dataset,
        lengths: Sequence[int],
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        group: int = 50,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        if len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for a dataset of {len(dataset)} items")
        self.lengths = list(lengths)
        self.global_batch = batch_size * num_replicas
        self.group = group

    def global_order(self) -> list[int]:
        """This epoch's order of every index, global batch after global batch."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        size = self.global_batch * self.group
        order = [
            i
            for s in range(0, len(order), size)
            for i in sorted(order[s : s + size], key=self.lengths.__getitem__)
        ]
        batches = [order[s : s + self.global_batch] for s in range(0, len(order), self.global_batch)]
        tail = batches.pop() if batches and len(batches[-1]) < self.global_batch else []
        return [i for b in torch.randperm(len(batches), generator=g).tolist() for i in batches[b]] + tail

    def __iter__(self):  # noqa: ANN204 - Sampler's own signature
        indices = self.global_order()
        indices += indices[: self.total_size - len(indices)]  # as DistributedSampler pads
        return iter(indices[self.rank : self.total_size : self.num_replicas])


def train_sampler(
    dataset: Dataset,
    trainer: Any,
    seed: int,
    lengths: Sequence[int] | None = None,
    batch_size: int = 1,
) -> DistributedSampler:
    """Seeded shuffling sampler for this process's shard of the training set; grouped by length when
    ``lengths`` is given (``batch_size`` is then the per-process batch size)."""
    world, rank = _world(trainer)
    if lengths is not None:
        return LengthGroupedSampler(dataset, lengths, batch_size, world, rank, seed)
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)


def eval_sampler(dataset: Dataset, trainer: Any) -> UnrepeatedDistributedSampler:
    """In-order sampler for this process's disjoint shard of an evaluation set."""
    world, rank = _world(trainer)
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
