"""MLMHeadFit: only the head outside the encoder trains, and the export reloads as a plain masked LM."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from debiaslit.datamodules import NeutralText
from debiaslit.errors import ConfigError
from debiaslit.methods import MLMHeadFit
from tests.conftest import shared_path


def test_fit_changes_only_the_head_and_exports(tmp_path: Path) -> None:
    pl.seed_everything(0)
    module = MLMHeadFit("tiny-bert", lr=1e-2)
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("cls.") for n in trainable)
    assert module.model.get_output_embeddings().weight is module.model.bert.embeddings.word_embeddings.weight
    before = {n: p.detach().clone() for n, p in module.model.state_dict().items()}
    data = NeutralText(
        str(shared_path("mnli", "mnli_development_set_number_of_correct_responses.txt")),
        tokenizer="tiny-bert", max_train=16, batch_size=8, max_length=32,
    )  # fmt: skip
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    after = module.model.state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= {n for n in before if n.startswith("cls.")}, changed
    assert "val/mlm_loss" in trainer.callback_metrics
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = module.export_pretrained(tmp_path / "mlm")
    reloaded = AutoModelForMaskedLM.from_pretrained(str(out)).eval()
    ids = AutoTokenizer.from_pretrained(str(out))("the nurse said that she was tired", return_tensors="pt")
    module.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**ids).logits, module.model(**ids).logits)
    with pytest.raises(ConfigError, match="not empty"):
        module.export_pretrained(out)


def test_bad_mlm_probability() -> None:
    with pytest.raises(ConfigError, match="mlm_probability"):
        MLMHeadFit("tiny-bert", mlm_probability=0.0)
