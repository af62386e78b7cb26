"""Every public module imports on its own in a fresh interpreter (a green suite once hid import cycles
because an earlier test file happened to import ``debiaslit.data`` first), and the layer contracts hold."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "debiaslit"
MODULES = sorted(
    ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if not any(part.startswith("_") and part != "__init__.py" for part in p.relative_to(PACKAGE).parts)
)


def test_the_module_list_covers_the_package() -> None:
    assert "debiaslit.cli" in MODULES and "debiaslit.methods.masks.module" in MODULES
    assert len(MODULES) > 60


#: Run in a subprocess: heavy third-party libraries are imported once, then each module is imported in
#: a forked child whose ``sys.modules`` holds no debiaslit module, i.e. in a fresh interpreter state for
#: this package (import order and cycles inside debiaslit are what this checks) at milliseconds per module.
FORKED_IMPORTS = """
import importlib, os, sys, traceback
import torch, lightning.pytorch, transformers, jsonargparse, torchmetrics, matplotlib  # noqa: F401
assert not [m for m in sys.modules if m.split(".")[0] == "debiaslit"]
failed = []
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().strip().splitlines()[-1].encode())
            code = 1
        os._exit(code)
    os.close(write)
    message = os.read(read, 4096).decode()
    os.close(read)
    if os.waitpid(pid, 0)[1]:
        failed.append(f"{name}: {message}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FORKED_IMPORTS, *MODULES],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip
    assert out.returncode == 0, f"modules that fail to import alone:\n{out.stdout}{out.stderr[-2000:]}"


def test_the_package_imports_in_a_truly_new_interpreter() -> None:
    """The fork above shares third-party state; the top-level package and the CLI get real new ones."""
    for name in ("debiaslit", "debiaslit.cli", "debiaslit.cma", "debiaslit.methods"):
        out = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
        assert out.returncode == 0, f"{name}: {out.stderr[-2000:]}"


def test_import_linter_contracts_hold() -> None:
    # import-linter's console script, run by this interpreter (reads .importlinter in the repo root)
    lint = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run(
        [sys.executable, "-c", lint], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "broken" in out.stdout and "0 broken" in out.stdout
