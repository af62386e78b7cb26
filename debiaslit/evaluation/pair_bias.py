"""PairBiasEvaluator: gender bias and LM quality of a masked or causal LM, before vs after debiasing.

It reads the evaluation sets of :class:`~debiaslit.datamodules.gender_bias.GenderBiasData` (or the
held-out pairs of a Winogender / WinoBias DataModule): held-out gendered pairs, CrowS-Pairs and
neutral text, one dataloader each, told apart by ``datamodule.eval_datasets``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from debiaslit.backbones.lm_scoring import (
    SCORE_KINDS,
    pseudo_log_likelihood,
    sentence_log_likelihood,
    token_scores,
    word_scores,
)
from debiaslit.errors import ConfigError
from debiaslit.evaluation.base import Evaluator
from debiaslit.evaluation.bias_scores import crows_figures, occupation_gaps, pair_figures
from debiaslit.evaluation.item_sums import ItemSums
from debiaslit.evaluation.pair_bias_report import report_bias
from debiaslit.utils.run_dir import run_dir

#: bias_distance -> (figure, its unbiased value): what checkpoints select on, by distance, never sign.
DISTANCES = {
    "r_bls": ("r_bls", 0.0),
    "r_bergsma": ("r_bergsma", 0.0),
    "advantaged": ("advantaged_preferred", 0.5),
    "crows": ("score", 0.5),
}
_FIELDS = {"pairs": ("gap",), "crows": ("more", "less"), "text": ("nll", "tokens")}


class PairBiasEvaluator(Evaluator):
    """Per set and epoch: gap / r / preference figures on gendered pairs, CrowS-Pairs scores, the
    LM loss on neutral text, each next to its value at the first evaluation (``before``).

    Logs ``<stage>/<set>/<figure>`` and ``<stage>/bias_distance`` = |figure − unbiased value| of
    ``bias_distance`` on ``bias_set`` (default |r| with BLS % female on held-out Winogender
    occupations); monitor it with ``mode: min``. ``before`` is the first complete evaluation: a
    sanity check over every batch (``trainer.num_sanity_val_steps: -1``, the model before training)
    or else the first validation. It is kept in the checkpoint, so a resumed run compares against
    the same ``before``.

    Args:
        kind: ``log_prob`` (default) or ``logit``: what a word's score is (pairs only).
        bias_distance: One of ``r_bls``, ``r_bergsma``, ``advantaged`` (share of stereotypical
            preferences), ``crows`` (CrowS-Pairs score).
        bias_set: The evaluation set the distance is read from (``crows`` for ``crows``).
        pll_chunk_size: Rows per forward of the masked-LM pseudo-log-likelihood.
    """

    def __init__(
        self,
        kind: str = "log_prob",
        bias_distance: str = "r_bls",
        bias_set: str = "winogender",
        pll_chunk_size: int = 256,
    ) -> None:
        super().__init__()
        if kind not in SCORE_KINDS:
            raise ConfigError(f"evaluator.kind must be one of {SCORE_KINDS}, got {kind!r}")
        if bias_distance not in DISTANCES:
            raise ConfigError(
                f"evaluator.bias_distance must be one of {list(DISTANCES)}, got {bias_distance!r}"
            )
        self.kind, self.bias_distance, self.bias_set = kind, bias_distance, bias_set
        self.pll_chunk_size = pll_chunk_size
        self.sums = nn.ModuleDict()
        self._sets: list[Any] = []
        self.first: dict[str, dict[str, Any]] = {}

    # -------------------------------------------------------------------------------- state
    def get_extra_state(self) -> dict[str, Any]:
        return {"first": self.first}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.first = state.get("first", {})

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "eval_datasets"):
            raise ConfigError("PairBiasEvaluator needs a DataModule with eval_datasets (GenderBiasData)")
        self._sets = list(datamodule.eval_datasets.values())
        self.task = module.hparams.task
        self.mask_token_id = datamodule.mask_token_id
        names = [ds.name for ds in self._sets]
        if self.bias_set not in names:
            raise ConfigError(f"evaluator.bias_set {self.bias_set!r} is not an evaluation set ({names})")
        wanted = "crows" if self.bias_distance == "crows" else "pairs"
        kind = next(ds.kind for ds in self._sets if ds.name == self.bias_set)
        if kind != wanted:
            raise ConfigError(
                f"evaluator.bias_distance={self.bias_distance} needs a {wanted} set; "
                f"{self.bias_set!r} is a {kind} set"
            )
        for ds in self._sets:
            if ds.name not in self.sums:
                self.sums[ds.name] = ItemSums(len(ds), _FIELDS[ds.kind]).to(module.device)

    # --------------------------------------------------------------------------------- step
    def step(self, module: pl.LightningModule, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        ds = self._sets[dataloader_idx]
        model, task = module.model, self.task
        if ds.kind == "pairs":
            male, female = (
                word_scores(
                    model,
                    task,
                    batch[f"input_ids_{g}"],
                    batch[f"attention_mask_{g}"],
                    batch[f"word_start_{g}"],
                    batch[f"word_end_{g}"],
                    self.kind,
                    self.mask_token_id,
                )  # fmt: skip
                for g in ("male", "female")
            )
            values = {"gap": male - female}
        elif ds.kind == "crows":
            values = {side: self._sentence_score(model, batch, side) for side in ("more", "less")}
        else:
            ids, mask = batch["input_ids"], batch["attention_mask"]
            if task == "masked-lm":
                scored = batch["mlm_mask"].bool()
                log_p = token_scores(model, task, ids, mask, scored, mask_token_id=self.mask_token_id)
                tokens = scored.sum(1)
            else:
                log_p, tokens = sentence_log_likelihood(model, ids, mask), mask.sum(1) - 1
            values = {"nll": -log_p, "tokens": tokens}
        self.sums[ds.name].update(batch["index"], **values)

    def _sentence_score(self, model: nn.Module, batch: dict[str, torch.Tensor], side: str) -> torch.Tensor:
        """Masked LM: PLL of the tokens both sentences share; causal LM: the sentence log-likelihood."""
        ids, mask = batch[f"input_ids_{side}"], batch[f"attention_mask_{side}"]
        if self.task == "causal-lm":
            return sentence_log_likelihood(model, ids, mask)
        shared = batch[f"score_mask_{side}"]
        return pseudo_log_likelihood(model, ids, mask, shared, self.mask_token_id, self.pll_chunk_size)

    # ---------------------------------------------------------------------------- epoch end
    def _figures(self, ds: Any, sums: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, Any]]:
        """(figures, what the first evaluation keeps) of one set from its synced sums."""
        seen = sums["seen"]
        index = seen.nonzero().flatten()
        meta = {k: torch.tensor([ds.items[i][k] for i in index.tolist()]) for k in _META[ds.kind]}
        if ds.kind == "text":
            loss = float(sums["nll"][seen].sum() / sums["tokens"][seen].sum().clamp_min(1))
            return {"lm_loss": loss, "perplexity": math.exp(loss)}, {"lm_loss": loss}
        if ds.kind == "crows":
            return crows_figures(
                sums["more"][index], sums["less"][index], meta["bias_type"], meta["stereo"]
            ), {}
        gap = sums["gap"][index]
        first = self.first.get(ds.name, {}).get("gap")
        figures = pair_figures(
            gap, meta["occupation_idx"], meta["bls_pct_female"], meta["bergsma_pct_female"],
            meta["male_advantaged"], meta["pair_type"], gap if first is None else first[index],
        )  # fmt: skip
        return figures, {"gap": sums["gap"].clone(), "seen": seen.clone()}

    def epoch_end(self, module: pl.LightningModule, stage: str) -> None:
        synced = {}
        for ds in self._sets:
            synced[ds.name] = self.sums[ds.name].compute()
            self.sums[ds.name].reset()
        trainer = module.trainer
        complete = all(bool(sums["seen"].all()) for sums in synced.values())
        if not self._sets or (trainer.sanity_checking and (self.first or not complete)):
            return
        figures, keep = {}, {}
        for ds in self._sets:
            figures[ds.name], keep[ds.name] = self._figures(ds, synced[ds.name])
        if not self.first:
            self.first = {name: {**keep[name], "figures": figures[name]} for name in keep}
        if trainer.sanity_checking:  # a complete sanity check measured the untouched model: "before"
            return
        if "neutral" in figures and "neutral" in self.first:
            before = self.first["neutral"]["lm_loss"]
            figures["neutral"]["lm_loss_change"] = (figures["neutral"]["lm_loss"] - before) / before
        name, unbiased = DISTANCES[self.bias_distance]
        distance = abs(figures[self.bias_set][name] - unbiased)
        scalars = {f"{stage}/{s}/{k}": v for s, fig in figures.items() for k, v in fig.items()}
        scalars[f"{stage}/bias_distance"] = distance
        module.log_dict(scalars, add_dataloader_idx=False, sync_dist=False)
        # run_dir broadcasts from rank 0: every rank calls it, the report itself is rank-zero only
        curves = {ds.name: self._curves(ds, synced[ds.name]) for ds in self._sets if ds.kind == "pairs"}
        report_bias(
            module, stage, figures, {s: f["figures"] for s, f in self.first.items()}, curves, run_dir(trainer)
        )

    def _curves(self, ds: Any, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-occupation % female (BLS) and mean gap, now and at the first evaluation (for the plot)."""
        occupation = torch.tensor([it["occupation_idx"] for it in ds.items])
        bls = torch.full((len(ds.occupations),), torch.nan, dtype=torch.float64)
        bls[occupation] = torch.tensor([it["bls_pct_female"] for it in ds.items], dtype=torch.float64)
        seen = sums["seen"]
        out = {"bls": bls, "after": occupation_gaps(sums["gap"][seen], occupation[seen], len(ds.occupations))}
        first = self.first.get(ds.name)
        if first is not None:
            was = first["seen"]
            out["before"] = occupation_gaps(first["gap"][was], occupation[was], len(ds.occupations))
        return out


#: Dataset item fields each kind of set needs at epoch end.
_META = {
    "pairs": ("occupation_idx", "bls_pct_female", "bergsma_pct_female", "male_advantaged", "pair_type"),
    "crows": ("bias_type", "stereo"),
    "text": (),
}
