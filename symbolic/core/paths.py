"""Checks on output folders that every stage makes before its slow work (a folder that
exists is never overwritten, and one that cannot be written is said at once, not after
minutes of composing or preparing), the one way files appear whole (`write_atomic`), the
partial folders every folder is written in before its rename (`atomic_folder`,
`remove_stale_partials`),
and the one-line error of a full disk (`disk_full`)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


class FolderExistsError(FileExistsError):
    """The folder an atomic write was to create appeared meanwhile (another writer finished
    first); nothing was written over it."""


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


PARTIAL = ".partial-"  # `.<name>.partial-<pid>`: a folder being written, renamed into place when whole


def partial_pattern(name: str = "*") -> str:
    """The glob of the partial folders of the final folder `name` (every one: "*") beside it,
    written by this process or any other (`partial_folder`)."""
    return f".{name}{PARTIAL}*"


def partial_owner(folder: Path) -> str | None:
    """The name of the final folder a partial folder is written for, or None when `folder` is
    not a partial folder."""
    name = Path(folder).name
    if not name.startswith(".") or PARTIAL not in name:
        return None
    return name[1:].rpartition(PARTIAL)[0]


# The partial folders this process is writing: two threads writing the same final folder (the
# service exports one run for two requests at once) get two partial folders, not one shared.
_CLAIMED: set[Path] = set()
_CLAIMED_LOCK = threading.Lock()


def _claim_partial(final: Path) -> Path:
    """`.<name>.partial-<pid>`, or `.<name>.partial-<n>-<pid>` when another thread of this
    process writes one for the same final folder; the pid stays last (the service's tests
    read it there to tell which worker writes a job)."""
    with _CLAIMED_LOCK:
        candidate, number = final.with_name(f".{final.name}{PARTIAL}{os.getpid()}"), 2
        while candidate in _CLAIMED:
            candidate = final.with_name(f".{final.name}{PARTIAL}{number}-{os.getpid()}")
            number += 1
        _CLAIMED.add(candidate)
    return candidate


def partial_folder(final: Path) -> tuple[Path, int | None]:
    """Create and lock a hidden partial folder beside `final` (`_claim_partial`); returns
    (its path, the held lock). The lock (flock on the folder itself) lasts while this process
    lives, so `remove_stale_partials` can tell a partial folder whose writer was killed
    (kill -9, a power cut) from one still being written, here or on another machine sharing
    the folder. `release_partial` after the rename; `atomic_folder` does all of it."""
    tmp = _claim_partial(Path(final))
    lock = None
    try:
        if tmp.exists():  # left by a killed process that had this pid
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        if fcntl is not None:
            lock = os.open(tmp, os.O_RDONLY)
            fcntl.flock(lock, fcntl.LOCK_EX)
    except BaseException:  # Ctrl-C or SIGTERM before the caller holds the path: nothing left behind
        release_partial(tmp, lock)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, lock


def release_partial(tmp: Path, lock: int | None) -> None:
    """Let go of a partial folder (renamed or removed by now): its lock and this process's claim."""
    if lock is not None:
        os.close(lock)
    with _CLAIMED_LOCK:
        _CLAIMED.discard(Path(tmp))


def publish_folder(tmp: Path, final: Path, *, replace: bool = False) -> Path:
    """Rename the whole folder `tmp` to `final`. An existing `final` is never overwritten
    silently: FolderExistsError, unless `replace` says the caller means to swap it (the old one
    is moved aside first and removed only once the new one is in place). A rename onto an
    empty folder would succeed quietly on Linux, hence the check before it."""
    tmp, final = Path(tmp), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        try:
            tmp.rename(final)
            return final
        except OSError as error:
            if not final.exists():
                raise
            if not replace:  # another writer finished first
                raise FolderExistsError(errno.EEXIST, "exists; a folder is never written over", str(final)) from error
    if not replace:
        raise FolderExistsError(errno.EEXIST, "exists; a folder is never written over", str(final))
    backup = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(backup)
    try:
        tmp.rename(final)
    except BaseException:
        backup.rename(final)  # the old folder back where it was: nothing lost
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return final


@contextmanager
def atomic_folder(final: Path, *, replace: bool = False) -> Iterator[Path]:
    """A folder that appears whole or not at all: yields a locked partial folder beside
    `final` (`partial_folder`) to write into, renamed to `final` when the block ends
    (`publish_folder`: an existing folder is never overwritten unless `replace`), removed
    when the block raises (Ctrl-C and SIGTERM too). A failure for want of space is raised as
    the one-line DiskFullError naming the folder.

        with atomic_folder(out_dir) as tmp:
            (tmp / "report.json").write_text(...)
    """
    final = Path(final)
    tmp, lock = partial_folder(final)
    try:
        yield tmp
        publish_folder(tmp, final, replace=replace)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_full(error, final.parent)
        if full is not None and full is not error:  # a full disk is the user's to fix: one line, not a traceback
            raise full from error
        raise
    finally:
        release_partial(tmp, lock)


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
        candidates = [p for p in Path(folder).glob(partial_pattern()) if p.is_dir() and not p.is_symlink()]
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
