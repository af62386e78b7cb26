"""PCGU partitions and ranking against a brute-force per-partition computation (``brute.py``) on tiny
models: the vectorised ranking must pick the same partitions."""

from __future__ import annotations

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.backbones.components import ComponentMap
from debiaslit.cma.neurons import AllUnits
from debiaslit.errors import ConfigError
from debiaslit.methods.pcgu.partitions import build_partitions, count_partitions
from debiaslit.methods.pcgu.ranking import masked_update, partition_scores, select_partitions
from tests.unit.methods.pcgu.brute import brute_force_cosines, selected_keys
from tests.unit.methods.pcgu.pairs import TASKS


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


@pytest.mark.parametrize("backbone", list(TASKS))
@pytest.mark.parametrize("aggregation", ["rows", "columns"])
def test_selected_partitions_equal_a_brute_force_ranking(backbone: str, aggregation: str) -> None:
    model, _ = load_backbone(backbone, task=TASKS[backbone], seed=3)
    cmap = ComponentMap.for_model(model)
    units = AllUnits(components=["Q", "V", "I"]).resolve(cmap)
    units[("O", 1)] = torch.tensor([0, 2, 5, 6])  # a CMA-style subset of one layer's units
    grads_a, grads_b = _two_gradients(model, TASKS[backbone])
    groups = build_partitions(model, units, aggregation, include_norms=True)
    brute = brute_force_cosines(model, units, aggregation, grads_a, grads_b)
    k = len(brute) // 3
    selection = select_partitions(groups, grads_a, grads_b, top_k=k)
    expected = {key for _, key in sorted(brute)[:k]}
    assert selected_keys(groups, selection) == expected
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
