"""Mediators: which activation units are patched, and at which token positions.

A :class:`Mediator` is one (component, layer) site of the component map; its *units* are the neurons
of that component, or the attention heads for ``head`` (each head = ``head_dim`` output dimensions,
the input of the attention output projection). Module paths come from
:class:`~debiaslit.backbones.ComponentMap` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from debiaslit.backbones.components import COMPONENTS, HEAD, RESID, ActivationSite, ComponentMap
from debiaslit.cma.patterns import PatternSite
from debiaslit.errors import ConfigError

PATTERN = "pattern"
#: Components a mediator can be: Q, K, V, AO, I, O, the layer output, the attention-head outputs and
#: the attention heads' post-softmax patterns (Vig et al.).
MEDIATOR_COMPONENTS: tuple[str, ...] = (*COMPONENTS, RESID, HEAD, PATTERN)
#: Named token positions; an int is also accepted (a fixed index into every example).
POSITIONS: tuple[str, ...] = ("cls", "last", "word", "all")


@dataclass(frozen=True, order=True)
class Mediator:
    """One (component, layer) site; its neurons (or heads) are patched individually.

    A ``pattern`` unit is one head's attention probabilities: the rows of the patched query positions.
    """

    component: str
    layer: int

    @property
    def key(self) -> str:
        return f"{self.component}/layer_{self.layer}"

    def site(self, cmap: ComponentMap) -> ActivationSite | PatternSite:
        if self.component == HEAD:
            return cmap.head_site(self.layer)
        if self.component == PATTERN:
            return PatternSite(self.layer, cmap.attention_module_path(self.layer))
        return cmap.activation_site(self.component, self.layer)

    def n_units(self, cmap: ComponentMap) -> int:
        return cmap.num_heads if self.component in (HEAD, PATTERN) else cmap.size(self.component)

    def width(self, cmap: ComponentMap) -> int:
        """Activation dimensions of the site (a pattern's depends on the sequence length: ConfigError)."""
        if self.component == PATTERN:
            raise ConfigError(
                "attention patterns have no fixed width (they depend on the sequence length): "
                "use the counterfactual, scale or zero intervention for `pattern`, not a reference mean"
            )
        return cmap.hidden_size if self.component == HEAD else cmap.size(self.component)


def expand_units(unit_mask: torch.Tensor, width: int) -> torch.Tensor:
    """Unit mask [..., n_units] -> dimension mask [..., width] (each unit owns width / n_units dims)."""
    return unit_mask.repeat_interleave(width // unit_mask.shape[-1], dim=-1)


def mediators_for(
    cmap: ComponentMap, components: Sequence[str], layers: Sequence[int] | None = None
) -> list[Mediator]:
    """Every (component, layer) pair, validated against the model (ConfigError names the bad value)."""
    if not components:
        raise ConfigError(f"cma components is empty; choose from {', '.join(MEDIATOR_COMPONENTS)}")
    unknown = [c for c in components if c not in MEDIATOR_COMPONENTS]
    if unknown:
        raise ConfigError(
            f"unknown cma component(s) {unknown}; valid components: {', '.join(MEDIATOR_COMPONENTS)}"
        )
    layers = list(range(cmap.num_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not (isinstance(layer, int) and 0 <= layer < cmap.num_layers)]
    if bad or not layers:
        raise ConfigError(f"cma layers {bad or '[]'} out of range; valid layers: 0..{cmap.num_layers - 1}")
    return [Mediator(c, layer) for layer in layers for c in components]


def check_position(position: str | int) -> None:
    if isinstance(position, bool) or not (isinstance(position, int) or position in POSITIONS):
        raise ConfigError(f"cma position {position!r} is unknown; use one of {POSITIONS} or a token index")


def resolve_positions(position: str | int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token positions [N, P] to patch in each example (P = 1, or the sequence length for ``all``).

    ``cls`` = 0, ``last`` = the last non-padding token (right padding), ``word`` = ``batch["positions"]``
    (e.g. the substituted profession), an int = that index, which must exist in every example.
    """
    check_position(position)
    ids = batch["input_ids"]
    n, width = ids.shape
    lengths = batch["attention_mask"].sum(1) if "attention_mask" in batch else torch.full((n,), width)
    if position == "all":
        return torch.arange(width, device=ids.device).expand(n, width)
    if position == "cls":
        pos = torch.zeros(n, dtype=torch.long, device=ids.device)
    elif position == "last":
        pos = lengths - 1
    elif position == "word":
        if "positions" not in batch:
            raise ConfigError("cma position 'word' needs a `positions` field in the probe batch")
        pos = batch["positions"].long()
    else:
        pos = torch.full((n,), int(position), dtype=torch.long, device=ids.device)
    too_far = (pos < 0) | (pos >= lengths)
    if bool(too_far.any()):
        i = int(too_far.nonzero()[0, 0])
        raise ConfigError(
            f"cma position {position!r} is out of range: example {i} has {int(lengths[i])} tokens "
            f"(position {int(pos[i])})"
        )
    return pos[:, None]


def gather_positions(activation: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """activation [N, T, D] at positions [N, P] -> [N, P, D]."""
    rows = torch.arange(activation.shape[0], device=activation.device)[:, None]
    return activation[rows, positions.to(activation.device)]


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """float32 for half / bfloat16 / float32 values, float64 kept (effects are computed in >= fp32)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()
