"""Exact batched NIE against a naive one-forward-per-unit hook loop; prefix caching; joint effects."""

from __future__ import annotations

import pytest
import torch

from debiaslit.backbones import ComponentMap
from debiaslit.cma.effects import ClassProbability, TokenOddsRatio, ratio_effect, total_effect
from debiaslit.cma.exact import ExactRunner, direct_effects, exact_effects
from debiaslit.cma.mediators import Mediator, mediators_for
from debiaslit.cma.selection import greedy, nie_all_vs_sum, top_k_joint
from debiaslit.cma.setup import Intervention, MediationSetup
from tests.unit.cma.helpers import lm_batches, naive_deltas, nli_batch, tiny

ALL = ["Q", "K", "V", "AO", "I", "O", "resid", "head", "pattern"]


@pytest.mark.parametrize("position", ["cls", "all"])
def test_bert_exact_equals_per_unit_hook_loop(position: str) -> None:
    model, tok = tiny("tiny-bert", "sequence-classification")
    batch = nli_batch(tok)
    measure = ClassProbability(0)
    components = ALL if position == "cls" else ["Q", "I", "head", "pattern"]
    setup = MediationSetup(
        model, measure, mediators_for(ComponentMap.for_model(model), components), position, max_rows=64
    )
    clean, _ = setup.capture(batch)
    # a shifted mean (patterns: rows made uniform over the keys), so every unit moves
    targets = {k: v.mean((0, 1), keepdim=True).expand_as(v) + 0.5 for k, v in clean.items()}
    for layer in (0, 1):  # attention rows made uniform
        targets[f"pattern/layer_{layer}"] = torch.full_like(
            clean[f"pattern/layer_{layer}"], 1 / batch["input_ids"].shape[1]
        )
    runner = ExactRunner(setup, batch, targets)
    positions = setup.positions(batch)
    for mediator in setup.mediators:
        exact = runner.single_units(mediator)
        units = [0, 1, 2, setup.n_units(mediator) - 1]  # the batched run covers all; check a few by hand
        naive = naive_deltas(model, measure, batch, mediator, positions, targets[mediator.key], units)
        torch.testing.assert_close(exact[units], naive, rtol=1e-4, atol=1e-6, msg=mediator.key)
        assert exact.abs().max() > 0 or mediator.component in "QKV"


def test_gpt2_counterfactual_exact_equals_hook_loop_and_sums() -> None:
    model, tok = tiny("tiny-gpt2", "causal-lm")
    base, cf = lm_batches(tok)
    measure = TokenOddsRatio()
    mediators = mediators_for(ComponentMap.for_model(model), ALL)
    setup = MediationSetup(model, measure, mediators, "word", max_rows=16)
    clean, _ = setup.capture(base)
    cf_values, _ = setup.capture(cf)
    targets = setup.targets(clean, Intervention("counterfactual"), counterfactual=cf_values)
    chosen = {m.key: torch.tensor([0, 1, setup.n_units(m) - 1]) for m in mediators}
    sums = exact_effects(setup, base, targets, units=chosen)  # a subset: GPT-2's vocabulary is large
    positions = setup.positions(base)
    assert sums.count == 2
    for mediator in mediators:
        units = chosen[mediator.key].tolist()
        naive = naive_deltas(model, measure, base, mediator, positions, targets[mediator.key], units)
        nie, log_nie = sums.nie()[mediator.key], sums.mean_log()[mediator.key]
        torch.testing.assert_close(nie, ratio_effect(naive).mean(1), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(log_nie, naive.mean(1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,task", [("tiny-bert", "sequence-classification"), ("tiny-gpt2", "causal-lm")])
def test_prefix_cache_equals_full_forward_and_skips_lower_layers(name: str, task: str) -> None:
    model, tok = tiny(name, task)
    if task == "causal-lm":
        batch, _ = lm_batches(tok)
        measure, position = TokenOddsRatio(), "last"
    else:
        batch, measure, position = nli_batch(tok), ClassProbability(1), "cls"
    cmap = ComponentMap.for_model(model)
    setup = MediationSetup(model, measure, mediators_for(cmap, ["I", "head"], [1]), position, max_rows=8)
    clean, _ = setup.capture(batch)
    targets = setup.targets(clean, Intervention("scale", alpha=-2.0))
    cached, full = ExactRunner(setup, batch, targets), ExactRunner(setup, batch, targets, prefix_cache=False)
    calls = []
    attention0 = model.get_submodule(cmap.attention_module_path(0))
    handle = attention0.register_forward_hook(lambda *_: calls.append(1))
    try:
        for mediator in setup.mediators:
            n_before = len(calls)
            fast = cached.single_units(mediator)
            assert len(calls) == n_before, "layer 0 must not run when only layer 1 is patched"
            torch.testing.assert_close(fast, full.single_units(mediator), rtol=1e-5, atol=1e-6)
            assert len(calls) > n_before
    finally:
        handle.remove()


def test_chunking_does_not_change_results() -> None:
    model, tok = tiny("tiny-bert", "sequence-classification")
    batch = nli_batch(tok)
    med = [Mediator("O", 0)]
    results = []
    for max_rows in (2, 5, 1000):
        setup = MediationSetup(model, ClassProbability(0), med, "cls", max_rows=max_rows)
        clean, _ = setup.capture(batch)
        results.append(
            ExactRunner(setup, batch, setup.targets(clean, Intervention("zero"))).single_units(med[0])
        )
    torch.testing.assert_close(results[0], results[1])
    torch.testing.assert_close(results[0], results[2])


def test_joint_effects_top_k_and_greedy() -> None:
    model, tok = tiny("tiny-bert", "sequence-classification")
    batch = nli_batch(tok)
    mediators = [Mediator("I", 0), Mediator("O", 1)]
    setup = MediationSetup(model, ClassProbability(0), mediators, "cls")
    clean, _ = setup.capture(batch)
    runner = ExactRunner(setup, batch, setup.targets(clean, Intervention("zero")))
    i0, o1 = mediators
    # a set of one unit is that unit's single effect
    single = runner.single_units(i0, torch.tensor([3]))
    torch.testing.assert_close(runner.joint([{i0: torch.tensor([3])}]), single)
    # NIE-all = the joint patch; NIE-sum = per-example sum of single effects
    unit_set = {i0: torch.tensor([1, 2]), o1: torch.tensor([0])}
    both = nie_all_vs_sum(runner, unit_set)
    joint = runner.joint([unit_set])[0]
    assert both["nie_all"] == pytest.approx(float(ratio_effect(joint).mean()), rel=1e-6)
    singles = torch.cat(
        [runner.single_units(i0, torch.tensor([1, 2])), runner.single_units(o1, torch.tensor([0]))]
    )
    assert both["nie_sum"] == pytest.approx(float(ratio_effect(singles).sum(0).mean()), rel=1e-6)
    # top-k: cumulative joint patches, one batched run
    ranking = [(i0, 5), (o1, 7), (i0, 2)]
    curve = top_k_joint(runner, ranking, 3)
    for i in range(3):
        chosen: dict = {}
        for m, u in ranking[: i + 1]:
            chosen.setdefault(m, []).append(u)
        expected = ratio_effect(runner.joint([{m: torch.tensor(u) for m, u in chosen.items()}])[0]).mean()
        assert curve[i] == pytest.approx(float(expected), rel=1e-5, abs=1e-7)
    # greedy: the first pick is the best single unit among the candidates
    candidates = [(o1, u) for u in range(8)]
    picks = greedy(runner, candidates, 2)
    singles = ratio_effect(runner.single_units(o1, torch.arange(8))).mean(1)
    assert picks[0][0] == (o1, int(singles.argmax()))
    assert picks[0][1] == pytest.approx(float(singles.max()), rel=1e-5)
    assert picks[1][0] != picks[0][0]


def test_te_nde_nie_identities_on_the_last_residual_stream() -> None:
    """Patching the whole last-layer output at every position carries the entire effect: NIE-all = TE
    (with counterfactual values) and NDE-all = 0 (holding it at the clean values)."""
    model, tok = tiny("tiny-gpt2", "causal-lm")
    base, cf = lm_batches(tok)
    resid = Mediator("resid", 1)
    setup = MediationSetup(model, TokenOddsRatio(), [resid], "all")
    clean, m_null = setup.capture(base)
    cf_values, m_cf = setup.capture(cf)
    te = total_effect(m_null, m_cf)
    assert abs(te) > 1e-4
    every = {resid: torch.arange(setup.n_units(resid))}
    nie_runner = ExactRunner(
        setup, base, setup.targets(clean, Intervention("counterfactual"), counterfactual=cf_values)
    )
    assert float(ratio_effect(nie_runner.joint([every])[0]).mean()) == pytest.approx(te, rel=1e-4)
    nde_runner = ExactRunner(setup, cf, clean, baseline=m_null)
    torch.testing.assert_close(nde_runner.joint([every])[0], torch.zeros(2), atol=1e-5, rtol=0)
    # per-unit NDE equals the runner on the counterfactual input with clean targets
    nde = direct_effects(setup, base, cf).nie()[resid.key]
    torch.testing.assert_close(nde, ratio_effect(nde_runner.single_units(resid)).mean(1))
