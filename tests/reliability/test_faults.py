"""``debiaslit fit`` killed with SIGKILL and resumed gives the run it would have given uninterrupted.

For each method (ERM, MaskMethod, ERM with the Reweight bias-aware loss), 3 epochs of 8 steps:

1. an uninterrupted reference run;
2. a run killed mid-epoch (after step 12 of 24): ``checkpoints/<name>/version_0/last.ckpt`` is the
   end of epoch 1 (step 8);
3. resumed from it and killed halfway through writing ``last.ckpt`` at step 24 (:class:`KillAt`):
   Lightning writes into a temporary file in ``$TMPDIR`` and renames it onto ``last.ckpt`` only once
   complete, so the previous ``last.ckpt`` (step 16) survives intact and only the half-written
   temporary file is left, in ``$TMPDIR``;
4. resumed from that ``version_1/last.ckpt``: its final weights (``torch.equal`` on every tensor of
   the state dict), masks file and final results table equal the reference's.

A truncated ``last.ckpt`` (what the same kill leaves when ``$TMPDIR`` is on another file system, where
the rename becomes a copy into ``last.ckpt``) is refused on resume with the file named, before any run
folder is made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.forked_main import files_under

pytestmark = pytest.mark.slow

CONFIGS = REPO_ROOT / "tests" / "configs"
METHODS = {
    "erm": ["tiny_erm.yaml"],
    "masks": ["tiny_mask.yaml"],
    "reweight": ["tiny_erm.yaml", "tiny_reweight.yaml"],
}
EPOCHS, STEPS_PER_EPOCH = 3, 8  # 64 training pairs, batch 8
KILL_MID_EPOCH, LAST_STEP = STEPS_PER_EPOCH + 4, EPOCHS * STEPS_PER_EPOCH


def kill_at(step: int, phase: str) -> list[str]:
    """Options adding the test-only KillAt callback (tests/reliability/kill.py) to the run."""
    key = "--trainer.callbacks"
    return [f"{key}+=tests.reliability.kill.KillAt", f"{key}.step={step}", f"{key}.phase={phase}"]


def run(cwd: Path, method: str, returncode: int, *extra: str) -> str:
    """``debiaslit fit`` of ``method`` (run name = method) in ``cwd`` with $TMPDIR ``cwd/../tmp``; its
    output, once it ended with ``returncode`` (-9: SIGKILL)."""
    tmp = cwd.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    configs = [f"--config={CONFIGS / c}" for c in METHODS[method]]
    args = [sys.executable, "-m", "debiaslit", "fit", *configs, f"--trainer.max_epochs={EPOCHS}"]
    args += [f"--trainer.logger.init_args.name={method}", *extra]
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT), TMPDIR=str(tmp)
    )
    env.pop("DEBIASLIT_TRACEBACK", None)
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    output = out.stdout + out.stderr
    assert out.returncode == returncode, f"{args}\n{output[-3000:]}"
    return output


def interrupted_chain(work: Path, method: str) -> dict[str, object]:
    """Killed mid-epoch, resumed and killed while writing last.ckpt, resumed to the end; for ERM also
    a resume from the half-written bytes. Returns what the checks below need."""
    work.mkdir(parents=True)
    ckpts = work / "checkpoints" / method
    run(work, method, -9, *kill_at(KILL_MID_EPOCH, "mid_epoch"))
    step_after_kill = load(ckpts / "version_0" / "last.ckpt")["global_step"]
    resume = ["--ckpt_path", f"checkpoints/{method}/version_0/last.ckpt"]
    run(work, method, -9, *resume, *kill_at(LAST_STEP, "checkpoint"))
    run(work, method, 0, "--ckpt_path", f"checkpoints/{method}/version_1/last.ckpt")
    result: dict[str, object] = {"step_after_kill": step_after_kill}
    partial = [p for p in (work.parent / "tmp").iterdir() if p.is_file()]
    if method == "erm" and len(partial) == 1:  # the half-written bytes as a last.ckpt: refused, named
        cut = ckpts / "cut" / "last.ckpt"
        cut.parent.mkdir()
        cut.write_bytes(partial[0].read_bytes())
        before = files_under(work)
        result["cut"] = (
            cut,
            run(work, method, 2, "--ckpt_path", str(cut.relative_to(work))),
            before == files_under(work),
        )
    return result


def reference_run(cwd: Path, method: str) -> str:
    cwd.mkdir(parents=True)
    return run(cwd, method, 0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, object]]]:
    """Every method's reference run and interrupted chain, two processes at a time (2 cores): the
    subprocesses spend most of their time importing, so this halves the file's wall time."""
    root = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(max_workers=2) as pool:
        chains = {m: pool.submit(interrupted_chain, root / m / "work", m) for m in METHODS}
        refs = {m: pool.submit(reference_run, root / m / "reference", m) for m in METHODS}
        for future in [*chains.values(), *refs.values()]:
            future.result()
    return {m: (root / m, chains[m].result()) for m in METHODS}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def masks_of(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a masks file: its bytes differ between processes (safetensors writes the
    metadata map in hash order), its content must not."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.parametrize("method", list(METHODS))
def test_killed_runs_resume_to_the_uninterrupted_result(method: str, runs: dict) -> None:
    root, chain = runs[method]
    ckpts, ref_ckpts = root / "work" / "checkpoints" / method, root / "reference" / "checkpoints" / method
    logs, ref_logs = root / "work" / "logs" / method, root / "reference" / "logs" / method
    # killed mid-epoch 2: last.ckpt is the end of epoch 1
    assert chain["step_after_kill"] == STEPS_PER_EPOCH
    # killed halfway through writing last.ckpt at the last step: the previous one (epoch 2) is intact,
    # every .ckpt loads, and the half-written bytes are a temporary file in $TMPDIR
    assert load(ckpts / "version_1" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH
    for path in ckpts.rglob("*.ckpt"):
        if path.parent.name != "cut":
            load(path)
    partial = [p for p in (root / "tmp").iterdir() if p.is_file()]
    assert (
        len(partial) == 1
        and 0 < partial[0].stat().st_size < (ckpts / "version_2" / "last.ckpt").stat().st_size
    )
    # resumed to the end: the reference's weights, step, results table and masks
    ckpt, ref = load(ckpts / "version_2" / "last.ckpt"), load(ref_ckpts / "version_0" / "last.ckpt")
    assert ckpt["global_step"] == ref["global_step"] == LAST_STEP
    assert ckpt["state_dict"].keys() == ref["state_dict"].keys()
    mismatched = [k for k, v in ref["state_dict"].items() if not torch.equal(ckpt["state_dict"][k], v)]
    assert not mismatched
    table = f"results/val_epoch{EPOCHS - 1:02d}.csv"
    assert (logs / "version_2" / table).read_text() == (ref_logs / "version_0" / table).read_text()
    if method == "masks":
        (meta, masks), (ref_meta, ref_masks) = (
            masks_of(logs / "version_2" / "masks.safetensors"),
            masks_of(ref_logs / "version_0" / "masks.safetensors"),
        )
        assert meta == ref_meta and masks.keys() == ref_masks.keys()
        assert all(torch.equal(masks[k], ref_masks[k]) for k in ref_masks)
        sparsity = "mask_sparsity.csv"
        assert (logs / "version_2" / sparsity).read_text() == (ref_logs / "version_0" / sparsity).read_text()


def test_truncated_last_ckpt_is_refused_before_anything_starts(runs: dict) -> None:
    cut, output, nothing_added = runs["erm"][1]["cut"]
    assert f"--ckpt_path: '{cut}' is not a complete checkpoint" in output
    assert "Traceback" not in output and nothing_added
