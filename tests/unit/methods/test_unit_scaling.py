"""CMA-guided unit scaling: the hooked model equals a hand-edited one (weights changed so that the
same units come out scaled), and the method picks the top-NIE units of a neurons.csv."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning
import pytest
import torch

from debiaslit.cma.neurons import TopCMAUnits, write_neurons
from debiaslit.errors import ConfigError
from debiaslit.methods import ERM, UnitScaling
from debiaslit.methods.unit_scaling import scaled_units

UNITS = torch.tensor([1, 3, 4])
Fixture = tuple[torch.nn.Module, dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def model_and_batch() -> Fixture:
    torch.manual_seed(0)
    model = ERM(backbone="tiny-bert", dropout=0.0).model.eval()
    batch = {"input_ids": torch.randint(5, 50, (3, 6)), "attention_mask": torch.ones(3, 6, dtype=torch.long)}
    return model, batch


def hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return (*out.hidden_states, out.logits)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_scaling_intermediate_units_everywhere_equals_scaling_output_weight_columns(
    model_and_batch: Fixture, alpha: float
) -> None:
    model, batch = model_and_batch
    edited = copy.deepcopy(model)
    with torch.no_grad():  # O = W_o·I + b: scaling units of I is scaling those columns of W_o
        edited.bert.encoder.layer[0].output.dense.weight[:, UNITS] *= alpha
    with scaled_units(model, {("I", 0): UNITS}, alpha, position=None):
        hooked = hidden(model, batch)
    for a, b in zip(hooked, hidden(edited, batch), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(hidden(model, batch)[-1], hidden(copy.deepcopy(model), batch)[-1])  # removed


def test_scaling_query_units_at_cls_only_changes_the_cls_row(model_and_batch: Fixture) -> None:
    model, batch = model_and_batch
    edited = copy.deepcopy(model)
    query = edited.bert.encoder.layer[0].attention.self.query
    with torch.no_grad():  # Q = W_q·x + b: zeroing units of Q is zeroing those rows of W_q and b
        query.weight[UNITS] = 0.0
        query.bias[UNITS] = 0.0
    with scaled_units(model, {("Q", 0): UNITS}, 0.0, position=0):
        layer0 = hidden(model, batch)[1]
    # [CLS]'s query only changes [CLS]'s attention: its row is the edited model's, the others unchanged
    torch.testing.assert_close(layer0[:, 0], hidden(edited, batch)[1][:, 0])
    torch.testing.assert_close(layer0[:, 1:], hidden(model, batch)[1][:, 1:])
    assert not torch.allclose(layer0[:, 0], hidden(model, batch)[1][:, 0])


def test_module_hooks_the_top_nie_units_of_a_cma_result(model_and_batch: Fixture, tmp_path: Path) -> None:
    model, batch = model_and_batch
    ckpt = tmp_path / "erm.ckpt"
    erm = ERM(backbone="tiny-bert", dropout=0.0)
    erm.model.load_state_dict(model.state_dict())
    torch.save(
        {
            "state_dict": erm.state_dict(),
            "hyper_parameters": dict(erm.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    rows = [  # the top 2 of 37 * 2 I units by effect: (I, 1, 5) and (I, 0, 2)
        {"component": "I", "layer": layer, "index": i, "effect": 0.0, "estimator": "exact", "n_examples": 8}
        for layer in (0, 1)
        for i in range(37)
    ]
    rows[2]["effect"], rows[37 + 5]["effect"] = 0.5, 0.9
    csv = write_neurons(tmp_path / "neurons.csv", rows)
    units = TopCMAUnits(str(csv), top_percent=2 / 74 * 100, components=["I"])
    module = UnitScaling(units, alpha=0.25, backbone="tiny-bert", init_weights_from=str(ckpt)).eval()
    assert {k: v.tolist() for k, v in module.units.items()} == {("I", 0): [2], ("I", 1): [5]}
    with scaled_units(model, module.units, 0.25, position=0):
        expected = hidden(model, batch)[-1]
    with torch.no_grad():
        torch.testing.assert_close(module(batch), expected)
    with pytest.raises(ConfigError, match="alpha"):
        UnitScaling(units, alpha=-1.0)
    with pytest.raises(ConfigError, match="inference-time"):
        module.training_step({**batch, "labels": torch.zeros(3, dtype=torch.long)}, 0)
