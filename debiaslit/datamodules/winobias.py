"""WinoBias pro / anti pairs as a DataModule in the gendered-pair contract (``gendered_pairs``)."""

from __future__ import annotations

import math
from pathlib import Path

from debiaslit.data.winobias import (
    FEMALE_PRONOUNS,
    MALE_PRONOUNS,
    read_occupations,
    read_winobias_pairs,
    referent_occupation,
)
from debiaslit.data.winogender import read_occupation_stats
from debiaslit.datamodules.gendered_pairs import GenderedPair, PairDataModule, checked_pairs, word_difference
from debiaslit.errors import DataFormatError

OCCUPATION_FILES = ("male_occupations.txt", "female_occupations.txt")


def winobias_pairs(
    data_dir: str | Path, split: str = "dev", stats_file: str | None = None, mismatched: str = "error"
) -> list[GenderedPair]:
    """Pro / anti sentence pairs of types 1 and 2; the pro-stereotyped sentence is the advantaged one.

    The occupation is the referent of the pronoun (the bracketed one; the other occupation of the
    sentence is not used for splitting). ``stats_file`` (``occupations-stats.tsv`` format) gives the
    % female; WinoBias ships none, so without it they are NaN. Sentences with two coreferent
    pronouns differ in two words and count as mismatched.
    """
    data_dir = Path(data_dir)
    known = {o.lower() for name in OCCUPATION_FILES for o in read_occupations(data_dir / name)}
    stats = read_occupation_stats(stats_file) if stats_file else None
    pairs: list[GenderedPair | str] = []
    problems = []
    for pro, anti in read_winobias_pairs(data_dir, split):
        uid = pro.uid.replace("pro_stereotyped_", "")
        occupation = referent_occupation(pro)
        if occupation not in known:
            problems.append(f"{pro.uid}: occupation {occupation!r} is not in {' or '.join(OCCUPATION_FILES)}")
            continue
        if stats is not None and occupation not in stats:
            problems.append(f"{pro.uid}: occupation {occupation!r} is missing from {stats_file}")
            continue
        spans = word_difference(pro.sentence, anti.sentence)
        words = spans and {pro.sentence[slice(*spans[0])].lower(), anti.sentence[slice(*spans[1])].lower()}
        if not spans or len(words & MALE_PRONOUNS) != 1 or len(words & FEMALE_PRONOUNS) != 1:
            pairs.append(uid)
            continue
        pro_is_male = pro.sentence[slice(*spans[0])].lower() in MALE_PRONOUNS
        male, female = (pro, anti) if pro_is_male else (anti, pro)
        bergsma, bls = stats[occupation] if stats is not None else (math.nan, math.nan)
        pairs.append(
            GenderedPair(
                uid=uid,
                occupation=occupation,
                male=male.sentence,
                female=female.sentence,
                male_span=spans[0] if pro_is_male else spans[1],
                female_span=spans[1] if pro_is_male else spans[0],
                male_advantaged=pro_is_male,
                pair_type=pro.type,
                bls_pct_female=bls,
                bergsma_pct_female=bergsma,
            )
        )
    if problems:
        shown = "\n  ".join(problems[:20])
        raise DataFormatError(f"{data_dir} ({split}): {len(problems)} problem(s):\n  {shown}")
    return checked_pairs(pairs, f"{data_dir} ({split})", mismatched)


class WinoBiasDataModule(PairDataModule):
    """WinoBias (Zhao et al. 2018) pro / anti pairs, types 1 and 2, split by referent occupation.

    ``data_dir`` holds uclanlp/corefBias ``WinoBias/wino/data``: ``{pro,anti}_stereotyped_type{1,2}
    .txt.<split>`` and the two occupation lists. ``male_advantaged`` is 1 when the pro-stereotyped
    sentence is the male one.

    Args:
        split: ``dev`` or ``test`` (only ``dev`` is in the shared data bundle).
        stats_file: Optional ``occupations-stats.tsv`` for ``pct_female`` (``stats`` picks the column).
        Others: see :class:`PairDataModule` (``mismatched: skip`` is needed for the upstream files,
            in which 11 pairs differ in more than the pronoun and 15 have two pronouns).
    """

    name = "winobias"

    def __init__(
        self,
        data_dir: str,
        tokenizer: str = "tiny-bert",
        split: str = "dev",
        stats_file: str | None = None,
        stats: str = "bergsma",
        val_fraction: float = 0.2,
        mismatched: str = "error",
        max_length: int = 64,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(
            data_dir,
            tokenizer,
            stats,
            val_fraction,
            mismatched,
            max_length,
            batch_size,
            eval_batch_size,
            seed,
        )

    def read_pairs(self) -> list[GenderedPair]:
        hp = self.hparams
        return winobias_pairs(hp.data_dir, hp.split, hp.stats_file, hp.mismatched)
