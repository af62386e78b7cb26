"""The eraser's mechanism on a transformers model: one SAE and one latent gate per residual site, forward
hooks that apply the edit, and a read site whose pooled output every probe sees.

No Lightning here: :class:`~debiaslit.methods.sae_eraser.module.SAEEraserMethod` trains it, and
tests drive it directly. The SAEs are held outside the module tree (``state_dict`` holds only the
gates, not the backbone or the SAEs): a checkpoint does not copy dictionaries of 32k latents per site,
which the run config loads again from their files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from concept_erasure import LeaceEraser
from torch import nn

from debiaslit.backbones.components import ComponentMap
from debiaslit.backbones.pooling import POOLINGS, pool_sequence
from debiaslit.errors import ConfigError
from debiaslit.methods.sae_eraser.edit import SparseCoder, ablation_gate, gated_edit
from debiaslit.methods.sae_eraser.gate import LatentGate

#: What the hooks apply: nothing, the learned gates, the gradient probe of the gates (attribution),
#: a fixed set of removed latents (baselines, exports), or LEACE at the read site.
MODES = ("none", "gates", "attribution", "fixed", "leace")


class _Stop(Exception):
    """Raised by the read hook: layers above the read site are not needed for a probe's features."""


class ResidualEraser(nn.Module):
    """Gated SAE edits at the residual stream after each of ``layers``.

    Args:
        model: A transformers model (any task head); its parameters are frozen here.
        saes: One SAE per site (``encode`` / ``decode`` over the hidden size), in the order of ``layers``.
        layers: Residual sites: the output of these blocks (``-1``: the embedding output); every one
            is edited.
        read_layer: The residual site probes read; at or above the last edited layer
            (``None``: the last edited layer, SHIFT's probe site).
        pooling: How a sequence becomes one vector (``debiaslit.backbones.pooling.POOLINGS``).
        gate: ``sigmoid_temp`` or ``hard_concrete``.
        init_logit: m0 of every gate logit.
    """

    def __init__(
        self,
        model: nn.Module,
        saes: Sequence[SparseCoder],
        layers: Sequence[int],
        read_layer: int | None = None,
        pooling: str = "mean",
        gate: str = "sigmoid_temp",
        init_logit: float = 4.0,
    ) -> None:
        super().__init__()
        option = "model.init_args"
        layers = [int(layer) for layer in layers]
        if not layers:
            raise ConfigError(f"{option}.layers must list at least one residual layer")
        if len(set(layers)) != len(layers):
            raise ConfigError(f"{option}.layers lists a layer twice: {layers}")
        if len(saes) != len(layers):
            raise ConfigError(f"{option}.saes has {len(saes)} SAEs for {len(layers)} layers {layers}")
        if pooling not in POOLINGS:
            raise ConfigError(f"{option}.pooling must be one of {POOLINGS}, got {pooling!r}")
        cmap = ComponentMap.for_model(model)
        self.read_layer = max(layers) if read_layer is None else int(read_layer)
        if self.read_layer < max(layers):
            raise ConfigError(
                f"{option}.read_layer {self.read_layer} lies below the edited layer {max(layers)}: "
                "that edit could not reach the probes"
            )
        self.sites = [cmap.residual_site(layer) for layer in layers]
        self.read_site = cmap.residual_site(self.read_layer)
        self.layers, self.pooling = layers, pooling
        for i, (layer, sae) in enumerate(zip(layers, saes, strict=True)):
            if sae.d_in != cmap.hidden_size:
                raise ConfigError(
                    f"{option}.saes[{i}] reads {sae.d_in} dimensions, layer {layer}'s residual has "
                    f"{cmap.hidden_size}"
                )
        # a plain attribute, not a submodule: the method that owns the backbone checkpoints it once
        object.__setattr__(self, "model", model.requires_grad_(False).eval())
        self._saes = [sae.requires_grad_(False).eval() for sae in saes]
        self.gates = nn.ModuleList(LatentGate(sae.d_sae, gate, init_logit) for sae in self._saes)
        self.mode = "none"
        self.fixed: list[torch.Tensor] = []  # latents removed per site in mode "fixed"
        self.attribution_gates: list[torch.Tensor] = []
        self.leace: LeaceEraser | None = None
        self._handles = [
            site.register_hook(self.model, self._site_hook(i)) for i, site in enumerate(self.sites)
        ]

    @property
    def saes(self) -> list[SparseCoder]:
        return self._saes

    def train(self, mode: bool = True) -> ResidualEraser:
        """Only the gates follow train / eval: the backbone and SAEs always run in eval mode."""
        self.training = mode
        self.gates.train(mode)
        return self

    # ------------------------------------------------------------------------------------ hooks
    def _site_hook(self, i: int) -> Callable[[torch.Tensor], torch.Tensor | None]:
        def edit(x: torch.Tensor) -> torch.Tensor | None:
            if self.mode in ("none", "leace"):
                return None
            sae = self._sae_on(i, x.device)
            if self.mode == "gates":
                gate = self.gates[i]()
            elif self.mode == "attribution":
                gate = self.attribution_gates[i]
            else:
                gate = ablation_gate(self.gates[i].logits.numel(), self.fixed[i], x.device)
            return gated_edit(x, sae, gate)

        return edit

    def _sae_on(self, i: int, device: torch.device) -> SparseCoder:
        sae = self._saes[i]
        param = next(sae.parameters(), None)
        if param is not None and param.device != device:
            self._saes[i] = sae = sae.to(device)
        return sae

    @contextmanager
    def editing(self, mode: str, fixed: list[torch.Tensor] | None = None) -> Iterator[None]:
        """Apply ``mode`` (:data:`MODES`) inside the block; ``fixed`` gives the removed latents per site."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "fixed" and (fixed is None or len(fixed) != len(self.sites)):
            raise ValueError("mode 'fixed' needs one tensor of removed latents per site")
        if mode == "leace" and self.leace is None:
            raise ValueError("mode 'leace' needs a fitted LEACE eraser (set .leace)")
        previous = self.mode, self.fixed
        self.mode, self.fixed = mode, fixed if fixed is not None else self.fixed
        try:
            yield
        finally:
            self.mode, self.fixed = previous

    # ------------------------------------------------------------------------------------ reads
    def read(
        self, inputs: dict[str, torch.Tensor], mode: str = "gates", fixed: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled read-site features [B, d] and the read-site token states [B, T, d] under ``mode``;
        the forward stops at the read site."""
        box: list[torch.Tensor] = []

        def capture(x: torch.Tensor) -> torch.Tensor:
            if self.mode == "leace":
                x = self.leace(x)
            box.append(x)
            raise _Stop

        handle = self.read_site.register_hook(self.model, capture)
        try:
            with self.editing(mode, fixed):
                self.model(**inputs)
        except _Stop:
            pass
        finally:
            handle.remove()
        hidden = box[0]
        return pool_sequence(hidden, inputs.get("attention_mask"), self.model, self.pooling), hidden

    def logits(
        self, inputs: dict[str, torch.Tensor], mode: str = "gates", fixed: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The whole model's output logits under ``mode`` (LEACE is applied at the read site)."""
        handle = None
        if mode == "leace":
            handle = self.read_site.register_hook(self.model, lambda x: self.leace(x))
        try:
            with self.editing(mode, fixed):
                return self.model(**inputs).logits
        finally:
            if handle is not None:
                handle.remove()

    # --------------------------------------------------------------------------------- summaries
    def erased(self) -> list[torch.Tensor]:
        """Latents the deployed gates remove, per site."""
        return [gate.erased() for gate in self.gates]

    def sparsity_penalty(self) -> torch.Tensor:
        """Σ over sites and latents of (1 − open-gate measure): the (expected) number of removed latents."""
        return sum((1.0 - gate.keep_probability()).sum() for gate in self.gates)

    def set_temperature(self, temperature: float) -> None:
        for gate in self.gates:
            gate.temperature = temperature

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
