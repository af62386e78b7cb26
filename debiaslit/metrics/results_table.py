"""Turn per-group counts into logged scalars and the CSV / markdown results table of a run."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from debiaslit.data.schema import HANS_HEURISTICS, HANS_LABELS
from debiaslit.utils.files import save_png, write_text_atomic


@dataclass
class EvalResult:
    """Counts of one evaluation set: per group (class, or HANS heuristic x label) and subcase."""

    name: str
    is_hans: bool
    group_names: list[str]
    correct: list[int]
    total: list[int]
    subgroup_names: list[str]
    sub_correct: list[int]
    sub_total: list[int]

    @classmethod
    def from_counts(cls, ds: Any, cells: dict[str, torch.Tensor], subcases: dict | None) -> EvalResult:
        sub = subcases or {"correct": torch.zeros(0), "total": torch.zeros(0)}
        return cls(
            name=ds.name,
            is_hans=ds.is_hans,
            group_names=list(ds.group_names),
            correct=[int(x) for x in cells["correct"]],
            total=[int(x) for x in cells["total"]],
            subgroup_names=list(ds.subgroup_names),
            sub_correct=[int(x) for x in sub["correct"]][: len(ds.subgroup_names)],
            sub_total=[int(x) for x in sub["total"]][: len(ds.subgroup_names)],
        )

    @property
    def n(self) -> int:
        return sum(self.total)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / self.n if self.n else float("nan")

    def group_accuracy(self) -> dict[str, float]:
        """Accuracy of every non-empty group."""
        return {g: c / t for g, c, t in zip(self.group_names, self.correct, self.total, strict=True) if t}

    def subgroup_accuracy(self) -> dict[str, float]:
        """Accuracy of every non-empty subgroup (HANS subcase, or shortcut-aligned / -conflicting)."""
        pairs = zip(self.subgroup_names, self.sub_correct, self.sub_total, strict=True)
        return {g: c / t for g, c, t in pairs if t}

    def scalars(self) -> dict[str, float]:
        """Flat ``<set>/<metric>`` values for the logger."""
        out = {f"{self.name}/acc": self.accuracy, f"{self.name}/n": float(self.n)}
        groups = self.group_accuracy()
        for group, acc in groups.items():
            out[f"{self.name}/{group}"] = acc
        if not self.is_hans:
            out.update({f"{self.name}/{group}": acc for group, acc in self.subgroup_accuracy().items()})
        if self.is_hans and groups:
            for label in HANS_LABELS:
                cells = [acc for g, acc in groups.items() if g.endswith(f"/{label}")]
                if cells:
                    out[f"{self.name}/{label}_acc"] = sum(cells) / len(cells)
            out[f"{self.name}/worst_cell"] = min(groups.values())
        return out


def results_markdown(results: list[EvalResult]) -> str:
    """One summary table for all sets, then a heuristic x label table per HANS-style set."""
    lines = ["| eval set | n | accuracy | per group |", "|---|---:|---:|---|"]
    for r in results:
        accs = {} if r.is_hans else r.group_accuracy() | r.subgroup_accuracy()
        per_group = ", ".join(f"{g} {a:.3f}" for g, a in accs.items())
        lines.append(f"| {r.name} | {r.n} | {r.accuracy:.4f} | {per_group or 'see HANS table'} |")
    for r in (r for r in results if r.is_hans):
        groups = r.group_accuracy()
        lines += ["", f"**{r.name}** (HANS-style, binary)", "", "| heuristic | entailment | non-entailment |"]
        lines.append("|---|---:|---:|")
        for h in HANS_HEURISTICS:
            cells = [groups.get(f"{h}/{lab}") for lab in HANS_LABELS]
            lines.append(f"| {h} | " + " | ".join("—" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def results_rows(results: list[EvalResult]) -> list[dict[str, Any]]:
    """CSV rows: one per set (group ``all``), per group and per subcase."""
    rows = []
    for r in results:
        rows.append({"eval_set": r.name, "level": "set", "group": "all", "n": r.n, "correct": sum(r.correct)})
        for level, names, correct, total in (
            ("group", r.group_names, r.correct, r.total),
            ("subcase", r.subgroup_names, r.sub_correct, r.sub_total),
        ):
            for g, c, t in zip(names, correct, total, strict=True):
                rows.append({"eval_set": r.name, "level": level, "group": g, "n": t, "correct": c})
    for row in rows:
        row["accuracy"] = f"{row['correct'] / row['n']:.6f}" if row["n"] else ""
    return rows


def write_results(results: list[EvalResult], out_dir: Path, stage: str, epoch: int) -> str:
    """Write ``<stage>_epoch<E>.csv``, ``.md`` and a ``_<set>_hans.png`` per HANS-style set under
    ``out_dir``; returns the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["eval_set", "level", "group", "n", "correct", "accuracy"])
    writer.writeheader()
    writer.writerows(results_rows(results))
    stem = f"{stage}_epoch{epoch:02d}"
    write_text_atomic(out_dir / f"{stem}.csv", buffer.getvalue())
    table = results_markdown(results)
    write_text_atomic(out_dir / f"{stem}.md", table + "\n")
    for r in results:
        if r.is_hans and r.n:
            save_png(
                hans_figure(r, f"{r.name}, {stage} epoch {epoch}"), out_dir / f"{stem}_{r.name}_hans.png"
            )
    return table


def hans_figure(result: EvalResult, title: str) -> Any:
    """Heuristic x label accuracy heatmap of one HANS-style set (empty cells blank)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = result.group_accuracy()
    grid = [[groups.get(f"{h}/{lab}", float("nan")) for lab in HANS_LABELS] for h in HANS_HEURISTICS]
    fig, ax = plt.subplots(figsize=(5, 3))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(HANS_LABELS)), HANS_LABELS)
    ax.set_yticks(range(len(HANS_HEURISTICS)), HANS_HEURISTICS)
    for i, row in enumerate(grid):
        for j, acc in enumerate(row):
            if acc == acc:
                ax.text(j, i, f"{acc:.2f}", ha="center", va="center")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="accuracy")
    fig.tight_layout()
    return fig


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def comparison_markdown(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """A markdown table with one line per row dict (e.g. a method against its baselines)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_comparison(rows: list[dict[str, Any]], columns: tuple[str, ...], out_dir: Path, stem: str) -> str:
    """Write ``<stem>.csv`` and ``<stem>.md`` under ``out_dir``; returns the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({c: "" if row.get(c) is None else row.get(c) for c in columns} for row in rows)
    write_text_atomic(out_dir / f"{stem}.csv", buffer.getvalue())
    table = comparison_markdown(rows, columns)
    write_text_atomic(out_dir / f"{stem}.md", table + "\n")
    return table
