"""Tokenised NLI pairs with labels and evaluation groups: the dataset every NLI DataModule serves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from debiaslit.data.schema import HANS_HEURISTICS, HANS_LABELS, NLI_LABELS, NLIExample, is_hans_style
from debiaslit.errors import DataFormatError


class EncodedNLI(Dataset):
    """Tokenised pairs with integer labels and evaluation groups; items are plain dicts.

    ``extras`` holds per-example tensors (``bias_probs``, ``teacher_probs``: [N, K] in ``NLI_LABELS``
    order) that every item carries as lists, so batches carry them as tensors.
    """

    def __init__(
        self,
        name: str,
        examples: Sequence[NLIExample],
        tokenizer: Any,
        max_length: int,
    ) -> None:
        self.name = name
        self.examples = list(examples)
        labels = {e.label for e in self.examples}
        self.is_hans = is_hans_style(self.examples)
        space = HANS_LABELS if self.is_hans else NLI_LABELS
        unknown = sorted(labels - set(space))
        if unknown:
            raise DataFormatError(
                f"evaluation set '{name}': labels {unknown} do not belong to the label set {space}"
            )
        self.label_names = space
        if self.is_hans:
            self.group_names = [f"{h}/{lab}" for h in HANS_HEURISTICS for lab in HANS_LABELS]
            group_of = {g: i for i, g in enumerate(self.group_names)}
            self.groups = [group_of[f"{e.heuristic}/{e.label}"] for e in self.examples]
            self.subgroup_names = sorted({f"{e.heuristic}/{e.label}/{e.subcase}" for e in self.examples})
            sub_of = {g: i for i, g in enumerate(self.subgroup_names)}
            self.subgroups = [sub_of[f"{e.heuristic}/{e.label}/{e.subcase}"] for e in self.examples]
        else:
            self.group_names = list(NLI_LABELS)
            self.groups = [NLI_LABELS.index(e.label) for e in self.examples]
            # generated data marks shortcut-aligned / -conflicting pairs in `subcase`: report both
            has_subcase = all(e.subcase for e in self.examples)
            self.subgroup_names = sorted({e.subcase for e in self.examples}) if has_subcase else []
            self.subgroups = [
                self.subgroup_names.index(e.subcase) if has_subcase else 0 for e in self.examples
            ]
        self.labels = [space.index(e.label) for e in self.examples]
        self.extras: dict[str, torch.Tensor] = {}
        self.encodings = tokenizer(
            [e.premise for e in self.examples],
            [e.hypothesis for e in self.examples],
            truncation=True,
            max_length=max_length,
        )

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def lengths(self) -> list[int]:
        """Token count of every pair (what a batch pads to)."""
        return [len(ids) for ids in self.encodings["input_ids"]]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[i] for k, v in self.encodings.items()}
        item.update(labels=self.labels[i], groups=self.groups[i], subgroups=self.subgroups[i], index=i)
        item.update({key: values[i].tolist() for key, values in self.extras.items()})
        return item
