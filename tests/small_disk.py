"""A real file system with little room, for disk-full tests: a size-limited tmpfs mounted by the
test (root, as CI and the development machines run), else (no mount rights) a child process
whose file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes its writes fail with EFBIG, which
stemforge treats as the same "no room" condition."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_disk(folder: Path, size_bytes: int) -> Iterator[bool]:
    """Mount a tmpfs of `size_bytes` on `folder` for the block; yields whether it is mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0777", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of `folder` until about `leave_bytes` are free (0: full)."""
    number = len(list(folder.glob("filler-*")))
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    try:
        with open(folder / f"filler-{number}", "wb") as out:
            out.write(b"\0" * max(0, free - leave_bytes))
    except OSError:  # full before the last byte: what was asked for
        pass


def limited_files(size_bytes: int):
    """preexec_fn for a child process whose files cannot grow past `size_bytes` (EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, size_bytes))

    return limit
