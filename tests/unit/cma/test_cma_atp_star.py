"""AtP*: the QK fix against brute-force softmaxes and against exact patching where attention saturates;
GradDrop and integrated gradients against their definitions."""

from __future__ import annotations

import pytest
import torch

from debiaslit.backbones import ComponentMap
from debiaslit.cma.attribution import attribution_deltas, ig_deltas
from debiaslit.cma.effects import ClassProbability, TokenOddsRatio
from debiaslit.cma.exact import ExactRunner
from debiaslit.cma.mediators import Mediator, mediators_for
from debiaslit.cma.qk import key_effects, query_effects
from debiaslit.cma.setup import Intervention, MediationSetup
from debiaslit.errors import ConfigError
from tests.unit.cma.helpers import lm_batches, nli_batch, tiny

N, T, H, D = 2, 6, 2, 3


def _attention(q: torch.Tensor, k: torch.Tensor, valid: torch.Tensor, scale: float) -> torch.Tensor:
    qh, kh = q.view(N, T, H, D).transpose(1, 2), k.view(N, T, H, D).transpose(1, 2)
    scores = qh @ kh.transpose(-1, -2) * scale
    return scores.masked_fill(~valid[:, None, None, :], float("-inf")).softmax(-1)  # [N, H, T, T]


@pytest.mark.parametrize("which", ["Q", "K"])
def test_qk_fix_equals_brute_force_softmax(which: str) -> None:
    g = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(N, T, H * D, generator=g, dtype=torch.float64),
        torch.randn(N, T, H * D, generator=g, dtype=torch.float64),
    )
    valid = torch.ones(N, T, dtype=torch.bool)
    valid[1, -2:] = False  # padded keys stay at probability 0
    positions = torch.tensor([[0, 3], [1, 2]])
    delta = 8.0 * torch.randn(N, 2, H * D, generator=g, dtype=torch.float64)  # big enough to saturate
    grad = torch.randn(N, H, T, T, generator=g, dtype=torch.float64)
    scale = D**-0.5
    probs = _attention(q, k, valid, scale)
    fast = (query_effects if which == "Q" else key_effects)(
        probs, grad, k if which == "Q" else q, delta, positions, scale
    )
    expected = torch.zeros(N, H * D, dtype=torch.float64)
    for unit in range(H * D):
        moved_q, moved_k = q.clone(), k.clone()
        moved = moved_q if which == "Q" else moved_k
        for i in range(N):
            moved[i, positions[i], unit] += delta[i, :, unit]
        new = _attention(moved_q, moved_k, valid, scale)
        expected[:, unit] = ((new - probs) * grad)[:, unit // D].sum((-1, -2))
    torch.testing.assert_close(fast, expected, rtol=1e-9, atol=1e-12)


def _errors(setup: MediationSetup, batch: dict, targets: dict, **kwargs) -> tuple[dict, dict]:
    runner = ExactRunner(setup, batch, targets)
    exact = {m.key: runner.single_units(m) for m in setup.mediators}
    estimate, _ = attribution_deltas(setup, batch, lambda z: targets, **kwargs)
    return exact, estimate


def test_qk_fix_tracks_exact_where_attention_saturates() -> None:
    """All-position Q/K patches scaled ×6 saturate the softmax: the linear estimate misses what the exact
    pattern change does, the QK fix follows it (float64; downstream of the pattern it is still linear)."""
    model, tok = tiny("tiny-bert", "sequence-classification")
    model.double()
    batch = nli_batch(tok)
    setup = MediationSetup(
        model, ClassProbability(0), mediators_for(ComponentMap.for_model(model), ["Q", "K"]), "all"
    )
    clean, _ = setup.capture(batch)
    targets = setup.targets(clean, Intervention("scale", alpha=6.0))
    exact, plain = _errors(setup, batch, targets)
    _, fixed = _errors(setup, batch, targets, qk_fix=True)
    for key in exact:
        scale = float(exact[key].abs().max())
        err_plain = float((plain[key] - exact[key]).abs().mean()) / scale
        err_fixed = float((fixed[key] - exact[key]).abs().mean()) / scale
        assert err_fixed < 0.5 * err_plain, (key, err_fixed, err_plain)


def test_qk_fix_of_a_small_patch_is_first_order() -> None:
    """A 0.1 % patch moves the pattern linearly: QK fix = plain attribution (GPT-2: causal masks)."""
    model, tok = tiny("tiny-gpt2", "causal-lm")
    model.double()
    base, _ = lm_batches(tok)
    setup = MediationSetup(
        model, TokenOddsRatio(), mediators_for(ComponentMap.for_model(model), ["Q", "K", "I"]), "last"
    )
    clean, _ = setup.capture(base)
    targets = setup.targets(clean, Intervention("scale", alpha=1.001))
    plain, _ = attribution_deltas(setup, base, lambda z: targets)
    fixed, _ = attribution_deltas(setup, base, lambda z: targets, qk_fix=True)
    for key in plain:
        scale = float(plain[key].abs().max())
        assert scale > 0
        torch.testing.assert_close(fixed[key], plain[key], rtol=0, atol=2e-3 * scale)


def test_grad_drop_is_the_mean_magnitude_over_dropped_layers() -> None:
    """Against separate runs whose layer-ℓ sublayer outputs are detached in the forward (skips kept)."""
    model, tok = tiny("tiny-bert", "sequence-classification")
    batch = nli_batch(tok)
    setup = MediationSetup(model, ClassProbability(0), [Mediator("I", 0), Mediator("AO", 1)], "cls")
    cmap = setup.cmap

    def targets(z: dict) -> dict:
        return setup.targets(z, Intervention("zero"))

    plain, _ = attribution_deltas(setup, batch, targets)
    dropped, _ = attribution_deltas(setup, batch, targets, grad_drop=True)
    magnitude = {k: torch.zeros_like(v) for k, v in plain.items()}
    for layer in range(cmap.num_layers):
        handles = [
            cmap.weight_site(c, layer).module(model).register_forward_hook(lambda _m, _a, out: out.detach())
            for c in ("AO", "O")
        ]
        try:
            cut, _ = attribution_deltas(setup, batch, targets)
        finally:
            for handle in handles:
                handle.remove()
        for key, value in cut.items():
            magnitude[key] += value.abs() / cmap.num_layers
    for key, value in plain.items():
        expected = torch.where(value < 0, -magnitude[key], magnitude[key])
        torch.testing.assert_close(dropped[key], expected, rtol=1e-5, atol=1e-9)
        assert not torch.allclose(dropped[key], value)


def test_integrated_gradients_converge_to_exact_for_single_units() -> None:
    """A path integral of the gradient of one unit is its exact effect as the steps grow."""
    model, tok = tiny("tiny-bert", "sequence-classification")
    model.double()
    batch = nli_batch(tok)
    setup = MediationSetup(model, ClassProbability(0), [Mediator("head", 0), Mediator("I", 1)], "cls")
    clean, _ = setup.capture(batch)
    targets = setup.targets(clean, Intervention("scale", alpha=-4.0))
    runner = ExactRunner(setup, batch, targets)
    plain, _ = attribution_deltas(setup, batch, lambda z: targets)
    ig, _ = ig_deltas(setup, batch, lambda z: targets, steps=64)
    for mediator in setup.mediators:
        exact = runner.single_units(mediator)
        scale = float(exact.abs().max())
        err_ig = float((ig[mediator.key] - exact).abs().max()) / scale
        assert err_ig < 0.05 and err_ig < float((plain[mediator.key] - exact).abs().max()) / scale


def test_qk_fix_refuses_rotary_architectures() -> None:
    model, tok = tiny("tiny-gpt-neox", "causal-lm")
    base, _ = lm_batches(tok)
    setup = MediationSetup(model, TokenOddsRatio(), [Mediator("Q", 0)], "word")
    with pytest.raises(ConfigError, match="QK fix"):
        attribution_deltas(setup, base, lambda z: z, qk_fix=True)
