"""Canonical note lists and their SHA-256 digests: the one definition of "the same music"
that `pipeline prepare` writes into the training index and `pipeline eval` and the quality
bench look up (`eval/novelty.py` turns the lookups into a verdict).

**Grid first, then bars.** Notes are put on the token grid (`GRID_PER_BEAT` steps a beat)
before anything is cut into bars or windows: a hit played a few milliseconds before a bar
line belongs to the bar it is heard in, not to the one before. Parts already on the grid
(the training data, token-grid runs, quantized MIDI, a verbatim copy of a training file)
are read as they are. A performance (a grooved run without its token ids, a humanized or
played copy) is snapped to the grid its feel implies, straight 16ths, triplets or swung
16ths (`symbolic.music.feel.FEEL_GRIDS`), with the player's constant lag removed, fitted
on all off-grid parts together (a melody alone rarely has enough off-beats to show its
feel). Rounding a swung "and" to the nearest 1/12 beat instead would land on a position the
corpus never has.

**Bars, not windows.** The unit of a digest is one bar of one part: the set of (onset step
within the bar, pitch) of the notes that start in it. Durations and velocities are left out:
a copy played legato or softer is still a copy. Pitched parts are digested relative to the
bar's lowest pitch, which is kept next to the digest, so a transposed copy has the same
digests and the same transposition (difference of the lowest pitches) in every bar. Because
the index holds every training bar with where it sits (source, bar), a copy is found as a
run of consecutive generated bars that sit at consecutive bars of one training part, at one
shift and one transposition, and the generated side can be read from any shift (every grid
step of a bar) by digesting its bars again from there, without growing the index.

Each digest is SHA-256 over the role code and the bar's rows (int16 little endian),
truncated to its first 64 bits (a collision among ~10^5 training bars has a probability of
~10^-9); the index stores them sorted, so a lookup is a binary search.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, GRID_PER_BEAT, STEP_TICKS
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as TPB
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.drum_map import novelty_pitch
from stemforge.symbolic.music.feel import FEEL_GRIDS, SWING_MARGIN, snap

BAR_STEPS = GRID_PER_BEAT * BEATS_PER_BAR  # grid steps in one 4/4 bar
WINDOW_BARS = 4  # windows of the nearest-window store and of the report's symbolic figures
ROLE_CODES: dict[str, int] = {"drums": 0, "bass": 1, "melody": 2}
ALL_PARTS = "all"  # the parts of a piece together
PART_CODES: dict[str, int] = {**ROLE_CODES, ALL_PARTS: 3}
DRUMS_CODE = ROLE_CODES["drums"]
INDEX_VERSION = 3


class IndexVersionError(UserError):
    """An index this version cannot read (written by an older stemforge, or damaged)."""


# ---------------------------------------------------------------- the grid

@dataclass(frozen=True)
class Feel:
    """How a performance was put on the grid: its feel and the lag (ticks at 480 per beat)
    added to every onset before snapping; `None` feel = the notes were on the grid."""

    name: str | None
    lag: int = 0

    def describe(self) -> str:
        return "on the grid" if self.name is None else f"snapped to {self.name} (lag {self.lag:+d} ticks/480)"


def is_on_grid(notes: list[Note], ticks_per_beat: int) -> bool:
    """Every onset on the token grid."""
    return all((n.start * GRID_PER_BEAT) % ticks_per_beat == 0 for n in notes)


def feel_fits(onsets: list[int]) -> dict[str, tuple[float, Feel]]:
    """Each feel grid (`FEEL_GRIDS`) with the lag that aligns a performance (onsets in ticks
    at 480 per beat) to it, minus the median distance to its nearest slot, and the mean
    distance left: feel name -> (mean distance, Feel)."""
    ticks = np.asarray(onsets, dtype=np.int64)
    fits: dict[str, tuple[float, Feel]] = {}
    for name, slots in FEEL_GRIDS.items():
        grid = np.asarray((*slots, TPB))

        def residuals(lag: int, grid: np.ndarray = grid) -> np.ndarray:
            position = (ticks + lag) % TPB
            return position - grid[np.abs(position[:, None] - grid[None, :]).argmin(axis=1)]

        lag = -int(np.median(residuals(0))) if len(ticks) else 0
        fits[name] = (float(np.abs(residuals(lag)).mean()) if len(ticks) else 0.0, Feel(name, lag))
    return fits


def fit_feel(onsets: list[int]) -> Feel:
    """The feel grid a performance sits on (onsets in ticks at 480 per beat) and the lag
    that aligns it (`feel_fits`): a swung grid wins only when it fits clearly better than
    straight 16ths (the swung grids have fewer or uneven slots, so noise alone should not
    pick them; the project's `SWING_MARGIN`). All onsets count, not only those near a beat,
    because a swung 16th sits 80 ticks before one and would pass for a late beat."""
    fits = feel_fits(onsets)
    swung = min(("triplet", "swing16"), key=lambda name: fits[name][0])
    return fits[swung][1] if fits[swung][0] < SWING_MARGIN * fits["straight"][0] else fits["straight"][1]


def played_onsets(tracks: dict[str, list[Note]], ticks_per_beat: int) -> list[int]:
    """Onsets (ticks at 480 per beat) of the notes off the token grid: a performance's."""
    scale = TPB / ticks_per_beat
    return [round(n.start * scale) for notes in tracks.values() for n in notes if not is_on_grid([n], ticks_per_beat)]


@dataclass
class Reading:
    """A piece as the novelty check reads it, the same for a training file (`pipeline
    prepare`'s index) and a generated or copied piece (`pipeline eval`): drums through the
    one drum map (`drum_map.novelty_pitch`: every kit folded), every onset on the token grid
    (snapped to the performance's feel when it is off the grid), and how far each note was
    played from its step."""

    tracks: dict[str, list[Note]]  # the parts on the grid, drums mapped
    rows: dict[str, np.ndarray]  # role -> (k, 4) int64 (role code, onset step, pitch, deviation)
    feel: Feel

    def parts(self) -> dict[str, np.ndarray]:
        """`part_rows` of the reading: each role, and all of them together ("all")."""
        out = {role: self.rows[role] for role in sorted(self.rows, key=ROLE_CODES.__getitem__) if len(self.rows[role])}
        if len(out) > 1:
            out[ALL_PARTS] = np.concatenate(list(out.values()))
        return out


def read_piece(tracks: dict[str, list[Note]], ticks_per_beat: int, feel: Feel | None = None) -> Reading:
    """The one reading of a piece's bars (see `Reading`). Notes on the token grid are kept
    where they are (deviation 0); the others are snapped with one feel fitted on all of them
    together, each note keeping its deviation: ticks at 480 per beat from its step, after the
    player's lag is removed (what lets a played copy be compared note by note). Fitting the
    played notes only matters where a piece mixes both: a straight played copy pasted into a
    swung run on the grid read as swung had every off-beat 16th moved. `feel`: snap to this
    feel instead of the fitted one (`other_readings`)."""
    tracks = {role: ([Note(n.start, n.duration, novelty_pitch(n.pitch), n.velocity) for n in notes]
                     if role == "drums" else list(notes))
              for role, notes in tracks.items() if role in ROLE_CODES}
    step = ticks_per_beat / GRID_PER_BEAT
    played = played_onsets(tracks, ticks_per_beat)
    if feel is None:
        feel = fit_feel(played) if played else Feel(None)
    grid: dict[str, list[Note]] = {}
    rows: dict[str, np.ndarray] = {}
    for role, notes in tracks.items():
        placed: dict[tuple[int, int], tuple[int, Note]] = {}  # (step, pitch) -> (deviation, note)
        for note in notes:
            if not is_on_grid([note], ticks_per_beat):
                played = max(0, round(note.start * TPB / ticks_per_beat) + feel.lag)
                steps = round(snap(played, str(feel.name)) / STEP_TICKS)
                deviation = played - steps * STEP_TICKS
                length = max(1, round(note.duration / step))
                on_grid = Note(round(steps * step), round(length * step), note.pitch, note.velocity)
            else:
                steps, deviation, on_grid = round(note.start / step), 0, note
            known = placed.get((steps, note.pitch))
            if known is None or abs(deviation) < abs(known[0]):
                placed[(steps, note.pitch)] = (deviation, on_grid)
        grid[role] = sorted(n for _, n in placed.values())
        table = sorted((ROLE_CODES[role], s, p, d) for (s, p), (d, _) in placed.items())
        rows[role] = np.asarray(table, dtype=np.int64).reshape(-1, 4)
    return Reading(grid, rows, feel)


def other_readings(tracks: dict[str, list[Note]], ticks_per_beat: int, reading: Reading) -> list[Reading]:
    """A performance read on the other feel grids too: which grid a few bars fit best can
    differ from which grid the whole performance (the training file) fits best, and a bar
    read on another grid than its training bar has other digests. Empty for a piece on the
    grid (nothing was snapped)."""
    if reading.feel.name is None:
        return []
    return [read_piece(tracks, ticks_per_beat, feel) for _, feel in feel_fits(played_onsets(tracks, ticks_per_beat)
                                                                              ).values() if feel.name != reading.feel.name]


def to_grid(tracks: dict[str, list[Note]], ticks_per_beat: int) -> tuple[dict[str, list[Note]], Feel]:
    """The parts with every onset on the token grid (durations rounded to whole steps, at
    least one). Parts already on the grid are kept as they are; the others are snapped with
    one feel fitted on all of them together. Returns the feel used (name None: nothing to
    snap). Drums are left as written (the novelty check maps them: `read_piece`)."""
    step = ticks_per_beat / GRID_PER_BEAT
    off = [role for role, notes in tracks.items() if notes and not is_on_grid(notes, ticks_per_beat)]
    feel = Feel(None)
    if off:
        scale = TPB / ticks_per_beat
        feel = fit_feel([round(n.start * scale) for role in off for n in tracks[role]])
    out: dict[str, list[Note]] = {}
    for role, notes in tracks.items():
        if role not in off:
            out[role] = list(notes)
            continue
        moved = set()
        for note in notes:
            start_480 = snap(max(0, round(note.start * TPB / ticks_per_beat) + feel.lag), str(feel.name))
            steps = round(start_480 * GRID_PER_BEAT / TPB)
            length = max(1, round(note.duration / step))
            moved.add(Note(round(steps * step), round(length * step), note.pitch, note.velocity))
        out[role] = sorted(moved)
    return out, feel


def grid_steps(notes: list[Note], ticks_per_beat: int) -> np.ndarray:
    """(k, 2) int64 rows (onset step, pitch) of notes on the grid, sorted, each pair once."""
    if not notes:
        return np.zeros((0, 2), dtype=np.int64)
    rows = np.asarray([(round(n.start * GRID_PER_BEAT / ticks_per_beat), n.pitch) for n in notes], dtype=np.int64)
    return np.unique(rows, axis=0)


def canonical_notes(
    notes: list[Note], ticks_per_beat: int, start_tick: int = 0, end_tick: int | None = None
) -> np.ndarray:
    """(k, 3) int32 array of (start, duration, pitch) in grid steps relative to start_tick,
    for the notes whose *rounded* onset lies in [start_tick, end_tick) (rounded first, so a
    hit a few ticks before the window's first downbeat belongs to it); durations clipped to
    the window. Used by the nearest-window store and its piano rolls."""
    rows = []
    lo = round(start_tick * GRID_PER_BEAT / ticks_per_beat)
    hi = None if end_tick is None else round(end_tick * GRID_PER_BEAT / ticks_per_beat)
    for note in notes:
        onset = round(note.start * GRID_PER_BEAT / ticks_per_beat)
        if onset < lo or (hi is not None and onset >= hi):
            continue
        end = round((note.start + note.duration) * GRID_PER_BEAT / ticks_per_beat)
        if hi is not None:
            end = min(end, hi)
        rows.append((onset - lo, max(1, end - onset), note.pitch))
    if not rows:
        return np.zeros((0, 3), dtype=np.int32)
    return np.unique(np.asarray(rows, dtype=np.int32), axis=0)


# ---------------------------------------------------------------- bar digests

@dataclass
class BarDigests:
    """Digests of the bars of one part read from `shift` steps: one row per bar with notes."""

    shift: np.ndarray  # (n,) steps the reading starts after the first downbeat
    bar: np.ndarray  # (n,) bar index from that start
    digest: np.ndarray  # (n,) uint64
    low: np.ndarray  # (n,) lowest pitch of the bar (pitched parts), 0 for drums
    notes: np.ndarray  # (n,) notes in the bar

    def __len__(self) -> int:
        return len(self.digest)


def _digest(role_code: int, rows: np.ndarray) -> int:
    return int.from_bytes(hashlib.sha256(bytes([role_code]) + rows.astype("<i2").tobytes()).digest()[:8], "little")


def part_rows(tracks: dict[str, list[Note]], ticks_per_beat: int) -> dict[str, np.ndarray]:
    """(k, 4) int64 rows (role code, onset step, pitch, deviation) of each part of a piece
    as `read_piece` reads it, and of all its parts together ("all", when it has two or
    more): a texture copied whole is a copy even when each part alone is too thin to tell
    (a sparse ambient piece)."""
    return read_piece(tracks, ticks_per_beat).parts()


def bar_digests(part: str, rows: np.ndarray, bars: int, shifts: tuple[int, ...] | range = (0,),
                cyclic: bool = False) -> BarDigests:
    """Digests of each bar of a part (rows as `part_rows`), read from every shift in
    `shifts` (steps after the first downbeat). `cyclic` reads the part as a loop of `bars`
    bars, so the bar that runs past the end continues from the start (a loop shifted by a
    16th is still the loop); otherwise bars are read from the start shift to the last note.
    Pitched notes are taken relative to the bar's lowest pitched note, drums as they are."""
    columns: list[list[int]] = [[], [], [], [], []]
    code = PART_CODES[part]
    total = bars * BAR_STEPS
    for shift in shifts:
        position = rows[:, 1] - shift
        if cyclic:
            position = position % total
        keep = position >= 0
        position, role, pitch = position[keep], rows[keep, 0], rows[keep, 2]
        bar, within = position // BAR_STEPS, position % BAR_STEPS
        order = np.lexsort((pitch, role, within, bar))
        bar, within, role, pitch = bar[order], within[order], role[order], pitch[order]
        pitched = role != DRUMS_CODE
        starts = np.flatnonzero(np.r_[True, bar[1:] != bar[:-1]]) if len(bar) else np.zeros(0, dtype=np.int64)
        for lo, hi in zip(starts, np.r_[starts[1:], len(bar)]):
            tonal = pitched[lo:hi]
            low = int(pitch[lo:hi][tonal].min()) if tonal.any() else 0
            relative = np.column_stack([within[lo:hi], role[lo:hi], pitch[lo:hi] - low * tonal])
            for column, value in zip(columns, (shift, int(bar[lo]), _digest(code, relative), low, hi - lo)):
                column.append(value)
    return BarDigests(np.asarray(columns[0], dtype=np.int64), np.asarray(columns[1], dtype=np.int64),
                      np.asarray(columns[2], dtype=np.uint64), np.asarray(columns[3], dtype=np.int64),
                      np.asarray(columns[4], dtype=np.int64))


@dataclass
class PieceDigests:
    """Bar digests of every part of one training piece (and of all parts together),
    bar-aligned, and the notes they were read from (role -> rows as `Reading.rows`)."""

    parts: dict[str, BarDigests] = field(default_factory=dict)
    rows: dict[str, np.ndarray] = field(default_factory=dict)


def piece_digests(tracks: dict[str, list[Note]], ticks_per_beat: int) -> PieceDigests:
    """The bars of a piece as the index stores them: read (`read_piece`), then cut at every
    bar line from the first downbeat to the last note."""
    reading = read_piece(tracks, ticks_per_beat)
    return PieceDigests({part: bar_digests(part, rows, 0) for part, rows in reading.parts().items()},
                        {role: rows for role, rows in reading.rows.items() if len(rows)})


def track_digest(role: str, notes: list[Note], ticks_per_beat: int) -> bytes:
    """SHA-256 of a whole part on the grid (onsets and pitches): tells identical parts apart
    from different ones (diversity across seeds), no index needed."""
    rows = grid_steps(to_grid({role: notes}, ticks_per_beat)[0][role], ticks_per_beat)
    return hashlib.sha256(role.encode() + b"|" + rows.astype("<i4").tobytes()).digest()


# ---------------------------------------------------------------- the index

@dataclass
class Postings:
    """Training bars found for some query digests: parallel arrays, `query` the index of
    the query digest each row answers."""

    query: np.ndarray
    source: np.ndarray
    bar: np.ndarray
    low: np.ndarray
    songs_sharing: np.ndarray  # how many training songs hold this bar


@dataclass
class NoveltyIndex:
    """Every bar of every part of the training pieces: its digest, source, part, bar and
    lowest pitch, sorted by digest; and the notes of every training part as read
    (`Reading.rows`), so a match found by digest can be followed note by note into the bars
    around it (a played copy has bars whose digests differ by a note or two). Saved as
    `index.npz` (the arrays) + `index.json` (sources and the song each belongs to).

    A *song* is a source group (prepare's `group` column, else the file): corpora often cut
    one recording into several files that share their bars. `songs_sharing` (computed on
    load) counts, for each digest, the songs that hold it: a bar found in many songs is a
    common pattern, not the mark of one song."""

    sources: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    source_group: list[int] = field(default_factory=list)  # per source: index into groups
    digest: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    part: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bar: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    low: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    songs_sharing: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the notes: (n, 5) int64 rows (source, role code, onset step, pitch, deviation) sorted
    notes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), dtype=np.int64))
    _pending: list[tuple[int, str, BarDigests]] = field(default_factory=list, repr=False)
    _pending_notes: list[np.ndarray] = field(default_factory=list, repr=False)
    _group_ids: dict[str, int] = field(default_factory=dict, repr=False)
    _bar_keys: np.ndarray | None = field(default=None, repr=False)  # sorted (source, part, bar) keys
    _bar_rows: np.ndarray | None = field(default=None, repr=False)  # their rows in the digest arrays
    _note_keys: np.ndarray | None = field(default=None, repr=False)  # (source, role, step) keys of `notes`

    def add(self, source: str, piece: PieceDigests, group: str | None = None) -> None:
        """Add a training piece; `group` names its song (default: the source itself)."""
        group = source if group is None else group
        if len(self._group_ids) != len(self.groups):  # loaded from disk
            self._group_ids = {name: i for i, name in enumerate(self.groups)}
        if group not in self._group_ids:
            self._group_ids[group] = len(self.groups)
            self.groups.append(group)
        self.source_group.append(self._group_ids[group])
        number = len(self.sources)
        self._pending.extend((number, part, bars) for part, bars in piece.parts.items())
        self._pending_notes.extend(np.column_stack([np.full(len(rows), number), rows])
                                   for rows in piece.rows.values() if len(rows))
        self.sources.append(source)

    def _finish(self) -> None:
        if not self._pending and not self._pending_notes:
            return
        parts, notes = self._pending, self._pending_notes
        self._pending, self._pending_notes = [], []
        digest = np.concatenate([self.digest, *(b.digest for _, _, b in parts)])
        source = np.concatenate([self.source, *(np.full(len(b), s, dtype=np.int64) for s, _, b in parts)])
        part = np.concatenate([self.part, *(np.full(len(b), PART_CODES[p], dtype=np.int64) for _, p, b in parts)])
        bar = np.concatenate([self.bar, *(b.bar for _, _, b in parts)])
        low = np.concatenate([self.low, *(b.low for _, _, b in parts)])
        self._set(digest, source, part, bar, low, np.concatenate([self.notes, *notes]))

    def _set(self, digest: np.ndarray, source: np.ndarray, part: np.ndarray, bar: np.ndarray, low: np.ndarray,
             notes: np.ndarray) -> None:
        order = np.lexsort((bar, part, source, digest))
        self.digest, self.source = digest[order].astype(np.uint64), source[order].astype(np.int64)
        self.part, self.bar, self.low = (a[order].astype(np.int64) for a in (part, bar, low))
        notes = notes.astype(np.int64).reshape(-1, 5)
        self.notes = notes[np.lexsort((notes[:, 3], notes[:, 2], notes[:, 1], notes[:, 0]))]
        self._note_keys = (self.notes[:, 0] * len(PART_CODES) + self.notes[:, 1]) * _STEP_SPAN + self.notes[:, 2]
        bar_keys = (self.source * len(PART_CODES) + self.part) * _STEP_SPAN + self.bar
        self._bar_rows = np.argsort(bar_keys, kind="stable")
        self._bar_keys = bar_keys[self._bar_rows]
        self.songs_sharing = np.zeros(len(self.digest), dtype=np.int64)
        if not len(self.digest):
            return
        song = np.asarray(self.source_group, dtype=np.int64)[self.source]
        by_song = np.lexsort((song, self.digest))
        d, g = self.digest[by_song], song[by_song]
        new_digest = np.r_[True, d[1:] != d[:-1]]
        new_song = new_digest | np.r_[True, g[1:] != g[:-1]]
        run = np.cumsum(new_digest) - 1
        self.songs_sharing[by_song] = np.bincount(run, weights=new_song).astype(np.int64)[run]

    def __len__(self) -> int:
        """Training bars held (one per part and bar)."""
        self._finish()
        return len(self.digest)

    def lookup(self, digests: np.ndarray) -> Postings:
        """Every training bar whose digest is one of `digests` (a binary search each)."""
        self._finish()
        lo = np.searchsorted(self.digest, digests, side="left")
        hi = np.searchsorted(self.digest, digests, side="right")
        counts = hi - lo
        query = np.repeat(np.arange(len(digests)), counts)
        rows = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        return Postings(query, self.source[rows], self.bar[rows], self.low[rows], self.songs_sharing[rows])

    def bar_sharing(self, source: int, part: str, bar: int) -> int:
        """How many training songs hold this training bar (0: the part has no notes there)."""
        self._finish()
        key = (source * len(PART_CODES) + PART_CODES[part]) * _STEP_SPAN + bar
        at = int(np.searchsorted(self._bar_keys, key))
        if at < len(self._bar_keys) and self._bar_keys[at] == key:
            return int(self.songs_sharing[self._bar_rows[at]])
        return 0

    def bar_notes(self, source: int, part: str, bar: int) -> np.ndarray:
        """(k, 4) rows (role code, step within the bar, pitch, deviation) of one training bar
        of one part ("all": every role), as the piece was read."""
        self._finish()
        roles = list(ROLE_CODES.values()) if part == ALL_PARTS else [ROLE_CODES[part]]
        chunks = []
        for role in roles:
            base = (source * len(PART_CODES) + role) * _STEP_SPAN
            lo, hi = np.searchsorted(self._note_keys, [base + bar * BAR_STEPS, base + (bar + 1) * BAR_STEPS])
            chunks.append(self.notes[lo:hi, 1:])
        rows = np.concatenate(chunks) if chunks else np.zeros((0, 4), dtype=np.int64)
        rows = rows.copy()
        rows[:, 1] -= bar * BAR_STEPS
        return rows

    def save(self, directory: Path) -> None:
        """Compactly: digests as uint64, the rest in the smallest integer type that holds it."""
        self._finish()
        directory.mkdir(parents=True, exist_ok=True)

        def small(values: np.ndarray) -> np.ndarray:
            if not len(values):
                return values.astype(np.int8)
            return values.astype(np.result_type(np.min_scalar_type(values.min()), np.min_scalar_type(values.max())))

        tmp = directory / "index.tmp.npz"
        np.savez_compressed(tmp, digest=self.digest, source=small(self.source), part=small(self.part),
                            bar=small(self.bar), low=small(self.low),
                            **{f"note_{name}": small(self.notes[:, i])
                               for i, name in enumerate(("source", "role", "step", "pitch", "deviation"))})
        tmp.replace(directory / "index.npz")
        meta = {"version": INDEX_VERSION, "kind": "bar digests", "grid_per_beat": GRID_PER_BEAT,
                "bar_steps": BAR_STEPS, "bars": len(self.digest), "notes": len(self.notes),
                "reading": "symbolic/canonical.py read_piece: drums by drum_map.novelty_pitch, feel-snapped grid",
                "sources": self.sources, "groups": self.groups, "source_group": self.source_group}
        (directory / "index.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> NoveltyIndex:
        meta = json.loads((directory / "index.json").read_text())
        if meta.get("version") != INDEX_VERSION or meta.get("grid_per_beat") != GRID_PER_BEAT:
            raise IndexVersionError(f"{directory}: novelty index version {meta.get('version')}, this stemforge reads "
                                    f"version {INDEX_VERSION}; run `pipeline prepare` again to rebuild it, or "
                                    "`pipeline index DATA_DIR --model MODEL_DIR` to rebuild a model's from the data it "
                                    "was trained on (the same MIDI folder and config give the same data sha256)")
        index = cls(sources=list(meta["sources"]), groups=list(meta["groups"]),
                    source_group=[int(g) for g in meta["source_group"]])
        with np.load(directory / "index.npz") as data:
            notes = np.column_stack([data[f"note_{name}"].astype(np.int64)
                                     for name in ("source", "role", "step", "pitch", "deviation")])
            index._set(data["digest"], data["source"].astype(np.int64), data["part"].astype(np.int64),
                       data["bar"].astype(np.int64), data["low"].astype(np.int64), notes)
        return index


_STEP_SPAN = 1 << 32  # keys (source, part, step or bar) packed into one int64
