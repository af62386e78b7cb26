"""Compute (or load from the cache) the bias probabilities of a training set and its evaluation sets,
with the bias model's accuracy and calibration."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from debiaslit.bias.calibration import expected_calibration_error
from debiaslit.bias.probs_file import SplitProbs, align, read_probs_file, write_probs_file
from debiaslit.bias.spec import TRAIN, BiasModelSpec
from debiaslit.data.schema import HANS_LABELS, NLI_LABELS, NLIExample, is_hans_style
from debiaslit.errors import DataFormatError


@dataclass
class BiasPredictions:
    """Probabilities per split (rows aligned with the examples given, ``NLI_LABELS`` order), the
    quality report per split, and where they were cached."""

    probs: dict[str, torch.Tensor]
    report: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_path: Path | None = None
    from_cache: bool = False


def bias_report(probs: torch.Tensor, examples: Sequence[NLIExample]) -> dict[str, float]:
    """Accuracy and ECE of ``probs`` on the gold labels; on HANS-style binary sets the 3-way
    probabilities are collapsed to ``[p_ent, 1 − p_ent]`` first."""
    if is_hans_style(examples):
        p_ent = probs[:, NLI_LABELS.index("entailment")]
        probs = torch.stack([p_ent, 1 - p_ent], dim=1)
        labels = torch.tensor([HANS_LABELS.index(e.label) for e in examples])
    else:
        labels = torch.tensor([NLI_LABELS.index(e.label) for e in examples])
    acc = float((probs.argmax(-1) == labels).float().mean()) if len(labels) else float("nan")
    return {"acc": acc, "ece": expected_calibration_error(probs, labels), "n": len(labels)}


def data_key(splits: dict[str, Sequence[NLIExample]]) -> str:
    """Short hash of every split's ids, texts and labels, independent of example order."""
    digest = hashlib.sha1()
    for name in sorted(splits):
        digest.update(f"== {name}\n".encode())
        for e in sorted(splits[name], key=lambda e: e.uid):
            digest.update(f"{e.uid}\t{e.premise}\t{e.hypothesis}\t{e.label}\n".encode())
    return digest.hexdigest()[:10]


def _read_cache(
    cache: Path, spec: BiasModelSpec, backbone: str, examples_of: dict[str, list[NLIExample]], option: str
) -> tuple[dict[str, torch.Tensor], bool]:
    splits, meta = read_probs_file(cache)
    if meta.get("fingerprint") != spec.fingerprint(backbone):
        raise DataFormatError(
            f"bias cache '{cache}' was made by another bias model or another version of its file "
            f"({meta.get('spec')}); delete it or set {option}.cache elsewhere"
        )
    probs = {}
    for name, examples in examples_of.items():
        if name not in splits:
            raise DataFormatError(f"bias cache '{cache}' has no split '{name}'; delete it to recompute")
        probs[name] = align(splits[name], examples, f"bias cache '{cache}' (split '{name}')", exact=True)
    if meta.get("data") != data_key(examples_of):
        raise DataFormatError(
            f"bias cache '{cache}': same ids and labels but other premise/hypothesis texts than the data; "
            f"delete it or set {option}.cache elsewhere"
        )
    return probs, bool(meta.get("out_of_sample"))


def compute_bias_probs(
    spec: BiasModelSpec,
    train: list[NLIExample],
    evals: dict[str, list[NLIExample]] | None = None,
    backbone: str = "tiny-bert",
    cache_path: str | Path | None = None,
    option: str = "data.bias",
) -> BiasPredictions:
    """Bias probabilities for ``train`` and each evaluation set (see the spec's ``predict``), read from
    ``cache_path`` when it exists there.

    The cache is keyed by the spec's identity (for a checkpoint: its bytes) and by the data; a cache
    whose key, ids, gold labels or texts differ raises a :class:`DataFormatError` naming the file.
    Each split's report holds ``coverage``: 0 for an evaluation set the model gave no probabilities.
    """
    spec.validate(option)
    evals = dict(evals or {})
    examples_of = {TRAIN: train, **evals}
    cache = Path(cache_path) if cache_path else None
    from_cache = cache is not None and cache.is_file()
    if from_cache:
        probs, out_of_sample = _read_cache(cache, spec, backbone, examples_of, option)
    else:
        probs, out_of_sample = spec.predict(train, evals, backbone)
        if cache is not None:
            write_probs_file(
                cache,
                {
                    name: SplitProbs([e.uid for e in ex], probs[name], [e.label for e in ex])
                    for name, ex in examples_of.items()
                    if name in probs
                },
                meta={
                    "fingerprint": spec.fingerprint(backbone),
                    "spec": spec.identity(backbone),
                    "data": data_key(examples_of),
                    "out_of_sample": out_of_sample,
                },
            )
    report: dict[str, dict[str, Any]] = {}
    for name, examples in examples_of.items():
        if name in probs:
            report[name] = {**bias_report(probs[name], examples), "coverage": 1.0}
        else:
            report[name] = {"n": len(examples), "coverage": 0.0}
    report[TRAIN]["out_of_sample"] = out_of_sample
    return BiasPredictions(probs=probs, report=report, cache_path=cache, from_cache=from_cache)
