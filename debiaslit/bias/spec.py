"""What a bias (or teacher) model is, as configured from YAML (``data.init_args.bias`` / ``teacher``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from debiaslit.errors import ConfigError

BIAS_KINDS = ("hans_features", "hypothesis_only", "finetune", "checkpoint", "file")
LR_CLASSES = ("binary", "three_way")


@dataclass
class BiasModelSpec:
    """A bias model whose per-example probabilities the DataModule attaches to every batch.

    ``kind``:

    * ``hans_features``: Clark et al.'s hand-crafted HANS features + logistic regression
      (``lr_classes: binary`` = entailment vs non-entailment expanded to 3 classes, as Clark; or
      ``three_way``), L2 strength ``lr_c`` with balanced class weights.
    * ``hypothesis_only``: the backbone fine-tuned on hypotheses alone.
    * ``finetune``: the backbone fine-tuned on pairs; with ``train_size: 2000, epochs: 5`` this is
      Utama et al.'s (2020b) shallow model, with ``train_size: null, folds: 1`` a plain teacher.
    * ``checkpoint``: a model from an earlier ``debiaslit fit`` run (``path`` = its ``.ckpt``), predicting
      without retraining (``folds`` is ignored; in-sample when it was trained on the same data, as the
      confidence-regularisation teacher is).
    * ``file``: probabilities from ``path`` (a ``debiaslit.probs/1`` JSON written by
      :func:`debiaslit.bias.write_probs_file`; its ``label_order`` is mapped by name).

    Trained kinds are cross-fitted: the training set is cut into ``folds`` seeded folds and each is
    predicted by a model trained on the others (subsampled to ``train_size``), so no training example
    is scored by a model that saw it. ``folds: 1`` trains on (a subset of) everything and predicts
    in-sample. Evaluation sets are scored by one more model trained on the whole training set.

    ``backbone`` defaults to the main model's. ``cache``: ``auto`` stores the predictions under the
    logger's run directory (``<save_dir>/<name>/bias_cache/<kind>-<hash>.json``, shared by all versions
    of that run name), a path stores them there, ``null`` disables caching.
    """

    kind: str = "hans_features"
    path: str | None = None
    folds: int = 5
    seed: int = 0
    cache: str | None = "auto"
    # hans_features
    lr_classes: str = "binary"
    lr_c: float = 100.0
    # hypothesis_only / finetune
    backbone: str | None = None
    train_size: int | None = None
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128

    def validate(self, option: str) -> None:
        """Raise a ConfigError naming ``option`` (``data.bias``) for out-of-range values."""
        if self.kind not in BIAS_KINDS:
            raise ConfigError(f"{option}.kind must be one of {BIAS_KINDS}, got '{self.kind}'")
        if self.kind in ("file", "checkpoint") and not self.path:
            raise ConfigError(f"{option}: kind '{self.kind}' needs `path`")
        if self.folds < 1:
            raise ConfigError(f"{option}.folds must be >= 1, got {self.folds}")
        if self.lr_classes not in LR_CLASSES:
            raise ConfigError(f"{option}.lr_classes must be one of {LR_CLASSES}, got '{self.lr_classes}'")
        if self.train_size is not None and self.train_size < 2:
            raise ConfigError(f"{option}.train_size must be >= 2 or null, got {self.train_size}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{option}.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_c <= 0 or self.lr <= 0:
            raise ConfigError(f"{option}: lr_c and lr must be > 0")

    @property
    def trained(self) -> bool:
        return self.kind != "file"

    def fingerprint(self, backbone: str) -> str:
        """Short hash of everything that changes the predictions (not the cache location)."""
        fields = {k: v for k, v in asdict(self).items() if k != "cache"}
        fields["backbone"] = self.backbone or backbone
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
