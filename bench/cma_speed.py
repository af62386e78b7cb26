"""CMA speed and ranking quality on a fine-tuned classifier: naive vs exact (and its limit) vs the screens.

NLI [CLS] setup (METHODS.md §1.3): all-MiniLM-L6-v2 fine-tuned here on MNLI dev-matched pairs (the shared
file; pairs disjoint from the probe and reference pool) unless ``--checkpoint`` gives weights, y =
p(entailment), every unit set to its mean [CLS] activation over the high-overlap (HOL) set, a class-balanced
probe batch.

* Speed: units sampled uniformly over every (component, layer) site; naive (one full forward per unit, the
  public NLI code's loop, on a sub-sample) and exact (row-aware, and whole-layer prefix caching for
  comparison) timed in interleaved repeats, medians, one torch thread.
* Limit: Σ over units of the FLOPs the unit truly needs (:func:`unit_flops`), at the FLOP rate of one dense
  batched forward of ``--max-rows`` sequences on this machine.
* Agreement: exact vs naive in float64 on the naive units, relative to the largest |NIE|.
* Ranking: on ground-truth sites (every unit exact), each screen's recall of the exact top-20 within its
  top-20 / top-60, within-site Spearman and the largest missed effect; sites whose exact effects are all 0
  reported as "no effect". Screens: attribution, AtP* QK fix, AtP* (+ GradDrop), integrated gradients.

    python bench/cma_speed.py                          # fine-tunes MiniLM first (≈ 1-2 min)
    python bench/cma_speed.py --quick                  # smaller everything, for development
    python bench/cma_speed.py --checkpoint path/to/last.ckpt
    python bench/debias_mnli.py --save-erm checkpoints/bench/erm_mnli_s0.ckpt   # then --checkpoint that file

Writes bench/results/cma_speed.json and .md (``--quick`` writes cma_speed_quick.*, ``--tag T`` cma_speed_T.*).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COMPONENTS = ("Q", "K", "V", "AO", "I", "O")
TARGETS = {
    "speedup_exact_vs_naive": (">=", 3.0),
    "exact_time_vs_limit": ("<=", 1.2),
    "max_rel_diff_exact_vs_naive_float64": ("<=", 1e-6),
    "screen_forward_equivalents": ("<=", 3.0),
    "screen_min_recall_top20_in_top60": (">=", 0.9),
    "screen_min_site_spearman": (">=", 0.8),
}


def unit_flops(component: str, layer: int, n_layers: int, t: int, h: int, inner: int) -> float:
    """Multiply-adds × 2 one example needs for one [CLS] unit patched at ``layer`` (the limit's model).

    Patched layer: only the [CLS] row from the patched sublayer on (Q: its attention row, AO dense, MLP;
    head: AO dense + MLP; AO: MLP; I: the output dense; O: nothing); K / V change one key / value column, so
    every query row's attention output and everything after it is recomputed (K: one score column, the
    weighted sums, AO dense, MLP; V: a rank-one update of the outputs, AO dense, MLP). Next layer: new
    Q/K/V projections of the changed row only, the rest in full. Layers in between: in full. Last layer:
    K/V projections of changed rows (all rows if earlier layers changed them), the [CLS] row otherwise.
    The task head (pooler + classifier on one row) is left out.
    """
    proj = 2 * h * h  # one row through one H×H projection
    mlp = 4 * h * inner  # one row through I and O dense
    attention_row = 4 * t * h  # one query row: scores + weighted sum
    last = n_layers - 1
    here = {
        "Q": attention_row + proj + mlp,
        "head": proj + mlp,
        "AO": mlp,
        "I": 2 * h * inner,
        "O": 0.0,
        "K": 2 * t * h + 2 * t * t * h + t * (proj + mlp),
        "V": 2 * t * h + t * (proj + mlp),
    }[component]
    if layer == last:
        return here
    changed_rows = 1 if component not in ("K", "V") else t
    total = here
    for above in range(layer + 1, n_layers):
        rows_in = changed_rows if above == layer + 1 else t
        if above == last:
            total += 2 * rows_in * proj + proj + attention_row + proj + mlp
        else:
            total += 3 * rows_in * proj + t * attention_row + t * (proj + mlp)
    return total


def dense_flops(n_layers: int, t: int, h: int, inner: int) -> float:
    """FLOPs of the encoder on one sequence (every layer, every row)."""
    return n_layers * (t * (8 * h * h + 4 * h * inner) + 4 * t * t * h)


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _load_examples(seed: int):
    from debiaslit.data.nli_readers import read_nli_file
    from debiaslit.data.synthetic import generate_shortcut_nli
    from debiaslit.utils.paths import shared_data_dir

    path = shared_data_dir() / "mnli" / "mnli_development_set_number_of_correct_responses.txt"
    if path.is_file():
        examples, source = read_nli_file(str(path)).examples, "MNLI dev-matched (shared file)"
    else:
        examples, source = (
            generate_shortcut_nli(n=6000, shortcut_rate=0.9, seed=seed),
            "synthetic shortcut NLI",
        )
    random.Random(seed).shuffle(examples)
    return examples, source


def finetune(model, tok, examples, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    """Plain AdamW fine-tuning of the whole classifier (the overlap shortcut is learned here or not)."""
    import torch

    from debiaslit.data.schema import NLI_LABELS

    torch.manual_seed(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    start, steps = time.perf_counter(), 0
    for _ in range(epochs):
        for lo in range(0, len(examples), batch_size):
            part = examples[lo : lo + batch_size]
            enc = tok([e.premise for e in part], [e.hypothesis for e in part], padding=True, truncation=True,
                      max_length=128, return_tensors="pt")  # fmt: skip
            labels = torch.tensor([NLI_LABELS.index(e.label) for e in part])
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    model.eval()
    return {"pairs": len(examples), "epochs": epochs, "steps": steps, "seconds": time.perf_counter() - start}


def accuracy(model, tok, examples) -> float:
    import torch

    from debiaslit.data.schema import NLI_LABELS

    correct = 0
    with torch.no_grad():
        for lo in range(0, len(examples), 64):
            part = examples[lo : lo + 64]
            enc = tok([e.premise for e in part], [e.hypothesis for e in part], padding=True, truncation=True,
                      max_length=128, return_tensors="pt")  # fmt: skip
            pred = model(**enc).logits.argmax(-1)
            correct += int((pred == torch.tensor([NLI_LABELS.index(e.label) for e in part])).sum())
    return correct / len(examples)


def naive_loop(setup, batch: dict, targets: dict, units: dict) -> dict:
    """The public code's way: one full forward per unit, a hook setting that unit at [CLS]."""
    import torch

    from debiaslit.cma.setup import logits_of, model_inputs

    with torch.no_grad():
        m_null = setup.measure.log_y(logits_of(setup.model(**model_inputs(batch))), batch)
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


def _exact(setup, batch, targets, units: dict, row_aware: bool) -> dict:
    from debiaslit.cma.exact import ExactRunner

    runner = ExactRunner(setup, batch, targets, row_aware=row_aware)
    return {m: runner.single_units(m, u) for m, u in units.items()}


def _say(message: str, since: float) -> None:
    print(f"[cma_speed {time.perf_counter() - since:6.0f} s] {message}", flush=True)


def _load_uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", default=None, help="a Lightning .ckpt with fine-tuned weights (skips fine-tuning)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer pairs, units and sites (development)")
    parser.add_argument("--backbone", default="minilm-l6", help="tiny-bert: a smoke run of the script itself")
    parser.add_argument("--per-class", type=int, default=2, help="probe pairs per gold label")
    parser.add_argument(
        "--units-per-site", type=int, default=8, help="timed exact units per (component, layer)"
    )
    parser.add_argument(
        "--naive-per-site", type=int, default=2, help="naive-loop units per (component, layer)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--finetune-pairs", type=int, default=1200)
    parser.add_argument("--max-rows", type=int, default=512)
    parser.add_argument("--ig-steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="results go to cma_speed_<tag>.{json,md}")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)"
    )
    args = parser.parse_args()
    if args.quick:
        args.units_per_site, args.naive_per_site, args.finetune_pairs = 6, 1, 480
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from debiaslit.backbones import ComponentMap, load_backbone
    from debiaslit.cma.attribution import attribution_deltas, ig_deltas
    from debiaslit.cma.effects import ClassProbability, ratio_effect
    from debiaslit.cma.exact import ExactRunner
    from debiaslit.cma.mediators import Mediator, mediators_for
    from debiaslit.cma.probe import NLIProbe
    from debiaslit.cma.ranking import NO_EFFECT, site_quality
    from debiaslit.cma.setup import Intervention, MediationSetup, model_inputs
    from debiaslit.data.encoded import EncodedNLI

    wall = time.perf_counter()
    load_before = _load_uptime()
    model, tok = load_backbone(args.backbone, num_labels=3, seed=args.seed)
    examples, source = _load_examples(args.seed)
    pool, train = examples[:3000], examples[3000 : 3000 + args.finetune_pairs]
    held_out = examples[3000 + args.finetune_pairs : 3300 + args.finetune_pairs]
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(
            {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        )
        training = {"checkpoint": args.checkpoint}
    else:
        training = finetune(model, tok, train, epochs=1, batch_size=32, lr=5e-5, seed=args.seed)
    model.eval()
    _say(f"model ready: {training}", wall)
    training["held_out_accuracy"] = accuracy(model, tok, held_out)
    training["held_out_pairs"] = len(held_out)
    dataset = EncodedNLI("bench", pool, tok, max_length=128)
    probe = NLIProbe(per_class=args.per_class, reference="high", seed=args.seed).build(
        dataset, tok.pad_token_id or 0
    )
    batch, _ = next(probe.batches(list(range(len(probe))), len(probe)))
    n, length = batch["input_ids"].shape
    cmap = ComponentMap.for_model(model)
    n_layers, h, inner = cmap.num_layers, cmap.hidden_size, cmap.intermediate_size
    every = mediators_for(cmap, list(COMPONENTS))
    measure = ClassProbability(0)  # p(entailment)
    setup = MediationSetup(model, measure, every, "cls", max_rows=args.max_rows)
    intervention = Intervention("reference")
    ref_rows = list(range(len(probe.reference)))
    reference = setup.reference_stats(probe.reference_batches(ref_rows, 64))
    clean, _ = setup.capture(batch)
    targets = setup.targets(clean, intervention, reference=reference)

    # ---------------------------------------------------------------- speed: uniform over all sites
    rng = torch.Generator().manual_seed(args.seed)
    units = {
        m: torch.randperm(setup.n_units(m), generator=rng)[: args.units_per_site].sort().values for m in every
    }
    naive_units = {m: u[: args.naive_per_site] for m, u in units.items()}
    n_exact, n_naive = sum(len(u) for u in units.values()), sum(len(u) for u in naive_units.values())

    def forward() -> None:
        with torch.no_grad():
            model(**model_inputs(batch))

    forward()
    t_forward, _ = _median_time(forward, 5)
    times: dict[str, list[float]] = {"naive": [], "exact_rows": [], "exact_layers": []}
    exact_out = None
    for _ in range(args.repeats):  # interleaved: load changes hit every variant alike
        for name, fn in (
            ("naive", lambda: naive_loop(setup, batch, targets, naive_units)),
            ("exact_rows", lambda: _exact(setup, batch, targets, units, row_aware=True)),
            ("exact_layers", lambda: _exact(setup, batch, targets, units, row_aware=False)),
        ):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            if name == "exact_rows":
                exact_out = out
        _say(f"timed repeat: { {k: round(v[-1], 2) for k, v in times.items()} }", wall)
    med = {k: statistics.median(v) for k, v in times.items()}
    naive_per_unit = med["naive"] / n_naive

    # limit: the FLOPs each unit needs, at the FLOP rate of one dense batched forward of max_rows rows
    big = {
        k: v.repeat(max(1, args.max_rows // n), *[1] * (v.dim() - 1)) for k, v in model_inputs(batch).items()
    }

    def dense() -> None:
        with torch.no_grad():
            model(**big)

    dense()
    t_dense, _ = _median_time(dense, 3)
    rate = dense_flops(n_layers, length, h, inner) * big["input_ids"].shape[0] / t_dense
    needed = sum(
        unit_flops(m.component, m.layer, n_layers, length, h, inner) * len(u) * n for m, u in units.items()
    )
    limit = needed / rate

    # agreement in float64 (batched and single kernels round differently in float32)
    model64 = copy.deepcopy(model).double()
    setup64 = MediationSetup(model64, measure, list(naive_units), "cls")
    reference64 = setup64.reference_stats(probe.reference_batches(ref_rows, 64))
    clean64, _ = setup64.capture(batch)
    targets64 = setup64.targets(clean64, intervention, reference=reference64)
    naive64 = naive_loop(setup64, batch, targets64, naive_units)
    exact64 = _exact(setup64, batch, targets64, naive_units, row_aware=True)
    largest = max(float(ratio_effect(d).mean(1).abs().max()) for d in naive64.values())
    diff64 = max(
        float((ratio_effect(exact64[m]).mean(1) - ratio_effect(naive64[m]).mean(1)).abs().max())
        for m in naive64
    )
    subset = {m: exact_out[m][[units[m].tolist().index(int(u)) for u in naive_units[m]]] for m in naive_units}
    naive32 = naive_loop(setup, batch, targets, naive_units)
    diff32 = max(
        float((ratio_effect(subset[m]).mean(1) - ratio_effect(naive32[m]).mean(1)).abs().max())
        for m in naive32
    )
    by_layer = {
        layer: sum(len(u) for m, u in units.items() if m.layer == layer)
        * naive_per_unit
        / (
            sum(
                unit_flops(m.component, layer, n_layers, length, h, inner) * len(u) * n
                for m, u in units.items()
                if m.layer == layer
            )
            / rate
        )
        for layer in range(n_layers)
    }  # naive time / limit per layer: what row-aware patching can at best give there

    _say("limit and float64 agreement done", wall)

    # ---------------------------------------------------------------- screens: cost for every unit
    def target_fn(z: dict) -> dict:
        return setup.targets(z, intervention, reference=reference)

    screen_cost = {}
    screen_all = {}
    for name, kwargs in (
        ("attribution", {}),
        ("atp_qk", {"qk_fix": True}),
        ("atp_star", {"qk_fix": True, "grad_drop": True}),
    ):
        attribution_deltas(setup, batch, target_fn, **kwargs)
        seconds, (deltas, _) = _median_time(
            lambda kwargs=kwargs: attribution_deltas(setup, batch, target_fn, **kwargs), 3
        )
        screen_cost[name] = seconds / t_forward
        screen_all[name] = {k: ratio_effect(v).mean(1) for k, v in deltas.items()}

    _say(f"screen costs (forward-equivalents): {screen_cost}", wall)
    # ---------------------------------------------------------------- ranking on ground-truth sites
    mid, last = n_layers // 2, n_layers - 1
    truth_sites = [Mediator(c, mid) for c in COMPONENTS if c != "I"] + [
        Mediator("I", last),
        Mediator("head", mid),
    ]
    if args.quick:
        truth_sites = [
            Mediator("Q", last - 1),
            Mediator("K", last - 1),
            Mediator("AO", last),
            Mediator("O", last),
        ]
    truth_setup = MediationSetup(model, measure, truth_sites, "cls", max_rows=args.max_rows)
    truth_ref = truth_setup.reference_stats(probe.reference_batches(ref_rows, 64))
    truth_clean, _ = truth_setup.capture(batch)
    truth_targets = truth_setup.targets(truth_clean, intervention, reference=truth_ref)
    start = time.perf_counter()
    runner = ExactRunner(truth_setup, batch, truth_targets)
    truth = {m.key: ratio_effect(runner.single_units(m)).mean(1) for m in truth_sites}
    t_truth = time.perf_counter() - start
    _say(f"ground truth of {len(truth_sites)} sites: {t_truth:.0f} s", wall)

    def truth_fn(z: dict) -> dict:
        return truth_setup.targets(z, intervention, reference=truth_ref)

    screens = {}
    for name, kwargs in (
        ("attribution", {}),
        ("atp_qk", {"qk_fix": True}),
        ("atp_star", {"qk_fix": True, "grad_drop": True}),
    ):
        deltas, _ = attribution_deltas(truth_setup, batch, truth_fn, **kwargs)
        screens[name] = {k: ratio_effect(v).mean(1) for k, v in deltas.items()}
    start = time.perf_counter()
    deltas, _ = ig_deltas(truth_setup, batch, truth_fn, steps=args.ig_steps)
    t_ig = time.perf_counter() - start
    screens[f"ig{args.ig_steps}"] = {k: ratio_effect(v).mean(1) for k, v in deltas.items()}
    # all-position mediation of Q / K (every token's query / key set to the HOL mean): saturation can occur
    all_sites = [Mediator("Q", last - 1), Mediator("K", last - 1)]
    all_setup = MediationSetup(model, measure, all_sites, "all", max_rows=args.max_rows)
    all_ref = all_setup.reference_stats(probe.reference_batches(ref_rows, 64))
    all_clean, _ = all_setup.capture(batch)
    all_targets = all_setup.targets(all_clean, intervention, reference=all_ref)
    all_runner = ExactRunner(all_setup, batch, all_targets)
    for m in all_sites:
        truth[f"{m.key}@all"] = ratio_effect(all_runner.single_units(m)).mean(1)

    def all_fn(z: dict) -> dict:
        return all_setup.targets(z, intervention, reference=all_ref)

    for name, kwargs in (
        ("attribution", {}),
        ("atp_qk", {"qk_fix": True}),
        ("atp_star", {"qk_fix": True, "grad_drop": True}),
    ):
        deltas, _ = attribution_deltas(all_setup, batch, all_fn, **kwargs)
        screens[name].update({f"{k}@all": ratio_effect(v).mean(1) for k, v in deltas.items()})
    # layer-0 [CLS] Q/K/V: identical for every input, so the targets equal the clean values exactly
    zero_sites = {
        f"{c}/layer_0": float((targets[f"{c}/layer_0"] - clean[f"{c}/layer_0"]).abs().max()) for c in "QKV"
    }
    floor = 1e-6 * max(float(v.abs().max()) for v in truth.values())
    table = {}
    for key, values in truth.items():
        table[key] = {
            name: site_quality(values, screen[key], floor, k_values=(20,), percent=1.0)
            for name, screen in screens.items()
            if key in screen
        }
    worst = {}  # per cheap screen: its worst site
    for name in ("attribution", "atp_qk", "atp_star"):
        ranked = [rows[name] for rows in table.values() if rows[name]["status"] != NO_EFFECT]
        worst[name] = {
            "min_recall_top20_in_top60": min(row["recall_k20_in_top_3k"] for row in ranked),
            "min_site_spearman": min(row["spearman"] for row in ranked),
        }
    best = max(worst, key=lambda k: (worst[k]["min_recall_top20_in_top60"], worst[k]["min_site_spearman"]))

    result = {
        "backbone": args.backbone,
        "training": training,
        "data": source,
        "probe_pairs": n,
        "probe_tokens_padded": length,
        "reference_pairs": len(probe.reference),
        "units_exact_timed": n_exact,
        "units_naive_timed": n_naive,
        "units_per_site": args.units_per_site,
        "repeats": args.repeats,
        "seconds_forward": t_forward,
        "seconds": {k: {"median": med[k], "all": v} for k, v in times.items()},
        "seconds_naive_per_unit": naive_per_unit,
        "seconds_exact_rows_per_unit": med["exact_rows"] / n_exact,
        "seconds_exact_layers_per_unit": med["exact_layers"] / n_exact,
        "seconds_limit": limit,
        "flop_rate_gflops": rate / 1e9,
        "speedup_exact_vs_naive": naive_per_unit * n_exact / med["exact_rows"],
        "speedup_exact_layers_vs_naive": naive_per_unit * n_exact / med["exact_layers"],
        "exact_time_vs_limit": med["exact_rows"] / limit,
        "best_possible_speedup_by_layer": by_layer,
        "max_rel_diff_exact_vs_naive_float64": diff64 / largest,
        "max_rel_diff_exact_vs_naive_float32": diff32
        / max(float(ratio_effect(d).mean(1).abs().max()) for d in naive32.values()),
        "screen_forward_equivalents_all_units": screen_cost,
        "screen_worst_site": worst,
        "screen_for_targets": best,
        "screen_forward_equivalents": screen_cost[best],
        "seconds_ground_truth": t_truth,
        "seconds_ig_truth_sites": t_ig,
        "ig_forward_equivalents_truth_sites": t_ig / t_forward,
        "layer0_cls_qkv_max_abs_target_minus_clean": zero_sites,
        "ranking": table,
        "screen_min_recall_top20_in_top60": worst[best]["min_recall_top20_in_top60"],
        "screen_min_site_spearman": worst[best]["min_site_spearman"],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "load_before": load_before,
        "load_after": _load_uptime(),
        "wall_seconds": time.perf_counter() - wall,
        "command": "python bench/cma_speed.py"
        + (" --quick" if args.quick else "")
        + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
        + (f" --tag {args.tag}" if args.tag else ""),
    }
    result["targets"] = {
        key: {
            "target": f"{op} {bound:g}",
            "value": result[key],
            "met": bool(result[key] <= bound if op == "<=" else result[key] >= bound),
        }
        for key, (op, bound) in TARGETS.items()
    }
    suffix = (
        ("_quick" if args.quick else "")
        + ("" if args.backbone == "minilm-l6" else f"_{args.backbone}")
        + (f"_{args.tag}" if args.tag else "")
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"cma_speed{suffix}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    markdown = _markdown(result)
    (RESULTS / f"cma_speed{suffix}.md").write_text(markdown + "\n")
    print(markdown)


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _markdown(r: dict) -> str:
    t, sec = r["training"], r["seconds"]
    trained = (
        f"fine-tuned here on {t['pairs']} MNLI pairs ({t['steps']} steps, {t['seconds']:.0f} s)"
        if "pairs" in t
        else f"checkpoint {t['checkpoint']}"
    )
    lines = [
        f"CMA speed and ranking, {r['backbone']} {trained}, accuracy {t['held_out_accuracy']:.3f} on "
        f"{t['held_out_pairs']} pairs ({'held out' if 'pairs' in t else 'maybe among its training pairs'})"
        f". {r['data']}: {r['probe_pairs']} probe pairs × "
        f"{r['probe_tokens_padded']} tokens, HOL reference ({r['reference_pairs']} pairs), [CLS] units "
        f"set to the HOL mean, y = p(entailment). {r['machine']}. Load: before `{r['load_before']}`, after "
        f"`{r['load_after']}`. Wall {r['wall_seconds']:.0f} s. `{r['command']}`",
        "",
        "| measure | value | target | met |",
        "|---|---:|---|---|",
        *(
            _row(k, f"{v['value']:.3g}", v["target"], "yes" if v["met"] else "no")
            for k, v in r["targets"].items()
        ),
        _row("speedup, whole-layer prefix caching only", f"{r['speedup_exact_layers_vs_naive']:.3g}", "", ""),
        _row(
            "max_rel_diff_exact_vs_naive_float32", f"{r['max_rel_diff_exact_vs_naive_float32']:.3g}", "", ""
        ),
        "",
        f"Screen targets use the cheap screen whose worst site is best: `{r['screen_for_targets']}`. "
        "Worst site per screen: "
        + "; ".join(
            f"{k}: recall@20 in 60 {v['min_recall_top20_in_top60']:.2f}, "
            f"Spearman {v['min_site_spearman']:.3f}"
            for k, v in r["screen_worst_site"].items()
        ),
        "",
        f"Timing (medians of {r['repeats']} interleaved repeats; {r['units_per_site']} units per site, all "
        "36 sites):",
        "",
        "| estimator | units | median s | per unit (ms) |",
        "|---|---:|---:|---:|",
    ]
    n_exact, n_naive = r["units_exact_timed"], r["units_naive_timed"]
    for name, units, seconds in (
        ("naive loop (one forward per unit)", n_naive, sec["naive"]["median"]),
        ("exact, row-aware", n_exact, sec["exact_rows"]["median"]),
        ("exact, whole layers from the patched one", n_exact, sec["exact_layers"]["median"]),
        (f"limit: FLOPs each unit needs at {r['flop_rate_gflops']:.1f} GFLOP/s", n_exact, r["seconds_limit"]),
    ):
        lines.append(_row(name, units, f"{seconds:.2f}", f"{1e3 * seconds / units:.2f}"))
    lines += [
        "",
        "Best possible speedup over naive by layer (naive time / limit): "
        + ", ".join(f"layer {k}: {v:.1f}×" for k, v in r["best_possible_speedup_by_layer"].items()),
        "",
        "Screen cost for all 20,736 units, forward-equivalents: "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["screen_forward_equivalents_all_units"].items())
        + f"; IG on the ground-truth sites only: {r['ig_forward_equivalents_truth_sites']:.0f}.",
        "",
        "Ranking per ground-truth site (every unit exact): recall of the exact top-20 in the screen's top-20 "
        "/ top-60 and of the exact top 1 % in the top 3 %, within-site Spearman, largest exact effect "
        "outside the screen's top-60 relative to the top one:",
        "",
        "| site | units | max exact NIE | screen | recall@20 in 20 | recall@20 in 60 | recall 1 % in 3 % "
        "| Spearman | missed / top |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for key, rows in r["ranking"].items():
        for name, row in rows.items():
            head = (key, row["n_units"], f"{row['max_exact']:.3g}", name)
            if row["status"] == "no effect":
                lines.append(_row(*head, "no effect", "", "", "", ""))
                continue
            cells = ("recall_k20_in_top_k", "recall_k20_in_top_3k", "recall_p1_in_top_3k")
            lines.append(
                _row(*head, *(f"{row[c]:.2f}" for c in cells), f"{row['spearman']:.3f}",
                     f"{row['max_missed_vs_top']:.2f}")
            )  # fmt: skip
    zero = r["layer0_cls_qkv_max_abs_target_minus_clean"]
    lines += [
        "",
        "Layer-0 [CLS] Q/K/V: max |target − clean| = "
        + ", ".join(f"{k} {v:.2g}" for k, v in zero.items())
        + " (the [CLS] activation there is the same for every input, so every NIE there is exactly 0).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
