"""PCGU: partitioned contrastive gradient unlearning for masked and causal LMs (METHODS.md §3)."""
