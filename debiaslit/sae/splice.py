"""Replace the residual stream at chosen layers by ``fn(x)`` for the duration of a ``with`` block.

The SAE trainer splices reconstructions in (CE / loss recovered) and the eraser splices its edit in;
both go through :meth:`ComponentMap.residual_site`, so module paths stay in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from debiaslit.backbones import ComponentMap

ResidualFn = Callable[[torch.Tensor], torch.Tensor | None]


@contextmanager
def splice(model: nn.Module, fns: Mapping[int | str, ResidualFn]) -> Iterator[None]:
    """Forward hooks replacing the residual after block ``layer`` (``-1`` / ``"embed"``: the embedding
    output) by ``fn(x)`` (``x``: ``[batch, seq, hidden]``; returning None leaves it unchanged, e.g. to
    only read it). The hooks are removed on exit, also on an exception."""
    cmap = ComponentMap.for_model(model)
    sites = [(cmap.residual_site(layer), fn) for layer, fn in fns.items()]  # all validated before hooking
    handles = [site.register_hook(model, fn) for site, fn in sites]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
