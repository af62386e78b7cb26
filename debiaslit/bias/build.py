"""Compute (or load from the cache) the bias probabilities of a training set and its evaluation sets,
with the bias model's accuracy and calibration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from debiaslit.bias.calibration import expected_calibration_error
from debiaslit.bias.crossfit import cross_fit_predict, fit_on_all
from debiaslit.bias.models import BackboneBiasModel, BiasModel, CheckpointModel, HansFeatureModel
from debiaslit.bias.probs_file import SplitProbs, align, read_probs_file, write_probs_file
from debiaslit.bias.spec import BiasModelSpec
from debiaslit.data.schema import HANS_LABELS, NLI_LABELS, NLIExample, is_hans_style
from debiaslit.errors import DataFormatError

TRAIN = "train"


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


def make_bias_model(spec: BiasModelSpec, backbone: str) -> BiasModel:
    """A fresh, unfitted model of the spec's kind."""
    if spec.kind == "hans_features":
        return HansFeatureModel(spec.lr_classes, spec.lr_c)
    if spec.kind == "checkpoint":
        return CheckpointModel(spec.path, spec.max_length)
    return BackboneBiasModel(
        backbone=spec.backbone or backbone,
        inputs="hypothesis" if spec.kind == "hypothesis_only" else "pair",
        epochs=spec.epochs,
        lr=spec.lr,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        seed=spec.seed,
    )


def _from_file(spec: BiasModelSpec, train: list[NLIExample], evals: dict[str, list[NLIExample]]) -> dict:
    splits, _ = read_probs_file(spec.path)
    merged = SplitProbs(uids=[], probs=torch.zeros(0, len(NLI_LABELS)), labels=[])
    for s in splits.values():
        merged.uids += s.uids
        merged.labels = None if merged.labels is None or s.labels is None else merged.labels + s.labels
        merged.probs = torch.cat([merged.probs, s.probs])
    if len(set(merged.uids)) != len(merged.uids):
        raise DataFormatError(f"probabilities file '{spec.path}': an id occurs more than once")
    known = set(merged.uids)
    out = {TRAIN: align(merged, train, f"bias file '{spec.path}' (training set)", exact=False)}
    for name, examples in evals.items():  # evaluation sets only when the file covers them
        if all(e.uid in known for e in examples):
            out[name] = align(merged, examples, f"bias file '{spec.path}' (eval set '{name}')", exact=False)
    return out


def _train_and_predict(
    spec: BiasModelSpec, backbone: str, train: list[NLIExample], evals: dict[str, list[NLIExample]]
) -> tuple[dict[str, torch.Tensor], bool]:
    def make() -> BiasModel:
        return make_bias_model(spec, backbone)

    if spec.kind == "checkpoint":  # trained elsewhere: nothing to cross-fit
        full = make()
        full.fit(train)
        out = {TRAIN: full.predict(train)}
    elif spec.folds > 1:
        out = {TRAIN: cross_fit_predict(train, make, spec.folds, spec.seed, spec.train_size).probs}
        full = fit_on_all(train, make, spec.seed, spec.train_size) if evals else None
    else:
        full = fit_on_all(train, make, spec.seed, spec.train_size)
        out = {TRAIN: full.predict(train)}
    for name, examples in evals.items():
        out[name] = full.predict(examples)
    return out, spec.folds > 1 and spec.kind != "checkpoint"


def compute_bias_probs(
    spec: BiasModelSpec,
    train: list[NLIExample],
    evals: dict[str, list[NLIExample]] | None = None,
    backbone: str = "tiny-bert",
    cache_path: str | Path | None = None,
    option: str = "data.bias",
) -> BiasPredictions:
    """Bias probabilities for ``train`` (cross-fitted unless ``spec.folds == 1``) and each evaluation
    set (a model trained on all of ``train``), read from ``cache_path`` when it exists there.

    A cache whose ids or gold labels differ from the data, or that was made by another spec, raises a
    :class:`DataFormatError` naming the file.
    """
    spec.validate(option)
    evals = dict(evals or {})
    cache = Path(cache_path) if cache_path else None
    fingerprint = spec.fingerprint(backbone)
    from_cache = False
    if spec.kind == "file":
        probs, out_of_sample = _from_file(spec, train, evals), None  # unknown for a given file
    elif cache is not None and cache.is_file():
        splits, meta = read_probs_file(cache)
        if meta.get("fingerprint") != fingerprint:
            raise DataFormatError(
                f"bias cache '{cache}' was made by another bias-model spec ({meta.get('spec')}); "
                f"delete it or set {option}.cache elsewhere"
            )
        probs = {}
        for name, examples in {TRAIN: train, **evals}.items():
            if name not in splits:
                raise DataFormatError(f"bias cache '{cache}' has no split '{name}'; delete it to recompute")
            probs[name] = align(splits[name], examples, f"bias cache '{cache}' (split '{name}')", exact=True)
        out_of_sample, from_cache = bool(meta.get("out_of_sample")), True
    else:
        probs, out_of_sample = _train_and_predict(spec, backbone, train, evals)
        if cache is not None:
            examples_of = {TRAIN: train, **evals}
            write_probs_file(
                cache,
                {
                    name: SplitProbs(
                        [e.uid for e in examples_of[name]], p, [e.label for e in examples_of[name]]
                    )
                    for name, p in probs.items()
                },
                meta={"fingerprint": fingerprint, "spec": spec.__dict__, "out_of_sample": out_of_sample},
            )
    examples_of = {TRAIN: train, **evals}
    report = {name: bias_report(p, examples_of[name]) for name, p in probs.items()}
    report[TRAIN]["out_of_sample"] = out_of_sample
    return BiasPredictions(probs=probs, report=report, cache_path=cache, from_cache=from_cache)
