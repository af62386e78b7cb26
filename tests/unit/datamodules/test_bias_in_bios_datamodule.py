"""BiasInBiosDataModule: the batch contract, ambiguous / balanced splits, local files, DDP shards."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from debiaslit.data.bias_in_bios import generate_bios
from debiaslit.datamodules.bias_in_bios import BiasInBiosDataModule
from debiaslit.errors import ConfigError, DataFormatError


def _all(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in ("profession", "gender", "index")}


def test_batch_contract_and_splits():
    dm = BiasInBiosDataModule(n_per_cell=40, batch_size=8, eval_batch_size=16)
    dm.setup()
    assert dm.professions == ["professor", "nurse"]
    batch = next(iter(dm.train_dataloader()))
    assert {"input_ids", "attention_mask", "profession", "gender", "index"} <= set(batch)
    assert all(batch[k].dtype == torch.long for k in ("input_ids", "attention_mask", "profession", "gender"))
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[0] == 8
    for split, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader())):
        seen = _all(loader)
        bios = dm.datasets[split].bios
        for i, p, g in zip(
            seen["index"].tolist(), seen["profession"].tolist(), seen["gender"].tolist(), strict=True
        ):
            assert (dm.professions[p], dm.genders[g]) == (bios[i].profession, bios[i].gender)
        cells = torch.stack([seen["profession"], seen["gender"]], 1).unique(dim=0, return_counts=True)
        if split == "train":  # ambiguous: professor = male (0, 0), nurse = female (1, 1)
            assert cells[0].tolist() == [[0, 0], [1, 1]]
        else:
            assert len(cells[1]) == 4 and len(set(cells[1].tolist())) == 1
    train_ids = {b.uid for b in dm.datasets["train"].bios}
    assert not train_ids & {b.uid for b in dm.datasets["test"].bios}


def test_ddp_shards_cover_eval_once_and_train_global_batches():
    dm = BiasInBiosDataModule(n_per_cell=30, batch_size=4, eval_batch_size=8)
    dm.setup()
    one = _all(dm.val_dataloader())["index"]
    shards = []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shards.append(_all(dm.val_dataloader())["index"])
        dm.trainer = None
    assert sorted(torch.cat(shards).tolist()) == sorted(one.tolist())
    dm_big = BiasInBiosDataModule(n_per_cell=30, batch_size=8)
    dm_big.setup()
    first_global = next(iter(dm_big.train_dataloader()))["index"]
    per_rank = []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        per_rank.append(next(iter(dm.train_dataloader()))["index"])
    assert sorted(torch.cat(per_rank).tolist()) == sorted(first_global.tolist())


def test_local_files_per_split_and_bad_options(tmp_path):
    for i, split in enumerate(("train", "val", "test")):
        rows = [
            {"text": b.text, "profession": b.profession, "gender": b.gender} for b in generate_bios(6, seed=i)
        ]
        (tmp_path / f"bios_{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    dm = BiasInBiosDataModule(source=str(tmp_path / "bios_{split}.jsonl"), train_split="balanced")
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [24, 24, 24]
    with pytest.raises(DataFormatError, match=r"no bios for .*\('teacher', 'male'\)"):
        BiasInBiosDataModule(
            source=str(tmp_path / "bios_{split}.jsonl"), ambiguous={"teacher": "male", "nurse": "female"}
        ).setup()
    with pytest.raises(ConfigError, match="data.ambiguous"):
        BiasInBiosDataModule(ambiguous={"nurse": "woman", "professor": "male"})
    with pytest.raises(ConfigError, match="data.train_split"):
        BiasInBiosDataModule(train_split="skewed")
    with pytest.raises(ConfigError, match="val_fraction"):
        BiasInBiosDataModule(val_fraction=0.6, test_fraction=0.5).setup()
