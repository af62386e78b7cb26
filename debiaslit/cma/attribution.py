"""Attribution patching: the first-order NIE of every unit from one forward + backward (METHODS.md §1.4b).

Δ̂_n(x) = (t_n − z_n(x)) · ∂m/∂z_n |_x with m = log y, summed over the patched positions (and over a
head's dimensions). The gradient is the total derivative through every downstream path, which is what
NIE means. Validation runs under ``torch.inference_mode``; the estimate leaves it explicitly and clones
its inputs so that autograd can save them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from debiaslit.backbones.components import get_module
from debiaslit.cma.effects import EffectSums
from debiaslit.cma.mediators import at_least_fp32, gather_positions
from debiaslit.cma.setup import MediationSetup, logits_of, model_inputs

TargetFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _start_graph(setup: MediationSetup):
    """Make the first embedding output require grad, so a frozen model still builds a graph."""
    module = get_module(setup.model, setup.cmap.embedding_paths[0])

    def hook(_mod: torch.nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor | None:
        return None if out.requires_grad else out.detach().requires_grad_()

    return module.register_forward_hook(hook)


def attribution_deltas(
    setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-example first-order effects {key: Δ̂ [n_units, N]} and the clean m = log y.

    ``targets`` maps the clean activations {key: Z [N, P, D]} to target values T of the same shapes
    (e.g. ``lambda z: setup.targets(z, intervention, reference=stats)``).
    """
    with torch.inference_mode(False), torch.enable_grad():
        batch = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}
        positions = setup.positions(batch)
        handle = _start_graph(setup)
        try:
            with setup.reading(setup.mediators, {}, for_grad=True) as store:
                logits = logits_of(setup.model(**model_inputs(batch)))
        finally:
            handle.remove()
        m = setup.measure.log_y(logits, batch)
        keys = [med.key for med in setup.mediators]
        grads = torch.autograd.grad(m.sum(), [store[k] for k in keys], allow_unused=True)
        deltas = {}
        z_all = {k: at_least_fp32(gather_positions(store[k].detach(), positions)) for k in keys}
        t_all = targets(z_all)
        for mediator, key, grad in zip(setup.mediators, keys, grads, strict=True):
            z = z_all[key]
            g = torch.zeros_like(z) if grad is None else at_least_fp32(gather_positions(grad, positions))
            contrib = ((t_all[key].to(z.device) - z) * g).sum(1)  # [N, D]
            per_unit = contrib.view(contrib.shape[0], setup.n_units(mediator), -1).sum(-1)
            deltas[key] = per_unit.t().detach()
    return deltas, m.detach()


def attribution_effects(
    setup: MediationSetup, batch: dict[str, torch.Tensor], targets: TargetFn
) -> EffectSums:
    """First-order NIE estimates of every unit of every mediator on ``batch`` (summed over examples)."""
    deltas, m = attribution_deltas(setup, batch, targets)
    sums = EffectSums(count=m.shape[0])
    for key, delta in deltas.items():
        sums.add(key, delta)
    return sums
