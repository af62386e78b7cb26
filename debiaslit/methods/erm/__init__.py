"""Empirical risk minimisation, the baseline every method is compared to."""

from debiaslit.methods.erm.module import ERM

__all__ = ["ERM"]
