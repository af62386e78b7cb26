"""WinoBias bracket files and word lists, and the professions list: real bundle counts and bad inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from debiaslit.data.professions import Profession, read_professions
from debiaslit.data.winobias import Span, read_occupations, read_swap_pairs, read_winobias, read_winobias_file
from debiaslit.errors import DataFormatError
from tests.conftest import shared_path


def test_shared_winobias_dev_files() -> None:
    examples = read_winobias(shared_path("winobias"))
    assert len(examples) == 1584 and len({ex.uid for ex in examples}) == 1584
    assert Counter((ex.stereotype, ex.type) for ex in examples) == {
        ("pro", 1): 396,
        ("pro", 2): 396,
        ("anti", 1): 396,
        ("anti", 2): 396,
    }
    assert Counter(len(ex.spans) for ex in examples) == {2: 1554, 3: 30}
    assert Counter(p.text.lower() for ex in examples for p in ex.pronouns) == {
        "her": 448,
        "him": 366,
        "she": 360,
        "he": 360,
        "his": 80,
    }
    assert all(ex.sentence[s.start : s.end] == s.text for ex in examples for s in ex.spans)
    assert not any("[" in ex.sentence or "]" in ex.sentence for ex in examples)
    first = examples[0]
    assert first.uid == "pro_stereotyped_type1.dev:1"
    assert first.sentence == "The developer argued with the designer because he did not like the design."
    assert first.occupation == Span("The developer", 0, 13)
    assert first.pronouns == (Span("he", 47, 49),)
    typo = next(ex for ex in examples if ex.uid == "anti_stereotyped_type2.dev:176")
    assert typo.occupation.text == "the physician" and "asked the the physician" in typo.sentence


def test_shared_winobias_word_lists() -> None:
    male = read_occupations(shared_path("winobias", "male_occupations.txt"))
    female = read_occupations(shared_path("winobias", "female_occupations.txt"))
    assert len(male) == 20 and len(female) == 20 and not set(male) & set(female)
    assert male[-1] == "CEO"  # the last line has no newline
    swaps = read_swap_pairs(shared_path("winobias", "generalized_swaps.txt"))
    assert len(swaps) == 104 and swaps[0] == ("actor", "actress")
    assert all(w == w.strip() and w for pair in swaps for w in pair)
    assert len(read_swap_pairs(shared_path("winobias", "extra_gendered_words.txt"))) == 92


def test_winobias_bad_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "anti_stereotyped_type2.txt.dev"
    path.write_text(
        "1 [The nurse] met [him].\n"
        "[The cook] fed [her].\n"
        "3 The cook fed her.\n"
        "4 [The cook [fed] her].\n"
        "1 [The cook] fed [her].\n"
    )
    with pytest.raises(DataFormatError) as info:
        read_winobias_file(path)
    message = str(info.value)
    assert "4 malformed line(s)" in message
    assert "line 2: does not start with a sentence number" in message
    assert "line 3: 0 bracketed span(s)" in message
    assert "line 4: nested '['" in message
    assert "line 5: number 1 already used on line 1" in message


def test_winobias_three_spans_and_file_name_checks(tmp_path: Path) -> None:
    path = tmp_path / "pro_stereotyped_type1.txt.test"
    path.write_text("7 [The hairdresser] called the cook because [she] needed to cut [her] hair.")
    [example] = read_winobias_file(path)
    assert (example.uid, example.type, example.stereotype) == ("pro_stereotyped_type1.test:7", 1, "pro")
    assert [s.text for s in example.pronouns] == ["she", "her"]
    assert example.sentence[example.pronouns[1].start :].startswith("her hair")
    with pytest.raises(DataFormatError, match="the name is not"):
        read_winobias_file(tmp_path / "wino.txt")
    with pytest.raises(DataFormatError, match=r"pro_stereotyped_type2\.txt\.test: no such file"):
        read_winobias(tmp_path, split="test")


def test_swap_pairs_reject_lines_without_two_words(tmp_path: Path) -> None:
    path = tmp_path / "swaps.txt"
    path.write_text("king \t queen\nprince\n\tprincess\nlord\tlady\textra\n")
    with pytest.raises(
        DataFormatError, match=r"3 line\(s\) are not two tab-separated words: lines \[2, 3, 4\]"
    ):
        read_swap_pairs(path)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataFormatError, match="empty.txt: the file is empty"):
        read_occupations(tmp_path / "empty.txt")


def test_shared_professions() -> None:
    professions = read_professions(shared_path("professions", "professions.json"))
    assert len(professions) == 320
    assert professions[0] == Profession("accountant", 0.0, 0.4)
    assert sum(" " in p.word for p in professions) == 29 and not any("_" in p.word for p in professions)
    assert Profession("assistant professor", 0.1, 0.4) in professions  # "_" replaced by a space
    female = read_professions(shared_path("professions", "professions_female_stereo.json"))
    male = read_professions(shared_path("professions", "professions_male_stereo.json"))
    assert (len(female), len(male)) == (70, 229)
    assert set(female) | set(male) <= set(professions) and not set(female) & set(male)


def test_professions_bad_entries_are_reported_by_index(tmp_path: Path) -> None:
    path = tmp_path / "professions.json"
    path.write_text(
        json.dumps([["nurse", -0.1, -0.8], ["cook", 0.0], ["judge", True, 0.1], ["nurse", 0.0, 0.0]])
    )
    with pytest.raises(DataFormatError) as info:
        read_professions(path)
    message = str(info.value)
    assert "3 malformed" in message
    assert "entry 1: ['cook', 0.0] is not [word, number, number]" in message
    assert "entry 2: ['judge', True, 0.1]" in message
    assert "entry 3: 'nurse' repeats entry 0" in message


@pytest.mark.parametrize(
    ("text", "match"),
    [("{}", "found a JSON dict"), ("[]", "found an empty list"), ("[1,", "invalid JSON at line 1")],
)
def test_professions_bad_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=match):
        read_professions(path)
    with pytest.raises(DataFormatError, match="no such file"):
        read_professions(tmp_path / "missing.json")
