"""Checksum-verified, cached downloads (urllib only), shared by the data sets and the metric weights.

`fetch(urls, dest, digest)` returns `dest` when it already holds the right bytes; otherwise it
streams each URL in turn into a temp file beside `dest`, checks the digest and moves the file into
place atomically, so `dest` is never a partial or unverified file. Failures raise DownloadError with
a one-line message.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO

from posgen.errors import DownloadError, one_line
from posgen.files import atomic_write

__all__ = ["DownloadError", "Opener", "cache_root", "fetch", "file_digest", "urlopen"]

PathLike = str | os.PathLike
Opener = Callable[[str], AbstractContextManager[IO[bytes]]]

_CHUNK = 1 << 16
_TIMEOUT_S = 60



def cache_root() -> Path:
    """`$POSGEN_CACHE` if set, else `~/.cache/posgen`."""
    base = os.environ.get("POSGEN_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "posgen"


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (any `hashlib` algorithm name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def urlopen(url: str) -> AbstractContextManager[IO[bytes]]:
    """The default opener: urllib with a 60 s timeout and a User-Agent."""
    req = urllib.request.Request(url, headers={"User-Agent": "posgen"})
    return urllib.request.urlopen(req, timeout=_TIMEOUT_S)



def _download(url: str, tmp: str, name: str, digest: str, algorithm: str, opener: Opener, progress: bool) -> None:
    """Stream `url` into `tmp` and check its digest (a mismatch raises DownloadError)."""
    from tqdm import tqdm

    h = hashlib.new(algorithm)
    with open(tmp, "wb") as out, opener(url) as resp:
        headers = getattr(resp, "headers", None)
        length = headers.get("Content-Length") if headers is not None else None
        total = int(length) if length and str(length).isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                  disable=not progress, leave=False) as bar:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    got = h.hexdigest()
    if got != digest:
        raise DownloadError(f"checksum mismatch for {name} from {url}: {algorithm} {got}, expected {digest}")


def fetch(
    urls: Sequence[str],
    dest: PathLike,
    digest: str,
    *,
    algorithm: str = "sha256",
    opener: Opener | None = None,
    progress: bool = True,
) -> Path:
    """Make `dest` hold the file with hex `digest` (under `algorithm`) and return it.

    A `dest` already holding the right bytes is kept. Otherwise `urls` are tried in order (a URL
    whose bytes have the wrong digest counts as a failure and the next one is tried) and the first
    good download replaces `dest` atomically; `dest` is left as it was when none delivers.
    `opener(url)` returns a context-managed binary stream (default `urlopen`), so tests can use
    file:// URLs. Raises DownloadError: for a lone checksum mismatch its message names the file,
    URL, got and expected digest; otherwise it names the file and every URL's error, the last one last.
    """
    dest = Path(dest).expanduser()
    digest = digest.lower()
    hashlib.new(algorithm)  # unknown algorithm: ValueError now, not a download failure later
    if dest.is_file() and file_digest(dest, algorithm) == digest:
        return dest
    urls = list(urls)
    if not urls:
        raise DownloadError(f"no URL to download {dest.name} from")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create directory {dest.parent} for {dest.name}: {e.strerror or e}") from e
    opener = opener or urlopen
    failures: list[str] = []
    mismatch: DownloadError | None = None
    for url in urls:
        try:  # into a temporary file beside dest, renamed over it only when the digest matches
            return atomic_write(dest, lambda tmp, url=url: _download(url, tmp, dest.name, digest, algorithm, opener,
                                                                    progress))
        except DownloadError as e:  # wrong bytes: try the next URL, remember why
            mismatch = e
            failures.append(str(e))
            continue
        except (OSError, ValueError, http.client.HTTPException) as e:  # URLError / timeouts are OSErrors
            failures.append(f"{url}: {one_line(e)}")
    if mismatch is not None and len(failures) == 1:
        raise mismatch
    raise DownloadError(f"could not download {dest.name} into {dest.parent}: " + "; ".join(failures))
