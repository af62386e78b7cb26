"""Ranking partitions by gradient agreement and building the masked update (METHODS.md §3.5).

The cosine between the two gradients is computed per group as one batched row-wise reduction on the
device, every score goes into one vector and a single ``topk`` picks the globally least similar
partitions. The reference loops over ~10^5 partitions in Python on CPU copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from debiaslit.methods.pcgu.partitions import PartitionGroup

ZeroGrad = Literal["exclude", "reference"]
ZERO_GRAD = ("exclude", "reference")


@dataclass(frozen=True)
class Selection:
    """Which partitions were picked: one bool vector per group and its count, plus the step's totals."""

    per_group: list[torch.Tensor]
    group_counts: list[int]
    n_selected: int
    n_zero_grad: int
    n_candidates: int


def partition_scores(
    groups: list[PartitionGroup],
    grads_a: Mapping[str, torch.Tensor],
    grads_b: Mapping[str, torch.Tensor],
    zero_grad: ZeroGrad = "exclude",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cosine per partition, zero-gradient flag per partition), concatenated over ``groups``.

    A partition where either gradient is all zero has no defined cosine. ``exclude`` gives it +inf
    (never selected); ``reference`` keeps the reference code's 0 (it then outranks every partition with
    a positive cosine, e.g. embedding rows of tokens absent from the batch).
    """
    scores, zeros = [], []
    for group in groups:
        a, b = group.view(grads_a[group.param_name]).float(), group.view(grads_b[group.param_name]).float()
        norm_a, norm_b = a.norm(dim=1), b.norm(dim=1)
        zero = (norm_a == 0) | (norm_b == 0)
        # one norm after the other: the product of two tiny norms would underflow in fp32
        cos = (a * b).sum(dim=1) / norm_a.masked_fill(zero, 1.0) / norm_b.masked_fill(zero, 1.0)
        scores.append(cos.masked_fill(zero, float("inf")) if zero_grad == "exclude" else cos)
        zeros.append(zero)
    return torch.cat(scores), torch.cat(zeros)


def select_partitions(
    groups: list[PartitionGroup],
    grads_a: Mapping[str, torch.Tensor],
    grads_b: Mapping[str, torch.Tensor],
    top_k: int | None,
    zero_grad: ZeroGrad = "exclude",
) -> Selection:
    """The ``top_k`` partitions with the lowest cosine (None: every eligible one) over all groups."""
    scores, zeros = partition_scores(groups, grads_a, grads_b, zero_grad)
    eligible = torch.isfinite(scores)
    n_eligible = int(eligible.sum())
    k = n_eligible if top_k is None else min(top_k, n_eligible)
    chosen = torch.zeros_like(eligible)
    if k > 0:
        chosen[torch.topk(-scores, k, sorted=False).indices] = True
    per_group = list(chosen.split([g.count for g in groups]))
    counts = torch.stack([c.sum() for c in per_group]).tolist()  # one device sync for all groups
    return Selection(per_group, counts, k, int(zeros.sum()), scores.numel())


def masked_update(
    groups: list[PartitionGroup],
    selection: Selection,
    update: Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{parameter name: (update gradient zero outside the selected partitions, 0/1 mask)} for every
    parameter with at least one selected partition (the others get no gradient at all)."""
    masks: dict[str, torch.Tensor] = {}
    for group, chosen, count in zip(groups, selection.per_group, selection.group_counts, strict=True):
        if not count:
            continue
        param = params[group.param_name]
        part = group.mask(chosen, param)
        masks[group.param_name] = part if group.param_name not in masks else masks[group.param_name] + part
    return {name: (update[name] * mask, mask) for name, mask in masks.items()}
