"""Checks on output folders that every stage makes before its slow work (a folder that
exists is never overwritten, and one that cannot be written is said at once, not after
minutes of composing or preparing), and the one way files appear whole (`write_atomic`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def output_problem(out: Path) -> str | None:
    """Why `out` cannot become a new folder here (it exists, or its nearest existing parent
    is not writable, e.g. a read-only file system), or None."""
    out = Path(out)
    if out.exists():
        return f"{out} already exists; choose a new folder (results are never overwritten)"
    existing = out.parent if str(out.parent) else Path(".")
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return f"{existing} is not writable (read-only or not yours); choose another folder"
    return None


def write_atomic(path: Path, *parts: bytes | memoryview) -> Path:
    """Write `parts` one after the other to `path` through a temporary file in the same folder,
    moved into place: a reader sees the old file or the whole new one, never half of it (a
    failure leaves neither a partial file nor the temporary one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                out.write(part)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
