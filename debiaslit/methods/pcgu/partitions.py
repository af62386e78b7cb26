"""PCGU's weight partitions (METHODS.md §3.3): which slices of which parameters compete for the update.

A :class:`PartitionGroup` holds the partitions of one parameter that one site contributes: the units
along ``unit_dim`` (all, or an index list), each restricted to ``span`` along the other dimension, or a
whole 1-D vector (bias slice, LayerNorm weight) as a single partition. Groups of one parameter never
overlap (GPT-2's fused ``c_attn`` gives Q, K and V disjoint groups), so per-group masks add up.

``rows`` are output units (every incoming weight of unit i: ``W[i, :]`` of a Linear, ``W[:, i]`` of a
GPT-2 Conv1D), ``columns`` input units restricted to the component's output units. Embedding matrices
partition by token vector (``rows``) or hidden dimension (``columns``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from debiaslit.backbones.components import ComponentMap, get_module
from debiaslit.errors import ConfigError

Aggregation = Literal["rows", "columns"]
AGGREGATIONS = ("rows", "columns")


@dataclass(frozen=True)
class Index:
    """Indices along one dimension: a contiguous range (a view) or an explicit list (a copy)."""

    start: int
    length: int
    explicit: torch.Tensor | None = None

    @classmethod
    def of(cls, indices: torch.Tensor | None, size: int) -> Index:
        if indices is None:
            return cls(0, size)
        indices = indices.long().cpu()
        start, n = int(indices[0]), indices.numel()
        if torch.equal(indices, torch.arange(start, start + n)):
            return cls(start, n)
        return cls(start, n, indices)

    def take(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        if self.explicit is None:
            return tensor.narrow(dim, self.start, self.length)
        return tensor.index_select(dim, self.explicit.to(tensor.device))

    def indicator(self, size: int, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Vector of ``size`` with ``values`` ([length]) at these indices, 0 elsewhere."""
        out = torch.zeros(size, dtype=like.dtype, device=like.device)
        if self.explicit is None:
            out[self.start : self.start + self.length] = values
        else:
            out[self.explicit.to(like.device)] = values
        return out

    def tensor(self) -> torch.Tensor:
        return torch.arange(self.start, self.start + self.length) if self.explicit is None else self.explicit


@dataclass(frozen=True)
class PartitionGroup:
    """The partitions one site contributes from parameter ``param_name``.

    2-D: one partition per index of ``units`` along ``unit_dim``, holding the entries ``span`` along
    the other dimension. 1-D (``unit_dim`` None): the entries ``span`` form one partition.
    """

    name: str
    param_name: str
    unit_dim: int | None
    units: Index | None
    span: Index

    @property
    def count(self) -> int:
        return 1 if self.units is None else self.units.length

    def view(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient as [count, partition size] (one row per partition)."""
        if self.unit_dim is None:
            return self.span.take(grad, 0).reshape(1, -1)
        inner = self.units.take(grad, self.unit_dim)
        return self.span.take(inner, 1 - self.unit_dim).movedim(self.unit_dim, 0)

    def mask(self, selected: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
        """0/1 tensor broadcastable to ``param``: 1 on the entries of the selected partitions."""
        if self.unit_dim is None:
            values = selected.to(param.dtype).expand(self.span.length)
            return self.span.indicator(param.shape[0], values, param)
        other = 1 - self.unit_dim
        along = self.units.indicator(param.shape[self.unit_dim], selected.to(param.dtype), param)
        across = self.span.indicator(param.shape[other], torch.ones((), dtype=param.dtype), param)
        shape_along, shape_across = [1, 1], [1, 1]
        shape_along[self.unit_dim], shape_across[other] = -1, -1
        return along.view(shape_along) * across.view(shape_across)


def _weight_dims(module: nn.Module) -> tuple[int, int]:
    """(output-unit dim, input-unit dim) of a Linear [out, in] or GPT-2 Conv1D [in, out] weight."""
    if isinstance(module, nn.Linear):
        return 0, 1
    if any(cls.__name__ == "Conv1D" for cls in type(module).__mro__):
        return 1, 0
    raise ConfigError(f"PCGU partitions Linear and Conv1D weights only, not {type(module).__name__}")


class _Builder:
    """Collects groups, naming each parameter by its canonical (untied) name, each one once."""

    def __init__(self, model: nn.Module, aggregation: Aggregation) -> None:
        self.names = {id(p): n for n, p in model.named_parameters()}
        self.model, self.aggregation = model, aggregation
        self.groups: list[PartitionGroup] = []
        self._whole: set[str] = set()  # parameters already fully covered (tied weights appear twice)

    def name_of(self, param: torch.Tensor) -> str:
        return self.names[id(param)]

    def matrix(self, name: str, param: torch.Tensor, out_dim: int, units: torch.Tensor | None) -> None:
        """Rows: the output units ``units`` (None: all); columns: every input unit over ``units``."""
        pname = self.name_of(param)
        if pname in self._whole:
            return
        if units is None:
            self._whole.add(pname)
        outs = Index.of(units, param.shape[out_dim])
        if self.aggregation == "rows":
            group = PartitionGroup(name, pname, out_dim, outs, Index.of(None, param.shape[1 - out_dim]))
        else:
            group = PartitionGroup(name, pname, 1 - out_dim, Index.of(None, param.shape[1 - out_dim]), outs)
        self.groups.append(group)

    def vector(self, name: str, param: torch.Tensor | None, span: torch.Tensor | None = None) -> None:
        if param is None:
            return
        pname = self.name_of(param)
        if pname in self._whole:
            return
        if span is None:
            self._whole.add(pname)
        self.groups.append(PartitionGroup(name, pname, None, None, Index.of(span, param.shape[0])))

    def module_params(self, prefix: str, module: nn.Module) -> None:
        """Every Linear / Conv1D / Embedding / LayerNorm under ``module``: weights and vectors."""
        for sub_name, sub in module.named_modules():
            path = f"{prefix}.{sub_name}" if sub_name else prefix
            if isinstance(sub, nn.Embedding):
                self.matrix(path, sub.weight, 0, None)  # rows: one token's vector
            elif isinstance(sub, nn.LayerNorm | nn.RMSNorm):
                self.vector(f"{path}.weight", sub.weight)
                self.vector(f"{path}.bias", getattr(sub, "bias", None))
            elif isinstance(sub, nn.Linear) or any(c.__name__ == "Conv1D" for c in type(sub).__mro__):
                self.matrix(path, sub.weight, _weight_dims(sub)[0], None)
                self.vector(f"{path}.bias", sub.bias)
            else:
                for pname, param in sub.named_parameters(recurse=False):
                    if param.ndim == 1:
                        self.vector(f"{path}.{pname}", param)


def build_partitions(
    model: nn.Module,
    units: Mapping[tuple[str, int], torch.Tensor | None],
    aggregation: Aggregation = "rows",
    include_embeddings: bool = False,
    include_norms: bool = True,
    include_head: bool = False,
) -> list[PartitionGroup]:
    """The candidate partitions: the weights (and bias slices) producing ``units`` (from a
    ``debiaslit.cma.neurons`` selection: None = every unit of a (component, layer)), plus optionally
    every embedding matrix, every LayerNorm vector and the task head's parameters."""
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"model.init_args.aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    cmap = ComponentMap.for_model(model)
    builder = _Builder(model, aggregation)
    for (component, layer), chosen in units.items():
        site = cmap.weight_site(component, layer)
        module = site.module(model)
        module_units = site.out_index if chosen is None else site.module_units(chosen.long())
        name = f"{component}/layer_{layer}"
        builder.matrix(name, module.weight, _weight_dims(module)[0], module_units)
        builder.vector(f"{name}/bias", module.bias, module_units)
    if include_embeddings:
        for path in cmap.embedding_paths:
            for sub_name, sub in get_module(model, path).named_modules():
                if isinstance(sub, nn.Embedding):
                    builder.matrix(f"{path}.{sub_name}" if sub_name else path, sub.weight, 0, None)
    if include_norms:
        for path in cmap.norm_paths:
            norm = get_module(model, path)
            builder.vector(f"{path}.weight", norm.weight)
            builder.vector(f"{path}.bias", getattr(norm, "bias", None))
    if include_head:
        for path in cmap.task_head_paths:
            builder.module_params(path, get_module(model, path))
    if not builder.groups:
        raise ConfigError("PCGU has no candidate partitions: check units (components, layers, CMA selection)")
    return builder.groups


def count_partitions(groups: list[PartitionGroup]) -> int:
    return sum(g.count for g in groups)
