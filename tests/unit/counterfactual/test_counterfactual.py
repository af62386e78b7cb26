"""Counterfactual inference (TIE / TE_model) on fixed probabilities against hand values, the fitted
scalar against a grid search, and the ``debiaslit test`` callback read back from its files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import debiaslit
from debiaslit.counterfactual import (
    CounterfactualPostProcessor,
    SavedSet,
    causal_effects,
    counterfactual_evaluate,
    fuse,
    load_predictions,
    save_predictions,
)
from debiaslit.errors import ConfigError
from tests.conftest import REPO_ROOT

P_M = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]
P_B = [[0.2, 0.5, 0.3], [0.7, 0.1, 0.2]]


def log_sigmoid(v: float) -> float:
    return math.log(1 / (1 + math.exp(-v)))


def test_fuse_and_effects_hand_values() -> None:
    assert fuse(torch.tensor(0.3), torch.tensor(0.5)).item() == pytest.approx(log_sigmoid(0.8))
    c = 0.4
    eff = causal_effects(torch.tensor(P_M), torch.tensor(P_B), c)
    for i in range(2):
        for j in range(3):
            pm, pb = P_M[i][j], P_B[i][j]
            assert eff["tie"][i, j].item() == pytest.approx(
                log_sigmoid(pb + pm) - log_sigmoid(pb + c), rel=1e-5
            )
            assert eff["te"][i, j].item() == pytest.approx(
                log_sigmoid(pb + pm) - log_sigmoid(1 / 3 + c), rel=1e-5
            )
            assert eff["nie"][i, j].item() == pytest.approx(
                log_sigmoid(1 / 3 + pm) - log_sigmoid(1 / 3 + c), rel=1e-5
            )
    torch.testing.assert_close(eff["te"], eff["nde"] + eff["tie"])
    torch.testing.assert_close(eff["int_med"], eff["tie"] - eff["nie"])


def test_transform_hand_values() -> None:
    tie = CounterfactualPostProcessor("tie")
    with torch.no_grad():
        tie.c.fill_(0.4)
    scores = tie.transform(torch.tensor(P_M), torch.tensor(P_B))
    hand = [
        [log_sigmoid(P_B[i][j] + P_M[i][j]) - log_sigmoid(P_B[i][j] + 0.4) for j in range(3)]
        for i in range(2)
    ]
    assert scores.tolist() == [pytest.approx(r, rel=1e-5) for r in hand]
    te = CounterfactualPostProcessor("te_model")
    with torch.no_grad():
        te.c.fill_(0.7)
    hand = [[P_M[i][j] - 0.7 * P_B[i][j] for j in range(3)] for i in range(2)]
    assert te.transform(torch.tensor(P_M), torch.tensor(P_B)).tolist() == [
        pytest.approx(r, rel=1e-5) for r in hand
    ]
    # the bias pushes example 1 towards class 0; subtracting it changes the prediction to class 1
    assert te.transform(torch.tensor(P_M), torch.tensor(P_B)).argmax(-1).tolist() == [0, 1]


def _softmax(v: list[float]) -> list[float]:
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


@pytest.mark.parametrize(
    "method,objective", [("tie", "reference"), ("tie", "cfvqa"), ("te_model", "reference")]
)
def test_objectives_hand_values(method: str, objective: str) -> None:
    post = CounterfactualPostProcessor(method, objective).double()
    c = 0.6
    with torch.no_grad():
        post.c.fill_(c)
    total = 0.0
    for pm, pb in zip(P_M, P_B, strict=True):
        if method == "te_model":  # KL(p_b || softmax(softmax(c' p_m))), averaged over labels
            total += _kl(pb, _softmax(_softmax([c * x for x in pm]))) / 3
        elif objective == "reference":  # KL(p_b || softmax(log s(c + F(p_m, p_b)))), averaged over labels
            q = _softmax([log_sigmoid(c + log_sigmoid(m + b)) for m, b in zip(pm, pb, strict=True)])
            total += _kl(pb, q) / 3
        else:  # KL(softmax(F(p_b, p_m)) || softmax(F(p_b, c)))
            p = _softmax([log_sigmoid(b + m) for m, b in zip(pm, pb, strict=True)])
            total += _kl(p, _softmax([log_sigmoid(b + c) for b in pb]))
    expected = total / len(P_M)
    loss = post.loss(torch.tensor(P_M, dtype=torch.float64), torch.tensor(P_B, dtype=torch.float64))
    assert loss.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("method,objective", [("tie", "cfvqa"), ("te_model", "reference")])
def test_fit_finds_the_grid_minimum(method: str, objective: str) -> None:
    gen = torch.Generator().manual_seed(0)
    p_m = torch.softmax(3 * torch.randn(200, 3, generator=gen), -1)
    p_b = torch.softmax(2 * torch.randn(200, 3, generator=gen) + 2 * p_m, -1)
    post = CounterfactualPostProcessor(method, objective, epochs=200, lr=0.1, batch_size=200).fit(p_m, p_b)
    probe = CounterfactualPostProcessor(method, objective)
    losses = []
    with torch.no_grad():
        for c in torch.linspace(-3, 8, 221):
            probe.c.fill_(c)
            losses.append(probe.loss(p_m, p_b).item())
        assert post.loss(p_m, p_b).item() <= min(losses) + 1e-6
    assert min(losses) < losses[0] and min(losses) < losses[-1]  # the optimum lies inside the grid


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="method"):
        CounterfactualPostProcessor("nde")
    with pytest.raises(ConfigError, match="te_model"):
        CounterfactualPostProcessor("te_model", "cfvqa")


def _saved(name: str, is_hans: bool) -> SavedSet:
    labels = [0, 1] if is_hans else [0, 1]
    groups = (
        ["lexical_overlap/entailment", "lexical_overlap/non-entailment"]
        if is_hans
        else ["entailment", "neutral", "contradiction"]
    )
    return SavedSet(
        name, is_hans, ["a", "b"], labels, [0, 1], [0, 0], groups, [], torch.tensor(P_M), torch.tensor(P_B)
    )


def test_saved_predictions_roundtrip_and_never_fit_on_hans(tmp_path: Path) -> None:
    sets = {"dev": _saved("dev", False), "hans": _saved("hans", True)}
    save_predictions(tmp_path / "p.json", list(sets.values()))
    loaded = load_predictions(tmp_path / "p.json")
    torch.testing.assert_close(loaded["hans"].p_b, sets["hans"].p_b)
    results, _ = counterfactual_evaluate(loaded, "dev", "te_model")
    assert results["hans"].n == 2 and results["dev"].n == 2
    with pytest.raises(ConfigError, match="HANS"):
        counterfactual_evaluate(loaded, "hans")
    with pytest.raises(ConfigError, match="not one of"):
        counterfactual_evaluate(loaded, "mnli")


def test_counterfactual_callback_in_debiaslit_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    configs = [
        str(REPO_ROOT / "tests/configs/tiny_erm.yaml"),
        str(REPO_ROOT / "tests/configs/tiny_reweight.yaml"),
    ]
    debiaslit.fit(config=configs, trainer__max_epochs=1)
    ckpt = tmp_path / "checkpoints/tiny/version_0/last.ckpt"
    callback = {
        "class_path": "debiaslit.counterfactual.CounterfactualInference",
        "init_args": {"fit_on": "synth_ood", "objective": "cfvqa"},
    }
    debiaslit.test(config=configs, overrides={"ckpt_path": str(ckpt), "trainer.callbacks": [callback]})
    log_dir = tmp_path / "logs/tiny/version_1"
    fitted = json.loads((log_dir / "counterfactual/fitted.json").read_text())
    assert set(fitted) == {"tie", "te_model"} and fitted["tie"]["objective"] == "cfvqa"
    # the Python API on the saved predictions gives the same c and the same tables
    sets = load_predictions(log_dir / "counterfactual/predictions.json")
    assert len(sets["synth_ood"].uids) == 63 and len(sets["hans_like"].uids) == 90
    results, c = counterfactual_evaluate(sets, "synth_ood", "tie", "cfvqa")
    assert c == pytest.approx(fitted["tie"]["c"], abs=1e-6)
    assert (log_dir / "results/test_tie_epoch00.csv").is_file()
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    logged = acc.Scalars("test_tie/hans_like/acc")[-1].value
    assert logged == pytest.approx(results["hans_like"].accuracy, abs=1e-6)
    assert "test_te_model/c" in acc.Tags()["scalars"]
    # a test pass that skips rows must not fill them with zeros (= "entailment") and fit c on them
    partial = {"ckpt_path": str(ckpt), "trainer.callbacks": [callback], "trainer.limit_test_batches": 1}
    with pytest.raises(ConfigError, match="evaluation set 'synth_ood' has 47 of 63 rows without predictions"):
        debiaslit.test(config=configs, overrides=partial)
