"""Bias experts (one-vs-rest binary bias classifiers combined by a product of experts) against hand
calculations: the combination, the balanced one-vs-rest loss, and both expert models."""

from __future__ import annotations

import math

import pytest
import torch

from debiaslit.bias import (
    BackboneBiasModel,
    BiasExpertsBias,
    FinetunedBias,
    HansFeatureModel,
    one_vs_rest_loss,
    one_vs_rest_poe,
)
from debiaslit.data.schema import NLI_LABELS
from debiaslit.data.synthetic import generate_shortcut_nli

SCORES = [[1.0, -0.5, 0.2], [-2.0, 0.3, 3.0]]


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_product_of_one_vs_rest_experts_hand_value_and_softmax_identity() -> None:
    got = one_vs_rest_poe(torch.tensor(SCORES, dtype=torch.float64))
    for row, out in zip(SCORES, got.tolist(), strict=True):
        joint = [
            sigmoid(row[k]) * math.prod(1 - sigmoid(row[j]) for j in range(3) if j != k) for k in range(3)
        ]
        assert out == pytest.approx([p / sum(joint) for p in joint], rel=1e-12)
        # p_k ∝ σ(s_k)/(1 − σ(s_k)) = e^{s_k}: the product is the softmax of the experts' log-odds
        assert out == pytest.approx([math.exp(s) / sum(math.exp(v) for v in row) for s in row], rel=1e-12)
    # log space: log-odds far beyond float range of σ still give a distribution
    extreme = one_vs_rest_poe(torch.tensor([[80.0, -80.0, 0.0]]))
    assert torch.isfinite(extreme).all() and extreme[0, 0] == pytest.approx(1.0)


def test_one_vs_rest_loss_hand_value() -> None:
    labels = [2, 0]
    expected = 0.0
    for row, y in zip(SCORES, labels, strict=True):
        for k, s in enumerate(row):
            expected += -(2.0 * math.log(sigmoid(s)) if k == y else math.log(1 - sigmoid(s))) / 6
    got = one_vs_rest_loss(torch.tensor(SCORES), torch.tensor(labels))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_hans_feature_experts_are_one_binary_lr_per_class_combined_by_poe() -> None:
    train, test = generate_shortcut_nli(300, 0.9, seed=0), generate_shortcut_nli(90, 0.9, 1, "other")
    model = HansFeatureModel("one_vs_rest")
    model.fit(train)
    assert len(model.lrs) == len(NLI_LABELS)
    x = model.features(test)
    expert_probs = [lr.predict_proba(x) for lr in model.lrs]  # [p(not k), p(k)] per expert
    log_odds = torch.stack([p[:, 1].log() - p[:, 0].log() for p in expert_probs], 1)
    probs = model.predict(test)
    torch.testing.assert_close(probs, one_vs_rest_poe(log_odds).float())
    labels = torch.tensor([NLI_LABELS.index(e.label) for e in test])
    # expert 0 alone: entailment vs the rest from overlap, right on most shortcut-aligned pairs
    assert ((log_odds[:, 0] > 0) == (labels == 0)).float().mean() > 0.8


def test_backbone_experts_train_with_the_binary_loss_and_predict_by_poe() -> None:
    train = generate_shortcut_nli(16, 0.9, seed=0)
    model = BackboneBiasModel("tiny-bert", epochs=1, batch_size=8, head="one_vs_rest")
    model.fit(train)
    enc = model._encode(train[:4])
    with torch.no_grad():
        scores = model.model(**enc).logits
    torch.testing.assert_close(model.predict(train[:4]), one_vs_rest_poe(scores.float()))
    spec = BiasExpertsBias(backbone="tiny-bert", epochs=1)
    assert spec.make_model("tiny-bert").head == "one_vs_rest"
    softmax_model = FinetunedBias(backbone="tiny-bert", epochs=1)
    assert spec.fingerprint("tiny-bert") != softmax_model.fingerprint("tiny-bert")  # never its cache
