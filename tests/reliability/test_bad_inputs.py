"""Bad inputs a user can give, each answered by one clear error and nothing left behind.

Command-line cases (``CASES``) run ``debiaslit`` via the console script's ``main()`` in a forked child,
each in its own empty working directory holding only the case's files: exit code != 0, the culprit
(file and line, or option) in the first 5 lines, no traceback, no file added. Everything fails before
the first training step. Mask files have no command of their own: users load them with the Python API
(``load_masks`` / ``apply_masks``, docs/masks.md), so those cases (``MASK_CASES``) check the
DebiaslitError that API raises.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from debiaslit.backbones import load_backbone
from debiaslit.bias import SplitProbs, write_probs_file
from debiaslit.errors import DebiaslitError
from debiaslit.methods import MaskMethod
from debiaslit.methods.masks import apply_masks, load_masks
from tests.conftest import REPO_ROOT
from tests.forked_main import FileContent, assert_clean_failure, files_under

CONFIGS = REPO_ROOT / "tests" / "configs"
ERM = ["fit", "--config", str(CONFIGS / "tiny_erm.yaml")]
MASK = ["fit", "--config", str(CONFIGS / "tiny_mask.yaml")]
NIE = [*ERM, "--config", str(CONFIGS / "cma_tiny_nie.yaml")]
REWEIGHT = [*ERM, "--config", str(CONFIGS / "tiny_reweight.yaml")]
HEADER = "sentence1\tsentence2\tgold_label\n"
ROW = "A man sleeps.\tA man rests.\tentailment\n"


def source(kind: str, path: str, *options: str, where: str = "train") -> list[str]:
    """Options making ``data.<where>`` (``train`` or ``eval_sets.<name>``) a ``kind`` source at ``path``."""
    key = f"--data.init_args.{where}"
    return [f"{key}={kind}", f"{key}.path={path}", *(f"{key}.{o}" for o in options)]


class Case(NamedTuple):
    id: str
    argv: list[str]
    expected: str
    files: dict[str, FileContent] = {}


# ------------------------------------------------------------------------------ generated files
def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@functools.cache
def tiny_checkpoint(backbone: str = "tiny-bert") -> bytes:
    """A Lightning-style checkpoint of a tiny ``backbone`` (``model.``-prefixed state dict)."""
    model, _ = load_backbone(backbone, task="sequence-classification", seed=0, num_labels=3)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    return _torch_bytes(
        {"state_dict": state, "epoch": 0, "global_step": 1, "pytorch-lightning_version": "2.6"}
    )


def truncated_checkpoint() -> bytes:
    """The first half of a checkpoint: what a crash while writing it leaves without atomic writes."""
    data = tiny_checkpoint()
    return data[: len(data) // 2]


def pickled_object_checkpoint() -> bytes:
    """A checkpoint that pickles a class (loading it with ``weights_only=False`` would run its code)."""
    return _torch_bytes({"state_dict": {}, "hyper_parameters": {"args": argparse.Namespace(lr=1.0)}})


def probs_file(label_order: tuple[str, ...], n: int = 64) -> Callable[[], bytes]:
    """A ``debiaslit.probs/1`` file for the first ``n`` training ids of tiny_erm's ShortcutSynthetic."""

    def make() -> bytes:
        from debiaslit.data.sources import ShortcutSynthetic

        uids = [e.uid for e in ShortcutSynthetic(n=64, shortcut_rate=0.9).load("train")][:n]
        tmp = Path(f"/tmp/probs-{n}-{'-'.join(label_order)}.json")
        write_probs_file(tmp, {"train": SplitProbs(uids, torch.full((len(uids), 3), 1 / 3))}, label_order)
        return tmp.read_bytes()

    return make


def probs_with_order(order: list[str]) -> str:
    return json.dumps({"format": "debiaslit.probs/1", "label_order": order, "splits": {}})


JSONL_ROW = '{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n'
HANS_HEADER = "gold_label\tsentence1\tsentence2\tpairID\theuristic\n"
BAD_UTF8 = HEADER.encode() + b"caf\xe9\tA man rests.\tentailment\n"

CASES = [
    # ------------------------------------------------------------------ data files
    Case("missing-file", [*ERM, *source("NLIFile", "train.tsv")], "train.tsv: no such file"),
    Case(
        "empty-file",
        [*ERM, *source("NLIFile", "train.tsv")],
        "train.tsv: the file is empty",
        {"train.tsv": ""},
    ),
    Case(
        "wrong-header",
        [*ERM, *source("NLIFile", "train.tsv", "format=glue_tsv")],
        "train.tsv: header ['premise', 'hypothesis', 'label'] lacks sentence1",
        {"train.tsv": "premise\thypothesis\tlabel\na\tb\tentailment\n"},
    ),
    Case(
        "undetectable-format",
        [*ERM, *source("NLIFile", "train.tsv")],
        "train.tsv: cannot tell the NLI format",
        {"train.tsv": "premise\thypothesis\tlabel\na\tb\tentailment\n"},
    ),
    Case(
        "malformed-row-line",
        [*ERM, *source("NLIFile", "train.tsv")],
        "line 3: 2 tab-separated columns, the header has 3",
        {"train.tsv": HEADER + ROW + "A dog runs.\tno label\n" + ROW.replace("sleeps", "naps")},
    ),
    Case(
        "unknown-label",
        [*ERM, *source("NLIFile", "train.tsv")],
        "line 2: unknown label 'maybe'",
        {"train.tsv": HEADER + "a\tb\tmaybe\n"},
    ),
    Case(
        "duplicate-ids",
        [*ERM, *source("NLIFile", "train.tsv")],
        "line 3: duplicate id 'train:p1' (also on line 2)",
        {"train.tsv": "pairID\t" + HEADER + "p1\t" + ROW + "p1\t" + ROW},
    ),
    Case(
        "tsv-quoted-tab",  # a CSV-style quoted field holding a tab: TSVs are read unquoted (MNLI)
        [*ERM, *source("NLIFile", "train.tsv")],
        "line 2: 4 tab-separated columns, the header has 3",
        {"train.tsv": HEADER + '"A man\tsleeps."\tA man rests.\tentailment\n'},
    ),
    Case(
        "csv-unclosed-quote",  # standard CSV quoting: an unclosed quote swallows the rest of the file
        [*ERM, *source("TableNLI", "train.csv")],
        "train.csv: 1 malformed row(s)",
        {"train.csv": 'premise,hypothesis,label\n"a man,b,entailment\nc,d,neutral\n'},
    ),
    Case(
        "bare-carriage-return",
        [*ERM, *source("TableNLI", "train.tsv")],
        "line 2: 1 columns, expected 3",
        {"train.tsv": "premise\thypothesis\tlabel\na\rb\tc\tentailment\n"},
    ),
    Case(
        "bad-jsonl-line",
        [*ERM, *source("NLIFile", "train.jsonl")],
        "line 2: invalid JSON",
        {"train.jsonl": JSONL_ROW + '{"sentence1": "a",\n'},
    ),
    Case(
        "jsonl-missing-field",
        [*ERM, *source("NLIFile", "train.jsonl")],
        "line 1: missing field(s) gold_label",
        {"train.jsonl": '{"sentence1": "a", "sentence2": "b"}\n'},
    ),
    Case(
        "not-utf8",
        [*ERM, *source("NLIFile", "train.tsv")],
        "train.tsv: not UTF-8 text",
        {"train.tsv": BAD_UTF8},
    ),
    Case(
        "hans-missing-column",
        [*ERM, *source("HansFile", "hans.txt", where="eval_sets.hans")],
        "missing columns ['subcase']",
        {"hans.txt": HANS_HEADER + "entailment\ta\tb\t1\tlexical_overlap\n"},
    ),
    Case(
        "headerless-table-too-few-columns",
        [*ERM, *source("TableNLI", "pairs.tsv", "header=false")],
        "line 1: 2 columns, too few for the positions",
        {"pairs.tsv": "A man sleeps.\tentailment\n"},
    ),
    Case(
        "table-label-map-target",
        [*ERM, *source("TableNLI", "train.tsv", "label_map={0: entail}")],
        "label_map maps to ['entail']",
        {"train.tsv": "premise\thypothesis\tlabel\na\tb\t0\n"},
    ),
    Case("source-limit-zero", [*ERM, "--data.init_args.train.limit=0"], "'train': limit must be >= 1"),
    Case("heldout-fraction", [*ERM, "--data.init_args.heldout_fraction=1.5"], "data.heldout_fraction"),
    # ------------------------------------------------------------------ options
    Case(
        "bad-sparsity",
        [*MASK, "--model.init_args.init=UniformInit", "--model.init_args.init.sparsity=-0.1"],
        "init.init_args.sparsity must lie in [0, 1)",
    ),
    Case(
        "bad-target-sparsity",
        [*MASK, "--model.init_args.penalty=Lagrangian", "--model.init_args.penalty.target_sparsity=1.0"],
        "penalty.init_args.target_sparsity must lie in [0, 1)",
    ),
    Case(
        "unknown-component",
        [*MASK, "--model.init_args.units=AllUnits", "--model.init_args.units.components=[Q,QKV]"],
        "'QKV'",
    ),
    Case(
        "bad-layer-index",
        [*MASK, "--model.init_args.units=AllUnits", "--model.init_args.units.layers=[0,7]"],
        "7",
    ),
    Case("negative-lr", [*ERM, "--model.init_args.lr=-0.001"], "model.lr"),
    Case(
        "warmup-ratio", [*ERM, "--model.init_args.warmup_ratio=1.5"], "model.warmup_ratio must lie in [0, 1)"
    ),
    Case("unknown-source-class", [*ERM, "--data.init_args.train=NoSuchSource"], "valid: "),
    Case("unknown-binarizer-class", [*MASK, "--model.init_args.binarizer=Treshold"], "Threshold"),
    Case("unknown-bias-class", [*REWEIGHT, "--data.init_args.bias=HansBias"], "HansFeaturesBias"),
    Case(
        "nie-estimator",
        [*NIE, "--trainer.callbacks.estimator=gradient"],
        "NIECallback.estimator 'gradient' is unknown; valid:",
    ),
    Case("nie-position", [*NIE, "--trainer.callbacks.position=middle"], "position 'middle' is unknown"),
    Case(
        "bad-threshold",
        [*MASK, "--model.init_args.binarizer=SigmoidThreshold", "--model.init_args.binarizer.threshold=1.5"],
        "binarizer.init_args.threshold is a probability",
    ),
    Case("bad-trainer-flag", [*ERM, "--trainer.max_epochs=-5"], "max_epochs"),
    Case("bad-precision", [*ERM, "--trainer.precision=13"], "precision"),
    # ------------------------------------------------------------------ checkpoints
    Case("missing-ckpt-path", [*ERM, "--ckpt_path=checkpoints/tiny/version_0/last.ckpt"], "last.ckpt"),
    Case(
        "truncated-ckpt-resume",
        [*ERM, "--ckpt_path=last.ckpt"],
        "last.ckpt",
        {"last.ckpt": truncated_checkpoint},
    ),
    Case(
        "truncated-init-weights",
        [*ERM, "--model.init_args.init_weights_from=run.ckpt"],
        "run.ckpt",
        {"run.ckpt": truncated_checkpoint},
    ),
    Case(
        "init-weights-pickled-class",
        [*ERM, "--model.init_args.init_weights_from=run.ckpt"],
        "holds objects other than tensors",
        {"run.ckpt": pickled_object_checkpoint},
    ),
    Case(
        "init-weights-other-architecture",
        [*ERM, "--model.init_args.init_weights_from=gpt2.ckpt"],
        "gpt2.ckpt",
        {"gpt2.ckpt": lambda: tiny_checkpoint("tiny-gpt2")},
    ),
    Case(
        "export-truncated-ckpt",
        ["export", "--ckpt_path=last.ckpt", "--output=out"],
        "last.ckpt",
        {"last.ckpt": truncated_checkpoint},
    ),
    Case(
        "export-pickled-class",
        ["export", "--ckpt_path=run.ckpt", "--output=out"],
        "run.ckpt",
        {"run.ckpt": pickled_object_checkpoint},
    ),
    # ------------------------------------------------------------------ bias probabilities files
    Case(
        "probs-label-order",
        [*ERM, "--data.init_args.bias=ProbsFileBias", "--data.init_args.bias.path=p.json"],
        "label_order must name each of",
        {"p.json": probs_with_order(["entailment", "neutral", "neutral"])},
    ),
    Case(
        "probs-missing-ids",
        [*ERM, "--data.init_args.bias=ProbsFileBias", "--data.init_args.bias.path=p.json"],
        "ids do not match the data (4 of 64 data ids missing",
        {"p.json": probs_file(("entailment", "neutral", "contradiction"), n=60)},
    ),
    Case(
        "probs-missing-file",
        [*ERM, "--data.init_args.bias=ProbsFileBias", "--data.init_args.bias.path=p.json"],
        "'p.json' does not exist",
    ),
    Case(
        "max-length-beyond-positions",
        [*ERM, "--data.init_args.max_length=512"],
        "data.max_length=512 exceeds the 128 positions the backbone",
    ),
    # ------------------------------------------------------------------ the Hub, offline
    Case("offline-hub-backbone", [*ERM, "--model.init_args.backbone=org/no-such-model"], "org/no-such-model"),
    Case(
        "offline-hub-dataset",
        [*ERM, "--data.init_args.train=HubNLI", "--data.init_args.train.path=nyu-mll/glue"],
        "nyu-mll/glue",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_error(case: Case, tmp_path: Path) -> None:
    assert_clean_failure(case.argv, case.expected, case.files, tmp_path)


# ------------------------------------------------------------------------------ mask files (Python API)
@pytest.fixture(scope="module")
def mask_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``save_masks`` file of tiny-bert (every Q/K/V/AO/I/O weight of both layers)."""
    return MaskMethod(backbone="tiny-bert").save_masks(tmp_path_factory.mktemp("masks") / "masks.safetensors")


def _rewrite(good: Path, bad: Path, edit: Callable[[dict, dict], None]) -> Path:
    """``good`` after ``edit(tensors, module map)`` changed its tensors and module map in place."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good), framework="pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    modules = json.loads(metadata["modules"])
    edit(tensors, modules)
    save_file(tensors, str(bad), metadata={**metadata, "modules": json.dumps(modules)})
    return bad


def _rename_to_roberta(tensors: dict, modules: dict) -> None:
    for key in list(tensors):
        tensors[key.replace("bert.", "roberta.")] = tensors.pop(key)


def _double_rows(tensors: dict, modules: dict) -> None:
    for info in modules.values():
        info["shape"] = [2 * info["shape"][0], info["shape"][1]]


def _halve_last_module(tensors: dict, modules: dict) -> None:
    """The last module's mask made a consistent 16 x 32 (half the model's rows): only apply_masks sees it."""
    last = next(k for k in reversed(modules) if modules[k]["shape"] == [32, 32])
    modules[last].update(shape=[16, 32], n_out=16)
    tensors[last] = tensors[last][: 16 * 32 // 8].clone()


class MaskCase(NamedTuple):
    id: str
    make: Callable[[Path, Path], Path]  # (good mask file, working directory) -> the file to load
    expected: str
    backbone: str = "tiny-bert"


MASK_CASES = [
    MaskCase("missing", lambda good, work: work / "masks.safetensors", "masks.safetensors does not exist"),
    MaskCase(
        "not-safetensors",
        lambda good, work: _write(work / "masks.safetensors", b"premise\thypothesis\n"),
        "masks.safetensors: not a readable safetensors file",
    ),
    MaskCase(
        "truncated",
        lambda good, work: _write(work / "masks.safetensors", good.read_bytes()[: good.stat().st_size // 2]),
        "masks.safetensors: not a readable safetensors file",
    ),
    MaskCase(
        "no-mask-metadata",
        lambda good, work: _plain_safetensors(work / "masks.safetensors"),
        "masks.safetensors: not a debiaslit mask file",
    ),
    MaskCase(
        "wrong-keys",
        lambda good, work: _rewrite(good, work / "masks.safetensors", _rename_to_roberta),
        "the module map names 'bert.encoder.layer.0.attention.self.query', which has no mask",
    ),
    MaskCase(
        "wrong-bit-count",
        lambda good, work: _rewrite(good, work / "masks.safetensors", _double_rows),
        "do not hold the bits of a [64, 32] mask",
    ),
    MaskCase(
        "shape-of-another-model",
        lambda good, work: _rewrite(good, work / "masks.safetensors", _halve_last_module),
        "has shape (16, 32) (linear); the model's weight is linear with 32 outputs x 32 inputs",
    ),
    MaskCase(
        "another-architecture",
        lambda good, work: good,
        "RobertaForSequenceClassification has no module 'bert.encoder.layer.0",
        backbone="tiny-roberta",
    ),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _plain_safetensors(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"weight": torch.ones(2, 2)}, str(path))
    return path


@pytest.mark.parametrize("case", MASK_CASES, ids=[c.id for c in MASK_CASES])
def test_bad_mask_file_is_refused_and_the_model_left_unmasked(
    case: MaskCase, mask_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = case.make(mask_file, tmp_path)
    path = path.relative_to(tmp_path) if path.is_relative_to(tmp_path) else path  # as a user would type it
    before = files_under(tmp_path)
    model, _ = load_backbone(case.backbone, task="sequence-classification", seed=0, num_labels=3)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DebiaslitError) as info:
        apply_masks(model, load_masks(path))
    assert case.expected in str(info.value)
    assert model.state_dict().keys() == weights.keys(), "a mask was put on before the mismatch was found"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert files_under(tmp_path) == before
