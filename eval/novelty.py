"""Novelty of generated pieces against the training set.

Exact copies: the SHA-256 digests of `symbolic.canonical.piece_digests` (whole piece, each
track, each 4-bar window of all roles, each role's 4-bar window, and the transposition-
invariant window of pitched roles) looked up in the training `NoveltyIndex`.

Near copies: for every generated 4-bar window, the training window with the highest
note overlap, the Jaccard index of their (role, onset, pitch) sets on the canonical grid,
maximised over transpositions of the pitched roles (-12..+12 semitones). 1.0 is the same
notes, 0.0 nothing in common. Durations and velocities are left out, as in the digests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from eval.window_store import WINDOW_STEPS, WindowNotes, window_rows
from symbolic.arrangement import BEATS_PER_BAR, Note
from symbolic.canonical import LEVELS, ROLE_CODES, WINDOW_BARS, NoveltyIndex, piece_digests

# A matched window with fewer notes than this is reported but not flagged as a copy:
# one kick on every beat occurs in any corpus and says nothing about memorisation.
MIN_COPY_NOTES = 8
TRANSPOSITIONS = tuple(range(-12, 13))
PITCHES = 128
DENSE_BLOCK = 4_000_000  # generated x training similarities held at once (32 MB)
DRUMS_CODE = ROLE_CODES["drums"]


def level_matches(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, index: NoveltyIndex) -> dict:
    """Per level: how many digests the piece has, how many the index holds, and where."""
    pieces = piece_digests(tracks, ticks_per_beat, bars, stride_bars=1)
    out = {}
    for level in LEVELS:
        matches = []
        for d, (bar, role) in zip(pieces.by_level[level], pieces.where[level], strict=True):
            if index.contains(level, d):
                matches.append({"bar": bar, "role": role, "digest": d.hex(), "training": index.locate(d)})
        out[level] = {"total": len(pieces.by_level[level]), "matched": len(matches), "matches": matches}
    return out


def _note_keys(rows: np.ndarray, shift: int = 0) -> np.ndarray:
    """Integer keys of (role, onset, pitch) for (k, 4) window rows; pitched roles shifted."""
    role, onset, pitch = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 3].astype(np.int64)
    pitch = np.where(role == DRUMS_CODE, pitch, pitch + shift)
    keep = (pitch >= 0) & (pitch < PITCHES) & (onset < WINDOW_STEPS)
    return np.unique((role * WINDOW_STEPS + onset)[keep] * PITCHES + pitch[keep])


def _key_matrix(windows: list[np.ndarray], shift: int = 0) -> sparse.csr_matrix:
    keys = [_note_keys(w, shift) for w in windows]
    indptr = np.concatenate([[0], np.cumsum([len(k) for k in keys])])
    indices = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    columns = len(ROLE_CODES) * WINDOW_STEPS * PITCHES
    return sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                             shape=(len(windows), columns))


@dataclass
class Neighbour:
    similarity: float  # Jaccard of (role, onset, pitch) sets, best over transpositions
    training_window: int  # index into the WindowNotes
    transposition: int  # semitones added to the generated pitched roles to match


def nearest_training_windows(generated: list[np.ndarray], store: WindowNotes) -> list[Neighbour | None]:
    """For each generated window (rows as in `window_rows`), its nearest training window.

    Overlaps are sparse products of note-key matrices; drums do not transpose, so their
    overlap is computed once and only the pitched part is redone per transposition. Dense
    blocks of at most DENSE_BLOCK entries keep memory flat for large training sets."""
    if not len(store) or not generated:
        return [None] * len(generated)
    training = [store.rows[store.offsets[i] : store.offsets[i + 1]] for i in range(len(store))]
    train_matrix = _key_matrix(training).T.tocsr()
    train_sizes = np.asarray(train_matrix.sum(axis=0)).ravel()
    drums = [rows[rows[:, 0] == DRUMS_CODE] for rows in generated]
    pitched = [rows[rows[:, 0] != DRUMS_CODE] for rows in generated]
    best: list[Neighbour | None] = [None] * len(generated)
    block = max(1, DENSE_BLOCK // len(store))
    for lo in range(0, len(generated), block):
        hi = min(lo + block, len(generated))
        drum_overlap = (_key_matrix(drums[lo:hi]) @ train_matrix).toarray()
        drum_sizes = np.array([len(_note_keys(d)) for d in drums[lo:hi]], dtype=np.float64)
        best_value = np.full(hi - lo, -1.0)
        best_window = np.zeros(hi - lo, dtype=np.int64)
        best_shift = np.zeros(hi - lo, dtype=np.int64)
        # untransposed first, then growing shifts, so ties keep the smallest transposition
        for shift in sorted(TRANSPOSITIONS, key=lambda s: (abs(s), s)):
            pitched_matrix = _key_matrix(pitched[lo:hi], shift)
            overlap = drum_overlap + (pitched_matrix @ train_matrix).toarray()
            sizes = drum_sizes + np.asarray(pitched_matrix.sum(axis=1)).ravel()
            if shift == 0:
                nonempty = sizes > 0
            jaccard = overlap / np.maximum(sizes[:, None] + train_sizes[None, :] - overlap, 1.0)
            window = jaccard.argmax(axis=1)
            value = jaccard[np.arange(hi - lo), window]
            better = value > best_value + 1e-12
            best_value[better], best_window[better], best_shift[better] = value[better], window[better], shift
        for i in range(hi - lo):
            if nonempty[i]:
                best[lo + i] = Neighbour(float(best_value[i]), int(best_window[i]), int(best_shift[i]))
    return best


def generated_windows(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int) -> list[tuple[int, np.ndarray]]:
    """(start_bar, rows) of every WINDOW_BARS window of a piece, stride one bar."""
    out = []
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    for bar in range(0, max(0, bars - WINDOW_BARS) + 1):
        rows = window_rows(tracks, ticks_per_beat, bar * ticks_per_bar)
        if len(rows):
            out.append((bar, rows))
    return out


def piece_novelty(
    tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, index: NoveltyIndex, store: WindowNotes | None,
) -> dict:
    """Exact matches per level, copy flags and the nearest training window of one piece."""
    levels = level_matches(tracks, ticks_per_beat, bars, index)
    windows = generated_windows(tracks, ticks_per_beat, bars)
    window_sizes = {bar: rows for bar, rows in windows}
    flags = []
    for level, found in levels.items():
        for match in found["matches"]:
            rows = window_sizes.get(match["bar"]) if level.startswith("window") else None
            if rows is not None and match["role"]:
                rows = rows[rows[:, 0] == ROLE_CODES[match["role"]]]
            notes = int(len(rows)) if rows is not None else sum(len(tracks[r]) for r in tracks if
                                                                 not match["role"] or r == match["role"])
            flags.append({"level": level, "bar": match["bar"], "role": match["role"], "notes": notes,
                          "trivial": notes < MIN_COPY_NOTES, "training": match["training"]})
    nearest = None
    if store is not None and windows:
        neighbours = nearest_training_windows([rows for _, rows in windows], store)
        scored = [(n.similarity, i) for i, n in enumerate(neighbours) if n is not None]
        if scored:
            _, i = max(scored)
            n = neighbours[i]
            nearest = {
                "similarity": n.similarity, "bar": windows[i][0], "transposition": n.transposition,
                "training": store.describe(n.training_window), "training_window": n.training_window,
                "window_similarities": [round(x.similarity, 4) if x else 0.0 for x in neighbours],
            }
    return {
        "levels": {lv: {"total": f["total"], "matched": f["matched"]} for lv, f in levels.items()},
        "copies": [f for f in flags if not f["trivial"]],
        "trivial_matches": [f for f in flags if f["trivial"]],
        "nearest": nearest,
        "windows": {bar: rows for bar, rows in windows},  # for plots; dropped from JSON
    }


def summarize_levels(pieces: list[dict]) -> dict:
    """Exact-match rate per level over many pieces: matched digests / generated digests."""
    out = {}
    for level in LEVELS:
        total = sum(p["levels"][level]["total"] for p in pieces)
        matched = sum(p["levels"][level]["matched"] for p in pieces)
        out[level] = {"generated": total, "matched": matched, "rate": matched / total if total else 0.0}
    return out
