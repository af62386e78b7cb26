"""NLIDataModule: sources, label spaces, HANS groups, samplers and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler

from debiaslit.data.collate import PadCollator
from debiaslit.data.encoded import EncodedNLI
from debiaslit.data.samplers import LengthGroupedSampler
from debiaslit.data.schema import NLIExample
from debiaslit.data.sources import HansGenerated, NLIFile, ShortcutSynthetic
from debiaslit.datamodules import NLIDataModule
from debiaslit.errors import ConfigError, DataFormatError
from debiaslit.metrics import GroupAccuracy
from tests.conftest import shared_path


def _dm(**kwargs) -> NLIDataModule:
    kwargs.setdefault("tokenizer", "tiny-bert")
    dm = NLIDataModule(**kwargs)
    dm.setup("fit")
    return dm


def test_heldout_split_and_eval_sets() -> None:
    dm = _dm(
        train=ShortcutSynthetic(n=100),
        heldout_fraction=0.2,
        heldout_name="in_dist",
        eval_sets={"hans_like": HansGenerated(n=2)},
    )
    assert dm.eval_names == ["in_dist", "hans_like"]
    assert len(dm.train_set) == 80 and len(dm.eval_datasets["in_dist"]) == 20
    train_ids = {e.uid for e in dm.train_set.examples}
    assert not train_ids & {e.uid for e in dm.eval_datasets["in_dist"].examples}
    hans = dm.eval_datasets["hans_like"]
    assert hans.is_hans and not dm.eval_datasets["in_dist"].is_hans
    # group id = heuristic x label, checked against the example fields one by one
    for i, ex in enumerate(hans.examples):
        assert hans.group_names[hans.groups[i]] == f"{ex.heuristic}/{ex.label}"
        assert hans.labels[i] == (0 if ex.label == "entailment" else 1)
    assert len(hans.group_names) == 6 and len(hans.subgroup_names) == 30


def test_mnli_dev_file_with_limit_is_seeded_and_label_mapped() -> None:
    path = str(shared_path("mnli", "mnli_development_set_number_of_correct_responses.txt"))
    a = NLIFile(path=path, limit=500, seed=1).load("mnli")
    b = NLIFile(path=path, limit=500, seed=1).load("mnli")
    c = NLIFile(path=path, limit=500, seed=2).load("mnli")
    assert [e.uid for e in a] == [e.uid for e in b] != [e.uid for e in c]
    assert len(a) == 500 and {e.label for e in a} == {"entailment", "neutral", "contradiction"}


def test_collator_pads_and_keeps_fields() -> None:
    ds = EncodedNLI("x", ShortcutSynthetic(n=6).load("x"), _dm_tok(), 32)
    batch = PadCollator(pad_token_id=0)([ds[i] for i in range(4)])
    lengths = [len(ds[i]["input_ids"]) for i in range(4)]
    assert batch["input_ids"].shape == (4, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["index"].tolist() == [0, 1, 2, 3]


def _dm_tok():
    from debiaslit.backbones import load_tokenizer

    return load_tokenizer("tiny-bert")


def test_unrepeated_eval_sampler_covers_each_example_once() -> None:
    n = 63
    seen = []
    for rank in range(2):
        seen += list(UnrepeatedDistributedSampler(range(n), num_replicas=2, rank=rank, shuffle=False))
    assert sorted(seen) == list(range(n))


def test_train_sampler_global_batches_match_across_process_counts() -> None:
    data, batch = list(range(32)), 4
    single = list(DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=5))
    ranks = [list(DistributedSampler(data, num_replicas=2, rank=r, shuffle=True, seed=5)) for r in range(2)]
    for step in range(len(data) // (2 * batch)):
        global_single = set(single[2 * batch * step : 2 * batch * (step + 1)])
        global_ddp = set(ranks[0][batch * step : batch * (step + 1)]) | set(
            ranks[1][batch * step : batch * (step + 1)]
        )
        assert global_single == global_ddp


def test_group_accuracy_matches_naive_loop_and_sparse_groups() -> None:
    g = torch.Generator().manual_seed(0)
    preds, target = torch.randint(0, 2, (50,), generator=g), torch.randint(0, 2, (50,), generator=g)
    groups = torch.randint(0, 6, (50,), generator=g)
    metric = GroupAccuracy(6)
    metric.update(preds[:20], target[:20], groups[:20])
    metric.update(preds[20:], target[20:], groups[20:])
    out = metric.compute()
    for k in range(6):
        sel = groups == k
        assert out["total"][k] == sel.sum()
        assert out["correct"][k] == (preds[sel] == target[sel]).sum()
    # torchmetrics 1.9's group classes compress ids: a batch with only group 1 must land in group 1
    metric = GroupAccuracy(2)
    metric.update(torch.tensor([1, 1]), torch.tensor([1, 1]), torch.tensor([1, 1]))
    assert metric.compute()["correct"].tolist() == [0, 2]
    assert torch.isnan(metric.compute()["accuracy"][0])


def test_bad_options_name_the_option() -> None:
    with pytest.raises(ConfigError, match="heldout_fraction"):
        NLIDataModule(train=ShortcutSynthetic(), heldout_fraction=1.5)
    with pytest.raises(ConfigError, match="limit must be >= 1"):
        ShortcutSynthetic(n=4, limit=0).load("train")
    with pytest.raises(ConfigError, match="give a `train` source"):
        NLIDataModule()
    with pytest.raises(ConfigError, match="clashes"):
        NLIDataModule(train=ShortcutSynthetic(), heldout_fraction=0.1, heldout_name="a",
                      eval_sets={"a": HansGenerated()})  # fmt: skip


def test_heldout_split_too_small_names_heldout_fraction() -> None:
    with pytest.raises(ConfigError) as err:
        _dm(train=ShortcutSynthetic(n=20), heldout_fraction=0.01)
    message = str(err.value)
    assert "data.heldout_fraction=0.01 of 20 examples" in message and "val_fraction" not in message


ALL_CLASSES = """
train: {class_path: ShortcutSynthetic, init_args: {n: 30, shortcut_rate: 0.8, seed: 2}}
eval_sets:
  a: {class_path: HansGenerated, init_args: {n: 1}}
  b: {class_path: NLIFile, init_args: {path: x.tsv, format: glue_tsv, limit: 5}}
  c: {class_path: TableNLI, init_args: {path: x.tsv, header: false, label_map: {0: entailment}}}
  d: {class_path: HubNLI, init_args: {path: nyu-mll/glue, split: validation_matched}}
  e: {class_path: HansFile, init_args: {path: hans.txt}}
bias: {class_path: HansFeaturesBias, init_args: {folds: 3}}
teacher: {class_path: %s, init_args: {path: run.ckpt}}
"""


@pytest.mark.parametrize("bias", ["CheckpointBias", "ProbsFileBias"])
def test_short_class_names_resolve_for_every_source_and_bias_model(bias: str, tmp_path: Path) -> None:
    """The CLI imports debiaslit.datamodules; that alone must make every short class name resolvable."""
    from jsonargparse import ArgumentParser

    import debiaslit.bias as bias_models
    import debiaslit.data as sources

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(NLIDataModule, "data")
    config = tmp_path / "data.yaml"
    config.write_text(ALL_CLASSES % bias)
    data = parser.instantiate_classes(parser.parse_args([f"--data={config}"])).data
    assert type(data.train_source) is sources.ShortcutSynthetic and data.train_source.shortcut_rate == 0.8
    assert [type(s).__name__ for s in data.eval_sources.values()] == [
        "HansGenerated", "NLIFile", "TableNLI", "HubNLI", "HansFile"
    ]  # fmt: skip
    assert data.eval_sources["c"].label_map == {0: "entailment"} and data.eval_sources["b"].limit == 5
    assert type(data.model_specs["bias"]) is bias_models.HansFeaturesBias
    assert type(data.model_specs["teacher"]).__name__ == bias
    for name in ("HypothesisOnlyBias", "FinetunedBias"):
        cfg = parser.parse_args([f"--data={config}", f"--data.bias={name}", "--data.bias.epochs=1"])
        assert type(parser.instantiate_classes(cfg).data.model_specs["bias"]).__name__ == name
    with pytest.raises(Exception, match="NoSuchSource"):
        parser.parse_args([f"--data={config}", "--data.train=NoSuchSource"])


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="nope.tsv"):
        NLIFile(path=str(tmp_path / "nope.tsv")).load("train")


def test_split_emptied_by_a_filter_says_which(tmp_path: Path) -> None:
    path = tmp_path / "snli.jsonl"
    path.write_text('{"sentence1": "A b.", "sentence2": "A.", "gold_label": "-", "pairID": "1"}\n')
    with pytest.raises(DataFormatError, match="gold_label '-'"):
        NLIFile(path=str(path)).load("train")


def test_hans_data_cannot_train_and_unknown_labels_are_named() -> None:
    with pytest.raises(ConfigError, match="cannot train"):
        _dm(train=HansGenerated(n=1))
    bad = [NLIExample("u:1", "p", "h", "non-entailment"), NLIExample("u:2", "p", "h", "neutral")]
    with pytest.raises(DataFormatError, match="neutral"):
        EncodedNLI("mixed", bad, _dm_tok(), 16)


def test_length_grouped_sampler_batches_match_across_process_counts_and_pad_less() -> None:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 200, (203,), generator=g).tolist()
    data, batch = list(range(len(lengths))), 4

    def sampler(world: int, rank: int, epoch: int) -> list[int]:  # 1 process at 2B, 2 at B
        size = batch * 2 // world
        s = LengthGroupedSampler(data, lengths, size, num_replicas=world, rank=rank, seed=3, group=5)
        s.set_epoch(epoch)
        return list(s)

    single = [sampler(1, 0, 0)]
    ddp = [sampler(2, r, 0) for r in range(2)]
    assert sorted(single[0]) == data  # every pair once per epoch
    steps = len(data) // (2 * batch)
    for step in range(steps):
        one = single[0][2 * batch * step : 2 * batch * (step + 1)]
        two = ddp[0][batch * step : batch * (step + 1)] + ddp[1][batch * step : batch * (step + 1)]
        assert sorted(one) == sorted(two)

    # padded tokens per global batch: well below a plain shuffle's
    def padded(order: list[int], size: int) -> int:
        return sum(
            max(lengths[i] for i in order[s : s + size]) * len(order[s : s + size])
            for s in range(0, len(order), size)
        )

    plain = list(DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3))
    assert padded(single[0], 2 * batch) < 0.8 * padded(plain, 2 * batch)
    assert sampler(1, 0, 1) != single[0] and sorted(sampler(1, 0, 1)) == data  # reshuffled per epoch


def test_group_by_length_reaches_the_training_loader() -> None:
    dm = NLIDataModule(
        train=ShortcutSynthetic(n=40), tokenizer="tiny-bert", batch_size=8, group_by_length=True
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, LengthGroupedSampler)
    assert loader.sampler.lengths == [len(x) for x in dm.train_set.encodings["input_ids"]]
    seen = [i for b in loader for i in b["index"].tolist()]
    assert sorted(seen) == list(range(len(dm.train_set)))
