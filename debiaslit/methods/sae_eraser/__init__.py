"""SAE concept eraser (METHODS.md §6.4): learned gates over SAE latents at residual sites, the SAE error
term kept; its export and the hooks that reapply it to a plain transformers model."""

from debiaslit.methods.sae_eraser.eraser import ResidualEraser
from debiaslit.methods.sae_eraser.export import apply_erasure, read_erased, save_erased
from debiaslit.methods.sae_eraser.module import SAEEraserMethod

__all__ = ["ResidualEraser", "SAEEraserMethod", "apply_erasure", "read_erased", "save_erased"]
