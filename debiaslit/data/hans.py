"""HANS (McCoy, Pavlick & Linzen 2019): reader/writer for the official file and our own generator.

The official evaluation set (``heuristics_evaluation_set.txt`` from github.com/tommccoy1/hans) is not
available offline and the Hub ``hans`` dataset was a loading script that ``datasets`` >= 4 no longer
runs, so debiaslit reads the tab-separated file itself and ships a HANS-style generator with its own
templates and vocabulary for tests, smoke runs and extra evaluation.

Generator design. Every template builds the premise as a small phrase-structure tree (nested tuples of
lower-cased words) and derives the hypothesis from it, so the defining property of each heuristic holds
by construction and is checked in the tests:

* ``lexical_overlap``: every hypothesis word occurs in the premise, the hypothesis is *not* a contiguous
  subsequence of it;
* ``subsequence``: the hypothesis is a contiguous subsequence of the premise, but *not* a constituent;
* ``constituent``: the hypothesis is a complete subtree (constituent) of the premise.

Sentences use the HANS tokenisation: lower-case words separated by single spaces, a capitalised first
word, and `` .`` (and `` ,``) as separate tokens.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeAlias

from debiaslit.data.schema import HANS_HEURISTICS, HANS_LABELS, NLIExample
from debiaslit.errors import ConfigError, DataFormatError

# --------------------------------------------------------------------------------------------------
# The official file format
# --------------------------------------------------------------------------------------------------

#: Column order of ``heuristics_evaluation_set.txt``.
HANS_COLUMNS: tuple[str, ...] = (
    "gold_label",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "pairID",
    "heuristic",
    "subcase",
    "template",
)
#: The columns :func:`read_hans` uses; ``pairID`` and ``template`` are read when present.
HANS_REQUIRED_COLUMNS: tuple[str, ...] = ("gold_label", "sentence1", "sentence2", "heuristic", "subcase")
HANS_FILE_NAME = "heuristics_evaluation_set.txt"
_FORMAT_HINT = (
    f"a tab-separated file with the header {' '.join(HANS_COLUMNS)} (no quoting), i.e. the official "
    f"HANS evaluation set '{HANS_FILE_NAME}' from https://github.com/tommccoy1/hans"
)
_MAX_LISTED = 20


def read_hans(path: str | Path, source: str = "hans") -> list[NLIExample]:
    """Read the official HANS file (or one written by :func:`write_hans`).

    Rows are read with ``csv.QUOTE_NONE`` because HANS sentences contain bare quote characters.
    Any header holding :data:`HANS_REQUIRED_COLUMNS` is accepted (column order free, other columns
    ignored), so trimmed or re-exported copies read too. ``uid`` is ``f"{source}:{pairID}"`` (without a
    ``pairID`` column, ``f"{source}:{line}"``); heuristic, subcase and template (when present) are kept.
    Every malformed row (wrong column count, unknown label or heuristic, empty sentence, duplicate
    pairID) is collected and reported in one :class:`DataFormatError` with the line numbers: nothing is
    dropped silently.
    ``path`` may also be a folder holding ``heuristics_evaluation_set.txt``.
    """
    path = Path(path)
    if path.is_dir() and (path / HANS_FILE_NAME).is_file():
        path = path / HANS_FILE_NAME
    if not path.is_file():
        raise DataFormatError(f"HANS file {path} does not exist; expected {_FORMAT_HINT}")
    examples: list[NLIExample] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"HANS file {path} is empty; expected {_FORMAT_HINT}")
        missing = [c for c in HANS_REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(
                f"HANS file {path}: line 1 is not a HANS header (missing columns {missing}; it needs "
                f"{', '.join(HANS_REQUIRED_COLUMNS)}, optionally pairID and template); "
                f"expected {_FORMAT_HINT}"
            )
        col = {name: header.index(name) for name in HANS_COLUMNS if name in header}
        for row in reader:
            line = reader.line_num
            if not row:  # a blank line carries no data (e.g. a trailing newline)
                continue
            if len(row) != len(header):
                problems.append((line, f"{len(row)} columns instead of {len(header)}"))
                continue
            label, heuristic = row[col["gold_label"]], row[col["heuristic"]]
            premise, hypothesis = row[col["sentence1"]].strip(), row[col["sentence2"]].strip()
            pair_id = row[col["pairID"]].strip() if "pairID" in col else str(line)
            if label not in HANS_LABELS:
                problems.append((line, f"unknown label '{label}' (expected one of {HANS_LABELS})"))
            elif heuristic not in HANS_HEURISTICS:
                problems.append(
                    (line, f"unknown heuristic '{heuristic}' (expected one of {HANS_HEURISTICS})")
                )
            elif not premise or not hypothesis:
                problems.append((line, "empty sentence1 or sentence2"))
            elif not pair_id:
                problems.append((line, "empty pairID"))
            elif pair_id in seen:
                problems.append((line, f"pairID '{pair_id}' already used on line {seen[pair_id]}"))
            else:
                seen[pair_id] = line
                examples.append(
                    NLIExample(
                        uid=f"{source}:{pair_id}",
                        premise=premise,
                        hypothesis=hypothesis,
                        label=label,
                        heuristic=heuristic,
                        subcase=row[col["subcase"]] or None,
                        template=(row[col["template"]] or None) if "template" in col else None,
                    )
                )
    if problems:
        listed = "; ".join(f"line {n}: {why}" for n, why in problems[:_MAX_LISTED])
        more = f"; ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise DataFormatError(
            f"HANS file {path.name} ({path}): {len(problems)} malformed rows "
            f"(lines {[n for n, _ in problems[:_MAX_LISTED]]}{'...' if more else ''}): {listed}{more}. "
            f"Expected {_FORMAT_HINT}"
        )
    return examples


def write_hans(examples: Iterable[NLIExample], path: str | Path, source: str = "hans") -> Path:
    """Write examples in the official HANS format so generated sets can be saved and re-read.

    The four parse columns are filled with the plain tokenised sentence (no brackets): no consumer in
    debiaslit reads them, and the official readers only need the column to exist. ``pairID`` is the uid
    with a leading ``f"{source}:"`` removed, so ``read_hans(path, source)`` restores the same uids.
    """
    path = Path(path)
    prefix = f"{source}:"
    rows: list[list[str]] = []
    seen: set[str] = set()
    for i, ex in enumerate(examples):
        where = f"write_hans({path}): example {i} (uid '{ex.uid}')"
        if ex.label not in HANS_LABELS:
            raise DataFormatError(f"{where} has label '{ex.label}', not one of {HANS_LABELS}")
        if ex.heuristic not in HANS_HEURISTICS:
            raise DataFormatError(f"{where} has heuristic {ex.heuristic!r}, not one of {HANS_HEURISTICS}")
        pair_id = ex.uid[len(prefix) :] if ex.uid.startswith(prefix) else ex.uid
        if pair_id in seen:
            raise DataFormatError(f"{where}: pairID '{pair_id}' is written twice")
        seen.add(pair_id)
        fields = [ex.premise, ex.hypothesis, pair_id, ex.heuristic, ex.subcase or "", ex.template or ""]
        if any(("\t" in f or "\n" in f or "\r" in f) for f in fields):
            raise DataFormatError(f"{where} holds a tab or newline, which the HANS format cannot store")
        p, h = ex.premise, ex.hypothesis
        rows.append([ex.label, p, h, p, h, p, h, pair_id, ex.heuristic, ex.subcase or "", ex.template or ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerow(HANS_COLUMNS)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------------------------------
# Vocabulary (shared with debiaslit.data.synthetic); mostly single word pieces in BERT's uncased vocab
# --------------------------------------------------------------------------------------------------


class Verb(NamedTuple):
    """A transitive verb: simple past, passive participle and base form."""

    past: str
    participle: str
    base: str


NOUNS: tuple[str, ...] = (
    "doctor", "lawyer", "artist", "actor", "author", "banker", "judge", "manager", "professor",
    "student", "scientist", "senator", "secretary", "president", "athlete", "tourist", "dancer",
    "singer", "teacher", "writer", "nurse", "soldier", "farmer", "pilot", "chef", "editor", "officer",
    "clerk", "poet", "painter", "baker", "musician", "engineer", "architect", "detective",
    "journalist", "minister", "captain", "coach", "director",
)  # fmt: skip
TRANSITIVE_VERBS: tuple[Verb, ...] = tuple(
    Verb(*v)
    for v in (
        ("advised", "advised", "advise"), ("helped", "helped", "help"), ("thanked", "thanked", "thank"),
        ("called", "called", "call"), ("recognized", "recognized", "recognize"),
        ("contacted", "contacted", "contact"), ("supported", "supported", "support"),
        ("introduced", "introduced", "introduce"), ("admired", "admired", "admire"),
        ("avoided", "avoided", "avoid"), ("visited", "visited", "visit"), ("saw", "seen", "see"),
        ("met", "met", "meet"), ("paid", "paid", "pay"), ("encouraged", "encouraged", "encourage"),
        ("mentioned", "mentioned", "mention"), ("stopped", "stopped", "stop"), ("hired", "hired", "hire"),
        ("followed", "followed", "follow"), ("praised", "praised", "praise"),
        ("watched", "watched", "watch"), ("invited", "invited", "invite"),
    )
)  # fmt: skip
#: Verbs whose simple past equals the participle: passives built from them reuse the active word.
SAME_FORM_VERBS: tuple[Verb, ...] = tuple(v for v in TRANSITIVE_VERBS if v.past == v.participle)
INTRANSITIVE_VERBS: tuple[str, ...] = (
    "slept", "danced", "ran", "laughed", "waited", "arrived", "left", "shouted", "smiled", "stayed",
    "resigned", "performed", "spoke", "traveled",
)  # fmt: skip
ADJECTIVES: tuple[str, ...] = (
    "famous", "young", "old", "tall", "happy", "rich", "smart", "quiet", "angry", "proud", "nervous",
    "brave", "busy", "popular",
)  # fmt: skip
LOCATIONS: tuple[str, ...] = (
    "library", "station", "park", "office", "museum", "hospital", "theater", "school", "hotel",
    "airport", "church", "market",
)  # fmt: skip
#: Prepositions for locative phrases (never "by": passives use it).
PREPOSITIONS: tuple[str, ...] = ("in", "near", "behind", "outside")
#: Prepositions that attach a person to a person ("the doctor near the lawyer").
PERSON_PREPOSITIONS: tuple[str, ...] = ("near", "behind", "beside")
#: Verbs whose object can be left out without changing the truth of the event ("read the book" -> "read").
OBJECT_DROP_VERBS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("read", ("book", "report", "letter", "poem")),
    ("wrote", ("letter", "report", "poem", "song")),
    ("ate", ("cake", "soup", "bread", "salad")),
    ("cooked", ("dinner", "soup", "lunch", "breakfast")),
    ("painted", ("picture", "wall", "door", "fence")),
    ("sang", ("song", "anthem", "hymn", "ballad")),
    ("drank", ("coffee", "tea", "water", "milk")),
    ("baked", ("cake", "bread", "pie", "cookies")),
    ("cleaned", ("room", "kitchen", "car", "house")),
    ("studied", ("map", "report", "plan", "contract")),
)
#: Verbs that take an NP object or a bare clause ("knew the lawyer" vs "knew the lawyer left").
NP_S_VERBS: tuple[str, ...] = ("knew", "believed", "forgot", "suspected", "understood")
#: Verbs whose "that"-clause complement is not asserted to be true.
NONFACTIVE_VERBS: tuple[str, ...] = ("believed", "thought", "hoped", "claimed", "assumed", "said")
#: Verbs whose "that"-clause complement is presupposed true.
FACTIVE_VERBS: tuple[str, ...] = ("knew", "realized", "noticed", "remembered", "forgot", "learned")
NONVERIDICAL_ADVERBS: tuple[str, ...] = ("probably", "perhaps", "maybe", "supposedly", "hopefully")
#: Relational nouns for "the friend of the lawyer".
RELATIONAL_NOUNS: tuple[str, ...] = (
    "friend", "boss", "assistant", "partner", "secretary", "manager", "coach", "lawyer", "doctor", "neighbor",
)  # fmt: skip
VERIDICAL_ADVERBS: tuple[str, ...] = ("clearly", "certainly", "obviously", "definitely", "undoubtedly")


def plural(noun: str) -> str:
    """English plural of a vocabulary noun (regular rules suffice for ``NOUNS``)."""
    if noun.endswith(("ch", "sh", "s", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


# --------------------------------------------------------------------------------------------------
# Trees
# --------------------------------------------------------------------------------------------------

#: A phrase-structure tree: a lower-case word, or a tuple of subtrees.
Tree: TypeAlias = str | tuple["Tree", ...]


def tree_leaves(tree: Tree) -> list[str]:
    """The words of a tree, left to right."""
    if isinstance(tree, str):
        return [tree]
    return [w for child in tree for w in tree_leaves(child)]


def render(tree: Tree) -> str:
    """HANS-style sentence: words joined by spaces, first word capitalised, final `` .``."""
    words = tree_leaves(tree)
    return " ".join([words[0].capitalize(), *words[1:], "."])


def binary_parse(tree: Tree) -> str:
    """Bracketed form ``( ( the doctor ) slept )`` of a tree (without the final period)."""
    if isinstance(tree, str):
        return tree
    return "( " + " ".join(binary_parse(c) for c in tree) + " )"


# --------------------------------------------------------------------------------------------------
# Template building blocks
# --------------------------------------------------------------------------------------------------


def _np(noun: str) -> Tree:
    return ("the", noun)


class _Draw:
    """Samples vocabulary for one example: people are distinct within an example."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._people = rng.sample(NOUNS, 6)

    def person(self, k: int) -> str:
        return self._people[k]

    def verb(self, k: int = 1, pool: Sequence[Verb] = TRANSITIVE_VERBS) -> list[Verb]:
        return self.rng.sample(list(pool), k)

    def pick(self, pool: Sequence[str]) -> str:
        return self.rng.choice(list(pool))

    def clause(self, first: int) -> Tree:
        """A simple clause with people ``first`` (and ``first + 1``): intransitive or transitive."""
        subj = _np(self.person(first))
        if self.rng.random() < 0.5:
            return (subj, self.pick(INTRANSITIVE_VERBS))
        return (subj, (self.verb()[0].past, _np(self.person(first + 1))))

    def predicate(self, obj: int) -> Tree:
        """A VP: intransitive, or transitive with person ``obj`` as its object."""
        if self.rng.random() < 0.5:
            return self.pick(INTRANSITIVE_VERBS)
        return (self.verb()[0].past, _np(self.person(obj)))


Pair: TypeAlias = tuple[Tree, Tree]
Builder: TypeAlias = Callable[[_Draw], Pair]


# ---- lexical_overlap, non-entailment ---------------------------------------------------------------


def _ln_subject_object_swap(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    return (a, (v.past, b)), (b, (v.past, a))


def _ln_passive(d: _Draw) -> Pair:
    (v,) = d.verb(pool=SAME_FORM_VERBS)
    a, b = _np(d.person(0)), _np(d.person(1))
    return (a, (("was", v.participle), ("by", b))), (a, (v.past, b))


def _ln_relative_clause(d: _Draw) -> Pair:
    v1, v2 = d.verb(2)
    a, b, c = (_np(d.person(i)) for i in range(3))
    return ((a, ("who", (b, v1.past))), (v2.past, c)), (b, (v2.past, c))


def _ln_conjunction(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b, c = (_np(d.person(i)) for i in range(3))
    return (a, (v.past, (b, "and", c))), (b, (v.past, c))


def _ln_preposition(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b, c = (_np(d.person(i)) for i in range(3))
    prep = d.pick(PERSON_PREPOSITIONS)
    return ((a, (prep, b)), (v.past, c)), (c, (v.past, b))


# ---- lexical_overlap, entailment ---------------------------------------------------------------------


def _le_relative_clause(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    return ((a, ("who", (b, v.past))), d.predicate(2)), (b, (v.past, a))


def _le_passive(d: _Draw) -> Pair:
    (v,) = d.verb(pool=SAME_FORM_VERBS)
    a, b = _np(d.person(0)), _np(d.person(1))
    return (a, (("was", v.participle), ("by", b))), (b, (v.past, a))


def _le_conjunction(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b, c = (_np(d.person(i)) for i in range(3))
    return (a, (v.past, (b, "and", c))), (a, (v.past, c))


def _le_adjective(d: _Draw) -> Pair:
    (v,) = d.verb()
    n, b = d.person(0), _np(d.person(1))
    return (("the", (d.pick(ADJECTIVES), n)), (v.past, b)), (_np(n), (v.past, b))


def _le_around_relative_clause(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    return ((a, ("who", d.pick(INTRANSITIVE_VERBS))), (v.past, b)), (a, (v.past, b))


# ---- subsequence, non-entailment -------------------------------------------------------------------


def _sn_np_s(d: _Draw) -> Pair:
    a, b = _np(d.person(0)), _np(d.person(1))
    verb = d.pick(NP_S_VERBS)
    return (a, (verb, (b, d.predicate(2)))), (a, (verb, b))


def _sn_pp_on_subject(d: _Draw) -> Pair:
    a, b = _np(d.person(0)), _np(d.person(1))
    vp = d.predicate(2)
    return ((a, (d.pick(PERSON_PREPOSITIONS), b)), vp), (b, vp)


def _sn_relative_clause_on_subject(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    vp = d.predicate(2)
    return ((a, ("who", (v.past, b))), vp), (b, vp)


def _sn_reduced_relative(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    vp = d.predicate(2)
    return ((a, (v.participle, ("by", b))), vp), (b, vp)


def _sn_of_phrase_on_subject(d: _Draw) -> Pair:
    b = d.person(1)
    head = d.pick([n for n in RELATIONAL_NOUNS if n != b])
    vp = d.predicate(2)
    return ((_np(head), ("of", _np(b))), vp), (_np(b), vp)


# ---- subsequence, entailment -------------------------------------------------------------------------


def _se_conjunction(d: _Draw) -> Pair:
    a, b = _np(d.person(0)), _np(d.person(1))
    vp = d.predicate(2)
    return ((a, "and", b), vp), (b, vp)


def _se_adjective(d: _Draw) -> Pair:
    subj = plural(d.person(0))
    vp = d.predicate(1)
    return ((d.pick(ADJECTIVES), subj), vp), (subj, vp)


def _se_understood_object(d: _Draw) -> Pair:
    verb, objects = d.rng.choice(OBJECT_DROP_VERBS)
    a = _np(d.person(0))
    return (a, (verb, _np(d.pick(objects)))), (a, verb)


def _se_pp_on_object(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    pp = (d.pick(PREPOSITIONS), _np(d.pick(LOCATIONS)))
    return (a, (v.past, (b, pp))), (a, (v.past, b))


def _se_relative_clause_on_object(d: _Draw) -> Pair:
    (v,) = d.verb()
    a, b = _np(d.person(0)), _np(d.person(1))
    return (a, (v.past, (b, ("who", d.predicate(2))))), (a, (v.past, b))


# ---- constituent -----------------------------------------------------------------------------------


def _two_clauses(d: _Draw) -> tuple[Tree, Tree]:
    return d.clause(0), d.clause(2)


def _embedded_under(word: str) -> Builder:
    """``<Word> C1 , C2 .`` -> C1 or C2 (both are constituents)."""

    def build(d: _Draw) -> Pair:
        c1, c2 = _two_clauses(d)
        return ((word, c1), ",", c2), d.rng.choice((c1, c2))

    return build


def _embedded_under_verb(verbs: Sequence[str]) -> Builder:
    """``The N V that C .`` -> C."""

    def build(d: _Draw) -> Pair:
        c = d.clause(1)
        return (_np(d.person(0)), (d.pick(verbs), ("that", c))), c

    return build


def _coordination(word: str) -> Builder:
    """``C1 , <word> C2 .`` -> C1 or C2."""

    def build(d: _Draw) -> Pair:
        c1, c2 = _two_clauses(d)
        return (c1, ",", word, c2), d.rng.choice((c1, c2))

    return build


def _adverb(adverbs: Sequence[str]) -> Builder:
    """``Adv C .`` -> C."""

    def build(d: _Draw) -> Pair:
        c = d.clause(0)
        return (d.pick(adverbs), c), c

    return build


# --------------------------------------------------------------------------------------------------
# Subcase table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HansSubcase:
    """One generator template: the heuristic it targets, its gold label, and an example pattern."""

    heuristic: str
    label: str
    name: str
    template: str
    build: Builder


_ENT, _NON = "entailment", "non-entailment"
_LO, _SS, _CO = HANS_HEURISTICS

#: All generator subcases (30: 3 heuristics x 2 labels x 5 subcases). ``template`` shows the pattern.
HANS_LIKE_SUBCASES: tuple[HansSubcase, ...] = (
    HansSubcase(_LO, _NON, "ln_subject_object_swap", "The A V the B . -> The B V the A .",
                _ln_subject_object_swap),
    HansSubcase(_LO, _NON, "ln_passive", "The A was V by the B . -> The A V the B .", _ln_passive),
    HansSubcase(_LO, _NON, "ln_relative_clause", "The A who the B V1 V2 the C . -> The B V2 the C .",
                _ln_relative_clause),
    HansSubcase(_LO, _NON, "ln_conjunction", "The A V the B and the C . -> The B V the C .",
                _ln_conjunction),
    HansSubcase(_LO, _NON, "ln_preposition", "The A near the B V the C . -> The C V the B .",
                _ln_preposition),
    HansSubcase(_LO, _ENT, "le_relative_clause", "The A who the B V VP . -> The B V the A .",
                _le_relative_clause),
    HansSubcase(_LO, _ENT, "le_passive", "The A was V by the B . -> The B V the A .", _le_passive),
    HansSubcase(_LO, _ENT, "le_conjunction", "The A V the B and the C . -> The A V the C .",
                _le_conjunction),
    HansSubcase(_LO, _ENT, "le_adjective", "The ADJ A V the B . -> The A V the B .", _le_adjective),
    HansSubcase(_LO, _ENT, "le_around_relative_clause", "The A who VI V the B . -> The A V the B .",
                _le_around_relative_clause),
    HansSubcase(_SS, _NON, "sn_np_s", "The A knew the B VP . -> The A knew the B .", _sn_np_s),
    HansSubcase(_SS, _NON, "sn_pp_on_subject", "The A near the B VP . -> The B VP .", _sn_pp_on_subject),
    HansSubcase(_SS, _NON, "sn_relative_clause_on_subject", "The A who V the B VP . -> The B VP .",
                _sn_relative_clause_on_subject),
    HansSubcase(_SS, _NON, "sn_reduced_relative", "The A V-en by the B VP . -> The B VP .",
                _sn_reduced_relative),
    HansSubcase(_SS, _NON, "sn_of_phrase_on_subject", "The friend of the B VP . -> The B VP .",
                _sn_of_phrase_on_subject),
    HansSubcase(_SS, _ENT, "se_conjunction", "The A and the B VP . -> The B VP .", _se_conjunction),
    HansSubcase(_SS, _ENT, "se_adjective", "ADJ As VP . -> As VP .", _se_adjective),
    HansSubcase(_SS, _ENT, "se_understood_object", "The A read the X . -> The A read .",
                _se_understood_object),
    HansSubcase(_SS, _ENT, "se_pp_on_object", "The A V the B in the L . -> The A V the B .",
                _se_pp_on_object),
    HansSubcase(_SS, _ENT, "se_relative_clause_on_object", "The A V the B who VP . -> The A V the B .",
                _se_relative_clause_on_object),
    HansSubcase(_CO, _NON, "cn_embedded_under_if", "If C1 , C2 . -> C1 | C2", _embedded_under("if")),
    HansSubcase(_CO, _NON, "cn_embedded_under_unless", "Unless C1 , C2 . -> C1 | C2",
                _embedded_under("unless")),
    HansSubcase(_CO, _NON, "cn_embedded_under_verb", "The A believed that C . -> C",
                _embedded_under_verb(NONFACTIVE_VERBS)),
    HansSubcase(_CO, _NON, "cn_disjunction", "C1 , or C2 . -> C1 | C2", _coordination("or")),
    HansSubcase(_CO, _NON, "cn_adverb", "Probably C . -> C", _adverb(NONVERIDICAL_ADVERBS)),
    HansSubcase(_CO, _ENT, "ce_embedded_under_since", "Since C1 , C2 . -> C1 | C2",
                _embedded_under("since")),
    HansSubcase(_CO, _ENT, "ce_embedded_under_because", "Because C1 , C2 . -> C1 | C2",
                _embedded_under("because")),
    HansSubcase(_CO, _ENT, "ce_embedded_under_verb", "The A knew that C . -> C",
                _embedded_under_verb(FACTIVE_VERBS)),
    HansSubcase(_CO, _ENT, "ce_conjunction", "C1 , and C2 . -> C1 | C2", _coordination("and")),
    HansSubcase(_CO, _ENT, "ce_adverb", "Clearly C . -> C", _adverb(VERIDICAL_ADVERBS)),
)  # fmt: skip


def generate_hans_like_with_trees(
    n_per_subcase: int = 20, seed: int = 0
) -> list[tuple[NLIExample, Tree, Tree]]:
    """:func:`generate_hans_like` plus the premise and hypothesis trees (period not included).

    The trees let tests (and users) check the heuristic property of every pair structurally.
    """
    if isinstance(n_per_subcase, bool) or not isinstance(n_per_subcase, int) or n_per_subcase < 1:
        raise ConfigError(f"generate_hans_like: n_per_subcase must be an integer >= 1, got {n_per_subcase!r}")
    out: list[tuple[NLIExample, Tree, Tree]] = []
    for sub in HANS_LIKE_SUBCASES:
        # One RNG per subcase (str seeds hash with sha512: stable across runs and Python processes).
        rng = random.Random(f"hansgen:{seed}:{sub.name}")
        seen: set[tuple[str, str]] = set()
        attempts = 0
        while len(seen) < n_per_subcase:
            attempts += 1
            if attempts > 50 * n_per_subcase + 1000:
                raise ConfigError(
                    f"generate_hans_like: n_per_subcase={n_per_subcase} exceeds the distinct pairs the "
                    f"vocabulary gives for subcase '{sub.name}' ({len(seen)} found)"
                )
            premise_tree, hyp_tree = sub.build(_Draw(rng))
            premise, hypothesis = render(premise_tree), render(hyp_tree)
            if (premise, hypothesis) in seen:
                continue
            seen.add((premise, hypothesis))
            uid = f"hansgen:{sub.heuristic}:{sub.name}:{len(seen) - 1}"
            ex = NLIExample(uid, premise, hypothesis, sub.label, sub.heuristic, sub.name, sub.template)
            out.append((ex, premise_tree, hyp_tree))
    return out


def generate_hans_like(n_per_subcase: int = 20, seed: int = 0) -> list[NLIExample]:
    """HANS-style evaluation pairs from our own templates (see the module docstring).

    ``n_per_subcase`` distinct pairs for each entry of :data:`HANS_LIKE_SUBCASES`, in table order.
    Deterministic per ``seed``; uids are ``hansgen:<heuristic>:<subcase>:<i>``.
    """
    return [ex for ex, _, _ in generate_hans_like_with_trees(n_per_subcase, seed)]
