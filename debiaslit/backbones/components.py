"""Where each named component lives in each architecture: the ONLY module that knows module paths.

Methods (CMA, masks, PCGU) speak of components ``Q, K, V, AO, I, O`` (BERT naming, see METHODS.md
§0) plus ``resid`` (the layer output) and attention ``head`` outputs. A :class:`ComponentMap` translates
``(component, layer)`` into

* a :class:`WeightSite`: the Linear / Conv1D whose weight produces the component, and which of its
  output units belong to it (Q/K/V are slices of a fused projection in GPT-2 and GPT-NeoX);
* an :class:`ActivationSite`: the module whose forward output (or input) holds the activation, with
  :meth:`ActivationSite.register_hook` to read or patch it.

Paths are dotted from the model ROOT, so task-head wrappers (``bert.``, ``transformer.``,
``gpt_neox.`` prefixes) are handled here once. Note BERT's AO / O are post-LayerNorm residual values
while GPT-2's / NeoX's are pre-residual sublayer outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from debiaslit.errors import ConfigError

COMPONENTS: tuple[str, ...] = ("Q", "K", "V", "AO", "I", "O")
RESID = "resid"
HEAD = "head"
EMBED = "embed"
Layout = Literal["linear", "conv1d"]
Capture = Literal["output", "input"]


def get_module(model: nn.Module, path: str) -> nn.Module:
    """Module at dotted ``path`` from the model root (``""`` is the root)."""
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise ConfigError(f"{type(model).__name__} has no module {path!r}") from err


def _take(tensor: torch.Tensor, dim: int, index: torch.Tensor | None) -> torch.Tensor:
    """Units ``index`` along ``dim``: a view for contiguous ranges, an (autograd-tracked) copy otherwise."""
    if index is None:
        return tensor
    start, n = int(index[0]), index.numel()
    if bool((index == torch.arange(start, start + n)).all()):
        return tensor.narrow(dim, start, n)
    return tensor.index_select(dim, index.to(tensor.device))


@dataclass(frozen=True)
class WeightSite:
    """The Linear (weight [out, in]) or Conv1D (weight [in, out]) that produces a component.

    ``out_index`` lists the module's output units belonging to the component (None: all of them).
    """

    component: str
    layer: int
    module_path: str
    layout: Layout
    out_index: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @property
    def out_dim(self) -> int:
        """Dimension of ``module.weight`` that indexes output units (0 for Linear, 1 for Conv1D)."""
        return 0 if self.layout == "linear" else 1

    def module(self, model: nn.Module) -> nn.Module:
        return get_module(model, self.module_path)

    def module_units(self, units: torch.Tensor) -> torch.Tensor:
        """Map component unit indices to output-unit indices of the module (along :attr:`out_dim`)."""
        return units if self.out_index is None else self.out_index[units.to(self.out_index.device)]

    def get_weight_and_bias(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Component weight as [n_out, n_in] and bias [n_out] (so ``act = x @ W.T + b``).

        Views of the parameters when the units are contiguous (in-place edits reach the model),
        autograd-tracked copies for NeoX's interleaved Q/K/V.
        """
        module = self.module(model)
        weight = module.weight if self.layout == "linear" else module.weight.t()
        bias = module.bias
        return _take(weight, 0, self.out_index), None if bias is None else _take(bias, 0, self.out_index)


@dataclass(frozen=True)
class ActivationSite:
    """Module whose forward ``output`` (or positional ``input``) carries a component's activation.

    ``out_index`` selects the component's units along the last dimension (None: all of it).
    Layer outputs that are tuples are read at ``[0]``.
    """

    component: str
    layer: int
    module_path: str
    capture: Capture
    out_index: torch.Tensor | None = field(default=None, compare=False, repr=False)
    head: int | None = None

    def module(self, model: nn.Module) -> nn.Module:
        return get_module(model, self.module_path)

    def select(self, tensor: torch.Tensor) -> torch.Tensor:
        """The component's units of a captured tensor ([..., n_units])."""
        return _take(tensor, -1, self.out_index)

    def replace(self, tensor: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Out-of-place copy of ``tensor`` with the component's units set to ``value`` (broadcast)."""
        if self.out_index is None:
            return value.expand_as(tensor).to(tensor.dtype)
        index = self.out_index.to(tensor.device)
        shape = (*tensor.shape[:-1], index.numel())
        return tensor.index_copy(-1, index, value.expand(shape).to(tensor.dtype))

    def register_hook(
        self, model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor | None]
    ) -> RemovableHandle:
        """Call ``fn(activation)`` on every forward; a returned tensor replaces the activation."""
        module = self.module(model)

        def patch(tensor: torch.Tensor) -> torch.Tensor | None:
            new = fn(self.select(tensor))
            return None if new is None else self.replace(tensor, new)

        if self.capture == "input":

            def pre_hook(_mod: nn.Module, args: tuple) -> tuple | None:
                if not args:
                    raise RuntimeError(f"{self.module_path} was called without a positional input to capture")
                new = patch(args[0])
                return None if new is None else (new, *args[1:])

            return module.register_forward_pre_hook(pre_hook)

        def hook(_mod: nn.Module, _args: tuple, out: torch.Tensor | tuple) -> torch.Tensor | tuple | None:
            new = patch(out[0] if isinstance(out, tuple) else out)
            if new is None:
                return None
            return (new, *out[1:]) if isinstance(out, tuple) else new

        return module.register_forward_hook(hook)


@dataclass(frozen=True)
class _Arch:
    """Per-architecture layout; paths are relative to one layer module."""

    layers: str  # the layer ModuleList, relative to the base model
    weights: dict[str, tuple[str, Layout]]
    activations: dict[str, str]  # module whose OUTPUT is the activation
    head_input: str  # module whose INPUT is the concatenation of head outputs
    attention: str
    qkv: Literal["separate", "blocks", "per_head"]  # how Q/K/V share a fused projection
    embeddings: tuple[str, ...]  # relative to the base model
    embed_output: str  # relative to the base model: its output is the residual stream before block 0


_BERT = _Arch(
    layers="encoder.layer",
    weights={
        "Q": ("attention.self.query", "linear"),
        "K": ("attention.self.key", "linear"),
        "V": ("attention.self.value", "linear"),
        "AO": ("attention.output.dense", "linear"),
        "I": ("intermediate.dense", "linear"),
        "O": ("output.dense", "linear"),
    },
    activations={
        "Q": "attention.self.query",
        "K": "attention.self.key",
        "V": "attention.self.value",
        "AO": "attention.output",
        "I": "intermediate",
        "O": "output",
    },
    head_input="attention.output.dense",
    attention="attention.self",
    qkv="separate",
    embeddings=("embeddings",),
    embed_output="embeddings",
)

_GPT2 = _Arch(
    layers="h",
    weights={
        **{c: ("attn.c_attn", "conv1d") for c in "QKV"},
        "AO": ("attn.c_proj", "conv1d"),
        "I": ("mlp.c_fc", "conv1d"),
        "O": ("mlp.c_proj", "conv1d"),
    },
    activations={**{c: "attn.c_attn" for c in "QKV"}, "AO": "attn.c_proj", "I": "mlp.act", "O": "mlp.c_proj"},
    head_input="attn.c_proj",
    attention="attn",
    qkv="blocks",
    embeddings=("wte", "wpe"),
    embed_output="drop",  # dropout of wte + wpe
)

_NEOX = _Arch(
    layers="layers",
    weights={
        **{c: ("attention.query_key_value", "linear") for c in "QKV"},
        "AO": ("attention.dense", "linear"),
        "I": ("mlp.dense_h_to_4h", "linear"),
        "O": ("mlp.dense_4h_to_h", "linear"),
    },
    activations={
        **{c: "attention.query_key_value" for c in "QKV"},
        "AO": "attention.dense",
        "I": "mlp.act",
        "O": "mlp.dense_4h_to_h",
    },
    head_input="attention.dense",
    attention="attention",
    qkv="per_head",
    embeddings=("embed_in",),
    embed_output="emb_dropout",
)

ARCHITECTURES: dict[str, _Arch] = {"bert": _BERT, "roberta": _BERT, "gpt2": _GPT2, "gpt_neox": _NEOX}


class ComponentMap:
    """Component sites of one model; build with :meth:`for_model`."""

    def __init__(self, arch: str, config: object, prefix: str, extra_paths: dict[str, tuple[str, ...]]):
        self._arch, self._spec, self._prefix = arch, ARCHITECTURES[arch], prefix
        self._num_layers = int(config.num_hidden_layers)
        self._hidden = int(config.hidden_size)
        self._heads = int(config.num_attention_heads)
        inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
        self._intermediate = int(inner or 4 * self._hidden)
        self._paths = extra_paths

    @classmethod
    def for_model(cls, model: nn.Module) -> ComponentMap:
        """Map for a (possibly task-head-wrapped) transformers model; ConfigError if unsupported."""
        config = getattr(model, "config", None)
        arch = getattr(config, "model_type", None)
        if arch not in ARCHITECTURES:
            raise ConfigError(
                f"unsupported architecture {arch!r} ({type(model).__name__}); "
                f"supported: {', '.join(ARCHITECTURES)}"
            )
        base = getattr(model, "base_model", model)
        prefix = "" if base is model else f"{model.base_model_prefix}."
        spec = ARCHITECTURES[arch]
        norms = tuple(
            prefix + name for name, mod in base.named_modules() if isinstance(mod, nn.LayerNorm | nn.RMSNorm)
        )
        heads = tuple(
            name
            for name, child in model.named_children()
            if child is not base and any(True for _ in child.parameters())
        )
        if hasattr(base, "pooler") and base.pooler is not None:
            heads = (f"{prefix}pooler", *heads)
        paths = {"embeddings": tuple(prefix + p for p in spec.embeddings), "norms": norms, "heads": heads}
        cmap = cls(arch, config, prefix, paths)
        layers = get_module(model, prefix + spec.layers)
        if len(layers) != cmap.num_layers:
            raise ConfigError(
                f"{type(model).__name__} has {len(layers)} layers, config says {cmap.num_layers}"
            )
        return cmap

    # ---- sizes -----------------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self._arch

    @property
    def num_layers(self) -> int:
        return self._num_layers

    @property
    def hidden_size(self) -> int:
        return self._hidden

    @property
    def num_heads(self) -> int:
        return self._heads

    @property
    def head_dim(self) -> int:
        return self._hidden // self._heads

    @property
    def intermediate_size(self) -> int:
        return self._intermediate

    @property
    def components(self) -> tuple[str, ...]:
        """Components with weight and activation sites."""
        return COMPONENTS

    def size(self, component: str) -> int:
        """Units per layer of ``component`` (``resid`` included)."""
        self._check_component(component, (*COMPONENTS, RESID))
        return self._intermediate if component == "I" else self._hidden

    # ---- paths -----------------------------------------------------------------------------------
    def layer_module_path(self, layer: int) -> str:
        self._check_layer(layer)
        return f"{self._prefix}{self._spec.layers}.{layer}"

    def attention_module_path(self, layer: int) -> str:
        """The module holding Q/K/V and passed to attention functions (BERT: ``attention.self``)."""
        return f"{self.layer_module_path(layer)}.{self._spec.attention}"

    @property
    def embedding_paths(self) -> tuple[str, ...]:
        """Embedding modules (never masked)."""
        return self._paths["embeddings"]

    @property
    def norm_paths(self) -> tuple[str, ...]:
        """Every LayerNorm of the base model, embeddings' and final norm included (never masked)."""
        return self._paths["norms"]

    @property
    def never_masked_paths(self) -> tuple[str, ...]:
        return self.embedding_paths + self.norm_paths

    @property
    def task_head_paths(self) -> tuple[str, ...]:
        """Pooler and task heads (classifier, score, lm_head...): masking them is optional.

        GPT-2's ``lm_head`` and BERT's MLM decoder are tied to the word embeddings.
        """
        return self._paths["heads"]

    # ---- sites -----------------------------------------------------------------------------------
    def weight_site(self, component: str, layer: int) -> WeightSite:
        self._check_component(component, COMPONENTS, " (no weight site)" if component == RESID else "")
        path, layout = self._spec.weights[component]
        return WeightSite(
            component, layer, f"{self.layer_module_path(layer)}.{path}", layout, self._qkv(component)
        )

    def activation_site(self, component: str, layer: int) -> ActivationSite:
        """Hook site of ``component``'s activation; ``resid`` is the layer output."""
        self._check_component(component, (*COMPONENTS, RESID))
        layer_path = self.layer_module_path(layer)
        if component == RESID:
            return ActivationSite(RESID, layer, layer_path, "output")
        path = f"{layer_path}.{self._spec.activations[component]}"
        return ActivationSite(component, layer, path, "output", self._qkv(component))

    def residual_site(self, layer: int | str) -> ActivationSite:
        """The residual stream after block ``layer`` (element 0 of the block's output; SAELens
        ``blocks.{layer}.hook_resid_post``); ``-1`` or ``"embed"`` is the embedding output that enters
        block 0 (``blocks.0.hook_resid_pre``). GPT-NeoX's parallel residual is included: the block
        output is resid_pre + attn_out + mlp_out.
        """
        if layer in (-1, EMBED):
            return ActivationSite(RESID, -1, f"{self._prefix}{self._spec.embed_output}", "output")
        return self.activation_site(RESID, layer)

    def head_site(self, layer: int, head: int | None = None) -> ActivationSite:
        """Attention head outputs: the INPUT of the AO projection, ``head_dim`` units per head.

        ``head=None`` gives all heads (reshape the last dim to ``[num_heads, head_dim]``).
        """
        path = f"{self.layer_module_path(layer)}.{self._spec.head_input}"
        if head is None:
            return ActivationSite(HEAD, layer, path, "input")
        if not 0 <= head < self._heads:
            raise ConfigError(f"head {head} out of range; valid heads: 0..{self._heads - 1}")
        index = torch.arange(head * self.head_dim, (head + 1) * self.head_dim)
        return ActivationSite(HEAD, layer, path, "input", index, head)

    def _qkv(self, component: str) -> torch.Tensor | None:
        """Output units of the fused QKV projection belonging to Q, K or V."""
        if component not in ("Q", "K", "V") or self._spec.qkv == "separate":
            return None
        which, d = "QKV".index(component), self._hidden
        if self._spec.qkv == "blocks":  # GPT-2 c_attn: [Q | K | V]
            return torch.arange(which * d, (which + 1) * d)
        # GPT-NeoX query_key_value: viewed as [heads, 3 * head_dim] then chunked into q, k, v.
        return torch.arange(3 * d).view(self._heads, 3, self.head_dim)[:, which].reshape(-1)

    def _check_component(self, component: str, valid: tuple[str, ...], what: str = "") -> None:
        if component not in valid:
            raise ConfigError(
                f"unknown component {component!r}{what} for {self._arch}; "
                f"valid components: {', '.join(valid)}"
            )

    def _check_layer(self, layer: int) -> None:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self._num_layers:
            raise ConfigError(
                f"layer {layer!r} out of range for {self._arch}; valid layers: 0..{self._num_layers - 1}"
            )

    def __repr__(self) -> str:
        return (
            f"ComponentMap(arch={self._arch!r}, layers={self._num_layers}, hidden={self._hidden}, "
            f"heads={self._heads}, intermediate={self._intermediate})"
        )
