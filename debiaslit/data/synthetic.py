"""Synthetic 3-way NLI with a learnable rule and a word-overlap shortcut of controllable strength.

Why: debiasing methods need data where the *true* rule and the *shortcut* disagree on a known fraction
of examples, so that in-distribution accuracy, reliance on the shortcut and robustness can be measured
without MNLI. Every pair here is built from one event (vocabulary from :mod:`debiaslit.data.hans`)::

    premise:  The [ADJ] N1 V the N2 [PREP the LOC] but did not V-base the N3.
    e.g.      The young doctor helped the lawyer in the library but did not help the artist.

The label follows from what the premise says about who did what to whom (the real rule):

* entailment - the hypothesis restates part of it: drops the adjective, PP or a clause ("The doctor
  helped the lawyer."), repeats the negated fact ("The doctor did not help the artist."), or says it
  with other words: passive, "someone", "a person" ("The lawyer was helped by someone.").
* contradiction - the hypothesis denies a stated fact: the doctor helped the *artist*, the doctor did
  not help the lawyer, nobody helped the lawyer, no one was in the library, the doctor never helped
  anyone.
* neutral - the hypothesis is neither implied nor denied: swapped roles ("The lawyer helped the
  doctor."), a role given to the third person, the adjective moved to another person, a new attribute,
  or a new event (new verb and/or new people; "Nobody helped the artist." is also neutral, since only
  the doctor is said not to have).

The shortcut is word overlap (:func:`debiaslit.data.overlap.word_overlap`). Each template has either
*full* overlap (every hypothesis word is in the premise) or *partial* overlap (at least one word that no
premise contains: was, by, someone, nobody, never, a new person or verb ...). An example is
**shortcut-aligned** when overlap agrees with the label (entailment with full overlap, neutral or
contradiction with partial overlap) and **shortcut-conflicting** otherwise (entailment restated with new
words; neutral or contradiction built only from premise words). Within each label exactly
``round(shortcut_rate * count)`` examples are aligned (stratified, so the measured rate is the asked
one, not a binomial draw), hence the rule "overlap == 1 -> entailment, else non-entailment" scores
``shortcut_rate`` on the binary task, and at ``shortcut_rate = 0.5`` P(overlap == 1 | label) = 0.5 for
all three labels: overlap carries no information about the label.

``subcase`` is ``shortcut_aligned`` / ``shortcut_conflicting`` (use it as the evaluation group) and
``template`` names the template; ``heuristic`` stays ``None`` (these are not HANS pairs).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from debiaslit.data.hans import ADJECTIVES, LOCATIONS, NOUNS, PREPOSITIONS, TRANSITIVE_VERBS, Verb
from debiaslit.data.schema import NLI_LABELS, NLIExample
from debiaslit.errors import ConfigError

ALIGNED, CONFLICTING = "shortcut_aligned", "shortcut_conflicting"


@dataclass(frozen=True)
class _Event:
    """The sampled content of one premise; n1 is the agent, n2 the patient, n3 the one not helped."""

    n1: str
    n2: str
    n3: str
    n4: str
    n5: str
    v: Verb
    v2: Verb
    adj: str | None
    adj2: str
    pp: tuple[str, str] | None
    keep_adj: bool
    keep_pp: bool

    def premise(self) -> str:
        adj = f"{self.adj} " if self.adj else ""
        pp = f" {self.pp[0]} the {self.pp[1]}" if self.pp else ""
        return f"The {adj}{self.n1} {self.v.past} the {self.n2}{pp} but did not {self.v.base} the {self.n3}."

    def subject(self) -> str:
        """``[adj] n1``, keeping the premise's adjective when ``keep_adj``."""
        return f"{self.adj} {self.n1}" if self.adj and self.keep_adj else self.n1

    def tail(self) -> str:
        """`` prep the loc`` when the premise has one and ``keep_pp``, else empty."""
        return f" {self.pp[0]} the {self.pp[1]}" if self.pp and self.keep_pp else ""


Template = tuple[str, Callable[[_Event], str], Callable[[_Event], bool]]


def _always(e: _Event) -> bool:
    return True


def _has_adj(e: _Event) -> bool:
    return e.adj is not None


def _has_pp(e: _Event) -> bool:
    return e.pp is not None


#: (label, full_overlap) -> templates (name, hypothesis builder, applicability test).
TEMPLATES: dict[tuple[str, bool], tuple[Template, ...]] = {
    ("entailment", True): (
        ("drop_contrast", lambda e: f"The {e.subject()} {e.v.past} the {e.n2}{e.tail()}.", _always),
        ("negated_fact", lambda e: f"The {e.n1} did not {e.v.base} the {e.n3}.", _always),
    ),
    ("entailment", False): (
        ("passive_someone", lambda e: f"The {e.n2} was {e.v.participle} by someone.", _always),
        ("someone", lambda e: f"Someone {e.v.past} the {e.n2}.", _always),
        ("passive_negated", lambda e: f"The {e.n3} was not {e.v.participle} by the {e.n1}.", _always),
        ("hypernyms", lambda e: f"A person {e.v.past} someone.", _always),
        ("someone_location", lambda e: f"Someone was {e.pp[0]} the {e.pp[1]}.", _has_pp),  # type: ignore[index]
    ),
    ("neutral", True): (
        ("role_swap", lambda e: f"The {e.n2} {e.v.past} the {e.n1}.", _always),
        ("third_person_agent", lambda e: f"The {e.n3} {e.v.past} the {e.n2}.", _always),
        ("moved_adjective", lambda e: f"The {e.n1} {e.v.past} the {e.adj} {e.n2}.", _has_adj),
        ("negated_other", lambda e: f"The {e.n2} did not {e.v.base} the {e.n3}.", _always),
    ),
    ("neutral", False): (
        ("new_event", lambda e: f"The {e.n4} {e.v2.past} the {e.n5}.", _always),
        ("same_agent_new_event", lambda e: f"The {e.n1} {e.v2.past} the {e.n4}.", _always),
        ("nobody_else", lambda e: f"Nobody {e.v.past} the {e.n3}.", _always),
        ("new_attribute", lambda e: f"The {e.n2} was {e.adj2}.", _always),
        ("someone_new_event", lambda e: f"Someone {e.v2.past} the {e.n4}.", _always),
        ("new_person_never", lambda e: f"The {e.n4} never {e.v2.past} the {e.n5}.", _always),
    ),
    ("contradiction", True): (
        ("wrong_patient", lambda e: f"The {e.subject()} {e.v.past} the {e.n3}{e.tail()}.", _always),
        ("negated_event", lambda e: f"The {e.n1} did not {e.v.base} the {e.n2}.", _always),
    ),
    ("contradiction", False): (
        ("nobody", lambda e: f"Nobody {e.v.past} the {e.n2}.", _always),
        ("never_anyone", lambda e: f"The {e.n1} never {e.v.past} anyone.", _always),
        ("no_one_anybody", lambda e: f"No one {e.v.past} anybody.", _always),
        ("passive_never", lambda e: f"The {e.n2} was never {e.v.participle} by anyone.", _always),
        ("not_anyone", lambda e: f"The {e.n1} did not {e.v.base} anyone.", _always),
        ("nobody_location", lambda e: f"Nobody was {e.pp[0]} the {e.pp[1]}.", _has_pp),  # type: ignore[index]
    ),
}


def _sample_event(rng: random.Random) -> _Event:
    n1, n2, n3, n4, n5 = rng.sample(NOUNS, 5)
    v, v2 = rng.sample(TRANSITIVE_VERBS, 2)
    adj, adj2 = rng.sample(ADJECTIVES, 2)
    return _Event(
        n1=n1,
        n2=n2,
        n3=n3,
        n4=n4,
        n5=n5,
        v=v,
        v2=v2,
        adj=adj if rng.random() < 0.5 else None,
        adj2=adj2,
        pp=(rng.choice(PREPOSITIONS), rng.choice(LOCATIONS)) if rng.random() < 0.5 else None,
        keep_adj=rng.random() < 0.5,
        keep_pp=rng.random() < 0.5,
    )


def generate_shortcut_nli(n: int, shortcut_rate: float, seed: int, source: str = "synth") -> list[NLIExample]:
    """``n`` label-balanced 3-way NLI pairs where word overlap predicts entailment at ``shortcut_rate``.

    See the module docstring for the rule, the templates and the aligned/conflicting scheme. The RNG is
    seeded with ``(seed, source)``: identical per seed and source, and a train and a validation source
    that share a seed still get different pairs. uids are ``f"{source}:{i}"``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"generate_shortcut_nli: n must be an integer >= 1, got {n!r}")
    if not isinstance(shortcut_rate, int | float) or math.isnan(shortcut_rate) or not 0 <= shortcut_rate <= 1:
        raise ConfigError(f"generate_shortcut_nli: shortcut_rate must be in [0, 1], got {shortcut_rate!r}")
    rng = random.Random(f"shortcut_nli:{seed}:{source}")
    plan: list[tuple[str, bool]] = []
    for k, label in enumerate(NLI_LABELS):
        count = n // 3 + (1 if k < n % 3 else 0)
        n_aligned = round(shortcut_rate * count)
        plan += [(label, True)] * n_aligned + [(label, False)] * (count - n_aligned)
    rng.shuffle(plan)
    examples = []
    for i, (label, aligned) in enumerate(plan):
        full_overlap = aligned if label == "entailment" else not aligned
        event = _sample_event(rng)
        options = [t for t in TEMPLATES[(label, full_overlap)] if t[2](event)]
        name, build, _ = rng.choice(options)
        examples.append(
            NLIExample(
                uid=f"{source}:{i}",
                premise=event.premise(),
                hypothesis=build(event),
                label=label,
                subcase=ALIGNED if aligned else CONFLICTING,
                template=f"{label}/{'full' if full_overlap else 'partial'}/{name}",
            )
        )
    return examples
