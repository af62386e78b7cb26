"""Sparse autoencoders: the shared model, fidelity statistics, file formats and the residual splice."""

from .autoencoder import ACTIVATIONS, SparseAutoencoder
from .formats import (
    load_sae,
    read_dictionary_learning,
    read_saelens,
    residual_layer,
    saelens_hook_name,
    write_dictionary_learning,
    write_saelens,
)
from .splice import splice

__all__ = [
    "ACTIVATIONS",
    "SparseAutoencoder",
    "load_sae",
    "read_dictionary_learning",
    "read_saelens",
    "residual_layer",
    "saelens_hook_name",
    "splice",
    "write_dictionary_learning",
    "write_saelens",
]
