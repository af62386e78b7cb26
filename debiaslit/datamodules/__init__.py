"""Lightning DataModules shared by every method: NLI (+ bias-model probabilities), gendered pairs
(Winogender, WinoBias) and the LM bias evaluation sets, neutral text, profession prompts."""

from debiaslit.datamodules.gender_bias import GenderBiasData
from debiaslit.datamodules.neutral_text import NeutralText
from debiaslit.datamodules.nli import NLIDataModule
from debiaslit.datamodules.prompts import ProfessionPrompts
from debiaslit.datamodules.winobias import WinoBiasDataModule
from debiaslit.datamodules.winogender import WinogenderDataModule

__all__ = [
    "GenderBiasData",
    "NLIDataModule",
    "NeutralText",
    "ProfessionPrompts",
    "WinoBiasDataModule",
    "WinogenderDataModule",
]
