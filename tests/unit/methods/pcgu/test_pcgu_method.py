"""PCGUMethod training steps on tiny BERT / GPT-2 with hand-made pairs (``pairs.py``).

The reference gradients are computed another way: one pair at a time, each sentence unpadded, with
``torch.autograd.grad``; the selection is then brute-forced (``brute.py``) and compared with the
partitions the step selected and the weights it changed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from debiaslit.backbones.components import ComponentMap
from debiaslit.backbones.lm_scoring import word_scores
from debiaslit.cma.neurons import AllUnits, TopCMAUnits, write_neurons
from debiaslit.errors import ConfigError
from debiaslit.methods import PCGUMethod
from debiaslit.methods.pcgu import OverCorrectionGuard
from tests.unit.methods.pcgu.brute import (
    brute_force_selection,
    changed_partitions,
    partition_values,
    selected_keys,
)
from tests.unit.methods.pcgu.pairs import TASKS, first_batch, pair_loader

COMPONENTS = ["Q", "V", "O"]


def _method(backbone: str, **kwargs) -> PCGUMethod:
    pl.seed_everything(0)
    kwargs.setdefault("units", AllUnits(components=COMPONENTS))
    return PCGUMethod(backbone=backbone, task=TASKS[backbone], **kwargs)


def _fit(method: PCGUMethod, loader, steps: int, callbacks=(), ckpt_path=None, **trainer) -> pl.Trainer:
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    options = {"max_steps": steps, "accelerator": "cpu", "enable_model_summary": False, **quiet, **trainer}
    trainer = pl.Trainer(callbacks=list(callbacks), **options)
    trainer.fit(method, loader, ckpt_path=ckpt_path)
    return trainer


def _side_scores(model, batch, backbone: str, mask_id, role: str) -> list[torch.Tensor]:
    """Score of the advantaged (or disadvantaged) sentence of each pair, one unpadded pair at a time."""
    out = []
    for b, male_adv in enumerate(batch["male_advantaged"].tolist()):
        gender = ("male" if male_adv else "female") if role == "adv" else ("female" if male_adv else "male")
        n = int(batch[f"attention_mask_{gender}"][b].sum())
        ids = batch[f"input_ids_{gender}"][b : b + 1, :n]
        span = [batch[f"word_{e}_{gender}"][b : b + 1] for e in ("start", "end")]
        out.append(word_scores(model, TASKS[backbone], ids, torch.ones_like(ids), *span, "log_prob", mask_id))
    return out


def _reference_gradients(model, batch, backbone: str, mask_id) -> tuple[dict, dict]:
    params = dict(model.named_parameters())
    grads = []
    for role in ("adv", "dis"):
        total = torch.stack(_side_scores(model, batch, backbone, mask_id, role)).mean()
        values = torch.autograd.grad(total, list(params.values()), allow_unused=True)
        grads.append(
            {
                n: torch.zeros_like(p) if g is None else g
                for (n, p), g in zip(params.items(), values, strict=True)
            }
        )
    return grads[0], grads[1]


@pytest.mark.parametrize("backbone", list(TASKS))
def test_one_step_updates_exactly_the_brute_force_selection(backbone: str) -> None:
    lr, k = 0.1, 25
    method = _method(backbone, lr=lr, top_k=k)
    reference = copy.deepcopy(method.model).requires_grad_(True)
    before = {n: p.detach().clone() for n, p in reference.named_parameters()}
    batch = first_batch(backbone)
    g_adv, g_dis = _reference_gradients(reference, batch, backbone, method.mask_token_id)
    units = AllUnits(components=COMPONENTS).resolve(ComponentMap.for_model(reference))
    expected = brute_force_selection(reference, units, "rows", g_adv, g_dis, k)

    _fit(method, pair_loader(backbone, 4), steps=1)
    after = {n: p.detach() for n, p in method.model.named_parameters()}
    assert len(expected) == k
    assert selected_keys(method.groups, method.last_selection) == expected
    assert changed_partitions(reference, before, after, units, "rows") == expected
    # the change is plain SGD on the advantaged gradient: Δ = −lr · g_adv on the selected partitions
    delta = partition_values(reference, {n: after[n] - before[n] for n in before}, units, "rows", True)
    grad = partition_values(reference, g_adv, units, "rows", True)
    for key in expected:
        torch.testing.assert_close(delta[key], -lr * grad[key], rtol=1e-3, atol=1e-6, msg=str(key))


class _Snapshots(pl.Callback):
    """Weights, optimiser state and the selection masks after every step."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        state = trainer.optimizers[0].state
        params = module.candidates
        masks = {}
        for group, chosen in zip(module.groups, module.last_selection.per_group, strict=True):
            part = group.mask(chosen, params[group.param_name]).bool()
            masks[group.param_name] = masks.get(group.param_name, torch.zeros_like(part)) | part
        self.steps.append(
            {
                "weights": {n: p.detach().clone() for n, p in params.items()},
                "state": {
                    n: {k: v.clone() for k, v in state[p].items()} for n, p in params.items() if p in state
                },
                "masks": masks,
            }
        )


def test_unselected_partitions_keep_their_weights_and_adam_state() -> None:
    snaps = _Snapshots()
    method = _method("tiny-bert", lr=0.01, top_k=15, optimizer="Adam", optimizer_args={"weight_decay": 0.1})
    _fit(method, pair_loader("tiny-bert", 8), steps=2, callbacks=[snaps])
    first, second = snaps.steps
    touched = 0
    for name in second["weights"]:
        keep = ~second["masks"].get(name, torch.zeros_like(second["weights"][name], dtype=torch.bool))
        keep = keep.expand_as(second["weights"][name])
        assert torch.equal(second["weights"][name][keep], first["weights"][name][keep]), name
        for key, value in second["state"].get(name, {}).items():
            if value.shape == keep.shape and key in first["state"].get(name, {}):
                assert torch.equal(value[keep], first["state"][name][key][keep]), (name, key)
                touched += 1
        changed = second["weights"][name] != first["weights"][name]
        assert not (changed & keep).any()
    assert touched > 0  # Adam state existed for parameters selected at both steps


@pytest.mark.parametrize("direction", ["advantaged", "disadvantaged", "dynamic"])
def test_directions_move_the_scores_their_way(direction: str) -> None:
    backbone = "tiny-gpt2"
    # small lr: first order, where dynamic descends Σ|gap| exactly (its update is that sum's gradient)
    method = _method(backbone, lr=1e-4, top_k=None, direction=direction)
    batch = first_batch(backbone)

    def scores() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            adv, dis = (
                torch.cat(_side_scores(method.model, batch, backbone, None, r)) for r in ("adv", "dis")
            )
        return adv, dis

    adv0, dis0 = scores()
    _fit(method, pair_loader(backbone, 4), steps=1)
    adv1, dis1 = scores()
    if direction == "advantaged":
        assert adv1.sum() < adv0.sum()
    elif direction == "disadvantaged":
        assert dis1.sum() > dis0.sum()
    else:
        assert (adv1 - dis1).abs().sum() < (adv0 - dis0).abs().sum()


def test_guard_stops_or_swaps_a_pair_type_once_its_running_gap_flips() -> None:
    types = torch.tensor([0, 1, 2, 1])
    for mode in ("stop", "swap"):
        guard = OverCorrectionGuard(mode, momentum=0.5)
        guard.update(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0]))  # type 2 unseen
        assert guard.initial_sign.tolist() == [1.0, 1.0, 0.0] and not guard.flipped.any()
        guard.update(torch.tensor([-1.0, -6.0, 0.0]), torch.tensor([1.0, 2.0, 0.0]))
        # running: type 0: 0.5·2 + 0.5·(−1) = 0.5 (still positive); type 1: 0.5·1 + 0.5·(−3) = −1 (flipped)
        assert guard.running.tolist() == [0.5, -1.0, 0.0]
        assert guard.flipped.tolist() == [False, True, False] and guard.flips.tolist() == [0, 1, 0]
        swap, weight = guard.roles(types)
        if mode == "stop":
            assert weight.tolist() == [1.0, 0.0, 1.0, 0.0] and not swap.any()
        else:
            assert swap.tolist() == [False, True, False, True] and weight.tolist() == [1.0] * 4
        guard.update(torch.tensor([0.0, 10.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))  # back above zero
        assert not guard.flipped.any() and guard.flipped_steps.tolist() == [0, 1, 0]


def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """Resume from the end-of-epoch last.ckpt, as a run does: weights, momentum, guard, counts."""
    # units None (every component): a UnitSelection object in hparams would not load with weights_only
    # outside the CLI (which saves it as a class_path dict)
    options = dict(lr=0.02, top_k=20, optimizer_args={"momentum": 0.9}, guard="swap", units=None)
    whole = _method("tiny-bert", **options)
    _fit(whole, pair_loader("tiny-bert", 8), steps=-1, max_epochs=2)
    half = _method("tiny-bert", **options)
    saver = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    _fit(
        half,
        pair_loader("tiny-bert", 8),
        steps=-1,
        max_epochs=1,
        callbacks=[saver],
        enable_checkpointing=True,
    )
    resumed = _method("tiny-bert", **options)
    _fit(resumed, pair_loader("tiny-bert", 8), steps=-1, max_epochs=2, ckpt_path=tmp_path / "last.ckpt")
    for key, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert int(whole.selection_counts.sum()) == 4 * 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "sequence-classification"}, "task must be one of"),
        ({"objective": "prob"}, "objective must be one of"),
        ({"direction": "both"}, "direction must be one of"),
        ({"zero_grad": "ignore"}, "zero_grad must be one of"),
        ({"top_k": 0}, "top_k must be a positive integer"),
        ({"direction": "dynamic", "guard": "stop"}, "needs a fixed direction"),
        ({"guard": "maybe"}, "guard must be one of"),
        ({"guard_momentum": 1.0}, "guard_momentum must lie in"),
        ({"optimizer": "Adamm"}, "is not a torch.optim optimiser class"),
        ({"optimizer_args": {"momentun": 0.9}}, "optimizer_args"),
        ({"aggregation": "cells"}, "aggregation must be one of"),
    ],
)
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PCGUMethod(backbone="tiny-bert", **{"task": "masked-lm", **options})


def test_a_batch_without_pairs_is_refused() -> None:
    method = _method("tiny-bert", top_k=5)
    loader = torch.utils.data.DataLoader([{"input_ids": torch.ones(3, dtype=torch.long)}] * 2, batch_size=2)
    with pytest.raises(ConfigError, match="trains on gendered pairs"):
        _fit(method, loader, steps=1)


def test_cma_guided_pcgu_only_updates_rows_of_the_top_cma_units(tmp_path: Path) -> None:
    """TopCMAUnits (the masks' reader and selection): only the rows producing the top units compete."""
    rows = [
        {"component": c, "layer": layer, "index": i, "effect": effect, "log_effect": 0.0,
         "estimator": "exact", "n_examples": 4}
        for c, layer, i, effect in [("O", 0, 3, 0.9), ("O", 0, 5, 0.8), ("I", 1, 7, 0.7), ("O", 1, 2, 0.01),
                                    ("I", 1, 8, 0.02), ("O", 0, 6, 0.03)]
    ]  # fmt: skip
    csv_path = write_neurons(tmp_path / "neurons.csv", rows)
    method = _method(
        "tiny-bert", lr=0.1, top_k=None, include_norms=False, units=TopCMAUnits(str(csv_path), 50.0)
    )
    assert {(g.name, tuple(g.units.tensor().tolist()) if g.units else None) for g in method.groups} == {
        ("O/layer_0", (3, 5)), ("O/layer_0/bias", None), ("I/layer_1", (7,)), ("I/layer_1/bias", None)
    }  # fmt: skip
    before = {n: p.detach().clone() for n, p in method.model.named_parameters()}
    _fit(method, pair_loader("tiny-bert", 4), steps=1)
    cmap = ComponentMap.for_model(method.model)
    for name, param in method.model.named_parameters():
        changed = (param.detach() != before[name]).nonzero()
        if name == f"{cmap.weight_site('O', 0).module_path}.weight":
            assert set(changed[:, 0].tolist()) == {3, 5}
        elif name == f"{cmap.weight_site('I', 1).module_path}.weight":
            assert set(changed[:, 0].tolist()) == {7}
        elif name.endswith(".bias") and changed.numel():
            assert name in (f"{cmap.weight_site(c, la).module_path}.bias" for c, la in (("O", 0), ("I", 1)))
        else:
            assert not changed.numel(), name
