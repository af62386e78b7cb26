"""How long a sequence a backbone accepts: checked against ``data.max_length`` before any run starts.

Learned absolute position embeddings (BERT family, GPT-2) fail deep in the forward pass with an index
error on the first sequence longer than their table; rotary / relative position models have no hard
limit and are not checked.
"""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel

from debiaslit.errors import ConfigError

#: model types whose position ids start after the padding index (positions pad + 1 .. table size - 1)
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


def max_positions(model: nn.Module) -> int | None:
    """Longest sequence ``model`` (or the first transformers model inside it) accepts, or None when
    it has no learned position table (``position_embeddings`` in BERT-family models, ``wpe`` in GPT-2)."""
    inner = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    if inner is None:
        return None
    tables = [
        m for name, m in inner.named_modules()
        if isinstance(m, nn.Embedding) and name.rsplit(".", 1)[-1] in ("position_embeddings", "wpe")
    ]  # fmt: skip
    if not tables:
        return None
    size = tables[0].num_embeddings
    if inner.config.model_type in OFFSET_POSITIONS:
        return size - (inner.config.pad_token_id or 0) - 1
    return size


def check_max_length(model: nn.Module, max_length: int | None, option: str = "data.max_length") -> None:
    """A ConfigError naming ``option`` when sequences of ``max_length`` tokens cannot enter ``model``."""
    limit = max_positions(model)
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(
            f"{option}={max_length} exceeds the {limit} positions the backbone "
            f"({type(model).__name__}) has: set {option} to at most {limit}"
        )
