"""Spearman rank correlation against hand values and a naive pairwise-rank loop."""

from __future__ import annotations

import math

import pytest
import torch

from debiaslit.cma.selection import average_ranks, spearman


def naive_ranks(values: list[float]) -> list[float]:
    """Rank = 1 + number smaller + half the number of other equal values."""
    return [1 + sum(v < x for v in values) + (sum(v == x for v in values) - 1) / 2 for x in values]


def naive_spearman(a: list[float], b: list[float]) -> float:
    ra, rb = naive_ranks(a), naive_ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))


def test_average_ranks_of_ties_by_hand() -> None:
    assert average_ranks(torch.tensor([10.0, 20.0, 10.0, 5.0, 20.0, 20.0])).tolist() == [2.5, 5, 2.5, 1, 5, 5]


def test_hand_values() -> None:
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    # d = ranks differ by (0, 0, 1, -1, 0): 1 - 6 * 2 / (5 * 24) = 0.9
    assert spearman(torch.tensor([1.0, 2, 3, 4, 5]), torch.tensor([1.0, 2, 4, 3, 5])) == pytest.approx(0.9)


@pytest.mark.parametrize("seed", range(5))
def test_matches_naive_loop_with_ties(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 6, (40,), generator=g).float()  # many ties
    b = a + torch.randint(-3, 4, (40,), generator=g).float()
    assert spearman(a, b) == pytest.approx(naive_spearman(a.tolist(), b.tolist()), abs=1e-12)


def test_nan_when_undefined() -> None:
    assert math.isnan(spearman(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])))
    assert math.isnan(spearman(torch.tensor([1.0, 1, 1]), torch.tensor([1.0, 2, 3])))
