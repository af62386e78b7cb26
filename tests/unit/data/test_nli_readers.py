"""NLI readers: real MNLI dev file, every bad-input case on small files, Hub row conversion, seeded splits."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest

from debiaslit.data.nli_readers import (
    load_nli_from_hub,
    nli_examples_from_rows,
    read_nli_file,
    split_train_val,
)
from debiaslit.data.schema import NLIExample
from debiaslit.errors import ConfigError, DataFormatError
from tests.conftest import shared_path

GLUE_HEADER = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label"
DEV_CORRECT_HEADER = "index\tpremise\thypothesis\tgold_label\tnumber of correct responses (out of 100)"


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def glue_row(i: int, premise: str, hypothesis: str, label: str, pair_id: str | None = None) -> str:
    return f"{i}\t{i}\t{pair_id or f'{i}n'}\tfiction\t{premise}\t{hypothesis}\t{label}\t{label}"


def test_shared_mnli_dev_reads_all_rows_despite_unbalanced_quotes() -> None:
    result = read_nli_file(shared_path("mnli", "mnli_development_set_number_of_correct_responses.txt"))
    assert len(result.examples) == 9815
    assert Counter(ex.label for ex in result.examples) == {
        "entailment": 3479,
        "contradiction": 3213,
        "neutral": 3123,
    }
    assert result.skipped == {}
    assert len({ex.uid for ex in result.examples}) == 9815
    first = result.examples[0]
    assert first.uid == "mnli_development_set_number_of_correct_responses:0"
    # The upstream hypothesis is "Everyone really likes the newest benefits " (trailing space).
    assert (first.premise, first.hypothesis, first.label) == (
        "The new rights are nice enough",
        "Everyone really likes the newest benefits",
        "neutral",
    )
    assert sum('"' in ex.premise + ex.hypothesis for ex in result.examples) == 339  # rows with quotes


def test_glue_tsv_maps_labels_by_name_strips_and_counts_no_consensus(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dev_matched.tsv",
        GLUE_HEADER,
        glue_row(0, "  A man sleeps. ", " A person rests.", "Entailment"),
        glue_row(1, "A dog runs.", "A cat runs.", "-"),
        glue_row(2, "It rains.", "It is dry.", "CONTRADICTION"),
        glue_row(3, "He sings.", "He sings well.", "neutral"),
    )
    result = read_nli_file(path)
    assert result.examples == [
        NLIExample("dev_matched:0n", "A man sleeps.", "A person rests.", "entailment"),
        NLIExample("dev_matched:2n", "It rains.", "It is dry.", "contradiction"),
        NLIExample("dev_matched:3n", "He sings.", "He sings well.", "neutral"),
    ]
    assert result.skipped == {"gold_label '-'": 1}
    assert read_nli_file(path, fmt="glue_tsv", source="mnli").examples[0].uid == "mnli:0n"


def test_rte_style_tsv_uses_label_column_and_index_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "rte.tsv", "index\tsentence1\tsentence2\tlabel", "7\tP\tH\tentailment")
    assert read_nli_file(path).examples == [NLIExample("rte:7", "P", "H", "entailment")]


def test_unbalanced_quote_does_not_merge_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "quotes.tsv",
        DEV_CORRECT_HEADER,
        '0\t"He said so, she replied.\tShe replied.\tentailment\t90',
        "1\tThe sky is blue.\tThe sky is green.\tcontradiction\t100",
        '2\tA "quoted" word.\tA word".\tneutral\t50',
    )
    result = read_nli_file(path)
    assert [ex.uid for ex in result.examples] == ["quotes:0", "quotes:1", "quotes:2"]
    assert result.examples[0].premise == '"He said so, she replied.'
    assert result.examples[1].premise == "The sky is blue."
    assert result.examples[2].hypothesis == 'A word".'


def test_malformed_rows_are_all_reported_with_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.tsv",
        GLUE_HEADER,
        glue_row(0, "P", "H", "neutral"),
        "1\t1\t1n\tfiction\tonly a premise",
        glue_row(2, "P", "H", "neutral"),
        glue_row(3, "P", "H", "neutral") + "\textra",
    )
    with pytest.raises(DataFormatError) as info:
        read_nli_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "2 malformed row(s)" in message
    assert "line 3: 5 tab-separated columns, the header has 8" in message
    assert "line 5: 9 tab-separated columns" in message
    assert "sentence1, sentence2 and gold_label" in message  # what was expected


def test_only_the_first_20_problems_are_listed(tmp_path: Path) -> None:
    rows = [f"{i}\tP\tH\tneutral\tmany" for i in range(25)]
    path = write(tmp_path, "counts.txt", DEV_CORRECT_HEADER, *rows)
    with pytest.raises(DataFormatError) as info:
        read_nli_file(path, fmt="mnli_dev_correct")
    message = str(info.value)
    assert "25 malformed row(s) of 25" in message
    assert "line 21: number of correct responses (out of 100) = 'many'" in message
    assert "line 22:" not in message
    assert "and 5 more" in message


def test_unknown_label_names_line_and_allowed_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path, "ints.tsv", GLUE_HEADER, glue_row(0, "P", "H", "neutral"), glue_row(1, "P", "H", "2")
    )
    with pytest.raises(
        DataFormatError, match=r"line 3: unknown label '2' \(allowed: entailment, neutral, contradiction\)"
    ):
        read_nli_file(path)


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.tsv",
        GLUE_HEADER,
        glue_row(0, "P", "H", "neutral", pair_id="x"),
        glue_row(1, "P2", "H2", "neutral"),
        glue_row(2, "P3", "H3", "neutral", pair_id="x"),
    )
    with pytest.raises(DataFormatError, match=r"line 4: duplicate id 'dup:x' \(also on line 2\)"):
        read_nli_file(path)


def test_missing_empty_and_unrecognised_files(tmp_path: Path) -> None:
    with pytest.raises(
        DataFormatError, match=r"nope\.jsonl: no such file \(expected one JSON object per line"
    ):
        read_nli_file(tmp_path / "nope.jsonl", fmt="snli_jsonl")
    with pytest.raises(DataFormatError, match="empty.tsv: the file is empty"):
        read_nli_file(write(tmp_path, "empty.tsv"))
    with pytest.raises(DataFormatError, match="header.tsv: no data rows"):
        read_nli_file(write(tmp_path, "header.tsv", GLUE_HEADER))
    with pytest.raises(DataFormatError, match="cannot tell the NLI format.*pass fmt="):
        read_nli_file(write(tmp_path, "odd.tsv", "a\tb", "1\t2"))
    with pytest.raises(DataFormatError, match="lacks sentence1, sentence2 or gold_label/label"):
        read_nli_file(write(tmp_path, "nolabel.tsv", "index\tsentence1\tsentence2", "1\tP\tH"))
    with pytest.raises(ConfigError, match="unknown NLI file format 'csv'"):
        read_nli_file(tmp_path / "x.csv", fmt="csv")


def test_snli_jsonl_counts_no_consensus_and_uses_pair_ids(tmp_path: Path) -> None:
    rows = [
        {"sentence1": "A man.", "sentence2": "A person.", "gold_label": "entailment", "pairID": "a#1"},
        {"sentence1": "A man.", "sentence2": "A dog.", "gold_label": "-", "pairID": "a#2"},
        {"sentence1": "A man.", "sentence2": "A woman.", "gold_label": "-", "pairID": "a#3"},
    ]
    path = write(tmp_path, "snli_1.0_dev.jsonl", *map(json.dumps, rows))
    result = read_nli_file(path)
    assert result.examples == [NLIExample("snli_1.0_dev:a#1", "A man.", "A person.", "entailment")]
    assert result.skipped == {"gold_label '-'": 2}


def test_jsonl_bad_json_and_missing_fields_are_reported(tmp_path: Path) -> None:
    good = {"sentence1": "P", "sentence2": "H", "gold_label": "neutral"}
    path = write(
        tmp_path,
        "mnli.jsonl",
        json.dumps(good),
        '{"sentence1": "P", "sentence2": ',
        json.dumps({"sentence1": "P", "gold_label": "neutral"}),
        "[1, 2]",
    )
    with pytest.raises(DataFormatError) as info:
        read_nli_file(path)
    message = str(info.value)
    assert "3 malformed row(s) of 4" in message
    assert "line 2: invalid JSON" in message
    assert "line 3: missing field(s) sentence2" in message
    assert "line 4: expected a JSON object, found list" in message


def label_dataset(names: list[str], labels: list[int]) -> datasets.Dataset:
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=names),
            "idx": datasets.Value("int32"),
        }
    )
    n = len(labels)
    rows = {"premise": [f"p{i}" for i in range(n)], "hypothesis": [f"h{i}" for i in range(n)]}
    return datasets.Dataset.from_dict({**rows, "label": labels, "idx": list(range(n))}, features=features)


def test_hub_rows_are_mapped_by_classlabel_names_not_position() -> None:
    # chrisc36/debias order (contradiction, entailment, neutral) differs from ours (METHODS.md §0).
    ds = label_dataset(["contradiction", "entailment", "neutral"], [0, 1, 2, -1])
    result = nli_examples_from_rows(ds, ds.features["label"].names, source="toy")
    assert [(ex.uid, ex.label) for ex in result.examples] == [
        ("toy:0", "contradiction"),
        ("toy:1", "entailment"),
        ("toy:2", "neutral"),
    ]
    assert result.skipped == {"label -1": 1}


def test_hub_rows_with_foreign_label_names_or_bad_labels_fail() -> None:
    with pytest.raises(DataFormatError, match=r"label names \['not_entailment'\] are not NLI labels"):
        nli_examples_from_rows([], ["entailment", "not_entailment"], source="rte")
    rows = [{"premise": "p", "hypothesis": "h", "label": 5}]
    with pytest.raises(DataFormatError, match="row 0: label 5 is not -1 or an index"):
        nli_examples_from_rows(rows, ["entailment", "neutral", "contradiction"], source="x")


def test_hub_offline_fails_fast_and_points_to_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataFormatError, match=r"pass local files instead: read_nli_file\(path\)"):
        load_nli_from_hub("nyu-mll/glue", "validation_matched")
    assert time.monotonic() - start < 30


def test_hub_unknown_dataset_or_split_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown Hub NLI dataset 'glue'"):
        load_nli_from_hub("glue", "train")
    with pytest.raises(ConfigError, match="no labelled split 'test_matched'"):
        load_nli_from_hub("nyu-mll/glue", "test_matched")


def examples(n: int) -> list[NLIExample]:
    return [NLIExample(f"s:{i}", "p", "h", "neutral") for i in range(n)]


def test_split_train_val_is_seeded_exact_and_order_independent() -> None:
    items = examples(100)
    train, val = split_train_val(items, val_fraction=0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert {ex.uid for ex in train} | {ex.uid for ex in val} == {ex.uid for ex in items}
    assert not {ex.uid for ex in train} & {ex.uid for ex in val}
    assert val == sorted(val, key=lambda ex: int(ex.uid[2:]))  # input order kept
    assert split_train_val(items, 0.2, seed=3) == (train, val)
    _, val_reversed = split_train_val(items[::-1], 0.2, seed=3)
    assert {ex.uid for ex in val_reversed} == {ex.uid for ex in val}
    _, val_other_seed = split_train_val(items, 0.2, seed=4)
    assert {ex.uid for ex in val_other_seed} != {ex.uid for ex in val}


@pytest.mark.parametrize(("n", "fraction"), [(3, 0.1), (3, 0.9), (10, 0.0), (10, 1.0)])
def test_split_train_val_refuses_an_empty_side(n: int, fraction: float) -> None:
    with pytest.raises(ConfigError):
        split_train_val(examples(n), fraction, seed=0)
