"""Bias models read from files: probabilities-file coverage, checkpoints loaded with weights_only and
refused when they need arbitrary unpickling, and a cache keyed by the checkpoint's bytes."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

import debiaslit
from debiaslit.bias import CheckpointBias, ProbsFileBias, SplitProbs, compute_bias_probs, write_probs_file
from debiaslit.data.sources import ShortcutSynthetic
from debiaslit.data.synthetic import generate_shortcut_nli
from debiaslit.datamodules import NLIDataModule
from debiaslit.errors import DataFormatError
from tests.conftest import REPO_ROOT


def _probs_file(path: Path, examples: list) -> Path:
    rows = torch.softmax(torch.randn(len(examples), 3, generator=torch.Generator().manual_seed(1)), -1)
    write_probs_file(path, {"train": SplitProbs([e.uid for e in examples], rows)})
    return path


def test_probs_file_coverage_is_checked_per_set(tmp_path: Path) -> None:
    train = generate_shortcut_nli(9, 0.9, seed=0, source="train")
    dev = generate_shortcut_nli(6, 0.5, seed=1, source="dev")
    ood = generate_shortcut_nli(5, 0.5, seed=2, source="ood")
    spec = ProbsFileBias(str(_probs_file(tmp_path / "p.json", [*train, *dev[:4]])))
    # a training set with rows missing is refused, with how many and which
    with pytest.raises(DataFormatError) as err:
        compute_bias_probs(spec, [*train, *ood[:2]], {})
    assert "(training set)" in str(err.value) and "2 of 11 data ids missing" in str(err.value)
    assert "ood:0" in str(err.value) and "p.json" in str(err.value)
    # an evaluation set covered only partly is refused the same way
    with pytest.raises(DataFormatError, match=r"eval set 'dev'\): ids do not match the data \(2 of 6"):
        compute_bias_probs(spec, train, {"dev": dev})
    # a set the file does not cover at all: a warning, no probabilities, coverage 0 in the report
    with pytest.warns(UserWarning, match="no rows for eval set 'ood' \\(5 examples\\)"):
        result = compute_bias_probs(spec, train, {"dev4": dev[:4], "ood": ood})
    assert set(result.probs) == {"train", "dev4"}
    assert result.report["ood"] == {"n": 5, "coverage": 0.0} and result.report["dev4"]["coverage"] == 1.0


class Payload:
    """Not a tensor, container or primitive: unpickling it would run arbitrary code paths."""


def test_checkpoint_needing_arbitrary_unpickling_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"backbone": "tiny-bert"}, "state_dict": {}, "extra": Payload()}, path)
    train = generate_shortcut_nli(6, 0.9, seed=0)
    with pytest.raises(DataFormatError, match="evil.ckpt' holds objects other than tensors") as err:
        compute_bias_probs(CheckpointBias(str(path)), train, {}, option="data.teacher")
    assert "arbitrary unpickling" in str(err.value)


def _teacher_probs(tmp_path: Path, ckpt: Path) -> tuple[torch.Tensor, int]:
    """Attach a CheckpointBias teacher with the auto cache of a run; (probs, cache files after)."""
    dm = NLIDataModule(
        train=ShortcutSynthetic(n=12), tokenizer="tiny-bert", teacher=CheckpointBias(str(ckpt), max_length=32)
    )
    logger = TensorBoardLogger(save_dir=str(tmp_path / "logs"), name="run")
    dm.trainer = pl.Trainer(logger=logger, accelerator="cpu", devices=1, enable_progress_bar=False)
    dm.setup("fit")
    return dm.train_set.extras["teacher_probs"], len(list((tmp_path / "logs/run/bias_cache").glob("*.json")))


def test_checkpoint_cache_is_keyed_by_the_file_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    debiaslit.fit(config=str(REPO_ROOT / "tests/configs/tiny_erm.yaml"),
                  overrides={"trainer.max_epochs": 1, "trainer.limit_train_batches": 1})  # fmt: skip
    ckpt = tmp_path / "checkpoints/tiny/version_0/last.ckpt"
    first, files = _teacher_probs(tmp_path, ckpt)  # a real run's checkpoint loads with weights_only=True
    assert files == 1 and torch.allclose(first.sum(1), torch.ones(12))
    again, files = _teacher_probs(tmp_path, ckpt)
    assert files == 1 and torch.equal(again, first)  # reused
    # the teacher is "retrained" to the same path: other weights, same file name
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    classifier = next(k for k in state["state_dict"] if k.endswith("classifier.weight"))
    state["state_dict"][classifier] = state["state_dict"][classifier] * -3.0
    torch.save(state, ckpt)
    retrained, files = _teacher_probs(tmp_path, ckpt)
    assert files == 2 and not torch.allclose(retrained, first, atol=1e-4)  # recomputed, not served stale
