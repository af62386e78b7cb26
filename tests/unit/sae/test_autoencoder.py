"""SparseAutoencoder against hand-computed values; the residual site and the splice helper against
``output_hidden_states`` of real tiny models."""

from __future__ import annotations

import pytest
import torch

from debiaslit.backbones import ComponentMap, load_backbone
from debiaslit.errors import ConfigError
from debiaslit.sae import SparseAutoencoder, splice


def _hand_sae(activation: str = "relu", **kwargs) -> SparseAutoencoder:
    """d_in 2, d_sae 3: W_enc columns (1,0), (0,1), (1,1); decoder rows of norms 2, 1, 1."""
    sae = SparseAutoencoder(2, 3, activation, **kwargs)
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, -1.0, -2.0]))
        sae.W_dec.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
        sae.b_dec.copy_(torch.tensor([1.0, 1.0]))
        if activation == "jumprelu":
            sae.threshold.copy_(torch.tensor([2.5, 0.5, 0.0]))
    return sae


X = torch.tensor([[4.0, 3.0], [0.0, 1.0]])


def test_relu_encode_decode_by_hand():
    sae = _hand_sae()
    # x − b_dec = (3, 2), (−1, 0); pre = (3, 1, 3), (−1, −1, −3)
    f = sae.encode(X)
    torch.testing.assert_close(f, torch.tensor([[3.0, 1.0, 3.0], [0.0, 0.0, 0.0]]))
    x_hat, f2 = sae(X)
    torch.testing.assert_close(f2, f)
    # f @ W_dec + b_dec = (6+3, 1) + (1, 1)
    torch.testing.assert_close(x_hat, torch.tensor([[10.0, 2.0], [1.0, 1.0]]))
    no_pre = _hand_sae(apply_b_dec_to_input=False)
    torch.testing.assert_close(no_pre.encode(X), torch.tensor([[4.0, 2.0, 5.0], [0.0, 0.0, 0.0]]))


def test_topk_and_jumprelu_by_hand():
    topk = _hand_sae("topk", k=1)
    # pre (3, 1, 3): a tie, the first index wins in torch.topk; (−1, −1, −3): relu gives 0
    f = topk.encode(torch.tensor([[4.0, 3.5]]))  # pre (3, 1.5, 3.5)
    torch.testing.assert_close(f, torch.tensor([[0.0, 0.0, 3.5]]))
    jump = _hand_sae("jumprelu")
    # pre (3, 1, 3) vs thresholds (2.5, 0.5, 0): all pass; x = (2, 2): pre (1, 0, 0) -> none above
    torch.testing.assert_close(jump.encode(X[:1]), torch.tensor([[3.0, 1.0, 3.0]]))
    torch.testing.assert_close(jump.encode(torch.tensor([[2.0, 2.0]])), torch.zeros(1, 3))
    assert set(jump.tensors()) == {"W_enc", "b_enc", "W_dec", "b_dec", "threshold"}


def test_normalize_decoder_keeps_reconstruction_and_scales_latents():
    for activation in ("relu", "jumprelu"):
        sae = _hand_sae(activation)
        x = torch.randn(16, 2) * 3
        x_hat, f = sae(x)
        sae.normalize_decoder_()
        x_hat2, f2 = sae(x)
        torch.testing.assert_close(x_hat2, x_hat)
        torch.testing.assert_close(f2, f * torch.tensor([2.0, 1.0, 1.0]))
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(3))
        assert sae.decoder_normalized
    with pytest.raises(ConfigError, match="topk"):
        _hand_sae("topk", k=2).normalize_decoder_()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation="gelu"), "activation"),
        (dict(activation="topk"), "k"),
        (dict(activation="topk", k=9), "k"),
        (dict(activation="relu", k=2), "only used by topk"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SparseAutoencoder(2, 3, **kwargs)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2", "tiny-gpt-neox"])
def test_residual_site_and_splice(name):
    """residual_site(l) reads hidden_states[l + 1] (embed: [0]); splicing fn replaces it downstream."""
    model, tokenizer = load_backbone(name, task="causal-lm" if name != "tiny-bert" else "masked-lm")
    model.eval()
    text = ["the nurse said that she was tired", "he is a doctor"]
    batch = tokenizer(text, return_tensors="pt", padding=True)
    cmap = ComponentMap.for_model(model)
    seen: dict[int | str, torch.Tensor] = {}
    with torch.no_grad():
        clean = model(**batch, output_hidden_states=True).hidden_states
        record = {layer: (lambda x, key=layer: seen.__setitem__(key, x)) for layer in ("embed", 0)}
        with splice(model, record):
            model(**batch)
        torch.testing.assert_close(seen["embed"], clean[0])
        torch.testing.assert_close(seen[0], clean[1])
        with splice(model, {0: lambda x: 2 * x}), splice(model, {0: lambda x: seen.__setitem__(0, x)}):
            doubled = model(**batch).logits
        torch.testing.assert_close(seen[0], 2 * clean[1])  # later hooks see the replaced residual
        clean_logits = model(**batch).logits  # hooks removed on exit
    assert not torch.allclose(doubled, clean_logits)
    torch.testing.assert_close(model(**batch).logits, clean_logits)
    assert cmap.residual_site(-1) == cmap.residual_site("embed")
    with pytest.raises(ConfigError, match="valid layers"):
        cmap.residual_site(cmap.num_layers)
