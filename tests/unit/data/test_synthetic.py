"""Synthetic shortcut NLI: balance, shortcut strength, determinism and hand-checked templates."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from debiaslit.data.hans import Verb
from debiaslit.data.overlap import word_overlap
from debiaslit.data.schema import NLI_LABELS
from debiaslit.data.synthetic import ALIGNED, CONFLICTING, TEMPLATES, _Event, generate_shortcut_nli
from debiaslit.errors import ConfigError


def _rule_accuracy(examples) -> float:  # noqa: ANN001
    """Binary accuracy of "overlap == 1 -> entailment, else non-entailment"."""
    hits = 0
    for e in examples:
        predicted_entailment = word_overlap(e.premise, e.hypothesis) == 1.0
        hits += predicted_entailment == (e.label == "entailment")
    return hits / len(examples)


@pytest.mark.parametrize("rate", [0.9, 0.5, 0.0, 1.0])
def test_overlap_rule_accuracy_tracks_shortcut_rate(rate: float) -> None:
    examples = generate_shortcut_nli(n=3000, shortcut_rate=rate, seed=0)
    assert _rule_accuracy(examples) == pytest.approx(rate, abs=0.05)
    # aligned examples are exactly those the overlap rule gets right
    for e in examples:
        full = word_overlap(e.premise, e.hypothesis) == 1.0
        assert (e.subcase == ALIGNED) == (full == (e.label == "entailment")), e


def test_overlap_is_uninformative_at_half_rate() -> None:
    examples = generate_shortcut_nli(n=3000, shortcut_rate=0.5, seed=1)
    for label in NLI_LABELS:
        sub = [e for e in examples if e.label == label]
        full = sum(word_overlap(e.premise, e.hypothesis) == 1.0 for e in sub) / len(sub)
        assert full == pytest.approx(0.5, abs=0.01)


def test_labels_balanced_and_uids() -> None:
    examples = generate_shortcut_nli(n=3000, shortcut_rate=0.9, seed=2, source="train")
    assert Counter(e.label for e in examples) == {lab: 1000 for lab in NLI_LABELS}
    assert [e.uid for e in examples] == [f"train:{i}" for i in range(3000)]
    assert Counter(e.subcase for e in examples) == {ALIGNED: 2700, CONFLICTING: 300}
    assert all(e.heuristic is None for e in examples)  # not HANS pairs
    small = generate_shortcut_nli(n=10, shortcut_rate=0.5, seed=0)
    assert sorted(Counter(e.label for e in small).values()) == [3, 3, 4]
    # labels are shuffled, not in blocks
    assert len({e.label for e in examples[:30]}) == 3


def test_deterministic_per_seed_and_source() -> None:
    a = generate_shortcut_nli(n=200, shortcut_rate=0.7, seed=4)
    assert generate_shortcut_nli(n=200, shortcut_rate=0.7, seed=4) == a
    b = generate_shortcut_nli(n=200, shortcut_rate=0.7, seed=5)
    assert [(e.premise, e.hypothesis) for e in a] != [(e.premise, e.hypothesis) for e in b]
    c = generate_shortcut_nli(n=200, shortcut_rate=0.7, seed=4, source="val")
    assert [(e.premise, e.hypothesis) for e in a] != [(e.premise, e.hypothesis) for e in c]


def test_premise_shape_and_template_overlap_class() -> None:
    pattern = re.compile(r"The (\w+ )?\w+ \w+ the \w+( \w+ the \w+)? but did not \w+ the \w+\.")
    for e in generate_shortcut_nli(n=600, shortcut_rate=0.6, seed=7):
        assert pattern.fullmatch(e.premise), e.premise
        label, overlap_class, _ = e.template.split("/")
        assert label == e.label
        overlap = word_overlap(e.premise, e.hypothesis)
        assert (overlap == 1.0) if overlap_class == "full" else (overlap < 1.0), e


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5"])
def test_bad_shortcut_rate(bad: object) -> None:
    with pytest.raises(ConfigError, match="shortcut_rate"):
        generate_shortcut_nli(n=30, shortcut_rate=bad, seed=0)  # type: ignore[arg-type]


def test_bad_n() -> None:
    with pytest.raises(ConfigError, match="n must be"):
        generate_shortcut_nli(n=0, shortcut_rate=0.5, seed=0)


#: Premise: "The young doctor helped the lawyer in the library but did not help the artist."
EVENT = _Event(
    n1="doctor", n2="lawyer", n3="artist", n4="judge", n5="pilot",
    v=Verb("helped", "helped", "help"), v2=Verb("thanked", "thanked", "thank"),
    adj="young", adj2="famous", pp=("in", "library"), keep_adj=False, keep_pp=True,
)  # fmt: skip

#: Every template's hypothesis for EVENT, checked by hand against the premise.
EXPECTED = {
    "entailment/full/drop_contrast": "The doctor helped the lawyer in the library.",
    "entailment/full/negated_fact": "The doctor did not help the artist.",
    "entailment/partial/passive_someone": "The lawyer was helped by someone.",
    "entailment/partial/someone": "Someone helped the lawyer.",
    "entailment/partial/passive_negated": "The artist was not helped by the doctor.",
    "entailment/partial/hypernyms": "A person helped someone.",
    "entailment/partial/someone_location": "Someone was in the library.",
    "neutral/full/role_swap": "The lawyer helped the doctor.",
    "neutral/full/third_person_agent": "The artist helped the lawyer.",
    "neutral/full/moved_adjective": "The doctor helped the young lawyer.",
    "neutral/full/negated_other": "The lawyer did not help the artist.",
    "neutral/partial/new_event": "The judge thanked the pilot.",
    "neutral/partial/same_agent_new_event": "The doctor thanked the judge.",
    "neutral/partial/nobody_else": "Nobody helped the artist.",
    "neutral/partial/new_attribute": "The lawyer was famous.",
    "neutral/partial/someone_new_event": "Someone thanked the judge.",
    "neutral/partial/new_person_never": "The judge never thanked the pilot.",
    "contradiction/full/wrong_patient": "The doctor helped the artist in the library.",
    "contradiction/full/negated_event": "The doctor did not help the lawyer.",
    "contradiction/partial/nobody": "Nobody helped the lawyer.",
    "contradiction/partial/never_anyone": "The doctor never helped anyone.",
    "contradiction/partial/no_one_anybody": "No one helped anybody.",
    "contradiction/partial/passive_never": "The lawyer was never helped by anyone.",
    "contradiction/partial/not_anyone": "The doctor did not help anyone.",
    "contradiction/partial/nobody_location": "Nobody was in the library.",
}


def test_every_template_by_hand() -> None:
    premise = EVENT.premise()
    assert premise == "The young doctor helped the lawyer in the library but did not help the artist."
    got = {}
    for (label, full), templates in TEMPLATES.items():
        for name, build, applies in templates:
            assert applies(EVENT)
            hypothesis = build(EVENT)
            got[f"{label}/{'full' if full else 'partial'}/{name}"] = hypothesis
            assert (word_overlap(premise, hypothesis) == 1.0) == full, hypothesis
    assert got == EXPECTED
