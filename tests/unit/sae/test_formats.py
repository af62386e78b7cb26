"""Both public SAE layouts: hand-made files with known weights load to hand-computed latents and
reconstructions, conversions round-trip exactly, and malformed files are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from debiaslit.errors import DataFormatError
from debiaslit.sae import formats
from debiaslit.sae.formats import (
    load_sae,
    read_dictionary_learning,
    read_saelens,
    residual_layer,
    saelens_hook_name,
    write_dictionary_learning,
    write_saelens,
)

T = torch.tensor
X = T([[4.0, 3.0], [0.0, 1.0]])
# d = 2, F = 3; decoder rows (2, 0), (0, 1), (1, 0) have norms 2, 1, 1.
W_ENC = T([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])  # [d, F]
B_ENC = T([0.0, -1.0, -2.0])
W_DEC = T([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # [F, d]
B_DEC = T([1.0, 1.0])


def _autoencoder_state() -> dict[str, torch.Tensor]:
    return {"bias": B_DEC, "encoder.weight": W_ENC.t(), "encoder.bias": B_ENC, "decoder.weight": W_DEC.t()}


def _save_ae(folder: Path, state: dict, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "ae.pt")
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def _save_saelens(folder: Path, cfg: dict, tensors: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae_weights.safetensors"))
    return folder


SAELENS_TENSORS = {"W_enc": W_ENC, "b_enc": B_ENC, "W_dec": W_DEC, "b_dec": B_DEC}


@pytest.mark.parametrize(
    "config", [None, {"trainer": {"dict_class": "AutoEncoder", "submodule_name": "resid_3"}}]
)
def test_autoencoder_by_hand(tmp_path, config):
    sae = load_sae(_save_ae(tmp_path / "ae", _autoencoder_state(), config))
    assert (sae.activation, sae.apply_b_dec_to_input, sae.decoder_normalized) == ("relu", True, False)
    # ReLU(encoder.weight (x − bias) + encoder.bias): x − bias = (3, 2), (−1, 0)
    torch.testing.assert_close(sae.encode(X), T([[3.0, 1.0, 3.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(sae.decode(sae.encode(X)), T([[10.0, 2.0], [1.0, 1.0]]))
    assert sae.site == (None if config is None else "resid_3")
    normalized = load_sae(tmp_path / "ae", normalize_decoder=True)
    torch.testing.assert_close(normalized.encode(X), T([[6.0, 1.0, 3.0], [0.0, 0.0, 0.0]]))  # × row norms
    assert normalized.decoder_normalized


def test_saelens_without_pre_bias_and_conversion_by_hand(tmp_path):
    cfg = {
        "architecture": "standard",
        "d_in": 2,
        "d_sae": 3,
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "metadata": {"hook_name": "blocks.2.hook_resid_post"},
    }
    sae = load_sae(_save_saelens(tmp_path / "lens", cfg, SAELENS_TENSORS))
    # ReLU(x W_enc + b_enc): (4, 2, 5), (0, 0, −1)
    torch.testing.assert_close(sae.encode(X), T([[4.0, 2.0, 5.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(sae.decode(sae.encode(X)), T([[14.0, 3.0], [1.0, 1.0]]))
    assert residual_layer(sae.site) == 2
    write_dictionary_learning(sae, tmp_path / "dl")
    state = torch.load(tmp_path / "dl" / "ae.pt", weights_only=True)
    # encoder.bias = b_enc + W_encᵀ b_dec = (0, −1, −2) + (1, 1, 2)
    assert torch.equal(state["encoder.bias"], T([1.0, 0.0, 0.0]))
    again = read_dictionary_learning(tmp_path / "dl")
    torch.testing.assert_close(again.encode(X), sae.encode(X))
    assert again.site == sae.site


@pytest.mark.parametrize("dict_class", ["AutoEncoder", "AutoEncoderTopK"])
def test_round_trip_ae_to_saelens_to_ae_is_exact(tmp_path, dict_class):
    g = torch.Generator().manual_seed(0)
    d, F = 6, 10
    state = {"encoder.weight": torch.randn(F, d, generator=g), "encoder.bias": torch.randn(F, generator=g),
             "decoder.weight": torch.randn(d, F, generator=g)}  # fmt: skip
    if dict_class == "AutoEncoder":
        state["bias"] = torch.randn(d, generator=g)
    else:
        state |= {"b_dec": torch.randn(d, generator=g), "k": T(3, dtype=torch.int), "threshold": T(-1.0)}
    sae = read_dictionary_learning(_save_ae(tmp_path / "a", state))
    write_saelens(sae, tmp_path / "lens")
    write_dictionary_learning(read_saelens(tmp_path / "lens"), tmp_path / "b")
    back = torch.load(tmp_path / "b" / "ae.pt", weights_only=True)
    assert set(back) == set(state)
    for key in state:
        assert torch.equal(back[key], state[key]), key
    assert json.loads((tmp_path / "b" / "config.json").read_text())["trainer"]["dict_class"] == dict_class
    if dict_class == "AutoEncoderTopK":
        assert ((sae.encode(torch.randn(5, d, generator=g)) != 0).sum(-1) <= 3).all()


def test_jumprelu_by_hand_and_round_trip(tmp_path):
    threshold = T([2.5, 0.5, 6.0])
    state = {"W_enc": W_ENC, "b_enc": B_ENC, "W_dec": W_DEC, "b_dec": B_DEC, "threshold": threshold}
    sae = load_sae(_save_ae(tmp_path / "jr", state).joinpath("ae.pt"))  # the file itself, no config.json
    assert (sae.activation, sae.apply_b_dec_to_input, sae.decoder_normalized) == ("jumprelu", False, True)
    # dictionary_learning: pre = x W_enc + b_enc = (4, 2, 5); jump at (2.5, 0.5, 6) -> (4, 2, 0);
    # latents × decoder row norms (2, 1, 1) -> (8, 2, 0); decode (f / norms) W_dec + b_dec = (9, 3)
    torch.testing.assert_close(sae.encode(X[:1]), T([[8.0, 2.0, 0.0]]))
    torch.testing.assert_close(sae.decode(sae.encode(X[:1])), T([[9.0, 3.0]]))
    write_saelens(sae, tmp_path / "lens")
    lens = read_saelens(tmp_path / "lens")
    x = torch.randn(32, 2) * 4
    write_dictionary_learning(lens, tmp_path / "dl")
    for other in (lens, read_dictionary_learning(tmp_path / "dl")):
        torch.testing.assert_close(other.encode(x), sae.encode(x))
        torch.testing.assert_close(other.decode(other.encode(x)), sae.decode(sae.encode(x)))


def test_saelens_pre6_topk_and_v6_round_trip(tmp_path):
    cfg = {
        "d_in": 2,
        "d_sae": 3,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 1},
        "hook_point": "blocks.0.hook_resid_pre",
        "apply_b_dec_to_input": True,
        "sae_lens_version": "3.5.0",
    }
    sae = read_saelens(_save_saelens(tmp_path / "old", cfg, SAELENS_TENSORS))
    assert (sae.activation, sae.k, residual_layer(sae.site)) == ("topk", 1, -1)
    # x − b_dec = (3, 2): pre (3, 1, 3); the tie goes to the lower index
    torch.testing.assert_close(sae.encode(X[:1]), T([[3.0, 0.0, 0.0]]))
    write_saelens(sae, tmp_path / "new", metadata={"model_name": "tiny"})
    written = json.loads((tmp_path / "new" / "cfg.json").read_text())
    assert (written["architecture"], written["k"], written["metadata"]["model_name"]) == ("topk", 1, "tiny")
    again = read_saelens(tmp_path / "new")
    assert again.settings() == sae.settings()
    for key, value in sae.tensors().items():
        assert torch.equal(again.tensors()[key], value)


def test_hook_names():
    assert [saelens_hook_name(layer) for layer in (-1, 0, 4)] == [
        "blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.4.hook_resid_post"
    ]  # fmt: skip
    assert residual_layer("blocks.3.hook_resid_pre") == 2
    assert residual_layer("blocks.3.hook_mlp_out") is None


class _NotATensor:
    pass


def _bad_ae(folder: Path, change) -> Path:
    state = _autoencoder_state()
    change(state)
    return _save_ae(folder, state)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.__setitem__("encoder.bias", torch.zeros(4)), "key 'encoder.bias' has shape \\[4\\]"),
        (lambda s: s.__setitem__("decoder.weight", torch.zeros(3, 2)), "key 'decoder.weight' has shape"),
        (lambda s: s.pop("encoder.bias"), "missing key 'encoder.bias'"),
        (
            lambda s: s.__setitem__("encoder.weight", torch.zeros(6)),
            "key 'encoder.weight' has shape \\[6\\], expected a matrix",
        ),
        (lambda s: s.__setitem__("extra", torch.zeros(1)), "unexpected key 'extra'"),
        (lambda s: s.__setitem__("state_dict", {"a": torch.zeros(1)}), "key 'state_dict' holds a dict"),
        (lambda s: s.__setitem__("obj", _NotATensor()), "refused to unpickle"),
    ],
)
def test_malformed_ae_pt_names_file_and_key(tmp_path, change, match):
    folder = _bad_ae(tmp_path / "bad", change)
    with pytest.raises(DataFormatError, match=match) as err:
        load_sae(folder)
    assert str(folder / "ae.pt") in str(err.value)


def test_other_bad_dictionary_learning_files(tmp_path):
    (tmp_path / "list").mkdir()
    torch.save([torch.zeros(2)], tmp_path / "list" / "ae.pt")
    with pytest.raises(DataFormatError, match="expected a state dict"):
        load_sae(tmp_path / "list")
    (tmp_path / "trunc").mkdir()
    (tmp_path / "trunc" / "ae.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataFormatError, match="not a readable torch file"):
        load_sae(tmp_path / "trunc")
    gated = {**_autoencoder_state(), "r_mag": torch.zeros(3)}
    with pytest.raises(DataFormatError, match="GatedAutoEncoder is not supported"):
        load_sae(_save_ae(tmp_path / "gated", gated))
    folder = _save_ae(tmp_path / "cls", _autoencoder_state(), {"trainer": {"dict_class": "BatchTopKSAE"}})
    with pytest.raises(DataFormatError, match=r"config.json: key 'trainer.dict_class' is 'BatchTopKSAE'"):
        load_sae(folder)
    with pytest.raises(DataFormatError, match="neither a SAELens folder"):
        load_sae(tmp_path)


@pytest.mark.parametrize(
    "cfg_change, tensors_change, match",
    [
        ({"architecture": "gated"}, None, "key 'architecture' is 'gated'"),
        ({"d_in": None}, None, "key 'd_in' must be a positive integer"),
        ({"normalize_activations": "expected_average_only_in"}, None, "key 'normalize_activations'"),
        ({"architecture": "topk"}, None, "key 'k' must be an integer"),
        ({"d_sae": 4}, None, "d_sae=4"),
        ({"architecture": "jumprelu"}, None, "missing key 'threshold'"),
        ({}, {"b_dec": torch.zeros(3)}, "key 'b_dec' has shape \\[3\\]"),
    ],
)
def test_malformed_saelens_names_file_and_key(tmp_path, cfg_change, tensors_change, match):
    cfg = {"architecture": "standard", "d_in": 2, "d_sae": 3} | cfg_change
    folder = _save_saelens(tmp_path / "bad", cfg, SAELENS_TENSORS | (tensors_change or {}))
    with pytest.raises(DataFormatError, match=match) as err:
        load_sae(folder)
    assert str(folder) in str(err.value)


def test_saelens_bad_json_and_missing_weights(tmp_path):
    folder = tmp_path / "lens"
    folder.mkdir()
    (folder / "cfg.json").write_text('{"d_in": 2,\n "d_sae": }')
    with pytest.raises(DataFormatError, match=f"{formats.SAELENS_WEIGHTS}: no such file"):
        load_sae(folder)
    save_file({"W_enc": W_ENC}, str(folder / "sae_weights.safetensors"))
    with pytest.raises(DataFormatError, match="cfg.json: not valid JSON \\(line 2"):
        load_sae(folder)
