"""Bad input on the command line: exit code != 0, the culprit named at the top, no traceback, no
parser dump, and nothing left behind in the working directory.

Each case is (id, arguments after ``debiaslit fit``, a substring that names the culprit, files to create
first). Extend CASES to cover more inputs. Every case runs the console script's ``main()`` in its own
process, forked from this warm interpreter (own working directory, exit code, stdout and stderr file
descriptors): a fresh interpreter per case costs ~9 s of imports on 2 cores, a fork well under one.
One test runs the real ``python -m debiaslit`` in a fresh interpreter.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import pytest

from debiaslit.cli import main
from debiaslit.cli.errors import TRACEBACK_ENV
from tests.conftest import REPO_ROOT

ERM = str(REPO_ROOT / "tests" / "configs" / "tiny_erm.yaml")
MASK = str(REPO_ROOT / "tests" / "configs" / "tiny_mask.yaml")
TRAIN_FILE = ["--data.init_args.train.kind=file", "--data.init_args.train.path=train.tsv"]
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
    Case("unknown-mask-component", ["--config", MASK, "--model.init_args.components=[Q,XX]"], "'XX'"),
    Case("bad-sparsity", ["--config", MASK, "--model.init_args.initial_sparsity=1.5"], "initial_sparsity"),
]


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_main_forked(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """``debiaslit <args>`` via ``main()`` in a forked child; returns (exit code, stderr + stdout)."""
    err_path, out_path = cwd.parent / f"{cwd.name}.stderr", cwd.parent / f"{cwd.name}.stdout"
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.chdir(cwd)
            for fd, path in ((2, err_path), (1, out_path)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            # pytest swapped sys.stdout / sys.stderr (and logging handlers hold them): back to the fds
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
            for handler in (h for lg in loggers for h in getattr(lg, "handlers", [])):
                if type(handler) is logging.StreamHandler:
                    handler.setStream(sys.stderr)
            os.environ.pop(TRACEBACK_ENV, None)
            sys.argv = ["debiaslit", *args]
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"debiaslit {args} ran over {timeout} s")
        time.sleep(0.05)
    return os.waitstatus_to_exitcode(done[1]), err_path.read_text() + out_path.read_text()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_message(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, text in case.files.items():
        (work / name).write_text(text)
    before = files_under(work)
    code, text = run_main_forked(["fit", *case.args], work)
    assert code != 0, text
    assert case.expected in "\n".join(text.splitlines()[:5]), text
    assert "Traceback" not in text and "Namespace(" not in text and "Union subtypes" not in text, text
    assert TRACEBACK_ENV in text
    assert files_under(work) == before


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
