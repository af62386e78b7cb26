"""The per-epoch outputs of the LM bias evaluator: a results table (CSV + markdown, also as TensorBoard
text) and, per gendered-pair set, the gap per occupation vs % female before and after (PNG + TensorBoard)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only

from debiaslit.utils.files import save_png, write_text_atomic


def bias_rows(
    figures: dict[str, dict[str, float]], before: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """One row per (set, figure): its value now, at the first evaluation, and the change."""
    rows = []
    for name, values in figures.items():
        for figure, value in values.items():
            was = before.get(name, {}).get(figure, math.nan)
            rows.append(
                {"eval_set": name, "figure": figure, "value": value, "before": was, "change": value - was}
            )
    return rows


def bias_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| eval set | figure | value | before | change |", "|---|---|---:|---:|---:|"]
    lines += [
        f"| {r['eval_set']} | {r['figure']} | {r['value']:.4f} | {r['before']:.4f} | {r['change']:+.4f} |"
        for r in rows
    ]
    return "\n".join(lines)


def gap_figure(curves: dict[str, torch.Tensor], title: str) -> Any:
    """Mean male − female gap per occupation against its BLS % female, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, marker in (("before", "o"), ("after", "x")):
        if key in curves:
            ax.scatter(curves["bls"].numpy(), curves[key].numpy(), marker=marker, label=key)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("BLS % female of the occupation")
    ax.set_ylabel("log p(male) − log p(female)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


@rank_zero_only
def report_bias(
    module: pl.LightningModule,
    stage: str,
    figures: dict[str, dict[str, float]],
    before: dict[str, dict[str, float]],
    curves: dict[str, dict[str, torch.Tensor]],
    log_dir: Path | None,
) -> None:
    """Write ``results/<stage>_epoch<E>_bias.{csv,md}`` and ``_<set>_gap.png`` under ``log_dir``
    (print only without a logger), and the table and plots to TensorBoard."""
    rows = bias_rows(figures, before)
    table = bias_markdown(rows)
    stem = f"{stage}_epoch{module.current_epoch:02d}"
    experiment = getattr(module.logger, "experiment", None)
    step = module.trainer.global_step
    if log_dir is not None:
        out = log_dir / "results"
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["eval_set"])
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(out / f"{stem}_bias.csv", buffer.getvalue())
        write_text_atomic(out / f"{stem}_bias.md", table + "\n")
        for name, curve in curves.items():
            if bool(torch.isfinite(curve["bls"]).any()):
                fig = gap_figure(curve, f"{name}, {stage} epoch {module.current_epoch}")
                if hasattr(experiment, "add_figure"):
                    experiment.add_figure(f"{stage}/{name}_gap_vs_pct_female", fig, step, close=False)
                save_png(fig, out / f"{stem}_{name}_gap.png")
    if hasattr(experiment, "add_text"):
        experiment.add_text(f"{stage}/bias_results", table, step)
    print(f"\n[debiaslit] {stage} bias results (epoch {module.current_epoch}):\n{table}\n", flush=True)
