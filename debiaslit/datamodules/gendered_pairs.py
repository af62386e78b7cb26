"""The gendered-pair batch contract shared by Winogender and WinoBias, and the DataModule base they share.

Every item (and, padded, every batch) carries, for ``g`` in ``male`` / ``female``:

* ``input_ids_<g>``, ``attention_mask_<g>``: the tokenised sentence (right padding; a BOS token is
  prepended for tokenizers that add no start token, GPT-2 / GPT-NeoX, so a causal LM can score
  every word);
* ``word_start_<g>``, ``word_end_<g>``: the token span ``[start, end)`` of the gendered word, all of
  its tokens (``debiaslit.backbones.lm_scoring.word_scores`` sums them);

and per pair ``male_advantaged`` (1 when the occupation statistics, or WinoBias's pro-stereotyped
sentence, favour the male one), ``pair_type`` (0 Winogender, 1 / 2 WinoBias type), ``occupation_idx``
(into the dataset's ``occupations``), ``pct_female`` (from the configured statistics, BLS or Bergsma;
NaN when the source has none), ``bls_pct_female``, ``bergsma_pct_female`` and ``index``.

The two sentences of a pair must differ in exactly one word: the gendered one. Pairs that differ in
more are named (DataFormatError), or with ``mismatched: skip`` left out and named in the log.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from debiaslit.data.collate import PadCollator
from debiaslit.data.samplers import eval_sampler, train_sampler
from debiaslit.data.winogender import split_by_occupation
from debiaslit.errors import ConfigError, DataFormatError

PAIR_GENDERS = ("male", "female")
STATS = ("bls", "bergsma")
MISMATCHED = ("error", "skip")
WINOGENDER, WINOBIAS_TYPE1, WINOBIAS_TYPE2 = 0, 1, 2
_WORD = re.compile(r"[\w'-]+")
_MAX_REPORTED = 20


@dataclass(frozen=True)
class GenderedPair:
    """A male / female sentence pair; ``*_span`` are the character spans of the gendered word."""

    uid: str
    occupation: str
    male: str
    female: str
    male_span: tuple[int, int]
    female_span: tuple[int, int]
    male_advantaged: bool
    pair_type: int
    bls_pct_female: float = math.nan
    bergsma_pct_female: float = math.nan

    def pct_female(self, stats: str) -> float:
        return self.bls_pct_female if stats == "bls" else self.bergsma_pct_female


def word_difference(a: str, b: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Character spans of the one word in which ``a`` and ``b`` differ; None if they differ in more
    (or in nothing)."""
    if a == b:
        return None
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    spans = []
    for text in (a, b):
        start, end = prefix, len(text) - suffix
        while start > 0 and _WORD.fullmatch(text[start - 1]):
            start -= 1
        while end < len(text) and _WORD.fullmatch(text[end]):
            end += 1
        if not _WORD.fullmatch(text[start:end]):
            return None
        spans.append((start, end))
    return spans[0], spans[1]


def checked_pairs(pairs: list[GenderedPair | str], source: str, mismatched: str) -> list[GenderedPair]:
    """The pairs; the ids (strings) of pairs whose sentences differ in more than one word are raised
    as a DataFormatError, or with ``mismatched='skip'`` reported and left out."""
    bad = [p for p in pairs if isinstance(p, str)]
    if bad and mismatched == "error":
        raise DataFormatError(
            f"{source}: {len(bad)} pair(s) whose sentences differ in more than the gendered word: "
            f"{bad[:_MAX_REPORTED]} (set data.init_args.mismatched=skip to leave them out)"
        )
    if bad:
        rank_zero_warn(
            f"[debiaslit] {source}: left out {len(bad)} pair(s) whose sentences differ in more than the "
            f"gendered word: {bad}"
        )
    return [p for p in pairs if not isinstance(p, str)]


def needs_bos(tokenizer: Any) -> bool:
    """Tokenizers that add no start token (GPT-2, GPT-NeoX) get their BOS prepended."""
    if tokenizer.bos_token_id is None:
        return False
    return tokenizer("a")["input_ids"][:1] not in ([tokenizer.bos_token_id], [tokenizer.cls_token_id])


def encode_text(tokenizer: Any, text: str, max_length: int) -> tuple[list[int], list[tuple[int, int]]]:
    """(input_ids, character offsets) of ``text``, BOS prepended where :func:`needs_bos`, truncated
    to ``max_length`` tokens in all."""
    bos = needs_bos(tokenizer)
    enc = tokenizer(text, truncation=True, max_length=max_length - bos, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    return ([tokenizer.bos_token_id, *ids], [(0, 0), *offsets]) if bos else (ids, offsets)


def encode_with_span(
    tokenizer: Any, text: str, span: tuple[int, int], max_length: int, uid: str
) -> tuple[list[int], list[int], int, int]:
    """(input_ids, attention_mask, word_start, word_end) of ``text`` with the token span of the
    characters ``span``; ConfigError when ``max_length`` cuts the word."""
    ids, offsets = encode_text(tokenizer, text, max_length)
    inside = [t for t, (a, b) in enumerate(offsets) if b > a and b > span[0] and a < span[1]]
    if not inside or offsets[inside[-1]][1] < span[1]:
        raise ConfigError(
            f"pair {uid}: data.max_length={max_length} truncates the gendered word "
            f"{text[span[0] : span[1]]!r} of {text!r}; raise data.max_length"
        )
    return ids, [1] * len(ids), inside[0], inside[-1] + 1


class EncodedPairs(Dataset):
    """Tokenised gendered pairs in the contract of this module; ``name`` labels the evaluation set."""

    kind = "pairs"

    def __init__(
        self, name: str, pairs: list[GenderedPair], tokenizer: Any, stats: str, max_length: int
    ) -> None:
        self.name = name
        self.pairs = pairs
        self.stats = stats
        self.occupations = sorted({p.occupation for p in pairs})
        index = {o: i for i, o in enumerate(self.occupations)}
        self.items = []
        for pair in pairs:
            item: dict[str, Any] = {}
            for g in PAIR_GENDERS:
                ids, mask, start, end = encode_with_span(
                    tokenizer, getattr(pair, g), getattr(pair, f"{g}_span"), max_length, pair.uid
                )
                item |= {f"input_ids_{g}": ids, f"attention_mask_{g}": mask}
                item |= {f"word_start_{g}": start, f"word_end_{g}": end}
            self.items.append(
                item
                | {
                    "male_advantaged": int(pair.male_advantaged),
                    "pair_type": pair.pair_type,
                    "occupation_idx": index[pair.occupation],
                    "pct_female": pair.pct_female(stats),
                    "bls_pct_female": pair.bls_pct_female,
                    "bergsma_pct_female": pair.bergsma_pct_female,
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.items[i], "index": i}


class PairDataModule(pl.LightningDataModule):
    """Gendered pairs split by occupation into train and evaluation (they never share one).

    Args:
        data_dir: Folder with the source's files.
        tokenizer: Backbone name (linked from ``model.init_args.backbone`` by the CLI).
        stats: ``bls`` or ``bergsma``: which % female sets ``pct_female`` (and, for Winogender,
            which sentence is advantaged).
        val_fraction: Fraction of the occupations held out for evaluation.
        mismatched: ``error`` or ``skip`` for pairs that differ in more than the gendered word.
    """

    name = "pairs"

    def __init__(
        self,
        data_dir: str,
        tokenizer: str = "tiny-bert",
        stats: str = "bergsma",
        val_fraction: float = 0.2,
        mismatched: str = "error",
        max_length: int = 64,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if stats not in STATS:
            raise ConfigError(f"data.stats must be one of {STATS}, got {stats!r}")
        if mismatched not in MISMATCHED:
            raise ConfigError(f"data.mismatched must be one of {MISMATCHED}, got {mismatched!r}")
        self.save_hyperparameters()
        self.train_set: EncodedPairs | None = None
        self.val_set: EncodedPairs | None = None
        self.mask_token_id: int | None = None

    def read_pairs(self) -> list[GenderedPair]:
        """All pairs of the source (subclasses)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from debiaslit.backbones import load_tokenizer

        hp = self.hparams
        [(train, val)] = split_by_occupation(self.read_pairs(), val_fraction=hp.val_fraction, seed=hp.seed)
        tokenizer = load_tokenizer(hp.tokenizer)
        self._collate = PadCollator(tokenizer.pad_token_id or 0)
        self.mask_token_id = tokenizer.mask_token_id  # what word_scores masks with (None: causal)
        self.train_set = EncodedPairs(self.name, train, tokenizer, hp.stats, hp.max_length)
        self.val_set = EncodedPairs(self.name, val, tokenizer, hp.stats, hp.max_length)
        rank_zero_info(
            f"[debiaslit] {self.name}: {len(train)} train / {len(val)} eval pairs over "
            f"{len(self.train_set.occupations)} / {len(self.val_set.occupations)} occupations"
        )

    @property
    def eval_datasets(self) -> dict[str, EncodedPairs]:
        return {self.name: self.val_set}

    def train_dataloader(self) -> DataLoader:
        sampler = train_sampler(self.train_set, self.trainer, self.hparams.seed)
        return DataLoader(
            self.train_set, batch_size=self.hparams.batch_size, sampler=sampler, collate_fn=self._collate
        )

    def val_dataloader(self) -> DataLoader:
        sampler = eval_sampler(self.val_set, self.trainer)
        return DataLoader(
            self.val_set, batch_size=self.hparams.eval_batch_size, sampler=sampler, collate_fn=self._collate
        )

    test_dataloader = val_dataloader
