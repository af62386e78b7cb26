"""Bias in Bios (De-Arteaga et al. 2019): short biographies labelled with profession and gender.

Three sources, one row check: the Hub dataset ``LabHC/bias_in_bios`` (online), a local JSONL or Parquet
file (``text`` or ``hard_text``, ``profession``, ``gender``), and :func:`generate_bios`, our templated
bios (the offline default; no real person's text). Genders are ``male`` / ``female``; integer genders
follow LabHC (0 male, 1 female), integer professions index :data:`LABHC_PROFESSIONS`. Every bad row is
reported with its line (row) number; nothing is dropped or remapped silently. :func:`select_cells`
builds SHIFT's splits (METHODS.md §6.2): *ambiguous* (each profession with one gender only, so gender
predicts profession perfectly) and *balanced* (equal counts in every profession × gender cell).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debiaslit.data.nli_readers import json_objects
from debiaslit.errors import ConfigError, DataFormatError

GENDERS: tuple[str, str] = ("male", "female")
HUB_ID = "LabHC/bias_in_bios"
#: LabHC's ClassLabel order of the 28 professions (integer ``profession`` values index it).
LABHC_PROFESSIONS: tuple[str, ...] = (
    "accountant", "architect", "attorney", "chiropractor", "comedian", "composer", "dentist", "dietitian",
    "dj", "filmmaker", "interior_designer", "journalist", "model", "nurse", "painter", "paralegal", "pastor",
    "personal_trainer", "photographer", "physician", "poet", "professor", "psychologist", "rapper",
    "software_engineer", "surgeon", "teacher", "yoga_teacher",
)  # fmt: skip
TEXT_FIELDS = ("text", "hard_text")
SPLIT_KINDS = ("ambiguous", "balanced", "all")
_MAX_REPORTED = 20


@dataclass(frozen=True)
class Bio:
    uid: str
    text: str
    profession: str
    gender: str


class _Rows:
    """Validates rows of one input and reports all problems at once, with their line numbers."""

    def __init__(self, where: str, source: str, unit: str, professions: Sequence[str]) -> None:
        self.where, self.source, self.unit, self.professions = where, source, unit, professions
        self.bios: list[Bio] = []
        self.problems: list[str] = []

    def add(self, line: int, record: Mapping[str, Any]) -> None:
        text = next((record[f] for f in TEXT_FIELDS if f in record), None)
        profession, gender = record.get("profession"), record.get("gender")
        if not isinstance(text, str) or not text.strip():
            return self.problem(line, f"no text (a non-empty string in field {' or '.join(TEXT_FIELDS)})")
        if isinstance(profession, int) and not isinstance(profession, bool):
            if not 0 <= profession < len(self.professions):
                return self.problem(
                    line, f"profession index {profession} outside 0..{len(self.professions) - 1}"
                )
            profession = self.professions[profession]
        if not isinstance(profession, str) or not profession.strip():
            return self.problem(line, f"profession {profession!r} is not a name or an integer index")
        if isinstance(gender, int) and not isinstance(gender, bool) and gender in (0, 1):
            gender = GENDERS[gender]
        if gender not in GENDERS:
            return self.problem(line, f"gender {gender!r} is not one of {GENDERS} or 0 / 1 (0 = male)")
        self.bios.append(Bio(f"{self.source}:{line}", text.strip(), profession.strip().lower(), gender))

    def problem(self, line: int, message: str) -> None:
        self.problems.append(f"{self.unit} {line}: {message}")

    def result(self) -> list[Bio]:
        if self.problems:
            shown = "\n  ".join(self.problems[:_MAX_REPORTED])
            more = len(self.problems) - _MAX_REPORTED
            raise DataFormatError(
                f"{self.where}: {len(self.problems)} malformed row(s) "
                "(expected text, profession, gender):\n  "
                + shown
                + (f"\n  ... and {more} more" if more > 0 else "")
            )
        if not self.bios:
            raise DataFormatError(f"{self.where}: no rows (expected text, profession, gender)")
        return self.bios


def read_bios(path: str | Path) -> list[Bio]:
    """A local ``.jsonl`` (one object per line) or ``.parquet`` file of bios."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (expected a .jsonl or .parquet file of bios)")
    rows = _Rows(str(path), path.stem, "line", LABHC_PROFESSIONS)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            records = pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises its own ArrowInvalid / OSError family
            raise DataFormatError(f"{path}: not a readable Parquet file ({err})") from err
        rows.unit = "row"
        for i, record in enumerate(records, start=1):
            rows.add(i, record)
        return rows.result()
    if path.suffix not in (".jsonl", ".json"):
        raise DataFormatError(f"{path}: unknown extension {path.suffix!r} (expected .jsonl or .parquet)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err})") from err
    for line, record in json_objects(lines, rows, ()):  # bad JSON / non-objects become problems
        rows.add(line, record)
    return rows.result()


def load_bios_from_hub(split: str) -> list[Bio]:
    """``LabHC/bias_in_bios`` split ``train`` / ``dev`` / ``test`` (needs the network)."""
    import datasets  # deferred: slow to import, only this function needs it

    try:
        dataset = datasets.load_dataset(HUB_ID, split=split)
    except (OSError, ValueError) as err:  # offline, not found, unknown split
        raise DataFormatError(
            f"could not load {HUB_ID} split {split!r} from the Hugging Face Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Offline? Use a local .jsonl / .parquet file "
            "(text, profession, gender) or the templated bios (source: templated)."
        ) from err
    feature = dataset.features.get("profession")
    names = tuple(getattr(feature, "names", None) or LABHC_PROFESSIONS)
    rows = _Rows(f"{HUB_ID} split {split!r}", f"bios_{split}", "row", names)
    for i, record in enumerate(dataset, start=1):
        rows.add(i, record)
    return rows.result()


# ---- templated bios --------------------------------------------------------------------------------
_NAMES = {
    "male": "James Daniel Omar Ravi Lukas Mateo Kenji Samuel Tomas Ahmed Victor Hugo Felix Marcus Ivan "
    "Diego Arjun Leon Oscar Pablo Nikolai Theo Elijah Kwame Henrik Andre Malik Jonas Ethan Rafael",
    "female": "Mary Sofia Amara Priya Elena Yuki Hannah Fatima Laura Ingrid Chloe Nadia Grace Lucia Olga "
    "Leila Ananya Clara Rosa Maya Irene Zoe Alice Ngozi Astrid Paula Aisha Julia Emma Camila",
}
_PRONOUNS = {"male": ("he", "his"), "female": ("she", "her")}
#: What each profession does, where, and on what; titles are never written (as in LabHC's hard_text).
_DUTIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "professor": (
        ("teaches graduate seminars", "supervises doctoral students", "publishes research on economics",
         "lectures on organic chemistry", "reviews grant proposals", "leads a research group"),
        ("at the state university", "in the physics department", "at a college in Ohio", "at the law school"),
    ),
    "nurse": (
        ("cares for patients after surgery", "monitors patients in the intensive care unit",
         "gives medication on the night shift", "assists doctors in the emergency room",
         "educates families about home care", "works with newborns and their mothers"),
        ("at the county hospital", "in a pediatric clinic", "at a rural health center",
         "in the cardiac ward"),
    ),
    "surgeon": (
        ("performs heart operations", "specializes in knee replacements", "operates on trauma patients",
         "trains residents in the operating room", "repairs injuries of the spine", "removes tumors"),
        ("at the medical center", "at a teaching hospital", "in a private practice", "at the trauma center"),
    ),
    "teacher": (
        ("teaches third grade", "coaches the debate team", "teaches high school math",
         "runs the after-school reading program", "grades homework every evening", "plans science lessons"),
        ("at an elementary school", "at a public middle school", "in a small village school",
         "at the academy"),
    ),
    "software_engineer": (
        ("writes backend code", "builds mobile apps", "maintains a database system", "reviews pull requests",
         "designs cloud infrastructure", "fixes bugs in the payment service"),
        ("at a startup", "at a large tech company", "on a remote team", "at a bank's technology division"),
    ),
    "attorney": (
        ("represents clients in court", "drafts contracts", "handles immigration cases",
         "advises companies on mergers", "argues appeals", "defends people accused of crimes"),
        ("at a law firm", "in the public defender's office", "in a downtown practice",
         "at a legal aid clinic"),
    ),
}  # fmt: skip
TEMPLATED_PROFESSIONS: tuple[str, ...] = tuple(_DUTIES)
_TEMPLATES = (
    "{Name} {duty} {place}. {Sub} has done this work for {years} years.",
    "For {years} years {name} has worked {place}, where {sub} {duty}.",
    "{Name} {duty}. {Pos_cap} colleagues {place} say {sub} is patient and careful.",
    "After finishing {pos} studies, {name} moved to work {place}. Today {sub} {duty}.",
    "{Name} lives with {pos} family and {duty} {place}. In {pos} free time {sub} enjoys {hobby}.",
    "Known to friends for {pos} love of {hobby}, {name} {duty} {place}.",
)
_HOBBIES = ("hiking", "chess", "painting", "running", "cooking", "gardening", "photography", "music")


def generate_bios(
    n_per_cell: int, professions: Sequence[str] = ("professor", "nurse"), seed: int = 0
) -> list[Bio]:
    """``n_per_cell`` templated bios for every profession × gender, interleaved, ids ``templated:<i>``.

    Gender shows only in the first name and pronouns; profession only in the duties and workplaces.
    """
    unknown = [p for p in professions if p not in _DUTIES]
    if unknown:
        raise ConfigError(f"templated bios know no profession {unknown}; known: {', '.join(_DUTIES)}")
    if n_per_cell < 1:
        raise ConfigError(f"templated bios: n_per_cell must be >= 1, got {n_per_cell}")
    rng = random.Random(seed)
    names = {g: _NAMES[g].split() for g in GENDERS}
    bios: list[Bio] = []
    for _ in range(n_per_cell):
        for profession in professions:
            duties, places = _DUTIES[profession]
            for gender in GENDERS:
                sub, pos = _PRONOUNS[gender]
                name = rng.choice(names[gender])
                text = rng.choice(_TEMPLATES).format(
                    name=name, Name=name, sub=sub, Sub=sub.capitalize(), pos=pos, Pos_cap=pos.capitalize(),
                    duty=rng.choice(duties), place=rng.choice(places), years=rng.randint(2, 30),
                    hobby=rng.choice(_HOBBIES),
                )  # fmt: skip
                bios.append(Bio(f"templated:{len(bios)}", text, profession, gender))
    return bios


# ---- splits ----------------------------------------------------------------------------------------
def cell_counts(bios: Iterable[Bio]) -> dict[tuple[str, str], int]:
    """Bios per (profession, gender)."""
    return dict(sorted(Counter((b.profession, b.gender) for b in bios).items()))


def select_cells(
    bios: Sequence[Bio], ambiguous: Mapping[str, str], kind: str, seed: int = 0, where: str = "bios"
) -> list[Bio]:
    """The bios of the professions in ``ambiguous`` (profession -> the gender it is paired with), as

    * ``ambiguous``: only the paired cells (profession determines gender), all of their bios;
    * ``balanced``: every profession × gender cell cut to the smallest cell's size (a seeded sample);
    * ``all``: every bio of those professions (e.g. to train an SAE on).

    Order is kept. A cell that is empty is an error naming it.
    """
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"split kind must be one of {SPLIT_KINDS}, got {kind!r}")
    cells = (
        [(p, g) for p, g in ambiguous.items()]
        if kind == "ambiguous"
        else [(p, g) for p in ambiguous for g in GENDERS]
    )
    by_cell: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, bio in enumerate(bios):
        by_cell[(bio.profession, bio.gender)].append(i)
    empty = [cell for cell in cells if not by_cell[cell]]
    if empty:
        raise DataFormatError(
            f"{where}: no bios for (profession, gender) {empty}; present: {cell_counts(bios)}"
        )
    size = min(len(by_cell[cell]) for cell in cells)
    rng = random.Random(seed)
    keep: set[int] = set()
    for cell in cells:
        chosen = rng.sample(by_cell[cell], size) if kind == "balanced" else by_cell[cell]
        keep.update(chosen)
    return [bio for i, bio in enumerate(bios) if i in keep]
