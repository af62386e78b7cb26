"""PCGU under real DDP: 2 CPU processes at half the per-process batch select the same partitions at
every step (on both ranks, as 1 process does) and end with the 1-process weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, debiaslit_command, run_together, shared_path

CONFIG = str(REPO_ROOT / "tests" / "configs" / "tiny_pcgu.yaml")
BATCH = 8
#: float reduction order only (all-reduced gradient means vs one sum)
TOLERANCE = {"rtol": 1e-5, "atol": 2e-6}


@pytest.mark.slow
def test_two_processes_select_the_same_partitions_and_reach_the_same_weights(tmp_path: Path) -> None:
    data = f"--data.init_args.data_dir={shared_path('winogender')}"
    record = "--trainer.callbacks+=tests.integration.pcgu_record.RecordSelections"
    commands = [
        debiaslit_command(
            "fit", [CONFIG], name, devices, data, record, f"--data.init_args.batch_size={BATCH // devices}"
        )
        for name, devices in (("single", 1), ("ddp", 2))
    ]
    run_together(tmp_path, commands)
    load = lambda name, rank: torch.load(  # noqa: E731
        tmp_path / "logs" / name / "version_0" / f"pcgu_rank{rank}.pt", map_location="cpu", weights_only=True
    )
    single, rank0, rank1 = load("single", 0), load("ddp", 0), load("ddp", 1)
    assert len(single["steps"]) == 4
    for step, (a, b, c) in enumerate(zip(single["steps"], rank0["steps"], rank1["steps"], strict=True)):
        assert torch.equal(b, c), f"ranks disagree at step {step}"
        assert torch.equal(a, b), f"2 processes select other partitions than 1 at step {step}"
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(rank0["state_dict"][key], value, **TOLERANCE, msg=key)
        assert torch.equal(rank0["state_dict"][key], rank1["state_dict"][key]), key
    assert not torch.equal(
        single["state_dict"]["selection_counts"], torch.zeros_like(single["state_dict"]["selection_counts"])
    )
