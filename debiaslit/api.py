"""Python API that mirrors the CLI: ``debiaslit.fit(config=..., trainer__max_epochs=1)``."""

from __future__ import annotations

import json
from typing import Any


def _args(
    config: str | list[str] | None, overrides: dict[str, Any] | None, kwargs: dict[str, Any]
) -> list[str]:
    configs = [config] if isinstance(config, str) else list(config or [])
    args = [f"--config={c}" for c in configs]
    merged = dict(overrides or {})
    merged.update({k.replace("__", "."): v for k, v in kwargs.items()})
    for key, value in merged.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args.append(f"--{key}={text}")
    return args


def run(
    subcommand: str,
    config: str | list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``debiaslit <subcommand> --config ... --key=value ...`` in this process; returns the CLI.

    Options use the CLI's dotted names, either in ``overrides`` (``{"trainer.max_epochs": 1}``) or
    as keyword arguments with ``__`` for the dots (``trainer__max_epochs=1``). The returned object
    holds ``.trainer``, ``.model`` and ``.datamodule``. For DDP use the command line: the DDP
    launcher re-runs the command line of the current process.
    """
    from debiaslit.cli import DebiasCLI

    return DebiasCLI(args=[subcommand, *_args(config, overrides, kwargs)])


def fit(config: str | list[str] | None = None, overrides: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """``debiaslit fit``."""
    return run("fit", config, overrides, **kwargs)


def validate(
    config: str | list[str] | None = None, overrides: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """``debiaslit validate``."""
    return run("validate", config, overrides, **kwargs)


def test(
    config: str | list[str] | None = None, overrides: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """``debiaslit test``."""
    return run("test", config, overrides, **kwargs)


def predict(
    config: str | list[str] | None = None, overrides: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """``debiaslit predict``."""
    return run("predict", config, overrides, **kwargs)
