"""The masks' pruned fraction per layer × component: grid, heatmap figure, csv / md / png outputs."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from debiaslit.methods.masks.masked_weights import MaskTarget
from debiaslit.utils.files import atomic_path, save_png, write_text_atomic


def sparsity_grid(
    targets: Sequence[MaskTarget], sparsity: dict[str, float]
) -> tuple[list[str], list[int], list[list[float]]]:
    """(components, layers, [layer][component] sparsity; NaN where not masked)."""
    comps = list(dict.fromkeys(t.component for t in targets if t.layer >= 0))
    layers = sorted({t.layer for t in targets if t.layer >= 0})
    grid = [[sparsity.get(f"{c}/layer_{lyr}", float("nan")) for c in comps] for lyr in layers]
    return comps, layers, grid


def sparsity_figure(targets: Sequence[MaskTarget], sparsity: dict[str, float]) -> Any:
    """Layer × component heatmap of the pruned fraction, values written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps, layers, grid = sparsity_grid(targets, sparsity)
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(comps), 1.2 + 0.4 * len(layers)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(comps)), comps)
    ax.set_yticks(range(len(layers)), [str(lyr) for lyr in layers])
    ax.set_xlabel("component")
    ax.set_ylabel("layer")
    ax.set_title(f"pruned fraction (global {sparsity['global']:.3f})")
    for row, values in enumerate(grid):
        for col, value in enumerate(values):
            ax.text(col, row, f"{value:.3f}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def write_sparsity_outputs(targets: Sequence[MaskTarget], sparsity: dict[str, float], stem: Path) -> str:
    """``<stem>.csv`` (layer rows × component columns), ``.md`` (+ heads, global) and ``.png``
    (the heatmap), each written atomically; returns the markdown table."""

    comps, layers, grid = sparsity_grid(targets, sparsity)
    with atomic_path(stem.with_suffix(".csv")) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["layer", *comps])
        writer.writerows([[lyr, *(f"{v:.6f}" for v in row)] for lyr, row in zip(layers, grid, strict=True)])
    lines = ["| layer | " + " | ".join(comps) + " |", "|---:|" + "---:|" * len(comps)]
    lines += [
        f"| {lyr} | " + " | ".join(f"{v:.4f}" for v in row) + " |"
        for lyr, row in zip(layers, grid, strict=True)
    ]
    heads = {k: v for k, v in sparsity.items() if k.startswith("head/")}
    lines += ["", *(f"- {k}: {v:.4f}" for k, v in heads.items()), f"- global: {sparsity['global']:.4f}"]
    table = "\n".join(lines) + "\n"
    write_text_atomic(stem.with_suffix(".md"), table)
    save_png(sparsity_figure(targets, sparsity), stem.with_suffix(".png"))
    return table
