"""Professions × templates prompts for the gender-bias mediation analysis of language models (Vig et al.).

Each prompt is one of our own templates filled with a profession from ``professions.json``; its
counterfactual fills the slot with "man" or "woman", whichever goes against the profession's
stereotype (METHODS.md §1.2), and the effect measure compares the anti- and pro-stereotypical pronoun.
The slot is patched at one token position, so a profession that is not one token with a leading space
cannot be used: such professions are listed in the probe summary and warned about, never dropped silently.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from debiaslit.cma.probe import Probe
from debiaslit.data.collate import PadCollator
from debiaslit.data.professions import read_professions
from debiaslit.data.samplers import eval_sampler
from debiaslit.errors import ConfigError
from debiaslit.utils.paths import shared_data_dir

#: Our templates (not Vig et al.'s): the next token after each is where a pronoun would go.
TEMPLATES: tuple[str, ...] = (
    "The {} explained that",
    "The {} told everyone that",
    "The {} wrote to say that",
    "The {} left early because",
    "The {} was late because",
    "The {} smiled because",
    "The {} stayed home because",
    "The {} called the office because",
)
DEFAULT_PROFESSIONS = str(shared_data_dir() / "professions" / "professions.json")


class ProfessionPrompts(pl.LightningDataModule):
    """Prompts (profession × template) with aligned "man"/"woman" counterfactuals, for ``validate``.

    Args:
        professions: path of a professions JSON (``[word, definitional, stereotypical]`` entries).
        templates: sentence templates with one ``{}`` slot (default: :data:`TEMPLATES`).
        tokenizer: tokenizer name (linked to the model's backbone by the CLI).
        max_definitional: keep professions with |definitional| below this (Vig: 0.75).
        limit: keep a seeded random subset of this many usable professions.
        mask_target: append the tokenizer's [MASK] and read the prediction there (masked LMs).
        pronouns: (male, female) candidate continuations; substitutes: (male, female) slot fillers.
    """

    def __init__(
        self,
        professions: str = DEFAULT_PROFESSIONS,
        templates: list[str] | None = None,
        tokenizer: str = "tiny-gpt2",
        max_definitional: float = 0.75,
        limit: int | None = None,
        mask_target: bool = False,
        pronouns: tuple[str, str] = ("he", "she"),
        substitutes: tuple[str, str] = ("man", "woman"),
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        templates = list(templates or TEMPLATES)
        bad = [t for t in templates if t.count("{}") != 1]
        if bad:
            raise ConfigError(f"data.templates: each template needs exactly one {{}} slot; bad: {bad}")
        if limit is not None and limit < 1:
            raise ConfigError(f"data.limit must be >= 1, got {limit}")
        self.save_hyperparameters()
        self.templates = templates
        self.items: list[dict[str, Any]] = []
        self.counterfactual: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}

    @cached_property
    def tokenizer(self) -> Any:
        from debiaslit.backbones import load_tokenizer

        return load_tokenizer(self.hparams.tokenizer)

    def _single(self, word: str) -> int | None:
        """Token id of `` word`` when it is one token (candidate pronouns, substitutes)."""
        ids = self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 else None

    def setup(self, stage: str | None = None) -> None:
        if self.items:
            return
        hp = self.hparams
        chosen = [p for p in read_professions(hp.professions) if abs(p.definitional) < hp.max_definitional]
        usable, unusable = [], []
        for p in chosen:
            one_token = all(self._encode(t, p.word) is not None for t in self.templates)
            (usable if one_token else unusable).append(p)
        if unusable:
            rank_zero_warn(
                f"{len(unusable)}/{len(chosen)} professions are not a single token for {hp.tokenizer} and "
                f"cannot be patched at one position: {[p.word for p in unusable][:20]}..."
            )
        if not usable:
            raise ConfigError(f"no profession of {hp.professions} is a single token for {hp.tokenizer}")
        if hp.limit is not None and hp.limit < len(usable):
            usable = sorted(random.Random(hp.seed).sample(usable, hp.limit), key=lambda p: p.word)
        words = {w: self._single(w) for w in hp.pronouns}
        multi = [w for w, i in words.items() if i is None]
        multi += [w for w in hp.substitutes if any(self._encode(t, w) is None for t in self.templates)]
        if multi:
            raise ConfigError(f"data.pronouns / substitutes {multi} are not single tokens for {hp.tokenizer}")
        for template in self.templates:
            for p in usable:
                male = p.stereotypical > 0  # positive = male-leaning (Bolukbasi et al.)
                anti, stereo = (hp.pronouns[1], hp.pronouns[0]) if male else hp.pronouns
                substitute = hp.substitutes[1] if male else hp.substitutes[0]
                base, position = self._encode(template, p.word)
                cf, cf_position = self._encode(template, substitute)
                if len(cf["input_ids"]) != len(base["input_ids"]) or cf_position != position:
                    raise ConfigError(f"template {template!r}: {substitute!r} and {p.word!r} do not align")
                meta = {"anti_ids": words[anti], "stereo_ids": words[stereo], "positions": position}
                if hp.mask_target:
                    meta["target_positions"] = base["input_ids"].index(self.tokenizer.mask_token_id)
                self.items.append({**base, **meta})
                self.counterfactual.append({**cf, **meta})
        self.summary = {
            "n_prompts": len(self.items),
            "n_professions": len(usable),
            "n_templates": len(self.templates),
            "n_filtered_definitional": len(chosen),
            "unusable_professions": [p.word for p in unusable],
        }

    def _encode(self, template: str, word: str) -> tuple[dict[str, list[int]], int] | None:
        """Tokens of ``template`` with ``word`` in the slot and the slot's token position.

        None when the word is not exactly one token in this context (it cannot be patched at one position).
        """
        prefix, suffix = template.split("{}")
        if self.hparams.mask_target:
            suffix = f"{suffix} {self.tokenizer.mask_token}"
        enc = self.tokenizer(prefix + word + suffix, return_offsets_mapping=True)
        start, end = len(prefix), len(prefix) + len(word)
        inside = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < end and b > start]
        if len(inside) != 1:
            return None
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, inside[0]

    def cma_probe(self) -> Probe:
        """Every prompt with its counterfactual, for :class:`~debiaslit.cma.callback.NIECallback`."""
        self.setup()
        return Probe(self.items, self._pad_id(), counterfactual=self.counterfactual, summary=self.summary)

    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def _collate(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        pad = PadCollator(self._pad_id())
        batch = pad([self.items[i] for i in rows])
        cf = pad([self.counterfactual[i] for i in rows])
        batch.update({f"cf_{k}": v for k, v in cf.items() if k in PadCollator.TOKEN_FIELDS})
        return batch

    def val_dataloader(self) -> DataLoader:
        self.setup()
        indices = list(range(len(self.items)))
        sampler = eval_sampler(indices, self.trainer)
        return DataLoader(
            indices, batch_size=self.hparams.batch_size, sampler=sampler, collate_fn=self._collate
        )
