"""Where runs write: only logs/<name>/version_N and checkpoints/<name>/version_N, nothing under
fast_dev_run, PNG figures beside the tables, predictions per evaluation set, resumable checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import debiaslit
from tests.conftest import REPO_ROOT, run_debiaslit

TINY = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")
NIE = str(REPO_ROOT / "tests" / "configs" / "cma_tiny_nie.yaml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2}


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("configs", [[TINY], [TINY, NIE]], ids=["erm", "erm+nie"])
def test_fast_dev_run_writes_nothing(
    configs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    debiaslit.fit(config=configs, trainer__fast_dev_run=True)
    assert files_under(tmp_path) == []


def test_enable_checkpointing_false_trains_without_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    debiaslit.fit(config=TINY, overrides={**QUICK, "trainer.enable_checkpointing": False})
    assert not (tmp_path / "checkpoints").exists()
    assert (tmp_path / "logs/tiny/version_0/results/val_epoch00.csv").is_file()


@pytest.mark.slow
def test_run_outputs_resume_and_predictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = debiaslit.fit(config=[TINY, NIE], overrides=QUICK)
    written = files_under(tmp_path)
    assert all(f.startswith(("logs/tiny/version_0/", "checkpoints/tiny/version_0/")) for f in written), (
        written
    )
    run = tmp_path / "logs/tiny/version_0"
    for png in (run / "results/val_epoch00_hans_like_hans.png", run / "cma/epoch_0/layers.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC, png
    assert not [f for f in written if f.endswith(".tmp")]

    # our checkpoints hold tensors and plain containers only: loadable with weights_only=True, as
    # Lightning (torch's default) loads --ckpt_path
    last = tmp_path / "checkpoints/tiny/version_0/last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == cli.trainer.global_step == 2
    resumed = debiaslit.fit(config=TINY, overrides={**QUICK, "trainer.max_epochs": 2}, ckpt_path=str(last))
    assert resumed.trainer.global_step == 4 and resumed.trainer.current_epoch == 2

    out = debiaslit.predict(config=TINY, ckpt_path=str(last))
    pred_dir = Path(out.trainer.log_dir) / "predictions"
    model, dm = out.model.eval(), out.datamodule
    for name, ds in dm.eval_datasets.items():
        with (pred_dir / f"{name}.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == [
            "uid", "gold_label", "p_entailment", "p_neutral", "p_contradiction", "predicted_label",
        ]  # fmt: skip
        assert [r["uid"] for r in rows] == [e.uid for e in ds.examples]
        with torch.no_grad():  # naive re-prediction, one example at a time
            for i in range(0, len(ds), max(1, len(ds) // 7)):
                probs = model(dm._collate()([ds[i]])).softmax(-1)[0]
                assert [float(rows[i][f"p_{c}"]) for c in ("entailment", "neutral", "contradiction")] == (
                    pytest.approx(probs.tolist(), abs=1e-5)
                )
                expected = ds.label_names[int(model.evaluator.predictions(probs.log()[None], ds.is_hans))]
                assert rows[i]["predicted_label"] == expected
                assert rows[i]["gold_label"] == ds.examples[i].label


@pytest.mark.slow
def test_predictions_under_ddp_equal_one_process(tmp_path: Path) -> None:
    """Two processes each predict a shard; rank 0 writes every example once, as one process does."""
    tables = {}
    for devices in (1, 2):
        run_debiaslit(tmp_path, "predict", [TINY], f"predict{devices}", devices)
        folder = tmp_path / f"logs/predict{devices}/version_0/predictions"
        tables[devices] = {}
        for path in sorted(folder.glob("*.csv")):
            with path.open() as f:
                tables[devices][path.stem] = list(csv.DictReader(f))
    assert sorted(tables[1]) == ["hans_like", "synth_ood"]
    for name, rows in tables[1].items():
        other = tables[2][name]
        assert [r["uid"] for r in other] == [r["uid"] for r in rows]
        assert [r["gold_label"] for r in other] == [r["gold_label"] for r in rows]
        for column in ("p_entailment", "p_neutral", "p_contradiction"):
            assert [float(r[column]) for r in other] == pytest.approx(
                [float(r[column]) for r in rows], abs=1e-5
            )
