"""Effect benchmark (not a test): ERM vs the debiasing methods on the offline quickstart setup
(all-MiniLM-L6-v2, synthetic NLI whose word overlap predicts the label at a shortcut rate of 90 % and 70 %),
several seeds. The headline is accuracy where overlap carries no information (no-shortcut): a method that
only flips the shortcut raises HANS-style non-entailment but not that; in-distribution and HANS-style
accuracies are reported next to it.

    python bench/debias_effect.py                 # 3 seeds; writes bench/results/debias_effect.{json,md}
    python bench/debias_effect.py --seeds 0 --epochs 1 --train-n 600 --out /tmp/x   # a quick look

The quickstart configs are used as they are except for the overrides in ``run_one``: scaled down by
default (1,800 instead of 2,400 generated pairs, 300 instead of 600 no-shortcut pairs, 10 instead of 20
HANS-style pairs per subcase) so that nine runs finish in about half an hour on a shared 2-core CPU;
``--train-n 2400 --eval-n 600 --hans-n 20`` is the full quickstart. A seed sets ``seed_everything``
(dropout) and ``data.seed`` (training order, held-out split); the classifier head's initialisation is
the same in every run (``load_backbone`` seeds it with 0). Runs go to a temporary
directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
#: method -> (config, extra overrides)
METHODS = {
    "ERM": ("configs/quickstart.yaml", {}),
    "reweight": ("configs/reweight_quickstart.yaml", {}),
    "PoE": ("configs/poe_quickstart.yaml", {}),
    "experts + PoE": (
        "configs/poe_quickstart.yaml",
        {"data.init_args.bias.init_args.lr_classes": "one_vs_rest"},
    ),
    "self-debias": ("configs/self_debias_quickstart.yaml", {}),
    "JTT": ("configs/jtt_quickstart.yaml", {}),
}
METRICS = {
    "in_dist_acc": "val/in_dist/acc",
    "no_shortcut_acc": "val/no_shortcut/acc",
    "hans_non_entailment_acc": "val/hans_like/non-entailment_acc",
    "hans_entailment_acc": "val/hans_like/entailment_acc",
}


def run_one(method: str, seed: int, rate: float, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    import debiaslit

    config, extra = METHODS[method]
    overrides = {
        **extra,
        "data.init_args.train.shortcut_rate": rate,
        "seed_everything": seed,  # dropout
        "data.init_args.seed": seed,  # training order and the held-out split
        "trainer.max_epochs": args.epochs,
        "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
        "trainer.logger.init_args.save_dir": str(workdir / "logs"),
        "data.init_args.train.n": args.train_n,
        "data.init_args.eval_sets.no_shortcut.n": args.eval_n,
        "data.init_args.eval_sets.hans_like.n": args.hans_n,
        "checkpoint.save_last": False,
        "checkpoint.save_top_k": 0,
    }
    cli = debiaslit.fit(config=str(REPO / config), overrides=overrides)
    out = {name: float(cli.trainer.callback_metrics[key]) for name, key in METRICS.items()}
    reports = getattr(cli.datamodule, "bias_reports", {}).get("bias")
    if reports:
        out["bias_train_acc"] = reports["train"]["acc"]
        out["bias_train_ece"] = reports["train"]["ece"]
    return out


def summarise(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    summary = {}
    for method, rows in runs.items():
        summary[method] = {}
        for key in rows[0]:
            values = [r[key] for r in rows]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[method][key] = {"mean": statistics.fmean(values), "std": std}
    return summary


def markdown(summary: dict, args: argparse.Namespace, seconds: float) -> str:
    def cell(m: str, k: str) -> str:
        s = summary[m].get(k)
        return "—" if s is None else f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"

    lines = [
        f"Debiasing methods, all-MiniLM-L6-v2, synthetic shortcut NLI (overlap predicts the label at the "
        f"shortcut rate), {args.train_n} generated pairs (10 % held out as in-distribution), {args.epochs} "
        f"epoch(s), seeds {args.seeds}; mean ± std over seeds, accuracy in %. Headline: no-shortcut.",
        "",
        "| shortcut rate | method | **no-shortcut** | in-distribution | HANS-style non-entailment "
        "| HANS-style entailment | bias model acc / ECE (train, out of sample) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for key in summary:
        rate, method = key.split(" ", 1)
        bias = "—"
        if "bias_train_acc" in summary[key]:
            acc, ece = summary[key]["bias_train_acc"]["mean"], summary[key]["bias_train_ece"]["mean"]
            bias = f"{100 * acc:.1f} / {ece:.3f}"
        lines.append(
            f"| {rate} | {method} | **{cell(key, 'no_shortcut_acc')}** | {cell(key, 'in_dist_acc')} | "
            f"{cell(key, 'hans_non_entailment_acc')} | {cell(key, 'hans_entailment_acc')} | {bias} |"
        )
    lines += ["", f"Wall clock {seconds / 60:.1f} min on {platform.machine()} CPU ({os.cpu_count()} cores)."]
    return "\n".join(lines)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-n", type=int, default=1800)
    parser.add_argument("--eval-n", type=int, default=300)
    parser.add_argument("--hans-n", type=int, default=10, help="HANS-style pairs per subcase (30 subcases)")
    parser.add_argument("--shortcut-rates", type=float, nargs="+", default=[0.9, 0.7])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a shared CPU)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    start = time.time()
    runs: dict[str, list[dict[str, float]]] = {
        f"{r} {m}": [] for r in args.shortcut_rates for m in args.methods
    }
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for seed in args.seeds:
                for key in runs:
                    rate, method = key.split(" ", 1)
                    t0 = time.time()
                    runs[key].append(run_one(method, seed, float(rate), args, Path(tmp)))
                    took = time.time() - t0
                    print(f"[bench] {key} seed {seed}: {runs[key][-1]} ({took:.0f} s)", flush=True)
        finally:
            os.chdir(cwd)
    seconds = time.time() - start
    summary = summarise(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    payload = {"settings": settings, "configs": METHODS, "runs": runs, "summary": summary, "seconds": seconds}
    (args.out / "debias_effect.json").write_text(json.dumps(payload, indent=2))
    table = markdown(summary, args, seconds)
    (args.out / "debias_effect.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
