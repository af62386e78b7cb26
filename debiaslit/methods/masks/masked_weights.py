"""Mask parametrizations on the weights named by the component map (METHODS.md §2.3).

Masks are ``torch.nn.utils.parametrize`` parametrizations of ``module.weight``: the module's own
forward (Linear ``[out, in]`` or GPT-2 ``Conv1D`` ``[in, out]``) sees ``W ⊙ M`` while the frozen W
sits untouched in ``parametrizations.weight.original``, so no transformers code is copied and
``remove_masks`` restores the original model exactly. Scores are kept per output row in
``[rows, in]`` orientation (``[rows, 1]`` for per-neuron masks) whatever the layout; ``rows`` lists
the module's masked output units (``None``: all of them), so CMA-restricted masks hold scores for the
selected rows only and a fused GPT-2 ``c_attn`` can mask Q but not K/V.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from debiaslit.backbones.components import ComponentMap, Layout, get_module
from debiaslit.errors import ConfigError
from debiaslit.gates import Binarizer, ScoreInit

HEAD = "head"


def _is_conv1d(module: nn.Module) -> bool:
    """transformers' GPT-2 ``Conv1D`` (matched by name: parametrized modules are dynamic subclasses)."""
    return any(cls.__name__ == "Conv1D" for cls in type(module).__mro__)


def _layout(module: nn.Module) -> Layout:
    if isinstance(module, nn.Linear):
        return "linear"
    if _is_conv1d(module):
        return "conv1d"
    raise ConfigError(f"cannot mask {type(module).__name__}: only Linear and Conv1D weights")


class RowMask(nn.Module):
    """Base parametrization: ``weight * M`` with M built from a per-row mask of the masked rows."""

    def __init__(self, layout: Layout, n_out: int, rows: torch.Tensor | None) -> None:
        super().__init__()
        self.layout, self.n_out = layout, n_out
        self.register_buffer("rows", rows)

    def row_mask(self) -> torch.Tensor:
        """Mask of the masked rows, ``[n_rows, in]`` or ``[n_rows, 1]``."""
        raise NotImplementedError

    def full_mask(self, row_mask: torch.Tensor) -> torch.Tensor:
        """Broadcastable to the weight: unmasked rows are 1, Conv1D gets the transpose."""
        if self.rows is not None:
            full = row_mask.new_ones(self.n_out, row_mask.shape[1])
            row_mask = full.index_copy(0, self.rows, row_mask)
        return row_mask if self.layout == "linear" else row_mask.t()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.full_mask(self.row_mask()).to(weight.dtype)


class LearnedMask(RowMask):
    """Real scores S (fp32) → binary mask through a binarizer at the current schedule value.

    ``value`` is a buffer so that checkpoints carry the threshold in use; a Python copy of it is
    read in the forward pass (no device sync per module).
    """

    def __init__(
        self,
        layout: Layout,
        n_out: int,
        rows: torch.Tensor | None,
        scores: torch.Tensor,
        binarizer: Binarizer,
        value: float,
    ) -> None:
        super().__init__(layout, n_out, rows)
        self.scores = nn.Parameter(scores.float())
        self.binarizer = binarizer
        self.register_buffer("value", torch.tensor(float(value), dtype=torch.float64))
        self.current = float(value)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.set_value(float(module.value)))

    def set_value(self, value: float) -> None:
        self.value.fill_(value)
        self.current = float(value)

    def row_mask(self) -> torch.Tensor:
        return self.binarizer(self.scores, self.current, self.training)

    @torch.no_grad()
    def hard_mask(self) -> torch.Tensor:
        """The deterministic (evaluation-mode) mask of the masked rows, as bool."""
        return self.binarizer(self.scores, self.current, False) > 0.5


class FixedMask(RowMask):
    """A stored boolean mask (exported masks applied onto a backbone)."""

    def __init__(self, layout: Layout, n_out: int, rows: torch.Tensor | None, mask: torch.Tensor) -> None:
        super().__init__(layout, n_out, rows)
        self.register_buffer("mask", mask.bool())

    def row_mask(self) -> torch.Tensor:
        return self.mask.float()


@dataclass(frozen=True)
class MaskTarget:
    """One masked (component, layer) and where its rows sit inside its module's scores.

    ``positions`` indexes the rows of the module's scores that belong to this component (None: all
    rows); ``n_units`` and ``n_in`` size the component's full weight, which sparsity is relative to.
    """

    component: str
    layer: int
    module_path: str
    positions: torch.Tensor | None
    n_units: int
    n_in: int

    @property
    def name(self) -> str:
        return self.component if self.layer < 0 else f"{self.component}/layer_{self.layer}"


def _weight_shape(module: nn.Module, layout: Layout) -> tuple[int, int]:
    """(n_out, n_in) of a Linear / Conv1D weight."""
    out, inp = module.weight.shape
    return (out, inp) if layout == "linear" else (inp, out)


class MaskedModel:
    """The masks attached to one backbone: targets, schedule updates, sparsity, penalties.

    Built by :func:`attach_masks`; holds no tensors itself (scores live in the parametrizations, so
    Lightning checkpoints, DDP and optimisers see them as ordinary parameters of the model).
    """

    def __init__(self, model: nn.Module, targets: Sequence[MaskTarget]) -> None:
        self.model, self.targets = model, list(targets)
        self.paths = list(dict.fromkeys(t.module_path for t in self.targets))

    def mask_module(self, path: str) -> RowMask:
        return get_module(self.model, path).parametrizations.weight[0]

    def learned(self) -> Iterator[tuple[str, LearnedMask]]:
        for path in self.paths:
            yield path, self.mask_module(path)

    def set_value(self, value: float) -> None:
        """Set the schedule value (threshold or kept fraction) of every mask."""
        for _, mask in self.learned():
            mask.set_value(value)

    def hard_masks(self) -> dict[str, torch.Tensor]:
        """Module path → boolean mask of its masked rows (evaluation mode)."""
        return {path: mask.hard_mask() for path, mask in self.learned()}

    def gates(self) -> list[LearnedMask]:
        """The learned masks (what the sparsity penalties take)."""
        return [mask for _, mask in self.learned()]

    def sparsity(self, masks: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Pruned fraction of each target's full weight plus ``global`` over every target."""
        masks = self.hard_masks() if masks is None else masks
        result, pruned_all, total_all = {}, 0, 0
        for t in self.targets:
            rows = masks[t.module_path] if t.positions is None else masks[t.module_path][t.positions]
            pruned = int((~rows).sum()) * (t.n_in // rows.shape[1])
            total = t.n_units * t.n_in
            result[t.name] = pruned / total
            pruned_all, total_all = pruned_all + pruned, total_all + total
        result["global"] = pruned_all / max(1, total_all)
        return result


def _site_rows(
    cmap: ComponentMap, component: str, layer: int, selected: torch.Tensor | None
) -> tuple[str, torch.Tensor | None, int]:
    """(module path, module output units of the component's masked rows, component size)."""
    site = cmap.weight_site(component, layer)
    units = site.out_index if selected is None else site.module_units(selected.long())
    return site.module_path, units, cmap.size(component)


def attach_masks(
    model: nn.Module,
    units: Mapping[tuple[str, int], torch.Tensor | None],
    binarizer: Binarizer,
    init: ScoreInit,
    granularity: str = "weight",
    mask_heads: bool = False,
    seed: int = 0,
) -> MaskedModel:
    """Register a :class:`LearnedMask` on every selected weight and return the :class:`MaskedModel`.

    ``units`` maps (component, layer) to the unit indices to mask, None for all of them (see
    ``debiaslit.cma.neurons``: ``AllUnits`` / ``TopCMAUnits``); a pair it lacks is not masked.
    Embeddings and LayerNorms are never masked; ``mask_heads`` adds the pooler and task-head Linear
    layers. Scores come from ``init`` at the binarizer's starting value, drawn in the order of
    ``units`` (layer by layer, components in the order given), so the same settings give the same masks.
    """
    cmap = ComponentMap.for_model(model)
    cut = binarizer.score_cut(binarizer.start)
    # module path -> [(component, layer, module units or None, n_units)]
    plan: dict[str, list[tuple[str, int, torch.Tensor | None, int]]] = {}
    for (component, layer), chosen in units.items():
        path, rows, n_units = _site_rows(cmap, component, layer, chosen)
        plan.setdefault(path, []).append((component, layer, rows, n_units))
    if mask_heads:
        for head_path in cmap.task_head_paths:
            for name, mod in get_module(model, head_path).named_modules():
                if isinstance(mod, nn.Linear) or _is_conv1d(mod):
                    full = f"{head_path}.{name}" if name else head_path
                    plan[full] = [(f"{HEAD}/{full}", -1, None, _weight_shape(mod, _layout(mod))[0])]
    if not plan:
        raise ConfigError("no weights selected for masking (check components, layers and the CMA selection)")

    generator = torch.Generator().manual_seed(seed)
    targets = []
    for path, entries in plan.items():
        module = get_module(model, path)
        layout = _layout(module)
        n_out, n_in = _weight_shape(module, layout)
        rows = None
        if all(units is not None for _, _, units, _ in entries):
            rows = torch.unique(torch.cat([u for _, _, u, _ in entries]))
            rows = None if rows.numel() == n_out else rows
        for component, layer, units, n_units in entries:
            positions = None
            if rows is not None:
                positions = torch.searchsorted(rows, units)
            elif units is not None:
                positions = units.clone()
            targets.append(MaskTarget(component, layer, path, positions, n_units, n_in))
        n_rows = n_out if rows is None else rows.numel()
        shape = (n_rows, n_in if granularity == "weight" else 1)
        scores = init(shape, cut, generator)
        parametrize.register_parametrization(
            module, "weight", LearnedMask(layout, n_out, rows, scores, binarizer, binarizer.start)
        )
    return MaskedModel(model, targets)


def remove_masks(model: nn.Module, apply: bool = False) -> None:
    """Remove every mask parametrization; ``apply=True`` bakes ``W ⊙ M`` into the weights.

    The model should be in eval mode when applying stochastic (hard-concrete) masks.
    """
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight") and isinstance(
            module.parametrizations.weight[0], RowMask
        ):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=apply)
