"""Train sparse autoencoders on a frozen backbone's residual stream (the SAE eraser's dictionaries)."""

from debiaslit.methods.sae_training.module import SAES_FOLDER, SAETrainer, site_name

__all__ = ["SAES_FOLDER", "SAETrainer", "site_name"]
