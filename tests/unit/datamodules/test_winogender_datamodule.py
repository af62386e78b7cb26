"""WinogenderDataModule on the real files: occupation-disjoint splits and pronoun positions."""

from __future__ import annotations

import pytest

from debiaslit.datamodules.winogender import WinogenderDataModule
from debiaslit.errors import ConfigError
from tests.conftest import shared_path


@pytest.mark.parametrize("backbone", ["tiny-bert", "tiny-gpt2"])
def test_pairs_split_by_occupation_with_pronoun_positions(backbone: str) -> None:
    dm = WinogenderDataModule(
        data_dir=str(shared_path("winogender")), tokenizer=backbone, val_fraction=0.25, seed=3, max_length=128
    )
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 240
    assert not set(dm.train_set.occupations) & set(dm.val_set.occupations)
    assert len(dm.val_set.occupations) == 15
    from debiaslit.backbones import load_tokenizer

    tok = load_tokenizer(backbone)
    pronouns = {"male": {"he", "his", "him"}, "female": {"she", "her", "hers"}}
    for i in range(len(dm.train_set)):
        item = dm.train_set[i]
        for g in ("male", "female"):
            token = tok.convert_ids_to_tokens(item[f"input_ids_{g}"][item[f"pronoun_pos_{g}"]])
            assert token.lstrip("Ġ").lower() in pronouns[g], (g, token, dm.train_set.pairs[i].uid)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids_male"].shape[0] == 16
    assert (batch["attention_mask_female"].sum(1) > batch["pronoun_pos_female"]).all()


def test_truncation_before_the_pronoun_is_named() -> None:
    dm = WinogenderDataModule(data_dir=str(shared_path("winogender")), tokenizer="tiny-bert", max_length=16)
    with pytest.raises(ConfigError, match="max_length=16 truncates"):
        dm.setup("fit")


def test_unknown_gender_is_named() -> None:
    with pytest.raises(ConfigError, match="genders"):
        WinogenderDataModule(data_dir="x", genders=("male", "other"))
