"""Shared fixtures: offline mode, the shared data bundle (skipped where absent), tmp caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The data bundle sits beside the checkout (../shared/data); DEBIASLIT_SHARED_DATA overrides.
SHARED_DATA = Path(os.environ.get("DEBIASLIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep datasets' Arrow caches out of ~/.cache during tests."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_datasets"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason if it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"shared data file {path} is absent (the offline data bundle is not beside this checkout)"
        )
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data bundle {SHARED_DATA} is absent")
    return SHARED_DATA


def run_debiaslit(
    workdir: Path, subcommand: str, configs: list[str], name: str, devices: int, *extra: str
) -> subprocess.CompletedProcess:
    """Run the console script in a subprocess (DDP re-runs the command line, so never in-process).

    ``devices > 1`` runs real DDP on CPU processes (gloo). The run is named ``name`` (logs/<name>,
    checkpoints/<name>); the test fails with the tail of the output when the command fails.
    """
    args = [sys.executable, "-m", "debiaslit", subcommand, *(f"--config={c}" for c in configs), *extra]
    args += [f"--trainer.logger.init_args.name={name}", f"--trainer.devices={devices}"]
    if devices > 1:
        args += ["--trainer.strategy=ddp", "--trainer.accelerator=cpu"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out
