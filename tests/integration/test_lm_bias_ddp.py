"""PairBiasEvaluator under real DDP (2 CPU processes, gloo) equals 1 process: every item once, sums synced."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, debiaslit_command, run_together, shared_path
from tests.unit.evaluation.fixtures import write_crows, write_winogender

CONFIG = str(REPO_ROOT / "tests" / "configs" / "tiny_lm_bias.yaml")


@pytest.mark.slow
def test_ddp_bias_figures_equal_single_process(tmp_path: Path) -> None:
    mnli = shared_path("mnli", "mnli_development_set_number_of_correct_responses.txt")
    data = [
        f"--data.init_args.winogender_dir={write_winogender(tmp_path / 'wg')}",
        f"--data.init_args.crows_file={write_crows(tmp_path / 'crows.csv')}",
        f"--data.init_args.neutral_file={mnli}",
    ]
    run_together(
        tmp_path, [debiaslit_command("validate", [CONFIG], n, d, *data) for n, d in (("one", 1), ("two", 2))]
    )
    tables = []
    for name in ("one", "two"):
        with (tmp_path / "logs" / name / "version_0" / "results" / "val_epoch00_bias.csv").open() as file:
            tables.append({(r["eval_set"], r["figure"]): float(r["value"]) for r in csv.DictReader(file)})
    one, two = tables
    assert one.keys() == two.keys()
    assert (one["winogender", "n_pairs"], one["crows", "n_pairs"]) == (3, 3)
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
