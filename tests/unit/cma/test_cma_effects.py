"""Effect measures against hand calculations; effect sums merge like one pass."""

from __future__ import annotations

import math

import pytest
import torch

from debiaslit.cma.effects import ClassLogOdds, ClassProbability, EffectSums, TokenOddsRatio, make_measure
from debiaslit.errors import ConfigError


def test_measures_match_hand_calculation() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = [math.exp(2) / (math.exp(2) + 1 + math.exp(-1)), 1 / 3]
    assert ClassProbability(0).log_y(logits, {}).tolist() == pytest.approx([math.log(x) for x in p], rel=1e-6)
    assert ClassLogOdds(0).log_y(logits, {}).tolist() == pytest.approx(
        [math.log(x / (1 - x)) for x in p], rel=1e-5
    )
    lm = torch.zeros(2, 3, 5)
    lm[0, 1, 3], lm[0, 1, 4] = 1.5, -0.5  # example 0: last real token at 1 (padding after)
    lm[1, 0, 3] = 2.0  # example 1: read at target position 0
    batch = {
        "anti_ids": torch.tensor([3, 3]),
        "stereo_ids": torch.tensor([4, 1]),
        "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
    }
    odds = TokenOddsRatio().log_y(lm, batch)
    assert odds[0] == pytest.approx(2.0)  # log(p3 / p4) = 1.5 - (-0.5)
    batch["target_positions"] = torch.tensor([1, 0])
    assert TokenOddsRatio().log_y(lm, batch).tolist() == pytest.approx([2.0, 2.0])
    with pytest.raises(ConfigError, match="needs classifier logits"):
        ClassProbability(0).log_y(lm, {})
    with pytest.raises(ConfigError, match="unknown cma effect measure"):
        make_measure("ratio")


def test_effect_sums_merge_equals_one_pass() -> None:
    delta = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    whole, a, b = EffectSums(count=10), EffectSums(count=6), EffectSums(count=4)
    whole.add("O/layer_0", delta)
    a.add("O/layer_0", delta[:, :6])
    b.add("O/layer_0", delta[:, 6:])
    merged = a.merge(b)
    torch.testing.assert_close(merged.nie()["O/layer_0"], torch.expm1(delta).mean(1))
    torch.testing.assert_close(merged.mean_log()["O/layer_0"], whole.mean_log()["O/layer_0"])
    assert merged.count == 10
