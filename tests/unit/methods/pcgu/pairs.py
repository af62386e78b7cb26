"""Hand-made gendered pairs in the pair-DataModule batch contract, for the PCGU tests."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from debiaslit.backbones import load_tokenizer
from debiaslit.data.collate import PadCollator

TASKS = {"tiny-bert": "masked-lm", "tiny-gpt2": "causal-lm"}
TEMPLATES = (
    "the doctor said that {} was late",
    "the nurse told the man that {} would help",
    "a teacher thinks {} is right",
    "the lawyer knew {} had won",
    "the cook said {} liked the food",
    "the worker told us {} was tired",
    "the clerk said that {} would go",
    "a farmer thinks {} is good",
)
WORDS = {"male": "he", "female": "she"}


def _encode(tokenizer, text: str, word: str, causal: bool) -> tuple[list[int], int, int]:
    """Token ids (BOS first for causal LMs, no special tokens otherwise) and the word's token span."""
    before, _, after = text.partition("{}")
    prefix = [tokenizer.bos_token_id] if causal else []
    space = " " if causal else ""
    head = prefix + tokenizer.encode(before.rstrip(), add_special_tokens=False)
    mid = tokenizer.encode(space + word, add_special_tokens=False)
    tail = tokenizer.encode(space + after.lstrip(), add_special_tokens=False)
    return head + mid + tail, len(head), len(head) + len(mid)


def pair_items(backbone: str, n: int = 8) -> list[dict]:
    tokenizer = load_tokenizer(backbone)
    causal = TASKS[backbone] == "causal-lm"
    items = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        item = {"male_advantaged": int(i % 3 != 0), "pair_type": i % 3, "index": i}
        for gender, word in WORDS.items():
            ids, start, end = _encode(tokenizer, template, word, causal)
            item |= {
                f"input_ids_{gender}": ids,
                f"attention_mask_{gender}": [1] * len(ids),
                f"word_start_{gender}": start,
                f"word_end_{gender}": end,
            }
        items.append(item)
    return items


def pair_loader(backbone: str, n: int = 8, batch_size: int = 4) -> DataLoader:
    tokenizer = load_tokenizer(backbone)
    return DataLoader(
        pair_items(backbone, n), batch_size=batch_size, collate_fn=PadCollator(tokenizer.pad_token_id)
    )


def first_batch(backbone: str, batch_size: int = 4) -> dict[str, torch.Tensor]:
    return next(iter(pair_loader(backbone, batch_size, batch_size)))
