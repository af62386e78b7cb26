"""Evaluation sets of the LM bias evaluator besides the gendered pairs: CrowS-Pairs and neutral text.

Both follow the conventions of ``gendered_pairs`` (BOS prepended for causal tokenizers, right
padding) and carry score masks, so one evaluator scores masked and causal LMs alike.
"""

from __future__ import annotations

import difflib
import random
from typing import Any

from torch.utils.data import Dataset

from debiaslit.data.collate import PadCollator
from debiaslit.data.crows_pairs import BIAS_TYPES, CrowsPair
from debiaslit.datamodules.gendered_pairs import encode_text
from debiaslit.errors import ConfigError


class ScoreMaskCollator(PadCollator):
    """:class:`PadCollator` that also pads the 0/1 ``score_mask*`` and ``mlm_mask`` fields (with 0)."""

    TOKEN_FIELDS = (*PadCollator.TOKEN_FIELDS, "score_mask", "mlm_mask")


def _encode_whole(tokenizer: Any, text: str, max_length: int, what: str) -> list[int]:
    ids, _ = encode_text(tokenizer, text, max_length + 1)
    if len(ids) > max_length:
        raise ConfigError(f"{what}: {text!r} is longer than data.max_length={max_length} tokens")
    return ids


class EncodedCrowS(Dataset):
    """CrowS-Pairs items: ``input_ids_<s>``, ``attention_mask_<s>`` and ``score_mask_<s>`` (the tokens
    both sentences share, special tokens excluded: what a masked LM's PLL sums, Nangia et al.) for
    ``s`` in ``more`` / ``less``, plus ``bias_type`` (index into ``bias_types``) and ``stereo``."""

    kind = "crows"
    bias_types = BIAS_TYPES

    def __init__(self, name: str, pairs: list[CrowsPair], tokenizer: Any, max_length: int) -> None:
        self.name = name
        self.pairs = pairs
        special = set(tokenizer.all_special_ids)
        self.items = []
        for pair in pairs:
            more = _encode_whole(tokenizer, pair.more, max_length, f"CrowS-Pairs pair {pair.uid}")
            less = _encode_whole(tokenizer, pair.less, max_length, f"CrowS-Pairs pair {pair.uid}")
            shared_more, shared_less = [0] * len(more), [0] * len(less)
            matcher = difflib.SequenceMatcher(None, more, less, autojunk=False)
            for block in matcher.get_matching_blocks():
                for k in range(block.size):
                    if more[block.a + k] not in special:
                        shared_more[block.a + k] = shared_less[block.b + k] = 1
            item: dict[str, Any] = {"bias_type": BIAS_TYPES.index(pair.bias_type), "stereo": int(pair.stereo)}
            for side, ids, shared in (("more", more, shared_more), ("less", less, shared_less)):
                item |= {f"input_ids_{side}": ids, f"attention_mask_{side}": [1] * len(ids)}
                item[f"score_mask_{side}"] = shared
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.items[i], "index": i}


class EncodedText(Dataset):
    """Neutral sentences for the LM-quality guard: ``input_ids``, ``attention_mask`` and ``mlm_mask``,
    a fixed (seeded per sentence) ``mlm_probability`` share of the non-special tokens, at least one,
    that a masked LM predicts; a causal LM is scored on every token after the first."""

    kind = "text"

    def __init__(
        self,
        name: str,
        sentences: list[str],
        tokenizer: Any,
        max_length: int,
        mlm_probability: float,
        seed: int,
    ) -> None:
        if not 0 < mlm_probability <= 1:
            raise ConfigError(f"data.mlm_probability must lie in (0, 1], got {mlm_probability}")
        self.name = name
        special = set(tokenizer.all_special_ids)
        self.items = []
        for i, text in enumerate(sentences):
            ids, _ = encode_text(tokenizer, text, max_length)
            candidates = [t for t, token in enumerate(ids) if token not in special]
            if not candidates:
                raise ConfigError(f"neutral text sentence {i} ({text!r}) has no token to predict")
            rng = random.Random(seed * 1_000_003 + i)
            picked = set(rng.sample(candidates, max(1, round(mlm_probability * len(candidates)))))
            mlm = [int(t in picked) for t in range(len(ids))]
            self.items.append({"input_ids": ids, "attention_mask": [1] * len(ids), "mlm_mask": mlm})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.items[i], "index": i}
