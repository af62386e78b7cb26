"""One LightningModule per method, all derived from ``DebiasModule``."""

from debiaslit.models.base import DebiasModule
from debiaslit.models.erm import ERM

__all__ = ["DebiasModule", "ERM"]
