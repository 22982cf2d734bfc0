"""Exceptions raised by the data sources."""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad or missing input data; the one-line message names the offending file or path."""
