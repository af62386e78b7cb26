"""Metrics as small torchmetrics classes with sum states."""

from debiaslit.metrics.group_accuracy import GroupAccuracy

__all__ = ["GroupAccuracy"]
