"""Effect benchmark (not a test): the SAE concept eraser on the offline quickstart setup against its
baselines, several seeds, and its training-step time.

Setup: configs/sae_eraser_quickstart.yaml as it is (all-MiniLM-L6-v2, the TopK SAE that
configs/sae_train_quickstart.yaml trains at the residual stream after block 3, templated bios with
professor / nurse, balanced training split, balanced evaluation). A seed sets ``seed_everything`` and
``data.seed`` (the generated bios, the splits and the training order). Per seed and row (no erasure,
the eraser, LEACE, SHIFT-style top-N attribution ablation, random latents of the same count, every
latent removed: the floor of any latent mask, only the SAE error term left) the
validation table after the last epoch: task accuracy, fresh linear / MLP gender probe accuracy,
latents erased, relative edit size.

Targets (issue 10): the eraser's fresh linear gender probe ≤ 55 %; its profession accuracy ≥ the
unedited model's − 1 point (both the fresh linear profession probe and the task probe).

Step time: the eraser's training step (edit with soft gates, read-site pooling, task + concept +
sparsity loss, backward into the gates) against a frozen forward of the backbone without the SAE up
to the same site, on one training batch, interleaved repeats, median.

    python bench/sae_eraser_effect.py            # 3 seeds -> bench/results/sae_eraser_effect.{json,md}
    python bench/sae_eraser_effect.py --seeds 0  # a quick look

The SAE is trained first (configs/sae_train_quickstart.yaml, seed 0) unless ``--sae`` names one.
Runs go to a temporary directory.
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
CONFIG = "configs/sae_eraser_quickstart.yaml"
SAE_CONFIG = "configs/sae_train_quickstart.yaml"
ROWS = ("none", "eraser", "leace", "shift", "random", "all_latents")
METRICS = (
    "task_acc", "worst_group_acc", "fresh_task_linear", "fresh_concept_linear", "fresh_concept_mlp",
    "latents_erased", "edit_size",
)  # fmt: skip


def quiet(workdir: Path, name: str) -> dict:
    return {
        "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
        "trainer.logger.init_args.save_dir": str(workdir / "logs"),
        "trainer.logger.init_args.name": name,
    }


def train_sae(workdir: Path) -> Path:
    import debiaslit

    save_dir = workdir / "saes"
    debiaslit.fit(
        config=str(REPO / SAE_CONFIG),
        overrides={**quiet(workdir, "sae"), "model.init_args.save_dir": str(save_dir)},
    )
    return save_dir / "resid_3"


def run_one(seed: int, sae: Path, workdir: Path) -> tuple[dict[str, dict[str, float]], object]:
    import debiaslit

    overrides = {
        **quiet(workdir, f"seed{seed}"),
        "seed_everything": seed,
        "data.init_args.seed": seed,
        "model.init_args.saes": [str(sae)],
        "checkpoint.save_last": False,
        "checkpoint.save_top_k": 0,
    }
    cli = debiaslit.fit(config=str(REPO / CONFIG), overrides=overrides)
    metrics = cli.trainer.callback_metrics
    rows = {row: {m: float(metrics[f"val/{row}/{m}"]) for m in METRICS} for row in ROWS}
    return rows, cli


def step_time(cli: object, repeats: int) -> dict[str, float]:
    """Median seconds of the eraser's training step and of a frozen forward without the SAE, interleaved."""
    import torch

    method, datamodule = cli.model, cli.datamodule
    method.train()
    batch = next(iter(datamodule.train_dataloader()))
    tokens = method.tokens(batch)
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.0)

    def eraser_step() -> None:
        optimizer.zero_grad()
        method.training_step(batch, 0).backward()

    def frozen_forward() -> None:
        with torch.no_grad():
            method.eraser.read(tokens, "none")

    method.log = method.log_dict = lambda *a, **k: None  # outside a Trainer loop: nothing to log to
    times: dict[str, list[float]] = {"eraser_step": [], "frozen_forward": []}
    for fn in (eraser_step, frozen_forward):  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in (("eraser_step", eraser_step), ("frozen_forward", frozen_forward)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out = {name: statistics.median(values) for name, values in times.items()}
    out["ratio"] = out["eraser_step"] / out["frozen_forward"]
    out["batch"] = list(batch["input_ids"].shape)
    return out


def targets(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, object]]:
    eraser, none = rows["eraser"], rows["none"]
    return {
        "fresh_gender_probe_linear <= 0.55": {
            "value": eraser["fresh_concept_linear"],
            "met": eraser["fresh_concept_linear"] <= 0.55,
        },
        "fresh_profession_linear >= unedited - 0.01": {
            "value": eraser["fresh_task_linear"] - none["fresh_task_linear"],
            "met": eraser["fresh_task_linear"] >= none["fresh_task_linear"] - 0.01,
        },
        "task_probe_accuracy >= unedited - 0.01": {
            "value": eraser["task_acc"] - none["task_acc"],
            "met": eraser["task_acc"] >= none["task_acc"] - 0.01,
        },
    }


def summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for row in ROWS:
        out[row] = {}
        for m in METRICS:
            values = [r[row][m] for r in runs]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[row][m] = {"mean": statistics.fmean(values), "std": std}
    return out


def markdown(payload: dict) -> str:
    summary, seeds = payload["summary"], payload["settings"]["seeds"]

    def pct(row: str, m: str) -> str:
        s = summary[row][m]
        return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"

    lines = [
        f"SAE concept eraser vs baselines, all-MiniLM-L6-v2 + TopK SAE (3072 latents, resid after block 3), "
        f"templated professor/nurse bios, balanced train and validation; seeds {seeds}; mean ± std over "
        "seeds, accuracy in %. Fresh probes: fitted on the edited validation features of even index, "
        "scored on odd.",
        "",
        "| row | latents erased | task probe acc | worst group | fresh profession (linear) "
        "| fresh gender (linear) | fresh gender (MLP) | edit size ‖x′−x‖²/‖x‖² |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ROWS:
        s = summary[row]
        lines.append(
            f"| {row} | {s['latents_erased']['mean']:.1f} | {pct(row, 'task_acc')} "
            f"| {pct(row, 'worst_group_acc')} | {pct(row, 'fresh_task_linear')} "
            f"| {pct(row, 'fresh_concept_linear')} | {pct(row, 'fresh_concept_mlp')} "
            f"| {s['edit_size']['mean']:.4f} |"
        )
    lines += ["", "Targets per seed (value, met):", ""]
    for seed, result in zip(seeds, payload["targets"], strict=True):
        cells = ", ".join(
            f"{name}: {v['value']:.3f} {'met' if v['met'] else 'NOT met'}" for name, v in result.items()
        )
        lines.append(f"- seed {seed}: {cells}")
    t = payload["step_time"]
    lines += [
        "",
        f"Step time (batch {t['batch']}, median of {payload['settings']['repeats']} interleaved repeats): "
        f"eraser training step {1000 * t['eraser_step']:.1f} ms vs frozen forward without the SAE "
        f"{1000 * t['frozen_forward']:.1f} ms ({t['ratio']:.2f}x).",
        "",
        f"Wall clock {payload['seconds'] / 60:.1f} min on {platform.machine()} CPU ({os.cpu_count()} cores), "
        f"torch threads {payload['settings']['threads']}, load average {payload['load_before']} before, "
        f"{payload['load_after']} after (the machine is shared).",
    ]
    return "\n".join(lines)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sae", type=Path, default=None, help="an SAE folder (default: train one first)")
    parser.add_argument("--repeats", type=int, default=20, help="interleaved repeats of the step timing")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a shared CPU)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.time()
    runs, cli = [], None
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            sae = args.sae.resolve() if args.sae else train_sae(Path(tmp))
            for seed in args.seeds:
                t0 = time.time()
                rows, cli = run_one(seed, sae, Path(tmp))
                runs.append(rows)
                print(f"[bench] seed {seed}: eraser {rows['eraser']} ({time.time() - t0:.0f} s)", flush=True)
            timing = step_time(cli, args.repeats)
        finally:
            os.chdir(cwd)
    payload = {
        "settings": {
            "seeds": args.seeds,
            "repeats": args.repeats,
            "threads": args.threads,
            "config": CONFIG,
            "sae": str(args.sae) if args.sae else f"trained by {SAE_CONFIG}",
        },
        "runs": runs,
        "summary": summarise(runs),
        "targets": [targets(r) for r in runs],
        "step_time": timing,
        "seconds": time.time() - start,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sae_eraser_effect.json").write_text(json.dumps(payload, indent=2))
    table = markdown(payload)
    (args.out / "sae_eraser_effect.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
