"""lm_scoring against a naive one-sequence, one-token loop on tiny BERT / GPT-2 / GPT-NeoX; a hand check."""

from __future__ import annotations

import functools

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.backbones.lm_scoring import (
    pseudo_log_likelihood,
    sentence_log_likelihood,
    word_scores,
)
from debiaslit.errors import ConfigError

SENTENCES = ["the nurse said that she was tired", "he paid the doctor", "a lawyer and her husband went home"]
CAUSAL = ["tiny-gpt2", "tiny-gpt-neox"]


@functools.cache
def _batch(name: str) -> tuple[torch.nn.Module, object, dict[str, torch.Tensor]]:
    task = "masked-lm" if name == "tiny-bert" else "causal-lm"
    model, tok = load_backbone(name, task=task, seed=1)
    model.eval()
    if task == "causal-lm":  # a BOS token so that every word has context
        texts = [tok.bos_token + s for s in SENTENCES]
    else:
        texts = SENTENCES
    return model, tok, tok(texts, padding=True, return_tensors="pt")


@torch.no_grad()
def naive_masked(model, ids: list[int], start: int, end: int, mask_id: int, kind: str) -> float:
    masked = list(ids)
    masked[start:end] = [mask_id] * (end - start)
    logits = model(input_ids=torch.tensor([masked])).logits[0]
    scores = logits.log_softmax(-1) if kind == "log_prob" else logits
    return sum(float(scores[t, ids[t]]) for t in range(start, end))


@torch.no_grad()
def naive_causal(model, ids: list[int], positions: range, kind: str = "log_prob") -> float:
    total = 0.0
    for t in positions:
        logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
        total += float((logits.log_softmax(-1) if kind == "log_prob" else logits)[ids[t]])
    return total


@pytest.mark.parametrize("name", ["tiny-bert", *CAUSAL])
@pytest.mark.parametrize("kind", ["log_prob", "logit"])
def test_word_scores_equal_a_per_token_loop(name: str, kind: str) -> None:
    model, tok, enc = _batch(name)
    task = "masked-lm" if name == "tiny-bert" else "causal-lm"
    lengths = enc["attention_mask"].sum(1)
    start = torch.tensor([2, 1, 3])
    end = torch.minimum(start + torch.tensor([1, 3, 2]), lengths)  # multi-token spans too
    got = word_scores(
        model, task, enc["input_ids"], enc["attention_mask"], start, end, kind=kind,
        mask_token_id=tok.mask_token_id,
    )  # fmt: skip
    assert got.requires_grad
    got = got.detach()
    for b in range(3):
        ids = enc["input_ids"][b, : lengths[b]].tolist()
        if task == "masked-lm":
            want = naive_masked(model, ids, int(start[b]), int(end[b]), tok.mask_token_id, kind)
        else:
            want = naive_causal(model, ids, range(int(start[b]), int(end[b])), kind)
        assert float(got[b]) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("name", CAUSAL)
def test_sentence_log_likelihood_equals_a_prefix_loop(name: str) -> None:
    model, _, enc = _batch(name)
    got = sentence_log_likelihood(model, enc["input_ids"], enc["attention_mask"])
    for b, n in enumerate(enc["attention_mask"].sum(1).tolist()):
        ids = enc["input_ids"][b, :n].tolist()
        assert float(got[b]) == pytest.approx(naive_causal(model, ids, range(1, n)), abs=1e-4)


def test_pseudo_log_likelihood_equals_masking_one_token_at_a_time() -> None:
    model, tok, enc = _batch("tiny-bert")
    score = enc["attention_mask"].clone()
    score[:, 0] = 0  # [CLS] never scored; [SEP] scored here just to test an arbitrary subset
    score[0, 3] = 0
    got = pseudo_log_likelihood(model, enc["input_ids"], enc["attention_mask"], score, tok.mask_token_id, 5)
    for b, n in enumerate(enc["attention_mask"].sum(1).tolist()):
        ids = enc["input_ids"][b, :n].tolist()
        scored = [t for t in range(n) if score[b, t]]
        want = sum(naive_masked(model, ids, t, t + 1, tok.mask_token_id, "log_prob") for t in scored)
        assert float(got[b]) == pytest.approx(want, abs=1e-4)


def test_hand_check_one_and_two_token_words() -> None:
    """log p of a one-token word is its logit minus the log-sum-exp at the mask; two tokens add up."""
    model, tok, enc = _batch("tiny-bert")
    ids, mask = enc["input_ids"][:1], enc["attention_mask"][:1]
    masked = ids.clone()
    masked[0, 4:6] = tok.mask_token_id
    logits = model(input_ids=masked, attention_mask=mask).logits[0]
    expected = sum(float(logits[t, ids[0, t]] - torch.logsumexp(logits[t], 0)) for t in (4, 5))
    got = word_scores(model, "masked-lm", ids, mask, torch.tensor([4]), torch.tensor([6]), mask_token_id=4)
    assert tok.mask_token_id == 4
    assert float(got[0]) == pytest.approx(expected, abs=1e-5)


def test_bad_calls_are_config_errors() -> None:
    model, tok, enc = _batch("tiny-gpt2")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    one = torch.ones(3, dtype=torch.long)
    with pytest.raises(ConfigError, match="position 0"):
        word_scores(model, "causal-lm", ids, mask, one * 0, one)
    with pytest.raises(ConfigError, match="non-empty"):
        word_scores(model, "causal-lm", ids, mask, one, one)
    with pytest.raises(ConfigError, match="kind"):
        word_scores(model, "causal-lm", ids, mask, one, one + 1, kind="prob")
    with pytest.raises(ConfigError, match="mask_token_id"):
        word_scores(model, "masked-lm", ids, mask, one, one + 1)
    with pytest.raises(ConfigError, match="right padding"):
        word_scores(model, "causal-lm", ids, mask.flip(1), one, one + 1)
