"""Bias models: features on crafted pairs, the LR, ECE, cross-fitting without leakage, the id-keyed
cache and probability files mapped by label name, and the DataModule attaching ``bias_probs``."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F

from debiaslit.bias import (
    BackboneBiasModel,
    FinetunedBias,
    HansFeatureModel,
    HansFeaturesBias,
    LogisticRegression,
    ProbsFileBias,
    SplitProbs,
    compute_bias_probs,
    cross_fit_predict,
    expected_calibration_error,
    hans_features,
    read_probs_file,
    write_probs_file,
)
from debiaslit.data.schema import NLI_LABELS, NLIExample
from debiaslit.data.sources import HansGenerated, ShortcutSynthetic
from debiaslit.data.synthetic import generate_shortcut_nli
from debiaslit.datamodules import NLIDataModule
from debiaslit.errors import ConfigError, DataFormatError


def test_hans_features_on_crafted_pairs() -> None:
    # h is p minus its last words: contiguous, all words in p, overlap 1, len diff 3 -> log 3
    assert hans_features(
        "The doctor saw the lawyer in the park.", "The doctor saw the lawyer."
    ) == pytest.approx([1.0, 1.0, 1.0, math.log(3), 0.0])
    # swapped roles: every word in p, but not contiguous; equal length -> log(max(0, 1)) = 0
    assert hans_features("The lawyer saw the doctor.", "The doctor saw the lawyer.") == [
        0.0,
        1.0,
        1.0,
        0.0,
        0.0,
    ]
    # negation and a new word: 4 of 6 hypothesis words in p
    feats = hans_features("The doctor saw the artist.", "The doctor did not see anyone.")
    assert feats == pytest.approx([0.0, 0.0, 2 / 6, 0.0, 1.0])
    assert hans_features("The judge slept.", "Nobody slept!")[4] == 1.0
    assert hans_features("Some words here.", "")[:3] == [0.0, 0.0, 0.0]


def test_expected_calibration_error_hand_value() -> None:
    probs = torch.tensor([[0.85, 0.15], [0.75, 0.25], [0.38, 0.62], [0.58, 0.42]])
    labels = torch.tensor([0, 1, 1, 0])  # correct, wrong, correct, correct
    # 10 bins: each example alone in its bin -> mean of |1-0.85|, |0-0.75|, |1-0.62|, |1-0.58|
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(
        (0.15 + 0.75 + 0.38 + 0.42) / 4
    )
    # 1 bin: |mean acc - mean conf|
    assert expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(
        abs(0.75 - (0.85 + 0.75 + 0.62 + 0.58) / 4)
    )
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, torch.tensor([0, 1])) == 0.0


def test_logistic_regression_reaches_the_optimum_of_its_objective() -> None:
    torch.manual_seed(0)
    x = torch.randn(120, 3, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(120, dtype=torch.float64) > 0.3).long()
    lr = LogisticRegression(2, c=1.0, balanced=True).fit(x, y)
    # first-order optimality, checked with autograd on the objective written out independently
    w = lr.weight.clone().requires_grad_(True)
    b = lr.bias.clone().requires_grad_(True)
    z = (x - lr.mean) / lr.std
    counts = torch.bincount(y).double()
    sw = (120 / (2 * counts))[y]
    obj = (sw * F.cross_entropy(z @ w + b, y, reduction="none")).sum() + 0.5 * (w**2).sum()
    obj.backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4
    probs = lr.predict_proba(x)
    assert torch.allclose(probs.sum(1), torch.ones(120, dtype=torch.float64))
    assert (probs.argmax(1) == y).double().mean() > 0.75


class MemorisingModel:
    """Predicts the gold label with certainty for every uid it was trained on, uniform otherwise;
    records what it saw and what it was asked."""

    log: list[tuple[set[str], list[str]]] = []

    def fit(self, examples: Sequence[NLIExample]) -> None:
        self.seen = {e.uid: e.label for e in examples}

    def predict(self, examples: Sequence[NLIExample]) -> torch.Tensor:
        MemorisingModel.log.append((set(self.seen), [e.uid for e in examples]))
        rows = [
            F.one_hot(torch.tensor(NLI_LABELS.index(self.seen[e.uid])), 3).float()
            if e.uid in self.seen
            else torch.full((3,), 1 / 3)
            for e in examples
        ]
        return torch.stack(rows)


@pytest.mark.parametrize("train_size", [None, 10])
def test_cross_fitting_never_predicts_an_example_with_a_model_that_saw_it(train_size: int | None) -> None:
    examples = generate_shortcut_nli(50, 0.9, seed=0)
    MemorisingModel.log = []
    result = cross_fit_predict(examples, MemorisingModel, folds=5, seed=3, train_size=train_size)
    assert result.out_of_sample
    predicted = [uid for _, asked in MemorisingModel.log for uid in asked]
    assert sorted(predicted) == sorted(e.uid for e in examples)  # each example exactly once
    for seen, asked in MemorisingModel.log:
        assert not seen & set(asked)
        assert train_size is None or len(seen) == train_size
    assert torch.allclose(
        result.probs, torch.full((50, 3), 1 / 3)
    )  # a memoriser learns nothing out of sample
    # in-sample mode (folds = 1) is flagged and memorises everything
    in_sample = cross_fit_predict(examples, MemorisingModel, folds=1)
    assert not in_sample.out_of_sample
    assert torch.equal(in_sample.probs.argmax(1), torch.tensor([NLI_LABELS.index(e.label) for e in examples]))


def test_hans_feature_model_captures_the_overlap_shortcut() -> None:
    train = generate_shortcut_nli(300, 0.9, seed=0)
    model = HansFeatureModel("binary")
    model.fit(train)
    probs = model.predict(generate_shortcut_nli(150, 0.9, seed=1, source="other"))
    assert torch.allclose(probs.sum(1), torch.ones(150), atol=1e-5)
    assert torch.allclose(probs[:, 1], probs[:, 2])  # Clark's expansion: p_non split evenly
    labels = torch.tensor([NLI_LABELS.index(e.label) for e in generate_shortcut_nli(150, 0.9, 1, "other")])
    binary_acc = ((probs[:, 0] > 0.5) == (labels == 0)).float().mean()
    assert binary_acc > 0.8  # overlap predicts entailment vs not 90 % of the time


def test_cache_roundtrip_and_mismatch_errors(tmp_path) -> None:
    train = generate_shortcut_nli(60, 0.9, seed=0)
    evals = {"ood": generate_shortcut_nli(30, 0.5, seed=1, source="ood")}
    spec = HansFeaturesBias(folds=3)
    cache = tmp_path / "bias.json"
    first = compute_bias_probs(spec, train, evals, cache_path=cache)
    assert not first.from_cache and cache.is_file()
    assert first.report["train"]["out_of_sample"] is True
    assert set(first.report) == {"train", "ood"} and 0 <= first.report["ood"]["ece"] <= 1
    again = compute_bias_probs(spec, train, evals, cache_path=cache)
    assert again.from_cache
    for name in first.probs:
        torch.testing.assert_close(again.probs[name], first.probs[name], atol=1e-7, rtol=0)
    # the same ids in another order are fine (keyed by uid)
    shuffled = compute_bias_probs(spec, train[::-1], evals, cache_path=cache)
    torch.testing.assert_close(shuffled.probs["train"], first.probs["train"].flip(0), atol=1e-7, rtol=0)

    with pytest.raises(DataFormatError, match="ids do not match"):
        compute_bias_probs(spec, train[:-1], evals, cache_path=cache)
    flipped = "neutral" if train[0].label != "neutral" else "entailment"
    relabelled = [dataclasses.replace(train[0], label=flipped), *train[1:]]
    with pytest.raises(DataFormatError, match="gold label"):
        compute_bias_probs(spec, relabelled, evals, cache_path=cache)
    with pytest.raises(DataFormatError, match="another bias model"):
        compute_bias_probs(HansFeaturesBias(folds=2), train, evals, cache_path=cache)
    retexted = [dataclasses.replace(train[0], premise=train[0].premise + " again"), *train[1:]]
    with pytest.raises(DataFormatError, match="texts"):
        compute_bias_probs(spec, retexted, evals, cache_path=cache)


def test_probability_file_is_mapped_by_label_name(tmp_path) -> None:
    train = generate_shortcut_nli(9, 0.9, seed=0)
    # the chrisc36/debias order: contradiction, entailment, neutral
    rows = torch.tensor([[0.1 * (i % 3 + 1), 0.5, 0.5 - 0.1 * (i % 3 + 1)] for i in range(9)])
    path = tmp_path / "bias_file.json"
    write_probs_file(
        path,
        {"train": SplitProbs([e.uid for e in train], rows, [e.label for e in train])},
        label_order=("contradiction", "entailment", "neutral"),
    )
    splits, _ = read_probs_file(path)
    expected = rows[:, [1, 2, 0]]  # -> entailment, neutral, contradiction
    torch.testing.assert_close(splits["train"].probs, expected, atol=1e-7, rtol=0)
    result = compute_bias_probs(ProbsFileBias(str(path)), train[::-1], {})
    torch.testing.assert_close(result.probs["train"], expected.flip(0), atol=1e-7, rtol=0)

    payload = json.loads(path.read_text())
    payload["label_order"] = ["entailment", "neutral", "neutral"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(payload))
    with pytest.raises(DataFormatError, match="label_order"):
        read_probs_file(bad)
    with pytest.raises(DataFormatError, match="does not exist"):
        read_probs_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="data.bias.lr_classes"):
        HansFeaturesBias(lr_classes="magic").validate("data.bias")
    with pytest.raises(ConfigError, match="data.teacher.folds"):
        FinetunedBias(folds=0).validate("data.teacher")


def test_datamodule_attaches_bias_and_teacher_probs_by_uid(tmp_path) -> None:
    source = ShortcutSynthetic(n=40, shortcut_rate=0.9)
    teacher_rows = torch.softmax(torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), -1)
    train = generate_shortcut_nli(40, 0.9, seed=0, source="train")
    teacher_path = tmp_path / "teacher.json"
    write_probs_file(teacher_path, {"train": SplitProbs([e.uid for e in train], teacher_rows)})
    dm = NLIDataModule(
        train=source,
        eval_sets={"hans": HansGenerated(n=1)},
        tokenizer="tiny-bert",
        batch_size=8,
        bias=HansFeaturesBias(folds=4, cache=str(tmp_path / "cache.json")),
        teacher=ProbsFileBias(str(teacher_path)),
    )
    dm.setup("fit")
    direct = compute_bias_probs(HansFeaturesBias(folds=4), train, {})
    teacher_of = {e.uid: teacher_rows[i] for i, e in enumerate(train)}
    for batch in dm.train_dataloader():
        for i, index in enumerate(batch["index"].tolist()):
            uid = dm.train_set.examples[index].uid
            row = [e.uid for e in train].index(uid)
            torch.testing.assert_close(batch["bias_probs"][i], direct.probs["train"][row], atol=1e-6, rtol=0)
            torch.testing.assert_close(batch["teacher_probs"][i], teacher_of[uid], atol=1e-6, rtol=0)
    eval_batch = next(iter(dm.val_dataloader()[0]))
    assert eval_batch["bias_probs"].shape == (len(eval_batch["labels"]), 3)
    assert set(dm.bias_reports["bias"]) == {"train", "hans"}


def test_backbone_bias_models_train_and_hypothesis_only_sees_only_hypotheses() -> None:
    examples = generate_shortcut_nli(24, 0.9, seed=0)
    hyp_only = BackboneBiasModel("tiny-bert", inputs="hypothesis", epochs=1, batch_size=8, max_length=32)
    hyp_only.fit(examples)
    enc = hyp_only._encode(examples[:3])
    plain = hyp_only.tokenizer([e.hypothesis for e in examples[:3]], padding=True, return_tensors="pt")
    assert torch.equal(enc["input_ids"], plain["input_ids"])
    probs = hyp_only.predict(examples)
    assert probs.shape == (24, 3) and torch.allclose(probs.sum(1), torch.ones(24), atol=1e-5)
    # Utama's shallow model: the pair model on a small subset, cross-fitted
    spec = FinetunedBias(folds=2, train_size=8, epochs=1, batch_size=8, max_length=32)
    result = compute_bias_probs(spec, examples, {}, backbone="tiny-bert")
    assert result.probs["train"].shape == (24, 3) and result.report["train"]["out_of_sample"]
