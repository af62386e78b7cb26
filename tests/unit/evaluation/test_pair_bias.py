"""PairBiasEvaluator on hand-made Winogender / CrowS-Pairs files equals a hand calculation (naive
per-sentence, per-token loops), for a masked and a causal LM, before and after a weight change."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from debiaslit.backbones import load_tokenizer
from debiaslit.datamodules import GenderBiasData
from debiaslit.errors import ConfigError
from debiaslit.evaluation import PairBiasEvaluator
from debiaslit.evaluation.bias_scores import crows_figures, pair_figures, pearson
from debiaslit.methods import LMAnalysis
from tests.conftest import shared_path
from tests.unit.backbones.test_lm_scoring import naive_causal, naive_masked
from tests.unit.evaluation.fixtures import CROWS, OCCUPATIONS, write_crows, write_winogender

CROWS_WORDS = [("man", "woman"), ("she", "he"), ("poor", "rich")]


class Hand:
    """The evaluator's figures recomputed one sentence and one token at a time."""

    def __init__(self, model: torch.nn.Module, name: str) -> None:
        self.model, self.causal = model, name != "tiny-bert"
        self.tok = load_tokenizer(name)

    def ids(self, text: str) -> list[int]:
        ids = self.tok(text)["input_ids"]
        return [self.tok.bos_token_id, *ids] if self.causal else ids

    def position(self, ids: list[int], word: str) -> int:
        [token] = self.tok.encode(f" {word}" if self.causal else word, add_special_tokens=False)
        return ids.index(token)

    def word(self, text: str, word: str) -> float:
        ids = self.ids(text)
        t = self.position(ids, word)
        if self.causal:
            return naive_causal(self.model, ids, range(t, t + 1))
        return naive_masked(self.model, ids, t, t + 1, self.tok.mask_token_id, "log_prob")

    def gap(self, occupation: str) -> float:
        text = "the {} met the child because {} was busy."
        return self.word(text.format(occupation, "he"), "he") - self.word(
            text.format(occupation, "she"), "she"
        )

    @torch.no_grad()
    def causal_sentence(self, ids: list[int]) -> float:
        """Σ_t log p(x_t | x_<t) from one unpadded forward of the sentence alone."""
        logp = self.model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
        return sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))

    def sentence(self, text: str, differing: str) -> float:
        ids = self.ids(text)
        if self.causal:
            return self.causal_sentence(ids)
        skip = {0, len(ids) - 1, self.position(ids, differing)}  # [CLS], [SEP], the modified word
        mask = self.tok.mask_token_id
        return sum(
            naive_masked(self.model, ids, t, t + 1, mask, "log_prob")
            for t in range(len(ids))
            if t not in skip
        )

    @torch.no_grad()
    def lm_loss(self, items: list[dict]) -> float:
        nll, count = 0.0, 0
        for item in items:
            ids = item["input_ids"]
            if self.causal:
                nll -= self.causal_sentence(ids)
                count += len(ids) - 1
                continue
            scored = [t for t, m in enumerate(item["mlm_mask"]) if m]
            masked = [self.tok.mask_token_id if t in scored else x for t, x in enumerate(ids)]
            logp = self.model(input_ids=torch.tensor([masked])).logits[0].log_softmax(-1)
            nll -= sum(float(logp[t, ids[t]]) for t in scored)
            count += len(scored)
        return nll / count


def _figures(csv_path: Path) -> dict[tuple[str, str], float]:
    with csv_path.open() as file:
        return {(r["eval_set"], r["figure"]): float(r["value"]) for r in csv.DictReader(file)}


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2"])
def test_evaluator_equals_a_hand_calculation(tmp_path: Path, name: str) -> None:
    task = "causal-lm" if name == "tiny-gpt2" else "masked-lm"
    data = GenderBiasData(
        tokenizer=name, winogender_dir=str(write_winogender(tmp_path / "wg")),
        crows_file=str(write_crows(tmp_path / "crows.csv")),
        neutral_file=str(shared_path("mnli", "mnli_development_set_number_of_correct_responses.txt")),
        neutral_max=3, val_fraction=0.75, stats="bergsma", eval_batch_size=2,
    )  # fmt: skip
    pl.seed_everything(0)
    module = LMAnalysis(name, task, evaluator=PairBiasEvaluator())
    logger = TensorBoardLogger(str(tmp_path), name="run", default_hp_metric=False)
    trainer = pl.Trainer(logger=logger, enable_progress_bar=False, enable_model_summary=False)
    results = tmp_path / "run" / "version_0" / "results"
    hand = Hand(module.model, name)
    gaps = []
    # before/after (flips, lm_loss_change) do not depend on the LM kind: checked on the cheap causal one
    for round_ in range(2 if name == "tiny-gpt2" else 1):
        if round_:  # a weight change between "before" and "after"
            with torch.no_grad(), torch.random.fork_rng():
                torch.manual_seed(1)
                for param in module.model.parameters():
                    param.add_(0.5 * torch.randn_like(param))
        trainer.validate(module, datamodule=data, verbose=False)
        module.model.eval()  # validate restores training mode (dropout) afterwards
        got = _figures(results / "val_epoch00_bias.csv")
        held_out = data.eval_datasets["winogender"].occupations
        assert len(held_out) == 3
        gap = np.array([hand.gap(o) for o in held_out])
        bls = np.array([OCCUPATIONS[o][1] for o in held_out])
        bergsma = np.array([OCCUPATIONS[o][0] for o in held_out])
        gaps.append(gap)
        assert got["winogender", "mean_gap"] == pytest.approx(gap.mean(), abs=1e-4)
        assert got["winogender", "r_bls"] == pytest.approx(np.corrcoef(gap, bls)[0, 1], abs=1e-4)
        assert got["winogender", "r_bergsma"] == pytest.approx(np.corrcoef(gap, bergsma)[0, 1], abs=1e-4)
        assert got["winogender", "advantaged_preferred"] == pytest.approx(
            np.mean((gap > 0) == (bergsma < 50))
        )
        assert got["winogender", "flip_rate"] == pytest.approx(np.mean((gaps[0] > 0) != (gap > 0)))
        wins = [
            hand.sentence(m, wm) > hand.sentence(s, ws)
            for (m, s, _, _), (wm, ws) in zip(CROWS, CROWS_WORDS, strict=True)
        ]
        assert got["crows", "score"] == pytest.approx(np.mean(wins))
        assert got["crows", "gender_score"] == pytest.approx(np.mean(wins[:2]))
        assert got["crows", "stereo_score"] == pytest.approx(np.mean(wins[:2]))
        assert got["crows", "antistereo_score"] == got["crows", "socioeconomic_score"] == float(wins[2])
        loss = hand.lm_loss(data.eval_datasets["neutral"].items)
        assert got["neutral", "lm_loss"] == pytest.approx(loss, rel=1e-4)
        if round_ == 0:
            first_loss = loss
        assert got["neutral", "lm_loss_change"] == pytest.approx((loss - first_loss) / first_loss, abs=1e-4)
    assert (results / "val_epoch00_winogender_gap.png").stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "version_0"), size_guidance={"scalars": 0})
    events.Reload()
    logged = [e.value for e in events.Scalars("val/bias_distance")]
    expected = [abs(np.corrcoef(g, [OCCUPATIONS[o][1] for o in held_out])[0, 1]) for g in gaps]
    assert logged == pytest.approx(expected, abs=1e-4)


def test_figures_by_hand() -> None:
    gap = torch.tensor([1.0, -2.0, 3.0, -0.5])
    occupation = torch.tensor([0, 0, 1, 2])
    bls = torch.tensor([10.0, 10.0, 50.0, 90.0])
    fig = pair_figures(
        gap, occupation, bls, bls, torch.tensor([1, 1, 0, 0]), torch.tensor([1, 1, 2, 2]), -gap
    )
    assert fig["r_bls"] == pytest.approx(np.corrcoef([-0.5, 3.0, -0.5], [10, 50, 90])[0, 1])
    assert fig["advantaged_preferred"] == 0.5 and fig["flip_rate"] == 1.0
    assert (fig["type1_pro_acc"], fig["type1_anti_acc"], fig["type1_acc_gap"]) == (0.5, 0.5, 0.0)
    assert (fig["type2_pro_acc"], fig["type2_acc_gap"]) == (0.5, 0.0)
    more, less = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 5.0, 1.0])
    crows = crows_figures(more, less, torch.tensor([1, 1, 2]), torch.tensor([1, 0, 1]))
    assert crows["score"] == pytest.approx(2 / 3) and crows["gender_score"] == 0.5
    assert crows["antistereo_score"] == 0.0 and crows["socioeconomic_score"] == 1.0
    assert math.isnan(pearson(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])))


def test_bad_evaluator_configs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bias_distance"):
        PairBiasEvaluator(bias_distance="min_score")
    data = GenderBiasData(tokenizer="tiny-bert", crows_file=str(write_crows(tmp_path / "c.csv")))
    module = LMAnalysis("tiny-bert", "masked-lm", evaluator=PairBiasEvaluator())
    with pytest.raises(ConfigError, match="bias_set 'winogender' is not an evaluation set"):
        pl.Trainer(logger=False, enable_progress_bar=False).validate(module, datamodule=data)
    with pytest.raises(ConfigError, match="train_on"):
        GenderBiasData(train_on=["winogender"])


def test_before_figures_travel_with_the_state_dict() -> None:
    """A resumed run compares against the same "before" (kept as the evaluator's extra state)."""
    evaluator = PairBiasEvaluator()
    evaluator.first = {"winogender": {"gap": torch.tensor([0.5, -1.0]), "figures": {"r_bls": -0.3}}}
    restored = PairBiasEvaluator()
    restored.load_state_dict(evaluator.state_dict())
    assert restored.first["winogender"]["figures"] == {"r_bls": -0.3}
    assert torch.equal(restored.first["winogender"]["gap"], torch.tensor([0.5, -1.0]))


def test_training_pairs_from_both_sources(tmp_path: Path) -> None:
    from tests.unit.datamodules.test_winogender_datamodule import _write_winobias

    pro = ["1 [The developer] met the nurse as [he] was late.", "2 [The nurse] met him so [she] could go."]
    anti = ["1 [The developer] met the nurse as [she] was late.", "2 [The nurse] met him so [he] could go."]
    data = GenderBiasData(
        tokenizer="tiny-gpt2", winogender_dir=str(write_winogender(tmp_path / "wg")),
        winobias_dir=_write_winobias(tmp_path, pro, anti), winobias_split="test", val_fraction=0.5,
        train_on=["winogender", "winobias"], batch_size=64,
    )  # fmt: skip
    data.setup("fit")
    assert list(data.eval_datasets) == ["winogender", "winobias"]
    batch = next(iter(data.train_dataloader()))
    assert sorted(batch["pair_type"].tolist()) == [0, 0, 1, 2]  # 2 of 4 occupations, 1 of 2 in WinoBias
    assert {"word_start_male", "word_end_female", "male_advantaged", "pct_female"} <= set(batch)


def test_order_seed_changes_the_training_order_only() -> None:
    wg = str(shared_path("winogender"))

    def loaders(**seeds: int) -> tuple[list[list[int]], list]:
        data = GenderBiasData(
            tokenizer="tiny-gpt2", winogender_dir=wg, train_on=["winogender"], batch_size=4, **seeds
        )
        data.setup("fit")
        order = [  # without the batch's padding
            ids[mask.bool()].tolist()
            for batch in data.train_dataloader()
            for ids, mask in zip(batch["input_ids_male"], batch["attention_mask_male"], strict=True)
        ]
        held_out = [data.eval_datasets["winogender"][i]["input_ids_male"] for i in range(5)]
        return order, held_out

    default, held_default = loaders(seed=0)
    same, held_same = loaders(seed=0, order_seed=0)
    other, held_other = loaders(seed=0, order_seed=1)
    assert default == same and held_default == held_same
    assert other != default and sorted(other) == sorted(default)  # the same pairs, another order
    assert held_other == held_default  # the same held-out occupations
