"""Shared DataModules, readers and generators (one example schema: ``NLIExample``)."""

from debiaslit.data.nli_datamodule import NLIDataModule, NLISource
from debiaslit.data.prompts import ProfessionPrompts
from debiaslit.data.schema import HANS_HEURISTICS, HANS_LABELS, NLI_LABELS, NLIExample
from debiaslit.data.winogender_datamodule import WinogenderDataModule

__all__ = [
    "HANS_HEURISTICS",
    "HANS_LABELS",
    "NLI_LABELS",
    "NLIDataModule",
    "NLIExample",
    "NLISource",
    "ProfessionPrompts",
    "WinogenderDataModule",
]
