"""``debiaslit export --ckpt_path X --output DIR [--masks_only]``: a trained method's export, no Trainer.

The checkpoint names its method (``_class_path`` in the hyper-parameters LightningCLI saves); that
class, among the already imported LightningModules, is rebuilt from the checkpoint
(``weights_only=True``) and its ``export_pretrained(DIR)`` is called (``save_masks`` with
``--masks_only``: ``DIR/masks.safetensors``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
from jsonargparse import ArgumentParser

import debiaslit.methods  # noqa: F401  (the methods a checkpoint may name)
from debiaslit.backbones.checkpoint_file import read_checkpoint
from debiaslit.errors import ConfigError, DataFormatError


def method_class(ckpt_path: Path) -> type[pl.LightningModule]:
    """The LightningModule class recorded in a CLI checkpoint; ConfigError when it records none."""
    hparams = read_checkpoint(ckpt_path, "--ckpt_path").get("hyper_parameters", {})
    class_path = hparams.get("_class_path")
    if not isinstance(class_path, str):
        raise DataFormatError(
            f"{ckpt_path} records no method class (hyper_parameters._class_path): it was not written by "
            "`debiaslit fit`; load it with <Method>.load_from_checkpoint and call export_pretrained"
        )
    module_name, _, name = class_path.rpartition(".")
    cls = getattr(sys.modules.get(module_name), name, None)  # never imports what a file names
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)):
        raise ConfigError(f"{ckpt_path}: method class {class_path!r} is not an imported LightningModule")
    return cls


def export(ckpt_path: str | Path, output: str | Path, masks_only: bool = False) -> Path:
    """Load the method of ``ckpt_path`` and export it into ``output``; returns the written path."""
    ckpt_path = Path(ckpt_path)
    cls = method_class(ckpt_path)
    action = "save_masks" if masks_only else "export_pretrained"
    if not callable(getattr(cls, action, None)):
        raise ConfigError(
            f"{cls.__name__} ({cls.__module__}) has no {action}(): only methods that change a model's "
            f"weights export (e.g. MaskMethod); {cls.__name__}'s checkpoint is the result"
        )
    # the weights come from the checkpoint itself, not from the run's warm start
    module = cls.load_from_checkpoint(
        ckpt_path, map_location="cpu", weights_only=True, init_weights_from=None
    )
    output = Path(output)
    return module.save_masks(output / "masks.safetensors") if masks_only else module.export_pretrained(output)


def export_main(args: Sequence[str]) -> None:
    """Parse ``args`` (after ``export``) and run :func:`export`; errors exit with status 2."""
    parser = ArgumentParser(prog="debiaslit export", description="Export a trained method without a Trainer.")
    parser.add_argument(
        "--ckpt_path", type=str, required=True, help="Lightning checkpoint of `debiaslit fit`"
    )
    parser.add_argument("--output", type=str, required=True, help="directory to write")
    parser.add_argument("--masks_only", action="store_true", help="only DIR/masks.safetensors")
    cfg = parser.parse_args(list(args))
    try:
        path = export(cfg.ckpt_path, cfg.output, cfg.masks_only)
    except (ConfigError, DataFormatError) as err:
        print(f"debiaslit export: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    print(f"[debiaslit] exported {cfg.ckpt_path} to {path}")
