"""Exact NIE, batched: many interventions per forward pass, prefix-cached, chunked to a memory budget.

A *variant* is a boolean unit mask per mediator (single-unit sweeps use one-hot masks, joint effects
any set). Variants × examples become the rows of one expanded batch (row v·N + i = variant v on
example i). A patch at layer l leaves everything below l unchanged, so the hidden state entering the
lowest patched layer is computed once per example and only the layers from there up are re-run
(METHODS.md §1.4a). On BERT-family encoders only the rows a patch changes are recomputed
(:mod:`debiaslit.cma.rows`); elsewhere lower layers are skipped and the cached state is fed in. Every
chunk also runs the unpatched variant, and effects are taken against it: a unit without effect gives 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack, contextmanager

import torch

from debiaslit.backbones.components import get_module
from debiaslit.cma.effects import EffectSums
from debiaslit.cma.mediators import PATTERN, Mediator, expand_units
from debiaslit.cma.rows import RowAwareEncoder, row_aware_supported, take
from debiaslit.cma.setup import MediationSetup, logits_of, model_inputs, repeat_rows


def _hidden_of(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


class ExactRunner:
    """One probe batch with its clean state cached: hidden states entering every layer, targets, m_null.

    Args:
        setup: the mediation setup.
        batch: the probe examples (N rows) whose output is measured.
        targets: {mediator key: [N, P, D]} values patched in (see :meth:`MediationSetup.targets`).
        baseline: m = log y that effects are relative to (default: this batch's clean m). NDE passes the
            clean m while ``batch`` is the counterfactual input.
        prefix_cache: skip the layers below the lowest patched one (False: full forwards, for checks).
        row_aware: on BERT-family encoders recompute only the rows a patch changes (False: whole layers).
    """

    def __init__(
        self,
        setup: MediationSetup,
        batch: dict[str, torch.Tensor],
        targets: dict[str, torch.Tensor],
        baseline: torch.Tensor | None = None,
        prefix_cache: bool = True,
        row_aware: bool = True,
    ) -> None:
        self.setup, self.batch, self.targets, self.prefix_cache = setup, batch, targets, prefix_cache
        self.n = batch["input_ids"].shape[0]
        self.positions = setup.positions(batch)
        self.layers = [
            get_module(setup.model, setup.cmap.layer_module_path(i)) for i in range(setup.cmap.num_layers)
        ]
        self.layer_inputs: list[torch.Tensor] = []
        handles = [layer.register_forward_pre_hook(self._record, with_kwargs=True) for layer in self.layers]
        handles.append(self.layers[-1].register_forward_hook(self._record_output))
        try:
            with torch.no_grad():
                out = setup.model(**model_inputs(batch))
        finally:
            for h in handles:
                h.remove()
        m = setup.measure.log_y(logits_of(out), batch)
        # effects are taken against the unpatched rows of each chunk; `offset` moves them to `baseline`
        self.m_null = m if baseline is None else baseline
        self.offset = m - self.m_null
        self.encoder = self._row_aware_encoder() if row_aware and prefix_cache else None

    def _record(self, _mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        self.layer_inputs.append(_hidden_of(args, kwargs).detach())

    def _record_output(self, _mod: torch.nn.Module, _args: tuple, out: object) -> None:
        self.last_output = (out[0] if isinstance(out, tuple) else out).detach()

    def _row_aware_encoder(self) -> RowAwareEncoder | None:
        """The row-aware path where the architecture allows it and its clean pass matches the model's."""
        model = self.setup.model
        if not row_aware_supported(model) or model.training:
            return None
        mask = self.batch.get("attention_mask", torch.ones_like(self.batch["input_ids"]))
        with torch.no_grad():
            patterns = any(m.component == PATTERN for m in self.setup.mediators)
            embedded, mask = self.layer_inputs[0], mask.to(self.last_output.device)
            encoder = RowAwareEncoder(model, self.setup.cmap, embedded, mask, keep_probs=patterns)
            scale = float(self.last_output.abs().max())
            if not torch.allclose(encoder.last_hidden[0], self.last_output, rtol=1e-4, atol=1e-5 * scale):
                return None
            encoder.find_readout(model_inputs(self.batch))
        return encoder

    # ------------------------------------------------------------------------------------ hooks
    @contextmanager
    def skip_below(self, start: int, times: int):
        """Layers < start return their input; layer ``start`` receives the cached hidden state."""
        cached = self.layer_inputs[start].repeat(times, *[1] * (self.layer_inputs[start].dim() - 1))

        def feed(_mod: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args:
                return (cached, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": cached}

        def passthrough(*args: object, **kwargs: object) -> object:
            return _hidden_of(args, kwargs)

        handle = self.layers[start].register_forward_pre_hook(feed, with_kwargs=True)
        for layer in self.layers[:start]:
            layer.forward = passthrough
        try:
            yield
        finally:
            handle.remove()
            for layer in self.layers[:start]:
                del layer.forward

    def _patch_hook(self, mediator: Mediator, masks: torch.Tensor):
        """Hook setting the masked units of variant rows to their targets at the patched positions."""
        n = self.n
        target = self.targets[mediator.key]  # [N, P, D]

        def patch(act: torch.Tensor) -> torch.Tensor:
            rows = act.shape[0]
            times = rows // n
            pos = self.positions.to(act.device).repeat(times, 1)  # [R, P]
            index = (torch.arange(rows, device=act.device)[:, None].expand_as(pos), pos)
            current = act[index]  # [R, P, D]
            tgt = target.to(act.device, act.dtype).repeat(times, 1, 1)
            dim_mask = expand_units(masks.to(act.device), act.shape[-1])  # [V, D]
            mask = dim_mask.repeat_interleave(n, dim=0)[:, None, :]
            return act.index_put(index, torch.where(mask, tgt, current))

        return patch

    # ------------------------------------------------------------------------------------- runs
    def run(self, masks: dict[Mediator, torch.Tensor]) -> torch.Tensor:
        """Per-example effects Δ [V, N] (log y patched − baseline) for V variants.

        ``masks`` maps mediators to boolean unit masks [V, n_units]; mediators without a mask are
        left alone. Variants are processed in chunks of ``max_rows // N`` (at least one).
        """
        n_variants = next(iter(masks.values())).shape[0]
        chunk = max(1, self.setup.max_rows // self.n - 1)
        start = min(m.layer for m in masks) if self.prefix_cache else 0
        out = []
        for lo in range(0, n_variants, chunk):
            # variant 0 of every chunk is the unpatched one: the same kernels as the patched rows
            part = {m: torch.cat([torch.zeros_like(v[:1]), v[lo : lo + chunk]]) for m, v in masks.items()}
            times = next(iter(part.values())).shape[0]
            forward = self._forward_rows if self.encoder is not None else self._forward
            m = forward(part, start, times).view(times, self.n)
            out.append(m[1:] - m[:1])
        return torch.cat(out) + self.offset[None, :]

    def _forward(self, masks: dict[Mediator, torch.Tensor], start: int, times: int) -> torch.Tensor:
        setup = self.setup
        big = repeat_rows(self.batch, times)
        with torch.no_grad(), ExitStack() as stack:
            for mediator, mask in masks.items():
                site = mediator.site(setup.cmap)
                handle = site.register_hook(setup.model, self._patch_hook(mediator, mask))
                stack.callback(handle.remove)
            if start > 0:
                stack.enter_context(self.skip_below(start, times))
            logits = logits_of(setup.model(**model_inputs(big)))
        return setup.measure.log_y(logits, big)

    def _forward_rows(self, masks: dict[Mediator, torch.Tensor], _start: int, times: int) -> torch.Tensor:
        big = repeat_rows(self.batch, times)
        rows = None if self.setup.position == "all" else self.positions
        with torch.no_grad():
            patches = {m: self._row_patch(m, mask) for m, mask in masks.items()}
            final = self.encoder.run(patches, times, rows)
            logits = self.encoder.head_logits(final, model_inputs(big))
        return self.setup.measure.log_y(logits, big)

    def _row_patch(self, mediator: Mediator, masks: torch.Tensor):
        """Patch for the row-aware path: value [V, N, P, D] at positions ``at`` [N, P] (None: all)."""
        target = self.targets[mediator.key]  # [N, P, D] at self.positions
        n, width = target.shape[0], target.shape[-1]
        rows = torch.arange(n, device=target.device)[:, None]
        length = self.batch["input_ids"].shape[1]
        full = target.new_zeros(n, length, width)
        full[rows, self.positions] = target
        at_position = torch.zeros(n, length, 1, dtype=torch.bool, device=target.device)
        at_position[rows, self.positions] = True
        dims = expand_units(masks.to(target.device), width)[:, None, None, :]  # [V, 1, 1, D]

        def patch(value: torch.Tensor, at: torch.Tensor | None) -> torch.Tensor:
            chosen = take(at_position[None], at) & dims
            return torch.where(chosen, take(full[None], at).to(value.dtype), value)

        return patch

    def single_units(self, mediator: Mediator, units: torch.Tensor | None = None) -> torch.Tensor:
        """Δ [n_selected, N] of patching each unit alone (all units when ``units`` is None)."""
        n_units = self.setup.n_units(mediator)
        units = torch.arange(n_units) if units is None else units.long().cpu()
        masks = torch.zeros(len(units), n_units, dtype=torch.bool)
        masks[torch.arange(len(units)), units] = True
        return self.run({mediator: masks})

    def joint(self, unit_sets: Sequence[dict[Mediator, torch.Tensor]]) -> torch.Tensor:
        """Δ [len(unit_sets), N]: each entry patches its {mediator: unit indices} jointly."""
        mediators = sorted({m for s in unit_sets for m in s})
        masks = {m: torch.zeros(len(unit_sets), self.setup.n_units(m), dtype=torch.bool) for m in mediators}
        for v, unit_set in enumerate(unit_sets):
            for m, units in unit_set.items():
                masks[m][v, units.long().cpu()] = True
        return self.run(masks)


def exact_effects(
    setup: MediationSetup,
    batch: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    units: dict[str, torch.Tensor] | None = None,
    baseline: torch.Tensor | None = None,
) -> EffectSums:
    """Exact single-unit effects of every mediator of ``setup`` (or of ``units[key]`` only) on ``batch``."""
    runner = ExactRunner(setup, batch, targets, baseline=baseline)
    sums = EffectSums(count=runner.n)
    for mediator in setup.mediators:
        chosen = None if units is None else units.get(mediator.key)
        if units is not None and (chosen is None or chosen.numel() == 0):
            continue
        sums.add(mediator.key, runner.single_units(mediator, chosen))
    return sums


def direct_effects(
    setup: MediationSetup,
    batch: dict[str, torch.Tensor],
    counterfactual_batch: dict[str, torch.Tensor],
    units: dict[str, torch.Tensor] | None = None,
) -> EffectSums:
    """NDE per unit (Vig): the counterfactual input with the unit held at its clean value, vs y_null.

    NDE_z = mean_x [ y_{x', z ← z(x)} / y(x) − 1 ]; the two inputs must align token by token.
    """
    clean, m_null = setup.capture(batch)
    return exact_effects(setup, counterfactual_batch, clean, units, baseline=m_null)
