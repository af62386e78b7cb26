"""An analysis-only module for pretrained language models under ``debiaslit validate``."""

from debiaslit.methods.lm_analysis.module import LMAnalysis

__all__ = ["LMAnalysis"]
