"""Bias in Bios as a DataModule: an ambiguous (or balanced) training split, balanced val / test."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from debiaslit.data.bias_in_bios import (
    GENDERS,
    SPLIT_KINDS,
    Bio,
    cell_counts,
    generate_bios,
    load_bios_from_hub,
    read_bios,
    select_cells,
)
from debiaslit.data.collate import PadCollator
from debiaslit.data.nli_readers import split_train_val
from debiaslit.data.samplers import eval_sampler, train_sampler
from debiaslit.errors import ConfigError

SPLITS = ("train", "val", "test")
#: LabHC's split names for ours.
HUB_SPLITS = {"train": "train", "val": "dev", "test": "test"}


class EncodedBios(Dataset):
    """Tokenised bios; item ``i`` is bio ``bios[i]``."""

    def __init__(self, bios: list[Bio], professions: list[str], tokenizer: Any, max_length: int) -> None:
        self.bios = bios
        encoded = tokenizer([b.text for b in bios], truncation=True, max_length=max_length)
        self.items = [
            {
                "input_ids": ids,
                "attention_mask": mask,
                "profession": professions.index(bio.profession),
                "gender": GENDERS.index(bio.gender),
                "index": i,
            }
            for i, (bio, ids, mask) in enumerate(
                zip(bios, encoded["input_ids"], encoded["attention_mask"], strict=True)
            )
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class BiasInBiosDataModule(pl.LightningDataModule):
    """Bios of the professions in ``ambiguous`` (profession -> its gender in the ambiguous split).

    Batch contract (every loader; methods rely on it):

    * ``input_ids``, ``attention_mask``: ``[batch, seq]`` long, padded per batch;
    * ``profession``: long, an index into :attr:`professions` (the keys of ``ambiguous``, in order);
    * ``gender``: long, 0 male / 1 female;
    * ``index``: long, the row of the split's :class:`EncodedBios` (``datamodule.datasets[split].bios``).

    ``source``: ``templated`` (our generated bios, ``n_per_cell`` per profession × gender before the
    split), ``hub`` (``LabHC/bias_in_bios``: train / dev / test) or a local ``.jsonl`` / ``.parquet``
    path; a path holding ``{split}`` names one file per split (``train``, ``val``, ``test``), any other
    is split by ``val_fraction`` / ``test_fraction`` (a seeded hash of the row ids). ``train_split``:
    ``ambiguous`` (SHIFT: gender predicts profession perfectly), ``balanced`` or ``all`` (every bio of the
    professions, e.g. to train an SAE); val and test are always
    balanced (every profession × gender cell cut to the smallest one). Bios of other professions are left
    out and their count printed. Samplers follow :mod:`debiaslit.data.samplers` (DDP ≡ 1 process).
    """

    def __init__(
        self,
        source: str = "templated",
        ambiguous: dict[str, str] | None = None,
        train_split: str = "ambiguous",
        n_per_cell: int = 200,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        tokenizer: str = "tiny-bert",
        max_length: int = 96,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        ambiguous = dict(ambiguous or {"professor": "male", "nurse": "female"})
        bad = {p: g for p, g in ambiguous.items() if g not in GENDERS}
        if bad or len(ambiguous) < 2:
            raise ConfigError(
                f"data.ambiguous must map at least two professions to a gender in {GENDERS}, got {ambiguous}"
            )
        if train_split not in SPLIT_KINDS:
            raise ConfigError(f"data.train_split must be one of {SPLIT_KINDS}, got {train_split!r}")
        self.save_hyperparameters()
        self.ambiguous = ambiguous
        self.professions: list[str] = list(ambiguous)
        self.genders: tuple[str, str] = GENDERS
        self.datasets: dict[str, EncodedBios] = {}

    @cached_property
    def tokenizer(self) -> Any:
        from debiaslit.backbones import load_tokenizer

        return load_tokenizer(self.hparams.tokenizer)

    def _raw_splits(self) -> dict[str, list[Bio]]:
        hp = self.hparams
        if hp.source == "hub":
            return {split: load_bios_from_hub(HUB_SPLITS[split]) for split in SPLITS}
        if "{split}" in hp.source:
            return {split: read_bios(hp.source.format(split=split)) for split in SPLITS}
        if hp.source == "templated":
            pool = generate_bios(hp.n_per_cell, self.professions, hp.seed)
        else:
            pool = read_bios(hp.source)
        held = hp.val_fraction + hp.test_fraction
        if not (0 < hp.val_fraction and 0 < hp.test_fraction and held < 1):
            raise ConfigError(
                f"data.val_fraction and data.test_fraction must be > 0 with a sum < 1, got "
                f"{hp.val_fraction} and {hp.test_fraction}"
            )
        train, rest = split_train_val(pool, held, hp.seed, option="data.val_fraction + data.test_fraction")
        val, test = split_train_val(rest, hp.test_fraction / held, hp.seed, option="data.test_fraction")
        return {"train": train, "val": val, "test": test}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        for split, bios in self._raw_splits().items():
            kept = [b for b in bios if b.profession in self.ambiguous]
            kind = hp.train_split if split == "train" else "balanced"
            chosen = select_cells(kept, self.ambiguous, kind, hp.seed, where=f"{hp.source} ({split})")
            rank_zero_info(
                f"[debiaslit] bias in bios {split} ({kind}): {len(chosen)} bios {cell_counts(chosen)}; "
                f"{len(bios) - len(kept)} of other professions left out"
            )
            self.datasets[split] = EncodedBios(chosen, self.professions, self.tokenizer, hp.max_length)

    def _loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            raise ConfigError(f"BiasInBiosDataModule: call setup() before asking for the {split} loader")
        dataset = self.datasets[split]
        train = split == "train"
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size if train else self.hparams.eval_batch_size,
            sampler=train_sampler(dataset, self.trainer, self.hparams.seed)
            if train
            else eval_sampler(dataset, self.trainer),
            collate_fn=PadCollator(self.tokenizer.pad_token_id or 0),
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
