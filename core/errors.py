"""seqrl's error types: each carries a one-line message and the exit code the CLI returns."""

from __future__ import annotations


class SeqrlError(Exception):
    """Base of every error seqrl raises on bad input. The CLI prints ``seqrl: error: <msg>``."""

    exit_code: int = 1


class UsageError(SeqrlError):
    """A bad flag, config key, preset or value given by the user (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config key that does not exist, or a value of the wrong type (exit code 2)."""


class DataError(SeqrlError):
    """A dataset file or array that is missing, malformed or inconsistent."""


class CheckpointError(SeqrlError):
    """A checkpoint that is missing, truncated, not seqrl's, or of another algorithm."""
