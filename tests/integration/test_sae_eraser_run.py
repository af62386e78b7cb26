"""``debiaslit fit`` of the SAE eraser in real subprocesses: 2 DDP processes at half the batch train the
same gates and write the same erasure table as 1 process (the checkpoint round trip and a validate from
it are checked in process, tests/unit/methods/test_sae_eraser_method.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, debiaslit_command, run_together
from tests.unit.methods.test_sae_eraser_method import write_random_saes

CONFIG = str(REPO_ROOT / "tests" / "configs" / "tiny_sae_eraser.yaml")
BATCH = 16


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("sae_eraser_run")
    saes = f"--model.init_args.saes=[{','.join(write_random_saes(workdir, [0, 1]))}]"

    def fit(name: str, devices: int) -> list[str]:
        return debiaslit_command(
            "fit", [CONFIG], name, devices, saes, f"--data.init_args.batch_size={BATCH // devices}"
        )

    run_together(workdir, [fit("single", 1), fit("ddp", 2)])
    ckpt = workdir / "checkpoints" / "single" / "version_0" / "last.ckpt"
    run_together(
        workdir, [debiaslit_command("validate", [CONFIG], "validate", 1, saes, f"--ckpt_path={ckpt}")]
    )
    return workdir


def _table(workdir: Path, name: str) -> list[list[str | float]]:
    """The erasure table's cells, numbers as floats (DDP sums in another order: equal up to rounding)."""
    text = (workdir / "logs" / name / "version_0" / "results" / "val_epoch00_erasure.csv").read_text()

    def cell(value: str) -> str | float:
        try:
            return float(value)
        except ValueError:
            return value

    return [[cell(v) for v in line.split(",")] for line in text.splitlines()]


def _state(workdir: Path, name: str) -> dict[str, torch.Tensor]:
    ckpt = workdir / "checkpoints" / name / "version_0" / "last.ckpt"
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_two_processes_train_the_same_gates_and_table_as_one(workdir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    single, ddp = _state(workdir, "single"), _state(workdir, "ddp")
    assert single.keys() == ddp.keys()
    gates = [k for k in single if k.startswith("eraser.gates.")]
    assert gates == ["eraser.gates.0.logits", "eraser.gates.1.logits"]
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-5, atol=2e-6, msg=key)
    assert not torch.equal(
        single["eraser.gates.0.logits"], torch.full_like(single["eraser.gates.0.logits"], 4.0)
    )
    ddp_table, single_table = _table(workdir, "ddp"), _table(workdir, "single")
    assert [len(r) for r in ddp_table] == [len(r) for r in single_table] and len(single_table) > 3
    for got, want in zip(ddp_table, single_table, strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    log_dir = workdir / "logs" / "single" / "version_0"
    assert (log_dir / "erased_latents.json").is_file()
    assert (log_dir / "results" / "val_epoch00_erasure.png").stat().st_size > 1000
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    assert {"val/eraser/fresh_concept_linear", "val/leace/edit_size", "val/shift/task_acc"} <= set(
        events.Tags()["scalars"]
    )
    assert "val/erasure" in events.Tags()["images"]
