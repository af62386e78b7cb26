"""The position limit that ``data.max_length`` is checked against, on real tiny transformers models."""

from __future__ import annotations

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.backbones.positions import check_max_length, max_positions
from debiaslit.backbones.tiny import MAX_POSITIONS
from debiaslit.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "task"),
    [("tiny-bert", "sequence-classification"), ("tiny-roberta", "masked-lm"), ("tiny-gpt2", "causal-lm")],
)
def test_limit_is_the_longest_sequence_the_model_runs(name: str, task: str) -> None:
    model, _ = load_backbone(name, task=task, seed=0, num_labels=3)
    limit = max_positions(model)
    assert limit == MAX_POSITIONS
    pad = model.config.pad_token_id or 0
    ids = torch.full((1, limit), 5)
    ids[0, 0] = 3 if pad != 3 else 4
    model(input_ids=ids)  # the limit itself runs
    with pytest.raises((IndexError, RuntimeError)):  # one more token does not: what the check prevents
        model(input_ids=torch.full((1, limit + 1), 5))
    check_max_length(torch.nn.Sequential(model), limit)  # found inside a wrapper too
    with pytest.raises(ConfigError, match=rf"data.max_length={limit + 1} exceeds the {limit} positions"):
        check_max_length(torch.nn.Sequential(model), limit + 1)


def test_rotary_models_have_no_hard_limit() -> None:
    model, _ = load_backbone("tiny-gpt-neox", task="causal-lm", seed=0)
    assert max_positions(model) is None
    check_max_length(model, 10_000)
