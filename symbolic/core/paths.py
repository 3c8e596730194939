"""Checks on output folders that every stage makes before its slow work (a folder that
exists is never overwritten, and one that cannot be written is said at once, not after
minutes of composing or preparing), the one way files appear whole (`write_atomic`), the
partial folders a run writes before its rename (`partial_folder`, `remove_stale_partials`),
and the one-line error of a full disk (`disk_full`)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from stemforge.symbolic.core.errors import UserError

try:  # Unix: a partial folder is locked by the process writing it
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# The process's umask, read once at import (os.umask can only be read by setting it, which is
# not thread-safe later): files written through a temporary file get the mode a plain open()
# would give them, not mkstemp's owner-only 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

# errno values that mean "no room": ENOSPC (disk full), EDQUOT (quota), EFBIG (file size limit)
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(UserError):
    """No room left where stemforge writes; one line naming the folder and what to do."""


def disk_full(error: BaseException, where: Path | str) -> DiskFullError | None:
    """The one-line error of a write that failed for want of space (disk full, quota, file
    size limit), or None when `error` is something else."""
    cause: BaseException | None = error
    for _ in range(6):  # the OSError itself, or the cause of the error raised in its place (RenderError)
        if cause is None or isinstance(cause, DiskFullError):
            return cause
        if isinstance(cause, OSError) and cause.errno in NO_ROOM:
            reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                      errno.EFBIG: "a file grew past the size limit"}[cause.errno]
            return DiskFullError(f"disk full: {reason} while writing {where}; free space there (or choose another "
                                 "folder) and try again; nothing half-written was kept")
        cause = cause.__cause__ or cause.__context__
    return None


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
        os.fchmod(handle, FILE_MODE)  # the user's umask, as open() would give (mkstemp makes 0600)
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                out.write(part)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


PARTIAL = ".partial-"  # `.<name>.partial-<pid>`: a run folder being written, renamed into place when whole


def partial_folder(final: Path):
    """Create and lock the hidden folder `.<name>.partial-<pid>` beside `final`; returns (its
    path, the held lock). The lock (flock on the folder itself) lasts while this process
    lives, so `remove_stale_partials` can tell a partial folder whose writer was killed
    (kill -9, a power cut) from one still being written, here or on another machine sharing
    the folder. Close the lock after the rename."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}{PARTIAL}{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    lock = None
    try:
        tmp.mkdir(parents=True)
        if fcntl is not None:
            lock = os.open(tmp, os.O_RDONLY)
            fcntl.flock(lock, fcntl.LOCK_EX)
    except BaseException:  # Ctrl-C or SIGTERM before the caller holds the path: nothing left behind
        release(lock)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, lock


def release(lock: int | None) -> None:
    if lock is not None:
        os.close(lock)


def _lock_unless_held(folder: Path) -> int | None:
    """The folder's lock taken (a descriptor to close), or None when a living process holds it
    (or it is gone, or there is no flock here)."""
    if fcntl is None:
        return None
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        return None
    return handle


def is_held(folder: Path) -> bool:
    """Whether a living writer holds this partial folder (`partial_folder`)."""
    handle = _lock_unless_held(folder)
    if handle is None:
        return Path(folder).is_dir()
    os.close(handle)
    return False


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the partial folders in `folder` that no living process holds (what a killed run
    left); returns them. One still being written keeps its lock and stays."""
    removed = []
    try:
        candidates = [p for p in Path(folder).glob(f".*{PARTIAL}*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for candidate in candidates:
        handle = _lock_unless_held(candidate)
        if handle is None:  # held: its writer is alive
            continue
        try:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        finally:
            os.close(handle)
    return removed
