"""Winogender minimal pairs as a DataModule in the gendered-pair contract (``gendered_pairs``)."""

from __future__ import annotations

from pathlib import Path

from debiaslit.data.winogender import read_winogender
from debiaslit.datamodules.gendered_pairs import (
    WINOGENDER,
    GenderedPair,
    PairDataModule,
    checked_pairs,
    word_difference,
)


def winogender_pairs(data_dir: str | Path, stats: str, mismatched: str = "error") -> list[GenderedPair]:
    """The 240 male / female pairs (the neutral sentence is not a gendered pair); the male sentence is
    advantaged when the occupation's ``stats`` % female is below 50 (PCGU's rule, METHODS.md §3.2)."""
    data = read_winogender(Path(data_dir))
    pairs: list[GenderedPair | str] = []
    for p in data.pairs:
        spans = word_difference(p.male.sentence, p.female.sentence)
        if spans is None:
            pairs.append(p.uid)
            continue
        pct = {"bls": p.male.bls_pct_female, "bergsma": p.male.bergsma_pct_female}[stats]
        pairs.append(
            GenderedPair(
                uid=p.uid,
                occupation=p.occupation,
                male=p.male.sentence,
                female=p.female.sentence,
                male_span=spans[0],
                female_span=spans[1],
                male_advantaged=pct < 50,
                pair_type=WINOGENDER,
                bls_pct_female=p.male.bls_pct_female,
                bergsma_pct_female=p.male.bergsma_pct_female,
            )
        )
    return checked_pairs(pairs, str(data_dir), mismatched)


class WinogenderDataModule(PairDataModule):
    """Winogender (Rudinger et al. 2018) male / female pairs for methods that train or evaluate on them.

    Train and evaluation never share an occupation (PCGU trains on these sentences). ``data_dir``
    holds github.com/rudinger/winogender-schemas ``data/``: ``all_sentences.tsv``, ``templates.tsv``,
    ``occupations-stats.tsv``. Other arguments: see :class:`PairDataModule`.
    """

    name = "winogender"

    def read_pairs(self) -> list[GenderedPair]:
        return winogender_pairs(self.hparams.data_dir, self.hparams.stats, self.hparams.mismatched)
