"""Saved test-time probabilities (main and bias model per evaluation set) and their counterfactual
evaluation, so TIE / TE_model can be recomputed from the Python API without the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from debiaslit.counterfactual.inference import CounterfactualPostProcessor
from debiaslit.data.schema import NLI_LABELS
from debiaslit.errors import ConfigError, DataFormatError
from debiaslit.metrics import GroupAccuracy
from debiaslit.metrics.predictions import predict_classes
from debiaslit.metrics.results_table import EvalResult
from debiaslit.utils.files import write_text_atomic

FORMAT = "debiaslit.counterfactual/1"


@dataclass
class SavedSet:
    """One evaluation set's probabilities (``NLI_LABELS`` order) with the groups its table needs."""

    name: str
    is_hans: bool
    uids: list[str]
    labels: list[int]
    groups: list[int]
    subgroups: list[int]
    group_names: list[str]
    subgroup_names: list[str]
    p_m: torch.Tensor
    p_b: torch.Tensor

    @classmethod
    def from_dataset(cls, ds: Any, p_m: torch.Tensor, p_b: torch.Tensor) -> SavedSet:
        """From an ``EncodedNLI`` and its probabilities (rows in dataset order)."""
        return cls(
            name=ds.name,
            is_hans=ds.is_hans,
            uids=[e.uid for e in ds.examples],
            labels=list(ds.labels),
            groups=list(ds.groups),
            subgroups=list(ds.subgroups),
            group_names=list(ds.group_names),
            subgroup_names=list(ds.subgroup_names),
            p_m=p_m.float(),
            p_b=p_b.float(),
        )

    def evaluate(self, scores: torch.Tensor) -> EvalResult:
        """Accuracy per group of the argmax of ``scores`` (HANS-style sets: entailment vs the rest)."""
        preds, labels = predict_classes(scores, self.is_hans), torch.tensor(self.labels)
        cells = GroupAccuracy(len(self.group_names))
        cells.update(preds, labels, torch.tensor(self.groups))
        subcases = None
        if self.subgroup_names:
            subcases = GroupAccuracy(len(self.subgroup_names))
            subcases.update(preds, labels, torch.tensor(self.subgroups))
            subcases = subcases.compute()
        return EvalResult.from_counts(self, cells.compute(), subcases)


def save_predictions(path: str | Path, sets: list[SavedSet], meta: dict[str, Any] | None = None) -> None:
    """Write the sets as one ``debiaslit.counterfactual/1`` JSON file (atomically)."""
    rows = []
    for s in sets:
        row = asdict(s)
        row["p_m"], row["p_b"] = s.p_m.tolist(), s.p_b.tolist()
        rows.append(row)
    payload = {"format": FORMAT, "label_order": list(NLI_LABELS), "sets": rows, "meta": meta or {}}
    write_text_atomic(path, json.dumps(payload))


def load_predictions(path: str | Path) -> dict[str, SavedSet]:
    """Read a file written by :func:`save_predictions` (or by ``CounterfactualInference``)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"counterfactual predictions file '{path}' does not exist")
    payload = json.loads(path.read_text())
    if payload.get("format") != FORMAT or payload.get("label_order") != list(NLI_LABELS):
        raise DataFormatError(f"'{path}' is not a {FORMAT} file with label order {list(NLI_LABELS)}")
    out = {}
    for row in payload["sets"]:
        row["p_m"], row["p_b"] = torch.tensor(row["p_m"]), torch.tensor(row["p_b"])
        out[row["name"]] = SavedSet(**row)
    return out


def counterfactual_evaluate(
    sets: dict[str, SavedSet],
    fit_on: str,
    method: str = "tie",
    objective: str = "reference",
    **fit_options: Any,
) -> tuple[dict[str, EvalResult], float]:
    """Fit ``c`` (or ``c′``) on the set ``fit_on`` and evaluate every set; returns the results and c.

    ``fit_on`` must be an in-distribution set (never the challenge set: that would tune on the test).
    """
    if fit_on not in sets:
        raise ConfigError(f"counterfactual fit_on '{fit_on}' is not one of the saved sets {list(sets)}")
    if sets[fit_on].is_hans:
        raise ConfigError(
            f"counterfactual fit_on '{fit_on}' is a HANS-style set: fit c on in-distribution dev data"
        )
    with torch.inference_mode(False), torch.enable_grad():  # callers may sit in Lightning's test loop
        post = CounterfactualPostProcessor(method, objective, num_labels=len(NLI_LABELS), **fit_options)
        post.fit(sets[fit_on].p_m, sets[fit_on].p_b)
    results = {name: s.evaluate(post.transform(s.p_m, s.p_b)) for name, s in sets.items()}
    return results, float(post.c.detach())
