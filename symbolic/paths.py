"""Checks on output folders that every stage makes before its slow work: a folder that
exists is never overwritten, and one that cannot be written is said at once, not after
minutes of composing or preparing."""

from __future__ import annotations

import os
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
