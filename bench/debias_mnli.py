"""MNLI effect benchmark (not a test): every debiasing method on the shared MNLI pairs, same split, budget
and seeds, evaluated on the held-out split, its high- / low-overlap and hard subsets, and HANS-style pairs.

    python bench/debias_mnli.py                  # 5,000 of the 7,852 training pairs, 1 epoch, 1 seed (2 CPUs)
    python bench/debias_mnli.py --train-n 0 --epochs 2   # the whole 80 % split, 2 epochs (a GPU run)
    python bench/debias_mnli.py --seeds 3        # seeds 0, 1, 2 (the same for every method)
    python bench/debias_mnli.py --quick          # a few minutes: small subsets, 1 epoch, short grids

Data: ``../shared/data/mnli`` (MNLI dev-matched with the number of McCoy et al.'s 100 BERT runs that got each
pair right). The split is by uid with a fixed seed (``split_train_val``, seed 0), independent of the run
seed. Evaluation sets: ``heldout`` (20 %), ``high`` / ``low`` (held-out pairs with word overlap ≥ 0.8 /
≤ 0.2), ``hard`` (held-out pairs fewer than half of the 100 runs got right) and ``hans_like`` (our
HANS-style generator; scored entailment vs not). Hyper-parameters with a grid (JTT's λ_up, unit scaling's
α and unit share, the mask loss) are chosen on ``heldout`` accuracy only, never on HANS-style data.

Methods: ERM; with the hand-crafted overlap bias model (cross-fitted LR): reweighting, PoE, learned-mixin
+H, confidence regularisation (teacher: this seed's ERM model), TIE after ERM; bias experts (one-vs-rest
LR experts on the overlap features; and backbone experts, BiasExpertsBias); end-to-end self-debiasing;
JTT-style error-set upweighting; debiasing masks on the ERM model (all units, and only the top-NIE units of
a CMA run of the ERM model); CMA-guided unit scaling of the ERM model (α × the top-NIE [CLS] units).

Outputs: ``bench/results/debias_mnli{,_quick}.{json,md,png}`` and ``..._tradeoff.png`` (held-out accuracy
against the hard subset and HANS-style non-entailment for every configuration run, the targets shaded). Runs
go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
MNLI = "mnli/mnli_development_set_number_of_correct_responses.txt"
SETS = ("heldout", "high", "low", "hard", "hans_non_entailment", "hans_entailment")
ORDER = [
    "PoE",
    "experts (overlap LR) + PoE",
    "self-debias + PoE",
    "JTT",
    "reweight",
    "learned-mixin+H",
    "conf-reg",
    "masks (PoE) on ERM, top-NIE units",
    "masks (PoE) on ERM",
    "experts (MiniLM) + PoE",
]
OVERLAP_BIAS = {"class_path": "HansFeaturesBias", "init_args": {"lr_classes": "binary", "folds": 5}}


# ----------------------------------------------------------------------------------------------- data
def prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Split the shared MNLI pairs by uid, write train / held-out files, and name the evaluation subsets."""
    import csv

    from debiaslit.data.hans import generate_hans_like
    from debiaslit.data.nli_readers import read_nli_file, split_train_val
    from debiaslit.data.overlap import word_overlap
    from debiaslit.utils.paths import shared_data_dir

    path = shared_data_dir() / MNLI
    examples = read_nli_file(path).examples
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    correct = {f"{path.stem}:{r[0]}": int(r[4]) for r in rows}
    train, heldout = split_train_val(examples, 0.2, seed=0, option="--heldout")
    if args.train_n:
        train = sorted(random.Random(0).sample(train, min(args.train_n, len(train))), key=lambda e: e.uid)
    if args.heldout_n:
        heldout = sorted(
            random.Random(1).sample(heldout, min(args.heldout_n, len(heldout))), key=lambda e: e.uid
        )
    files = {}
    for name, split in (("train", train), ("heldout", heldout)):
        files[name] = workdir / f"mnli_{name}.jsonl"
        with files[name].open("w") as f:
            for e in split:
                record = {"pairID": e.uid.split(":")[1], "sentence1": e.premise, "sentence2": e.hypothesis}
                f.write(json.dumps({**record, "gold_label": e.label}) + "\n")
    overlap = {e.uid: word_overlap(e.premise, e.hypothesis) for e in heldout}
    subsets = {
        "high": {e.uid for e in heldout if overlap[e.uid] >= 0.8},
        "low": {e.uid for e in heldout if overlap[e.uid] <= 0.2},
        "hard": {e.uid for e in heldout if correct[e.uid] < 50},
    }
    return {
        "files": files,
        "train": train,
        "heldout": heldout,
        "hans": generate_hans_like(n_per_subcase=args.hans_n, seed=0),
        "subsets": subsets,
        "sizes": {"train": len(train), "heldout": len(heldout), **{k: len(v) for k, v in subsets.items()}},
    }


# -------------------------------------------------------------------------------------------- configs
def base_config(data: dict[str, Any], args: argparse.Namespace, seed: int, name: str) -> dict[str, Any]:
    """The shared experiment: MiniLM-L6, lr ``--lr``, 10 % warm-up, batch 32 grouped by length, max length
    128 (64 quick)."""
    return {
        "seed_everything": seed,
        "trainer": {
            "max_epochs": args.epochs,
            "accelerator": "auto",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "limit_val_batches": 0,  # the bench evaluates itself, on every subset, after training
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "logs", "name": name, "default_hp_metric": False},
            },
        },
        "model": {
            "class_path": "ERM",
            "init_args": {"backbone": "minilm-l6", "lr": args.lr, "warmup_ratio": 0.1},
        },
        "data": {
            "class_path": "NLIDataModule",
            "init_args": {
                "train": {"class_path": "NLIFile", "init_args": {"path": str(data["files"]["train"])}},
                "eval_sets": {
                    "heldout": {
                        "class_path": "NLIFile",
                        "init_args": {"path": str(data["files"]["heldout"])},
                    },
                },
                "seed": seed,
                "max_length": args.max_length,
                "batch_size": 32,
                "eval_batch_size": 128,
                "group_by_length": True,  # ~2x fewer padded tokens per step on MNLI pairs
            },
        },
        "checkpoint": {"save_last": False, "save_top_k": 0},
    }


def with_loss(
    loss: dict[str, Any], bias: dict[str, Any] | None = OVERLAP_BIAS, teacher: str | None = None
) -> Callable[[dict], None]:
    def edit(config: dict[str, Any]) -> None:
        config["model"]["init_args"]["loss"] = loss
        if bias is not None:
            config["data"]["init_args"]["bias"] = bias
        if teacher is not None:
            config["data"]["init_args"]["teacher"] = {
                "class_path": "CheckpointBias",
                "init_args": {"path": teacher},
            }

    return edit


def trained_methods(
    args: argparse.Namespace, erm: dict[str, str]
) -> dict[str, list[tuple[dict[str, Any], Callable[[dict], None]]]]:
    """Method -> grid of (hyper-parameters, config edit), each trained after ERM with the same budget."""
    experts_size = 300 if args.quick else 1000
    jtt_grid = [3.0] if args.quick else [3.0, 6.0]
    return {
        "reweight": [({}, with_loss({"class_path": "Reweight"}))],
        "PoE": [({}, with_loss({"class_path": "ProductOfExperts"}))],
        "learned-mixin+H": [
            ({}, with_loss({"class_path": "LearnedMixin", "init_args": {"entropy_weight": 0.03}}))
        ],
        "conf-reg": [({}, with_loss({"class_path": "ConfidenceRegularization"}, teacher=erm["ckpt"]))],
        "masks (PoE) on ERM": [({}, with_masks({"class_path": "AllUnits"}, erm))],
        "masks (PoE) on ERM, top-NIE units": [
            ({}, with_masks({"class_path": "TopCMAUnits", "init_args": {"top_percent": 5.0}}, erm))
        ],
        "experts (overlap LR) + PoE": [
            (
                {},
                with_loss(
                    {"class_path": "ProductOfExperts"},
                    {
                        "class_path": "HansFeaturesBias",
                        "init_args": {"lr_classes": "one_vs_rest", "folds": 5},
                    },
                ),
            )
        ],
        "experts (MiniLM) + PoE": [
            (
                {},
                with_loss(
                    {"class_path": "ProductOfExperts"},
                    {
                        "class_path": "BiasExpertsBias",
                        "init_args": {
                            "train_size": experts_size,
                            "epochs": 2,
                            "folds": 2 if args.quick else 3,
                            "max_length": args.max_length,
                        },
                    },
                ),
            )
        ],
        "self-debias + PoE": [
            ({}, with_loss({"class_path": "SelfDebias", "init_args": {"layer": 2}}, bias=None)),
        ],
        "JTT": [
            (
                {"upweight": up},
                with_loss(
                    {"class_path": "UpweightErrors", "init_args": {"upweight": up}},
                    {
                        "class_path": "FinetunedBias",
                        "init_args": {"folds": 1, "epochs": 1, "max_length": args.max_length},
                    },
                ),
            )
            for up in jtt_grid
        ],
    }


# ---------------------------------------------------------------------------------------- evaluation
def predict(module: Any, tokenizer: Any, examples: list, max_length: int) -> tuple[Any, Any]:
    """Main-model probabilities, and the self-debiasing head's when the loss has one."""
    import torch

    from debiaslit.losses import SelfDebias

    module.eval()
    probs, head = [], []
    # batches of similar length (less padding), put back in the examples' order at the end
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].premise) + len(examples[i].hypothesis))
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order)] = torch.arange(len(order))
    with torch.no_grad():
        for start in range(0, len(order), 128):
            chunk = [examples[i] for i in order[start : start + 128]]
            batch = tokenizer(
                [e.premise for e in chunk],
                [e.hypothesis for e in chunk],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            batch = {k: v.to(module.device) for k, v in batch.items()}
            logits, features = module.logits_and_features(batch)
            probs.append(logits.float().softmax(-1).cpu())
            if isinstance(module.loss, SelfDebias):
                head.append(module.loss.bias_logits(features).softmax(-1).cpu())
    return torch.cat(probs)[back], (torch.cat(head)[back] if head else None)


def scores(data: dict[str, Any], p_heldout: Any, p_hans: Any) -> dict[str, float]:
    """Accuracy on every evaluation set from the held-out and HANS-style probabilities."""
    from debiaslit.data.schema import NLI_LABELS

    ent = NLI_LABELS.index("entailment")
    gold = [NLI_LABELS.index(e.label) for e in data["heldout"]]
    right = [int(p) == y for p, y in zip(p_heldout.argmax(-1).tolist(), gold, strict=True)]
    out = {"heldout": statistics.fmean(right)}
    for name, uids in data["subsets"].items():
        out[name] = statistics.fmean(r for r, e in zip(right, data["heldout"], strict=True) if e.uid in uids)
    is_ent = (p_hans.argmax(-1) == ent).tolist()
    for label, key in (("non-entailment", "hans_non_entailment"), ("entailment", "hans_entailment")):
        hits = [
            (pred == (label == "entailment"))
            for pred, e in zip(is_ent, data["hans"], strict=True)
            if e.label == label
        ]
        out[key] = statistics.fmean(hits)
    return out


def bias_quality(datamodule: Any, heldout_probs: Any = None, data: dict[str, Any] | None = None) -> dict:
    """The bias model's accuracy / ECE, training set (out of sample) and held-out, as every run reports."""
    from debiaslit.bias import bias_report

    report = getattr(datamodule, "bias_reports", {}).get("bias")
    if report:
        train = report["train"]
        return {
            "train_acc": train["acc"],
            "train_ece": train["ece"],
            "out_of_sample": train["out_of_sample"],
            "heldout_acc": report["heldout"]["acc"],
            "heldout_ece": report["heldout"]["ece"],
        }
    if heldout_probs is not None:  # the self-debiasing head on held-out pairs it never trained on
        rep = bias_report(heldout_probs, data["heldout"])
        return {"heldout_acc": rep["acc"], "heldout_ece": rep["ece"], "out_of_sample": True}
    return {}


# ----------------------------------------------------------------------------------------------- runs
def fit(config: dict[str, Any], workdir: Path) -> Any:
    import yaml

    import debiaslit

    path = workdir / f"{config['trainer']['logger']['init_args']['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return debiaslit.fit(config=str(path))


def evaluate(cli: Any, data: dict[str, Any], args: argparse.Namespace) -> tuple[dict, Any, Any]:
    tokenizer = cli.datamodule.tokenizer
    p_heldout, head = predict(cli.model, tokenizer, data["heldout"], args.max_length)
    p_hans, _ = predict(cli.model, tokenizer, data["hans"], args.max_length)
    return scores(data, p_heldout, p_hans), p_heldout, head


def erm_and_post_hoc(data: dict, args: argparse.Namespace, seed: int, workdir: Path) -> dict[str, dict]:
    """ERM (with a CMA run of the final model and its checkpoint), then what needs only the ERM model:
    TIE and unit scaling; its checkpoint and neurons.csv go to the masks and conf-reg's teacher."""
    import torch

    from debiaslit.backbones.components import ComponentMap
    from debiaslit.bias import HansFeaturesBias, compute_bias_probs
    from debiaslit.cma.neurons import TopCMAUnits
    from debiaslit.counterfactual.inference import CounterfactualPostProcessor
    from debiaslit.methods.unit_scaling import scaled_units

    name = f"erm_s{seed}"
    config = base_config(data, args, seed, name)
    config["checkpoint"] = {"save_last": True, "save_top_k": 0}
    config["trainer"]["limit_val_batches"] = 1.0  # the CMA callback runs at the last validation
    config["trainer"]["callbacks"] = [
        {
            "class_path": "NIECallback",
            "init_args": {
                "every_n_epochs": args.epochs,
                "estimator": "attribution",
                "position": "cls",
                "intervention": "reference",  # the mean [CLS] activation of high-overlap pairs
                "probe": {
                    "class_path": "NLIProbe",
                    "init_args": {
                        "probe_set": "heldout",
                        "per_class": 16 if args.quick else 64,
                        "overlap_high": 80.0,  # HOL = the top fifth by overlap (DebiasNeuro: 95th percentile)
                        "overlap_low": 20.0,
                    },
                },
                "effect": "class_prob",
                "target_class": "entailment",
            },
        }
    ]
    cli = fit(config, workdir)
    results = {}
    erm, p_heldout, _ = evaluate(cli, data, args)
    results["ERM"] = {"scores": erm, "params": {}, "bias": {}}
    ckpt = workdir / "checkpoints" / name / "version_0" / "last.ckpt"
    neurons = next((workdir / "logs" / name / "version_0" / "cma").rglob("neurons.csv"))
    model, tokenizer = cli.model, cli.datamodule.tokenizer

    # TIE: c fitted on the held-out split's main / bias probabilities, never on HANS-style pairs
    bias = compute_bias_probs(
        HansFeaturesBias(), data["train"], {"heldout": data["heldout"], "hans": data["hans"]}
    )
    p_hans, _ = predict(model, tokenizer, data["hans"], args.max_length)
    post = CounterfactualPostProcessor("tie", "reference", num_labels=3)
    with torch.enable_grad():
        post.fit(p_heldout, bias.probs["heldout"])
    results["TIE after ERM"] = {
        "scores": scores(
            data, post.transform(p_heldout, bias.probs["heldout"]), post.transform(p_hans, bias.probs["hans"])
        ),
        "params": {"c": float(post.c.detach())},
        "bias": {"heldout_acc": bias.report["heldout"]["acc"], "heldout_ece": bias.report["heldout"]["ece"]},
    }

    # CMA-guided unit scaling: α and the share of units chosen on held-out accuracy
    cmap = ComponentMap.for_model(model.model)
    grid = [(a, p) for a in ((0.0, 0.5) if args.quick else (0.0, 0.5, 0.9)) for p in (0.5, 2.0)]
    rows = []
    for alpha, top in grid:
        units = TopCMAUnits(str(neurons), top_percent=top).resolve(cmap)
        with scaled_units(model.model, units, alpha, position=0):
            s = scores(
                data,
                *(predict(model, tokenizer, d, args.max_length)[0] for d in (data["heldout"], data["hans"])),
            )
        rows.append({"scores": s, "params": {"alpha": alpha, "top_percent": top}, "bias": {}})
    results["CMA unit scaling"] = chosen(rows)

    if seed == 0 and args.save_erm is not None:
        import shutil

        args.save_erm.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ckpt, args.save_erm)
    results["_erm"] = {"ckpt": str(ckpt), "neurons": str(neurons)}
    return results


def with_masks(units: dict[str, Any], erm: dict[str, str]) -> Callable[[dict], None]:
    """Debiasing masks (Meissner et al. 2022) trained with PoE on the ERM model's weights."""

    def edit(config: dict[str, Any]) -> None:
        spec = dict(units)
        if spec["class_path"] == "TopCMAUnits":
            spec["init_args"] = {**spec["init_args"], "neurons_csv": erm["neurons"]}
        config["model"] = {
            "class_path": "MaskMethod",
            "init_args": {
                "backbone": "minilm-l6",
                "init_weights_from": erm["ckpt"],
                "units": spec,
                "lr": 5e-3,
                "weight_decay": 0.0,
                "warmup_ratio": 0.0,
                "loss": {"class_path": "ProductOfExperts"},
            },
        }
        config["data"]["init_args"]["bias"] = OVERLAP_BIAS

    return edit


def run_seed(
    data: dict, args: argparse.Namespace, seed: int, workdir: Path, done: Callable[[dict], None]
) -> dict:
    """One seed of every method; ``done`` gets the results so far after each method (partial reports)."""
    results = erm_and_post_hoc(data, args, seed, workdir)
    erm = results.pop("_erm")
    done(results)
    methods = trained_methods(args, erm)
    for method in sorted(methods, key=ORDER.index):  # the new and the cheap first: a partial run has them
        grid = methods[method]
        if args.methods and method not in args.methods:
            continue
        rows = []
        for params, edit in grid:
            t0 = time.time()
            config = base_config(data, args, seed, f"m{len(results)}_s{seed}")
            edit(config)
            cli = fit(config, workdir)
            s, _, head = evaluate(cli, data, args)
            rows.append({"scores": s, "params": params, "bias": bias_quality(cli.datamodule, head, data)})
            print(f"[bench] seed {seed} {method} {params}: {s} ({time.time() - t0:.0f} s)", flush=True)
        results[method] = chosen(rows)
        done(results)
    return results


def chosen(rows: list[dict]) -> dict:
    """The grid point with the best held-out accuracy; every point is kept under ``grid`` (trade-off plot)."""
    best = max(rows, key=lambda r: r["scores"]["heldout"])
    return {**best, "grid": [{"params": r["params"], "scores": r["scores"]} for r in rows]}


# ---------------------------------------------------------------------------------------------- report
def summarise(per_seed: list[dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    summary = {}
    for method in per_seed[0]:
        summary[method] = {}
        for key in SETS:
            values = [seed_results[method]["scores"][key] for seed_results in per_seed]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[method][key] = {"mean": statistics.fmean(values), "std": std}
    return summary


def targets(summary: dict) -> dict[str, Any]:
    """The issue's targets: hard subset ≥ +10 pts, HANS-style non-entailment ≥ +15 pts, each at ≤ 1 pt
    held-out cost (and HANS-style entailment ≥ 50 % for the second)."""
    erm = summary["ERM"]
    met = {"hard": [], "hans": []}
    for method, s in summary.items():
        cost = erm["heldout"]["mean"] - s["heldout"]["mean"]
        if cost > 0.01:
            continue
        if s["hard"]["mean"] - erm["hard"]["mean"] >= 0.10:
            met["hard"].append(method)
        gain = s["hans_non_entailment"]["mean"] - erm["hans_non_entailment"]["mean"]
        if gain >= 0.15 and s["hans_entailment"]["mean"] >= 0.5:
            met["hans"].append(method)
    return met


def tradeoff(per_seed: list[dict]) -> dict[str, list[dict[str, Any]]]:
    """Method -> every configuration it ran (its grid, or its one run), scores averaged over seeds: the
    points of the trade-off plot between held-out accuracy and the bias-sensitive sets."""
    points = {}
    for method in per_seed[0]:
        grids = [r[method].get("grid", [r[method]]) for r in per_seed]
        points[method] = [
            {
                "params": point["params"],
                "scores": {k: statistics.fmean(g[i]["scores"][k] for g in grids) for k in SETS},
            }
            for i, point in enumerate(grids[0])
        ]
    return points


def describe(params: dict[str, float]) -> str:
    """A configuration as the tables show it: ``alpha 0.5, top_percent 2``, or a dash for none."""
    return ", ".join(f"{k} {v:g}" for k, v in params.items()) or "—"


def markdown(summary: dict, per_seed: list[dict], payload: dict) -> str:
    head = (
        "| method | held-out | high overlap | low overlap | hard | HANS-style non-ent | HANS-style ent "
        "| chosen | bias model acc / ECE (held-out) |"
    )
    lines = [payload["title"], "", head, "|---|" + "---:|" * 6 + "---|---|"]
    for method, s in summary.items():
        cells = " | ".join(
            f"{100 * s[k]['mean']:.1f}" + (f" ± {100 * s[k]['std']:.1f}" if len(per_seed) > 1 else "")
            for k in SETS
        )
        first = per_seed[0][method]
        params = describe(first["params"])
        bias = first["bias"]
        quality = (
            f"{100 * bias['heldout_acc']:.1f} / {bias.get('heldout_ece', float('nan')):.3f}"
            if "heldout_acc" in bias
            else "—"
        )
        lines.append(f"| {method} | {cells} | {params} | {quality} |")
    lines += ["", "Every configuration run (the trade-off plot's points; mean over seeds):", ""]
    lines += ["| method | configuration | held-out | hard | HANS-style non-ent | HANS-style ent |"]
    lines += ["|---|---|---:|---:|---:|---:|"]
    for method, points in payload["tradeoff"].items():
        for point in points:
            params = describe(point["params"])
            cells = " | ".join(
                f"{100 * point['scores'][k]:.1f}"
                for k in ("heldout", "hard", "hans_non_entailment", "hans_entailment")
            )
            lines.append(f"| {method} | {params} | {cells} |")
    met = payload["targets"]
    lines += [
        "",
        f"Sizes: {payload['sizes']}. Targets (≤ 1 pt"
        f" held-out cost): hard ≥ +10 pts: {met['hard'] or 'none'}; "
        f"HANS-style non-entailment ≥ +15 pts with entailment ≥ 50 %: {met['hans'] or 'none'}.",
        f"Wall clock {payload['seconds'] / 60:.1f} min on {payload['machine']}.",
    ]
    return "\n".join(lines)


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from debiaslit.utils.files import save_png

    methods = list(summary)
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        values = [100 * summary[method][k]["mean"] for k in SETS]
        ax.bar([j + i * width for j in range(len(SETS))], values, width, label=method)
    for j, k in enumerate(SETS):  # the ERM line per evaluation set
        ax.hlines(
            100 * summary["ERM"][k]["mean"], j - width / 2, j + 0.8 - width / 2, colors="black", linewidth=1
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(SETS))], SETS)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(textwrap.fill(title, 150), fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_tradeoff(points: dict[str, list[dict]], path: Path, title: str) -> None:
    """Held-out accuracy against the hard subset and HANS-style non-entailment, one marker per
    configuration (a method's grid joined by a line), the targets' regions shaded; a hollow marker has
    HANS-style entailment below 50 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from debiaslit.utils.files import save_png

    erm = points["ERM"][0]["scores"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, key, gain in ((axes[0], "hard", 10), (axes[1], "hans_non_entailment", 15)):
        x0, y0 = 100 * erm["heldout"], 100 * erm[key]
        ax.fill_between([x0 - 1, 100], y0 + gain, 100, color="tab:green", alpha=0.15, zorder=0)
        ax.axvline(x0, color="black", linewidth=0.8)
        ax.axhline(y0, color="black", linewidth=0.8)
        for i, (method, pts) in enumerate(points.items()):
            color = plt.get_cmap("tab20")(i % 20)  # 13+ methods: more colours than C0..C9
            xs = [100 * p["scores"]["heldout"] for p in pts]
            ys = [100 * p["scores"][key] for p in pts]
            if len(pts) > 1:
                ax.plot(xs, ys, color=color, linewidth=0.8)
            for x, y, p in zip(xs, ys, pts, strict=True):
                hollow = p["scores"]["hans_entailment"] < 0.5
                marker, size = ("*", 150) if method == "ERM" else ("o", 36)
                ax.scatter(
                    x,
                    y,
                    s=size,
                    marker=marker,
                    color=color,
                    facecolors="none" if hollow else color,
                    label=method,
                    zorder=4 if method == "ERM" else 3,
                )
        ax.set_xlabel("held-out accuracy (%)")
        ax.set_ylabel(f"{key} accuracy (%)")
        held = [100 * p["scores"]["heldout"] for pts in points.values() for p in pts]
        ax.set_xlim(min(held) - 2, max(held) + 2)
        ax.set_ylim(-3, 103)
        ax.set_title(f"target: ≥ +{gain} pts at ≤ 1 pt held-out cost (green)", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), fontsize=7, loc="lower center", ncol=5)
    fig.suptitle(textwrap.fill(title, 150), fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    save_png(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=1, help="run seeds 0 .. N-1, the same for every method")
    parser.add_argument("--quick", action="store_true", help="small subsets, 1 epoch, short grids (minutes)")
    parser.add_argument("--epochs", type=int, default=None, help="default 1")
    parser.add_argument(
        "--train-n", type=int, default=None, help="subsample the 80 %% split (5000; 0: all 7,852; quick: 600)"
    )
    parser.add_argument("--heldout-n", type=int, default=None, help="subsample the 20 %% split (quick: 300)")
    parser.add_argument(
        "--hans-n", type=int, default=None, help="HANS-style pairs per subcase (30; quick: 4)"
    )
    parser.add_argument("--max-length", type=int, default=None, help="default 128 (64 with --quick)")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=None,
        help="only these trained methods (ERM, TIE, unit scaling always)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--lr", type=float, default=1e-4, help="every method's learning rate (masks: 5e-3)")
    parser.add_argument(
        "--save-erm",
        type=Path,
        default=None,
        help="copy seed 0's ERM checkpoint here (e.g. for cma_speed.py)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the runs chdir into a temporary directory
    if args.save_erm is not None:
        args.save_erm = args.save_erm.resolve()
    quick = {"epochs": 1, "train_n": 600, "heldout_n": 300, "hans_n": 4, "max_length": 64}
    # one seed of every method in <= 90 min on 2 CPU cores: 5,000 of the 7,852 training pairs, 1 epoch
    full = {"epochs": 1, "train_n": 5000, "heldout_n": 0, "hans_n": 20, "max_length": 128}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    import torch

    torch.set_num_threads(args.threads)
    start = time.time()
    per_seed: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            data = prepare(args, Path(tmp))
            for seed in range(args.seeds):

                def done(results: dict, seed: int = seed) -> None:
                    write_reports([*per_seed[:seed], results], data, args, start, partial=True)

                per_seed.append(run_seed(data, args, seed, Path(tmp), done))
        finally:
            os.chdir(cwd)
    print(write_reports(per_seed, data, args, start, partial=False))


def write_reports(
    per_seed: list[dict], data: dict, args: argparse.Namespace, start: float, partial: bool
) -> str:
    """JSON + markdown + PNG of the methods every seed so far has; rewritten after each method, so an
    interrupted run leaves a report marked partial."""
    import torch

    from debiaslit.utils.files import write_text_atomic

    common = [m for m in per_seed[0] if all(m in r for r in per_seed)]
    per_seed = [{m: r[m] for m in common} for r in per_seed]
    summary = summarise(per_seed)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"{platform.machine()} CPU ({os.cpu_count()} cores)"
    )
    kind = (
        "QUICK run (small subsets, 1 epoch: a smoke test of the pipeline, not the result)"
        if args.quick
        else "full run"
    )
    if partial:
        kind += ", PARTIAL (interrupted or still running)"
    payload = {
        "title": (
            f"Debiasing methods on MNLI pairs, all-MiniLM-L6-v2, {kind}: {data['sizes']['train']} "
            f"training pairs, {args.epochs} epoch(s), seeds 0..{len(per_seed) - 1}; accuracy in %, "
            "hyper-parameters chosen on held-out."
        ),
        "settings": {k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()},
        "partial": partial,
        "sizes": data["sizes"],
        "per_seed": per_seed,
        "summary": summary,
        "targets": targets(summary),
        "tradeoff": tradeoff(per_seed),
        "seconds": time.time() - start,
        "machine": device,
    }
    stem = "debias_mnli_quick" if args.quick else "debias_mnli"
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / f"{stem}.json", json.dumps(payload, indent=2, default=float))
    table = markdown(summary, per_seed, payload)
    write_text_atomic(args.out / f"{stem}.md", table + "\n")
    plot(summary, args.out / f"{stem}.png", payload["title"])
    plot_tradeoff(payload["tradeoff"], args.out / f"{stem}_tradeoff.png", payload["title"])
    return table


if __name__ == "__main__":
    main()
