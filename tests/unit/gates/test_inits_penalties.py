"""Score inits (and the step-0 rule), penalties and their λ ramp against values computed by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from debiaslit.errors import ConfigError
from debiaslit.gates import (
    ConstantInit,
    ExpectedL0,
    HardConcrete,
    L1Sigmoid,
    Lagrangian,
    SigmoidThreshold,
    Threshold,
    TopK,
    UniformInit,
    check_initial_masks,
)

INIT, BIN = "model.init_args.init", "model.init_args.binarizer"


def _scores(init, binarizer, shape=(4, 6)) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [init(shape, binarizer.score_cut(binarizer.start), generator) for _ in range(2)]


def test_uniform_init_puts_the_sparsity_fraction_below_the_cut() -> None:
    scores = UniformInit(sparsity=0.25, width=0.6)((200, 50), 0.01, torch.Generator().manual_seed(1))
    assert float((scores <= 0.01).float().mean()) == pytest.approx(0.25, abs=0.01)
    assert scores.min() >= 0.01 - 0.15 and scores.max() <= 0.01 + 0.45


def test_constant_init_that_prunes_everything_is_refused() -> None:
    init, binarizer = ConstantInit(0.0), Threshold(threshold=0.01)
    with pytest.raises(ConfigError) as err:
        check_initial_masks(_scores(init, binarizer), binarizer, init, INIT, BIN)
    text = str(err.value)
    assert "ConstantInit(value=0.0)" in text and "Threshold(threshold=0.01" in text
    assert "prunes 100 %" in text and "above 0.01" in text and INIT in text and BIN in text
    # hard-concrete's evaluation gate is closed at S = 0; a sigmoid threshold above σ(0) = 0.5 too
    for binarizer in (HardConcrete(), SigmoidThreshold(threshold=0.6)):
        with pytest.raises(ConfigError, match="prunes 100 %"):
            check_initial_masks(_scores(init, binarizer), binarizer, init, INIT, BIN)


@pytest.mark.parametrize(
    ("init", "binarizer"),
    [
        (
            ConstantInit(0.0),
            SigmoidThreshold(threshold=0.1, threshold_initial=0.0, schedule="cubic"),
        ),  # Meissner
        (ConstantInit(0.02), Threshold(threshold=0.01)),  # nothing pruned, identity STE: legitimate
        (ConstantInit(0.5), HardConcrete()),
        (ConstantInit(0.0), TopK()),
        (UniformInit(0.05), Threshold()),
    ],
)
def test_starts_that_can_learn_are_accepted(init, binarizer) -> None:
    check_initial_masks(_scores(init, binarizer), binarizer, init, INIT, BIN)


def test_a_start_without_gradient_is_refused() -> None:
    init, binarizer = ConstantInit(30.0), SigmoidThreshold(threshold=0.1)  # σ'(30) = 0 in float32
    with pytest.raises(ConfigError, match="no gradient at step 0"):
        check_initial_masks(_scores(init, binarizer), binarizer, init, INIT, BIN)


def test_uniform_init_needs_a_finite_cut() -> None:
    with pytest.raises(ConfigError, match=rf"{INIT}: UniformInit .* use ConstantInit"):
        UniformInit().validate(INIT, SigmoidThreshold(threshold_initial=0.0, schedule="cubic"))
    with pytest.raises(ConfigError, match=rf"{INIT}\.init_args\.sparsity must lie in \[0, 1\)"):
        UniformInit(sparsity=1.0).validate(INIT, Threshold())


def test_penalty_ramp_is_lambda_times_tau_t_over_tau_f() -> None:
    """The documented λ_t = λ·τ_t/τ_f, by hand, for a cubic schedule that does not start at 0."""
    binarizer = SigmoidThreshold(threshold=0.1, threshold_initial=0.02, schedule="cubic")
    for step in (0, 3, 7, 10):
        tau = 0.1 + (0.02 - 0.1) * (1 - step / 10) ** 3
        assert binarizer.penalty_ramp(step, 10) == pytest.approx(tau / 0.1)
    assert binarizer.penalty_ramp(0, 10) == pytest.approx(0.2)  # not the schedule's progress (0)
    # top-k: the schedule's progress; hard-concrete and constant schedules: 1
    assert TopK(0.05, 0.15, "cubic").penalty_ramp(5, 10) == pytest.approx(1 - 0.5**3)
    assert HardConcrete().penalty_ramp(5, 10) == 1.0 and Threshold().penalty_ramp(5, 10) == 1.0

    gates = [SimpleNamespace(scores=torch.tensor([[0.0, 2.0]]), binarizer=binarizer, current=0.05)]
    penalty = L1Sigmoid(lambda_=3.0)(gates, binarizer.penalty_ramp(3, 10), binarizer.progress(3, 10))
    tau_3 = 0.1 - 0.08 * 0.7**3
    expected = 3.0 * tau_3 / 0.1 * (0.5 + 1 / (1 + math.exp(-2.0))) / 2
    assert penalty["penalty"].item() == pytest.approx(expected)


def test_penalty_settings_are_checked_against_the_binarizer() -> None:
    with pytest.raises(ConfigError, match=rf"penalty ExpectedL0 needs {BIN}: HardConcrete"):
        ExpectedL0().validate("model.init_args.penalty", Threshold(), BIN)
    with pytest.raises(ConfigError, match=rf"{BIN}\.init_args\.threshold > 0"):
        L1Sigmoid().validate("model.init_args.penalty", Threshold(threshold=0.0), BIN)
    with pytest.raises(ConfigError, match=r"penalty\.init_args\.target_sparsity must lie in \[0, 1\)"):
        Lagrangian(1.0).validate("model.init_args.penalty", Threshold(), BIN)


def test_expected_l0_is_the_mean_probability_of_an_open_gate() -> None:
    gate = HardConcrete()
    gates = [SimpleNamespace(scores=torch.tensor([0.0, 1.0]), binarizer=gate, current=0.0)]
    shift = (2 / 3) * math.log(0.1 / 1.1)
    expected = 2.0 * sum(1 / (1 + math.exp(-(s - shift))) for s in (0.0, 1.0)) / 2
    assert ExpectedL0(lambda_=2.0)(gates, 1.0, 1.0)["penalty"].item() == pytest.approx(expected, rel=1e-6)
