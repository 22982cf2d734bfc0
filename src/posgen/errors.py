"""Every error posgen reports to a user, in one place (importing it costs nothing: no torch).

Each class carries a one-line message; the CLI prints it after `posgen: error:` and exits with
code 2 (bad input) or 1 (a run that had to stop). `one_line` turns a foreign exception into
such a line.
"""
from __future__ import annotations

__all__ = ["CapabilityError", "CheckpointError", "ConfigError", "DataError", "DownloadError", "MemoryLimitError",
           "MetricError", "TrainingError", "UsageError", "one_line"]


class UsageError(Exception):
    """Bad command-line input (not a ValueError: argparse would swallow it in option types)."""


class MemoryLimitError(UsageError):
    """A render whose estimated peak memory exceeds the limit (--max-memory), refused before any work."""


class ConfigError(ValueError):
    """A bad configuration value or override."""


class CapabilityError(ValueError):
    """An option the generator's family does not support (see `posgen.models.base.CAPABILITIES`)."""


class CheckpointError(ValueError):
    """An unreadable or incompatible checkpoint; the message names the file."""


class DataError(ValueError):
    """Bad or missing input data; the message names the offending file or path."""


class MetricError(ValueError):
    """A metric cannot run as asked (bad option, missing weights, wrong checksum)."""


class DownloadError(Exception):
    """A file could not be fetched or failed its checksum."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, ...); the message says where it stopped."""


def one_line(e: BaseException, *, with_type: bool = False) -> str:
    """An exception's message on one line (whitespace collapsed), or its type name when it has none;
    `with_type` prefixes the type name (for errors from libraries whose messages omit what failed)."""
    text = " ".join(str(e).split())
    if not text:
        return type(e).__name__
    return f"{type(e).__name__}: {text}" if with_type else text
