"""Row-aware exact patching against independent full forwards: every site, joint patches, no noise floor."""

from __future__ import annotations

import pytest
import torch

from debiaslit.backbones import ComponentMap
from debiaslit.cma.effects import ClassProbability
from debiaslit.cma.exact import ExactRunner
from debiaslit.cma.mediators import Mediator, mediators_for
from debiaslit.cma.setup import MediationSetup
from tests.unit.cma.helpers import naive_deltas, naive_joint, nli_batch, tiny

ALL = ["Q", "K", "V", "AO", "I", "O", "resid", "head", "pattern"]


def _shifted_targets(clean: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
    """A shifted mean for every site (patterns: rows made uniform over the keys), so every unit moves."""
    out = {k: v.mean((0, 1), keepdim=True).expand_as(v) + 0.5 for k, v in clean.items()}
    for key in out:
        if key.startswith("pattern/"):
            out[key] = torch.full_like(clean[key], 1 / length)
    return out


@pytest.fixture(scope="module")
def bert64():
    model, tok = tiny("tiny-bert", "sequence-classification")
    return model.double(), nli_batch(tok)


@pytest.mark.parametrize("position", ["last", 2])
def test_every_component_at_every_layer_equals_full_forwards(bert64, position) -> None:
    """`last` differs per example (padding); at the last layer only K and V can reach [CLS] from there."""
    model, batch = bert64
    measure = ClassProbability(0)
    setup = MediationSetup(model, measure, mediators_for(ComponentMap.for_model(model), ALL), position)
    clean, _ = setup.capture(batch)
    targets = _shifted_targets(clean, batch["input_ids"].shape[1])
    runner = ExactRunner(setup, batch, targets)
    assert runner.encoder is not None and runner.encoder.readout is not None  # the pooler reads [CLS] only
    positions = setup.positions(batch)
    last = setup.cmap.num_layers - 1
    for mediator in setup.mediators:
        units = [0, 1, setup.n_units(mediator) - 1]
        exact = runner.single_units(mediator, torch.tensor(units))
        naive = naive_deltas(model, measure, batch, mediator, positions, targets[mediator.key], units)
        torch.testing.assert_close(exact, naive, rtol=1e-9, atol=1e-15, msg=mediator.key)
        if mediator.layer == last and mediator.component not in ("K", "V"):  # [CLS] is not patched
            assert bool((exact == 0).all()), mediator.key  # no noise floor: exactly 0
        else:
            assert float(exact.abs().max()) > 1e-12, mediator.key


@pytest.mark.parametrize(
    "sites",
    [
        (("Q", 0, [3, 5]), ("I", 1, [2])),
        (("K", 0, [1]), ("O", 1, [4, 7])),
        (("I", 0, [1]), ("head", 0, [2])),  # same layer, later stage below an earlier one
        (("pattern", 0, [1]), ("V", 1, [0, 9])),
    ],
)
def test_joint_patch_in_two_layers_equals_independent_joint_patch(bert64, sites) -> None:
    model, batch = bert64
    measure = ClassProbability(0)
    mediators = [Mediator(c, layer) for c, layer, _ in sites]
    setup = MediationSetup(model, measure, mediators, "cls")
    clean, _ = setup.capture(batch)
    targets = _shifted_targets(clean, batch["input_ids"].shape[1])
    runner = ExactRunner(setup, batch, targets)
    unit_set = {m: torch.tensor(u) for m, (_, _, u) in zip(mediators, sites, strict=True)}
    exact = runner.joint([unit_set])[0]
    patches = {m: (u, targets[m.key]) for m, (_, _, u) in zip(mediators, sites, strict=True)}
    naive = naive_joint(model, measure, batch, patches, setup.positions(batch))
    torch.testing.assert_close(exact, naive, rtol=1e-9, atol=1e-15)
    assert float(naive.abs().max()) > 1e-12


def test_units_patched_to_their_own_value_have_exactly_zero_effect() -> None:
    """The unpatched variant runs in the same chunk, so an identity patch gives 0, not 2^-24 (float32)."""
    model, tok = tiny("tiny-bert", "sequence-classification")
    batch = nli_batch(tok)
    mediators = mediators_for(ComponentMap.for_model(model), ALL)
    setup = MediationSetup(model, ClassProbability(0), mediators, "cls")
    clean, _ = setup.capture(batch)
    for row_aware in (True, False):
        runner = ExactRunner(setup, batch, clean, row_aware=row_aware)
        for mediator in setup.mediators:
            assert bool((runner.single_units(mediator) == 0).all()), (row_aware, mediator.key)
