"""Winogender: the real bundle (720 sentences -> 240 triples), gotcha flags, occupation folds, bad inputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from debiaslit.data.winogender import read_winogender, split_by_occupation
from debiaslit.errors import ConfigError, DataFormatError
from tests.conftest import shared_path

PRONOUNS = {"male": "he", "female": "she", "neutral": "they"}


def write_bundle(directory: Path, sentence_rows: list[str] | None = None) -> Path:
    """A one-occupation bundle: 2 templates, 12 sentences (2 participants x 2 answers x 3 genders)."""
    (directory / "occupations-stats.tsv").write_text(
        "occupation\tbergsma_pct_female\tbls_pct_female\tbls_year\nnurse\t30.0\t90.0\t2015\n"
    )
    (directory / "templates.tsv").write_text(
        "occupation(0)\tother-participant(1)\tanswer\tsentence\n"
        "nurse\tpatient\t0\tThe $OCCUPATION helped the $PARTICIPANT because $NOM_PRONOUN was on duty.\n"
        "nurse\tpatient\t1\tThe $OCCUPATION helped the $PARTICIPANT because $NOM_PRONOUN was ill.\n"
    )
    if sentence_rows is None:
        sentence_rows = [
            f"nurse.{part}.{answer}.{gender}.txt\tThe nurse helped {obj} because {PRONOUNS[gender]} was here."
            for part, obj in (("patient", "the patient"), ("someone", "someone"))
            for answer in (0, 1)
            for gender in PRONOUNS
        ]
    (directory / "all_sentences.tsv").write_text(
        "sentid\tsentence\n" + "".join(r + "\n" for r in sentence_rows)
    )
    return directory


def test_shared_winogender_bundle() -> None:
    data = read_winogender(shared_path("winogender"))
    assert len(data.examples) == 720 and len(data.pairs) == 240
    assert len({ex.occupation for ex in data.examples}) == 60
    assert Counter(ex.answer for ex in data.examples) == {0: 360, 1: 360}
    assert Counter(ex.gender for ex in data.examples) == {"male": 240, "female": 240, "neutral": 240}
    assert sum(ex.participant == "someone" for ex in data.examples) == 360
    for pair in data.pairs:
        triple = (pair.male, pair.female, pair.neutral)
        assert [ex.gender for ex in triple] == ["male", "female", "neutral"]
        assert len({(ex.occupation, ex.participant, ex.answer, ex.template) for ex in triple}) == 1
    technician = data.examples[0]
    assert technician.uid == "technician.customer.1.male.txt"
    assert technician.sentence == "The technician told the customer that he could pay with cash."
    assert (technician.bergsma_pct_female, technician.bls_pct_female) == (9.42, 40.34)
    assert (
        technician.template == "The $OCCUPATION told the $PARTICIPANT that $NOM_PRONOUN could pay with cash."
    )


def test_gotcha_follows_methods_8_3() -> None:
    data = read_winogender(shared_path("winogender"))
    by_uid = {ex.uid: ex for ex in data.examples}
    # technician: BLS 40.34 % female. A male pronoun that refers to the participant is a gotcha.
    assert by_uid["technician.customer.1.male.txt"].gotcha is True
    assert by_uid["technician.customer.1.female.txt"].gotcha is False
    assert by_uid["technician.customer.0.female.txt"].gotcha is True
    assert by_uid["technician.customer.0.neutral.txt"].gotcha is None
    # Exactly one of the male/female versions of every sentence is a gotcha.
    assert all(pair.male.gotcha != pair.female.gotcha for pair in data.pairs)


def test_gotcha_uses_bls_not_bergsma(tmp_path: Path) -> None:
    data = read_winogender(write_bundle(tmp_path))  # nurse: 90 % female by BLS, 30 % by Bergsma
    by_uid = {ex.uid: ex for ex in data.examples}
    assert by_uid["nurse.patient.0.male.txt"].gotcha is True
    assert by_uid["nurse.patient.1.female.txt"].gotcha is True
    assert by_uid["nurse.patient.0.female.txt"].gotcha is False
    assert len(data.pairs) == 4


def test_split_by_occupation_never_shares_an_occupation() -> None:
    pairs = read_winogender(shared_path("winogender")).pairs
    [(train, held_out)] = split_by_occupation(pairs, val_fraction=0.25, seed=1)
    train_occ, eval_occ = {p.occupation for p in train}, {p.occupation for p in held_out}
    assert len(eval_occ) == 15 and len(train_occ) == 45 and not train_occ & eval_occ
    assert len(train) + len(held_out) == 240
    assert split_by_occupation(pairs, val_fraction=0.25, seed=1) == [(train, held_out)]
    [(_, other)] = split_by_occupation(pairs, val_fraction=0.25, seed=2)
    assert {p.occupation for p in other} != eval_occ

    folds = split_by_occupation(pairs, n_folds=5, seed=0)
    held = [{p.occupation for p in fold_eval} for _, fold_eval in folds]
    assert sorted(len(h) for h in held) == [12] * 5
    assert Counter(occ for h in held for occ in h) == Counter({occ: 1 for occ in train_occ | eval_occ})
    for fold_train, fold_eval in folds:
        assert not {p.occupation for p in fold_train} & {p.occupation for p in fold_eval}


def test_split_by_occupation_rejects_bad_options(tmp_path: Path) -> None:
    examples = read_winogender(write_bundle(tmp_path)).examples  # a single occupation
    with pytest.raises(ConfigError, match="exactly one of val_fraction or n_folds"):
        split_by_occupation(examples)
    with pytest.raises(ConfigError, match="leaves train or eval empty"):
        split_by_occupation(examples, val_fraction=0.5)
    with pytest.raises(ConfigError, match="n_folds must be in 2..1"):
        split_by_occupation(examples, n_folds=2)


def test_bad_sentids_are_reported_with_line_numbers(tmp_path: Path) -> None:
    rows = [
        "nurse.patient.0.male\tNo txt suffix.",
        "nurse.patient.2.male.txt\tBad answer.",
        "x.y.0.female.txt\tS.",
    ]
    with pytest.raises(DataFormatError) as info:
        read_winogender(write_bundle(tmp_path, rows))
    message = str(info.value)
    assert "all_sentences.tsv: 3 problem(s)" in message
    assert "line 2: sentid 'nurse.patient.0.male' is not occupation.participant.answer" in message
    assert "line 3: sentid 'nurse.patient.2.male.txt'" in message
    assert "line 4: occupation 'x' is missing from occupations-stats.tsv" in message


def test_incomplete_triples_and_missing_files_fail(tmp_path: Path) -> None:
    rows = [f"nurse.patient.0.{g}.txt\tS {g}." for g in ("male", "female")]
    with pytest.raises(DataFormatError, match=r"nurse\.patient\.0 lacks \['neutral'\]"):
        read_winogender(write_bundle(tmp_path, rows))
    (tmp_path / "templates.tsv").unlink()
    with pytest.raises(DataFormatError, match=r"templates\.tsv: no such file"):
        read_winogender(tmp_path)


def test_wrong_column_count_and_header_fail(tmp_path: Path) -> None:
    rows = ["nurse.patient.0.male.txt\tS.\textra"]
    with pytest.raises(
        DataFormatError, match=r"1 row\(s\) without exactly 2 tab-separated columns, lines \[2\]"
    ):
        read_winogender(write_bundle(tmp_path, rows))
    (tmp_path / "all_sentences.tsv").write_text("id\tsentence\n")
    with pytest.raises(DataFormatError, match=r"header \['id', 'sentence'\] is not \['sentid', 'sentence'\]"):
        read_winogender(tmp_path)
