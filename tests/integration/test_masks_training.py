"""Mask training end to end: TensorBoard sparsity logs, resume = uninterrupted, export (DDP = 1 process
is in test_method_contract.py)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from debiaslit.methods.masks import load_masks
from tests.conftest import REPO_ROOT, run_debiaslit

TINY_MASK = str(REPO_ROOT / "tests" / "configs" / "tiny_mask.yaml")
SCORES = ".scores"
# sigmoid threshold with a cubic schedule and the L1 penalty: resume must restore schedule + penalty
MEISSNER = {
    "model.init_args.binarizer": {
        "class_path": "SigmoidThreshold",
        "init_args": {"threshold": 0.5, "threshold_initial": 0.3, "schedule": "cubic"},
    },
    "model.init_args.penalty": {"class_path": "L1Sigmoid", "init_args": {"lambda_": 1.0}},
    "model.init_args.init": {"class_path": "UniformInit", "init_args": {"sparsity": 0.05, "width": 2.0}},
}


def _scores(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.endswith(SCORES)}


@pytest.mark.slow
def test_sparsity_logs_and_resume_from_mid_run_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import debiaslit

    monkeypatch.chdir(tmp_path)
    full = debiaslit.fit(
        config=TINY_MASK,
        overrides={**MEISSNER, "trainer.logger.init_args.name": "full", "checkpoint.save_top_k": -1},
    )
    log_dir = Path(full.trainer.log_dir)
    ckpts = Path("checkpoints/full/version_0")
    mid = next(ckpts.glob("epoch00-*.ckpt"))

    # --- logging: scalars per component x layer each epoch, heatmap, final table and masks file
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {f"mask/sparsity/{c}/layer_{lyr}" for c in ("Q", "K", "V", "AO", "I", "O") for lyr in (0, 1)}
    assert expected | {"mask/sparsity/global", "mask/flipped", "mask/penalty"} <= tags
    assert len(acc.Scalars("mask/sparsity/global")) == 2  # one per epoch
    heatmap_steps = [image.step for image in acc.Images("mask/sparsity_heatmap")]
    assert heatmap_steps == [s.step for s in acc.Scalars("mask/sparsity/global")] == [8, 16]
    final = full.model.masked.sparsity()
    assert acc.Scalars("mask/sparsity/global")[-1].value == pytest.approx(final["global"], abs=1e-6)
    with (log_dir / "mask_sparsity.csv").open() as f:
        table = {(r["layer"], c): float(r[c]) for r in csv.DictReader(f) for c in ("Q", "I")}
    assert table[("1", "I")] == pytest.approx(final["I/layer_1"], abs=1e-6)
    assert (log_dir / "mask_sparsity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(log_dir.glob(".*.tmp"))  # atomic writes leave no temporary files
    stored = load_masks(log_dir / "masks.safetensors")
    for path, mask in full.model.masked.hard_masks().items():
        assert torch.equal(stored[path].mask, mask)
    # the cubic threshold at the last of 16 steps (global_step 15): 0.3 + 0.2 · (1 − (1 − 15/16)³)
    current = full.model.masked.mask_module(full.model.masked.paths[0]).current
    assert current == pytest.approx(0.3 + 0.2 * (1 - (1 / 16) ** 3))
    assert final["global"] > 0.05

    # --- resume from the end of epoch 0: same final scores and masks as the uninterrupted run
    resumed = debiaslit.fit(
        config=TINY_MASK,
        overrides={**MEISSNER, "trainer.logger.init_args.name": "resumed", "ckpt_path": str(mid)},
    )
    assert resumed.trainer.global_step == full.trainer.global_step
    a, b = _scores(ckpts / "last.ckpt"), _scores(Path("checkpoints/resumed/version_0/last.ckpt"))
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-7, msg=key)
    first, second = full.model.masked.hard_masks(), resumed.model.masked.hard_masks()
    assert all(torch.equal(first[p], second[p]) for p in first)


def _fit_subprocess(workdir: Path, name: str) -> Path:
    run_debiaslit(workdir, "fit", [TINY_MASK], name, 1, "--trainer.max_epochs=1")
    return workdir / "checkpoints" / name / "version_0" / "last.ckpt"


IDS = torch.tensor([[2, 17, 23, 42, 8, 9, 3], [2, 30, 5, 19, 44, 6, 3]])


@pytest.mark.slow
def test_export_subcommand_writes_a_model_that_loads_without_debiaslit(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from debiaslit.methods.masks import MaskMethod

    ckpt = _fit_subprocess(tmp_path, "export")
    export = [sys.executable, "-m", "debiaslit", "export", f"--ckpt_path={ckpt}"]
    out = subprocess.run(
        [*export, "--output", str(tmp_path / "hf")], cwd=tmp_path, capture_output=True, text=True,
        timeout=180, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    masked = MaskMethod.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        expected = masked.model(input_ids=IDS).logits
        torch.testing.assert_close(plain(input_ids=IDS).logits, expected, rtol=0, atol=1e-6)
    assert plain.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}

    masks_only = tmp_path / "masks"
    subprocess.run(
        [*export, f"--output={masks_only}", "--masks_only"], cwd=tmp_path, check=True, timeout=180,
        capture_output=True,
    )  # fmt: skip
    stored = load_masks(masks_only / "masks.safetensors")
    assert all(torch.equal(stored[p].mask, m) for p, m in masked.masked.hard_masks().items())


def test_export_of_a_method_without_export_names_the_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import debiaslit
    from debiaslit.cli.export import export_main

    monkeypatch.chdir(tmp_path)
    tiny_erm = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")
    debiaslit.fit(
        config=tiny_erm, trainer__max_epochs=1, trainer__limit_train_batches=1, trainer__limit_val_batches=0
    )
    ckpt = next(Path("checkpoints").rglob("last.ckpt"))
    with pytest.raises(SystemExit) as exit_info:
        export_main([f"--ckpt_path={ckpt}", "--output=out"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ERM (debiaslit.methods.erm" in err and "has no export_pretrained()" in err
    assert not Path("out").exists()
