"""Real DDP (2 CPU processes, gloo) through the console script equals 1 process at the same global batch."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, run_debiaslit

TINY = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")


def _fit(workdir: Path, name: str, devices: int, batch_size: int) -> Path:
    extra = (f"--data.init_args.batch_size={batch_size}", "--trainer.max_epochs=1")
    run_debiaslit(workdir, "fit", [TINY], name, devices, *extra)
    return workdir / "logs" / name / "version_0"


def _rows(log_dir: Path) -> dict[tuple[str, str], tuple[str, str]]:
    with (log_dir / "results" / "val_epoch00.csv").open() as f:
        return {(r["eval_set"], r["group"]): (r["n"], r["correct"]) for r in csv.DictReader(f)}


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path: Path) -> None:
    single = _fit(tmp_path, "single", devices=1, batch_size=8)
    ddp = _fit(tmp_path, "ddp", devices=2, batch_size=4)

    rows_single, rows_ddp = _rows(single), _rows(ddp)
    assert rows_single == rows_ddp
    # every example evaluated exactly once: 63 is odd, a padding sampler would count 64
    assert rows_ddp[("synth_ood", "all")][0] == "63"

    w1 = torch.load(tmp_path / "checkpoints/single/version_0/last.ckpt", weights_only=False)["state_dict"]
    w2 = torch.load(tmp_path / "checkpoints/ddp/version_0/last.ckpt", weights_only=False)["state_dict"]
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], rtol=1e-4, atol=1e-5, msg=key)
