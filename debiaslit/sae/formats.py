"""Read and write the two public SAE layouts, safely (METHODS.md §6.5), without either library.

* dictionary_learning: ``<dir>/ae.pt`` (a plain state dict) + optional ``config.json``
  (``trainer.dict_class``, ``trainer.k``); without it the class is inferred from the keys.
  Supported classes: ``AutoEncoder`` (relu), ``AutoEncoderTopK`` (topk), ``JumpReluAutoEncoder``.
* SAELens: ``<dir>/cfg.json`` + ``sae_weights.safetensors``; v6 configs (``metadata`` block) and flat
  pre-6 ones (``hook_point`` / ``hook_name``, ``activation_fn_str``, ``activation_fn_kwargs.k``).
  Architectures: ``standard``, ``topk``, ``jumprelu``.

``ae.pt`` is read with ``torch.load(weights_only=True, map_location="cpu")``: a pickle holding code
or anything but a flat ``{name: tensor}`` dict is refused. Every error names the file and the key.
Conversion goes through :class:`SparseAutoencoder`, exactly: ``write_saelens(read_dictionary_learning(p))``
and back reproduce an ``AutoEncoder`` / ``AutoEncoderTopK`` state dict bit for bit.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from debiaslit.errors import DataFormatError
from debiaslit.utils.files import atomic_path, write_text_atomic

from .autoencoder import SparseAutoencoder

AE_FILE, DL_CONFIG = "ae.pt", "config.json"
SAELENS_CONFIG, SAELENS_WEIGHTS = "cfg.json", "sae_weights.safetensors"

#: dictionary_learning class -> our activation.
DL_CLASSES: dict[str, str] = {
    "AutoEncoder": "relu",
    "AutoEncoderTopK": "topk",
    "JumpReluAutoEncoder": "jumprelu",
}
#: SAELens architecture -> our activation (and back).
SAELENS_ARCHITECTURES: dict[str, str] = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}
_TO_SAELENS = {v: k for k, v in SAELENS_ARCHITECTURES.items()}
_TO_DL = {v: k for k, v in DL_CLASSES.items()}

# Keys of each dictionary_learning layout; (d, F) name the activation and dictionary sizes.
_DL_LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "AutoEncoder": {
        "bias": ("d",), "encoder.weight": ("F", "d"), "encoder.bias": ("F",), "decoder.weight": ("d", "F"),
    },
    "AutoEncoderTopK": {
        "encoder.weight": ("F", "d"), "encoder.bias": ("F",), "decoder.weight": ("d", "F"), "b_dec": ("d",),
        "k": (), "threshold": (),
    },
    "JumpReluAutoEncoder": {
        "W_enc": ("d", "F"), "b_enc": ("F",), "W_dec": ("F", "d"), "b_dec": ("d",), "threshold": ("F",),
    },
}  # fmt: skip
_SAELENS_LAYOUT = {"W_enc": ("d", "F"), "b_enc": ("F",), "W_dec": ("F", "d"), "b_dec": ("d",)}
_GATED_KEYS = ("r_mag", "gate_bias", "mag_bias", "decoder_bias")


# ---- shared checks --------------------------------------------------------------------------------
def _check_layout(
    tensors: dict[str, torch.Tensor], layout: dict[str, tuple[str, ...]], source: Path
) -> tuple[int, int]:
    """(d, F) of a state dict that has exactly the keys of ``layout`` with consistent shapes."""
    missing = [key for key in layout if key not in tensors]
    if missing:
        raise DataFormatError(f"{source}: missing key {missing[0]!r} (expected keys: {', '.join(layout)})")
    extra = sorted(set(tensors) - set(layout))
    if extra:
        raise DataFormatError(f"{source}: unexpected key {extra[0]!r} (expected keys: {', '.join(layout)})")
    first = next(key for key, dims in layout.items() if len(dims) == 2)
    if tensors[first].dim() != 2:
        raise DataFormatError(
            f"{source}: key {first!r} has shape {list(tensors[first].shape)}, expected a matrix "
            f"[{' x '.join(layout[first])}]"
        )
    sizes = dict(zip(layout[first], tensors[first].shape, strict=True))
    for key, dims in layout.items():
        shape = tuple(tensors[key].shape)
        expected = tuple(sizes.get(dim, -1) for dim in dims)
        if shape != expected:
            names = " x ".join(f"{dim}={sizes[dim]}" for dim in dims) or "a scalar"
            raise DataFormatError(f"{source}: key {key!r} has shape {list(shape)}, expected [{names}]")
        if not tensors[key].is_floating_point() and key != "k":
            raise DataFormatError(
                f"{source}: key {key!r} has dtype {tensors[key].dtype}, expected a float tensor"
            )
    return sizes["d"], sizes["F"]


def _fill(sae: SparseAutoencoder, tensors: dict[str, torch.Tensor]) -> SparseAutoencoder:
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(sae, name).copy_(value.to(torch.float32))
    return sae


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _pre_bias_folded(sae: SparseAutoencoder) -> torch.Tensor:
    """Encoder bias for a layout that always subtracts ``b_dec`` first: ``b_enc + W_encᵀ b_dec`` when
    ``sae`` does not (so ``(x − b_dec) W_enc + bias′ = x W_enc + b_enc``), else ``b_enc``."""
    b_enc = sae.b_enc.detach()
    return b_enc if sae.apply_b_dec_to_input else b_enc + sae.b_dec.detach() @ sae.W_enc.detach()


# ---- hook names -----------------------------------------------------------------------------------
def saelens_hook_name(layer: int) -> str:
    """SAELens hook of the residual after block ``layer`` (``-1``: the embedding output)."""
    return "blocks.0.hook_resid_pre" if layer == -1 else f"blocks.{layer}.hook_resid_post"


def residual_layer(hook_name: str) -> int | None:
    """Inverse of :func:`saelens_hook_name` (``blocks.i.hook_resid_pre`` is the output of block i − 1);
    None for a hook that is not on the residual stream."""
    match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook_name)
    if match is None:
        return None
    layer = int(match.group(1))
    return layer if match.group(2) == "post" else layer - 1


# ---- dictionary_learning ----------------------------------------------------------------------------
def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (expected a dictionary_learning ae.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataFormatError(
            f"{path}: refused to unpickle (weights_only=True allows plain tensors only): {first}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise DataFormatError(f"{path}: expected a state dict {{name: tensor}}, got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise DataFormatError(
                f"{path}: key {key!r} holds a {type(value).__name__}, expected a tensor "
                "(a plain state dict, not a training checkpoint)"
            )
    return state


def _infer_dl_class(state: dict[str, torch.Tensor], path: Path) -> str:
    if any(key in state for key in _GATED_KEYS):
        raise DataFormatError(f"{path}: GatedAutoEncoder is not supported (keys {sorted(state)})")
    if "W_enc" in state:
        return "JumpReluAutoEncoder"
    if "k" in state:
        return "AutoEncoderTopK"
    if "bias" in state:
        return "AutoEncoder"
    raise DataFormatError(
        f"{path}: cannot tell the dictionary_learning class from the keys {sorted(state)} "
        f"(supported: {', '.join(DL_CLASSES)}); add a config.json with trainer.dict_class"
    )


def read_dictionary_learning(path: str | Path, site: str | None = None) -> SparseAutoencoder:
    """SAE from a dictionary_learning folder (or its ``ae.pt``), weights exactly as stored.

    JumpReLU files are the exception: their class multiplies latents by the decoder row norms, so the
    norms are folded in (``decoder_normalized=True``) to give the same latents and reconstruction.
    """
    path = Path(path)
    ae = path / AE_FILE if path.is_dir() else path
    config_path = ae.parent / DL_CONFIG
    state = _load_state_dict(ae)
    trainer: dict[str, Any] = {}
    if config_path.is_file():
        trainer = _read_json(config_path).get("trainer", {})
        if not isinstance(trainer, dict):
            raise DataFormatError(f"{config_path}: key 'trainer' must be an object")
    dict_class = trainer.get("dict_class") or _infer_dl_class(state, ae)
    if dict_class not in DL_CLASSES:
        raise DataFormatError(
            f"{config_path}: key 'trainer.dict_class' is {dict_class!r}; supported: {', '.join(DL_CLASSES)}"
        )
    d, F = _check_layout(state, _DL_LAYOUTS[dict_class], ae)
    site = site if site is not None else trainer.get("submodule_name")
    if dict_class == "AutoEncoder":
        sae = SparseAutoencoder(d, F, "relu", site=site)
        return _fill(
            sae,
            {
                "W_enc": state["encoder.weight"].t(),
                "b_enc": state["encoder.bias"],
                "W_dec": state["decoder.weight"].t(),
                "b_dec": state["bias"],
            },
        )
    if dict_class == "AutoEncoderTopK":
        k = int(state["k"])
        if "k" in trainer and int(trainer["k"]) != k:
            raise DataFormatError(f"{config_path}: key 'trainer.k' is {trainer['k']}, but {ae} holds k = {k}")
        if not 0 < k <= F:
            raise DataFormatError(f"{ae}: key 'k' is {k}, expected 1..{F}")
        sae = SparseAutoencoder(d, F, "topk", k=k, site=site)
        tensors = {
            "W_enc": state["encoder.weight"].t(),
            "b_enc": state["encoder.bias"],
            "W_dec": state["decoder.weight"].t(),
            "b_dec": state["b_dec"],
        }
        return _fill(sae, tensors)
    sae = SparseAutoencoder(d, F, "jumprelu", apply_b_dec_to_input=False, site=site)
    return _fill(
        sae, {name: state[name] for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
    ).normalize_decoder_()


def dictionary_learning_state(sae: SparseAutoencoder) -> tuple[str, dict[str, torch.Tensor]]:
    """(dict_class, state dict) of ``sae`` in the dictionary_learning layout (formulas of §6.5).

    ``AutoEncoder`` / ``AutoEncoderTopK`` always subtract ``b_dec`` first and ``JumpReluAutoEncoder``
    never does, so ``b_enc`` is adjusted where ``apply_b_dec_to_input`` differs. JumpReLU is written
    with unit decoder rows (that class rescales latents by the row norms): latents equal those of
    ``sae`` after :meth:`~SparseAutoencoder.normalize_decoder_`, reconstructions are unchanged.
    """
    dict_class = _TO_DL[sae.activation]
    if dict_class == "JumpReluAutoEncoder":
        unit = copy.deepcopy(sae).normalize_decoder_()
        b_enc = unit.b_enc.detach()
        if unit.apply_b_dec_to_input:
            b_enc = b_enc - unit.b_dec.detach() @ unit.W_enc.detach()
        tensors = {**unit.tensors(), "b_enc": b_enc}
    else:
        tensors = {
            "encoder.weight": sae.W_enc.detach().t(),
            "encoder.bias": _pre_bias_folded(sae),
            "decoder.weight": sae.W_dec.detach().t(),
        }
        if dict_class == "AutoEncoder":
            tensors["bias"] = sae.b_dec.detach()
        else:
            tensors |= {
                "b_dec": sae.b_dec.detach(),
                "k": torch.tensor(sae.k, dtype=torch.int),
                "threshold": torch.tensor(-1.0),  # dictionary_learning's "not calibrated" value
            }
    return dict_class, {key: value.contiguous().clone().cpu() for key, value in tensors.items()}


def write_dictionary_learning(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """``folder/ae.pt`` + ``config.json`` (``trainer.dict_class``, sizes, ``k``); returns ``folder``."""
    folder = Path(folder)
    dict_class, state = dictionary_learning_state(sae)
    trainer: dict[str, Any] = {"dict_class": dict_class, "activation_dim": sae.d_in, "dict_size": sae.d_sae}
    if sae.k is not None:
        trainer["k"] = sae.k
    if sae.site is not None:
        trainer["submodule_name"] = sae.site
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / AE_FILE) as tmp:
        torch.save(state, tmp)
    write_text_atomic(folder / DL_CONFIG, json.dumps({"trainer": trainer}, indent=2) + "\n")
    return folder


# ---- SAELens ---------------------------------------------------------------------------------------
def _saelens_settings(cfg: dict[str, Any], path: Path) -> dict[str, Any]:
    """SparseAutoencoder arguments from a v6 or flat pre-6 ``cfg.json``; refuses what we cannot run."""

    def need(key: str) -> Any:
        if key not in cfg:
            raise DataFormatError(f"{path}: missing key {key!r}")
        return cfg[key]

    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    architecture = cfg.get("architecture", "standard")
    kwargs = cfg.get("activation_fn_kwargs") or {}
    fn = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    if architecture == "standard" and fn == "topk":  # pre-6 TopK: a standard SAE with a topk activation
        architecture = "topk"
    elif fn not in (None, "relu", "topk"):
        raise DataFormatError(f"{path}: key 'activation_fn_str' is {fn!r}; supported: relu, topk")
    if architecture not in SAELENS_ARCHITECTURES:
        raise DataFormatError(
            f"{path}: key 'architecture' is {architecture!r}; supported: {', '.join(SAELENS_ARCHITECTURES)}"
        )
    for key, ok in (("normalize_activations", ("none", None)), ("reshape_activations", ("none", None))):
        if cfg.get(key) not in ok:
            raise DataFormatError(
                f"{path}: key {key!r} is {cfg[key]!r}; only 'none' is supported "
                "(the scale is not stored with the weights)"
            )
    for key in ("finetuning_scaling_factor", "rescale_acts_by_decoder_norm"):
        if cfg.get(key):
            raise DataFormatError(f"{path}: key {key!r} is set; not supported")
    k = None
    if architecture == "topk":
        k = cfg.get("k", kwargs.get("k") if isinstance(kwargs, dict) else None)
        if not isinstance(k, int) or isinstance(k, bool):
            raise DataFormatError(f"{path}: key 'k' must be an integer for a topk SAE, got {k!r}")
    site = metadata.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
    d_in, d_sae = need("d_in"), need("d_sae")
    for key, value in (("d_in", d_in), ("d_sae", d_sae)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataFormatError(f"{path}: key {key!r} must be a positive integer, got {value!r}")
    if k is not None and not 0 < k <= d_sae:
        raise DataFormatError(f"{path}: key 'k' is {k}, expected 1..{d_sae}")
    return {
        "d_in": d_in,
        "d_sae": d_sae,
        "activation": SAELENS_ARCHITECTURES[architecture],
        "k": k,
        "apply_b_dec_to_input": bool(cfg.get("apply_b_dec_to_input", True)),
        "decoder_normalized": bool(metadata.get("decoder_normalized", False)),
        "site": site,
    }


def read_saelens(path: str | Path) -> SparseAutoencoder:
    """SAE from a SAELens folder (``cfg.json`` + ``sae_weights.safetensors``), weights as stored."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    cfg_path, weights = folder / SAELENS_CONFIG, folder / SAELENS_WEIGHTS
    for needed in (cfg_path, weights):
        if not needed.is_file():
            raise DataFormatError(
                f"{needed}: no such file (a SAELens folder holds {SAELENS_CONFIG} + {SAELENS_WEIGHTS})"
            )
    settings = _saelens_settings(_read_json(cfg_path), cfg_path)
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise DataFormatError(f"{weights}: not a readable safetensors file ({err})") from err
    layout = dict(_SAELENS_LAYOUT)
    if settings["activation"] == "jumprelu":
        layout["threshold"] = ("F",)
    d, F = _check_layout(tensors, layout, weights)
    if (d, F) != (settings["d_in"], settings["d_sae"]):
        raise DataFormatError(
            f"{weights}: key 'W_enc' has shape {[d, F]}, but {cfg_path} says d_in={settings['d_in']}, "
            f"d_sae={settings['d_sae']}"
        )
    return _fill(SparseAutoencoder(**settings), tensors)


def write_saelens(sae: SparseAutoencoder, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """``folder/cfg.json`` (v6 layout) + ``sae_weights.safetensors``; returns ``folder``.

    ``metadata`` is merged into the config's ``metadata`` block (``model_name``, ``hook_name``...);
    ``hook_name`` defaults to ``sae.site``, and ``decoder_normalized`` is recorded there.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    cfg = {
        "architecture": _TO_SAELENS[sae.activation],
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"hook_name": sae.site, "decoder_normalized": sae.decoder_normalized, **(metadata or {})},
    }
    if sae.k is not None:
        cfg["k"] = sae.k
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / SAELENS_WEIGHTS) as tmp:
        save_file({key: value.contiguous().cpu() for key, value in sae.tensors().items()}, str(tmp))
    write_text_atomic(folder / SAELENS_CONFIG, json.dumps(cfg, indent=2) + "\n")
    return folder


# ---- any ----------------------------------------------------------------------------------------------
def load_sae(path: str | Path, normalize_decoder: bool = False) -> SparseAutoencoder:
    """SAE from a SAELens folder (``cfg.json``), a dictionary_learning folder (``ae.pt``) or an
    ``ae.pt`` / ``sae_weights.safetensors`` file; ``normalize_decoder`` applies
    :meth:`~SparseAutoencoder.normalize_decoder_` (dictionary_learning's ``from_pretrained`` default)."""
    path = Path(path)
    if path.is_dir():
        if (path / SAELENS_CONFIG).is_file():
            sae = read_saelens(path)
        elif (path / AE_FILE).is_file():
            sae = read_dictionary_learning(path)
        else:
            raise DataFormatError(
                f"{path}: neither a SAELens folder ({SAELENS_CONFIG}) "
                f"nor a dictionary_learning one ({AE_FILE})"
            )
    elif path.name == SAELENS_WEIGHTS:
        sae = read_saelens(path.parent)
    elif path.suffix == ".pt":
        sae = read_dictionary_learning(path)
    else:
        raise DataFormatError(
            f"{path}: no such SAE folder or file (expected a folder, {AE_FILE} or {SAELENS_WEIGHTS})"
        )
    return sae.normalize_decoder_() if normalize_decoder and not sae.decoder_normalized else sae
