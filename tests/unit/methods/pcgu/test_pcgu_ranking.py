"""PCGU partitions and ranking against a brute-force per-partition computation on tiny models.

The brute force reads each component's gradient through the component map's own orientation
(``WeightSite.get_weight_and_bias`` on a copy of the model whose weights are the gradients), loops
over every partition in Python (cosine in float64) and sorts: the vectorised ranking must pick
the same partitions.
"""

from __future__ import annotations

import copy

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.neurons import AllUnits
from debiaslit.errors import ConfigError
from debiaslit.methods.pcgu.partitions import build_partitions, count_partitions
from debiaslit.methods.pcgu.ranking import masked_update, partition_scores, select_partitions

TASKS = {"tiny-bert": "masked-lm", "tiny-gpt2": "causal-lm"}


def _two_gradients(model: torch.nn.Module, task: str) -> tuple[dict, dict]:
    """Gradients of the log-probability of two different next/masked tokens (a real contrast)."""
    torch.manual_seed(0)
    ids = torch.randint(5, 60, (2, 7))
    grads = []
    for target in (11, 23):
        model.zero_grad()
        logp = model(input_ids=ids).logits.log_softmax(-1)
        logp[:, 3, target].sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.zero_grad()
    return grads[0], grads[1]


def _as_model(model: torch.nn.Module, grads: dict) -> torch.nn.Module:
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in clone.named_parameters():
            param.copy_(grads[name])
    return clone


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    return float(a @ b / (a.norm() * b.norm()))


def _brute_force(model, units, aggregation, grads_a, grads_b, norms):
    """[(cosine, (group name, index))] for every partition with non-zero gradients, by Python loops."""
    cmap = ComponentMap.for_model(model)
    ga, gb = _as_model(model, grads_a), _as_model(model, grads_b)
    out = []
    for (component, layer), chosen in units.items():
        site = cmap.weight_site(component, layer)
        (wa, ba), (wb, bb) = site.get_weight_and_bias(ga), site.get_weight_and_bias(gb)  # [n_out, n_in]
        name = f"{component}/layer_{layer}"
        rows = list(range(wa.shape[0])) if chosen is None else chosen.tolist()
        if aggregation == "rows":  # partitions keyed by their position in ascending unit order
            parts = [(wa[i], wb[i], pos) for pos, i in enumerate(rows)]
        else:
            parts = [(wa[rows, j], wb[rows, j], j) for j in range(wa.shape[1])]
        parts.append((ba[rows], bb[rows], (f"{name}/bias", 0)))
        for a, b, idx in parts:
            key = idx if isinstance(idx, tuple) else (name, idx)
            if a.abs().sum() > 0 and b.abs().sum() > 0:
                out.append((_cosine(a, b), key))
    if norms:
        for path in cmap.norm_paths:
            for pname in ("weight", "bias"):
                a, b = grads_a[f"{path}.{pname}"], grads_b[f"{path}.{pname}"]
                if a.abs().sum() > 0 and b.abs().sum() > 0:
                    out.append((_cosine(a, b), (f"{path}.{pname}", 0)))
    return out


def _selected_keys(groups, selection) -> set:
    return {
        (group.name, i)
        for group, chosen in zip(groups, selection.per_group, strict=True)
        for i in chosen.nonzero().flatten().tolist()
    }


@pytest.mark.parametrize("backbone", list(TASKS))
@pytest.mark.parametrize("aggregation", ["rows", "columns"])
def test_selected_partitions_equal_a_brute_force_ranking(backbone: str, aggregation: str) -> None:
    model, _ = load_backbone(backbone, task=TASKS[backbone], seed=3)
    cmap = ComponentMap.for_model(model)
    units = AllUnits(components=["Q", "V", "I"]).resolve(cmap)
    units[("O", 1)] = torch.tensor([0, 2, 5, 6])  # a CMA-style subset of one layer's units
    grads_a, grads_b = _two_gradients(model, TASKS[backbone])
    groups = build_partitions(model, units, aggregation, include_norms=True)
    brute = _brute_force(model, units, aggregation, grads_a, grads_b, norms=True)
    k = len(brute) // 3
    selection = select_partitions(groups, grads_a, grads_b, top_k=k)
    expected = {key for _, key in sorted(brute)[:k]}
    assert _selected_keys(groups, selection) == expected
    assert selection.n_selected == k
    # the scores themselves, sorted, equal the brute-force cosines
    scores, _ = partition_scores(groups, grads_a, grads_b)
    finite = scores[torch.isfinite(scores)].sort().values
    torch.testing.assert_close(finite, torch.tensor(sorted(c for c, _ in brute)), atol=1e-5, rtol=0)


def test_zero_gradient_partitions_are_never_selected_unless_the_reference_behaviour_is_asked() -> None:
    model, _ = load_backbone("tiny-bert", task="masked-lm", seed=3)
    grads_a, grads_b = _two_gradients(model, "masked-lm")
    groups = build_partitions(model, {}, include_embeddings=True, include_norms=False)
    word = next(g for g in groups if g.name.endswith("position_embeddings"))
    n_zero = int((grads_a[word.param_name].abs().sum(1) == 0).sum())
    assert n_zero > 0  # rows of positions past the batch's length (word rows are tied to the MLM decoder)
    excluded = select_partitions(groups, grads_a, grads_b, top_k=None)
    assert excluded.n_zero_grad >= n_zero
    assert excluded.n_selected == excluded.n_candidates - excluded.n_zero_grad
    rows = excluded.per_group[groups.index(word)]
    assert not rows[grads_a[word.param_name].abs().sum(1) == 0].any()
    reference = select_partitions(groups, grads_a, grads_b, top_k=None, zero_grad="reference")
    assert reference.n_selected == reference.n_candidates


def test_masked_update_is_zero_outside_the_selected_partitions_of_fused_qkv() -> None:
    model, _ = load_backbone("tiny-gpt2", task="causal-lm", seed=3)
    cmap = ComponentMap.for_model(model)
    grads_a, grads_b = _two_gradients(model, "causal-lm")
    groups = build_partitions(model, {("K", 0): None}, "rows", include_norms=False)
    assert [g.name for g in groups] == ["K/layer_0", "K/layer_0/bias"]
    selection = select_partitions(groups, grads_a, grads_b, top_k=3)
    params = dict(model.named_parameters())
    update = masked_update(groups, selection, grads_a, params)
    name = groups[0].param_name
    grad, _ = update[name]
    d = cmap.hidden_size
    changed = (grad != 0).any(dim=0).nonzero().flatten()  # Conv1D [in, out]: output units are columns
    chosen = groups[0].units.tensor()[selection.per_group[0]]
    assert set(changed.tolist()) <= set(chosen.tolist())
    assert all(d <= u < 2 * d for u in chosen.tolist())  # K is the middle block of c_attn


def test_count_and_bad_aggregation() -> None:
    model, _ = load_backbone("tiny-bert", task="masked-lm", seed=3)
    cmap = ComponentMap.for_model(model)
    groups = build_partitions(model, {("I", 0): None}, "rows", include_norms=False)
    assert count_partitions(groups) == cmap.intermediate_size + 1  # rows + one bias vector
    with pytest.raises(ConfigError, match="aggregation must be one of"):
        build_partitions(model, {("I", 0): None}, "diagonal")
    with pytest.raises(ConfigError, match="no candidate partitions"):
        build_partitions(model, {}, include_norms=False)
