"""Readers, generators, the example schema, padding and samplers: everything below the DataModules.

The Lightning DataModules that serve these examples live in :mod:`debiaslit.datamodules`.
"""

from debiaslit.data.schema import HANS_HEURISTICS, HANS_LABELS, NLI_LABELS, NLIExample
from debiaslit.data.sources import (
    HansFile,
    HansGenerated,
    HubNLI,
    NLIFile,
    NLISource,
    ShortcutSynthetic,
    TableNLI,
)

__all__ = [
    "HANS_HEURISTICS",
    "HANS_LABELS",
    "NLI_LABELS",
    "HansFile",
    "HansGenerated",
    "HubNLI",
    "NLIExample",
    "NLIFile",
    "NLISource",
    "ShortcutSynthetic",
    "TableNLI",
]
