"""The mask mechanism on real (tiny) transformers models: forward = hand-masked weights, frozen W,
initial sparsity, CMA-restricted rows and clear configuration errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.neurons import AllUnits, TopCMAUnits, select_units
from debiaslit.errors import ConfigError, DataFormatError
from debiaslit.gates import ConstantInit, L1Sigmoid, Lagrangian, SigmoidThreshold, Threshold, UniformInit
from debiaslit.methods.masks import MaskMethod, attach_masks, remove_masks

IDS = torch.tensor([[5, 17, 23, 42, 8, 9, 11], [7, 30, 2, 19, 44, 3, 6]])


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


def _hand_masked(masked_model, reference: torch.nn.Module) -> torch.nn.Module:
    """Copy of the unmasked ``reference`` with each mask multiplied into its weight by index assignment."""
    plain = copy.deepcopy(reference)
    for path, learned in masked_model.learned():
        mask = learned.hard_mask().float()
        weight = plain.get_submodule(path).weight.data
        n_out = weight.shape[0] if learned.layout == "linear" else weight.shape[1]
        rows = torch.arange(n_out) if learned.rows is None else learned.rows
        if learned.layout == "linear":
            weight[rows, :] = weight[rows, :] * mask
        else:  # Conv1D: weight [in, out]
            weight[:, rows] = weight[:, rows] * mask.t()
    return plain


@pytest.mark.parametrize(
    ("backbone", "components", "granularity"),
    [("tiny-bert", None, "weight"), ("tiny-gpt2", ["Q", "V", "O"], "weight"), ("tiny-gpt2", None, "row")],
)
def test_masked_forward_equals_hand_multiplied_weights(backbone: str, components, granularity: str) -> None:
    model, _ = load_backbone(backbone)
    reference = copy.deepcopy(model)
    units = AllUnits(components).resolve(ComponentMap.for_model(model))
    masked = attach_masks(model, units, Threshold(0.01), UniformInit(0.3), granularity=granularity)
    pruned = masked.sparsity()["global"]
    assert 0.1 < pruned < 0.5  # the masks really remove weights
    torch.testing.assert_close(_logits(model), _logits(_hand_masked(masked, reference)), rtol=0, atol=1e-6)
    assert not torch.allclose(_logits(model), _logits(reference), atol=1e-4)
    remove_masks(model)  # the original weights come back exactly
    restored, original = model.state_dict(), reference.state_dict()
    assert restored.keys() == original.keys()
    for name, value in original.items():
        assert torch.equal(restored[name], value), name


@pytest.mark.parametrize("target", [0.05, 0.2])
def test_initial_sparsity_matches_the_target(target: float) -> None:
    module = MaskMethod(backbone="tiny-bert", init=UniformInit(sparsity=target))
    assert module.masked.sparsity()["global"] == pytest.approx(target, abs=0.01)
    scores = torch.cat([m.scores.flatten() for _, m in module.masked.learned()])
    low = 0.01 - target * 0.6  # Zhao: U(τ − π0·w, τ + (1 − π0)·w)
    assert scores.min() >= low and scores.max() <= low + 0.6


def test_training_step_changes_scores_and_never_the_frozen_weights() -> None:
    module = MaskMethod(backbone="tiny-bert", dropout=0.0)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(".scores") for n in trainable)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=0.05)
    batch = {"input_ids": IDS, "labels": torch.tensor([0, 2])}
    module.train()
    module.training_loss(module(batch), batch).backward()
    optimizer.step()
    for name, param in module.named_parameters():
        if name in trainable:
            assert not torch.equal(param, before[name]), name
        else:
            assert torch.equal(param, before[name]) and param.grad is None, name


def _neurons_csv(path: Path, rows: list[tuple]) -> Path:
    lines = ["component,layer,index,effect,estimator,n_examples"]
    lines += [f"{c},{layer},{i},{e},{est},100" for c, layer, i, e, est in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cma_selection_only_creates_scores_for_the_selected_rows(tmp_path: Path) -> None:
    csv_path = _neurons_csv(
        tmp_path / "neurons.csv",
        [("Q", 0, 3, 0.9, "exact"), ("K", 1, 5, -0.8, "exact"), ("I", 1, 7, 0.5, "exact"),
         ("V", 0, 1, 0.01, "exact"), ("resid", 0, 2, 5.0, "exact")],
    )  # fmt: skip
    # 4 maskable units ranked by effect, 75 % -> Q0:3, I1:7, V0:1; K1:5 (negative effect) is dropped
    assert {k: v.tolist() for k, v in select_units(csv_path, 75, ["Q", "K", "V", "I"], [0, 1]).items()} == {
        ("Q", 0): [3],
        ("I", 1): [7],
        ("V", 0): [1],
    }
    module = MaskMethod(
        backbone="tiny-gpt2",
        units=TopCMAUnits(str(csv_path), top_percent=75, components=["Q", "K", "V", "I"]),
        init=UniformInit(sparsity=0.5),
    )
    shapes = {path: (m.scores.shape, m.rows.tolist()) for path, m in module.masked.learned()}
    # GPT-2 c_attn is [Q | K | V] with hidden 32: V unit 1 is column 65 of the fused Conv1D
    assert shapes == {
        "transformer.h.0.attn.c_attn": (torch.Size([2, 32]), [3, 65]),
        "transformer.h.1.mlp.c_fc": (torch.Size([1, 32]), [7]),
    }
    reference, _ = load_backbone("tiny-gpt2", seed=torch.initial_seed())  # the module's weights
    torch.testing.assert_close(
        _logits(module.model), _logits(_hand_masked(module.masked, reference)), rtol=0, atol=1e-6
    )
    q_rows = module.masked.hard_masks()["transformer.h.0.attn.c_attn"][0]  # row of Q unit 3
    assert module.masked.sparsity()["Q/layer_0"] == pytest.approx(float((~q_rows).sum()) / (32 * 32))


def test_cma_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("component,layer,index,effect\nQ,0,1,0.3\n")
    with pytest.raises(DataFormatError, match="missing columns"):
        select_units(bad, 10, ["Q"], [0])
    two = _neurons_csv(tmp_path / "two.csv", [("Q", 0, 1, 0.2, "exact"), ("Q", 0, 2, 0.1, "attribution")])
    with pytest.raises(ConfigError, match=r"units\.init_args\.estimator"):
        select_units(two, 10, ["Q"], [0])
    assert select_units(two, 100, ["Q"], [0], estimator="attribution")[("Q", 0)].tolist() == [2]
    malformed = _neurons_csv(tmp_path / "m.csv", [("Q", "x", 1, 0.2, "exact")])
    with pytest.raises(DataFormatError, match="line 2"):
        select_units(malformed, 10, ["Q"], [0])


UNITS, BIN = "model.init_args.units", "model.init_args.binarizer"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": AllUnits(["Q", "X"])}, rf"{UNITS}\.init_args\.components: unknown component 'X'"),
        ({"units": AllUnits(["resid"])}, "no weight site"),
        ({"units": AllUnits([])}, rf"{UNITS}\.init_args\.components is empty"),
        ({"init": UniformInit(1.0)}, r"model\.init_args\.init\.init_args\.sparsity must lie in \[0, 1\)"),
        ({"init": UniformInit(-0.1)}, r"init\.init_args\.sparsity must lie in \[0, 1\)"),
        ({"units": AllUnits(layers=[0, 2])}, rf"{UNITS}\.init_args\.layers: layer 2 out of range .* 0..1"),
        ({"units": AllUnits(granularity="head")}, rf"{UNITS}\.init_args\.granularity must be one of"),
        ({"penalty": Lagrangian(1.0)}, r"penalty\.init_args\.target_sparsity must lie in \[0, 1\)"),
        ({"trainable": "everything"}, r"model\.init_args\.trainable must be one of"),
        ({"binarizer": Threshold(schedule="linear")}, rf"{BIN}\.init_args\.schedule must be one of"),
        (
            {"binarizer": SigmoidThreshold(threshold_initial=0.0, schedule="cubic")},
            "UniformInit centres the scores .* use ConstantInit",
        ),
        ({"init": ConstantInit(0.0)}, r"prunes 100 % of the masked weights at step 0"),
    ],
)
def test_bad_configuration_gives_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MaskMethod(backbone="tiny-bert", **kwargs)


def test_training_loss_is_the_shared_loss_plus_the_ramped_l1_penalty() -> None:
    from debiaslit.losses import Reweight

    module = MaskMethod(
        backbone="tiny-bert", loss=Reweight(),
        binarizer=SigmoidThreshold(threshold=0.1, threshold_initial=0.02, schedule="cubic"),
        penalty=L1Sigmoid(lambda_=3.0),
    )  # fmt: skip
    module._ramp = 0.25  # what on_train_batch_start sets from the global step
    bias = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    batch = {"input_ids": IDS, "labels": torch.tensor([0, 1]), "bias_probs": bias}
    logits = module(batch)
    weights = 1 - bias[[0, 1], [0, 1]]  # Reweight: w = 1 - p_b(gold)
    ce = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    means = [torch.sigmoid(m.scores).mean() for _, m in module.masked.learned()]
    expected = (weights * ce).sum() / weights.sum() + 3.0 * 0.25 * torch.stack(means).mean()
    torch.testing.assert_close(module.training_loss(logits, batch), expected)


def test_lagrangian_penalty_value_and_ascent_gradient_of_the_multipliers() -> None:
    module = MaskMethod(backbone="tiny-bert", penalty=Lagrangian(target_sparsity=0.5), init=UniformInit(0.2))
    module._progress = 1.0
    multipliers = module.penalty.multipliers
    with torch.no_grad():
        multipliers.copy_(torch.tensor([0.3, 0.2]))
    # expected sparsity by hand: fraction of scores at or below τ = 0.01 over every masked weight
    scores = torch.cat([m.scores.detach().flatten() for _, m in module.masked.learned()])
    gap = float((scores <= 0.01).float().mean()) - 0.5
    penalty = module.sparsity_penalty()
    assert penalty.item() == pytest.approx(0.3 * gap + 0.2 * gap**2, abs=1e-6)
    penalty.backward()
    # gradient ascent on the multipliers: their gradient is the negated derivative
    torch.testing.assert_close(multipliers.grad, torch.tensor([-gap, -(gap**2)]))
    # the scores get the straight-through gradient of λ1·gap + λ2·gap²: d/dS of −mean(M) · (λ1 + 2 λ2 gap)
    first = next(m for _, m in module.masked.learned())
    expected = -(0.3 + 2 * 0.2 * gap) / scores.numel()
    torch.testing.assert_close(first.scores.grad, torch.full_like(first.scores, expected))


def test_loading_a_state_dict_restores_scores_and_the_threshold_in_use() -> None:
    settings = {"binarizer": SigmoidThreshold(threshold=0.3), "init": UniformInit(0.2)}
    trained = MaskMethod(backbone="tiny-bert", **settings)
    trained.masked.set_value(0.45)  # mid-schedule
    fresh = MaskMethod(backbone="tiny-bert", **settings)
    fresh.load_state_dict(trained.state_dict())
    assert all(m.current == 0.45 for _, m in fresh.masked.learned())
    first, second = trained.masked.hard_masks(), fresh.masked.hard_masks()
    assert all(torch.equal(first[p], second[p]) for p in first)


def test_trainer_ramps_the_l1_penalty_as_lambda_tau_t_over_tau_f(tmp_path: Path) -> None:
    """A real Trainer at lr 0 (scores fixed): the logged penalty at step t is λ·τ_t/τ_f·mean σ(S)."""
    import lightning.pytorch as pl

    tau_0, tau_f, lam, steps = 0.02, 0.1, 3.0, 4
    module = MaskMethod(
        backbone="tiny-bert", lr=0.0,
        binarizer=SigmoidThreshold(threshold=tau_f, threshold_initial=tau_0, schedule="cubic"),
        penalty=L1Sigmoid(lambda_=lam),
    )  # fmt: skip
    keep = torch.stack([torch.sigmoid(m.scores.detach()).mean() for _, m in module.masked.learned()]).mean()
    logged = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            logged.append(float(trainer.callback_metrics["mask/penalty"]))

    pairs = [
        {"input_ids": ids, "labels": label} for ids, label in zip(IDS, torch.tensor([0, 2]), strict=True)
    ]
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[Record()], accelerator="cpu",
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(pairs * steps, batch_size=2))
    taus = [tau_f + (tau_0 - tau_f) * (1 - t / steps) ** 3 for t in range(steps)]
    assert logged == pytest.approx([lam * tau / tau_f * float(keep) for tau in taus], rel=1e-5)
