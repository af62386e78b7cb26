"""Training-step time and peak memory: learned masks vs plain fine-tuning, same model and batch.

Both variants run in this one invocation, each in its own child process (so that peak memory is
measured per variant), alternating plain / masked for ``--rounds`` rounds; the ratio uses the median
step time over all rounds. Masked = ``MaskMethod`` defaults (per-weight threshold masks on Q/K/V/AO/I/O
of every layer, frozen W, AdamW on the scores); plain = ``ERM`` (AdamW on every weight).

    python bench/mask_speed.py                     # all-MiniLM-L6-v2, batch 32 x 64 tokens, CPU
    python bench/mask_speed.py --device cuda --batch-size 64 --seq-len 128
    DEBIASLIT_BENCH_SMOKE=1 python bench/mask_speed.py   # 1 round x 2 steps, results to a temp folder

Writes bench/results/mask_speed.json and .md (a smoke run never overwrites them). Target:
step_time_ratio_masked_vs_plain <= 1.3.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: Smoke check: tiny step counts, results written to a temporary folder (not bench/results).
SMOKE = os.environ.get("DEBIASLIT_BENCH_SMOKE") == "1"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _measure(variant: str, args: dict, queue: mp.Queue) -> None:
    """Child process: build the module, time ``steps`` optimiser steps after ``warmup`` steps."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from debiaslit.methods.erm import ERM
    from debiaslit.methods.masks import MaskMethod

    torch.manual_seed(0)
    device = torch.device(args["device"])
    if variant == "masked":
        module = MaskMethod(backbone=args["backbone"], dropout=0.0)
    else:
        module = ERM(backbone=args["backbone"], dropout=0.0)
    module.to(device).train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    vocab = module.model.config.vocab_size
    generator = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(1000, vocab, (args["batch_size"], args["seq_len"]), generator=generator),
        "attention_mask": torch.ones(args["batch_size"], args["seq_len"], dtype=torch.long),
        "labels": torch.randint(0, 3, (args["batch_size"],), generator=generator),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    rss_before = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        module.training_loss(module(batch), batch).backward()
        optimizer.step()

    times = []
    for i in range(args["warmup"] + args["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args["warmup"]:
            times.append(time.perf_counter() - start)
    result = {
        "variant": variant,
        "step_times_s": times,
        "trainable_params": sum(p.numel() for p in params),
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_training_mb": rss_before,
    }
    if device.type == "cuda":
        result["peak_cuda_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    queue.put(result)


def _run_child(variant: str, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(variant, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1 if SMOKE else 3)
    parser.add_argument("--steps", type=int, default=2 if SMOKE else 10)
    parser.add_argument("--rounds", type=int, default=1 if SMOKE else 2)
    args = vars(parser.parse_args())
    results = Path(tempfile.mkdtemp(prefix="mask_speed_smoke_")) if SMOKE else RESULTS

    runs: dict[str, list[dict]] = {"plain": [], "masked": []}
    for _ in range(args["rounds"]):
        for variant in ("plain", "masked"):
            runs[variant].append(_run_child(variant, args))
            print(variant, f"median {statistics.median(runs[variant][-1]['step_times_s']):.4f}s", flush=True)

    def summary(variant: str) -> dict:
        times = [t for r in runs[variant] for t in r["step_times_s"]]
        out = {
            "median_step_time_s": statistics.median(times),
            "trainable_params": runs[variant][0]["trainable_params"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[variant]),
            "peak_rss_training_increase_mb": max(
                r["peak_rss_mb"] - r["rss_before_training_mb"] for r in runs[variant]
            ),
        }
        if "peak_cuda_memory_mb" in runs[variant][0]:
            out["peak_cuda_memory_mb"] = max(r["peak_cuda_memory_mb"] for r in runs[variant])
        return out

    plain, masked = summary("plain"), summary("masked")
    ratio = masked["median_step_time_s"] / plain["median_step_time_s"]
    import torch

    result = {
        "step_time_ratio_masked_vs_plain": round(ratio, 4),
        "target": 1.3,
        "meets_target": ratio <= 1.3,
        "plain": plain,
        "masked": masked,
        "config": args,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "command": "python bench/mask_speed.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items()),
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "mask_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    memory_key = "peak_cuda_memory_mb" if "peak_cuda_memory_mb" in plain else "peak_rss_mb"
    lines = [
        "# Mask training speed: masked vs plain fine-tuning",
        "",
        f"`{result['command']}`",
        "",
        f"Machine: {result['machine']['platform']}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "",
        f"| variant | trainable params | median step (s) | {memory_key} | training increase (MB RSS) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in (("plain fine-tuning (ERM)", plain), ("masks (MaskMethod)", masked)):
        lines.append(
            f"| {name} | {s['trainable_params']:,} | {s['median_step_time_s']:.4f} | {s[memory_key]:.0f} | "
            f"{s['peak_rss_training_increase_mb']:.0f} |"
        )
    lines += [
        "",
        f"step_time_ratio_masked_vs_plain = **{ratio:.3f}** "
        f"(target ≤ 1.3: {'met' if ratio <= 1.3 else 'NOT met'})",
        "",
    ]
    (results / "mask_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {results}")


if __name__ == "__main__":
    main()
