"""Sparse autoencoders: the shared model, fidelity statistics, file formats and the residual splice."""

from .autoencoder import ACTIVATIONS, SparseAutoencoder
from .splice import splice

__all__ = ["ACTIVATIONS", "SparseAutoencoder", "splice"]
