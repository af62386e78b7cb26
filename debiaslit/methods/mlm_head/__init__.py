"""MLMHeadFit: a masked-LM head fitted on a frozen pretrained encoder (the offline LM quickstart model)."""

from debiaslit.methods.mlm_head.module import MLMHeadFit

__all__ = ["MLMHeadFit"]
