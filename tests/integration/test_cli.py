"""The CLI: --help, every shipped config parses, linked arguments arrive, a tiny fit end to end."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from debiaslit.cli import DebiasCLI
from tests.conftest import REPO_ROOT

TINY = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")
SHIPPED = sorted((REPO_ROOT / "configs").rglob("*.yaml"))
#: Experiment files (top level) and add-ons (callbacks/) are whole configs; the other folders hold
#: reusable pieces of one section each (``trainer:``, ``data:``, ``model:``, ``checkpoint:``).
FULL_CONFIGS = [p for p in SHIPPED if p.parent.name == "configs"]
ADD_ONS = [p for p in SHIPPED if p.parent.name == "callbacks"]
PIECES = [p for p in SHIPPED if p not in FULL_CONFIGS and p not in ADD_ONS]


def test_console_script_help() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "debiaslit"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for sub in ("fit", "validate", "test", "predict"):
        assert sub in out.stdout


def test_module_entry_point_fit_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "debiaslit", "fit", "--model.help", "ERM"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "--model.backbone" in out.stdout and "--model.evaluator" in out.stdout


@pytest.mark.parametrize("config", FULL_CONFIGS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_shipped_config_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        DebiasCLI(args=["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "seed_everything:" in printed
    seed_line = next(line for line in printed.splitlines() if line.startswith("seed_everything:"))
    assert seed_line.split(":")[1].strip().isdigit(), "every config must set an explicit integer seed"


@pytest.mark.parametrize("piece", PIECES, ids=lambda p: str(p.relative_to(REPO_ROOT / "configs")))
def test_every_config_piece_parses_in_its_section(piece: Path, capsys: pytest.CaptureFixture) -> None:
    """``--data configs/data/x.yaml`` (etc.) composes a piece over a whole config, as experiments do."""
    section = piece.parent.name
    assert section in ("trainer", "data", "model", "checkpoint"), f"{piece}: unknown config folder"
    with pytest.raises(SystemExit) as exit_info:
        DebiasCLI(args=["fit", "--config", TINY, f"--{section}", str(piece), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert f"{section}:" in capsys.readouterr().out


def test_experiments_reference_only_existing_pieces() -> None:
    referenced = set()
    for config in FULL_CONFIGS:
        for line in config.read_text().splitlines():
            key, _, value = line.partition(": ")
            if key in ("trainer", "data", "model", "checkpoint") and value.endswith(".yaml"):
                assert (config.parent / value).is_file(), f"{config.name}: {value} does not exist"
                referenced.add(config.parent / value)
    shared = [p for p in PIECES if p.parent.name != "trainer"]  # trainer pieces are add-ons (see README)
    assert set(shared) <= referenced, f"pieces no experiment uses: {sorted(set(shared) - referenced)}"


@pytest.mark.parametrize("extra", ADD_ONS, ids=lambda p: p.name)
def test_callback_configs_compose_with_quickstart(extra: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        DebiasCLI(args=["fit", "--config", TINY, "--config", str(extra), "--print_config"])
    assert "callbacks:" in capsys.readouterr().out


def test_backbone_is_linked_to_the_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = DebiasCLI(args=["--config", TINY, "--model.init_args.backbone=tiny-roberta"], run=False)
    assert cli.model.hparams.backbone == "tiny-roberta"
    assert cli.datamodule.hparams.tokenizer == "tiny-roberta"


def _read_results(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    with path.open() as f:
        return {(r["eval_set"], r["group"]): (int(r["n"]), int(r["correct"])) for r in csv.DictReader(f)}


@pytest.mark.slow
def test_tiny_fit_writes_logs_checkpoints_and_exact_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import debiaslit

    monkeypatch.chdir(tmp_path)
    cli = debiaslit.fit(config=TINY, trainer__max_epochs=2)
    log_dir = Path(cli.trainer.log_dir)
    assert log_dir == Path("logs/tiny/version_0")
    assert (log_dir / "config.yaml").is_file()
    ckpts = sorted(p.name for p in Path("checkpoints/tiny/version_0").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(n.startswith("epoch01-") for n in ckpts), ckpts

    # The logged numbers equal a naive re-evaluation of the final model, example by example.
    results = _read_results(log_dir / "results" / "val_epoch01.csv")
    model, dm = cli.model.eval(), cli.datamodule
    for name, ds in dm.eval_datasets.items():
        correct = 0
        with torch.no_grad():
            for i in range(len(ds)):
                batch = dm._collate()([ds[i]])
                pred = model.evaluator.predictions(model(batch), ds.is_hans)
                correct += int(pred.item() == ds.labels[i])
        assert results[(name, "all")] == (len(ds), correct)

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/synth_ood/acc", "val/hans_like/acc", "val/hans_like/worst_cell"} <= set(tags)
    assert len(acc.Scalars("val/synth_ood/acc")) == 2
    final = acc.Scalars("val/synth_ood/acc")[-1].value
    n, c = results[("synth_ood", "all")]
    assert final == pytest.approx(c / n, abs=1e-6)
    assert any(t.startswith("val/results") for t in acc.Tags()["tensors"])
