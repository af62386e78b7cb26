"""Bias experts, self-debiasing and error-set upweighting: 2 DDP processes at half the per-process batch
train to the same weights as 1 process (one shared batch of concurrent runs, tiny BERT, 8 steps); the
CMA-guided unit scaling of the resulting model validates to the same table on 2 processes as on 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from debiaslit.cma.neurons import write_neurons
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
        unit = {"component": "I", "estimator": "exact", "n_examples": 8}
        rows = [  # an arbitrary "CMA result": effect falls with the unit index
            {**unit, "layer": layer, "index": i, "effect": -i} for layer in (0, 1) for i in range(37)
        ]
        write_neurons(workdir / "neurons.csv", rows)
        ckpt = workdir / "checkpoints" / "experts_1" / "version_0" / "last.ckpt"
        configs = [str(CONFIGS / "tiny_erm.yaml"), str(CONFIGS / "tiny_unit_scaling.yaml")]
        init = f"--model.init_weights_from={ckpt}"
        scaling = {}
        for d in (1, 2):
            scaling[f"scaling_{d}"] = debiaslit_command("validate", configs, f"scaling_{d}", d, init)
        outputs.update(zip(scaling, run_together(workdir, list(scaling.values())), strict=True))
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


@pytest.mark.slow
def test_unit_scaling_validates_the_same_on_two_processes(workdir: tuple[Path, dict[str, str]]) -> None:
    root, _ = workdir
    results = (root / "logs" / f"scaling_{d}" / "version_0" / "results" for d in (1, 2))
    one, two = (next(folder.glob("val_*.csv")).read_text() for folder in results)
    assert one == two and "synth_ood" in one
