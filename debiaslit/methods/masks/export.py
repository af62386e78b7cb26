"""Export learned masks: baked into a plain transformers directory, or alone as bit-packed safetensors.

``export_pretrained`` writes ``save_pretrained`` output with ``W ⊙ M`` in the weights: it loads with
``AutoModelForSequenceClassification.from_pretrained`` and needs no debiaslit. ``save_masks`` stores
only the masks (1 bit per weight) plus the module-name map, so they can be switched on and off
(``apply_masks`` / ``remove_masks``) on any checkpoint of the same architecture.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils import parametrize

from debiaslit.backbones.components import get_module
from debiaslit.errors import ConfigError, DataFormatError
from debiaslit.methods.masks.masked_weights import (
    FixedMask,
    MaskedModel,
    _layout,
    _weight_shape,
    remove_masks,
)
from debiaslit.utils.files import atomic_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FORMAT = "debiaslit-masks/1"
_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Bool tensor → uint8 tensor of ceil(numel / 8) bytes (big-endian bit order, like numpy)."""
    flat = mask.reshape(-1).to(torch.uint8).cpu()
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)])
    return (flat.view(-1, 8) * _BITS).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`pack_bits`."""
    n = 1
    for dim in shape:
        n *= dim
    bits = (packed.view(-1, 1) & _BITS).ne(0).reshape(-1)
    return bits[:n].reshape(shape)


@dataclass(frozen=True)
class StoredMask:
    """A module's boolean row mask ``[n_rows, in | 1]`` and its masked output rows (None: all)."""

    mask: torch.Tensor
    rows: torch.Tensor | None
    layout: str
    n_out: int


def save_masks(masked: MaskedModel, path: str | Path) -> Path:
    """Write the evaluation-mode masks of ``masked`` to a safetensors file; returns the path."""
    from safetensors.torch import save_file

    tensors, modules = {}, {}
    for module_path, learned in masked.learned():
        mask = learned.hard_mask()
        tensors[module_path] = pack_bits(mask)
        if learned.rows is not None:
            tensors[f"{module_path}::rows"] = learned.rows.cpu().long().contiguous()
        modules[module_path] = {"shape": list(mask.shape), "layout": learned.layout, "n_out": learned.n_out}
    targets = [{"component": t.component, "layer": t.layer, "module": t.module_path} for t in masked.targets]
    metadata = {
        "format": FORMAT,
        "model_type": str(getattr(getattr(masked.model, "config", None), "model_type", "")),
        "modules": json.dumps(modules),
        "targets": json.dumps(targets),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_masks(path: str | Path) -> dict[str, StoredMask]:
    """Module path → :class:`StoredMask` from a file written by :func:`save_masks`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"mask file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT or "modules" not in metadata:
                raise DataFormatError(
                    f"{path}: not a debiaslit mask file (format {metadata.get('format')!r})"
                )
            modules = json.loads(metadata["modules"])
            keys = set(f.keys())
            stored = {}
            for module_path, info in modules.items():
                if module_path not in keys:
                    raise DataFormatError(f"{path}: the module map names {module_path!r}, which has no mask")
                rows_key = f"{module_path}::rows"
                stored[module_path] = StoredMask(
                    _unpack_checked(
                        f.get_tensor(module_path), tuple(info["shape"]), f"{path}: {module_path}"
                    ),
                    f.get_tensor(rows_key) if rows_key in keys else None,
                    info["layout"],
                    int(info["n_out"]),
                )
    except SafetensorError as err:  # not safetensors, or cut short
        raise DataFormatError(f"{path}: not a readable safetensors file ({err})") from err
    return stored


def _unpack_checked(packed: torch.Tensor, shape: tuple[int, ...], where: str) -> torch.Tensor:
    n = 1
    for dim in shape:
        n *= dim
    if packed.dtype != torch.uint8 or packed.numel() != -(-n // 8):
        raise DataFormatError(
            f"{where}: {packed.numel()} {packed.dtype} values do not hold the bits of a {list(shape)} mask"
            f" ({-(-n // 8)} uint8 values)"
        )
    return unpack_bits(packed, shape)


def apply_masks(model: nn.Module, masks: dict[str, StoredMask]) -> None:
    """Put stored masks onto ``model`` (undo with :func:`remove_masks`); ConfigError on mismatch.

    Every mask is checked before the first is put on, so a mismatch leaves ``model`` unmasked."""
    fixed_masks: list[tuple[nn.Module, FixedMask]] = []
    for module_path, stored in masks.items():
        module = get_module(model, module_path)
        if parametrize.is_parametrized(module, "weight"):
            raise ConfigError(f"{module_path} already carries a mask; call remove_masks first")
        layout = _layout(module)
        n_out, n_in = _weight_shape(module, layout)
        n_rows = n_out if stored.rows is None else stored.rows.numel()
        if (
            layout != stored.layout
            or n_out != stored.n_out
            or stored.mask.shape[0] != n_rows
            or (stored.mask.shape[1] not in (1, n_in))
        ):
            raise ConfigError(
                f"mask for {module_path} has shape {tuple(stored.mask.shape)} ({stored.layout}); the "
                f"model's weight is {layout} with {n_out} outputs x {n_in} inputs"
            )
        rows = None if stored.rows is None else stored.rows.to(module.weight.device)
        fixed_masks.append((module, FixedMask(layout, n_out, rows, stored.mask.to(module.weight.device))))
    for module, fixed in fixed_masks:
        parametrize.register_parametrization(module, "weight", fixed)


def export_pretrained(
    model: nn.Module,
    directory: str | Path,
    tokenizer: PreTrainedTokenizerBase | None = None,
    label_names: Sequence[str] | None = None,
) -> Path:
    """``save_pretrained`` a copy of ``model`` with its masks multiplied into the weights.

    ``model`` is left as it is; the copy uses evaluation-mode (deterministic) masks. ``tokenizer`` is
    saved beside it and ``label_names`` become ``id2label`` / ``label2id``, so that the directory is
    usable on its own (pipelines print label names). Written to a temporary folder and renamed: a
    failed export leaves nothing; an existing non-empty ``directory`` is refused (an empty one is
    replaced).
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"export directory {directory} already exists and is not empty; choose a new one")
    plain = copy.deepcopy(model).eval()
    remove_masks(plain, apply=True)
    for param in plain.parameters():
        param.requires_grad_(True)
    if label_names is not None:
        if len(label_names) != plain.config.num_labels:
            raise ConfigError(
                f"{len(label_names)} label names {list(label_names)} for a model with "
                f"{plain.config.num_labels} labels"
            )
        plain.config.id2label = dict(enumerate(label_names))
        plain.config.label2id = {name: i for i, name in enumerate(label_names)}
    with atomic_path(directory) as tmp:
        plain.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return directory
