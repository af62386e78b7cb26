"""The ``debiaslit`` command: one LightningCLI with every method and DataModule selectable by name."""

from __future__ import annotations

import os
import sys
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import debiaslit.cma.callback  # noqa: F401  (imported classes are selectable by short name)
import debiaslit.counterfactual  # noqa: F401
import debiaslit.datamodules  # noqa: F401
import debiaslit.gates  # noqa: F401  (binarizers, score inits, penalties)
import debiaslit.losses  # noqa: F401
import debiaslit.methods  # noqa: F401
from debiaslit.backbones.checkpoint_file import read_checkpoint
from debiaslit.backbones.positions import check_max_length
from debiaslit.cli.checkpoint import RunCheckpoint
from debiaslit.cli.cleanup import RemoveFailedRun
from debiaslit.cli.errors import HINT, TRACEBACK_ENV, format_user_error, user_error
from debiaslit.cli.predictions import PredictionCSVWriter

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "logs", "name": "debiaslit", "default_hp_metric": False},
    },
    # Our DataModules build their own samplers: unrepeated for evaluation (every example counted
    # once under DDP) and a seeded DistributedSampler for training (same global batches at any
    # process count).
    "use_distributed_sampler": False,
}
#: ``--ckpt_path`` values that Lightning resolves itself (not file names).
LIGHTNING_CKPT_NAMES = ("best", "last", "hpc")


class DebiasCLI(LightningCLI):
    """LightningCLI with a ``checkpoint:`` section that always exists and the backbone linked to data."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        # errors raise (ArgumentError) instead of exiting: the Python API sees exceptions, main() prints them
        no_exit = {"exit_on_error": False}
        kwargs.setdefault("parser_kwargs", {**no_exit, **{sub: no_exit for sub in self.subcommands()}})
        # any LightningModule / DataModule: the methods (DebiasModule subclasses) and analysis modules
        super().__init__(pl.LightningModule, pl.LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.filename": "epoch{epoch:02d}-step{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.save_last": True,
            }
        )
        # The tokenizer always matches the model's backbone (subclass mode needs init_args on both sides).
        parser.link_arguments("model.init_args.backbone", "data.init_args.tokenizer")

    def _parse_ckpt_path(self) -> None:
        """A resume checkpoint that is missing, truncated (a crash while it was written) or pickles
        objects fails here, before any run folder exists: never a half-resume or a traceback."""
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and path not in LIGHTNING_CKPT_NAMES and not str(path).startswith("registry"):
            read_checkpoint(path, "--ckpt_path")
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        """A ``data.max_length`` the backbone's position table cannot hold fails here, with the option's
        name, instead of as an index error in the first long batch."""
        super().instantiate_classes()
        hparams = getattr(self.datamodule, "hparams", {})
        if self.model is not None and "max_length" in hparams:
            check_max_length(self.model, hparams["max_length"])

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> pl.Trainer:
        """Our callbacks (LightningCLI 2.6's private hook: the one place seeing trainer options and
        the extra callbacks together)."""
        if config.get("enable_checkpointing") is False:  # Lightning refuses a checkpoint callback then
            callbacks = [c for c in callbacks if not isinstance(c, RunCheckpoint)]
        callbacks = [*callbacks, RemoveFailedRun()]
        if self.subcommand == "predict":
            callbacks.append(PredictionCSVWriter())
        return super()._instantiate_trainer(config, callbacks)


def main() -> None:
    """Console-script entry point: a user error prints its message (no traceback) and exits 2.

    ``debiaslit export ...`` needs no Trainer and is handled before LightningCLI.
    """
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        _dispatch()
        return
    try:
        _dispatch()
    except Exception as err:
        if user_error(err) is None:
            raise
        print(f"debiaslit: error: {format_user_error(err)}\n{HINT}", file=sys.stderr)
        sys.exit(2)


def _dispatch() -> None:
    if sys.argv[1:2] == ["export"]:
        from debiaslit.cli.export import export_main

        export_main(sys.argv[2:])
        return
    DebiasCLI()


if __name__ == "__main__":
    main()
