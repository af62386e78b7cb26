"""The gendered-pair contract: Winogender and WinoBias DataModules on the real files and on bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from debiaslit.backbones import load_tokenizer
from debiaslit.datamodules import WinoBiasDataModule, WinogenderDataModule
from debiaslit.datamodules.gendered_pairs import word_difference
from debiaslit.errors import ConfigError, DataFormatError
from tests.conftest import shared_path
from tests.unit.data.test_winogender import write_bundle

PRONOUNS = {"male": {"he", "his", "him"}, "female": {"she", "her"}}


def _word(tok, item: dict, g: str) -> str:
    return tok.decode(item[f"input_ids_{g}"][item[f"word_start_{g}"] : item[f"word_end_{g}"]]).strip()


@pytest.mark.parametrize("backbone", ["tiny-bert", "tiny-gpt2"])
def test_winogender_pairs_carry_the_word_spans(backbone: str) -> None:
    dm = WinogenderDataModule(
        data_dir=str(shared_path("winogender")), tokenizer=backbone, val_fraction=0.25, seed=3,
        max_length=128, stats="bls",
    )  # fmt: skip
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 240
    assert not set(dm.train_set.occupations) & set(dm.val_set.occupations)
    assert len(dm.val_set.occupations) == 15
    tok = load_tokenizer(backbone)
    for i in range(len(dm.train_set)):
        item, pair = dm.train_set[i], dm.train_set.pairs[i]
        for g in ("male", "female"):
            assert _word(tok, item, g).lower() in PRONOUNS[g], (g, pair.uid)
        assert item["pair_type"] == 0 and item["pct_female"] == pair.bls_pct_female
        assert item["male_advantaged"] == (pair.bls_pct_female < 50)
        assert dm.train_set.occupations[item["occupation_idx"]] == pair.occupation
    if backbone == "tiny-gpt2":  # causal inputs start with BOS so that the word always has context
        assert dm.train_set[0]["input_ids_male"][0] == tok.bos_token_id
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids_male"].shape[0] == 16
    assert (batch["attention_mask_female"].sum(1) >= batch["word_end_female"]).all()


def test_winobias_pairs_pro_is_advantaged_and_mismatches_are_named() -> None:
    directory = str(shared_path("winobias"))
    with pytest.raises(DataFormatError, match=r"type1\.dev:27.*mismatched=skip"):
        WinoBiasDataModule(data_dir=directory).setup("fit")
    dm = WinoBiasDataModule(data_dir=directory, tokenizer="tiny-gpt2", mismatched="skip", seed=1)
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 792 - 25  # 11 upstream edits + 15 two-pronoun pairs, 1 both
    assert not set(dm.train_set.occupations) & set(dm.val_set.occupations)
    tok = load_tokenizer("tiny-gpt2")
    types = set()
    for i in range(len(dm.val_set)):
        item, pair = dm.val_set[i], dm.val_set.pairs[i]
        types.add(item["pair_type"])
        assert (
            _word(tok, item, "male") in PRONOUNS["male"] and _word(tok, item, "female") in PRONOUNS["female"]
        )
        file, number = pair.uid.split(":")
        pro = (shared_path("winobias") / f"pro_stereotyped_{file.replace('.dev', '.txt.dev')}").read_text()
        line = next(row for row in pro.splitlines() if row.startswith(f"{number} "))
        pro_sentence = line.partition(" ")[2].replace("[", "").replace("]", "")
        assert (pair.male if item["male_advantaged"] else pair.female) == pro_sentence
    assert types == {1, 2}


def _write_winobias(directory: Path, pro: list[str], anti: list[str]) -> str:
    for kind in (1, 2):
        (directory / f"pro_stereotyped_type{kind}.txt.test").write_text("\n".join(pro))
        (directory / f"anti_stereotyped_type{kind}.txt.test").write_text("\n".join(anti))
    (directory / "male_occupations.txt").write_text("developer")
    (directory / "female_occupations.txt").write_text("nurse")
    return str(directory)


def test_winobias_test_split_and_bad_pairs(tmp_path: Path) -> None:
    pro = [
        "1 [The developer] met the nurse because [he] was late.",
        "2 [The nurse] met him so [she] could go.",
    ]
    anti = [
        "1 [The developer] met the nurse because [she] was late.",
        "2 [The nurse] met him so [he] can go.",
    ]
    with pytest.raises(DataFormatError, match=r"type1\.test:2"):
        WinoBiasDataModule(data_dir=_write_winobias(tmp_path, pro, anti), split="test").setup("fit")
    anti[1] = "2 [The nurse] met him so [he] could go."
    stats = tmp_path / "stats.tsv"
    stats.write_text("occupation\tbergsma_pct_female\tbls_pct_female\tbls_year\ndeveloper\t10\t20\t2015\n")
    dm = WinoBiasDataModule(
        data_dir=_write_winobias(tmp_path, pro, anti), split="test", stats_file=str(stats)
    )
    with pytest.raises(DataFormatError, match="'nurse' is missing from .*stats.tsv"):
        dm.setup("fit")
    (tmp_path / "female_occupations.txt").write_text("teacher")
    with pytest.raises(DataFormatError, match="'nurse' is not in"):
        WinoBiasDataModule(data_dir=str(tmp_path), split="test").setup("fit")


def test_winogender_mismatch_and_truncation(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    rows = (tmp_path / "all_sentences.tsv").read_text().replace("she was here", "she is here")
    (tmp_path / "all_sentences.tsv").write_text(rows)
    with pytest.raises(DataFormatError, match=r"nurse\.patient\.0"):
        WinogenderDataModule(data_dir=str(tmp_path)).setup("fit")
    dm = WinogenderDataModule(data_dir=str(shared_path("winogender")), tokenizer="tiny-bert", max_length=16)
    with pytest.raises(ConfigError, match="max_length=16 truncates the gendered word"):
        dm.setup("fit")
    with pytest.raises(ConfigError, match="stats"):
        WinogenderDataModule(data_dir="x", stats="census")


def test_word_difference() -> None:
    assert word_difference("so he ran.", "so she ran.") == ((3, 5), (3, 6))
    assert word_difference("his hat", "her hat") == ((0, 3), (0, 3))
    assert word_difference("he saw his", "she saw her") is None
    assert word_difference("same", "same") is None
