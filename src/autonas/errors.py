"""Errors users see: each names the problem and the fix, so the CLI prints it, not a traceback."""

from __future__ import annotations


class AutonasError(Exception):
    """Base class for errors caused by user input or environment, not by a bug."""


class DataError(AutonasError, ValueError):
    """The data cannot be used as given (bad shape, labels, values, missing file, bad checksum)."""


class ConfigError(AutonasError, ValueError):
    """An option or configuration value is invalid."""
