"""Bias experts, self-debiasing and error-set upweighting: 2 DDP processes at half the per-process batch
train to the same weights as 1 process (one shared batch of concurrent runs, tiny BERT, 8 steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, debiaslit_command, run_together
from tests.integration.final_state import FILE as FINAL_STATE

CONFIGS = REPO_ROOT / "tests" / "configs"
CASES = {"experts": "tiny_bias_experts.yaml", "self_debias": "tiny_self_debias.yaml", "jtt": "tiny_jtt.yaml"}
FIT = ("--trainer.max_epochs=1", "--trainer.callbacks+=tests.integration.final_state.SaveFinalState")
TOLERANCE = {"rtol": 1e-5, "atol": 2e-6}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    workdir = tmp_path_factory.mktemp("new_debias")
    commands = {}
    for case, config in CASES.items():
        configs = [str(CONFIGS / "tiny_erm.yaml"), str(CONFIGS / config)]
        for devices in (1, 2):
            name, batch = f"{case}_{devices}", f"--data.init_args.batch_size={8 // devices}"
            commands[name] = debiaslit_command("fit", configs, name, devices, batch, *FIT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_CACHE", str(workdir / "hf_datasets"))
        logs = run_together(workdir, list(commands.values()), timeout=300)
    outputs = dict(zip(commands, logs, strict=True))
    return workdir, outputs


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_ddp_processes_match_one(workdir: tuple[Path, dict[str, str]], case: str) -> None:
    root, outputs = workdir
    one, two = (
        torch.load(root / "logs" / f"{case}_{d}" / "version_0" / FINAL_STATE, weights_only=True)["state_dict"]
        for d in (1, 2)
    )
    assert one.keys() == two.keys()
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, **TOLERANCE, msg=key)
    if case == "self_debias":
        assert any(k.startswith("loss.head.") for k in one)  # the jointly trained bias head
    else:
        assert "bias model (" in outputs[f"{case}_1"] and "out of sample" in outputs[f"{case}_1"]
