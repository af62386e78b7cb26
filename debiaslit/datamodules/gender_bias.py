"""GenderBiasData: the training pairs of an LM debiasing method and every set the LM bias evaluator
reads, in one DataModule (one ``data:`` section, the tokenizer linked once)."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from debiaslit.data.crows_pairs import BIAS_TYPES, read_crows_pairs
from debiaslit.data.neutral_text import premise_sentences
from debiaslit.datamodules.gendered_pairs import PairDataModule
from debiaslit.datamodules.lm_eval_sets import EncodedCrowS, EncodedText, ScoreMaskCollator
from debiaslit.datamodules.loaders import shard_loader
from debiaslit.datamodules.winobias import WinoBiasDataModule
from debiaslit.datamodules.winogender import WinogenderDataModule
from debiaslit.errors import ConfigError

PAIR_SOURCES = ("winogender", "winobias")


class GenderBiasData(pl.LightningDataModule):
    """Gendered pairs to train on (occupations held out for evaluation) plus the evaluation sets.

    Validation / test dataloaders, in this order, for each set that is configured: ``winogender`` and
    ``winobias`` (the held-out occupations), ``crows`` (CrowS-Pairs) and ``neutral`` (held-out MNLI
    premises for the LM-quality guard). ``eval_datasets`` maps the names to the datasets in the same
    order, so the evaluator knows what dataloader ``i`` holds.

    Args:
        tokenizer: Backbone name (linked from ``model.init_args.backbone`` by the CLI).
        winogender_dir: Winogender ``data/`` folder (``None``: not used).
        winobias_dir: WinoBias folder (``None``: not used); ``winobias_split`` ``dev`` or ``test``.
        winobias_stats_file: ``occupations-stats.tsv`` giving WinoBias occupations a % female.
        crows_file: ``crows_pairs_anonymized.csv`` (``None``: not used); ``crows_bias_types`` keeps
            only those bias types (``None``: all nine).
        neutral_file: An NLI file whose unique premises, every ``neutral_every``-th of them (the ones
            an MLM head fitted with ``part: fit`` never saw), measure LM quality.
        train_on: Pair sources the training dataloader draws from (``[]`` for validate-only runs).
        stats, val_fraction, mismatched: As in :class:`~debiaslit.datamodules.gendered_pairs.PairDataModule`.
        mlm_probability: Share of a neutral sentence's tokens a masked LM predicts.
        seed: Fixes the held-out occupations (and the masked positions of the neutral text).
        order_seed: Seeds the training order only (``None``: ``seed``), so runs can differ in order
            while evaluating the same held-out occupations.
    """

    def __init__(
        self,
        tokenizer: str = "tiny-bert",
        winogender_dir: str | None = None,
        winobias_dir: str | None = None,
        winobias_split: str = "dev",
        winobias_stats_file: str | None = None,
        crows_file: str | None = None,
        crows_bias_types: list[str] | None = None,
        neutral_file: str | None = None,
        neutral_every: int = 10,
        neutral_max: int | None = None,
        train_on: list[str] | None = None,
        stats: str = "bergsma",
        val_fraction: float = 0.2,
        mismatched: str = "skip",
        mlm_probability: float = 0.15,
        max_length: int = 128,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        seed: int = 0,
        order_seed: int | None = None,
    ) -> None:
        super().__init__()
        train_on = list(train_on or [])
        unknown = sorted(set(train_on) - set(PAIR_SOURCES))
        if unknown:
            raise ConfigError(f"data.train_on: unknown source(s) {unknown}; valid: {PAIR_SOURCES}")
        dirs = {"winogender": winogender_dir, "winobias": winobias_dir}
        if missing := [s for s in train_on if dirs[s] is None]:
            raise ConfigError(f"data.train_on lists {missing} but data.{missing[0]}_dir is not set")
        bad_types = sorted(set(crows_bias_types or []) - set(BIAS_TYPES))
        if bad_types:
            raise ConfigError(f"data.crows_bias_types: unknown {bad_types}; valid: {BIAS_TYPES}")
        self.save_hyperparameters()
        self.train_on = train_on
        self.eval_datasets: dict[str, Dataset] = {}
        self.train_set: Dataset | None = None
        self.mask_token_id: int | None = None

    def _pair_modules(self) -> dict[str, PairDataModule]:
        hp = self.hparams
        common = dict(
            tokenizer=hp.tokenizer, stats=hp.stats, val_fraction=hp.val_fraction, mismatched=hp.mismatched,
            max_length=hp.max_length, seed=hp.seed,
        )  # fmt: skip
        modules: dict[str, PairDataModule] = {}
        if hp.winogender_dir:
            modules["winogender"] = WinogenderDataModule(hp.winogender_dir, **common)
        if hp.winobias_dir:
            modules["winobias"] = WinoBiasDataModule(
                hp.winobias_dir, split=hp.winobias_split, stats_file=hp.winobias_stats_file, **common
            )
        return modules

    def setup(self, stage: str | None = None) -> None:
        if self.eval_datasets:
            return
        from debiaslit.backbones import load_tokenizer

        hp = self.hparams
        tokenizer = load_tokenizer(hp.tokenizer)
        self.mask_token_id = tokenizer.mask_token_id
        self._collate = ScoreMaskCollator(tokenizer.pad_token_id or 0)
        pairs = self._pair_modules()
        for module in pairs.values():
            module.setup(stage)
            self.eval_datasets[module.name] = module.val_set
        if self.train_on:
            self.train_set = ConcatDataset([pairs[s].train_set for s in self.train_on])
        if hp.crows_file:
            crows = read_crows_pairs(hp.crows_file)
            if hp.crows_bias_types:
                crows = [p for p in crows if p.bias_type in hp.crows_bias_types]
            self.eval_datasets["crows"] = EncodedCrowS("crows", crows, tokenizer, hp.max_length)
        if hp.neutral_file:
            sentences = premise_sentences(hp.neutral_file, "heldout", hp.neutral_every)[: hp.neutral_max]
            self.eval_datasets["neutral"] = EncodedText(
                "neutral", sentences, tokenizer, hp.max_length, hp.mlm_probability, hp.seed
            )
        if not self.eval_datasets:
            raise ConfigError("GenderBiasData: no set configured (give winogender_dir, crows_file, ...)")
        sizes = ", ".join(f"{name} {len(ds)}" for name, ds in self.eval_datasets.items())
        rank_zero_info(f"[debiaslit] gender bias evaluation sets: {sizes}")

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise ConfigError("GenderBiasData: data.train_on is empty, so there is nothing to train on")
        hp = self.hparams
        order = hp.seed if hp.order_seed is None else hp.order_seed
        return shard_loader(self.train_set, self.trainer, hp.batch_size, self._collate, order)

    def val_dataloader(self) -> list[DataLoader]:
        size = self.hparams.eval_batch_size
        return [shard_loader(ds, self.trainer, size, self._collate) for ds in self.eval_datasets.values()]

    test_dataloader = val_dataloader
