"""The one in-memory SAE every reader, writer, trainer and eraser shares (METHODS.md §6.5).

Parameters follow SAELens' orientation (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``) so that
``f = act((x − b_dec·[apply_b_dec_to_input]) @ W_enc + b_enc)`` and ``x̂ = f @ W_dec + b_dec``; the
file formats in :mod:`debiaslit.sae.formats` convert to and from it exactly.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from debiaslit.errors import ConfigError

Activation = Literal["relu", "topk", "jumprelu"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


class SparseAutoencoder(nn.Module):
    """A ReLU, TopK or JumpReLU sparse autoencoder over ``d_in``-dimensional activations.

    * ``relu``: ``f = ReLU(pre)``;
    * ``topk``: the ``k`` largest pre-activations, then ReLU, the rest 0 (SAELens / dictionary_learning);
    * ``jumprelu``: ``f = ReLU(pre)·[pre > threshold]`` (``threshold`` is a per-latent buffer).

    ``decoder_normalized`` records whether the decoder rows were rescaled to unit norm (which scales
    latent magnitudes, and so thresholds and penalties on ``f``); ``site`` names where the SAE reads
    (a SAELens hook name such as ``blocks.3.hook_resid_post``), or None.
    """

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        activation: Activation = "relu",
        k: int | None = None,
        apply_b_dec_to_input: bool = True,
        decoder_normalized: bool = False,
        site: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"SAE activation {activation!r} unknown; valid: {', '.join(ACTIVATIONS)}")
        if d_in < 1 or d_sae < 1:
            raise ConfigError(f"SAE sizes must be positive, got d_in={d_in}, d_sae={d_sae}")
        if activation == "topk" and not (isinstance(k, int) and 0 < k <= d_sae):
            raise ConfigError(f"a topk SAE needs an integer k in 1..{d_sae} (d_sae), got k={k!r}")
        if activation != "topk" and k is not None:
            raise ConfigError(f"k is only used by topk SAEs, not {activation!r}")
        self.d_in, self.d_sae, self.activation, self.k = d_in, d_sae, activation, k
        self.apply_b_dec_to_input, self.decoder_normalized, self.site = (
            apply_b_dec_to_input,
            decoder_normalized,
            site,
        )
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        if activation == "jumprelu":
            self.register_buffer("threshold", torch.zeros(d_sae))

    # ---- forward -------------------------------------------------------------------------------
    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations ``[..., d_sae]``."""
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """Post-activation latents from pre-activations."""
        if self.activation == "relu":
            return torch.relu(pre)
        if self.activation == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents ``f`` ``[..., d_sae]`` (post-activation)."""
        return self.activate(self.pre_activation(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``x̂ = f @ W_dec + b_dec``."""
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x̂, f)``."""
        f = self.encode(x)
        return self.decode(f), f

    # ---- weights -------------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """The SAELens tensor set (``W_enc, b_enc, W_dec, b_dec`` [+ ``threshold``]), detached."""
        names = ["W_enc", "b_enc", "W_dec", "b_dec"]
        if self.activation == "jumprelu":
            names.append("threshold")
        return {name: getattr(self, name).detach() for name in names}

    def settings(self) -> dict[str, object]:
        """Constructor arguments (everything but the tensors)."""
        return {
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "activation": self.activation,
            "k": self.k,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "decoder_normalized": self.decoder_normalized,
            "site": self.site,
        }

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> SparseAutoencoder:
        """Training init: unit-norm random decoder rows, tied encoder ``W_enc = W_decᵀ``, zero biases."""
        w = torch.randn(self.d_sae, self.d_in, generator=generator)
        self.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        self.W_enc.copy_(self.W_dec.t())
        self.b_enc.zero_()
        self.b_dec.zero_()
        self.decoder_normalized = True
        return self

    @torch.no_grad()
    def normalize_decoder_(self) -> SparseAutoencoder:
        """Rescale decoder rows to unit norm, folding each norm ``n_j`` into encoder column ``j``,
        ``b_enc[j]`` (and ``threshold[j]``): ``x̂`` is unchanged, latent ``j`` is multiplied by ``n_j``.

        Not for topk (which latents win the top-k would change); rows of norm 0 are left as they are.
        """
        if self.activation == "topk":
            raise ConfigError("normalizing the decoder of a topk SAE changes which latents are active")
        norms = self.W_dec.norm(dim=1)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms)
        self.b_enc.mul_(norms)
        if self.activation == "jumprelu":
            self.threshold.mul_(norms)
        self.decoder_normalized = True
        return self

    def extra_repr(self) -> str:
        k = f", k={self.k}" if self.k is not None else ""
        return f"d_in={self.d_in}, d_sae={self.d_sae}, activation={self.activation}{k}, site={self.site}"
