"""One NLI DataModule for every method: a training source, several named evaluation sets."""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

# The modules that define every NLISource and BiasModelSpec subclass are imported here, so that the
# CLI (which imports debiaslit.datamodules) resolves their short names (`class_path: HansFile`).
from debiaslit.bias.spec import BiasModelSpec
from debiaslit.data.collate import PadCollator
from debiaslit.data.encoded import EncodedNLI
from debiaslit.data.samplers import eval_sampler, train_sampler
from debiaslit.data.schema import NLIExample
from debiaslit.data.sources import NLISource
from debiaslit.errors import ConfigError
from debiaslit.utils.run_dir import logger_folder


class NLIDataModule(pl.LightningDataModule):
    """Training pairs plus any number of named evaluation sets (e.g. MNLI-m dev and HANS).

    Evaluation loaders use an unrepeated distributed sampler so that under DDP every example is
    evaluated exactly once; the training sampler is a seeded ``DistributedSampler`` in every
    process count, so 1 process at batch 2B sees the same global batches as 2 processes at B.
    The CLI sets ``use_distributed_sampler: false`` so that Lightning keeps these samplers.

    ``train`` and each of ``eval_sets`` is an :class:`~debiaslit.data.NLISource` (``NLIFile``,
    ``TableNLI``, ``HubNLI``, ``HansFile``, ``HansGenerated``, ``ShortcutSynthetic``).
    ``bias`` (a :class:`~debiaslit.bias.BiasModelSpec`: ``HansFeaturesBias``, ``HypothesisOnlyBias``,
    ``FinetunedBias``, ``CheckpointBias``, ``ProbsFileBias``) attaches a bias model's probabilities to the
    training batches (cross-fitted, out of sample by default) and to the evaluation batches (a model
    trained on the whole training set) as ``bias_probs``; ``teacher`` attaches ``teacher_probs`` to the
    training batches (confidence regularisation). Both are computed once, on rank 0 under DDP, and cached
    by example id; the bias model's accuracy and ECE per split are printed and logged (``bias/...``).
    ``group_by_length`` batches training pairs of similar length together (about 2× fewer tokens on
    MNLI; the same global batches at every process count, see
    :class:`~debiaslit.data.samplers.LengthGroupedSampler`).
    """

    def __init__(
        self,
        train: NLISource | None = None,
        eval_sets: dict[str, NLISource] | None = None,
        heldout_fraction: float = 0.0,
        heldout_name: str = "heldout",
        tokenizer: str = "tiny-bert",
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        bias: BiasModelSpec | None = None,
        teacher: BiasModelSpec | None = None,
        group_by_length: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= heldout_fraction < 1.0:
            raise ConfigError(f"data.heldout_fraction must lie in [0, 1), got {heldout_fraction}")
        if train is None and not eval_sets:
            raise ConfigError("data: give a `train` source, `eval_sets`, or both")
        self.save_hyperparameters()
        self.train_source = train
        self.eval_sources = dict(eval_sets or {})
        if heldout_fraction > 0 and heldout_name in self.eval_sources:
            raise ConfigError(f"data.heldout_name '{heldout_name}' clashes with an entry of data.eval_sets")
        self.model_specs: dict[str, BiasModelSpec] = {}
        for role, spec in (("bias", bias), ("teacher", teacher)):
            if spec is not None:
                spec.validate(f"data.{role}")
                self.model_specs[role] = spec
        self.train_set: EncodedNLI | None = None
        self.eval_datasets: dict[str, EncodedNLI] = {}
        self.bias_reports: dict[str, dict[str, dict[str, Any]]] = {}

    @cached_property
    def tokenizer(self) -> Any:
        from debiaslit.backbones import load_tokenizer

        return load_tokenizer(self.hparams.tokenizer)

    @property
    def eval_names(self) -> list[str]:
        """Evaluation set names in dataloader order (available after ``setup``)."""
        return list(self.eval_datasets)

    def setup(self, stage: str | None = None) -> None:
        if self.eval_datasets or (self.train_set is not None):
            return
        hp = self.hparams
        eval_examples: dict[str, list[NLIExample]] = {}
        if self.train_source is not None:
            train = self.train_source.load("train")
            if hp.heldout_fraction > 0:
                from debiaslit.data.nli_readers import split_train_val

                train, heldout = split_train_val(
                    train, hp.heldout_fraction, seed=hp.seed, option="data.heldout_fraction"
                )
                eval_examples[hp.heldout_name] = heldout
            self.train_set = EncodedNLI("train", train, self.tokenizer, hp.max_length)
            if self.train_set.is_hans:
                raise ConfigError("data.train: HANS-style binary data cannot train a 3-way NLI model")
            counts = Counter(e.label for e in train)
            rank_zero_info(f"[debiaslit] train: {len(train)} pairs {dict(sorted(counts.items()))}")
        for name, source in self.eval_sources.items():
            eval_examples[name] = source.load(name)
        for name, examples in eval_examples.items():
            self.eval_datasets[name] = EncodedNLI(name, examples, self.tokenizer, hp.max_length)
            rank_zero_info(f"[debiaslit] eval set '{name}': {len(examples)} pairs")
        for role, spec in self.model_specs.items():
            self._attach_model_probs(role, spec, f"{role}_probs")

    def _cache_path(self, role: str, spec: BiasModelSpec, data_key: str) -> Path | None:
        if spec.cache != "auto":
            return Path(spec.cache) if spec.cache else None
        root = logger_folder(self.trainer, "root_dir") if self.trainer is not None else None
        if root is None:
            return None
        return (
            root
            / "bias_cache"
            / f"{role}-{type(spec).__name__}-{spec.fingerprint(self.hparams.tokenizer)}-{data_key}.json"
        )

    def _attach_model_probs(self, role: str, spec: BiasModelSpec, field: str) -> None:
        """Compute (rank 0 first, others then read its cache) and attach one model's probabilities."""
        from debiaslit.bias.build import TRAIN, compute_bias_probs, data_key

        if self.train_set is None:
            raise ConfigError(f"data.{role} needs a training source (data.train) to fit or align on")
        train = self.train_set.examples
        evals = {name: ds.examples for name, ds in self.eval_datasets.items()} if role == "bias" else {}
        cache = self._cache_path(role, spec, data_key({TRAIN: train, **evals}))
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)

        def run() -> Any:
            return compute_bias_probs(
                spec, train, evals, backbone=self.hparams.tokenizer, cache_path=cache, option=f"data.{role}"
            )

        if world > 1 and cache is not None:  # rank 0 fits and writes the cache, the others read it
            result = run() if rank == 0 else None
            self.trainer.strategy.barrier(f"debiaslit_{role}_probs")
            result = result or run()
        else:
            result = run()
        self.train_set.extras[field] = result.probs[TRAIN]
        for name, probs in result.probs.items():
            if name != TRAIN:
                self.eval_datasets[name].extras[field] = probs
        self.bias_reports[role] = result.report
        origin = f"cache {result.cache_path}" if result.from_cache else spec.describe()
        for split, rep in result.report.items():
            if not rep["coverage"]:
                rank_zero_info(
                    f"[debiaslit] {role} model ({origin}) on {split}: no probabilities (coverage 0)"
                )
                continue
            rank_zero_info(
                f"[debiaslit] {role} model ({origin}) on {split}: acc {rep['acc']:.4f}, ECE {rep['ece']:.4f}"
                + (f", out of sample: {rep['out_of_sample']}" if "out_of_sample" in rep else "")
            )
        logger = getattr(self.trainer, "logger", None)
        if logger is not None:
            metrics = {
                f"{role}/{s}/{k}": float(v)
                for s, r in result.report.items()
                for k, v in r.items()
                if k in ("acc", "ece")
            }
            logger.log_metrics(metrics, step=0)

    def _collate(self) -> PadCollator:
        return PadCollator(self.tokenizer.pad_token_id or 0)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise ConfigError("data.train is not set: `fit` needs a training source")
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            sampler=train_sampler(
                self.train_set,
                self.trainer,
                self.hparams.seed,
                batch_size=self.hparams.batch_size,
                lengths=self.train_set.lengths if self.hparams.group_by_length else None,
            ),  # fmt: skip
            collate_fn=self._collate(),
            num_workers=self.hparams.num_workers,
        )

    def _eval_loaders(self) -> list[DataLoader]:
        if not self.eval_datasets:
            raise ConfigError(
                "data.eval_sets is empty and no heldout split was requested: nothing to evaluate"
            )
        return [
            DataLoader(
                ds,
                batch_size=self.hparams.eval_batch_size,
                sampler=eval_sampler(ds, self.trainer),
                collate_fn=self._collate(),
                num_workers=self.hparams.num_workers,
            )
            for ds in self.eval_datasets.values()
        ]

    val_dataloader = _eval_loaders
    test_dataloader = _eval_loaders
    predict_dataloader = _eval_loaders
