"""PCGU: partitioned contrastive gradient unlearning for masked and causal LMs (METHODS.md §3)."""

from debiaslit.methods.pcgu.guard import OverCorrectionGuard
from debiaslit.methods.pcgu.module import PCGUMethod
from debiaslit.methods.pcgu.partitions import PartitionGroup, build_partitions
from debiaslit.methods.pcgu.ranking import Selection, masked_update, partition_scores, select_partitions

__all__ = [
    "OverCorrectionGuard",
    "PCGUMethod",
    "PartitionGroup",
    "Selection",
    "build_partitions",
    "masked_update",
    "partition_scores",
    "select_partitions",
]
