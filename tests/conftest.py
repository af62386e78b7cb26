"""Shared fixtures: offline mode, the shared data bundle (skipped where absent), tmp caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The data bundle sits beside the checkout (../shared/data); DEBIASLIT_SHARED_DATA overrides.
SHARED_DATA = Path(os.environ.get("DEBIASLIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep datasets' Arrow caches out of ~/.cache during tests."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_datasets"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason if it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"shared data file {path} is absent (the offline data bundle is not beside this checkout)"
        )
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data bundle {SHARED_DATA} is absent")
    return SHARED_DATA
