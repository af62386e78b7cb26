"""NIE under real DDP (2 CPU processes, gloo) equals 1 process: probe rows sharded, sums all-reduced."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CONFIGS = [str(REPO_ROOT / "tests" / "configs" / n) for n in ("tiny_erm.yaml", "cma_tiny_nie.yaml")]


def _validate(workdir: Path, name: str, devices: int) -> Path:
    args = ["debiaslit", "validate", "--config", CONFIGS[0], "--config", CONFIGS[1],
            f"--trainer.logger.init_args.name={name}", f"--trainer.devices={devices}"]  # fmt: skip
    if devices > 1:
        args += ["--trainer.strategy=ddp", "--trainer.accelerator=cpu"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return workdir / "logs" / name / "version_0" / "cma" / "epoch_0"


def _effects(out: Path) -> dict[tuple[str, ...], tuple[float, str]]:
    with (out / "neurons.csv").open() as f:
        return {
            (r["component"], r["layer"], r["index"], r["estimator"]): (float(r["effect"]), r["n_examples"])
            for r in csv.DictReader(f)
        }


@pytest.mark.slow
def test_ddp_nie_equals_single_process(tmp_path: Path) -> None:
    single = _effects(_validate(tmp_path, "single", 1))
    ddp = _effects(_validate(tmp_path, "ddp", 2))
    assert single.keys() == ddp.keys()  # same units verified exactly (hybrid) on both
    assert {n for _, n in ddp.values()} == {"15"}  # 15 probe pairs: one rank gets 8, the other 7
    scale = max(abs(v) for v, _ in single.values())
    for key, (value, _) in single.items():
        assert ddp[key][0] == pytest.approx(value, rel=1e-4, abs=1e-6 * scale), key
