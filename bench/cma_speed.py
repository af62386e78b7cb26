"""CMA speed: naive per-unit patching vs exact batched (and its limit) vs attribution, one run, one machine.

NLI [CLS] setup (METHODS.md §1.3): y = p(entailment), every unit set to its mean [CLS] activation over
the high-overlap (HOL) set, a class-balanced probe batch from MNLI dev-matched (the shared file; a
synthetic shortcut set when absent). Units: every Q/K/V/AO/I/O unit of one full layer plus a random
sample of the others.

* naive: one full forward per unit over the whole probe batch (the public NLI code's loop), on a sample
  of the exact units; its per-unit time is extrapolated to the exact set and to every unit;
* exact batched (``debiaslit.cma.exact``) on every selected unit, and its limit: the sum over units of
  the measured time of recomputing only the layers from the unit's layer up for the probe batch;
* attribution (``debiaslit.cma.attribution``) for every unit of every layer, in forward-equivalents.

    python bench/cma_speed.py                                  # all-MiniLM-L6-v2 (tiny-bert if absent)
    python bench/cma_speed.py --init-weights-from checkpoints/quickstart/version_0/last.ckpt

Writes bench/results/cma_speed.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {
    "max_rel_diff_exact_vs_naive": ("<=", 1e-5),
    "speedup_exact_vs_naive": (">=", 1.3),
    "exact_time_vs_limit": ("<=", 1.3),
    "attribution_forward_equivalents": ("<=", 3.0),
    "spearman_attribution_vs_exact": (">=", 0.8),
}


def _timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _probe_data(backbone: str, per_class: int, seed: int):
    from debiaslit.backbones import load_tokenizer
    from debiaslit.cma.probe import NLIProbe
    from debiaslit.data.encoded import EncodedNLI
    from debiaslit.data.nli_readers import read_nli_file
    from debiaslit.data.synthetic import generate_shortcut_nli
    from debiaslit.utils.paths import shared_data_dir

    path = shared_data_dir() / "mnli" / "mnli_development_set_number_of_correct_responses.txt"
    if path.is_file():
        examples, source = read_nli_file(str(path)).examples, "MNLI dev-matched (shared file)"
        examples = random.Random(seed).sample(examples, 3000)
    else:
        examples, source = generate_shortcut_nli(n=3000, shortcut_rate=0.9, seed=seed), "synthetic"
    tok = load_tokenizer(backbone)
    dataset = EncodedNLI("bench", examples, tok, max_length=128)
    probe = NLIProbe(per_class=per_class, reference="high", seed=seed).build(dataset, tok.pad_token_id or 0)
    return probe, source


def naive_loop(setup, batch: dict, targets: dict, m_null, units: dict) -> dict:
    """The public code's way: one full forward per unit, a hook setting that unit at [CLS]."""
    import torch

    from debiaslit.cma.setup import logits_of, model_inputs

    out = {}
    n = batch["input_ids"].shape[0]
    for med, chosen in units.items():
        site, target, rows = med.site(setup.cmap), targets[med.key], []
        for unit in chosen.tolist():

            def hook(act: torch.Tensor, unit: int = unit, target: torch.Tensor = target) -> torch.Tensor:
                new = act.clone()
                new[torch.arange(n), 0, unit] = target[:, 0, unit].to(act.dtype)
                return new

            handle = site.register_hook(setup.model, hook)
            with torch.no_grad():
                m = setup.measure.log_y(logits_of(setup.model(**model_inputs(batch))), batch)
            handle.remove()
            rows.append(m - m_null)
        out[med] = torch.stack(rows)
    return out


def _rel_diff(naive: dict, exact: dict) -> float:
    """max |exact − naive| / max |naive| over the compared units' NIE."""
    from debiaslit.cma.effects import ratio_effect

    diff = max(
        float((ratio_effect(exact[m]).mean(1) - ratio_effect(d).mean(1)).abs().max())
        for m, d in naive.items()
    )
    return diff / max(float(ratio_effect(d).mean(1).abs().max()) for d in naive.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--init-weights-from", default=None, help="a Lightning .ckpt with fine-tuned weights")
    parser.add_argument("--per-class", type=int, default=2, help="probe pairs per gold label")
    parser.add_argument("--full-layer", type=int, default=5, help="the layer whose every unit is patched")
    parser.add_argument("--sample", type=int, default=8, help="sampled units per other (component, layer)")
    parser.add_argument("--naive-per-component", type=int, default=16, help="naive loop: units per component")
    parser.add_argument("--max-rows", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from debiaslit.backbones import ComponentMap, load_backbone
    from debiaslit.cma.attribution import attribution_deltas
    from debiaslit.cma.effects import ClassProbability, ratio_effect
    from debiaslit.cma.exact import ExactRunner
    from debiaslit.cma.mediators import mediators_for
    from debiaslit.cma.selection import spearman
    from debiaslit.cma.setup import Intervention, MediationSetup, logits_of, model_inputs
    from debiaslit.errors import ConfigError

    backbone = args.backbone
    try:
        model, _ = load_backbone(backbone, num_labels=3, seed=args.seed)
    except ConfigError:
        backbone = "tiny-bert"
        model, _ = load_backbone(backbone, num_labels=3, seed=args.seed)
    if args.init_weights_from:
        state = torch.load(args.init_weights_from, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(
            {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        )
    model.eval()
    torch.manual_seed(args.seed)
    probe, source = _probe_data(backbone, args.per_class, args.seed)
    batch, _ = next(probe.batches(list(range(len(probe))), len(probe)))
    n = batch["input_ids"].shape[0]
    cmap = ComponentMap.for_model(model)
    components = ["Q", "K", "V", "AO", "I", "O"]
    every = mediators_for(cmap, components)
    setup = MediationSetup(model, ClassProbability(0), every, "cls", max_rows=args.max_rows)
    intervention = Intervention("reference")
    reference = setup.reference_stats(probe.reference_batches(list(range(len(probe.reference))), 64))
    clean, m_null = setup.capture(batch)
    targets = setup.targets(clean, intervention, reference=reference)

    # units: a full layer + a sample of every other (component, layer)
    rng = torch.Generator().manual_seed(args.seed)
    units = {}
    for med in every:
        n_units = setup.n_units(med)
        if med.layer == args.full_layer:
            units[med] = torch.arange(n_units)
        else:
            units[med] = torch.randperm(n_units, generator=rng)[: args.sample].sort().values
    n_exact = sum(len(u) for u in units.values())
    n_all = sum(setup.n_units(m) for m in every)

    # one plain forward over the probe batch
    def forward() -> torch.Tensor:
        with torch.no_grad():
            return logits_of(model(**model_inputs(batch)))

    forward()
    t_forward, _ = _timed(forward, repeats=5)

    # naive: one forward per unit, hook on the component's activation
    naive_units = {m: u[: args.naive_per_component] for m, u in units.items() if m.layer == args.full_layer}
    naive_units.update({m: u[:2] for m, u in units.items() if m.layer != args.full_layer})

    t_naive, naive_deltas = _timed(lambda: naive_loop(setup, batch, targets, m_null, naive_units))
    n_naive = sum(len(u) for u in naive_units.values())
    naive_per_unit = t_naive / n_naive

    # exact batched on every selected unit
    def exact() -> dict:
        runner = ExactRunner(setup, batch, targets)
        return {m: runner.single_units(m, u) for m, u in units.items()}

    t_exact, exact_deltas = _timed(exact)

    # limit: per layer, the time to recompute only that layer and the ones above for the probe batch
    runner = ExactRunner(setup, batch, targets)
    suffix = {}
    for layer in range(cmap.num_layers):

        def rerun(layer: int = layer) -> None:
            with torch.no_grad(), runner.skip_below(layer, 1):
                model(**model_inputs(batch))

        rerun()
        suffix[layer], _ = _timed(rerun, repeats=5)
    limit = sum(suffix[m.layer] * len(u) for m, u in units.items())

    # attribution for every unit of every layer (the reference forward is shared with exact)
    def attribution() -> dict:
        return attribution_deltas(
            setup, batch, lambda z: setup.targets(z, intervention, reference=reference)
        )[0]

    attribution()
    t_attr, estimate = _timed(attribution, repeats=3)

    # agreement on the naive units: in the timed float32 runs, and in float64 (batched kernels round
    # differently from single-batch ones; float64 shows the algorithms agree beyond that rounding)
    subset = {
        m: exact_deltas[m][[units[m].tolist().index(int(u)) for u in naive_units[m]]] for m in naive_units
    }
    rel_diff_fp32 = _rel_diff(naive_deltas, subset)
    model64 = copy.deepcopy(model).double()
    setup64 = MediationSetup(model64, ClassProbability(0), list(naive_units), "cls")
    reference64 = setup64.reference_stats(probe.reference_batches(list(range(len(probe.reference))), 64))
    clean64, m_null64 = setup64.capture(batch)
    targets64 = setup64.targets(clean64, intervention, reference=reference64)
    runner64 = ExactRunner(setup64, batch, targets64)
    rel_diff_fp64 = _rel_diff(
        naive_loop(setup64, batch, targets64, m_null64, naive_units),
        {m: runner64.single_units(m, u) for m, u in naive_units.items()},
    )
    exact_nie = {m: ratio_effect(d).mean(1) for m, d in exact_deltas.items()}
    est_nie = {m: ratio_effect(estimate[m.key][units[m]]).mean(1) for m in units}
    by_component = {
        c: spearman(
            torch.cat([est_nie[m] for m in units if m.component == c]),
            torch.cat([exact_nie[m] for m in units if m.component == c]),
        )
        for c in components
    }
    full_layer_by_component = {
        c: spearman(
            torch.cat([est_nie[m] for m in units if m.component == c and m.layer == args.full_layer]),
            torch.cat([exact_nie[m] for m in units if m.component == c and m.layer == args.full_layer]),
        )
        for c in components
    }
    overall = spearman(torch.cat(list(est_nie.values())), torch.cat(list(exact_nie.values())))

    result = {
        "backbone": backbone,
        "weights": args.init_weights_from or "pretrained encoder, seeded random classifier head",
        "data": source,
        "probe_pairs": n,
        "probe_tokens_padded": int(batch["input_ids"].shape[1]),
        "reference_pairs": len(probe.reference),
        "units_exact": n_exact,
        "units_naive": n_naive,
        "units_all": n_all,
        "full_layer": args.full_layer,
        "seconds_forward": t_forward,
        "seconds_naive": t_naive,
        "seconds_naive_per_unit": naive_per_unit,
        "seconds_exact": t_exact,
        "seconds_exact_limit": limit,
        "seconds_suffix_by_layer": suffix,
        "seconds_attribution_all_units": t_attr,
        "seconds_naive_all_units_extrapolated": naive_per_unit * n_all,
        "speedup_exact_vs_naive": naive_per_unit * n_exact / t_exact,
        "exact_time_vs_limit": t_exact / limit,
        "max_rel_diff_exact_vs_naive": rel_diff_fp64,
        "max_rel_diff_exact_vs_naive_float32": rel_diff_fp32,
        "attribution_forward_equivalents": t_attr / t_forward,
        "speedup_attribution_vs_naive_all_units": naive_per_unit * n_all / t_attr,
        "spearman_attribution_vs_exact": overall,
        "spearman_attribution_vs_exact_by_component": by_component,
        "spearman_attribution_vs_exact_full_layer_by_component": full_layer_by_component,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "max_rows": args.max_rows,
    }
    checks = {}
    for key, (op, bound) in TARGETS.items():
        value = result[key]
        checks[key] = {
            "target": f"{op} {bound:g}",
            "met": bool(value <= bound if op == "<=" else value >= bound),
        }
    result["targets"] = checks
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cma_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"CMA speed, {backbone} ({result['weights']}), {source}: {n} probe pairs × "
        f"{result['probe_tokens_padded']} tokens, HOL reference ({result['reference_pairs']} pairs), "
        f"[CLS] units. {result['machine']}.",
        "",
        "| measure | value | target | met |",
        "|---|---:|---|---|",
    ]
    for key, (op, bound) in TARGETS.items():
        lines.append(
            f"| {key} | {result[key]:.3g} | {op} {bound:g} | {'yes' if checks[key]['met'] else 'no'} |"
        )
    lines += [
        f"| max_rel_diff_exact_vs_naive_float32 (timed runs) | {rel_diff_fp32:.3g} | | |",
        f"| speedup_attribution_vs_naive_all_units | {naive_per_unit * n_all / t_attr:.3g} | | |",
        "",
        "| estimator | units | seconds | per unit (ms) |",
        "|---|---:|---:|---:|",
        f"| naive loop (one forward per unit) | {n_naive} | {t_naive:.2f} | {1e3 * naive_per_unit:.2f} |",
        f"| exact batched, prefix-cached | {n_exact} | {t_exact:.2f} | {1e3 * t_exact / n_exact:.2f} |",
        f"| limit: Σ time of the layers above each unit | {n_exact} | {limit:.2f} | "
        f"{1e3 * limit / n_exact:.2f} |",
        f"| attribution (every unit) | {n_all} | {t_attr:.2f} | {1e3 * t_attr / n_all:.4f} |",
        f"| naive, all units (extrapolated) | {n_all} | {naive_per_unit * n_all:.0f} | "
        f"{1e3 * naive_per_unit:.2f} |",
        "",
        "| Spearman(attribution, exact) | " + " | ".join(components) + " | all |",
        "|---|" + "---:|" * (len(components) + 1),
        "| full layer + sample | "
        + " | ".join(f"{by_component[c]:.2f}" for c in components)
        + f" | {overall:.2f} |",
        f"| layer {args.full_layer} only | "
        + " | ".join(f"{full_layer_by_component[c]:.2f}" for c in components)
        + " | |",
    ]
    (RESULTS / "cma_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
