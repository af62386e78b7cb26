"""Empirical risk minimisation: fine-tune every weight, the baseline every method is compared to."""

from __future__ import annotations

from debiaslit.methods.base import ClassifierModule


class ERM(ClassifierModule):
    """Fine-tune all backbone weights with ``loss`` (cross-entropy by default).

    With a bias-aware loss (``debiaslit.losses``) this is the classic training-time debiasing setup
    of Clark et al. 2019 / Utama et al. 2020.
    """
