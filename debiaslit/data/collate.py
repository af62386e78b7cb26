"""Per-batch padding of token fields, shared by every DataModule and the CMA probe."""

from __future__ import annotations

from typing import Any

import torch


class PadCollator:
    """Pads token fields (``input_ids``, ``attention_mask``, ``token_type_ids``, also with a suffix
    such as ``input_ids_male``) to the longest item in the batch; other fields become tensors as is.

    ``input_ids`` are padded with the tokenizer's pad id, the other token fields with 0.
    """

    TOKEN_FIELDS = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in items[0]:
            if key.startswith(self.TOKEN_FIELDS):
                width = max(len(it[key]) for it in items)
                pad = self.pad_token_id if key.startswith("input_ids") else 0
                rows = [list(it[key]) + [pad] * (width - len(it[key])) for it in items]
                batch[key] = torch.tensor(rows, dtype=torch.long)
            else:
                batch[key] = torch.tensor([it[key] for it in items])
        return batch
