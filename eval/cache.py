"""On-disk cache of embedding frames, so that evaluating again neither renders nor embeds
the reference again.

Why: the default reference is 90 training pieces rendered through the sample renderer
(360 clips: three stems and a mix each) and then embedded; that took ~4.5 min on a 2-core
machine (14.7 min on a user's) on *every* `pipeline eval`, although nothing had changed.

What is cached: the frames an embedding gives for the clips of one source file (a reference
MIDI file rendered to stems + mix, or one audio file: a run's stem or mix, a file of
`--reference DIR`). Not audio: 360 rendered float32 clips of ~40 s take ~5 GB, while their
`features` frames take ~5 MB. So a new embedding renders the reference once more, and every
later eval with that embedding reads its frames.

Key: the sha256 of a JSON document of everything the frames depend on: the source file's
sha256 (and for MIDI its name, genre and bpm, which pick the FX preset and tempo), the
renderer settings for rendered MIDI (RenderOptions, the SoundFont's and kit's sha256, the
FX presets' sha256, the renderer's source code and library versions), and the embedding
(name, rate, channels, dim, weights and their sha256, its source code and library versions).
A change to any of them is a miss, never a stale hit.

Layout (`<root>` is `--cache-dir`, else $STEMFORGE_CACHE_DIR, else $XDG_CACHE_HOME/stemforge,
else ~/.cache/stemforge; the same root as the SoundFont digest cache of audio/assets.py):

    <root>/eval-frames-v1/<embedding name>/<key sha256>.frames

An entry is one JSON header line (format, the key document, each clip's role and frame
shape, the sha256 of the payload) followed by the clips' frames as little-endian float32.
It is written to a hidden temporary file in the same folder and renamed into place, so a
killed eval leaves either the complete entry or none (a stray `.*.partial` file at worst,
removed by a later eval once it is an hour old). An entry whose payload digest, header or
key does not match is reported, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.cache import default_cache_root

CACHE_FORMAT = "stemforge-eval-frames"
CACHE_VERSION = 1
CACHE_SUBDIR = f"eval-frames-v{CACHE_VERSION}"
PARTIAL_SUFFIX = ".partial"
DOCUMENTS_SUBDIR = f"eval-documents-v{CACHE_VERSION}"  # JSON results (training figures) next to the frames
STALE_PARTIAL_SECONDS = 3600.0  # older temporary files belong to a killed eval, not a running one


def key_digest(key: dict) -> str:
    """sha256 of the canonical JSON of a key document (sorted keys, no whitespace)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CachedClip:
    """One clip's frames as an entry holds them; the source gives the clip's name and genre."""

    role: str
    frames: np.ndarray  # float32 (n_frames, dim)


@dataclass
class FrameCache:
    """Embedding frames per (source, embedding) on disk; `root=None` is a disabled cache
    that misses every lookup and stores nothing (`--no-cache`).

    The counters and notes end up in report.json, so a report says whether its reference
    came from the cache and whether an entry had to be recomputed."""

    root: Path | None
    hits: int = 0
    misses: int = 0
    written: int = 0
    notes: list[str] = field(default_factory=list)
    _write_failed: bool = field(default=False, init=False, repr=False)

    @classmethod
    def open(cls, directory: Path | None, enabled: bool = True) -> FrameCache:
        """The cache under `directory` (default: `default_cache_root()`), or a disabled one."""
        if not enabled:
            return cls(None)
        root = Path(directory).expanduser() if directory is not None else default_cache_root()
        cache = cls(root / CACHE_SUBDIR)
        cache._remove_stale_partials()
        return cache

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def path(self, embedding: str, key: dict) -> Path:
        assert self.root is not None
        return self.root / embedding / f"{key_digest(key)}.frames"

    def get(self, embedding: str, key: dict) -> list[CachedClip] | None:
        """The cached clips for this key, or None (a miss). A damaged entry is a miss with a
        note, and is deleted so the recomputed frames take its place."""
        if self.root is None:
            return None
        path = self.path(embedding, key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as error:
            self.misses += 1
            self.notes.append(f"cache: cannot read {path} ({error.strerror or error}); recomputed")
            return None
        try:
            clips = _decode(data, key)
        except ValueError as problem:
            self.misses += 1
            self.notes.append(f"cache: {path} was corrupt ({problem}); recomputed it")
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return clips

    def put(self, embedding: str, key: dict, clips: list[CachedClip]) -> None:
        """Store an entry atomically (temporary file + rename)."""
        if self.root is not None:
            self._write(self.path(embedding, key), _encode(key, clips))

    def get_document(self, kind: str, key: dict) -> dict | None:
        """A cached JSON document (figures computed from the training set, not frames), or
        None; one whose key does not match is a miss and is deleted."""
        if self.root is None:
            return None
        path = self.root.parent / DOCUMENTS_SUBDIR / kind / f"{key_digest(key)}.json"
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as error:
            self.misses += 1
            self.notes.append(f"cache: {path} unreadable ({error}); recomputed it")
            path.unlink(missing_ok=True)
            return None
        if not isinstance(entry, dict) or key_digest(entry.get("key", {})) != key_digest(key):
            self.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return entry.get("document")

    def put_document(self, kind: str, key: dict, document: dict) -> None:
        if self.root is not None:
            path = self.root.parent / DOCUMENTS_SUBDIR / kind / f"{key_digest(key)}.json"
            self._write(path, json.dumps({"key": key, "document": document}, default=str).encode())

    def _write(self, path: Path, data: bytes) -> None:
        """Temporary file + rename, so a killed eval leaves no half-written entry. A cache
        that cannot be written (read-only, disk full) costs speed, not the report: one
        note, then no more attempts."""
        if self.root is None or self._write_failed:
            return
        partial = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
            self.written += 1
        except OSError as error:
            self._write_failed = True
            partial.unlink(missing_ok=True)
            self.notes.append(f"cache: cannot write to {self.root} ({error.strerror or error}); "
                              "this eval runs without storing its results")

    def describe(self) -> dict:
        return {"dir": str(self.root) if self.root else None, "enabled": self.enabled, "hits": self.hits,
                "misses": self.misses, "written": self.written, "notes": list(self.notes)}

    def _remove_stale_partials(self) -> None:
        """Temporary files of evals killed mid-write; recent ones may belong to a running eval."""
        if self.root is None or not self.root.is_dir():
            return
        now = time.time()
        for partial in self.root.glob(f"*/.*{PARTIAL_SUFFIX}"):
            try:
                if now - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
                    partial.unlink()
            except OSError:
                continue


def _encode(key: dict, clips: list[CachedClip]) -> bytes:
    arrays = [np.ascontiguousarray(c.frames, dtype="<f4") for c in clips]
    payload = b"".join(a.tobytes() for a in arrays)
    header = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key,
              "clips": [{"role": c.role, "shape": list(a.shape)} for c, a in zip(clips, arrays, strict=True)],
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header, sort_keys=True, default=str).encode() + b"\n" + payload


def _decode(data: bytes, key: dict) -> list[CachedClip]:
    """Clips of an entry; ValueError (with what is wrong) for anything but a complete entry
    made for exactly this key."""
    head, newline, payload = data.partition(b"\n")
    if not newline:
        raise ValueError("no header")
    try:
        header = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError("unreadable header") from error
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT or header.get("version") != CACHE_VERSION:
        raise ValueError("not a frames entry of this version")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ValueError("payload sha256 mismatch")
    if key_digest(header.get("key", {})) != key_digest(key):
        raise ValueError("made for another key")
    clips, offset = [], 0
    try:
        for clip in header["clips"]:
            rows, dim = (int(n) for n in clip["shape"])
            size = rows * dim * 4
            frames = np.frombuffer(payload, dtype="<f4", count=rows * dim, offset=offset).reshape(rows, dim)
            clips.append(CachedClip(str(clip["role"]), frames.astype(np.float32)))
            offset += size
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"clip table does not match the payload ({error})") from error
    if offset != len(payload):
        raise ValueError("payload longer than its clip table")
    return clips
