"""Lightning DataModules shared by every method: NLI (+ bias-model probabilities), gendered pairs
(Winogender, WinoBias), profession prompts."""

from debiaslit.datamodules.nli import NLIDataModule
from debiaslit.datamodules.prompts import ProfessionPrompts
from debiaslit.datamodules.winobias import WinoBiasDataModule
from debiaslit.datamodules.winogender import WinogenderDataModule

__all__ = ["NLIDataModule", "ProfessionPrompts", "WinoBiasDataModule", "WinogenderDataModule"]
