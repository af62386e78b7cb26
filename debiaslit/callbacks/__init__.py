"""Lightning callbacks: checkpointing by run name (CMA callbacks live here too)."""

from debiaslit.callbacks.checkpoint import RunCheckpoint

__all__ = ["RunCheckpoint"]
