"""Bias in Bios readers, the templated generator and SHIFT's split selection."""

from __future__ import annotations

import json
import re
import time

import pytest

from debiaslit.data.bias_in_bios import (
    GENDERS,
    LABHC_PROFESSIONS,
    TEMPLATED_PROFESSIONS,
    Bio,
    cell_counts,
    generate_bios,
    load_bios_from_hub,
    read_bios,
    select_cells,
)
from debiaslit.errors import ConfigError, DataFormatError


def test_templated_bios_carry_gender_in_names_and_pronouns_only():
    bios = generate_bios(20, TEMPLATED_PROFESSIONS, seed=3)
    assert cell_counts(bios) == {(p, g): 20 for p in sorted(TEMPLATED_PROFESSIONS) for g in sorted(GENDERS)}
    assert len({b.uid for b in bios}) == len(bios)
    for bio in bios:
        words = set(re.findall(r"[a-z']+", bio.text.lower()))
        other = {"he", "his"} if bio.gender == "female" else {"she", "her"}
        assert not words & other, bio
        assert not words & {p.replace("_", " ") for p in TEMPLATED_PROFESSIONS}, bio  # no titles
    assert generate_bios(5, seed=1) == generate_bios(5, seed=1)
    with pytest.raises(ConfigError, match="no profession \\['dj'\\]"):
        generate_bios(5, ("nurse", "dj"))


def test_read_jsonl_and_every_bad_line_reported(tmp_path):
    good = tmp_path / "bios.jsonl"
    rows = [
        {"text": " She teaches. ", "profession": "Professor", "gender": "female"},
        {"hard_text": "He nurses.", "profession": 13, "gender": 0},  # LabHC: 13 = nurse, 0 = male
    ]
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_bios(good) == [
        Bio("bios:1", "She teaches.", "professor", "female"),
        Bio("bios:2", "He nurses.", "nurse", "male"),
    ]
    bad = tmp_path / "bad.jsonl"
    lines = [
        json.dumps(rows[0]),
        json.dumps({"profession": "nurse", "gender": "male"}),
        json.dumps({"text": "x", "profession": 99, "gender": "male"}),
        json.dumps({"text": "x", "profession": "nurse", "gender": "m"}),
        "{not json",
        "[1, 2]",
    ]
    bad.write_text("\n".join(lines))
    with pytest.raises(DataFormatError) as err:
        read_bios(bad)
    message = str(err.value)
    assert "5 malformed row(s)" in message and str(bad) in message
    for line, what in [(2, "no text"), (3, "index 99"), (4, "gender 'm'"), (5, "invalid JSON"), (6, "list")]:
        assert re.search(rf"line {line}: .*{what}", message), (line, message)
    with pytest.raises(DataFormatError, match="no such file"):
        read_bios(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(DataFormatError, match="unknown extension '.csv'"):
        read_bios(tmp_path / "x.csv")


def test_read_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bios.parquet"
    table = {"hard_text": ["a b", "c d", "e"], "profession": [21, 13, 13], "gender": [0, 1, 2]}
    pq.write_table(pa.table(table), path)
    with pytest.raises(DataFormatError, match="row 3: gender 2"):
        read_bios(path)
    pq.write_table(pa.table({k: v[:2] for k, v in table.items()}), path)
    assert [(b.profession, b.gender) for b in read_bios(path)] == [("professor", "male"), ("nurse", "female")]
    assert LABHC_PROFESSIONS[21] == "professor"
    path.write_bytes(b"PAR1 not parquet")
    with pytest.raises(DataFormatError, match="not a readable Parquet file"):
        read_bios(path)


def test_hub_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataFormatError, match="LabHC/bias_in_bios split 'train'.*Offline\\?"):
        load_bios_from_hub("train")
    assert time.monotonic() - start < 60


def test_select_cells():
    bios = generate_bios(10, ("professor", "nurse", "surgeon"))
    nurse_men = [b for b in bios if (b.profession, b.gender) == ("nurse", "male")]
    bios = [b for b in bios if b not in nurse_men[:3]]  # that cell is the smallest: 7
    pairing = {"professor": "male", "nurse": "female"}
    ambiguous = select_cells(bios, pairing, "ambiguous")
    assert cell_counts(ambiguous) == {("nurse", "female"): 10, ("professor", "male"): 10}
    balanced = select_cells(bios, pairing, "balanced", seed=1)
    counts = cell_counts(balanced)
    assert len(counts) == 4 and len(set(counts.values())) == 1 and counts[("nurse", "male")] == 7
    assert [b.uid for b in balanced] == [b.uid for b in bios if b in set(balanced)]  # order kept
    assert [b.uid for b in select_cells(bios, pairing, "all")] == [
        b.uid for b in bios if b.profession in pairing
    ]
    with pytest.raises(DataFormatError, match="no bios for .*'teacher'"):
        select_cells(bios, {"teacher": "male", "nurse": "female"}, "balanced", where="bios")
    with pytest.raises(ConfigError, match="split kind"):
        select_cells(bios, pairing, "skewed")
