"""The contract every method exported by ``debiaslit.methods`` passes (docs/architecture.md).

Per case, one real ``debiaslit fit`` (1 process, a few steps on tiny BERT) is shared by the checks:
(a) it trains, (b) ``<Class>.load_from_checkpoint(last.ckpt)`` gives the final weights and logits,
(c) ``debiaslit validate --ckpt_path`` reproduces the fit's last results table, (d) ``debiaslit predict``
writes the loaded model's probabilities per evaluation set, (e) 2 DDP processes at half the per-process
batch give the same weights and results. A class without a case needs an entry in ``EXEMPT``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import debiaslit.methods
from debiaslit.methods import (
    ERM,
    BackboneModule,
    ClassifierModule,
    LMAnalysis,
    MaskMethod,
    MLMHeadFit,
    PCGUMethod,
    SAEEraserMethod,
    SAETrainer,
    UnitScaling,
)
from debiaslit.methods.masks import load_masks
from tests.conftest import REPO_ROOT, debiaslit_command, run_debiaslit, run_together, shared_path
from tests.integration.final_state import FILE as FINAL_STATE

CONFIGS = REPO_ROOT / "tests" / "configs"
TINY_ERM = str(CONFIGS / "tiny_erm.yaml")
BATCH = 8  # 64 training pairs: 8 optimiser steps in the one epoch
STEPS = 8
FIT = ("--trainer.max_epochs=1", "--trainer.callbacks+=tests.integration.final_state.SaveFinalState")
#: 1 vs 2 processes: float reduction order only (max |Δ| seen 7e-7; per-rank reweighting moves 5e-3)
DDP_TOLERANCE = {"rtol": 1e-5, "atol": 2e-6}
PROBS = ("p_entailment", "p_neutral", "p_contradiction")


def _masks_equal(single: Path, ddp: Path, outputs: dict[str, str]) -> None:
    """Same hard masks on 2 processes (close scores could still fall on both sides of the threshold)."""
    a, b = load_masks(single / "masks.safetensors"), load_masks(ddp / "masks.safetensors")
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[p].mask, b[p].mask) for p in a)


def _bias_model_fitted_once(single: Path, ddp: Path, outputs: dict[str, str]) -> None:
    """Both runs fit the cross-fitted bias model; under DDP rank 0 fits it and rank 1 reads its cache."""
    for run in ("single", "ddp"):
        assert "bias model (HansFeaturesBias, 3 fold(s)) on train" in outputs[run]
    assert len(list((ddp.parent / "bias_cache").glob("*.json"))) == 1


@dataclass(frozen=True)
class Case:
    """A registered method and the tiny configs that make it a runnable experiment."""

    method: type[pl.LightningModule]
    configs: tuple[str, ...]
    #: checks of what only this case produces, on (single run dir, DDP run dir, {run: output})
    ddp_check: Callable[[Path, Path, dict[str, str]], None] | None = None
    #: further 2-process fits (run name: extra options) for this case's own tests
    more_ddp_fits: dict[str, tuple[str, ...]] = field(default_factory=dict)


CASES = {
    "erm": Case(ERM, (TINY_ERM,)),
    # bias-aware loss: reweighting by a hand-crafted-feature bias model, normalised by the global batch
    "erm_reweight": Case(
        ERM,
        (TINY_ERM, str(CONFIGS / "tiny_reweight.yaml")),
        _bias_model_fitted_once,
        {"ddp_local": ("--model.init_args.loss.init_args.norm=batch",)},
    ),
    "mask": Case(MaskMethod, (str(CONFIGS / "tiny_mask.yaml"),), _masks_equal),
}

#: Exported LightningModules without a case, and why.
EXEMPT = {
    BackboneModule: "base class of the methods, not a method",
    ClassifierModule: "base class of the classifier methods, not a method",
    LMAnalysis: "analysis only (nothing to train or predict): validate is checked by "
    "test_lm_analysis_validates_on_tiny_gpt2",
    SAEEraserMethod: "no class probabilities per evaluation set to predict (its evaluation is the "
    "erasure table); DDP ≡ 1 process: tests/integration/test_sae_eraser_run.py; checkpoint round trip "
    "and validate from it: tests/unit/methods/test_sae_eraser_method.py",
    SAETrainer: "trains SAEs, not a classifier (no results table, nothing to predict): its logged fidelity, "
    "checkpoint round trip and DDP equivalence are checked in tests/integration/test_sae_trainer.py",
    MLMHeadFit: "fits the offline MLM head (no evaluator of its own): checked by tests/unit/methods/"
    "test_mlm_head.py",
    PCGUMethod: "an LM method on gendered pairs (the cases here are NLI classifiers: probabilities per "
    "class, NLI results tables): its fit, 2-process DDP ≡ 1 process (same partitions every step) and "
    "resume ≡ uninterrupted are checked by tests/integration/test_pcgu_ddp.py and tests/unit/methods/pcgu",
    UnitScaling: "inference only (nothing to fit): hooks vs hand-edited weights in "
    "tests/unit/methods/test_unit_scaling.py, validate on 2 processes vs 1 in test_ddp_new_debias.py",
}


def test_every_exported_method_has_a_case_or_an_exemption() -> None:
    exported = {
        obj
        for name in debiaslit.methods.__all__
        if isinstance(obj := getattr(debiaslit.methods, name), type) and issubclass(obj, pl.LightningModule)
    }
    cased = {case.method for case in CASES.values()}
    missing = sorted(cls.__name__ for cls in exported - cased - set(EXEMPT))
    assert not missing, f"add a case to CASES (or a reasoned entry to EXEMPT) for {missing}"
    assert not cased & set(EXEMPT), "a class is both tested and exempt"
    assert cased | set(EXEMPT) <= exported, "CASES / EXEMPT name a class debiaslit.methods no longer exports"


@dataclass
class Runs:
    """The runs of one case in its working directory: ``single`` (1-process fit), ``ddp``, ``validate``
    and ``predict`` (from the single fit's last.ckpt) and the case's further DDP fits."""

    case: Case
    workdir: Path
    outputs: dict[str, str]

    def log_dir(self, name: str = "single") -> Path:
        return self.workdir / "logs" / name / "version_0"

    @property
    def ckpt(self) -> Path:
        return self.workdir / "checkpoints" / "single" / "version_0" / "last.ckpt"

    def final_state(self, name: str = "single") -> dict:
        return torch.load(self.log_dir(name) / FINAL_STATE, map_location="cpu", weights_only=True)

    def command(self, subcommand: str, name: str, devices: int = 1, *extra: str) -> list[str]:
        if subcommand == "fit":
            extra = (f"--data.init_args.batch_size={BATCH // devices}", *FIT, *extra)
        return debiaslit_command(subcommand, list(self.case.configs), name, devices, *extra)

    def run(self, commands: dict[str, list[str]]) -> None:
        self.outputs.update(zip(commands, run_together(self.workdir, list(commands.values())), strict=True))


def _last_results(log_dir: Path) -> tuple[str, str]:
    csv_path = sorted((log_dir / "results").glob("val_epoch*.csv"))[-1]
    return csv_path.read_text(), csv_path.with_suffix(".md").read_text()


@pytest.fixture(scope="module", params=list(CASES))
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every run of a case, shared by its tests; independent runs go at the same time (start-up bound)."""
    runs = Runs(CASES[request.param], tmp_path_factory.mktemp(request.param), {})
    with pytest.MonkeyPatch.context() as mp:  # datasets' caches out of ~/.cache (module scope: no fixture)
        mp.setenv("HF_DATASETS_CACHE", str(runs.workdir / "hf_datasets"))
        runs.run({"single": runs.command("fit", "single"), "ddp": runs.command("fit", "ddp", 2)})
        from_ckpt = f"--ckpt_path={runs.ckpt}"
        more = {name: runs.command("fit", name, 2, *extra) for name, extra in runs.case.more_ddp_fits.items()}
        runs.run(
            {
                "validate": runs.command("validate", "validate", 1, from_ckpt),
                "predict": runs.command("predict", "predict", 1, from_ckpt),
                **more,
            }
        )
    return runs


def _load(runs: Runs, path: Path) -> pl.LightningModule:
    return runs.case.method.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()


@pytest.mark.slow
def test_fit_trains_a_few_steps(runs: Runs) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    saved = torch.load(runs.ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] == STEPS
    events = EventAccumulator(str(runs.log_dir()), size_guidance={"scalars": 0})
    events.Reload()
    losses = [s.value for s in events.Scalars("train/loss")]
    assert len(losses) == STEPS and all(v == v and abs(v) < 1e3 for v in losses)


@pytest.mark.slow
def test_checkpoint_round_trip_gives_the_final_weights_and_logits(runs: Runs) -> None:
    final = runs.final_state()
    model = _load(runs, runs.ckpt)
    assert type(model) is runs.case.method
    state = model.state_dict()
    assert state.keys() == final["state_dict"].keys()
    for key, value in final["state_dict"].items():
        assert torch.equal(state[key], value), key
    with torch.no_grad():
        for name, batch in final["batches"].items():
            torch.testing.assert_close(model(batch), final["logits"][name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_validate_from_the_checkpoint_reproduces_the_fit_results(runs: Runs) -> None:
    assert _last_results(runs.log_dir("validate")) == _last_results(runs.log_dir())


@pytest.mark.slow
def test_predict_writes_the_loaded_models_probabilities(runs: Runs) -> None:
    final = runs.final_state()
    model = _load(runs, runs.ckpt)
    folder = runs.log_dir("predict") / "predictions"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.csv" for name in final["batches"])
    for name, batch in final["batches"].items():
        with (folder / f"{name}.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == final["sizes"][name]
        with torch.no_grad():
            probs = model(batch).softmax(-1)
        for i, expected in zip(batch["index"].tolist(), probs.tolist(), strict=True):
            assert [float(rows[i][p]) for p in PROBS] == pytest.approx(expected, abs=1e-6), (name, i)


@pytest.mark.slow
def test_two_ddp_processes_match_one_at_the_same_global_batch(runs: Runs) -> None:
    one, two = runs.final_state(), runs.final_state("ddp")
    ddp_ckpt = runs.workdir / "checkpoints" / "ddp" / "version_0" / "last.ckpt"
    assert torch.load(ddp_ckpt, map_location="cpu", weights_only=True)["global_step"] == STEPS
    assert one["state_dict"].keys() == two["state_dict"].keys()
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][key], value, **DDP_TOLERANCE, msg=key)
    assert _last_results(runs.log_dir("ddp")) == _last_results(runs.log_dir())
    # every example evaluated exactly once (synth_ood has 63 pairs: a padding sampler would count 64)
    with sorted((runs.log_dir("ddp") / "results").glob("val_epoch*.csv"))[-1].open() as f:
        counts = {r["eval_set"]: int(r["n"]) for r in csv.DictReader(f) if r["level"] == "set"}
    assert counts == two["sizes"]
    if runs.case.ddp_check is not None:
        runs.case.ddp_check(runs.log_dir(), runs.log_dir("ddp"), runs.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("runs", ["erm_reweight"], indirect=True)
def test_per_rank_reweighting_normalisation_would_change_the_ddp_objective(runs: Runs) -> None:
    """The DDP check can fail: normalising by each rank's weight sum (the public code's) differs."""
    one, local = runs.final_state()["state_dict"], runs.final_state("ddp_local")["state_dict"]
    assert any(not torch.allclose(one[k], local[k], **DDP_TOLERANCE) for k in one)


@pytest.mark.slow
def test_lm_analysis_validates_on_tiny_gpt2(tmp_path: Path) -> None:
    shared_path("professions", "professions.json")
    overrides = (
        "--model.init_args.backbone=tiny-gpt2",
        "--data.init_args.limit=4",
        '--data.init_args.templates=["The {} said that"]',
        "--trainer.callbacks.init_args.verify_top_k=2",
    )
    run_debiaslit(tmp_path, "validate", [str(REPO_ROOT / "configs" / "cma_gpt2.yaml")], "lm", 1, *overrides)
    out = tmp_path / "logs" / "lm" / "version_0" / "cma" / "epoch_0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["probe"]["n_prompts"] == 4 and summary["total_effect"] == summary["total_effect"]
    with (out / "neurons.csv").open() as f:
        assert {r["component"] for r in csv.DictReader(f)} == {"O", "head"}
