"""What an eraser run leaves for users: the removed latents per site (``erased_latents.json``), the
deployed gates (safetensors), and a plain transformers folder with the SAEs beside it, on which
:func:`apply_erasure` puts the edit back as forward hooks.

Using an exported eraser without debiaslit's training code::

    from transformers import AutoModel
    from debiaslit.methods.sae_eraser import apply_erasure

    model = AutoModel.from_pretrained("export_dir")
    handles = apply_erasure(model, "export_dir")   # every forward now applies the edit
    ...
    for handle in handles:                          # back to the unedited model
        handle.remove()

The hook at each site replaces the residual x by x − W_decᵀ((1 − g) ⊙ enc(x)) with g the 0/1 mask of
the kept latents: exactly the decoder contribution of the removed latents leaves, the SAE's
reconstruction error stays (METHODS.md §6.4).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from debiaslit.backbones.components import ComponentMap
from debiaslit.errors import DataFormatError
from debiaslit.methods.sae_eraser.edit import ablation_gate, gated_edit
from debiaslit.methods.sae_eraser.eraser import ResidualEraser
from debiaslit.sae import load_sae, write_saelens
from debiaslit.utils.files import atomic_path, write_text_atomic

ERASED_FILE = "erased_latents.json"
FORMAT = "debiaslit-sae-eraser/1"


def erased_record(eraser: ResidualEraser, sae_paths: list[str]) -> dict[str, Any]:
    """The JSON content: per site its layer, SAE, latent count and removed latents."""
    return {
        "format": FORMAT,
        "read_layer": eraser.read_layer,
        "pooling": eraser.pooling,
        "sites": [
            {"layer": layer, "sae": str(sae), "num_latents": gate.logits.numel(), "erased": erased.tolist()}
            for layer, sae, gate, erased in zip(
                eraser.layers, sae_paths, eraser.gates, eraser.erased(), strict=True
            )
        ],
    }


def save_erased(eraser: ResidualEraser, sae_paths: list[str], path: str | Path) -> Path:
    path = Path(path)
    write_text_atomic(path, json.dumps(erased_record(eraser, sae_paths), indent=2) + "\n")
    return path


def save_gate_masks(eraser: ResidualEraser, path: str | Path) -> Path:
    """``layer_<l>`` → the deployed 0/1 gate (uint8) of every site."""
    from safetensors.torch import save_file

    path = Path(path)
    masks = {
        f"layer_{layer}": gate.deployed_mask().to(torch.uint8).cpu().contiguous()
        for layer, gate in zip(eraser.layers, eraser.gates, strict=True)
    }
    with atomic_path(path) as tmp:
        save_file(masks, str(tmp), metadata={"format": FORMAT})
    return path


def export_pretrained(
    model: nn.Module, tokenizer: Any, eraser: ResidualEraser, directory: str | Path
) -> Path:
    """``directory``: the backbone (``save_pretrained``, weights unchanged), its tokenizer, each site's SAE
    in the SAELens layout under ``saes/layer_<l>/`` and ``erased_latents.json`` pointing at them."""
    directory = Path(directory)
    with atomic_path(directory) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        names = []
        for layer, sae in zip(eraser.layers, eraser.saes, strict=True):
            name = f"saes/layer_{layer}"
            write_saelens(sae.to("cpu"), tmp / name)
            names.append(name)
        save_erased(eraser, names, tmp / ERASED_FILE)
    return directory


def read_erased(path: str | Path) -> dict[str, Any]:
    """The content of an ``erased_latents.json``; DataFormatError naming the file and the key."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: not a readable JSON file of erased latents ({err})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataFormatError(f"{path}: key 'format' must be {FORMAT!r}")
    sites = record.get("sites")
    if not isinstance(sites, list) or not sites:
        raise DataFormatError(f"{path}: key 'sites' must be a non-empty list")
    for i, site in enumerate(sites):
        for key, kind in (("layer", int), ("sae", str), ("num_latents", int), ("erased", list)):
            if not isinstance(site.get(key), kind):
                raise DataFormatError(f"{path}: key 'sites[{i}].{key}' must be a {kind.__name__}")
        if any(not isinstance(j, int) or not 0 <= j < site["num_latents"] for j in site["erased"]):
            raise DataFormatError(f"{path}: key 'sites[{i}].erased' holds a latent outside 0..num_latents-1")
    return record


def apply_erasure(model: nn.Module, directory: str | Path) -> list[RemovableHandle]:
    """Forward hooks on ``model`` (a transformers model of the exported architecture) that remove the
    exported latents at every site; ``handle.remove()`` on each undoes it. SAE paths in the JSON are
    relative to ``directory``."""
    directory = Path(directory)
    record = read_erased(directory / ERASED_FILE)
    cmap = ComponentMap.for_model(model)
    handles = []
    for i, site in enumerate(record["sites"]):
        sae = load_sae(directory / site["sae"]).requires_grad_(False).eval()
        if sae.d_sae != site["num_latents"]:
            raise DataFormatError(
                f"{directory / ERASED_FILE}: key 'sites[{i}].num_latents' is {site['num_latents']}, "
                f"the SAE {site['sae']} has {sae.d_sae} latents"
            )
        param = next(model.parameters())
        sae = sae.to(param.device)
        gate = ablation_gate(sae.d_sae, torch.tensor(site["erased"], dtype=torch.long), param.device)
        edit = partial(gated_edit, sae=sae, gate=gate)
        handles.append(cmap.residual_site(site["layer"]).register_hook(model, edit))
    return handles
