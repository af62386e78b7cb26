"""Error-set upweighting (JTT) and end-to-end self-debiasing against hand calculations, where their
gradients go, and the method feeding a shallow layer's features."""

from __future__ import annotations

import math

import pytest
import torch

from debiaslit.backbones.pooling import pooled_features
from debiaslit.errors import ConfigError
from debiaslit.losses import LearnedMixin, ProductOfExperts, Reweight, SelfDebias, UpweightErrors
from debiaslit.methods.erm import ERM
from tests.unit.losses.test_losses import LABELS, LOGITS, ce, softmax, tensors


def test_upweight_errors_hand_value() -> None:
    logits, labels, batch = tensors()
    # bias argmax: 0, 2, 2 vs gold 0, 2, 1: only the third example is an error
    w = [1.0, 1.0, 6.0]
    expected = sum(w[i] * ce(LOGITS[i], LABELS[i]) for i in range(3)) / sum(w)
    assert UpweightErrors(upweight=6.0)(logits, labels, batch).item() == pytest.approx(expected, rel=1e-6)
    assert UpweightErrors(upweight=1.0)(logits, labels, batch).item() == pytest.approx(
        sum(ce(LOGITS[i], LABELS[i]) for i in range(3)) / 3, rel=1e-6
    )
    with pytest.raises(ConfigError, match="upweight"):
        UpweightErrors(upweight=0.5)


FEATS = [[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]]
HEAD_W = [[0.3, -0.2], [-0.4, 0.1], [0.2, 0.5]]
HEAD_B = [0.1, 0.0, -0.1]


def self_debias(combine=None, **kwargs) -> SelfDebias:
    loss = SelfDebias(combine=combine, hidden_size=2, **kwargs)
    with torch.no_grad():
        loss.head.weight.copy_(torch.tensor(HEAD_W))
        loss.head.bias.copy_(torch.tensor(HEAD_B))
    return loss


def head_logits(i: int) -> list[float]:
    return [sum(w * f for w, f in zip(HEAD_W[k], FEATS[i], strict=True)) + HEAD_B[k] for k in range(3)]


@pytest.mark.parametrize("combine", ["poe", "reweight"])
def test_self_debias_hand_value(combine: str) -> None:
    logits, labels, batch = tensors()
    batch = {"features": torch.tensor(FEATS)}  # no bias_probs: the head supplies them
    expected, weights, weighted = 0.0, [], []
    for i in range(3):
        pb = softmax(head_logits(i))
        if combine == "poe":
            joint = [pm * b for pm, b in zip(softmax(LOGITS[i]), pb, strict=True)]
            expected += -math.log(joint[LABELS[i]] / sum(joint)) / 3
        weights.append(1 - pb[LABELS[i]])
        weighted.append(weights[-1] * ce(LOGITS[i], LABELS[i]))
        expected += 0.5 * ce(head_logits(i), LABELS[i]) / 3
    if combine == "reweight":
        expected += sum(weighted) / sum(weights)
    loss_fn = self_debias(ProductOfExperts() if combine == "poe" else Reweight(), bias_weight=0.5)
    assert loss_fn(logits, labels, batch).item() == pytest.approx(expected, rel=1e-6)


def test_self_debias_gradients_train_the_head_not_through_the_bias_probs() -> None:
    logits, labels, _ = tensors()
    feats = torch.tensor(FEATS, requires_grad=True)
    loss_fn = self_debias(bias_weight=0.0)
    loss_fn(logits, labels, {"features": feats}).backward()
    assert loss_fn.head.weight.grad is None or loss_fn.head.weight.grad.abs().sum() == 0  # p_b detached
    assert feats.grad is None  # detach_features
    loss_fn = self_debias(bias_weight=1.0, detach_features=False)
    loss_fn(logits, labels, {"features": feats}).backward()
    assert loss_fn.head.weight.grad.abs().sum() > 0 and feats.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="features"):
        SelfDebias(combine=LearnedMixin())


def test_module_feeds_the_shallow_layer_and_the_head_is_checkpointed() -> None:
    torch.manual_seed(0)
    module = ERM(backbone="tiny-bert", dropout=0.0, loss=SelfDebias(layer=1))
    batch = {
        "input_ids": torch.randint(5, 50, (4, 7)),
        "attention_mask": torch.ones(4, 7, dtype=torch.long),
        "labels": torch.tensor([0, 1, 2, 0]),
    }
    module.eval()
    logits, features = module.logits_and_features(batch)
    mask = batch["attention_mask"]
    hidden = module.model(input_ids=batch["input_ids"], attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(features, pooled_features(hidden.hidden_states[1], mask, module.model))
    assert torch.isfinite(module.training_loss(logits, batch, features))
    assert any(k.startswith("loss.head.") for k in module.state_dict())
    module.loss.feature_layer = 99
    with pytest.raises(ConfigError, match="layer 99"):
        module.logits_and_features(batch)
