"""Checksummed, atomic file download with a progress bar.

Downloads stream into a temporary file next to the destination and are renamed into
place only after the MD5 matches, so an interrupted or corrupt download never looks
like a valid cached file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from autonas.errors import DataError

_BLOCK = 1 << 20


def md5sum(path: str | Path) -> str:
    """Hex MD5 of a file, read in blocks so large files do not need to fit in memory."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
        leave=False,
        file=sys.stderr,
    )


def download(
    url: str,
    dest: Path,
    md5: str | None,
    timeout: float = 60,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, checking ``md5`` (when given) before the file appears there."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataError(
            f"cannot write {dest.name} into folder {dest.parent} ({e}). Choose a writable "
            "folder (root argument or the AUTONAS_DATA environment variable)."
        ) from None
    manual = f"Download {url} yourself and save it as {dest.name} in the folder {dest.parent}."
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        received = 0
        total: int | None = None
        request = urllib.request.Request(url, headers={"User-Agent": "autonas"})
        try:
            with (
                urllib.request.urlopen(request, timeout=timeout) as resp,
                os.fdopen(fd, "wb") as out,
            ):
                fd = -1
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                show = progress and sys.stderr.isatty()
                with _progress_bar(total, dest.name, show) as bar:
                    for block in iter(lambda: resp.read(_BLOCK), b""):
                        out.write(block)
                        h.update(block)
                        received += len(block)
                        bar.update(len(block))
        except urllib.error.HTTPError as e:
            raise DataError(
                f"could not download {dest.name} into {dest.parent}: the server answered "
                f"HTTP {e.code} {e.reason} for {url}. {manual}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(
                f"could not download {dest.name} into {dest.parent} from {url} ({reason}). "
                f"Check the network connection, or work offline: {manual}"
            ) from None
        if total is not None and received != total:
            raise DataError(
                f"download of {dest.name} from {url} was incomplete ({received} of {total} "
                f"bytes); the partial file was removed. Run again to retry, or: {manual}"
            )
        actual = h.hexdigest()
        if md5 is not None and actual.lower() != md5.lower():
            raise DataError(
                f"MD5 mismatch for {dest.name} downloaded from {url}: expected {md5}, got "
                f"{actual}. The bad download was removed; run again to re-download, or: {manual}"
            )
        os.replace(tmp, dest)
    finally:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest
