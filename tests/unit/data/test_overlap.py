"""Word overlap and the HOL/LOL subset selection."""

from __future__ import annotations

from collections import Counter

import pytest

from debiaslit.data.overlap import overlap_subsets, word_overlap
from debiaslit.data.schema import NLIExample
from debiaslit.errors import ConfigError


@pytest.mark.parametrize(
    ("premise", "hypothesis", "expected"),
    [
        ("The doctor saw the lawyer.", "The lawyer saw a cat!", 3 / 5),  # the, lawyer, saw | a, cat
        ("Hello, world!", "hello WORLD", 1.0),  # case and punctuation ignored
        ("a b", "a a c", 2 / 3),  # hypothesis words counted with repeats
        ("x; y: z?", "z y; x. w", 3 / 4),
        ("The cat sat.", "", 0.0),
        ("The cat sat.", " ?! . ", 0.0),  # only punctuation: no words
        ("", "The cat", 0.0),
        ("cats", "cat", 0.0),  # no stemming
    ],
)
def test_word_overlap_hand_values(premise: str, hypothesis: str, expected: float) -> None:
    assert word_overlap(premise, hypothesis) == pytest.approx(expected)


def _graded(n: int = 20, labels: tuple[str, ...] = ("entailment",)) -> list[NLIExample]:
    """Example k has overlap exactly k/n: n hypothesis words, the first k of them in the premise."""
    out = []
    for k in range(n):
        premise = " ".join(f"w{j}" for j in range(k))
        hypothesis = " ".join([f"w{j}" for j in range(k)] + [f"new{j}" for j in range(n - k)])
        out.append(NLIExample(f"t:{k}", premise, hypothesis, labels[k % len(labels)]))
    return out


def test_percentile_mode_thresholds_by_hand() -> None:
    ex = _graded(20)
    res = overlap_subsets(ex)
    assert res.scores == pytest.approx([k / 20 for k in range(20)])
    # numpy linear percentile over 0, .05, ..., .95: 95th at rank 0.95*19 = 18.05 -> 0.90 + 0.05*0.05
    assert res.high_threshold == pytest.approx(0.9025)
    assert res.low_threshold == pytest.approx(0.0475)  # rank 0.95 -> 0.95 * 0.05
    assert res.high_idx == [19] and res.low_idx == [0]
    wide = overlap_subsets(ex, high=75, low=25)  # ranks 14.25 and 4.75
    assert wide.high_threshold == pytest.approx(0.7125) and wide.low_threshold == pytest.approx(0.2375)
    assert wide.high_idx == [15, 16, 17, 18, 19] and wide.low_idx == [0, 1, 2, 3, 4]


def test_absolute_mode_and_ties() -> None:
    res = overlap_subsets(_graded(20), mode="absolute", high=0.8, low=0.2)
    assert res.high_idx == [16, 17, 18, 19] and res.low_idx == [0, 1, 2, 3, 4]
    assert (res.high_threshold, res.low_threshold) == (0.8, 0.2)
    summary = res.summary()
    assert summary["n_high"] == 4 and summary["n_low"] == 5 and summary["n_total"] == 20
    # all-equal scores: everything is both high and low in percentile mode
    same = [NLIExample(f"s:{i}", "a b", "a c", "neutral") for i in range(4)]
    tied = overlap_subsets(same)
    assert tied.high_idx == tied.low_idx == [0, 1, 2, 3] and tied.high_threshold == 0.5


def test_balance_labels_without_replacement() -> None:
    labels = ("entailment", "neutral", "contradiction", "entailment")  # entailment twice as frequent
    ex = _graded(200, labels)
    plain = overlap_subsets(ex, mode="absolute", high=0.5, low=0.5)
    res = overlap_subsets(ex, mode="absolute", high=0.5, low=0.5, balance_labels=True, seed=3)
    for idx, full in ((res.high_idx, plain.high_idx), (res.low_idx, plain.low_idx)):
        counts = Counter(ex[i].label for i in idx)
        full_counts = Counter(ex[i].label for i in full)
        assert set(counts.values()) == {min(full_counts.values())}
        assert len(set(idx)) == len(idx) and set(idx) <= set(full) and idx == sorted(idx)
    assert res.high_label_counts == {"entailment": 25, "neutral": 25, "contradiction": 25}
    assert overlap_subsets(ex, mode="absolute", high=0.5, low=0.5, balance_labels=True, seed=3) == res
    other = overlap_subsets(ex, mode="absolute", high=0.5, low=0.5, balance_labels=True, seed=4)
    assert other.high_idx != res.high_idx


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"mode": "quantile"}, "mode 'quantile' is unknown"),
        ({"high": 120}, r"high=120 is outside \[0, 100\]"),
        ({"low": -1}, r"low=-1 is outside \[0, 100\]"),
        ({"mode": "absolute", "high": 1.5, "low": 0.1}, r"high=1.5 is outside \[0, 1\]"),
        ({"mode": "absolute", "high": 95, "low": 5}, r"high=95 is outside \[0, 1\]"),
        ({"high": 10, "low": 40}, "low=40 is greater than high=10"),
    ],
)
def test_bad_options_name_the_option(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        overlap_subsets(_graded(10), **kwargs)


def test_empty_subsets_name_the_filter() -> None:
    ex = _graded(20)  # overlaps 0 .. 0.95
    with pytest.raises(ConfigError) as err:
        overlap_subsets(ex, mode="absolute", high=0.99, low=0.0)
    msg = str(err.value)
    assert "high-overlap subset (overlap >= 0.99, absolute threshold) is empty over 20 examples" in msg
    with pytest.raises(ConfigError, match=r"low-overlap subset \(overlap <= 0.01"):
        overlap_subsets(_graded(20)[1:], mode="absolute", high=0.5, low=0.01)
    # balancing empties a subset that holds no example of one label
    skewed = ex[:19] + [NLIExample("t:x", "a", "a", "contradiction")]
    with pytest.raises(ConfigError, match="balance_labels=True empties the low-overlap subset"):
        overlap_subsets(skewed, mode="absolute", high=0.9, low=0.1, balance_labels=True)
    with pytest.raises(ConfigError, match="no examples"):
        overlap_subsets([])
