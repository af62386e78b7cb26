"""Where the offline data bundle lives."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path:
    """The offline data bundle: ``$DEBIASLIT_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("DEBIASLIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
