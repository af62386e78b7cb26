"""Lightning DataModules shared by every method: NLI (+ bias-model probabilities), Winogender pairs,
profession prompts, Bias in Bios."""

from debiaslit.datamodules.bias_in_bios import BiasInBiosDataModule
from debiaslit.datamodules.nli import NLIDataModule
from debiaslit.datamodules.prompts import ProfessionPrompts
from debiaslit.datamodules.winogender import WinogenderDataModule

__all__ = ["BiasInBiosDataModule", "NLIDataModule", "ProfessionPrompts", "WinogenderDataModule"]
