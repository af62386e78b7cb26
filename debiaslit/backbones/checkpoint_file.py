"""Reading a Lightning checkpoint given by the user: tensors and plain containers only, and every
failure (missing, truncated by a crash while written, pickled objects) a ConfigError naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from debiaslit.errors import CheckpointError, ConfigError


def read_checkpoint(path: str | Path, option: str) -> dict[str, Any]:
    """The checkpoint dict at ``path``; ``option`` (e.g. ``--ckpt_path``) names where it was given."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise CheckpointError(f"{option}: checkpoint file '{path}' ({resolved}) does not exist")
    try:  # tensors and plain containers only: a checkpoint must not run code when loaded
        checkpoint = torch.load(resolved, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{option}: '{resolved}' holds objects other than tensors and plain containers, refused "
            f"(loading it would need arbitrary unpickling, which can run code): {_culprit(err)}"
        ) from err
    except (RuntimeError, EOFError) as err:  # torch's zip reader on a file cut short
        reason = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{option}: '{resolved}' is not a complete checkpoint (truncated or corrupt: {reason})"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{option}: '{resolved}' is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def backbone_weights(checkpoint: dict[str, Any], model: nn.Module, where: str) -> dict[str, torch.Tensor]:
    """The ``model.``-prefixed weights of a method's checkpoint, refused (``where`` names the file)
    unless they are exactly ``model``'s: names and shapes (a checkpoint of another backbone)."""
    state = checkpoint["state_dict"]
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
    reshaped = sorted(k for k in own.keys() & weights.keys() if own[k].shape != weights[k].shape)
    if missing or unexpected or reshaped:
        raise ConfigError(
            f"{where} holds the weights of another architecture than {type(model).__name__}: "
            + "; ".join(
                f"{len(keys)} {what} (e.g. {keys[:2]})"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("reshaped", reshaped))
                if keys
            )
        )
    return weights


def _culprit(err: pickle.UnpicklingError) -> str:
    """torch's line that names the refused class (its message starts with advice on unsafe loading)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "")
