"""Row-aware exact patching for post-LayerNorm encoders (BERT, RoBERTa): recompute only what a patch changes.

A patch of the units at positions P of layer l leaves, in layer l, every row outside P unchanged (unless
it patches K or V, which every query reads), and everything upstream of the patched sublayer unchanged:
an I or O unit never needs its layer's attention again. Layer l + 1 sees a hidden state changed only at
P, so only those rows need new Q/K/V projections; from there on every row changes, except at the last
layer, where only the rows the task head reads are needed (found once per runner by a check, not
assumed). Every clean intermediate comes from one pass of the same code over the clean batch, and the
unpatched variant runs inside every chunk, so an effect is a difference of two rows computed by the
same kernels (METHODS.md §1.4a).

Shapes inside: [V, N, T or P, D] (variant, example, position, dims); clean values are [1, N, T, D].
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from debiaslit.backbones.components import HEAD, RESID, ComponentMap, get_module
from debiaslit.cma.mediators import PATTERN, Mediator

ROW_AWARE_ARCHITECTURES = ("bert", "roberta")
#: Order of the sublayers in one layer; a patch at stage s leaves every earlier stage unchanged.
STAGES = {"Q": 0, "K": 0, "V": 0, PATTERN: 1, HEAD: 2, "AO": 3, "I": 4, "O": 5, RESID: 5}

Patch = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def row_aware_supported(model: nn.Module) -> bool:
    """BERT-family encoders with absolute positions (row-local sublayers, post-LN, no cache)."""
    config = model.config
    return (
        config.model_type in ROW_AWARE_ARCHITECTURES
        and not getattr(config, "is_decoder", False)
        and getattr(config, "position_embedding_type", "absolute") in (None, "absolute")
    )


def take(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    """x [V, N, T, ...] at per-example positions pos [N, P] -> [V, N, P, ...] (all rows when None)."""
    if pos is None:
        return x
    rows = torch.arange(x.shape[1], device=x.device)[:, None]
    return x[:, rows, pos]


def put(x: torch.Tensor, pos: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Copy of x [V, N, T, D] (broadcast over V) with rows ``pos`` [N, P] set to values [V, N, P, D]."""
    out = x.expand(values.shape[0], *x.shape[1:]).clone()
    rows = torch.arange(x.shape[1], device=x.device)[:, None]
    out[:, rows, pos] = values
    return out


@dataclass
class LayerParts:
    """The modules of one encoder layer, from the component map's sites."""

    query: nn.Module
    key: nn.Module
    value: nn.Module
    attention_output: nn.Module  # dense + residual + LayerNorm: (ctx, hidden) -> AO
    intermediate: nn.Module  # AO -> I
    output: nn.Module  # (I, AO) -> O = the layer output

    @classmethod
    def of(cls, model: nn.Module, cmap: ComponentMap, layer: int) -> LayerParts:
        site = {c: cmap.activation_site(c, layer).module(model) for c in ("Q", "K", "V", "AO", "I", "O")}
        return cls(site["Q"], site["K"], site["V"], site["AO"], site["I"], site["O"])


@dataclass
class CleanLayer:
    """Clean intermediates of one layer, [1, N, T, D] (probabilities [1, N, heads, T, T] when kept)."""

    hidden: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    probs: torch.Tensor | None
    ctx: torch.Tensor
    ao: torch.Tensor
    i: torch.Tensor
    o: torch.Tensor


class RowAwareEncoder:
    """The clean pass and the patched suffix passes of one probe batch through a BERT-family encoder."""

    def __init__(
        self,
        model: nn.Module,
        cmap: ComponentMap,
        embedded: torch.Tensor,
        attention_mask: torch.Tensor,
        keep_probs: bool = False,
    ) -> None:
        self.model, self.cmap = model, cmap
        self.parts = [LayerParts.of(model, cmap, layer) for layer in range(cmap.num_layers)]
        self.heads, self.head_dim = cmap.num_heads, cmap.head_dim
        self.scale = self.head_dim**-0.5
        keep = attention_mask.to(embedded.dtype)[None, :, None, None, :]  # [1, N, 1, 1, T_key]
        self.key_bias = (1.0 - keep) * torch.finfo(embedded.dtype).min
        self.readout: torch.Tensor | None = None  # positions [N, P] the head reads (None: every row)
        self._patch_rows: torch.Tensor | None = None
        self.clean: list[CleanLayer] = []
        self._clean_pass(embedded[None], keep_probs)

    # ----------------------------------------------------------------------------------- pieces
    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """[V, N, T, H] -> [V, N, heads, T, head_dim]."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(2, 3)

    def _attention_probs(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = self._split(q) @ self._split(k).transpose(-1, -2) * self.scale
        return (scores + self.key_bias).softmax(-1)  # [V, N, heads, P, T]

    def _context(self, probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (probs @ self._split(v)).transpose(2, 3).flatten(-2)  # [V, N, P, H]

    def _clean_pass(self, hidden: torch.Tensor, keep_probs: bool) -> None:
        for parts in self.parts:
            q, k, v = parts.query(hidden), parts.key(hidden), parts.value(hidden)
            probs = self._attention_probs(q, k)
            ctx = self._context(probs, v)
            ao = parts.attention_output(ctx, hidden)
            i = parts.intermediate(ao)
            o = parts.output(i, ao)
            self.clean.append(CleanLayer(hidden, q, k, v, probs if keep_probs else None, ctx, ao, i, o))
            hidden = o

    @property
    def last_hidden(self) -> torch.Tensor:
        return self.clean[-1].o

    # ------------------------------------------------------------------------------------- head
    @contextmanager
    def _head_only(self, final: torch.Tensor) -> Iterator[None]:
        """The model's forward with the encoder replaced by ``final`` [R, T, H]: only the head runs."""
        embeddings = get_module(self.model, self.cmap.embedding_paths[0])
        layers = [get_module(self.model, self.cmap.layer_module_path(i)) for i in range(self.cmap.num_layers)]

        def passthrough(hidden_states: torch.Tensor, *_: object, **__: object) -> torch.Tensor:
            return hidden_states

        embeddings.forward = lambda *_, **__: final
        for layer in layers:
            layer.forward = passthrough
        try:
            yield
        finally:
            del embeddings.forward
            for layer in layers:
                del layer.forward

    def head_logits(self, final: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Task-head output for last hidden states ``final`` [R, T, H] (``inputs`` repeated to R rows)."""
        from debiaslit.cma.setup import logits_of

        with self._head_only(final):
            return logits_of(self.model(**inputs))

    def find_readout(self, inputs: dict[str, torch.Tensor]) -> None:
        """Use only row 0 of the last layer when the head provably reads nothing else (BERT's pooler,
        RoBERTa's head): the logits must not move when every other row is replaced."""
        last = self.last_hidden[0]
        scrambled = last.clone()
        scrambled[:, 1:] = scrambled[:, 1:].flip(0) * 3.0 + 1.0
        if torch.equal(self.head_logits(last, inputs), self.head_logits(scrambled, inputs)):
            self.readout = torch.zeros(last.shape[0], 1, dtype=torch.long, device=last.device)

    # ------------------------------------------------------------------------------- patched run
    def run(self, patches: dict[Mediator, Patch], variants: int, rows: torch.Tensor | None) -> torch.Tensor:
        """Last hidden states [V·N, T, H] (exact at the read-out rows) with ``patches`` applied.

        ``rows`` [N, P]: the positions the patches touch (None: every position).
        """
        self._patch_rows = rows
        layers = sorted({m.layer for m in patches})
        hidden: torch.Tensor | None = None  # None: the clean input of the layer
        changed: torch.Tensor | None = None  # rows of ``hidden`` that differ from clean (None: all)
        for layer in range(layers[0], self.cmap.num_layers):
            here = {m.component: p for m, p in patches.items() if m.layer == layer}
            hidden, changed = self._layer(layer, hidden, changed, here, variants)
        return hidden.flatten(0, 1)

    def _layer(
        self,
        layer: int,
        hidden: torch.Tensor | None,
        changed: torch.Tensor | None,
        patches: dict[str, Patch],
        variants: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        clean, parts = self.clean[layer], self.parts[layer]
        last = layer == self.cmap.num_layers - 1
        kv_patched = "K" in patches or "V" in patches
        start = min((STAGES[c] for c in patches), default=0) if hidden is None else 0
        if last:
            rows = self.readout
        elif hidden is None and not kv_patched:
            rows = self._patch_rows
        else:
            rows = None
        h_rows = take(clean.hidden if hidden is None else hidden, rows)

        def patched(name: str, value: torch.Tensor, at: torch.Tensor | None = rows) -> torch.Tensor:
            return patches[name](value, at) if name in patches else value

        probs = ctx = ao = i = None
        if start == STAGES["Q"]:
            if hidden is None:
                q, k, v = take(clean.q, rows), clean.k, clean.v
            elif changed is not None:  # only rows `changed` of the input moved: project those alone
                h_changed = take(hidden, changed)
                q = take(put(clean.q, changed, parts.query(h_changed)), rows)
                k = put(clean.k, changed, parts.key(h_changed))
                v = put(clean.v, changed, parts.value(h_changed))
            else:
                q, k, v = parts.query(h_rows), parts.key(hidden), parts.value(hidden)
            q, k, v = patched("Q", q), patched("K", k, None), patched("V", v, None)
            probs = self._attention_probs(q, k)
        if start <= STAGES[PATTERN]:
            if probs is None:
                probs, v = take(clean.probs.transpose(2, 3), rows).transpose(2, 3), clean.v
            if PATTERN in patches:  # unit h = head h's key columns: [V, N, P, heads · T]
                flat = patches[PATTERN](probs.transpose(2, 3).flatten(-2), rows)
                probs = flat.unflatten(-1, (self.heads, -1)).transpose(2, 3)
            ctx = self._context(probs, v)
        if start <= STAGES[HEAD]:
            ctx = patched(HEAD, take(clean.ctx, rows) if ctx is None else ctx)
            ao = parts.attention_output(ctx, h_rows)
        if start <= STAGES["AO"]:
            ao = patched("AO", take(clean.ao, rows) if ao is None else ao)
            i = parts.intermediate(ao)
        ao = take(clean.ao, rows) if ao is None else ao
        if start <= STAGES["I"]:
            i = patched("I", take(clean.i, rows) if i is None else i)
            o = parts.output(i, ao)
        else:
            o = take(clean.o, rows)
        o = patched(RESID, patched("O", o))
        if rows is None:
            return o, None
        return put(clean.o, rows, o.expand(variants, *o.shape[1:])), rows
