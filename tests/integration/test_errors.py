"""Bad input on the command line: exit code != 0, the culprit named at the top, no traceback, no
parser dump, and nothing left behind in the working directory.

Each case is (id, arguments after ``debiaslit fit``, a substring that names the culprit, files to create
first). Extend CASES to cover more inputs. Every case runs the console script's ``main()`` in its own
process, forked from this warm interpreter (own working directory, exit code, stdout and stderr file
descriptors): a fresh interpreter per case costs ~9 s of imports on 2 cores, a fork well under one.
One test runs the real ``python -m debiaslit`` in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from debiaslit.cli.errors import TRACEBACK_ENV
from tests.conftest import REPO_ROOT
from tests.forked_main import assert_clean_failure

ERM = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")
MASK = str(REPO_ROOT / "tests" / "configs" / "tiny_mask.yaml")
TRAIN_FILE = ["--data.init_args.train=NLIFile", "--data.init_args.train.path=train.tsv"]
HEADER = "sentence1\tsentence2\tgold_label\n"


class Case(NamedTuple):
    id: str
    args: list[str]
    expected: str
    files: dict[str, str] = {}


CASES = [
    Case("bad-float", ["--config", ERM, "--model.init_args.lr=abc"], "model.lr"),
    Case("bad-int-trainer", ["--config", ERM, "--trainer.max_epochs=x"], "trainer.max_epochs"),
    Case("unknown-trainer-flag", ["--config", ERM, "--trainer.bogus=1"], "--trainer.bogus"),
    Case("bad-trainer-value", ["--config", ERM, "--trainer.devices=0"], "devices"),
    Case("unknown-method", ["--config", ERM, "--model.class_path=NoSuchMethod"], "valid: BackboneModule"),
    Case("unknown-datamodule", ["--config", ERM, "--data.class_path=NoSuchData"], "NLIDataModule"),
    Case("unknown-callback", ["--config", ERM, "--trainer.callbacks+=NoSuchCb"], "NIECallback"),
    Case("unknown-loss", ["--config", ERM, "--model.init_args.loss=NoLoss"], "ProductOfExperts"),
    Case("missing-config", ["--config", "nosuch.yaml"], "nosuch.yaml"),
    Case("missing-data-file", ["--config", ERM, *TRAIN_FILE], "train.tsv"),
    Case(
        "malformed-row",
        ["--config", ERM, *TRAIN_FILE],
        "train.tsv: 1 malformed row(s) of 2",
        {"train.tsv": HEADER + "A man sleeps.\tA man rests.\tentailment\nA dog runs.\tno label\n"},
    ),
    Case(
        "unknown-label",
        ["--config", ERM, *TRAIN_FILE],
        "train.tsv: 1 malformed row(s) of 1",
        {"train.tsv": HEADER + "a\tb\tmaybe\n"},
    ),
    Case(
        "offline-hub-id",
        ["--config", ERM, "--model.init_args.backbone=nosuch-org/nosuch"],
        "nosuch-org/nosuch",
    ),
    Case("missing-init-weights", ["--config", ERM, "--model.init_args.init_weights_from=no.ckpt"], "no.ckpt"),
    Case(
        "unknown-mask-component",
        ["--config", MASK, "--model.init_args.units=AllUnits", "--model.init_args.units.components=[Q,XX]"],
        "'XX'",
    ),
    Case(
        "bad-sparsity",
        ["--config", MASK, "--model.init_args.init=UniformInit", "--model.init_args.init.sparsity=1.5"],
        "init.init_args.sparsity must lie in [0, 1)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_message(case: Case, tmp_path: Path) -> None:
    text = assert_clean_failure(["fit", *case.args], case.expected, case.files, tmp_path)
    assert TRACEBACK_ENV in text


def test_traceback_on_request(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT), **{TRACEBACK_ENV: "1"})
    out = subprocess.run(
        [sys.executable, "-m", "debiaslit", "fit", "--config", ERM, "--model.init_args.dropout=x"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert out.returncode != 0 and "Traceback" in out.stderr and "ArgumentError" in out.stderr


def test_python_api_raises_instead_of_exiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from argparse import ArgumentError

    import debiaslit
    from debiaslit.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentError, match="lr"):
        debiaslit.fit(config=ERM, model__init_args__lr="abc")
    with pytest.raises(ValueError) as info:
        debiaslit.fit(config=ERM, model__init_args__init_weights_from="no.ckpt")
    assert any(isinstance(e, ConfigError) for e in (info.value, info.value.__cause__))
