"""Where stemforge keeps what it can recompute (the numba kernels compiled ahead of time,
the eval's embedding frames, SoundFont digests), and what a cached entry's key is made of:
the source of the code that computed it and the versions of the libraries it ran on, so a
change to either is a miss, never a stale hit. Kept in core because the decoder (symbolic)
and the eval and audio stages all key their caches this way."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path


def default_cache_root() -> Path:
    """$STEMFORGE_CACHE_DIR, else $XDG_CACHE_HOME/stemforge, else ~/.cache/stemforge: a
    per-user folder, never the package or a run folder (those get copied and shipped)."""
    if os.environ.get("STEMFORGE_CACHE_DIR"):
        return Path(os.environ["STEMFORGE_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stemforge"


def code_digest(module_names: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each module's source file, found without importing it: frames computed by
    other code (a fixed renderer, a new front end) must not be served from the cache."""
    digests: dict[str, str] = {}
    for name in module_names:
        try:
            spec = importlib.util.find_spec(name)
            origin = Path(spec.origin) if spec is not None and spec.origin else None
            digests[name] = hashlib.sha256(origin.read_bytes()).hexdigest() if origin else "unknown"
        except (ImportError, ValueError, OSError):  # a stand-in module (tests) has no spec
            digests[name] = "unknown"
    return digests


def library_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed versions of the libraries that compute the frames (resampling, FX, synthesis,
    networks): an upgrade may change the numbers, so it changes the key."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
