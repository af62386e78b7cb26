"""Every Python code block of README.md and docs/*.md runs, each in a fresh interpreter in an empty
working directory, offline.

A block may be preceded by an HTML comment (invisible on the rendered page) that prepares it::

    <!-- docs-test
    prelude: |
      <python run before the block: builds what the reader already has, e.g. a tiny checkpoint>
    replace:
      - ["configs/quickstart.yaml", "..."]     # shortens a block that would train for minutes
    -->

so that what the page shows is what runs, apart from the replacements listed next to it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test[^\n]*\n(?P<spec>.*?)-->\n+)?```python\n(?P<code>.*?)```", re.S)


def python_blocks() -> list[tuple[str, str, dict]]:
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start("code")].count("\n") + 1
            spec = yaml.safe_load(match.group("spec") or "") or {}
            blocks.append((f"{page.relative_to(REPO_ROOT)}:{line}", match.group("code"), spec))
    return blocks


BLOCKS = python_blocks()


def test_the_pages_have_python_blocks() -> None:
    assert len(BLOCKS) >= 4, [b[0] for b in BLOCKS]


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code", "spec"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_code_block_runs(where: str, code: str, spec: dict, tmp_path: Path) -> None:
    for old, new in spec.get("replace", []):
        assert old in code, f"{where}: replacement target {old!r} is not in the block"
        code = code.replace(old, new)
    # the pages' paths are relative to the repository root, which the prelude and block see as REPO
    script = f"REPO = {str(REPO_ROOT)!r}\n" + spec.get("prelude", "") + "\n" + code
    script = script.replace('"configs/', 'REPO + "/configs/')
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, f"{where} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
