"""Canonical note lists and their SHA-256 digests: the one definition of "the same music"
that `pipeline prepare` writes into the training index and `pipeline eval` checks.

A canonical track is its notes quantized to `GRID_PER_BEAT` steps, as sorted
(start, duration, pitch) triples relative to the window start; velocity is left out
because copying a part does not depend on how hard it is played, and so are drum
durations (one-shots). The transposition-
invariant form subtracts the lowest pitch (pitched roles only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symbolic.arrangement import BEATS_PER_BAR, Note

GRID_PER_BEAT = 12
WINDOW_BARS = 4
LEVELS: tuple[str, ...] = ("piece", "track", "window", "window_track", "window_track_invariant")
ROLE_CODES: dict[str, int] = {"drums": 0, "bass": 1, "melody": 2}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (SoundFonts run to hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_notes(
    notes: list[Note], ticks_per_beat: int, start_tick: int = 0, end_tick: int | None = None
) -> np.ndarray:
    """(k, 3) int32 array of (start, duration, pitch) on the grid, relative to start_tick;
    notes whose onset lies in [start_tick, end_tick); durations clipped to the window."""
    rows = []
    for note in notes:
        if note.start < start_tick or (end_tick is not None and note.start >= end_tick):
            continue
        onset = round((note.start - start_tick) * GRID_PER_BEAT / ticks_per_beat)
        end = note.start + note.duration if end_tick is None else min(note.start + note.duration, end_tick)
        duration = max(1, round((end - note.start) * GRID_PER_BEAT / ticks_per_beat))
        rows.append((onset, duration, note.pitch))
    if not rows:
        return np.zeros((0, 3), dtype=np.int32)
    return np.unique(np.asarray(rows, dtype=np.int32), axis=0)


def digest(role: str, canonical: np.ndarray, invariant: bool = False) -> bytes:
    """Drum durations are left out: drums are one-shots and the tokens do not carry them."""
    rows = canonical
    if role == "drums" and len(rows):
        rows = rows.copy()
        rows[:, 1] = 0
    if invariant and len(rows):
        rows = rows.copy()
        rows[:, 2] -= rows[:, 2].min()
    text = role + "|" + ";".join(f"{s},{d},{p}" for s, d, p in rows.tolist())
    return hashlib.sha256(text.encode()).digest()


def combined_digest(parts: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


@dataclass
class PieceDigests:
    """All digests of one piece, per level; windows start every `stride_bars` bars."""

    by_level: dict[str, list[bytes]] = field(default_factory=lambda: {lv: [] for lv in LEVELS})
    # (level, window start bar, role or "" for all roles) for each digest, same order
    where: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: {lv: [] for lv in LEVELS})


def piece_digests(
    tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, stride_bars: int = 1
) -> PieceDigests:
    """Digests of the whole piece, each track, each WINDOW_BARS window (all roles and per
    role) and the transposition-invariant per-role windows of pitched roles."""
    out = PieceDigests()
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    roles = sorted(r for r, notes in tracks.items() if notes)
    whole = {r: canonical_notes(tracks[r], ticks_per_beat) for r in roles}
    if not roles:
        return out
    track_parts = []
    for role in roles:
        d = digest(role, whole[role])
        out.by_level["track"].append(d)
        out.where["track"].append((0, role))
        track_parts.append(d)
    out.by_level["piece"].append(combined_digest(track_parts))
    out.where["piece"].append((0, ""))
    last_start = max(0, bars - WINDOW_BARS)
    for bar in range(0, last_start + 1, stride_bars):
        lo, hi = bar * ticks_per_bar, (bar + WINDOW_BARS) * ticks_per_bar
        parts = []
        for role in roles:
            window = canonical_notes(tracks[role], ticks_per_beat, lo, hi)
            if not len(window):
                continue
            d = digest(role, window)
            parts.append(d)
            out.by_level["window_track"].append(d)
            out.where["window_track"].append((bar, role))
            if role != "drums":
                out.by_level["window_track_invariant"].append(digest(role, window, invariant=True))
                out.where["window_track_invariant"].append((bar, role))
        if parts:
            out.by_level["window"].append(combined_digest(parts))
            out.where["window"].append((bar, ""))
    return out


@dataclass
class NoveltyIndex:
    """SHA-256 digests of the training material, per level, plus which source each came
    from. Saved as `index.npz` (digests) + `index.json` (sources)."""

    digests: dict[str, set[bytes]] = field(default_factory=lambda: {lv: set() for lv in LEVELS})
    sources: list[str] = field(default_factory=list)
    # digest -> (source id, start bar, role); first occurrence wins
    origin: dict[bytes, tuple[int, int, str]] = field(default_factory=dict)

    def add(self, source: str, pieces: PieceDigests) -> None:
        source_id = len(self.sources)
        self.sources.append(source)
        for level in LEVELS:
            for d, (bar, role) in zip(pieces.by_level[level], pieces.where[level]):
                self.digests[level].add(d)
                self.origin.setdefault(d, (source_id, bar, role))

    def contains(self, level: str, d: bytes) -> bool:
        return d in self.digests[level]

    def locate(self, d: bytes) -> dict | None:
        if d not in self.origin:
            return None
        source_id, bar, role = self.origin[d]
        return {"source": self.sources[source_id], "start_bar": bar, "role": role}

    def __len__(self) -> int:
        return sum(len(v) for v in self.digests.values())

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        roles = sorted({role for _, _, role in self.origin.values()})
        for level in LEVELS:
            ordered = sorted(self.digests[level])
            arrays[level] = np.frombuffer(b"".join(ordered), dtype=np.uint8).reshape(-1, 32)
            arrays[f"{level}_origin"] = np.asarray(
                [(self.origin[d][0], self.origin[d][1], roles.index(self.origin[d][2])) for d in ordered],
                dtype=np.int32,
            ).reshape(-1, 3)
        np.savez_compressed(directory / "index.npz", **arrays)
        meta = {"version": 1, "grid_per_beat": GRID_PER_BEAT, "window_bars": WINDOW_BARS,
                "levels": list(LEVELS), "roles": roles, "sources": self.sources}
        (directory / "index.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> NoveltyIndex:
        meta = json.loads((directory / "index.json").read_text())
        index = cls(sources=list(meta["sources"]))
        with np.load(directory / "index.npz") as data:
            for level in LEVELS:
                digests = [bytes(row) for row in data[level]]
                index.digests[level] = set(digests)
                for d, (src, bar, role) in zip(digests, data[f"{level}_origin"].tolist()):
                    index.origin.setdefault(d, (src, bar, meta["roles"][role]))
        return index
