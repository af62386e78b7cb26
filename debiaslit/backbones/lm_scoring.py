"""How much a language model likes a word or a sentence: the one place that reads token scores.

PCGU's objective, the pair-bias evaluator and CrowS-Pairs all read scores here, so a masked LM and a
causal LM (GPT-2, GPT-NeoX) are scored by the same rules everywhere:

* masked LM: the scored tokens are replaced by the mask token and read at their own positions;
* causal LM: token t is read from the logits at t − 1 (so token 0 is never scored: encoders of causal
  inputs prepend a BOS token). Inputs must be right-padded.

Multi-token words are summed over their tokens, never truncated to the first one. Everything is
batched and differentiable.
"""

from __future__ import annotations

import torch
from torch import nn

from debiaslit.errors import ConfigError

LM_TASKS = ("masked-lm", "causal-lm")
SCORE_KINDS = ("log_prob", "logit")


def _check(task: str, kind: str, mask_token_id: int | None) -> None:
    if task not in LM_TASKS:
        raise ConfigError(f"LM scoring needs task in {LM_TASKS}, got {task!r}")
    if kind not in SCORE_KINDS:
        raise ConfigError(f"score kind must be one of {SCORE_KINDS}, got {kind!r}")
    if task == "masked-lm" and mask_token_id is None:
        raise ConfigError("masked-lm scoring needs the tokenizer's mask_token_id (got None)")


def span_mask(word_start: torch.Tensor, word_end: torch.Tensor, length: int) -> torch.Tensor:
    """[B, length] bool: True on positions ``word_start[b] <= t < word_end[b]``."""
    positions = torch.arange(length, device=word_start.device)
    return (positions >= word_start[:, None]) & (positions < word_end[:, None])


def _read(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Score of each target token from logits of the same shape prefix ([..., V] and [...])."""
    scores = logits.log_softmax(-1) if kind == "log_prob" else logits
    return scores.gather(-1, targets[..., None]).squeeze(-1)


def causal_token_scores(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, kind: str = "log_prob"
) -> torch.Tensor:
    """[B, T] score of token t given tokens < t (column 0, which nothing predicts, is 0).

    Right padding keeps every real token's position id equal to its index, as in training.
    """
    if attention_mask.shape[1] and not bool(attention_mask[:, 0].all()):
        raise ConfigError("causal-lm scoring expects right padding (a row starts with padding)")
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    scores = _read(logits[:, :-1].float(), input_ids[:, 1:], kind)
    return torch.cat([scores.new_zeros(scores.shape[0], 1), scores], dim=1)


def token_scores(
    model: nn.Module,
    task: str,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    kind: str = "log_prob",
    mask_token_id: int | None = None,
) -> torch.Tensor:
    """[B] summed score of the tokens at ``positions`` ([B, T] bool) of each row (differentiable).

    masked-lm: all of a row's positions are masked at once and each read at its own position
    (``kind="logit"``: the raw logit, PCGU's reference objective). causal-lm: Σ_t log p(x_t | x_<t).
    """
    _check(task, kind, mask_token_id)
    if task == "causal-lm":
        if bool(positions[:, 0].any()):
            raise ConfigError("causal-lm scoring: a token at position 0 has no context (prepend BOS)")
        return (causal_token_scores(model, input_ids, attention_mask, kind) * positions).sum(1)
    masked = input_ids.masked_fill(positions, mask_token_id)
    logits = model(input_ids=masked, attention_mask=attention_mask).logits
    return (_read(logits.float(), input_ids, kind) * positions).sum(1)


def word_scores(
    model: nn.Module,
    task: str,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    word_start: torch.Tensor,
    word_end: torch.Tensor,
    kind: str = "log_prob",
    mask_token_id: int | None = None,
) -> torch.Tensor:
    """[B] summed score of the word ``[word_start, word_end)`` of each row: :func:`token_scores` of
    its span, every token of a multi-token word included (the gendered-pair contract's fields)."""
    span = span_mask(word_start, word_end, input_ids.shape[1])
    if not bool((span.sum(1) > 0).all()):
        raise ConfigError("word_scores: every row needs a non-empty word span (word_end > word_start)")
    return token_scores(model, task, input_ids, attention_mask, span, kind, mask_token_id)


def sentence_log_likelihood(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    score_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B] causal-LM Σ_t log p(x_t | x_<t) over the real tokens t ≥ 1 (or those in ``score_mask``)."""
    keep = attention_mask.bool() if score_mask is None else score_mask.bool() & attention_mask.bool()
    keep = keep.clone()
    keep[:, 0] = False
    return (causal_token_scores(model, input_ids, attention_mask) * keep).sum(1)


def pseudo_log_likelihood(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    score_mask: torch.Tensor,
    mask_token_id: int,
    chunk_size: int = 256,
) -> torch.Tensor:
    """[B] masked-LM Σ_{t in score_mask} log p(x_t | x with only t masked) (Salazar et al.'s PLL).

    Every scored token gets its own copy of its row with that token masked; the copies of the whole
    batch run in chunks of ``chunk_size`` rows. Unscored tokens stay visible (CrowS-Pairs conditions
    the shared tokens on the differing ones).
    """
    rows, cols = (score_mask.bool() & attention_mask.bool()).nonzero(as_tuple=True)
    total = torch.zeros(input_ids.shape[0], device=input_ids.device)
    for start in range(0, rows.numel(), chunk_size):
        r, c = rows[start : start + chunk_size], cols[start : start + chunk_size]
        copies = input_ids[r].clone()
        picks = torch.arange(r.numel(), device=r.device)
        copies[picks, c] = mask_token_id
        logits = model(input_ids=copies, attention_mask=attention_mask[r]).logits[picks, c]
        total = total.index_add(0, r, _read(logits.float(), input_ids[r, c], "log_prob"))
    return total
