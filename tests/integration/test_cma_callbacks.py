"""NIECallback end to end: CSVs and TensorBoard scalars per epoch equal a direct analysis; LM validate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import debiaslit
from debiaslit.cma.effects import TokenOddsRatio
from tests.conftest import REPO_ROOT, shared_path

TINY = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")
NIE = str(REPO_ROOT / "tests" / "configs" / "cma_tiny_nie.yaml")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_fit_logs_nie_curves_and_writes_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    # a sanity check runs first: it must not produce NIE output
    cli = debiaslit.fit(config=[TINY, NIE], trainer__num_sanity_val_steps=1)
    log_dir = Path(cli.trainer.log_dir)
    assert sorted(p.name for p in (log_dir / "cma").iterdir()) == ["epoch_0", "epoch_1"]
    for epoch in (0, 1):
        out = log_dir / "cma" / f"epoch_{epoch}"
        rows = _read(out / "neurons.csv")
        assert {"component", "layer", "index", "effect", "estimator", "n_examples"} <= set(rows[0])
        assert {r["estimator"] for r in rows} == {"attribution", "exact"}
        assert {r["n_examples"] for r in rows} == {"15"}
        # one row per unit: 2 layers x (Q, K, V, AO, O: 32 units; I: 37; head: 4)
        assert len(rows) == 2 * (5 * 32 + 37 + 4)
        # exact for the top 4 + 4 random units per site (every head): the value downstream uses
        assert sum(r["exact"] == "1" for r in rows) == 2 * (6 * 8 + 4)
        assert all((r["exact"] == "1") == (r["estimator"] == "exact") and r["estimate"] for r in rows)
        layers = _read(out / "layers.csv")
        assert len(layers) == 2 * 7
        assert (out / "top_units.md").read_text().startswith("| rank |")

    # the last epoch's attribution effects equal a direct analysis of the trained model
    callback = next(c for c in cli.trainer.callbacks if type(c).__name__ == "NIECallback")
    result = callback.compute(cli.trainer, cli.model)
    estimate, exact = result.estimate.nie(), result.exact.nie()
    for row in _read(log_dir / "cma" / "epoch_1" / "neurons.csv"):
        key, unit = f"{row['component']}/layer_{row['layer']}", int(row["index"])
        assert float(row["estimate"]) == pytest.approx(float(estimate[key][unit]), rel=1e-5, abs=1e-12)
        if row["exact"] == "1":  # exact values come from the verification pass, in sorted unit order
            j = result.verified[key].tolist().index(unit)
            assert float(row["effect"]) == pytest.approx(float(exact[key][j]), rel=1e-5, abs=1e-12)

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    steps = [e.step for e in acc.Scalars("nie/I/layer_1")]
    assert steps == [8, 16]  # 64 pairs / batch 8 = 8 steps per epoch; no sanity-check entry
    assert "train/loss" in tags["scalars"] and "cma/site_recall_min" in tags["scalars"]
    assert {f"nie/{c}/layer_{i}" for c in ("Q", "K", "V", "AO", "I", "O", "head") for i in (0, 1)} <= set(
        tags["scalars"]
    )
    summary = json.loads((log_dir / "cma" / "epoch_1" / "summary.json").read_text())
    curve = {
        (r["component"], r["layer"]): float(r["top_2.5pct_mean_effect"])
        for r in _read(log_dir / "cma/epoch_1/layers.csv")
    }
    assert acc.Scalars("nie/I/layer_1")[-1].value == pytest.approx(curve[("I", "1")], rel=1e-5)
    assert "nie/heatmap" in tags["images"] and "nie_hist/I" in tags["histograms"]
    assert summary["probe"]["n_probe"] == 15 and summary["global_step"] == 16
    # the per-site ranking table: every site verified, layer-0 [CLS] Q/K/V identical for every input
    sites = summary["sites"]
    assert len(sites) == 14 and {sites[f"{c}/layer_0"]["status"] for c in "QKV"} == {"no effect"}
    assert all(sites[f"{c}/layer_{i}"]["status"] == "ranked" for c in ("AO", "O", "head") for i in (0, 1))
    assert "cma/sites/text_summary" in tags["tensors"]


@pytest.mark.slow
def test_every_n_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = debiaslit.fit(
        config=[TINY, NIE],
        overrides={
            "trainer.callbacks.init_args.every_n_epochs": 2,
            "trainer.callbacks.init_args.estimator": "attribution",
            "trainer.callbacks.init_args.components": ["O"],
        },
    )
    assert [p.name for p in (Path(cli.trainer.log_dir) / "cma").iterdir()] == ["epoch_1"]


@pytest.mark.slow
def test_validate_gpt2_professions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_path("professions", "professions.json")
    monkeypatch.chdir(tmp_path)
    cli = debiaslit.validate(
        config=str(REPO_ROOT / "configs" / "cma_gpt2.yaml"),
        overrides={
            "model.init_args.backbone": "tiny-gpt2",
            "data.init_args.limit": 6,
            "data.init_args.templates": ["The {} said that", "The {} left because"],
            "trainer.callbacks.init_args.verify_top_k": 4,
        },
    )
    out = Path(cli.trainer.log_dir) / "cma" / "epoch_0"
    summary = json.loads((out / "summary.json").read_text())
    probe = summary["probe"]
    assert probe["n_prompts"] == 12 and probe["n_professions"] == 6
    assert "assistant professor" in probe["unusable_professions"]  # reported, not silently dropped
    rows = _read(out / "neurons.csv")
    assert {r["component"] for r in rows} == {"O", "head"} and {r["n_examples"] for r in rows} == {"12"}
    # TE from the callback equals TE computed by hand over the probe
    dm = cli.datamodule
    probe_set = dm.cma_probe()
    model = cli.model.model.eval()  # Lightning leaves the module in train mode after validate
    measure = TokenOddsRatio()
    batch, cf = next(probe_set.batches(list(range(len(probe_set))), 100))
    with torch.no_grad():
        m = measure.log_y(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch
        )
        m_cf = measure.log_y(model(input_ids=cf["input_ids"], attention_mask=cf["attention_mask"]).logits, cf)
    assert summary["total_effect"] == pytest.approx(float(torch.expm1(m_cf - m).mean()), rel=1e-5)
    # every prompt's slot holds its profession, and the counterfactual differs only there
    for item, alt in zip(probe_set.items, probe_set.counterfactual, strict=True):
        diff = [i for i, (a, b) in enumerate(zip(item["input_ids"], alt["input_ids"], strict=True)) if a != b]
        assert diff == [item["positions"]]
    assert set(summary["sites"]) == {f"{c}/layer_{i}" for c in ("O", "head") for i in (0, 1)}
    assert all(row["status"] in ("ranked", "no effect") for row in summary["sites"].values())
