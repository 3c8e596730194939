"""Novelty of generated pieces against the training set: was anything copied?

One definition, used by `pipeline eval` and by the quality bench (`assess_tracks`):

1. The piece is read the way `pipeline prepare` read the training files for the index
   (`symbolic.music.canonical.read_piece`): drums through the one drum map, parts already on the
   token grid as they are, performances snapped to their feel's grid, each note keeping how
   far from its step it was played. A run folder is read from the token ids its run.json
   keeps when it has them (`run_grid_tracks`): the piece as composed, before swing and
   micro-timing were applied to the written MIDI.
2. Every part is read as a loop of its bars from every grid step of the first bar (48
   shifts of 1/12 beat, so a copy that starts a 16th or a triplet late is read as it was
   written), and each bar's digest is looked up in the training index (a binary search per
   bar: no scan of the training set).
3. A *match* is a run of consecutive generated bars found at consecutive bars of one
   training part, read at one shift and with one transposition (pitched parts are digested
   relative to each bar's lowest pitch, so any transposition matches; drums never transpose).
   A bar that `COMMON_SONGS` (2) or more training songs share (a plain backbeat, a bass on
   the root) is a common pattern: it continues a match but its notes are not evidence of a
   copy; only bars unique to one training song are.
4. Verdict per part, from its strongest match: **copied** when at least `COPY_BARS` bars
   match and their distinctive bars hold at least `MIN_COPY_NOTES` notes; **near copy** when
   at least `NEAR_BARS` bars do; **new** otherwise. A run's verdict is its strongest part's.

The thresholds were set on the default model's data (docs/eval.md, "Novelty"): every exact,
transposed, shifted (every 16th) and humanized (+-20 ms, velocities) copy of 20 training
pieces is copied, a 4-bar clip shifted into new material too (its last bar mixes with the
new notes, hence 3 bars), and no fresh run of the default model has a match longer than one
bar.

Besides the verdict, the report shows the nearest training window of each run by note
overlap (`nearest_training_windows`, a scan of the stored 4-bar training windows): a graded
"how close", read at the shift of the run's strongest match.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from stemforge.symbolic.core.ticks import BEATS_PER_BAR, GRID_PER_BEAT, STEP_TICKS
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.canonical import (
    BAR_STEPS,
    ROLE_CODES,
    WINDOW_BARS,
    NoveltyIndex,
    Reading,
    bar_digests,
    is_on_grid,
    other_readings,
    read_piece,
    to_grid,
)
from stemforge.symbolic.runtime.run_manifest import RunManifest
from stemforge.symbolic.training.window_store import WINDOW_STEPS, WindowNotes, window_rows

COPY_BARS = 3  # consecutive bars equal to one training part: copied
NEAR_BARS = 2  # ... near copy
MIN_COPY_NOTES = 8  # notes in the match's distinctive bars needed for either verdict
# A bar that two or more training songs hold is a pattern, not the mark of one song: at 8,
# 2 of 48 fresh default-model runs were "near copies" by bars that 2-5 songs share (four
# quarter-note roots in reggae, a techno beat two house songs have); at 2, none, and every
# exact/transposed/shifted/humanized copy of training material is still caught.
COMMON_SONGS = 2
SHIFTS = range(BAR_STEPS)  # every grid step of a bar
# A played copy has bars whose digests differ by a note or two (a hit played near the line
# between two 16ths lands on either side): from a bar found exactly (and unique to one
# song), the match is followed into the bars around it, note by note. A note matches a
# training note of the same drum (pitch, after the match's transposition) on the same step,
# or played within NOTE_TOLERANCE_TICKS (ticks at 480 per beat) of it; a bar continues the
# match when at least BAR_SIMILARITY of the notes of the fuller side match.
NOTE_TOLERANCE_TICKS = 40
BAR_SIMILARITY = 0.75
GAP_SIMILARITY = 0.5  # ... and a bar between two such bars needs this much
MAX_ANCHORS = 128  # alignments followed per part and reading
VERDICTS: tuple[str, ...] = ("copied", "near copy", "new")  # strongest first

TRANSPOSITIONS = tuple(range(-12, 13))
PITCHES = 128
DENSE_BLOCK = 4_000_000  # generated x training similarities held at once (32 MB)
DRUMS_CODE = ROLE_CODES["drums"]


def thresholds() -> dict:
    """The verdict's definition, as the report prints it."""
    return {"copy_bars": COPY_BARS, "near_copy_bars": NEAR_BARS, "min_copy_notes": MIN_COPY_NOTES,
            "common_songs": COMMON_SONGS, "shifts_per_bar": len(SHIFTS), "grid_per_beat": GRID_PER_BEAT,
            "bar_similarity": BAR_SIMILARITY, "gap_similarity": GAP_SIMILARITY,
            "note_tolerance_ticks_at_480": NOTE_TOLERANCE_TICKS}


# ---------------------------------------------------------------- matches and verdicts

@dataclass
class Match:
    """Consecutive generated bars found at consecutive bars of one training part."""

    bars: int  # bars matched
    notes: int  # notes in them
    distinctive_notes: int  # notes in the matched bars fewer than COMMON_SONGS songs share
    start_bar: int  # first matched bar, counted from the shift
    shift_steps: int  # grid steps (1/12 beat) after the downbeat the bars are read from
    transposition: int  # semitones from the training part to the generated one
    source: str  # training file
    training_bar: int  # its bar matching start_bar (0-based)
    part: str = ""  # the role matched, or "all"
    similarity: float = 1.0  # mean share of matching notes over the matched bars (1: every bar exact)

    @property
    def verdict(self) -> str:
        if self.distinctive_notes >= MIN_COPY_NOTES and self.bars >= COPY_BARS:
            return "copied"
        if self.distinctive_notes >= MIN_COPY_NOTES and self.bars >= NEAR_BARS:
            return "near copy"
        return "new"

    def strength(self) -> tuple:
        return (-VERDICTS.index(self.verdict), self.bars, self.distinctive_notes, -abs(self.transposition),
                -self.shift_steps)


@dataclass
class PartNovelty:
    part: str  # a role, or "all" for the parts together
    notes: int
    bars_found: int  # bars (read from the downbeat) whose digest is in the training index
    bars: int
    match: Match | None  # the strongest match, if any bar matched

    @property
    def verdict(self) -> str:
        return self.match.verdict if self.match else "new"

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "notes": self.notes, "bars": self.bars, "bars_found": self.bars_found,
                "match": asdict(self.match) if self.match else None}


@dataclass
class PieceNovelty:
    parts: dict[str, PartNovelty] = field(default_factory=dict)
    grid: str = "on the grid"  # how the notes were put on the grid

    @property
    def verdict(self) -> str:
        return min((p.verdict for p in self.parts.values()), key=VERDICTS.index, default="new")

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "grid": self.grid,
                "parts": {role: part.to_dict() for role, part in self.parts.items()}}


def _best_match(part: str, rows: np.ndarray, bars: int, index: NoveltyIndex) -> tuple[Match | None, int]:
    """The strongest match of one part, and how many of its bars (read from the downbeat)
    the index holds at all. Vectorised: one lookup for every bar at every shift, then runs
    found by sorting the hits by (shift, source, bar offset, transposition, bar); then the
    runs followed note by note from their distinctive bars (`_followed_matches`)."""
    query = bar_digests(part, rows, bars, SHIFTS, cyclic=True)
    hits = index.lookup(query.digest)
    found = int(len(np.unique(query.bar[hits.query][query.shift[hits.query] == 0])))
    if not len(hits.query):
        return None, found
    shift, bar, notes = query.shift[hits.query], query.bar[hits.query], query.notes[hits.query]
    transposition = query.low[hits.query] - hits.low
    offset = hits.bar - bar
    order = np.lexsort((bar, transposition, offset, hits.source, shift))
    shift, bar, notes, transposition, offset, source, sharing = (a[order] for a in (
        shift, bar, notes, transposition, offset, hits.source, hits.songs_sharing))
    distinctive = (sharing < COMMON_SONGS) * notes
    same = ((shift[1:] == shift[:-1]) & (source[1:] == source[:-1]) & (offset[1:] == offset[:-1])
            & (transposition[1:] == transposition[:-1]) & (bar[1:] == bar[:-1] + 1))
    run = np.cumsum(np.r_[True, ~same]) - 1
    first = np.flatnonzero(np.r_[True, ~same])
    run_bars = np.bincount(run)
    run_notes = np.bincount(run, weights=notes).astype(np.int64)
    run_distinctive = np.bincount(run, weights=distinctive).astype(np.int64)
    rank = np.where(run_distinctive >= MIN_COPY_NOTES, np.where(run_bars >= COPY_BARS, 0, np.where(
        run_bars >= NEAR_BARS, 1, 2)), 2)
    # strongest: verdict, then bars, distinctive notes, the smallest transposition and shift
    r = np.lexsort((shift[first], np.abs(transposition[first]), -run_distinctive, -run_bars, rank))[0]
    i = first[r]
    best = Match(int(run_bars[r]), int(run_notes[r]), int(run_distinctive[r]), int(bar[i]), int(shift[i]),
                 int(transposition[i]), index.sources[int(source[i])], int(offset[i] + bar[i]), part)
    # the alignments with an exact bar that only one training song holds, the most such bars
    # first. (Following from common bars too found 3 of 48 fresh techno runs "copied": a
    # four-on-the-floor bar leads into many songs' bars that are similar enough.)
    distinctive_hits = sharing < COMMON_SONGS
    if not distinctive_hits.any():
        return best, found
    keys = np.column_stack([shift, source, offset, transposition])[distinctive_hits]
    alignments, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    chosen = np.argsort(-counts, kind="stable")[:MAX_ANCHORS]
    bar = bar[distinctive_hits]
    named = [tuple(key) for key in alignments.tolist()]
    anchor_bars: dict[tuple[int, int, int, int], set[int]] = {named[a]: set() for a in chosen.tolist()}
    for a, b in zip(inverse.tolist(), bar.tolist()):
        if named[a] in anchor_bars:
            anchor_bars[named[a]].add(b)
    for followed in _followed_matches(part, rows, bars, index, anchor_bars):
        if followed.strength() > best.strength():
            best = followed
    return best, found


def _bar_similarity(generated: np.ndarray, training: np.ndarray, transposition: int) -> float:
    """Share of notes that match between two bars (rows: role code, step in the bar, pitch,
    deviation), of the fuller side's notes: same role and pitch (pitched parts after the
    transposition), on the same step or played within NOTE_TOLERANCE_TICKS of each other."""
    if not len(generated) or not len(training):
        return 0.0
    pitch = generated[:, 2] - np.where(generated[:, 0] == DRUMS_CODE, 0, transposition)
    same = (generated[:, 0, None] == training[None, :, 0]) & (pitch[:, None] == training[None, :, 2])
    played = generated[:, 1] * STEP_TICKS + generated[:, 3]
    heard = training[:, 1] * STEP_TICKS + training[:, 3]
    close = (generated[:, 1, None] == training[None, :, 1]) | (
        np.abs(played[:, None] - heard[None, :]) <= NOTE_TOLERANCE_TICKS)
    matched = same & close
    return min(int(matched.any(axis=1).sum()), int(matched.any(axis=0).sum())) / max(len(generated), len(training))


def _followed_matches(part: str, rows: np.ndarray, bars: int, index: NoveltyIndex,
                      anchors: dict[tuple[int, int, int, int], set[int]]) -> list[Match]:
    """For each alignment (shift, training source, bar offset, transposition) with exact
    distinctive bars (`anchors`), the run of consecutive generated bars around them that
    match the training part's bars note by note (`_bar_similarity` >= BAR_SIMILARITY)."""
    total = bars * BAR_STEPS
    by_shift: dict[int, list[np.ndarray]] = {}
    out = []
    for (shift, source, offset, transposition), exact in anchors.items():
        if shift not in by_shift:  # the part read as a loop from `shift`, cut into bars
            position = (rows[:, 1] - shift) % total
            placed = np.column_stack([rows[:, 0], position % BAR_STEPS, rows[:, 2], rows[:, 3]])
            by_shift[shift] = [placed[position // BAR_STEPS == b] for b in range(bars)]
        generated = by_shift[shift]
        similarity = np.zeros(bars)
        for b in range(bars):
            if b + offset >= 0:
                similarity[b] = 1.0 if b in exact else _bar_similarity(
                    generated[b], index.bar_notes(source, part, b + offset), transposition)
        similar = similarity >= BAR_SIMILARITY
        # one weaker bar between two that match (a fill played looser, a bar whose hits
        # straddle the lines) does not end the match
        bridged = (similarity >= GAP_SIMILARITY) & np.r_[False, similar[:-1]] & np.r_[similar[1:], False]
        similar |= bridged
        covered = -1  # the last bar of the run found from an earlier anchor
        for start in sorted(exact):
            if start <= covered:
                continue
            lo = start
            while lo > 0 and similar[lo - 1]:
                lo -= 1
            hi = start
            while hi + 1 < bars and similar[hi + 1]:
                hi += 1
            span, covered = range(lo, hi + 1), hi
            notes = sum(len(generated[b]) for b in span)
            distinctive = sum(len(generated[b]) for b in span
                              if 0 < index.bar_sharing(source, part, b + offset) < COMMON_SONGS)
            out.append(Match(len(span), notes, distinctive, lo, shift, transposition, index.sources[source],
                             lo + offset, part, round(float(np.mean(similarity[lo:hi + 1])), 3)))
    return out


def assess_reading(reading: Reading, bars: int, index: NoveltyIndex, grid: str | None = None,
                   alternatives: list[Reading] | tuple = ()) -> PieceNovelty:
    """Verdicts of a piece as `read_piece` read it; a part's strongest match over the
    reading and its `alternatives` (the same performance on the other feel grids)."""
    out = PieceNovelty(grid=grid or reading.feel.describe())
    others = [other.parts() for other in alternatives]
    for part, rows in reading.parts().items():
        length = max(bars, int(rows[:, 1].max()) // BAR_STEPS + 1)
        match, found = _best_match(part, rows, length, index)
        for parts in others:
            if part in parts:
                other, _ = _best_match(part, parts[part], length, index)
                if other is not None and (match is None or other.strength() > match.strength()):
                    match = other
        out.parts[part] = PartNovelty(part, len(rows), found, length, match)
    return out


def assess_grid(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, index: NoveltyIndex,
                grid: str = "on the grid") -> PieceNovelty:
    """Verdicts of a piece whose notes are on the token grid (see `assess_tracks`)."""
    return assess_reading(read_piece(tracks, ticks_per_beat), bars, index, grid)


def assess_tracks(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, index: NoveltyIndex) -> PieceNovelty:
    """The novelty check: each part's verdict ("copied", "near copy", "new") and strongest
    match against the training index. The piece is read as the index was (`read_piece`:
    drums through the one drum map, parts off the grid snapped to their feel, each note
    keeping how far from its step it was played); prefer passing the token-grid notes when
    you have them (`run_grid_tracks`)."""
    reading = read_piece(tracks, ticks_per_beat)
    return assess_reading(reading, bars, index, alternatives=other_readings(tracks, ticks_per_beat, reading))


def summarize(pieces: list[dict]) -> dict:
    """Verdict counts over runs and over each part (pieces as `piece_novelty` returns them)."""
    runs = {v: sum(1 for p in pieces if p["verdict"] == v) for v in VERDICTS}
    parts: dict[str, dict[str, int]] = {}
    for piece in pieces:
        for role, part in piece["parts"].items():
            parts.setdefault(role, dict.fromkeys(VERDICTS, 0))[part["verdict"]] += 1
    return {"runs": {**runs, "total": len(pieces)},
            "parts": {role: {**c, "total": sum(c.values())} for role, c in parts.items()}}


# ---------------------------------------------------------------- run folders

@functools.lru_cache(maxsize=4)
def _tokenizer(path: str):
    from stemforge.symbolic.music.tokenizer import ComposerTokenizer

    return ComposerTokenizer.load(Path(path))


def run_grid_tracks(run: RunManifest, midi_tracks: dict[str, list[Note]], ticks_per_beat: int
                    ) -> tuple[dict[str, list[Note]], str]:
    """The notes of a run that novelty reads (`read_piece`), and where they came from. Per
    part: the MIDI when it is on the grid (a quantized run); for a run with a seed clip, the
    MIDI as written (the clip's own bars are the user's notes, as played: read the way the
    index reads a training file); else the token grid decoded from run.json's `token_ids`
    with the run's model tokenizer (the piece as composed, before the feel: swing up to 75%
    and 10-20 ms of micro-timing would otherwise have to be undone by guessing), else the
    MIDI, which the reading snaps to its feel."""
    present = [r for r, notes in midi_tracks.items() if notes]
    off = [r for r in present if not is_on_grid(midi_tracks[r], ticks_per_beat)]
    if not off:
        return dict(midi_tracks), "MIDI on the grid"
    decoded: dict[str, list[Note]] = {}
    why = "run.json has no token_ids"
    model = run.model.path
    if run.context.seed_midi:
        why = "a seed clip's run, read as played"
    elif run.token_ids and model:
        try:
            tokenizer = _tokenizer(str(Path(model) / "tokenizer.json"))
            decoded = {r: t.notes for r, t in tokenizer.decode_tracks(list(run.token_ids), ticks_per_beat).items()}
        except (OSError, ValueError, KeyError, IndexError) as error:
            why = f"token_ids not decodable: {type(error).__name__}"
    tracks = dict(midi_tracks)
    origin = {r: "MIDI on the grid" for r in present}
    for role in off:
        if decoded.get(role):
            tracks[role], origin[role] = decoded[role], "token grid (run.json token_ids)"
    _, feel = to_grid(tracks, ticks_per_beat)
    for role in off:
        if not decoded.get(role):
            origin[role] = f"MIDI {feel.describe()}, {why}"
    said: dict[str, list[str]] = {}
    for role in present:
        said.setdefault(origin[role], []).append(role)
    return tracks, "; ".join(f"{', '.join(roles)}: {how}" for how, roles in said.items())


# ---------------------------------------------------------------- nearest training window (note overlap)

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


def generated_windows(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int,
                      shift_steps: int = 0) -> list[tuple[int, np.ndarray]]:
    """(start_bar, rows) of every WINDOW_BARS window of a piece on the grid, one every bar,
    starting `shift_steps` grid steps after each bar line."""
    out = []
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    shift_ticks = round(shift_steps * ticks_per_beat / GRID_PER_BEAT)
    for bar in range(0, max(0, bars - WINDOW_BARS) + 1):
        rows = window_rows(tracks, ticks_per_beat, bar * ticks_per_bar + shift_ticks)
        if len(rows):
            out.append((bar, rows))
    return out


def piece_novelty(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int, index: NoveltyIndex,
                  store: WindowNotes | None, grid: str | None = None) -> dict:
    """What the report shows of one piece: the verdicts (`assess_reading`; `grid` says how
    notes already on the grid got there, None: read them here) and the nearest training
    window by note overlap, read at the shift of the strongest match."""
    reading = read_piece(tracks, ticks_per_beat)
    result = assess_reading(reading, bars, index, grid, other_readings(tracks, ticks_per_beat, reading))
    tracks = reading.tracks
    matches = [p.match for p in result.parts.values() if p.match and p.verdict != "new"]
    shift = max(matches, key=Match.strength).shift_steps if matches else 0
    windows = generated_windows(tracks, ticks_per_beat, bars, shift)
    nearest = None
    if store is not None and windows:
        neighbours = nearest_training_windows([rows for _, rows in windows], store)
        scored = [(n.similarity, i) for i, n in enumerate(neighbours) if n is not None]
        if scored:
            _, i = max(scored)
            n = neighbours[i]
            nearest = {
                "similarity": n.similarity, "bar": windows[i][0], "shift_steps": shift,
                "transposition": n.transposition, "training": store.describe(n.training_window),
                "training_window": n.training_window,
                "window_similarities": [round(x.similarity, 4) if x else 0.0 for x in neighbours],
            }
    return {**result.to_dict(), "nearest": nearest,
            "windows": {bar: rows for bar, rows in windows}}  # windows: for plots; dropped from JSON


__all__ = ["COPY_BARS", "NEAR_BARS", "MIN_COPY_NOTES", "COMMON_SONGS", "VERDICTS", "Match", "PartNovelty",
           "PieceNovelty", "assess_grid", "assess_reading", "assess_tracks", "nearest_training_windows", "piece_novelty",
           "run_grid_tracks", "summarize", "thresholds"]
