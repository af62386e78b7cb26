"""TableNLI / read_table on hand-made TSV, CSV and JSONL files: columns by name or position, labels by
name or through label_map, and every bad line reported with the file and line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from debiaslit.data.schema import NLIExample
from debiaslit.data.sources import TableNLI
from debiaslit.data.tables import read_table
from debiaslit.errors import ConfigError, DataFormatError


def test_headerless_mccoy_style_tsv_by_position(tmp_path: Path) -> None:
    path = tmp_path / "lexical_overlap.tsv"
    path.write_text(
        'The "famous" doctor slept .\tThe doctor slept .\tentailment\n'
        "The lawyer saw the judge .\tThe judge saw the lawyer .\tContradiction\n"
        "\n"
        "A cat sat .\tA dog sat .\tneutral\n"
    )
    examples = TableNLI(str(path), header=False).load("mccoy")
    assert examples == [
        NLIExample("lexical_overlap:1", 'The "famous" doctor slept .', "The doctor slept .", "entailment"),
        NLIExample("lexical_overlap:2", "The lawyer saw the judge .", "The judge saw the lawyer .",
                   "contradiction"),
        NLIExample("lexical_overlap:4", "A cat sat .", "A dog sat .", "neutral"),
    ]  # fmt: skip
    # other positions and an id column
    swapped = tmp_path / "swapped.tsv"
    swapped.write_text("neutral\tp7\tA b .\tC d .\n")
    cols = {"label": 0, "id": 1, "premise": 2, "hypothesis": 3}
    assert read_table(swapped, columns=cols, header=False).examples == [
        NLIExample("swapped:p7", "A b .", "C d .", "neutral")
    ]


def test_csv_with_header_quoting_and_label_map(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('idx,text_a,text_b,y\n1,"Hello, world.",Hi.,0\n2,"She said ""no"".",No.,2\n3,A.,B.,1\n')
    result = read_table(
        path,
        columns={"id": "idx", "premise": "text_a", "hypothesis": "text_b", "label": "y"},
        label_map={0: "entailment", 1: "neutral", 2: "contradiction"},
    )
    assert [(e.uid, e.premise, e.label) for e in result.examples] == [
        ("pairs:1", "Hello, world.", "entailment"),
        ("pairs:2", 'She said "no".', "contradiction"),
        ("pairs:3", "A.", "neutral"),
    ]


def test_jsonl_fields_and_no_consensus_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"p": "A b.", "h": "A.", "l": "entailment"}\n{"p": "C.", "h": "D.", "l": "-"}\n')
    result = read_table(path, columns={"premise": "p", "hypothesis": "h", "label": "l"})
    assert [e.uid for e in result.examples] == ["x:1"] and result.skipped == {"gold_label '-'": 1}


def test_every_bad_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(
        "A .\tB .\tentailment\n"  # line 1: fine
        "A .\tB .\tmaybe\n"  # line 2: unknown label
        "only two\tcolumns\n"  # line 3: wrong width
        "C .\tD .\tneutral\n"  # line 4: fine
        "E .\tF .\tyes\n"  # line 5: unknown label
    )
    with pytest.raises(DataFormatError) as err:
        read_table(path, header=False)
    msg = str(err.value)
    assert str(path) in msg and "3 malformed row(s) of 5" in msg
    assert "line 2: unknown label 'maybe'" in msg and "line 5: unknown label 'yes'" in msg
    assert "line 3: 2 columns, expected 3" in msg and "line 1:" not in msg and "line 4" not in msg
    mapped = tmp_path / "mapped.tsv"
    mapped.write_text("A .\tB .\t0\nA .\tC .\t3\nA .\tD .\tentailment\n")
    with pytest.raises(DataFormatError) as err:
        read_table(mapped, header=False, label_map={"0": "entailment", "1": "neutral", "2": "contradiction"})
    msg = str(err.value)
    assert "line 2: label '3' is not a key of label_map" in msg and "line 3: label 'entailment'" in msg


def test_bad_configuration_and_headers(tmp_path: Path) -> None:
    path = tmp_path / "h.tsv"
    path.write_text("sentence1\tsentence2\tgold\nA .\tB .\tentailment\n")
    with pytest.raises(DataFormatError, match=r"line 1: header .* lacks column\(s\) \['premise', 'hyp"):
        read_table(path, columns={"premise": "premise", "hypothesis": "hypothesis", "label": "gold"})
    with pytest.raises(ConfigError, match="missing \\['label'\\]"):
        read_table(path, columns={"premise": "sentence1", "hypothesis": "sentence2"})
    with pytest.raises(ConfigError, match="positions"):
        read_table(path, columns={"premise": "sentence1", "hypothesis": 1, "label": 2}, header=False)
    with pytest.raises(ConfigError, match="targets must be"):
        read_table(path, label_map={0: "yes"})
    with pytest.raises(ConfigError, match="format"):
        read_table(path, fmt="xlsx")
    with pytest.raises(DataFormatError, match="no such file"):
        read_table(tmp_path / "missing.tsv")
