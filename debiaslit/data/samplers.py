"""The sampler policy every DataModule shares (the CLI sets ``use_distributed_sampler: false``).

Training: a seeded ``DistributedSampler`` at every process count, so N processes at batch B see the
same global batches as 1 process at N·B. Evaluation: an unrepeated sampler, so under DDP every
example is evaluated exactly once (Lightning's default pads with duplicates).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, DistributedSampler


def _world(trainer: Any) -> tuple[int, int]:
    return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)


def train_sampler(dataset: Dataset, trainer: Any, seed: int) -> DistributedSampler:
    """Seeded shuffling sampler for this process's shard of the training set."""
    world, rank = _world(trainer)
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)


def eval_sampler(dataset: Dataset, trainer: Any) -> UnrepeatedDistributedSampler:
    """In-order sampler for this process's disjoint shard of an evaluation set."""
    world, rank = _world(trainer)
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
