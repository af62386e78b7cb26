"""Winogender minimal pairs as a DataModule: tokenised male/female variants, split by occupation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from debiaslit.data.collate import PadCollator
from debiaslit.data.samplers import eval_sampler, train_sampler
from debiaslit.data.winogender import GENDERS, WinogenderPair, read_winogender, split_by_occupation
from debiaslit.errors import ConfigError, DataFormatError


class EncodedWinogender(Dataset):
    """One item per minimal pair: ``input_ids_<gender>``, ``attention_mask_<gender>`` and
    ``pronoun_pos_<gender>`` (the token index where the gendered variants first differ), plus the
    occupation statistics that Winogender's metrics correlate with."""

    def __init__(
        self, pairs: list[WinogenderPair], tokenizer: Any, genders: tuple[str, ...], max_length: int
    ):
        self.pairs = pairs
        self.genders = genders
        self.occupations = sorted({p.occupation for p in pairs})
        self.items = [self._encode(p, tokenizer, max_length) for p in pairs]

    def _encode(self, pair: WinogenderPair, tokenizer: Any, max_length: int) -> dict[str, Any]:
        item: dict[str, Any] = {}
        encoded = {
            g: tokenizer(getattr(pair, g).sentence, truncation=True, max_length=max_length) for g in GENDERS
        }
        for g in self.genders:
            ids = encoded[g]["input_ids"]
            other = encoded["female" if g == "male" else "male"]["input_ids"]
            diff = [i for i, (a, b) in enumerate(zip(ids, other, strict=False)) if a != b]
            if not diff and len(ids) == max_length:
                raise ConfigError(
                    f"Winogender pair {pair.uid}: data.max_length={max_length} truncates the sentence before "
                    "its pronoun; raise data.max_length"
                )
            if not diff:
                raise DataFormatError(
                    f"Winogender pair {pair.uid}: the {g} sentence tokenises identically to its counterpart "
                    f"({getattr(pair, g).sentence!r}); expected a differing pronoun"
                )
            item[f"input_ids_{g}"] = ids
            item[f"attention_mask_{g}"] = encoded[g]["attention_mask"]
            item[f"pronoun_pos_{g}"] = diff[0]
        male = pair.male
        item.update(
            occupation_idx=self.occupations.index(pair.occupation),
            answer=male.answer,
            bls_pct_female=male.bls_pct_female,
            bergsma_pct_female=male.bergsma_pct_female,
        )
        return item

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.items[i], "index": i}


class WinogenderDataModule(pl.LightningDataModule):
    """Winogender (Rudinger et al. 2018) for methods that train or evaluate on gendered minimal pairs.

    Train and evaluation never share an occupation (PCGU trains on these sentences). The files come
    from github.com/rudinger/winogender-schemas (``data/``): ``all_sentences.tsv``, ``templates.tsv``,
    ``occupations-stats.tsv``.

    Args:
        data_dir: Folder holding the three Winogender TSVs.
        tokenizer: Backbone name (linked from ``model.init_args.backbone`` by the CLI).
        val_fraction: Fraction of the 60 occupations held out for evaluation.
        genders: Which variants each item carries (``male``, ``female``, ``neutral``).
    """

    def __init__(
        self,
        data_dir: str,
        tokenizer: str = "tiny-bert",
        val_fraction: float = 0.2,
        genders: tuple[str, ...] = ("male", "female"),
        max_length: int = 64,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        unknown = sorted(set(genders) - set(GENDERS))
        if unknown or not genders:
            raise ConfigError(f"data.genders: expected a non-empty subset of {GENDERS}, got {list(genders)}")
        self.save_hyperparameters()
        self.train_set: EncodedWinogender | None = None
        self.val_set: EncodedWinogender | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from debiaslit.backbones import load_tokenizer

        hp = self.hparams
        data = read_winogender(Path(hp.data_dir))
        [(train, val)] = split_by_occupation(data.pairs, val_fraction=hp.val_fraction, seed=hp.seed)
        tokenizer = load_tokenizer(hp.tokenizer)
        self._collate = PadCollator(tokenizer.pad_token_id or 0)
        self.train_set = EncodedWinogender(train, tokenizer, tuple(hp.genders), hp.max_length)
        self.val_set = EncodedWinogender(val, tokenizer, tuple(hp.genders), hp.max_length)
        rank_zero_info(
            f"[debiaslit] winogender: {len(train)} train / {len(val)} eval pairs over "
            f"{len(self.train_set.occupations)} / {len(self.val_set.occupations)} occupations"
        )

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
