"""Canonical notes of the training set's 4-bar windows, so eval can show the nearest
training window next to a generated piece (the NoveltyIndex keeps only digests).

`pipeline prepare` writes it next to the index:

    from stemforge.symbolic.training.window_store import piece_windows, save_window_notes
    windows = [(source, start_bar, {role: notes relative to the window start})...]
    save_window_notes(windows, TICKS_PER_BEAT, data_dir / "index" / "windows.npz")

(`piece_windows` cuts a whole piece into such windows.)

Stored compactly: one int16 row (role code, onset, duration, pitch) per note on the
canonical grid (`symbolic.music.canonical.GRID_PER_BEAT` steps a beat), windows delimited by
offsets; identical windows (repeats in a loop-based corpus) are kept once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.ticks import BEATS_PER_BAR, GRID_PER_BEAT
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.canonical import ROLE_CODES, WINDOW_BARS, canonical_notes

CODE_ROLES: dict[int, str] = {code: role for role, code in ROLE_CODES.items()}
WINDOW_STEPS = WINDOW_BARS * BEATS_PER_BAR * GRID_PER_BEAT  # grid steps in one window


def piece_windows(
    source: str, tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, stride_bars: int = WINDOW_BARS
) -> list[tuple[str, int, dict[str, list[Note]]]]:
    """A piece (notes in absolute ticks) cut into (source, start_bar, window tracks) with
    the notes of each WINDOW_BARS window moved to start at tick 0."""
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    out = []
    for bar in range(0, max(0, bars - WINDOW_BARS) + 1, stride_bars):
        lo, hi = bar * ticks_per_bar, (bar + WINDOW_BARS) * ticks_per_bar
        window = {role: [Note(n.start - lo, n.duration, n.pitch, n.velocity) for n in notes if lo <= n.start < hi]
                  for role, notes in tracks.items()}
        out.append((source, bar, {role: notes for role, notes in window.items() if notes}))
    return out


def window_rows(tracks: dict[str, list[Note]], ticks_per_beat: int, start_tick: int = 0) -> np.ndarray:
    """(k, 4) int16 rows (role code, onset, duration, pitch) of the WINDOW_BARS window that
    starts at `start_tick`, on the canonical grid relative to the window start."""
    end_tick = start_tick + WINDOW_BARS * BEATS_PER_BAR * ticks_per_beat
    parts = []
    for role in sorted(tracks, key=lambda r: ROLE_CODES.get(r, 99)):
        if role not in ROLE_CODES:
            continue
        canon = canonical_notes(tracks[role], ticks_per_beat, start_tick, end_tick)
        if len(canon):
            parts.append(np.column_stack([np.full(len(canon), ROLE_CODES[role]), canon]))
    if not parts:
        return np.zeros((0, 4), dtype=np.int16)
    return np.concatenate(parts).astype(np.int16)


@dataclass
class WindowNotes:
    """Windows of canonical notes: `rows[offsets[i]:offsets[i+1]]` is window i."""

    rows: np.ndarray  # (total, 4) int16: role code, onset, duration, pitch
    offsets: np.ndarray  # (W + 1,) int64
    source_ids: np.ndarray  # (W,) int32
    start_bars: np.ndarray  # (W,) int32
    sources: list[str]

    def __len__(self) -> int:
        return len(self.start_bars)

    def window(self, i: int) -> dict[str, np.ndarray]:
        """role -> (k, 3) int32 (onset, duration, pitch) on the canonical grid."""
        rows = self.rows[self.offsets[i] : self.offsets[i + 1]]
        return {CODE_ROLES[int(c)]: rows[rows[:, 0] == c, 1:].astype(np.int32) for c in np.unique(rows[:, 0])}

    def describe(self, i: int) -> dict:
        return {"source": self.sources[int(self.source_ids[i])], "start_bar": int(self.start_bars[i])}


def build_window_notes(windows: list[tuple[str, int, dict[str, list[Note]]]], ticks_per_beat: int) -> WindowNotes:
    sources: list[str] = []
    source_index: dict[str, int] = {}
    seen: set[bytes] = set()
    rows, offsets, source_ids, start_bars = [], [0], [], []
    for source, start_bar, tracks in windows:
        window = window_rows(tracks, ticks_per_beat)
        if not len(window):
            continue
        key = hashlib.sha256(window.tobytes()).digest()
        if key in seen:
            continue
        seen.add(key)
        if source not in source_index:
            source_index[source] = len(sources)
            sources.append(source)
        rows.append(window)
        offsets.append(offsets[-1] + len(window))
        source_ids.append(source_index[source])
        start_bars.append(start_bar)
    return WindowNotes(
        rows=np.concatenate(rows) if rows else np.zeros((0, 4), dtype=np.int16),
        offsets=np.asarray(offsets, dtype=np.int64),
        source_ids=np.asarray(source_ids, dtype=np.int32),
        start_bars=np.asarray(start_bars, dtype=np.int32),
        sources=sources,
    )


def save_window_notes(
    windows: list[tuple[str, int, dict[str, list[Note]]]], ticks_per_beat: int, path: Path
) -> WindowNotes:
    """Write the windows' canonical notes as a compressed npz (atomically) and return them.

    Each window is (source, start_bar, {role: notes}) with the notes in ticks at
    `ticks_per_beat` relative to the window start (tick 0 = its first downbeat); notes from
    WINDOW_BARS bars on are ignored. `start_bar` only records where the window came from."""
    store = build_window_notes(windows, ticks_per_beat)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp, rows=store.rows, offsets=store.offsets, source_ids=store.source_ids, start_bars=store.start_bars,
        sources=np.asarray(store.sources, dtype=str), grid_per_beat=np.int32(GRID_PER_BEAT),
        window_bars=np.int32(WINDOW_BARS),
    )
    os.replace(tmp, path)
    return store


def load_window_notes(path: Path) -> WindowNotes:
    with np.load(path, allow_pickle=False) as data:
        if int(data["grid_per_beat"]) != GRID_PER_BEAT or int(data["window_bars"]) != WINDOW_BARS:
            raise ValueError(
                f"{path}: windows on a {int(data['grid_per_beat'])}-step grid / {int(data['window_bars'])} bars, "
                f"this version uses {GRID_PER_BEAT} / {WINDOW_BARS}; run `pipeline prepare` again"
            )
        return WindowNotes(
            rows=data["rows"].astype(np.int16), offsets=data["offsets"].astype(np.int64),
            source_ids=data["source_ids"].astype(np.int32), start_bars=data["start_bars"].astype(np.int32),
            sources=[str(s) for s in data["sources"].tolist()],
        )
