"""PCGU effect: the pair-bias evaluator's figures before and after PCGU on the offline quickstart model.

Runs ``configs/pcgu_quickstart.yaml`` (the MLM head fitted on frozen all-MiniLM-L6-v2, see
``configs/mlm_head_minilm.yaml``) once per seed, each a real ``debiaslit fit`` subprocess, and reads
the evaluator's results table of the last epoch (``before`` = the untouched model, measured by the
full sanity check). The occupation split is the data seed's (fixed); the seeds change the training
order (``data.order_seed``). ``--workdir`` keeps the runs, and a run already finished there is read, not
repeated (an interrupted benchmark resumes). Target: |r| with BLS % female on the held-out Winogender
occupations halved, at an LM-loss increase (held-out MNLI premises) of at most 5 %.

    python bench/pcgu_effect.py --backbone models/minilm-mlm            # 3 seeds
    python bench/pcgu_effect.py --backbone models/minilm-mlm --seeds 0 --extra=--trainer.max_epochs=1

Writes bench/results/pcgu_effect.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CONFIG = REPO / "configs" / "pcgu_quickstart.yaml"
#: figures in the table, (set, figure)
FIGURES = [
    ("winogender", "r_bls"),
    ("winogender", "r_bergsma"),
    ("winogender", "mean_gap"),
    ("winogender", "male_preferred"),
    ("winogender", "advantaged_preferred"),
    ("winogender", "flip_rate"),
    ("winobias", "advantaged_preferred"),
    ("winobias", "type1_acc_gap"),
    ("winobias", "type2_acc_gap"),
    ("winobias", "flip_rate"),
    ("crows", "score"),
    ("neutral", "lm_loss"),
]
NEUTRAL = "mnli/mnli_development_set_number_of_correct_responses.txt"


def _log_dir(workdir: Path, seed: int) -> Path:
    """The run folder of ``seed`` (its logger is named ``seed<N>``; one version per workdir)."""
    return workdir / "logs" / f"seed{seed}" / "version_0"


def _run(seed: int, backbone: str, shared: Path, workdir: Path, extra: list[str]) -> tuple[Path, float]:
    log_dir = _log_dir(workdir, seed)
    if log_dir.parent.exists():
        raise SystemExit(f"{log_dir.parent} holds an unfinished run of seed {seed}: remove it")
    args = [
        sys.executable, "-m", "debiaslit", "fit", f"--config={CONFIG}", f"--seed_everything={seed}",
        f"--data.init_args.order_seed={seed}",
        f"--model.init_args.backbone={backbone}", f"--trainer.logger.init_args.name=seed{seed}",
        f"--data.init_args.winogender_dir={shared / 'winogender'}",
        f"--data.init_args.winobias_dir={shared / 'winobias'}",
        f"--data.init_args.crows_file={shared / 'crows-pairs' / 'crows_pairs_anonymized.csv'}",
        f"--data.init_args.neutral_file={shared / NEUTRAL}",
        *extra,
    ]  # fmt: skip
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    start = time.perf_counter()
    out = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"seed {seed} failed ({out.returncode}):\n{(out.stdout + out.stderr)[-4000:]}")
    return log_dir, time.perf_counter() - start


def _finished(workdir: Path, seed: int) -> tuple[Path, float] | None:
    """A run of ``seed`` that an earlier invocation completed in ``workdir`` (its wall time unknown: nan)."""
    log_dir = _log_dir(workdir, seed)
    config = log_dir / "config.yaml"
    if not config.is_file():
        return None
    epochs = yaml.safe_load(config.read_text())["trainer"]["max_epochs"]
    if not (log_dir / "results" / f"val_epoch{epochs - 1:02d}_bias.csv").is_file():
        return None
    print(f"[pcgu_effect] seed {seed}: reusing the finished run in {log_dir}", flush=True)
    return log_dir, math.nan


def _last_table(log_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    path = sorted((log_dir / "results").glob("val_epoch*_bias.csv"))[-1]
    with path.open() as f:
        return {
            (r["eval_set"], r["figure"]): {"after": float(r["value"]), "before": float(r["before"])}
            for r in csv.DictReader(f)
        }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="models/minilm-mlm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", action="append", default=[], help="further CLI options for every run")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep runs here; finished ones are reused (default: temporary)",
    )
    cli = parser.parse_args()
    from debiaslit.utils.paths import shared_data_dir

    backbone = str(Path(cli.backbone).resolve()) if Path(cli.backbone).exists() else cli.backbone
    load_before = os.getloadavg()
    tables, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = cli.workdir.resolve() if cli.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for seed in cli.seeds:
            log_dir, took = _finished(workdir, seed) or _run(
                seed, backbone, shared_data_dir(), workdir, cli.extra
            )
            tables.append(_last_table(log_dir))
            seconds.append(took)
    rows = []
    for key in FIGURES:
        if not all(key in t for t in tables):
            continue
        before = _mean_std([t[key]["before"] for t in tables])
        after = _mean_std([t[key]["after"] for t in tables])
        rows.append({"set": key[0], "figure": key[1], "before": before, "after": after})
    r_before = [abs(t[("winogender", "r_bls")]["before"]) for t in tables]
    r_after = [abs(t[("winogender", "r_bls")]["after"]) for t in tables]
    loss_change = [
        t[("neutral", "lm_loss")]["after"] / t[("neutral", "lm_loss")]["before"] - 1 for t in tables
    ]
    ratio = (
        statistics.mean(r_after) / statistics.mean(r_before) if statistics.mean(r_before) > 0 else math.nan
    )
    met = ratio <= 0.5 and statistics.mean(loss_change) <= 0.05
    import torch

    result = {
        "command": "python bench/pcgu_effect.py " + " ".join(sys.argv[1:]),
        "config": str(CONFIG.relative_to(REPO)),
        "seeds": cli.seeds,
        "rows": rows,
        "abs_r_bls_ratio_after_vs_before": ratio,
        "lm_loss_change": loss_change,
        "target": {"abs_r_bls_ratio": ("<=", 0.5), "lm_loss_change": ("<=", 0.05), "met": met},
        "seconds_per_run": seconds,
        "machine": {
            "platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        },
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pcgu_effect.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "pcgu_effect.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# PCGU effect on the offline quickstart model (held-out occupations; mean ± std over seeds)",
        "",
        f"`{result['command']}` ({result['config']}, seeds {result['seeds']})",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}; load average before "
        f"{m['loadavg_before'][0]:.1f}, after {m['loadavg_after'][0]:.1f}; "
        + ", ".join("reused" if math.isnan(t) else f"{t:.0f} s" for t in result["seconds_per_run"])
        + " per run (wall)",
        "",
        "| set | figure | before | after |",
        "|---|---|---:|---:|",
    ]
    for r in result["rows"]:
        (b, bs), (a, as_) = r["before"], r["after"]
        lines.append(f"| {r['set']} | {r['figure']} | {b:.4f} ± {bs:.4f} | {a:.4f} ± {as_:.4f} |")
    change = statistics.mean(result["lm_loss_change"])
    lines += [
        "",
        f"|r_bls| after / before = **{result['abs_r_bls_ratio_after_vs_before']:.3f}** (target ≤ 0.5), "
        f"LM-loss change = **{change * 100:+.2f} %** (target ≤ +5 %): "
        f"target {'met' if result['target']['met'] else 'NOT met'}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
