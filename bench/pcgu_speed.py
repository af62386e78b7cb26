"""PCGU speed: one PCGU step vs a plain step on the same two gradients, and vectorised vs looped ranking.

* step: ``PCGUMethod`` (every parameter a candidate: all Q/K/V/AO/I/O, embeddings, LayerNorms, MLM
  head; top_k 10,000; plain SGD) against a plain step that runs the same two forward/backward passes
  (advantaged, disadvantaged) and applies SGD to every weight. Variants alternate, each round in its own
  child process (peak memory per variant), ``--rounds`` rounds; the ratio uses median step times.
* ranking: on the real gradients of one PCGU step, :func:`select_partitions` (one row-wise reduction per
  group, one global top-k) against a Python loop over every partition (the reference's way: one cosine
  per partition, then a sort), median of ``--rank-repeats`` interleaved repeats.

Model: a randomly initialised bert-base-uncased-sized BERT MLM (the all-MiniLM-L6-v2 tokenizer shares
its vocabulary) or any backbone (``--backbone``); batches of real Winogender pairs. One torch thread.

    python bench/pcgu_speed.py                               # bert-base-sized, CPU, batch 16
    python bench/pcgu_speed.py --device cuda --threads 8
    DEBIASLIT_BENCH_SMOKE=1 python bench/pcgu_speed.py --backbone tiny-bert   # results to a temp folder

Writes bench/results/pcgu_speed.json and .md. Targets: step_time_ratio_pcgu_vs_plain <= 2.5,
ranking_speedup_vs_loop >= 10.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE = os.environ.get("DEBIASLIT_BENCH_SMOKE") == "1"
TARGETS = {"step_time_ratio_pcgu_vs_plain": ("<=", 2.5), "ranking_speedup_vs_loop": (">=", 10.0)}
BERT_BASE = "bert-base-random"


def _random_bert_base(folder: Path) -> str:
    """save_pretrained directory of a random bert-base-uncased-sized MLM with the MiniLM tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    from debiaslit.backbones import load_tokenizer

    tokenizer = load_tokenizer("minilm-l6")
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer)))  # BertConfig() is bert-base
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _modules(backbone: str, lr: float, top_k: int):

    from debiaslit.cma.neurons import AllUnits
    from debiaslit.methods import PCGUMethod
    from debiaslit.methods.pcgu.module import _role_inputs

    class PlainTwoGradients(PCGUMethod):
        """The same two forward/backward passes, SGD on every weight (no copies, no ranking)."""

        def training_step(self, batch: dict, batch_idx: int) -> None:
            opt = self.optimizers()
            male_first, _, _ = self._roles(batch)
            scale = 1.0 / batch["male_advantaged"].numel()
            for sign, inputs in zip((1.0, -1.0), _role_inputs(batch, male_first), strict=True):
                self.manual_backward(sign * scale * self._scores(inputs).sum())
            opt.step()
            opt.zero_grad(set_to_none=True)

    options = dict(
        backbone=backbone, task="masked-lm", lr=lr, top_k=top_k, include_embeddings=True, include_norms=True,
        units=AllUnits(include_head=True),
    )  # fmt: skip
    return {"pcgu": lambda: PCGUMethod(**options), "plain": lambda: PlainTwoGradients(**options)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _loader(args: dict):
    from debiaslit.datamodules import WinogenderDataModule

    data = WinogenderDataModule(
        data_dir=args["data_dir"], tokenizer=args["backbone"], batch_size=args["batch_size"],
        max_length=args["max_length"],
    )  # fmt: skip
    data.setup("fit")
    return data


def _measure(variant: str, args: dict, queue: mp.Queue) -> None:
    """Child process: ``warmup`` + ``steps`` training steps of one variant, step times from a callback."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lightning.pytorch as pl
    import torch

    torch.set_num_threads(args["threads"])
    pl.seed_everything(0, verbose=False)
    module = _modules(args["backbone"], args["lr"], args["top_k"])[variant]()
    device = args["device"]
    times: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *a: object) -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_batch_end(self, *a: object) -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)

    rss_before = _peak_rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer = pl.Trainer(
        max_steps=args["warmup"] + args["steps"], accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[Clock()],
    )  # fmt: skip
    trainer.fit(module, datamodule=_loader(args))
    result = {
        "step_times": times[args["warmup"] :],
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_training_mb": rss_before,
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if device.startswith("cuda"):
        result["peak_cuda_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if variant == "pcgu":
        result["partitions"] = sum(g.count for g in module.groups)
        result["groups"] = len(module.groups)
    queue.put(result)


def _loop_ranking(groups, grads_a, grads_b, top_k: int):
    """The reference's way: one cosine per partition in Python, then a sort."""
    import torch

    scored = []
    for gi, group in enumerate(groups):
        a_rows, b_rows = group.view(grads_a[group.param_name]), group.view(grads_b[group.param_name])
        for i in range(a_rows.shape[0]):
            a, b = a_rows[i], b_rows[i]
            if not (bool(a.any()) and bool(b.any())):
                continue
            scored.append((float(torch.nn.functional.cosine_similarity(a, b, dim=0)), gi, i))
    scored.sort()
    return scored[:top_k]


def _ranking(args: dict, queue: mp.Queue) -> None:
    """Child process: gradients of one real PCGU step, then vectorised vs looped ranking, interleaved."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lightning.pytorch as pl
    import torch

    from debiaslit.backbones import load_tokenizer
    from debiaslit.data.collate import PadCollator
    from debiaslit.methods.pcgu.module import _role_inputs
    from debiaslit.methods.pcgu.ranking import select_partitions

    torch.set_num_threads(args["threads"])
    pl.seed_everything(0, verbose=False)
    module = _modules(args["backbone"], args["lr"], args["top_k"])["pcgu"]().to(args["device"])
    data = _loader(args)
    collate = PadCollator(load_tokenizer(args["backbone"]).pad_token_id or 0)
    first = collate([data.train_set[i] for i in range(args["batch_size"])])
    batch = {k: v.to(args["device"]) for k, v in first.items()}
    male_first, _, _ = module._roles(batch)
    grads = []
    for inputs in _role_inputs(batch, male_first):
        module.model.zero_grad(set_to_none=True)
        module._scores(inputs).sum().backward()
        grads.append({n: p.grad.detach().clone() for n, p in module.candidates.items()})

    def vectorised():
        selection = select_partitions(module.groups, grads[0], grads[1], args["top_k"])
        if args["device"].startswith("cuda"):
            torch.cuda.synchronize()
        return selection

    vec_times, loop_times = [], []
    for _ in range(args["rank_repeats"]):
        start = time.perf_counter()
        selection = vectorised()
        vec_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        looped = _loop_ranking(module.groups, grads[0], grads[1], args["top_k"])
        loop_times.append(time.perf_counter() - start)
    offsets = [0]
    for group in module.groups:
        offsets.append(offsets[-1] + group.count)
    loop_ids = sorted(offsets[gi] + i for _, gi, i in looped)
    vec_ids = torch.cat(selection.per_group).nonzero().flatten().tolist()
    overlap = len(set(loop_ids) & set(vec_ids)) / max(1, len(loop_ids))
    queue.put(
        {
            "vectorised_s": statistics.median(vec_times),
            "loop_s": statistics.median(loop_times),
            "vectorised_times": vec_times,
            "loop_times": loop_times,
            "same_selection_fraction": overlap,
            "zero_grad_partitions": selection.n_zero_grad,
        }
    )


def _child(target, *args):
    """Run ``target`` in a fresh process; a child that dies without a result fails the benchmark."""
    import queue as queues

    context = mp.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=target, args=(*args, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty as err:
            if not proc.is_alive():
                raise SystemExit(
                    f"{target.__name__} child exited with code {proc.exitcode} (see its traceback above)"
                ) from err
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=BERT_BASE, help=f"{BERT_BASE} or any masked-LM backbone name")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64, help="tokens (tiny-bert needs ~128)")
    parser.add_argument("--top-k", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rank-repeats", type=int, default=3)
    parser.add_argument(
        "--data-dir", default=None, help="Winogender folder (default: the shared data bundle)"
    )
    cli = parser.parse_args()
    from debiaslit.utils.paths import shared_data_dir

    if SMOKE:
        cli.rounds, cli.steps, cli.warmup, cli.rank_repeats = 1, 1, 0, 1
    with tempfile.TemporaryDirectory() as tmp:
        backbone = _random_bert_base(Path(tmp) / "bert") if cli.backbone == BERT_BASE else cli.backbone
        args = {
            "backbone": backbone, "device": cli.device, "threads": cli.threads, "batch_size": cli.batch_size,
            "max_length": cli.max_length,
            "top_k": cli.top_k, "lr": cli.lr, "warmup": cli.warmup, "steps": cli.steps,
            "rank_repeats": cli.rank_repeats,
            "data_dir": cli.data_dir or str(shared_data_dir() / "winogender"),
        }  # fmt: skip
        load_before = os.getloadavg()
        runs: dict[str, list[dict]] = {"plain": [], "pcgu": []}
        for _ in range(cli.rounds):
            for variant in ("plain", "pcgu"):
                runs[variant].append(_child(_measure, variant, args))
        ranking = _child(_ranking, args)
        load_after = os.getloadavg()
    summary = {}
    for variant, rounds in runs.items():
        times = [t for r in rounds for t in r["step_times"]]
        summary[variant] = {
            "median_step_s": statistics.median(times),
            "step_times": times,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
            "peak_rss_training_increase_mb": max(
                r["peak_rss_mb"] - r["rss_before_training_mb"] for r in rounds
            ),
            "trainable_params": rounds[0]["trainable_params"],
        }
        if "peak_cuda_memory_mb" in rounds[0]:
            summary[variant]["peak_cuda_memory_mb"] = max(r["peak_cuda_memory_mb"] for r in rounds)
    summary["pcgu"] |= {"partitions": runs["pcgu"][0]["partitions"], "groups": runs["pcgu"][0]["groups"]}
    metrics = {
        "step_time_ratio_pcgu_vs_plain": summary["pcgu"]["median_step_s"] / summary["plain"]["median_step_s"],
        "ranking_speedup_vs_loop": ranking["loop_s"] / ranking["vectorised_s"],
    }
    import torch

    result = {
        "command": "python bench/pcgu_speed.py " + " ".join(sys.argv[1:]),
        "model": cli.backbone,
        "settings": {k: v for k, v in args.items() if k not in ("backbone", "data_dir")},
        **metrics,
        "targets": {
            k: {"op": op, "value": v, "met": metrics[k] <= v if op == "<=" else metrics[k] >= v}
            for k, (op, v) in TARGETS.items()
        },
        "variants": summary,
        "ranking": ranking,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if cli.device.startswith("cuda") else "cpu",
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
    }
    results = Path(tempfile.mkdtemp()) if SMOKE else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    (results / "pcgu_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / "pcgu_speed.md").write_text(_markdown(result))
    print(_markdown(result))
    print(f"written to {results}")


def _markdown(result: dict) -> str:
    v, r, m = result["variants"], result["ranking"], result["machine"]
    memory = "peak_cuda_memory_mb" if "peak_cuda_memory_mb" in v["plain"] else "peak_rss_mb"
    lines = [
        "# PCGU speed: PCGU step vs plain two-gradient SGD step; vectorised vs looped ranking",
        "",
        f"`{result['command']}`",
        "",
        f"Model: {result['model']}; {v['pcgu']['partitions']:,} partitions in {v['pcgu']['groups']} groups; "
        f"settings {result['settings']}",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, {m['device']}, torch {m['torch']}; load average "
        f"before {m['loadavg_before'][0]:.1f}, after {m['loadavg_after'][0]:.1f} (1 min)",
        "",
        f"| variant | trainable params | median step (s) | {memory} | training increase (MB RSS) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("plain", "plain: same two gradients, SGD on every weight"), ("pcgu", "PCGU step")):
        s = v[name]
        lines.append(
            f"| {label} | {s['trainable_params']:,} | {s['median_step_s']:.4f} | {s[memory]:.0f} | "
            f"{s['peak_rss_training_increase_mb']:.0f} |"
        )
    lines += [
        "",
        f"Ranking: vectorised {r['vectorised_s'] * 1e3:.1f} ms vs Python loop {r['loop_s']:.2f} s "
        f"(same selection: {r['same_selection_fraction']:.3f}; zero-gradient partitions excluded: "
        f"{r['zero_grad_partitions']:,})",
        "",
    ]
    for key, target in result["targets"].items():
        lines.append(
            f"{key} = **{result[key]:.3f}** (target {target['op']} {target['value']}: "
            f"{'met' if target['met'] else 'NOT met'})"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
