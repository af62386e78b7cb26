"""Attribution patching: exact where the model is linear in the mediator, first-order close elsewhere."""

from __future__ import annotations

import torch
from torch import nn

from debiaslit.backbones import ComponentMap
from debiaslit.cma.attribution import attribution_deltas
from debiaslit.cma.effects import ClassProbability, TokenOddsRatio
from debiaslit.cma.exact import ExactRunner
from debiaslit.cma.mediators import Mediator, mediators_for
from debiaslit.cma.setup import Intervention, MediationSetup
from tests.unit.cma.helpers import lm_batches, nli_batch, tiny


def _both(setup: MediationSetup, batch: dict, intervention: Intervention) -> tuple[dict, dict]:
    clean, _ = setup.capture(batch)
    targets = setup.targets(clean, intervention)
    runner = ExactRunner(setup, batch, targets)
    exact = {m.key: runner.single_units(m) for m in setup.mediators}
    estimate, _ = attribution_deltas(setup, batch, lambda z: setup.targets(z, intervention))
    return exact, estimate


def test_first_order_estimate_is_exact_on_a_linear_readout() -> None:
    """GPT-2 without its final LayerNorm: the logit difference is linear in the last layer's MLP output
    and residual stream at the read-out position, so attribution equals exact patching there."""
    model, tok = tiny("tiny-gpt2", "causal-lm")
    model.transformer.ln_f = nn.Identity()
    base, _ = lm_batches(tok)
    last = ComponentMap.for_model(model).num_layers - 1
    linear = [Mediator("O", last), Mediator("resid", last)]
    nonlinear = [Mediator("I", last), Mediator("O", 0)]
    setup = MediationSetup(model, TokenOddsRatio(), linear + nonlinear, "last")
    exact, estimate = _both(setup, base, Intervention("scale", alpha=-3.0))
    for m in linear:
        assert exact[m.key].abs().max() > 1e-3
        torch.testing.assert_close(estimate[m.key], exact[m.key], rtol=1e-4, atol=1e-6)
    # the test can fail: through GELU / later layers a large patch is not first order
    assert any(not torch.allclose(estimate[m.key], exact[m.key], rtol=1e-2, atol=1e-5) for m in nonlinear)


def test_small_patches_match_exact_for_every_site() -> None:
    """For a 1 % scale the first-order term dominates at every site, fused Q/K/V and heads included
    (in float64, so that effects far below float32 resolution are compared too)."""
    checked = 0
    for name, task in (("tiny-gpt2", "causal-lm"), ("tiny-bert", "sequence-classification")):
        model, tok = tiny(name, task)
        model.double()
        cmap = ComponentMap.for_model(model)
        meds = mediators_for(cmap, ["Q", "K", "V", "AO", "I", "O", "resid", "head", "pattern"])
        if task == "causal-lm":
            batch, _ = lm_batches(tok)
            setup = MediationSetup(model, TokenOddsRatio(), meds, "word")
        else:
            setup = MediationSetup(model, ClassProbability(0), meds, "all")
            batch = nli_batch(tok)
        exact, estimate = _both(setup, batch, Intervention("scale", alpha=1.01))
        for key in exact:
            scale = float(exact[key].abs().max())
            assert float((estimate[key] - exact[key]).abs().max()) <= 0.05 * scale + 1e-13, (name, key)
            checked += scale > 1e-9
    assert checked >= 29  # only sites that cannot reach the read-out (GPT-2 layer 1 at the word) are 0


def test_attribution_works_under_inference_mode() -> None:
    """Lightning validates under inference_mode: the estimate must leave it and give the same numbers."""
    model, tok = tiny("tiny-bert", "sequence-classification")
    batch = nli_batch(tok)
    setup = MediationSetup(model, ClassProbability(0), [Mediator("Q", 1), Mediator("I", 0)], "cls")
    intervention = Intervention("zero")
    plain, _ = attribution_deltas(setup, batch, lambda z: setup.targets(z, intervention))
    with torch.inference_mode():
        inference_batch = {k: v.clone() for k, v in batch.items()}
        inside, _ = attribution_deltas(setup, inference_batch, lambda z: setup.targets(z, intervention))
    for key in plain:
        torch.testing.assert_close(inside[key], plain[key])
    assert all(p.grad is None for p in model.parameters()), "the estimate must not touch .grad"
