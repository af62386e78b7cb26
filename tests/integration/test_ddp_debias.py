"""Real DDP (2 CPU processes, gloo) of a bias-aware method through the console script equals 1 process.

Reweighting divides by the weight sum of the *global* batch (``norm: global``), and the bias model is
fitted once on rank 0 and read from its cache by rank 1, so both runs train on the same objective.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, run_debiaslit

CONFIGS = [
    str(REPO_ROOT / "tests/configs/tiny_erm.yaml"),
    str(REPO_ROOT / "tests/configs/tiny_reweight.yaml"),
]


def _fit(workdir: Path, name: str, devices: int, batch_size: int, *extra: str) -> subprocess.CompletedProcess:
    extra = (*extra, f"--data.init_args.batch_size={batch_size}", "--trainer.max_epochs=1")
    return run_debiaslit(workdir, "fit", CONFIGS, name, devices, *extra)


@pytest.mark.slow
def test_ddp_reweighting_two_processes_match_one(tmp_path: Path) -> None:
    single = _fit(tmp_path, "single", devices=1, batch_size=8)
    ddp = _fit(tmp_path, "ddp", devices=2, batch_size=4)
    for out in (single, ddp):
        assert "bias model (HansFeaturesBias, 3 fold(s)) on train" in out.stdout + out.stderr
    assert len(list((tmp_path / "logs/ddp/bias_cache").glob("*.json"))) == 1

    def weights(name: str) -> dict[str, torch.Tensor]:
        path = tmp_path / f"checkpoints/{name}/version_0/last.ckpt"
        return torch.load(path, weights_only=False)["state_dict"]

    w1, w2 = weights("single"), weights("ddp")
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], rtol=1e-4, atol=1e-5, msg=key)

    # the test can fail: per-rank normalisation (the public code's) changes the objective under DDP
    _fit(tmp_path, "ddp_local", 2, 4, "--model.init_args.loss.init_args.norm=batch")
    w3 = weights("ddp_local")
    assert any(not torch.allclose(w1[k], w3[k], rtol=1e-4, atol=1e-5) for k in w1)
