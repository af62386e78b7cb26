"""The ``debiaslit`` command (LightningCLI) and the checkpoint callback it always adds."""

from debiaslit.cli.checkpoint import RunCheckpoint
from debiaslit.cli.main import DebiasCLI, main

__all__ = ["DebiasCLI", "RunCheckpoint", "main"]
