"""The one way the LM DataModules (gendered pairs, bias evaluation sets, neutral text) build loaders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader, Dataset

from debiaslit.data.samplers import eval_sampler, train_sampler


def shard_loader(
    dataset: Dataset, trainer: Any, batch_size: int, collate: Callable, seed: int | None = None
) -> DataLoader:
    """This process's shard: seeded shuffling for training (``seed`` given), else in order, each item
    once across processes (evaluation)."""
    sampler = eval_sampler(dataset, trainer) if seed is None else train_sampler(dataset, trainer, seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
