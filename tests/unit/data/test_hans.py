"""HANS reader/writer and our HANS-style generator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from debiaslit.data.hans import (
    FACTIVE_VERBS,
    HANS_COLUMNS,
    HANS_LIKE_SUBCASES,
    NONFACTIVE_VERBS,
    generate_hans_like,
    generate_hans_like_with_trees,
    read_hans,
    render,
    tree_leaves,
    write_hans,
)
from debiaslit.data.overlap import word_overlap
from debiaslit.data.schema import HANS_HEURISTICS, HANS_LABELS, NLIExample
from debiaslit.errors import ConfigError, DataFormatError

HEADER = "\t".join(HANS_COLUMNS)


def _row(label: str, s1: str, s2: str, pair_id: str, heuristic: str, subcase: str, template: str) -> str:
    bp1, bp2 = "( ( The doctor ) slept )", "( ( The doctor ) slept )"
    p1, p2 = "(ROOT (S (NP (DT The) (NN doctor)) (VP (VBD slept))))", "(ROOT (S))"
    return "\t".join([label, bp1, bp2, p1, p2, s1, s2, pair_id, heuristic, subcase, template])


def _write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- reader


def test_read_official_format(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "heuristics_evaluation_set.txt",
        [
            _row("non-entailment", "The president advised the doctor .", "The doctor advised the president .",
                 "ex0", "lexical_overlap", "ln_subject/object_swap", "temp1"),
            # a bare double quote must survive (csv.QUOTE_NONE)
            _row("entailment", 'The "famous" actor slept .', "The actor slept .", "ex1", "subsequence",
                 "se_adjective", "temp27"),
            "",  # blank line at the end carries no data
        ],
    )  # fmt: skip
    examples = read_hans(path)
    assert examples == [
        NLIExample("hans:ex0", "The president advised the doctor .", "The doctor advised the president .",
                   "non-entailment", "lexical_overlap", "ln_subject/object_swap", "temp1"),
        NLIExample("hans:ex1", 'The "famous" actor slept .', "The actor slept .", "entailment", "subsequence",
                   "se_adjective", "temp27"),
    ]  # fmt: skip
    # a folder holding the official file name is accepted too
    assert read_hans(tmp_path) == examples


def test_missing_file_names_path_format_and_source(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "heuristics_evaluation_set.txt"
    with pytest.raises(DataFormatError) as err:
        read_hans(missing)
    msg = str(err.value)
    assert str(missing) in msg and "github.com/tommccoy1/hans" in msg and "tab-separated" in msg
    assert "gold_label" in msg and "pairID" in msg


def test_malformed_rows_are_all_reported(tmp_path: Path) -> None:
    good = _row("entailment", "The doctor slept .", "The doctor slept .", "ex0", "constituent", "c", "t")
    path = _write(
        tmp_path / "bad.txt",
        [
            good,  # line 2
            "entailment\tonly\tthree",  # line 3: wrong column count
            _row("neutral", "A .", "B .", "ex2", "constituent", "c", "t"),  # line 4: unknown label
            _row("entailment", "A .", "B .", "ex3", "syntax", "c", "t"),  # line 5: unknown heuristic
            _row("entailment", "A .", "B .", "ex0", "constituent", "c", "t"),  # line 6: duplicate pairID
            good.replace("ex0", "ex5"),  # line 7: fine
        ],
    )
    with pytest.raises(DataFormatError) as err:
        read_hans(path)
    msg = str(err.value)
    assert "bad.txt" in msg and "4 malformed rows" in msg
    for line in ("line 3", "line 4", "line 5", "line 6"):
        assert line in msg
    assert "line 2:" not in msg and "line 7" not in msg and "already used on line 2" in msg
    assert "'neutral'" in msg and "'syntax'" in msg and "3 columns instead of 11" in msg


def test_wrong_header_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="missing columns"):
        read_hans(_write(tmp_path / "h.txt", [], header="premise\thypothesis\tlabel"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataFormatError, match="is empty"):
        read_hans(tmp_path / "empty.txt")


def test_any_header_with_the_used_columns_is_read(tmp_path: Path) -> None:
    # reordered, no parses, no pairID or template: ids fall back to line numbers
    path = _write(
        tmp_path / "trimmed.tsv",
        ["ln_subject/object_swap\tlexical_overlap\tThe doctor saw the judge .\tThe judge saw the doctor ."
         "\tnon-entailment\textra"],
        header="subcase\theuristic\tsentence1\tsentence2\tgold_label\tnote",
    )  # fmt: skip
    assert read_hans(path) == [
        NLIExample("hans:2", "The doctor saw the judge .", "The judge saw the doctor .", "non-entailment",
                   "lexical_overlap", "ln_subject/object_swap", None)
    ]  # fmt: skip
    with pytest.raises(DataFormatError, match=r"missing columns \['subcase'\]"):
        read_hans(_write(tmp_path / "h.txt", [], header="gold_label\tsentence1\tsentence2\theuristic"))


def test_write_read_round_trip(tmp_path: Path) -> None:
    generated = generate_hans_like(n_per_subcase=3, seed=5)
    # with source="hansgen" the uids come back unchanged
    path = write_hans(generated, tmp_path / "gen.txt", source="hansgen")
    assert read_hans(path, source="hansgen") == generated
    # with the default source the pairID is the whole uid and the reader prefixes "hans:"
    back = read_hans(write_hans(generated, tmp_path / "gen2.txt"))
    assert [e.uid for e in back] == ["hans:" + e.uid for e in generated]
    assert [(e.premise, e.hypothesis, e.label, e.subcase) for e in back] == [
        (e.premise, e.hypothesis, e.label, e.subcase) for e in generated
    ]
    # the written file has the official 11 columns; parse columns hold the plain sentence
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(HANS_COLUMNS)
    first = lines[1].split("\t")
    assert len(first) == 11 and first[1] == first[3] == first[5] == generated[0].premise


def test_write_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    ok = NLIExample("hans:a", "P .", "H .", "entailment", "constituent", "s", "t")
    with pytest.raises(DataFormatError, match="tab or newline"):
        write_hans([NLIExample("hans:b", "P\t.", "H .", "entailment", "constituent")], tmp_path / "x.txt")
    with pytest.raises(DataFormatError, match="label 'neutral'"):
        write_hans([NLIExample("u", "P .", "H .", "neutral", "constituent")], tmp_path / "x.txt")
    with pytest.raises(DataFormatError, match="written twice"):
        write_hans([ok, ok], tmp_path / "x.txt")


# ------------------------------------------------------------------------------------- generator


def _contiguous(needle: list[str], hay: list[str]) -> bool:
    return any(hay[i : i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))


def _constituents(tree) -> list[list[str]]:  # noqa: ANN001
    if isinstance(tree, str):
        return [[tree]]
    out = [tree_leaves(tree)]
    for child in tree:
        out += _constituents(child)
    return out


def _words(sentence: str) -> list[str]:
    assert sentence.endswith(" .")
    return sentence[:-2].lower().split()


def test_subcase_table_covers_heuristics_and_labels() -> None:
    cells = Counter((s.heuristic, s.label) for s in HANS_LIKE_SUBCASES)
    assert set(cells) == {(h, lab) for h in HANS_HEURISTICS for lab in HANS_LABELS}
    assert min(cells.values()) >= 3
    names = [s.name for s in HANS_LIKE_SUBCASES]
    assert len(set(names)) == len(names)


def test_generator_counts_uids_and_determinism() -> None:
    examples = generate_hans_like(n_per_subcase=7, seed=0)
    assert len(examples) == 7 * len(HANS_LIKE_SUBCASES)
    assert Counter(e.subcase for e in examples) == {s.name: 7 for s in HANS_LIKE_SUBCASES}
    assert len({e.uid for e in examples}) == len(examples)
    spec = {s.name: s for s in HANS_LIKE_SUBCASES}
    for e in examples:
        s = spec[e.subcase]
        assert (e.heuristic, e.label, e.template) == (s.heuristic, s.label, s.template)
        assert e.uid.startswith(f"hansgen:{e.heuristic}:{e.subcase}:")
        assert 0 <= int(e.uid.rsplit(":", 1)[1]) < 7
    # no duplicate pair within a subcase
    assert len({(e.subcase, e.premise, e.hypothesis) for e in examples}) == len(examples)
    assert generate_hans_like(n_per_subcase=7, seed=0) == examples
    other = generate_hans_like(n_per_subcase=7, seed=1)
    assert [e.uid for e in other] == [e.uid for e in examples]
    assert [e.premise for e in other] != [e.premise for e in examples]


def test_every_pair_has_its_heuristic_property() -> None:
    for ex, ptree, htree in generate_hans_like_with_trees(n_per_subcase=40, seed=3):
        assert render(ptree) == ex.premise and render(htree) == ex.hypothesis
        p, h = _words(ex.premise), _words(ex.hypothesis)
        assert all(w in p for w in h), ex  # lexical overlap holds for all three heuristics
        assert word_overlap(ex.premise, ex.hypothesis) == 1.0
        contiguous = _contiguous(h, p)
        constituent = h in _constituents(ptree)
        if ex.heuristic == "lexical_overlap":
            assert not contiguous, ex  # otherwise it would be a subsequence pair
        elif ex.heuristic == "subsequence":
            assert contiguous and not constituent, ex
        else:
            assert constituent, ex


def test_templates_give_the_expected_shapes() -> None:
    """Hand-checked structure of a few templates whose label depends on the exact shape."""
    by_sub: dict[str, list[NLIExample]] = {}
    for e in generate_hans_like(n_per_subcase=25, seed=11):
        by_sub.setdefault(e.subcase, []).append(e)
    for e in by_sub["ln_subject_object_swap"]:
        p, h = _words(e.premise), _words(e.hypothesis)
        assert len(p) == 5 and h == [p[0], p[4], p[2], p[3], p[1]]
    for e in by_sub["le_passive"] + by_sub["ln_passive"]:
        p, h = _words(e.premise), _words(e.hypothesis)  # the A was V by the B
        assert p[2] == "was" and p[4] == "by"
        agent_first = [p[5], p[6], p[3], p[0], p[1]]
        assert h == (agent_first if e.label == "entailment" else [p[0], p[1], p[3], p[5], p[6]])
    for e in by_sub["cn_embedded_under_verb"]:
        assert _words(e.premise)[2] in NONFACTIVE_VERBS and _words(e.premise)[3] == "that"
    for e in by_sub["ce_embedded_under_verb"]:
        assert _words(e.premise)[2] in FACTIVE_VERBS and _words(e.premise)[3] == "that"
    for sub, first in (("cn_embedded_under_if", "if"), ("ce_embedded_under_because", "because")):
        for e in by_sub[sub]:
            assert _words(e.premise)[0] == first and " , " in e.premise
    for e in by_sub["se_understood_object"]:
        p, h = _words(e.premise), _words(e.hypothesis)
        assert len(p) == 5 and h == p[:3]


def test_generator_rejects_bad_size() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="n_per_subcase"):
            generate_hans_like(n_per_subcase=bad)  # type: ignore[arg-type]
