"""What a bias (or teacher) model is, as configured from YAML (``data.init_args.bias`` / ``teacher``).

One class per kind of model, chosen by ``class_path``; each knows how to compute its per-example
probabilities (``predict``) and what its predictions depend on (``identity``, the cache key).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from debiaslit.bias.crossfit import cross_fit_predict, fit_on_all
from debiaslit.bias.models import BackboneBiasModel, BiasModel, CheckpointModel, HansFeatureModel
from debiaslit.bias.probs_file import SplitProbs, align, read_probs_file
from debiaslit.data.schema import NLI_LABELS, NLIExample
from debiaslit.errors import ConfigError, DataFormatError

TRAIN = "train"
LR_CLASSES = ("binary", "three_way", "one_vs_rest")
#: Probabilities per split name (``train`` and evaluation sets), and whether ``train`` is out of sample.
Predictions = tuple[dict[str, torch.Tensor], bool | None]


def file_sha256(path: str | Path) -> str:
    """Hash of a file's bytes: a model retrained to the same path gets a new cache key."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class BiasModelSpec(ABC):
    """A model whose per-example probabilities the DataModule attaches to every batch.

    ``cache``: ``auto`` stores the predictions under the logger's run directory
    (``<save_dir>/<name>/bias_cache/``, shared by all versions of that run name), a path stores them
    there, ``null`` disables caching. The cache is keyed by :meth:`identity` and the data.
    """

    def __init__(self, cache: str | None = "auto") -> None:
        self.cache = cache

    @abstractmethod
    def predict(
        self, train: list[NLIExample], evals: dict[str, list[NLIExample]], backbone: str
    ) -> Predictions:
        """Probabilities (``NLI_LABELS`` order, rows as the examples) for ``train`` and each evaluation
        set; ``backbone`` is the main model's, the default for models that need one."""

    def validate(self, option: str) -> None:
        """Raise a ConfigError naming ``option`` (e.g. ``data.bias``) for out-of-range values."""
        if self.cache is not None and not str(self.cache).strip():
            raise ConfigError(f"{option}.cache must be 'auto', a path or null, not an empty string")

    def identity(self, backbone: str) -> dict[str, Any]:
        """Everything that changes the predictions (not the cache location)."""
        return {"class": type(self).__name__, **{k: v for k, v in vars(self).items() if k != "cache"}}

    def fingerprint(self, backbone: str) -> str:
        """Short hash of :meth:`identity`."""
        return hashlib.sha1(json.dumps(self.identity(backbone), sort_keys=True).encode()).hexdigest()[:10]

    def describe(self) -> str:
        """How the probabilities were made, for the log line."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class TrainedBias(BiasModelSpec):
    """A bias model trained here, cross-fitted by default.

    The training set is cut into ``folds`` seeded folds and each is predicted by a model trained on the
    others (subsampled to ``train_size``), so no training example is scored by a model that saw it;
    ``folds: 1`` trains on (a subset of) everything and predicts in-sample. Evaluation sets are scored
    by one more model trained on the whole training set.
    """

    def __init__(
        self, folds: int = 5, seed: int = 0, train_size: int | None = None, cache: str | None = "auto"
    ) -> None:
        super().__init__(cache)
        self.folds = folds
        self.seed = seed
        self.train_size = train_size

    @abstractmethod
    def make_model(self, backbone: str) -> BiasModel:
        """A fresh, unfitted model (one per fold)."""

    def validate(self, option: str) -> None:
        super().validate(option)
        if self.folds < 1:
            raise ConfigError(f"{option}.folds must be >= 1, got {self.folds}")
        if self.train_size is not None and self.train_size < 2:
            raise ConfigError(f"{option}.train_size must be >= 2 or null, got {self.train_size}")

    def predict(
        self, train: list[NLIExample], evals: dict[str, list[NLIExample]], backbone: str
    ) -> Predictions:
        def make() -> BiasModel:
            return self.make_model(backbone)

        if self.folds > 1:
            out = {TRAIN: cross_fit_predict(train, make, self.folds, self.seed, self.train_size).probs}
            full = fit_on_all(train, make, self.seed, self.train_size) if evals else None
        else:
            full = fit_on_all(train, make, self.seed, self.train_size)
            out = {TRAIN: full.predict(train)}
        for name, examples in evals.items():
            out[name] = full.predict(examples)
        return out, self.folds > 1

    def describe(self) -> str:
        return f"{type(self).__name__}, {self.folds} fold(s)"


class HansFeaturesBias(TrainedBias):
    """Clark et al.'s hand-crafted HANS features + logistic regression.

    ``lr_classes: binary`` = entailment vs non-entailment expanded to 3 classes, as Clark; ``three_way``;
    or ``one_vs_rest`` (bias experts, Jeon et al. 2023: one binary LR per class, combined by PoE).
    ``lr_c``: inverse L2 strength, with balanced class weights.
    """

    def __init__(
        self,
        lr_classes: str = "binary",
        lr_c: float = 100.0,
        folds: int = 5,
        seed: int = 0,
        train_size: int | None = None,
        cache: str | None = "auto",
    ) -> None:
        super().__init__(folds, seed, train_size, cache)
        self.lr_classes = lr_classes
        self.lr_c = lr_c

    def validate(self, option: str) -> None:
        super().validate(option)
        if self.lr_classes not in LR_CLASSES:
            raise ConfigError(f"{option}.lr_classes must be one of {LR_CLASSES}, got '{self.lr_classes}'")
        if self.lr_c <= 0:
            raise ConfigError(f"{option}.lr_c must be > 0, got {self.lr_c}")

    def make_model(self, backbone: str) -> BiasModel:
        return HansFeatureModel(self.lr_classes, self.lr_c)


class FinetunedBias(TrainedBias):
    """A transformer briefly fine-tuned on premise/hypothesis pairs.

    With ``train_size: 2000, epochs: 5`` this is Utama et al.'s (2020b) shallow model; with
    ``train_size: null, folds: 1`` a plain in-sample teacher. ``backbone`` defaults to the main model's.
    """

    inputs = "pair"
    head = "softmax"

    def __init__(
        self,
        backbone: str | None = None,
        epochs: int = 3,
        lr: float = 5e-5,
        batch_size: int = 32,
        max_length: int = 128,
        folds: int = 5,
        seed: int = 0,
        train_size: int | None = None,
        cache: str | None = "auto",
    ) -> None:
        super().__init__(folds, seed, train_size, cache)
        self.backbone = backbone
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length

    def validate(self, option: str) -> None:
        super().validate(option)
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{option}.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"{option}.lr must be > 0, got {self.lr}")

    def identity(self, backbone: str) -> dict[str, Any]:
        return {**super().identity(backbone), "backbone": self.backbone or backbone}

    def make_model(self, backbone: str) -> BiasModel:
        return BackboneBiasModel(
            backbone=self.backbone or backbone,
            inputs=self.inputs,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            max_length=self.max_length,
            seed=self.seed,
            head=self.head,
        )


class HypothesisOnlyBias(FinetunedBias):
    """The same fine-tuning on hypotheses alone (the hypothesis-only bias model)."""

    inputs = "hypothesis"


class BiasExpertsBias(FinetunedBias):
    """Bias experts (Jeon et al. 2023): the backbone fine-tuned with one class-balanced binary loss per
    class (one-vs-rest heads), the experts' outputs combined by a product of experts
    (:func:`debiaslit.bias.experts.one_vs_rest_poe`). ``train_size: 2000`` makes them shallow, as
    Utama et al.'s model; cross-fitted like every trained bias model."""

    head = "one_vs_rest"


class CheckpointBias(BiasModelSpec):
    """A model from an earlier ``debiaslit fit`` run (``path`` = its ``.ckpt``), predicting without
    retraining: in-sample when it was trained on the same data, as the confidence-regularisation
    teacher is. Cached by the checkpoint's bytes, not its path, so a model retrained to the same
    path is never served stale predictions."""

    def __init__(self, path: str, max_length: int = 128, cache: str | None = "auto") -> None:
        super().__init__(cache)
        self.path = path
        self.max_length = max_length

    def validate(self, option: str) -> None:
        super().validate(option)
        if self.max_length < 1:
            raise ConfigError(f"{option}.max_length must be >= 1, got {self.max_length}")

    def identity(self, backbone: str) -> dict[str, Any]:
        if not Path(self.path).is_file():
            raise ConfigError(f"checkpoint '{self.path}' (bias/teacher model) does not exist")
        return {"class": type(self).__name__, "max_length": self.max_length, "sha256": file_sha256(self.path)}

    def describe(self) -> str:
        return f"{type(self).__name__} {self.path}"

    def predict(
        self, train: list[NLIExample], evals: dict[str, list[NLIExample]], backbone: str
    ) -> Predictions:
        model = CheckpointModel(self.path, self.max_length)
        model.load()
        out = {name: model.predict(examples) for name, examples in {TRAIN: train, **evals}.items()}
        return out, False


class ProbsFileBias(BiasModelSpec):
    """Probabilities from ``path``, a ``debiaslit.probs/1`` JSON (:func:`debiaslit.bias.write_probs_file`;
    its ``label_order`` is mapped by name), matched to the data by example id. Read on every run,
    never cached.

    Coverage: every training example must have a row (else a DataFormatError lists the missing ids).
    An evaluation set the file covers only partly is refused the same way; one it does not cover at all
    gets no ``bias_probs``, with a warning and ``coverage: 0`` in the bias report.
    """

    def __init__(self, path: str) -> None:
        super().__init__(cache=None)
        self.path = path

    def describe(self) -> str:
        return f"{type(self).__name__} {self.path}"

    def predict(
        self, train: list[NLIExample], evals: dict[str, list[NLIExample]], backbone: str
    ) -> Predictions:
        splits, _ = read_probs_file(self.path)
        merged = SplitProbs(uids=[], probs=torch.zeros(0, len(NLI_LABELS)), labels=[])
        for s in splits.values():
            merged.uids += s.uids
            merged.labels = None if merged.labels is None or s.labels is None else merged.labels + s.labels
            merged.probs = torch.cat([merged.probs, s.probs])
        if len(set(merged.uids)) != len(merged.uids):
            raise DataFormatError(f"probabilities file '{self.path}': an id occurs more than once")
        known = set(merged.uids)
        hint = "every example of a set needs a row; was the file written for other data?"
        where = f"probabilities file '{self.path}'"
        out = {TRAIN: align(merged, train, f"{where} (training set)", exact=False, hint=hint)}
        for name, examples in evals.items():
            if any(e.uid in known for e in examples):
                out[name] = align(merged, examples, f"{where} (eval set '{name}')", exact=False, hint=hint)
            else:
                rank_zero_warn(
                    f"{where} has no rows for eval set '{name}' ({len(examples)} examples): that set gets "
                    "no bias_probs (coverage 0 in the bias report; losses and counterfactual inference "
                    "that need them will refuse it)"
                )
        return out, None
