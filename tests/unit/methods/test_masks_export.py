"""Export: a plain transformers directory with the masks baked in, and masks alone as safetensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.cma.neurons import AllUnits
from debiaslit.errors import ConfigError
from debiaslit.gates import UniformInit
from debiaslit.methods.masks import MaskMethod, apply_masks, load_masks, remove_masks
from debiaslit.methods.masks.export import pack_bits, unpack_bits

IDS = torch.tensor([[5, 17, 23, 42, 8, 9, 11], [7, 30, 2, 19, 44, 3, 6]])


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


@pytest.mark.parametrize("shape", [(3, 5), (8, 1), (1, 1), (7, 9)])
def test_bit_packing_round_trips(shape: tuple[int, int]) -> None:
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-mask.numel() // 8)
    assert torch.equal(unpack_bits(packed, shape), mask)


@pytest.mark.parametrize(("backbone", "mask_classifier"), [("tiny-bert", True), ("tiny-gpt2", False)])
def test_save_pretrained_export_loads_without_debiaslit(
    tmp_path: Path, backbone: str, mask_classifier: bool
) -> None:
    from transformers import AutoModelForSequenceClassification

    module = MaskMethod(
        backbone=backbone, init=UniformInit(0.3), units=AllUnits(include_head=mask_classifier)
    )
    masked_logits = _logits(module.model)
    module.export_pretrained(tmp_path / "plain")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "plain")
    assert not any("parametrizations" in k for k in plain.state_dict())
    torch.testing.assert_close(_logits(plain), masked_logits, rtol=0, atol=1e-6)
    # the module itself still carries its learnable masks
    assert any(p.requires_grad for n, p in module.named_parameters() if n.endswith("scores"))


def test_export_is_usable_on_its_own_tokenizer_and_label_names(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from debiaslit.backbones import load_tokenizer

    MaskMethod(backbone="tiny-bert").export_pretrained(tmp_path / "plain")
    sentence = "the doctor saw the lawyer near the bank."
    exported = AutoTokenizer.from_pretrained(tmp_path / "plain")
    assert exported(sentence)["input_ids"] == load_tokenizer("tiny-bert")(sentence)["input_ids"]
    config = AutoConfig.from_pretrained(tmp_path / "plain")
    assert config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert config.label2id == {"entailment": 0, "neutral": 1, "contradiction": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]  # no temporary folder left behind
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        MaskMethod(backbone="tiny-bert").export_pretrained(tmp_path / "plain")


@pytest.mark.parametrize("granularity", ["weight", "row"])
def test_masks_only_file_reloads_identical_masks_onto_a_fresh_backbone(
    tmp_path: Path, granularity: str
) -> None:
    module = MaskMethod(
        backbone="tiny-gpt2", units=AllUnits(["Q", "I"], granularity=granularity), init=UniformInit(0.3)
    )
    path = module.save_masks(tmp_path / "masks.safetensors")
    n_weights = sum(m.scores.numel() for _, m in module.masked.learned())
    assert path.stat().st_size < n_weights / 8 + 4096  # one bit per mask entry plus the header

    stored = load_masks(path)
    hard = module.masked.hard_masks()
    assert stored.keys() == hard.keys()
    for name, mask in hard.items():
        assert torch.equal(stored[name].mask, mask), name

    fresh, _ = load_backbone("tiny-gpt2", seed=torch.initial_seed())  # the module's random weights
    unmasked = _logits(fresh)
    apply_masks(fresh, stored)
    torch.testing.assert_close(_logits(fresh), _logits(module.model), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="already carries a mask"):
        apply_masks(fresh, stored)
    remove_masks(fresh)
    torch.testing.assert_close(_logits(fresh), unmasked, rtol=0, atol=0)

    other, _ = load_backbone("tiny-bert")
    with pytest.raises(ConfigError, match="has no module"):
        apply_masks(other, stored)
