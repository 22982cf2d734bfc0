"""Writing files so that nothing half-written is ever seen, nor lost: the one atomic writer of
posgen (checkpoints, configs, logs, cached statistics, downloads)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`.

    Readers see the old file or the whole new one, never a partial one; if `write` raises, the
    temporary file is removed and `path` is untouched. The temporary file is fsynced before the
    rename and the folder after it (POSIX rename durability: without the first, a crash of the
    machine can leave the new name pointing at unwritten blocks; without the second, the old file
    can come back). Temporary files that a killed writer left beside `path` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, f".{path.name}.*.tmp")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would carry through the rename: a plain file's mode
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temps(folder: str | os.PathLike, pattern: str = ".*.tmp") -> list[Path]:
    """Remove the temporary files of `atomic_write` in `folder` (those matching `pattern`) whose
    writer is gone: a process killed while writing leaves its `.NAME.PID-XXXX.tmp` behind. A file
    whose writer process is still alive on this machine is kept (two processes may write the same
    cache file); one without a writer id (an older posgen's) counts as stale. -> the removed files."""
    removed = []
    for tmp in Path(folder).glob(pattern):
        if _writer_alive(tmp.name):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            pass
    return removed


def _writer_alive(temp_name: str) -> bool:
    """Whether the process that `atomic_write` named in `temp_name` (".NAME.PID-XXXX.tmp") runs."""
    writer = temp_name[:-len(".tmp")].rsplit(".", 1)[-1].split("-", 1)[0]
    if not writer.isdigit():
        return False
    pid = int(writer)
    if os.name == "nt":  # no harmless probe there (os.kill ends the process): keep the file
        return True
    if pid == os.getpid():
        return True  # another thread of this process is writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's process, or no signals here: assume alive
        return True
    return True


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; skipped where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_tensors(path: str | os.PathLike) -> tuple[dict, dict[str, str]]:
    """(tensors, metadata) of a safetensors file, read from its bytes: any path the OS can open
    works (safetensors' own readers need UTF-8 paths). Raises ValueError with the reason when the
    file is not a well-formed safetensors file; nothing is ever unpickled."""
    import json
    import struct

    from safetensors.torch import load

    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError("file too short for a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError(f"header of {size} bytes in a file of {len(data)}")
    try:
        header = json.loads(data[8:8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"header is not JSON ({e})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    tensors = load(data)
    return tensors, dict(metadata or {})


def write_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file atomically (`atomic_write`), at any path the OS can open."""
    from safetensors.torch import save

    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(save(tensors, metadata=metadata)))
