"""Run the console script's ``main()`` in a process forked from the warm test interpreter.

A fresh interpreter per bad-input case costs ~9 s of imports on 2 cores, a fork well under one; the
child gets its own working directory, exit code and stdout / stderr file descriptors.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from debiaslit.cli import main
from debiaslit.cli.errors import TRACEBACK_ENV


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


#: A file to create before a case runs: its text, its bytes, or a function that makes its bytes.
FileContent = str | bytes | Callable[[], bytes]


def assert_clean_failure(
    argv: list[str], expected: str, files: dict[str, FileContent], tmp_path: Path
) -> str:
    """``debiaslit <argv>`` in a fresh working directory holding ``files`` fails cleanly: exit code != 0,
    ``expected`` in the first 5 lines of the error message, no traceback or parser dump, no file added.

    Returns the output."""
    work = tmp_path / "work"
    work.mkdir()
    for name, content in files.items():
        content = content() if callable(content) else content
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = files_under(work)
    code, text = run_main_forked(argv, work)
    assert code != 0, text
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "error: " in line), None)  # after Lightning's INFO
    assert start is not None, text
    assert expected in "\n".join(lines[start : start + 5]), text
    assert "Traceback" not in text and "Namespace(" not in text and "Union subtypes" not in text, text
    assert files_under(work) == before
    return text
