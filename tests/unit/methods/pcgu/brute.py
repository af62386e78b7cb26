"""Brute-force PCGU partitions for the tests: each partition's entries read through the component
map's own orientation (``WeightSite.get_weight_and_bias`` on a copy of the model holding the given
tensors as weights), cosines by a Python loop in float64, selection by sorting."""

from __future__ import annotations

import copy

import torch

from debiaslit.backbones.components import ComponentMap

Key = tuple[str, int]


def _as_model(model: torch.nn.Module, values: dict[str, torch.Tensor]) -> torch.nn.Module:
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in clone.named_parameters():
            param.copy_(values[name])
    return clone


def partition_values(model, values, units, aggregation: str, norms: bool) -> dict[Key, torch.Tensor]:
    """{(group name, position): the partition's entries of ``values``} (a parameter-name dict).

    Positions follow ascending unit order, as the vectorised groups do."""
    cmap = ComponentMap.for_model(model)
    holder = _as_model(model, values)
    out = {}
    for (component, layer), chosen in units.items():
        weight, bias = cmap.weight_site(component, layer).get_weight_and_bias(holder)  # [n_out, n_in]
        name = f"{component}/layer_{layer}"
        rows = list(range(weight.shape[0])) if chosen is None else chosen.tolist()
        if aggregation == "rows":
            out |= {(name, pos): weight[i].detach().clone() for pos, i in enumerate(rows)}
        else:
            out |= {(name, j): weight[rows, j].detach().clone() for j in range(weight.shape[1])}
        out[(f"{name}/bias", 0)] = bias[rows].detach().clone()
    if norms:
        for path in cmap.norm_paths:
            for pname in ("weight", "bias"):
                out[(f"{path}.{pname}", 0)] = values[f"{path}.{pname}"].detach().clone()
    return out


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(a @ b / (a.norm() * b.norm()))


def brute_force_cosines(model, units, aggregation, grads_a, grads_b, norms=True) -> list[tuple[float, Key]]:
    """[(cosine, key)] for every partition where both gradients are non-zero."""
    a = partition_values(model, grads_a, units, aggregation, norms)
    b = partition_values(model, grads_b, units, aggregation, norms)
    return [(_cosine(a[k], b[k]), k) for k in a if a[k].abs().sum() > 0 and b[k].abs().sum() > 0]


def brute_force_selection(model, units, aggregation, grads_a, grads_b, k, norms=True) -> set[Key]:
    return {
        key for _, key in sorted(brute_force_cosines(model, units, aggregation, grads_a, grads_b, norms))[:k]
    }


def changed_partitions(model, before, after, units, aggregation, norms=True) -> set[Key]:
    """Keys of the partitions whose entries differ between two parameter-name dicts."""
    delta = {n: after[n] - before[n] for n in before}
    return {
        k for k, v in partition_values(model, delta, units, aggregation, norms).items() if v.abs().sum() > 0
    }


def selected_keys(groups, selection) -> set[Key]:
    """The vectorised selection as keys."""
    return {
        (group.name, i)
        for group, chosen in zip(groups, selection.per_group, strict=True)
        for i in chosen.nonzero().flatten().tolist()
    }
