"""debiaslit: find and remove bias in NLP models, on PyTorch Lightning.

The Python API mirrors the CLI: ``debiaslit.fit(config="configs/quickstart.yaml", trainer__max_epochs=1)``.
"""

from debiaslit.api import fit, predict, run, test, validate

__version__ = "0.1.0"
__all__ = ["fit", "predict", "run", "test", "validate"]
