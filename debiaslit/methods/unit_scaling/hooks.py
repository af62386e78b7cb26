"""Forward hooks that multiply chosen units of activation sites by α (α = 0 zeroes them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.neurons import Units


def scale_fn(
    units: torch.Tensor | None, alpha: float, position: int | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The hook body: ``z[:, position, units] *= α`` (every position when ``position`` is None; every
    unit of the site when ``units`` is None), out of place."""

    def fn(activation: torch.Tensor) -> torch.Tensor:
        scale = torch.ones(activation.shape[-1], dtype=activation.dtype, device=activation.device)
        if units is None:
            scale.fill_(alpha)
        else:
            scale[units.to(activation.device)] = alpha
        if position is None:
            return activation * scale
        out = activation.clone()
        out[:, position] = activation[:, position] * scale
        return out

    return fn


@contextmanager
def scaled_units(
    model: nn.Module, units: Units, alpha: float, position: int | None = 0
) -> Iterator[list[torch.utils.hooks.RemovableHandle]]:
    """Within the block, every forward of ``model`` has the ``units`` ({(component, layer): indices}, as
    resolved by a :class:`~debiaslit.cma.neurons.UnitSelection`) multiplied by ``alpha`` at token
    ``position`` (0 = [CLS], DebiasNeuro's; None = every token). Hooks are removed on exit."""
    cmap = ComponentMap.for_model(model)
    handles = [
        cmap.activation_site(component, layer).register_hook(model, scale_fn(index, alpha, position))
        for (component, layer), index in units.items()
    ]
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()
