"""Errors raised on bad user input; every message names the file/line/option at fault."""

from __future__ import annotations


class DebiaslitError(ValueError):
    """Base class for configuration and data errors (a ValueError, so jsonargparse reports it)."""


class DataFormatError(DebiaslitError):
    """A data file is missing, malformed or holds values outside the expected schema."""


class ConfigError(DebiaslitError):
    """An option value is out of range or names something that does not exist."""


class CheckpointError(ConfigError, DataFormatError):
    """A checkpoint named by an option is missing, truncated or unsafe to unpickle: both a bad option
    value and a bad file, so callers may catch either."""
