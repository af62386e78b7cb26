"""Shared pieces of the CMA tests: tiny models, probe batches, and the naive per-unit hook loop."""

from __future__ import annotations

import torch

from debiaslit.backbones import ComponentMap, load_backbone
from debiaslit.cma.mediators import Mediator, gather_positions
from debiaslit.cma.setup import logits_of, model_inputs

PAIRS = [
    ("the doctor said that the nurse was tired", "the nurse was tired"),
    ("a man saw the lawyer", "the lawyer saw a man"),
    ("the teacher helped the student", "the student was happy"),
]


def tiny(name: str, task: str):
    model, tok = load_backbone(name, task=task, num_labels=3, seed=3)
    return model.eval(), tok


def nli_batch(tok) -> dict[str, torch.Tensor]:
    enc = tok([p for p, _ in PAIRS], [h for _, h in PAIRS], padding=True, return_tensors="pt")
    return dict(enc)


def lm_batches(tok) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two-prompt base / counterfactual batches (same lengths) with pronoun ids and the slot position."""
    base = tok(["The nurse said that", "The doctor ran home because"], padding=True, return_tensors="pt")
    cf = tok(["The man said that", "The woman ran home because"], padding=True, return_tensors="pt")
    assert base["input_ids"].shape == cf["input_ids"].shape
    he, she = tok(" he")["input_ids"][0], tok(" she")["input_ids"][0]
    meta = {
        "anti_ids": torch.tensor([he, she]),
        "stereo_ids": torch.tensor([she, he]),
        "positions": torch.tensor([1, 1]),
    }
    return {**dict(base), **meta}, {**dict(cf), **meta}


def naive_deltas(model, measure, batch, mediator: Mediator, positions, target, units=None) -> torch.Tensor:
    """One full forward per unit with a hook that sets that unit (at ``positions``) to ``target``."""
    n_units = mediator.n_units(ComponentMap.for_model(model))
    chosen = range(n_units) if units is None else units
    with torch.no_grad():
        m0 = measure.log_y(logits_of(model(**model_inputs(batch))), batch)
    return torch.stack(
        [naive_joint(model, measure, batch, {mediator: ([unit], target)}, positions, m0) for unit in chosen]
    )


def clean_values(model, batch, mediator: Mediator, positions) -> torch.Tensor:
    store = {}
    site = mediator.site(ComponentMap.for_model(model))
    handle = site.register_hook(model, lambda a: store.setdefault("a", a.clone()) and None)
    with torch.no_grad():
        model(**model_inputs(batch))
    handle.remove()
    return gather_positions(store["a"], positions)


def naive_joint(model, measure, batch, patches, positions, m0=None) -> torch.Tensor:
    """Per-example Δ of one full forward with every {mediator: (units, target [N, P, D])} set at once
    (against ``m0``, the unpatched log y, computed when not given)."""
    cmap = ComponentMap.for_model(model)
    if m0 is None:
        with torch.no_grad():
            m0 = measure.log_y(logits_of(model(**model_inputs(batch))), batch)
    handles = []
    for mediator, (units, target) in patches.items():
        n_units = mediator.n_units(cmap)

        def hook(act: torch.Tensor, units=units, target=target, n_units=n_units) -> torch.Tensor:
            new, group = act.clone(), act.shape[-1] // n_units
            for i in range(act.shape[0]):
                for p_idx, p in enumerate(positions[i].tolist()):
                    for unit in units:
                        dims = slice(unit * group, (unit + 1) * group)
                        new[i, p, dims] = target[i, p_idx, dims]
            return new

        handles.append(mediator.site(cmap).register_hook(model, hook))
    try:
        with torch.no_grad():
            return measure.log_y(logits_of(model(**model_inputs(batch))), batch) - m0
    finally:
        for handle in handles:
            handle.remove()
