"""NeutralText: MNLI premises as plain text for fitting an MLM head (``fit`` part) and measuring its
loss on held-out premises (``heldout``: the ones GenderBiasData's LM-quality guard reads)."""

from __future__ import annotations

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from debiaslit.data.neutral_text import premise_sentences
from debiaslit.data.samplers import eval_sampler, train_sampler
from debiaslit.datamodules.lm_eval_sets import EncodedText, ScoreMaskCollator


class NeutralText(pl.LightningDataModule):
    """Unique premises of an NLI file; every ``every``-th one is held out for validation.

    Args:
        path: NLI file (e.g. the MNLI dev TSV of the shared data bundle).
        tokenizer: Backbone name (linked from ``model.init_args.backbone`` by the CLI).
        every: One premise in ``every`` is held out.
        max_train: Use only the first ``max_train`` fitting premises (``None``: all).
        mlm_probability: Share of each held-out sentence's tokens scored (fixed per sentence).
    """

    def __init__(
        self,
        path: str,
        tokenizer: str = "tiny-bert",
        every: int = 10,
        max_train: int | None = None,
        mlm_probability: float = 0.15,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_set: EncodedText | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from debiaslit.backbones import load_tokenizer

        hp = self.hparams
        tokenizer = load_tokenizer(hp.tokenizer)
        self._collate = ScoreMaskCollator(tokenizer.pad_token_id or 0)
        fit = premise_sentences(hp.path, "fit", hp.every)[: hp.max_train]
        heldout = premise_sentences(hp.path, "heldout", hp.every)
        self.train_set = EncodedText("fit", fit, tokenizer, hp.max_length, hp.mlm_probability, hp.seed)
        self.val_set = EncodedText("heldout", heldout, tokenizer, hp.max_length, hp.mlm_probability, hp.seed)

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
