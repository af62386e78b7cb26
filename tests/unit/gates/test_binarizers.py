"""Binarizers and schedules against hand-computed forward values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from debiaslit.errors import ConfigError
from debiaslit.gates import Binarizer, CubicSchedule, HardConcrete, SigmoidThreshold, Threshold, TopK


def _forward_and_grad(binarizer: Binarizer, scores: list, value: float, training: bool = False):
    s = torch.tensor(scores, requires_grad=True)
    weights = torch.arange(1.0, s.numel() + 1).view_as(s)  # distinct upstream gradients
    mask = binarizer(s, value, training)
    (mask * weights).sum().backward()
    return mask.detach(), s.grad, weights


def test_threshold_is_a_step_with_identity_straight_through() -> None:
    mask, grad, weights = _forward_and_grad(Threshold(), [-0.5, 0.005, 0.01, 0.02, 1.0], 0.01)
    assert mask.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # strict S > τ
    assert torch.equal(grad, weights)


def test_sigmoid_threshold_gradient_goes_through_the_sigmoid() -> None:
    scores = [-2.0, 0.0, 2.0]
    mask, grad, weights = _forward_and_grad(SigmoidThreshold(), scores, 0.3)
    assert mask.tolist() == [0.0, 1.0, 1.0]  # σ = 0.119, 0.5, 0.881
    sig = [1 / (1 + math.exp(-s)) for s in scores]
    expected = [w * p * (1 - p) for p, w in zip(sig, [1, 2, 3], strict=True)]
    torch.testing.assert_close(grad, torch.tensor(expected))
    assert SigmoidThreshold().score_cut(0.3) == pytest.approx(math.log(0.3 / 0.7))


def test_topk_keeps_the_top_fraction_of_the_matrix() -> None:
    mask, grad, weights = _forward_and_grad(TopK(), [[0.1, 0.5, -0.2], [0.3, -1.0, 0.0]], 0.5)
    # int(0.5 * 6) = 3 kept: 0.5, 0.3, 0.1
    assert mask.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert torch.equal(grad, weights)


def test_hard_concrete_eval_gate_and_training_sample() -> None:
    beta, gamma, zeta = 2 / 3, -0.1, 1.1
    scores = [-3.0, -0.01, 0.01, 0.5, 4.0]
    mask = HardConcrete()(torch.tensor(scores), 0.0, False)
    assert mask.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # clamp(σ(S)·1.2 − 0.1) > 0.5  ⟺  S > 0

    torch.manual_seed(3)
    mask, grad, weights = _forward_and_grad(HardConcrete(), scores, 0.0, training=True)
    torch.manual_seed(3)
    u = torch.rand(len(scores)).clamp(1e-6, 1 - 1e-6)
    for i, s in enumerate(scores):
        soft = 1 / (1 + math.exp(-(math.log(u[i]) - math.log(1 - u[i]) + s) / beta))
        stretched = soft * (zeta - gamma) + gamma
        assert mask[i].item() == pytest.approx(min(max(stretched, 0.0), 1.0), abs=1e-6)
        inside = 0.0 < stretched < 1.0
        expected = weights[i].item() * (zeta - gamma) * soft * (1 - soft) / beta if inside else 0.0
        assert grad[i].item() == pytest.approx(expected, rel=1e-4, abs=1e-7)
    # expected L0: P(gate != 0) = σ(S − β log(−γ/ζ))
    keep = HardConcrete().keep_probability(torch.tensor([0.0]))
    assert keep.item() == pytest.approx(1 / (1 + math.exp(beta * math.log(-gamma / zeta))))


def test_hard_concrete_gates_a_tensor_of_any_shape() -> None:
    gate = HardConcrete()
    log_alpha = torch.tensor([[[-2.0, 3.0], [0.5, -0.5]]])  # e.g. [batch, positions, latents]
    assert gate(log_alpha, 0.0, False).tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    assert gate(log_alpha, 0.0, True).shape == log_alpha.shape
    assert gate.score_cut(0.0) == 0.0


def test_binarizers_own_their_schedules() -> None:
    sigmoid = SigmoidThreshold(threshold=0.1, threshold_initial=0.0, schedule="cubic")
    assert sigmoid.start == 0.0 and sigmoid.value(5, 10) == pytest.approx(0.1 * (1 - 0.5**3))
    topk = TopK(initial_sparsity=0.05, final_sparsity=0.15, schedule="cubic")
    assert topk.start == pytest.approx(0.95) and topk.value(10, 10) == pytest.approx(0.85)
    assert Threshold(0.01).value(3, 10) == 0.01 and HardConcrete().value(3, 10) == 0.0


@pytest.mark.parametrize(
    ("binarizer", "message"),
    [
        (Threshold(schedule="linear"), r"model\.init_args\.binarizer\.init_args\.schedule must be one of"),
        (Threshold(warmup_fraction=1.2), r"binarizer\.init_args\.warmup_fraction must lie in \[0, 1\)"),
        (SigmoidThreshold(threshold=1.5), r"binarizer\.init_args\.threshold is a probability"),
        (TopK(final_sparsity=1.0), r"binarizer\.init_args\.final_sparsity must lie in \[0, 1\)"),
        (HardConcrete(gamma=0.1), r"hard-concrete needs beta > 0, gamma < 0"),
    ],
)
def test_bad_settings_name_the_option_as_typed(binarizer: Binarizer, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        binarizer.validate("model.init_args.binarizer")


def test_cubic_schedule_with_warmup_and_cooldown() -> None:
    sched = CubicSchedule(0.0, 0.1, "cubic", warmup_fraction=0.1, cooldown_fraction=0.1)
    assert sched.value(0, 100) == 0.0 and sched.value(10, 100) == 0.0  # warm-up plateau
    assert sched.value(50, 100) == pytest.approx(0.1 * (1 - 0.5**3))  # x = 40 / 80
    assert sched.value(90, 100) == pytest.approx(0.1) and sched.value(99, 100) == pytest.approx(0.1)
    assert sched.progress(50, 100) == pytest.approx(0.875)
    flat = CubicSchedule(0.0, 0.01, "constant")
    assert flat.value(0, 10) == flat.start == 0.01
    with pytest.raises(ConfigError, match=r"b\.init_args\.warmup_fraction \+ b\.init_args\.cooldown"):
        CubicSchedule(0.0, 0.1, "cubic", warmup_fraction=0.6, cooldown_fraction=0.5).validate("b")
