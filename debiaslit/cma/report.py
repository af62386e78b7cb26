"""Tables and figures of a mediation analysis: neurons.csv, layers.csv, top_units.md, heatmap, histograms."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch

from debiaslit.cma.neurons import write_neurons
from debiaslit.cma.selection import top_percent_mean
from debiaslit.utils.files import atomic_path, write_text_atomic


def split_key(key: str) -> tuple[str, int]:
    component, layer = key.split("/layer_")
    return component, int(layer)


def layer_curve(nie: dict[str, torch.Tensor], top_percent: float) -> dict[str, float]:
    """{mediator key: mean of its top-p % units}: the NIE-by-layer curve of each component."""
    return {key: top_percent_mean(values, top_percent) for key, values in nie.items()}


def write_report(
    out_dir: Path,
    rows: list[dict[str, Any]],
    curve: dict[str, float],
    top_percent: float,
    summary: dict[str, Any],
    n_top: int = 20,
) -> None:
    """Write neurons.csv (one row per unit), layers.csv, top_units.md and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_neurons(out_dir / "neurons.csv", rows)
    with atomic_path(out_dir / "layers.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["component", "layer", f"top_{top_percent:g}pct_mean_effect", "max_effect", "mean_effect"]
        )
        for key, value in curve.items():
            component, layer = split_key(key)
            effects = [r["effect"] for r in rows if r["component"] == component and r["layer"] == layer]
            writer.writerow([component, layer, value, max(effects), sum(effects) / len(effects)])
    ranked = sorted(rows, key=lambda r: r["effect"], reverse=True)[:n_top]

    def estimate(row: dict[str, Any]) -> str:
        return "" if row.get("estimate", "") == "" else f"{row['estimate']:.4g}"

    lines = [
        "| rank | component | layer | unit | effect | exact | screen estimate |",
        "|---:|---|---:|---:|---:|---|---:|",
        *(
            f"| {i + 1} | {r['component']} | {r['layer']} | {r['index']} | {r['effect']:.4g} | "
            f"{'yes' if r.get('exact', 1) else 'no'} | {estimate(r)} |"
            for i, r in enumerate(ranked)
        ),
    ]
    for name, text in (
        ("top_units.md", "\n".join(lines)),
        ("summary.json", json.dumps(summary, indent=2, default=str)),
    ):
        write_text_atomic(out_dir / name, text + "\n")


def heatmap_figure(curve: dict[str, float], title: str) -> Any:
    """Layer × component heatmap of the top-p % mean effect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [split_key(k) for k in curve]
    components = list(dict.fromkeys(c for c, _ in keys))
    layers = sorted({layer for _, layer in keys})
    grid = torch.full((len(layers), len(components)), float("nan"))
    for (c, layer), value in zip(keys, curve.values(), strict=True):
        grid[layers.index(layer), components.index(c)] = value
    fig, ax = plt.subplots(figsize=(1.2 * len(components) + 2, 0.5 * len(layers) + 1.5))
    image = ax.imshow(grid.numpy(), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(components)), components)
    ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
    ax.set_xlabel("component")
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def layer_curves_figure(curve: dict[str, float], title: str) -> Any:
    """One line per component: the top-p % mean effect against the layer index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_component: dict[str, list[tuple[int, float]]] = {}
    for key, value in curve.items():
        component, layer = split_key(key)
        by_component.setdefault(component, []).append((layer, value))
    fig, ax = plt.subplots(figsize=(6, 4))
    for component, points in by_component.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=component)
    ax.set_xlabel("layer")
    ax.set_ylabel("NIE")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
