"""NIE under real DDP (2 CPU processes, gloo) equals 1 process: probe rows sharded, sums all-reduced."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_debiaslit

CONFIGS = [str(REPO_ROOT / "tests" / "configs" / n) for n in ("tiny_erm.yaml", "cma_tiny_nie.yaml")]


def _validate(workdir: Path, name: str, devices: int) -> Path:
    run_debiaslit(workdir, "validate", CONFIGS, name, devices)
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
