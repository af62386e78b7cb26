"""Professions × templates prompts: slot position, anti-stereotypical direction, unusable words reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from debiaslit.datamodules.prompts import ProfessionPrompts
from debiaslit.errors import ConfigError


def _professions(tmp_path: Path) -> str:
    entries = [
        ["nurse", 0.1, -0.5],
        ["doctor", 0.05, 0.3],
        ["assistant_professor", 0.0, 0.2],
        ["zookeeper", 0.1, 0.4],
    ]
    path = tmp_path / "professions.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_prompts_align_and_report_multi_token_professions(tmp_path: Path) -> None:
    dm = ProfessionPrompts(
        professions=_professions(tmp_path), templates=["The {} said that"], tokenizer="tiny-bert"
    )
    with pytest.warns(UserWarning, match="not a single token"):
        probe = dm.cma_probe()
    tok = dm.tokenizer
    # tiny-bert's vocabulary has "nurse" and "doctor" as words, "zookeeper" only as pieces
    assert probe.summary["unusable_professions"] == ["assistant professor", "zookeeper"]
    assert len(probe) == 2
    he, she = (tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("he", "she"))
    words = {}
    for item, alt in zip(probe.items, probe.counterfactual, strict=True):
        words[tok.convert_ids_to_tokens(item["input_ids"][item["positions"]])] = (
            tok.convert_ids_to_tokens(alt["input_ids"][item["positions"]]),
            item["anti_ids"],
            item["stereo_ids"],
        )
    # female-leaning nurse -> "man", anti = he; male-leaning doctor -> "woman", anti = she
    assert words == {"nurse": ("man", he, she), "doctor": ("woman", she, he)}


def test_masked_lm_target_and_bad_templates(tmp_path: Path) -> None:
    dm = ProfessionPrompts(
        professions=_professions(tmp_path),
        templates=["The {} said that"],
        tokenizer="tiny-bert",
        mask_target=True,
    )
    with pytest.warns(UserWarning):
        probe = dm.cma_probe()
    item = probe.items[0]
    assert item["input_ids"][item["target_positions"]] == dm.tokenizer.mask_token_id
    with pytest.raises(ConfigError, match="exactly one \\{\\} slot"):
        ProfessionPrompts(professions=_professions(tmp_path), templates=["no slot here"])
