"""Shared fixtures: offline mode, the shared data bundle (skipped where absent), tmp caches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
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


def debiaslit_command(subcommand: str, configs: list[str], name: str, devices: int, *extra: str) -> list[str]:
    """``python -m debiaslit <subcommand>`` for a run named ``name`` (logs/<name>, checkpoints/<name>).

    ``devices > 1`` runs real DDP on CPU processes (gloo).
    """
    args = [sys.executable, "-m", "debiaslit", subcommand, *(f"--config={c}" for c in configs), *extra]
    args += [f"--trainer.logger.init_args.name={name}", f"--trainer.devices={devices}"]
    if devices > 1:
        args += ["--trainer.strategy=ddp", "--trainer.accelerator=cpu"]
    return args


def run_together(workdir: Path, commands: list[list[str]], timeout: float = 180) -> list[str]:
    """Run independent commands at the same time (a tiny run is mostly start-up, which overlaps well);
    returns each one's stdout + stderr. The test fails with the tail of the first command that fails."""
    # the checkout first on the path: test-only callbacks (tests.*) import in the subprocess, whatever its cwd
    path = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=path)
    logs = [tempfile.TemporaryFile("w+") for _ in commands]  # files, not pipes: no pipe can fill up
    procs = [
        # own session: a timeout kills the whole group, DDP ranks included
        subprocess.Popen(
            args,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        for args, log in zip(commands, logs, strict=True)
    ]
    deadline = time.monotonic() + timeout
    try:
        codes = [proc.wait(timeout=max(0.0, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    for args, code, out in zip(commands, codes, outputs, strict=True):
        assert code == 0, f"debiaslit {' '.join(args[3:])} exited {code}:\n{out[-6000:]}"
    return outputs


def run_debiaslit(
    workdir: Path, subcommand: str, configs: list[str], name: str, devices: int, *extra: str
) -> subprocess.CompletedProcess:
    """Run the console script in a subprocess (DDP re-runs the command line, so never in-process);
    its ``stdout`` holds stdout and stderr. See :func:`debiaslit_command`."""
    args = debiaslit_command(subcommand, configs, name, devices, *extra)
    return subprocess.CompletedProcess(args, 0, stdout=run_together(workdir, [args])[0], stderr="")
