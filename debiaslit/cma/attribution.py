"""Attribution patching and AtP*: first-order NIE of every unit from one forward + backward (METHODS §1.4b).

Δ̂_n(x) = (t_n − z_n(x)) · ∂m/∂z_n |_x with m = log y, summed over the patched positions (and over a
head's dimensions). The gradient is the total derivative through every downstream path, which is what
NIE means. AtP* (Kramár et al. 2024) adds the QK fix (``qk_fix``: Q and K units through the exact new
attention pattern, :mod:`debiaslit.cma.qk`) and GradDrop (``grad_drop``: one more backward per layer with
the gradient through that layer's sublayer outputs dropped, magnitudes averaged, for ranking only).
Integrated gradients (:func:`ig_deltas`) average the gradient along the straight path to the target.
Validation runs under ``torch.inference_mode``; the estimates leave it explicitly and clone their inputs
so that autograd can save them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch

from debiaslit.backbones.components import get_module
from debiaslit.cma.effects import EffectSums
from debiaslit.cma.mediators import PATTERN, Mediator, at_least_fp32, gather_positions
from debiaslit.cma.qk import key_effects, query_effects, score_scale
from debiaslit.cma.setup import MediationSetup, logits_of, model_inputs, repeat_rows

TargetFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _start_graph(setup: MediationSetup):
    """Make the first embedding output require grad, so a frozen model still builds a graph."""
    module = get_module(setup.model, setup.cmap.embedding_paths[0])

    def hook(_mod: torch.nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        return None if out.requires_grad else out.detach().requires_grad_()

    return module.register_forward_hook(hook)


class _Gate(torch.autograd.Function):
    """Identity whose backward is zeroed while ``closed[0]`` equals its layer (GradDrop)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: int, closed: list[int]) -> torch.Tensor:
        ctx.layer, ctx.closed = layer, closed
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return (torch.zeros_like(grad) if ctx.closed[0] == ctx.layer else grad), None, None


@contextmanager
def _gates(setup: MediationSetup, closed: list[int]) -> Iterator[None]:
    """Gates on every layer's sublayer outputs (attention and MLP, before the residual sum)."""
    handles = []
    for layer in range(setup.cmap.num_layers):
        for component in ("AO", "O"):
            module = setup.cmap.weight_site(component, layer).module(setup.model)

            def gate(
                _mod: torch.nn.Module, _args: tuple, out: torch.Tensor, layer: int = layer
            ) -> torch.Tensor:
                return _Gate.apply(out, layer, closed)

            handles.append(module.register_forward_hook(gate))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _qk_needs(setup: MediationSetup) -> list[Mediator]:
    """The extra sites the QK fix reads: patterns, queries and keys of every layer with a Q or K unit."""
    layers = sorted({m.layer for m in setup.mediators if m.component in ("Q", "K")})
    have = set(setup.mediators)
    extra = [Mediator(c, layer) for layer in layers for c in (PATTERN, "Q", "K")]
    return [m for m in extra if m not in have]


def _linear(setup: MediationSetup, z: dict, t: dict, grads: dict, positions: torch.Tensor) -> dict:
    """{key: Δ̂ [n_units, N]} = (t − z) · ∂m/∂z per unit."""
    deltas = {}
    for mediator in setup.mediators:
        key = mediator.key
        grad = grads[key]
        g = torch.zeros_like(z[key]) if grad is None else at_least_fp32(gather_positions(grad, positions))
        contrib = ((t[key].to(z[key].device) - z[key]) * g).sum(1)  # [N, D]
        deltas[key] = contrib.view(contrib.shape[0], setup.n_units(mediator), -1).sum(-1).t()
    return deltas


def _qk(setup: MediationSetup, store: dict, z: dict, t: dict, grads: dict, positions: torch.Tensor) -> dict:
    """{key: Δ̂ [n_units, N]} of the Q and K mediators through the exact new attention pattern."""
    scale = score_scale(setup.model, setup.cmap.head_dim)
    heads = setup.cmap.num_heads
    out = {}
    for mediator in setup.mediators:
        if mediator.component not in ("Q", "K"):
            continue
        layer = mediator.layer
        pattern = at_least_fp32(store[f"{PATTERN}/layer_{layer}"].detach())
        n, length = pattern.shape[:2]
        probs = pattern.view(n, length, heads, -1).transpose(1, 2)  # [N, H, T, T]
        grad = grads[f"{PATTERN}/layer_{layer}"]
        grad = torch.zeros_like(probs) if grad is None else at_least_fp32(grad).view_as(pattern)
        grad = grad.view(n, length, heads, -1).transpose(1, 2)
        delta = t[mediator.key].to(z[mediator.key].device) - z[mediator.key]  # [N, P, D]
        pos = positions.to(probs.device)
        if mediator.component == "Q":
            keys = at_least_fp32(store[f"K/layer_{layer}"].detach())
            out[mediator.key] = query_effects(probs, grad, keys, delta, pos, scale).t()
        else:
            queries = at_least_fp32(store[f"Q/layer_{layer}"].detach())
            out[mediator.key] = key_effects(probs, grad, queries, delta, pos, scale).t()
    return out


def attribution_deltas(
    setup: MediationSetup,
    batch: dict[str, torch.Tensor],
    targets: TargetFn,
    qk_fix: bool = False,
    grad_drop: bool = False,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-example first-order effects {key: Δ̂ [n_units, N]} and the clean m = log y.

    ``targets`` maps the clean activations {key: Z [N, P, D]} to target values T of the same shapes
    (e.g. ``lambda z: setup.targets(z, intervention, reference=stats)``). ``qk_fix``: Q and K units through
    the exact new attention pattern; ``grad_drop``: sign of the estimate × mean over layers ℓ of |Δ̂ with
    the gradient through layer ℓ's sublayer outputs dropped| (AtP*'s guard against cancellation).
    """
    with torch.inference_mode(False), torch.enable_grad():
        batch = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}
        positions = setup.positions(batch)
        extra = _qk_needs(setup) if qk_fix else []
        closed = [-1]  # the layer whose sublayer gradients GradDrop drops (-1: none)
        handle = _start_graph(setup)
        try:
            with (
                setup.reading([*setup.mediators, *extra], {}, for_grad=True) as store,
                _gates(setup, closed) if grad_drop else nullcontext(),
            ):
                logits = logits_of(setup.model(**model_inputs(batch)))
        finally:
            handle.remove()
        m = setup.measure.log_y(logits, batch)
        own = [med.key for med in setup.mediators]
        keys = list(dict.fromkeys([*own, *(e.key for e in extra if e.component == PATTERN)]))
        keys += [
            f"{PATTERN}/layer_{med.layer}" for med in setup.mediators if qk_fix and med.component in "QK"
        ]
        keys = list(dict.fromkeys(keys))
        z = {k: at_least_fp32(gather_positions(store[k].detach(), positions)) for k in own}
        t = targets(z)

        def estimate() -> dict[str, torch.Tensor]:
            tensors = [store[k] for k in keys]
            found = torch.autograd.grad(m.sum(), tensors, allow_unused=True, retain_graph=grad_drop)
            grads = dict(zip(keys, found, strict=True))
            deltas = _linear(setup, z, t, grads, positions)
            if qk_fix:
                deltas.update(_qk(setup, store, z, t, grads, positions))
            return deltas

        deltas = estimate()
        if grad_drop:
            magnitude = {k: torch.zeros_like(v) for k, v in deltas.items()}
            for layer in range(setup.cmap.num_layers):
                closed[0] = layer
                for k, v in estimate().items():
                    magnitude[k] += v.abs() / setup.cmap.num_layers
            deltas = {k: torch.where(v < 0, -magnitude[k], magnitude[k]) for k, v in deltas.items()}
    return {k: v.detach() for k, v in deltas.items()}, m.detach()


def ig_deltas(
    setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn, steps: int = 5
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Integrated gradients: Δ̂ = (t − z) · mean_α ∂m/∂z at z + α (t − z), α = 0, 1/S, …, (S−1)/S.

    One mediator at a time (the others stay clean), the S steps batched as S·N rows: S forward + backward
    passes per mediator. Exact in the limit of many steps for a unit patched alone.
    """
    with torch.inference_mode(False), torch.enable_grad():
        batch = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}
        positions = setup.positions(batch)
        clean, m = setup.capture(batch)
        t = targets(clean)
        big = repeat_rows(batch, steps)
        alpha = torch.arange(steps, dtype=torch.float64) / steps
        deltas = {}
        for mediator in setup.mediators:
            key, n = mediator.key, positions.shape[0]
            step = (t[key] - clean[key]).to(clean[key].dtype)
            pos = positions.repeat(steps, 1)
            rows = torch.arange(pos.shape[0], device=pos.device)[:, None].expand_as(pos)
            shift = alpha.to(step.dtype).repeat_interleave(n)[:, None, None] * step.repeat(steps, 1, 1)

            def move(
                act: torch.Tensor, index: tuple = (rows, pos), shift: torch.Tensor = shift
            ) -> torch.Tensor:
                return act.index_put(index, act[index] + shift.to(act.dtype))

            handle_move = mediator.site(setup.cmap).register_hook(setup.model, move)
            graph = _start_graph(setup)
            try:
                with setup.reading([mediator], {}, for_grad=True) as store:
                    logits = logits_of(setup.model(**model_inputs(big)))
            finally:
                graph.remove()
                handle_move.remove()
            grad = torch.autograd.grad(setup.measure.log_y(logits, big).sum(), store[key])[0]
            g = at_least_fp32(gather_positions(grad, pos)).view(steps, n, *step.shape[1:]).mean(0)
            contrib = (step * g).sum(1)
            deltas[key] = contrib.view(n, setup.n_units(mediator), -1).sum(-1).t().detach()
    return deltas, m.detach()


def _effects(deltas: dict[str, torch.Tensor], m: torch.Tensor) -> EffectSums:
    sums = EffectSums(count=m.shape[0])
    for key, delta in deltas.items():
        sums.add(key, delta)
    return sums


def attribution_effects(
    setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn
) -> EffectSums:
    """First-order NIE estimates of every unit of every mediator on ``batch`` (summed over examples)."""
    return _effects(*attribution_deltas(setup, batch, targets))


def atp_qk_effects(setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn) -> EffectSums:
    """Attribution with AtP*'s QK fix for the Q and K units."""
    return _effects(*attribution_deltas(setup, batch, targets, qk_fix=True))


def atp_star_effects(setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn) -> EffectSums:
    """AtP*: the QK fix and GradDrop (for ranking: magnitudes averaged over the dropped layers)."""
    return _effects(*attribution_deltas(setup, batch, targets, qk_fix=True, grad_drop=True))


def ig_effects(setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn) -> EffectSums:
    """Integrated-gradient estimates (5 steps per mediator)."""
    return _effects(*ig_deltas(setup, batch, targets))
