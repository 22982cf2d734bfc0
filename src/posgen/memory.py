"""The memory budget of rendering: how much a render may take, and the one check against it.

Every render from seeds (`posgen.sampling.render_seeds`, and so every command, metric and app)
first asks the generator for its peak (`Generator.memory_estimate`, computed from the layer
sizes, nothing allocated) and refuses in one line when it exceeds the limit: `--max-memory` on
`posgen generate`, otherwise `default_limit()`, 80% of the memory the machine had available when
posgen first asked (/proc/meminfo MemAvailable). Generators that render exactly tile by tile
(`Generator.tiling`) render large canvases in tiles instead (`posgen.tiling`).
Importing this costs no torch.
"""
from __future__ import annotations

import functools
import math
import re

from posgen.errors import MemoryLimitError, UsageError

DEFAULT_FRACTION = 0.8          # of MemAvailable: the default limit
FALLBACK_LIMIT = 4 * 2**30      # where the available memory cannot be read
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), or None off Linux."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def default_limit() -> int:
    """The limit when none is given: DEFAULT_FRACTION of the available memory, read once per process
    (so a long run's own growth never turns a render it already did into a refusal)."""
    available = available_memory()
    return int(available * DEFAULT_FRACTION) if available else FALLBACK_LIMIT


def parse_bytes(text: str) -> int:
    """'4G', '512M', '1.5g', '800MB', '1000000' -> bytes (binary units: 1G = 2^30 bytes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not m:
        raise UsageError(f"malformed --max-memory {text!r}: use e.g. 4G, 512M or a number of bytes")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not math.isfinite(value) or value < 2**20:
        raise UsageError(f"--max-memory {text} is less than 1M")
    return int(value)


def format_bytes(n: float) -> str:
    """1536 * 2**20 -> '1.5G' (the units `parse_bytes` reads)."""
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.1f}{unit}"
    return f"{int(n)}B"


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int | None:
    """This process's resident set now (VmRSS), or None off Linux."""
    return _status_bytes("VmRSS")


def reset_peak_resident() -> bool:
    """Restart this process's peak resident set from its current size (writes 5 to /proc/self/clear_refs);
    False where the kernel does not allow it (then `peak_resident_bytes` counts from the start)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_resident_bytes() -> int | None:
    """This process's own peak resident set (VmHWM) since it started or the last `reset_peak_resident`, or
    None off Linux. Not `ru_maxrss`: Linux carries the parent's peak into a child across fork/vfork + exec,
    so a child of a large process (a test runner) would report the parent's peak as its own."""
    return _status_bytes("VmHWM")


def check_memory(need: int, limit: int | None, what: str, hint: str = "") -> None:
    """Refuse in one line when a render estimated at `need` bytes exceeds `limit` (None: `default_limit()`)."""
    limit = default_limit() if limit is None else limit
    if need > limit:
        raise MemoryLimitError(f"{what} would need about {format_bytes(need)} of memory, more than the limit of "
                               f"{format_bytes(limit)} (--max-memory){'; ' + hint if hint else ''}")
