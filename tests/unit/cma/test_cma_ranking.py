"""Per-site ranking quality against hand values; hybrid verification that can see the screen's misses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from debiaslit.backbones import ComponentMap
from debiaslit.cma.effects import ClassProbability
from debiaslit.cma.mediators import mediators_for
from debiaslit.cma.neurons import select_units, write_neurons
from debiaslit.cma.probe import Probe
from debiaslit.cma.ranking import NO_EFFECT, site_quality, verification_units, verified_quality
from debiaslit.cma.run import analyse
from debiaslit.cma.setup import Intervention, MediationSetup
from tests.unit.cma.helpers import PAIRS, tiny


def test_site_quality_by_hand() -> None:
    exact = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    screen = torch.tensor([0.0, 4.0, 3.0, 2.0, 1.0, 5.0])  # the best unit ranked last
    row = site_quality(exact, screen, floor=0.0, k_values=(1,), percent=50)
    assert row["status"] == "ranked"
    assert row["recall_k1_in_top_k"] == 0 and row["recall_k1_in_top_3k"] == 0  # top-3 = units 5, 1, 2
    assert row["recall_p50_in_top_k"] == pytest.approx(2 / 3)  # exact top 3 = {0, 1, 2}; screen's {5, 1, 2}
    assert row["max_missed_effect"] == 5.0 and row["max_missed_vs_top"] == 1.0
    assert site_quality(torch.zeros(6), screen, floor=0.0)["status"] == NO_EFFECT


def test_random_sample_catches_a_unit_the_screen_ranked_too_low() -> None:
    n = 40
    exact_all = torch.linspace(1, 0, n)  # unit 0 is the best
    screen = exact_all.clone()
    screen[0] = -1.0  # ... and the screen ranks it last
    generator = torch.Generator().manual_seed(0)
    top, sample = verification_units(screen, 6, n - 6, generator)  # sample every other unit
    assert top.tolist() == [1, 2, 3, 4, 5, 6] and 0 in sample.tolist()
    units = torch.cat([top, sample]).sort().values
    row = verified_quality(screen, top, sample, exact_all[units], floor=0.0)
    # k = 2: exact top-2 = {0, 1}; the screen's top-2 = {1, 2}, its top-6 misses unit 0 too
    assert row["k"] == 2 and row["recall_k_in_top_k"] == 0.5 and row["recall_k_in_top_3k"] == 0.5
    assert row["max_random_effect"] == 1.0
    assert row["estimated_missed"] == pytest.approx(1.0)  # one sampled unit beats the 2nd best verified


@pytest.fixture(scope="module")
def analysed():
    model, tok = tiny("tiny-bert", "sequence-classification")
    items = [dict(tok(p, h)) for p, h in PAIRS]
    probe = Probe(items, tok.pad_token_id, reference=[dict(tok(h, p)) for p, h in PAIRS])
    setup = MediationSetup(
        model, ClassProbability(0), mediators_for(ComponentMap.for_model(model), ["AO", "I"])
    )
    intervention = Intervention("reference")
    exact = analyse(setup, probe, intervention, "exact")
    hybrid = analyse(setup, probe, intervention, "hybrid", verify_top_k=6, verify_random=64)
    return exact, hybrid


def test_hybrid_with_every_unit_verified_equals_full_ground_truth(analysed) -> None:
    exact, hybrid = analysed
    truth, screen = exact.exact.nie(), hybrid.estimate.nie()
    for key, row in hybrid.sites.items():
        assert hybrid.verified[key].numel() == truth[key].numel()  # 6 + 64 covers every unit
        full = site_quality(truth[key], screen[key], floor=0.0, k_values=(2,))
        assert row["spearman"] == pytest.approx(full["spearman"], abs=1e-6)
        assert row["recall_k_in_top_k"] == full["recall_k2_in_top_k"]
        assert row["recall_k_in_top_3k"] == full["recall_k2_in_top_3k"]
        effects = hybrid.effects()[key]
        assert bool(effects.exact.all())
        torch.testing.assert_close(effects.nie, truth[key], rtol=1e-5, atol=1e-9)
    assert set(exact.sites) == set(hybrid.sites) and all(
        r["status"] == "ranked" for r in exact.sites.values()
    )


def test_neurons_csv_ranks_by_the_exact_value_where_one_exists(analysed, tmp_path: Path) -> None:
    _, hybrid = analysed
    key = "I/layer_1"
    effects = hybrid.effects()[key]
    rows = [
        dict(component="I", layer=1, index=u, effect=float(effects.nie[u]), log_effect=0.0,
             estimator="exact" if u < 3 else "attribution", n_examples=3, exact=int(u < 3),
             estimate=float(effects.estimate[u]))
        for u in range(effects.nie.numel())
    ]  # fmt: skip
    rows[1]["effect"] = 10.0  # an exact value above every estimate wins, whatever its estimate
    path = write_neurons(tmp_path / "neurons.csv", rows)
    chosen = select_units(path, 100 / effects.nie.numel(), ["I"], [1])  # the top 1 unit, no estimator needed
    assert chosen[("I", 1)].tolist() == [1]
    assert not math.isnan(hybrid.sites[key]["spearman"])
