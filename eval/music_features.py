"""Musical features of arrangements, for comparing generated music with its training data
and with real music (`bench/quality.py`, the "Symbolic" section of `pipeline eval`): where
drum hits fall in the bar, swing, notes per bar, notes in key, bass notes that land on
kicks, how much bars repeat, how lines move, how the parts follow the chords, and a small
genre classifier over a window's features.

Times are integer ticks; every function takes `ticks_per_beat`, bars are 4/4. Shares are
returned as `Share` (hits, total) so that they pool over many windows as a ratio of sums
instead of a mean of ratios (a 2-note bass line must not weigh as much as a 40-note one).
The swing definition is the corpus builder's (`symbolic.corpus_rules.swing_ratio`), made
independent of the tick resolution, so figures compare with docs/corpus.md.

Generated notes may carry micro-timing (a groove a few ticks off the grid) and real
performances always do: every positional measure of the "structure" section below reads
onsets on the 1/12-beat grid (`grid_step`: the nearest step, so a hit 10 ticks late counts
where it was meant). Velocities and overlaps are measured as written. Averages of per-bar
values pool as `Mean` (sum, count), the same way as `Share`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon

from stemforge.symbolic.arrangement import BEATS_PER_BAR, Note
from stemforge.symbolic.canonical import GRID_PER_BEAT
from stemforge.symbolic.conditions import Key
from stemforge.symbolic.corpus import estimate_key

STEPS_PER_BAR = 16  # 16th notes
STEPS_PER_BEAT = STEPS_PER_BAR // BEATS_PER_BAR
# General MIDI drum notes grouped the way a producer reads a groove.
KICKS: frozenset[int] = frozenset({35, 36})
SNARES: frozenset[int] = frozenset({37, 38, 39, 40})  # rim, snare, clap, electric snare
CYMBALS: frozenset[int] = frozenset({42, 44, 46, 49, 51, 52, 53, 55, 57, 59})  # hats, crash, ride
DRUM_GROUPS: dict[str, frozenset[int] | None] = {"kick": KICKS, "snare": SNARES, "cymbal": CYMBALS, "other": None}
# Swung positions inside a beat, as fractions of it: the 8th-triplet "and" (2/3), the
# swung 16ths (1/3 and 5/6). 0.5 and 0.25/0.75 are the straight off-beats.
SWUNG_FRACTIONS: tuple[tuple[int, int], ...] = ((1, 3), (2, 3), (5, 6))


@dataclass(frozen=True)
class Share:
    """`hits` of `total` events; adds up over windows. `value` is NaN for no events."""

    hits: int = 0
    total: int = 0

    def __add__(self, other: Share) -> Share:
        return Share(self.hits + other.hits, self.total + other.total)

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else float("nan")


def total_share(shares: Iterable[Share]) -> Share:
    return sum(shares, Share())


def drum_group(pitch: int) -> str:
    for name, pitches in DRUM_GROUPS.items():
        if pitches is not None and pitch in pitches:
            return name
    return "other"


def step_in_bar(tick: int, ticks_per_beat: int) -> int:
    """The nearest 16th step of the bar (0-15); swung notes fall to their nearest 16th and
    a hit just before the next bar wraps to step 0."""
    return round(tick * STEPS_PER_BEAT / ticks_per_beat) % STEPS_PER_BAR


def onset_histogram(notes: Iterable[Note], ticks_per_beat: int, pitches: frozenset[int] | None = None) -> np.ndarray:
    """Onset counts over the 16 steps of a bar, summed over all bars (float64, length 16);
    only notes whose pitch is in `pitches` when given."""
    histogram = np.zeros(STEPS_PER_BAR)
    for note in notes:
        if pitches is None or note.pitch in pitches:
            histogram[step_in_bar(note.start, ticks_per_beat)] += 1
    return histogram


def group_histograms(drums: Iterable[Note], ticks_per_beat: int) -> dict[str, np.ndarray]:
    """`onset_histogram` per drum group (kick, snare, cymbal, other)."""
    out = {name: np.zeros(STEPS_PER_BAR) for name in DRUM_GROUPS}
    for note in drums:
        out[drum_group(note.pitch)][step_in_bar(note.start, ticks_per_beat)] += 1
    return out


def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 = same distribution, 1 = disjoint) between two
    onset histograms, each normalised to sum 1; NaN when either is empty."""
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def swing(notes: Iterable[Note], ticks_per_beat: int) -> Share:
    """Off-beat onsets (not on a beat) that sit on a swung position, of all off-beat onsets:
    0 for a straight groove, 1 for a fully swung one."""
    swung_ticks = {ticks_per_beat * a // b for a, b in SWUNG_FRACTIONS if ticks_per_beat * a % b == 0}
    offbeat = [note.start % ticks_per_beat for note in notes if note.start % ticks_per_beat]
    return Share(sum(1 for o in offbeat if o in swung_ticks), len(offbeat))


def in_key(notes: Iterable[Note], key: Key) -> Share:
    """Notes whose pitch class is in the key's (natural) scale."""
    scale = key.scale_pitch_classes
    pitches = [note.pitch % 12 for note in notes]
    return Share(sum(1 for p in pitches if p in scale), len(pitches))


def best_key_share(notes: Iterable[Note]) -> Share:
    """`in_key` for the best-fitting of the 24 major/minor keys: tells music that is tonal in
    another key (high here, low for the asked key) from music that is not tonal at all."""
    pitches = list(notes)
    shares = [in_key(pitches, Key(tonic, mode)) for tonic in range(12) for mode in ("major", "minor")]
    return max(shares, key=lambda share: share.hits)


def bass_on_kick(bass: Iterable[Note], drums: Iterable[Note], tolerance_ticks: int = 0) -> Share:
    """Bass onsets (distinct start ticks) within `tolerance_ticks` of a kick onset."""
    kicks = np.asarray(sorted({n.start for n in drums if n.pitch in KICKS}), dtype=np.int64)
    onsets = sorted({n.start for n in bass})
    if not len(kicks):
        return Share(0, len(onsets))
    hits = 0
    for onset in onsets:
        nearest = np.abs(kicks - onset).min()
        hits += int(nearest <= tolerance_ticks)
    return Share(hits, len(onsets))


def notes_per_bar(tracks: dict[str, list[Note]], bars: int) -> float:
    return sum(len(notes) for notes in tracks.values()) / bars


def cut_window(tracks: dict[str, list[Note]], start_bar: int, bars: int, ticks_per_beat: int) -> dict[str, list[Note]]:
    """The notes starting in [start_bar, start_bar + bars), moved to start at tick 0."""
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    lo, hi = start_bar * ticks_per_bar, (start_bar + bars) * ticks_per_bar
    return {role: [Note(n.start - lo, n.duration, n.pitch, n.velocity) for n in notes if lo <= n.start < hi]
            for role, notes in tracks.items()}


# ------------------------------------------------------------------ structure (vs real music)

GRID_PER_BAR = GRID_PER_BEAT * BEATS_PER_BAR  # 48 steps of 1/12 beat
STEPS_PER_GRID_SIXTEENTH = GRID_PER_BEAT // STEPS_PER_BEAT  # 3 grid steps make a 16th
BEAT_POSITIONS: frozenset[int] = frozenset(range(0, GRID_PER_BAR, GRID_PER_BEAT))  # 0, 12, 24, 36
CLOSED_HATS: frozenset[int] = frozenset({42})
SNARE_OR_CLAP: frozenset[int] = frozenset({38, 39, 40})  # snare, clap, electric snare
SPAN_BARS = 8  # distinct velocities are counted per 8 bars, the length of a default piece


@dataclass(frozen=True)
class Mean:
    """Mean of per-item values as (sum, count); adds up over windows like `Share`, so a
    pooled mean weighs every bar pair (not every piece) the same. NaN for no items."""

    total: float = 0.0
    count: int = 0

    def __add__(self, other: Mean) -> Mean:
        return Mean(self.total + other.total, self.count + other.count)

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")


Stat = Share | Mean


class ChordLike(Protocol):
    """The chord fields the measures read (`symbolic.corpus_rules.Chord`, `symbolic.harmony.Chord`):
    pitch classes of root and bass note, third/fifth/seventh in semitones above the root."""

    root: int
    third: int
    fifth: int
    seventh: int
    bass: int


class ChordSpanLike(Protocol):
    """A chord sounding over [start, end) ticks (`symbolic.corpus_rules.ChordSpan`, or a
    generated arrangement's chord plan)."""

    start: int
    end: int
    chord: ChordLike


def grid_step(tick: int, ticks_per_beat: int) -> int:
    """The nearest 1/12-beat step from tick 0 (half a step rounds up): where a micro-timed
    or played onset was meant to be."""
    return math.floor(tick * GRID_PER_BEAT / ticks_per_beat + 0.5)


def sixteenth(tick: int, ticks_per_beat: int) -> int:
    """The nearest 16th from tick 0, read from the grid step (a 16th-triplet falls to the
    nearest 16th)."""
    return math.floor(grid_step(tick, ticks_per_beat) / STEPS_PER_GRID_SIXTEENTH + 0.5)


def snap_notes(notes: Iterable[Note], ticks_per_beat: int) -> list[Note]:
    """Onsets and ends moved to the nearest 1/12-beat step (durations at least one step);
    pitch and velocity as written. Sorted."""
    out = []
    for note in notes:
        start = grid_step(note.start, ticks_per_beat)
        end = max(start + 1, grid_step(note.start + note.duration, ticks_per_beat))
        tick = round(start * ticks_per_beat / GRID_PER_BEAT)
        out.append(Note(tick, round(end * ticks_per_beat / GRID_PER_BEAT) - tick, note.pitch, note.velocity))
    return sorted(out)


def split_bars(notes: Iterable[Note], bars: int, ticks_per_beat: int) -> list[list[Note]]:
    """The notes of each bar by their snapped onset (a hit just before a bar line belongs to
    the next bar); onsets past the last bar are dropped."""
    out: list[list[Note]] = [[] for _ in range(bars)]
    for note in notes:
        bar = grid_step(note.start, ticks_per_beat) // GRID_PER_BAR
        if 0 <= bar < bars:
            out[bar].append(note)
    return out


def bar_signature(notes: Iterable[Note], ticks_per_beat: int, drums: bool = False) -> frozenset[tuple[int, int | str]]:
    """The set of (onset step within the bar on the 1/12-beat grid, pitch) of a bar's notes;
    for drums the pitch is replaced by its drum group, so a ride for a hat is still "the
    same cymbal on the same step"."""
    return frozenset((grid_step(n.start, ticks_per_beat) % GRID_PER_BAR, drum_group(n.pitch) if drums else n.pitch)
                     for n in notes)


def bar_similarity(a: Iterable[Note], b: Iterable[Note], ticks_per_beat: int, drums: bool = False) -> float | None:
    """Jaccard index |A & B| / |A | B| of the two bars' `bar_signature`s: 1 = the same notes
    on the same steps, 0 = nothing in common. None when both bars are empty (nothing to
    compare: a rest bar repeated is not counted as a repeat)."""
    sa, sb = bar_signature(a, ticks_per_beat, drums), bar_signature(b, ticks_per_beat, drums)
    if not sa and not sb:
        return None
    return len(sa & sb) / len(sa | sb)


def self_similarity(notes: Iterable[Note], bars: int, lag: int, ticks_per_beat: int, drums: bool = False) -> Mean:
    """Mean `bar_similarity(bar b, bar b + lag)` over every b with both bars in the piece
    (pairs of empty bars skipped). High at lag 1 = a 1-bar loop; high at lag 4 but not at
    lag 1 = a 4-bar phrase that comes back."""
    by_bar = split_bars(notes, bars, ticks_per_beat)
    values = [bar_similarity(by_bar[b], by_bar[b + lag], ticks_per_beat, drums) for b in range(bars - lag)]
    kept = [v for v in values if v is not None]
    return Mean(float(sum(kept)), len(kept))


def bars_repeated_exactly(notes: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Non-empty bars after the first whose set of (onset step, pitch, duration in grid steps)
    equals that of some earlier bar, of all non-empty bars after the first: the share of
    bars a listener hears as a literal repeat."""
    seen: set[frozenset[tuple[int, int, int]]] = set()
    hits = total = 0
    for index, bar in enumerate(split_bars(snap_notes(notes, ticks_per_beat), bars, ticks_per_beat)):
        if not bar:
            continue
        signature = frozenset((grid_step(n.start, ticks_per_beat) % GRID_PER_BAR, n.pitch,
                               grid_step(n.duration, ticks_per_beat)) for n in bar)
        if index >= 1:
            total += 1
            hits += int(signature in seen)
        seen.add(signature)
    return Share(hits, total)


def line(notes: Iterable[Note], ticks_per_beat: int, lowest: bool = False) -> list[Note]:
    """One note per snapped onset, in time order: the highest (a melody as heard) or, with
    `lowest`, the lowest (a bass line)."""
    by_onset: dict[int, Note] = {}
    for note in notes:
        step = grid_step(note.start, ticks_per_beat)
        kept = by_onset.get(step)
        if kept is None or (note.pitch < kept.pitch if lowest else note.pitch > kept.pitch):
            by_onset[step] = note
    return [by_onset[step] for step in sorted(by_onset)]


@dataclass(frozen=True)
class Intervals:
    """Consecutive intervals of a line: repeats (0 semitones), steps (1-2), leaps (>= 5);
    thirds and fourths (3-4) are in none of them. Each a share of all intervals."""

    repeats: Share = Share()
    steps: Share = Share()
    leaps: Share = Share()


def line_intervals(notes: Iterable[Note], ticks_per_beat: int, lowest: bool = False) -> Intervals:
    """`Intervals` of the `line` (highest note per onset; the lowest with `lowest`, for bass)."""
    pitches = [n.pitch for n in line(notes, ticks_per_beat, lowest)]
    moves = [abs(b - a) for a, b in zip(pitches, pitches[1:])]
    total = len(moves)
    return Intervals(Share(sum(1 for m in moves if m == 0), total), Share(sum(1 for m in moves if 1 <= m <= 2), total),
                     Share(sum(1 for m in moves if m >= 5), total))


def _kick_snare_slots(bar: Iterable[Note], ticks_per_beat: int) -> frozenset[tuple[int, str]]:
    out = set()
    for note in bar:
        group = drum_group(note.pitch)
        if group in ("kick", "snare"):
            out.add((sixteenth(note.start, ticks_per_beat) % STEPS_PER_BAR, group))
    return frozenset(out)


def kick_snare_persistence(drums: Iterable[Note], bars: int, ticks_per_beat: int) -> Mean:
    """Mean over consecutive bar pairs of the Jaccard index of their (16th step, kick or
    snare) sets: 1 = the backbone of the beat is kept bar to bar; pairs with no kick or
    snare in either bar are skipped."""
    by_bar = [_kick_snare_slots(bar, ticks_per_beat) for bar in split_bars(drums, bars, ticks_per_beat)]
    values = [len(a & b) / len(a | b) for a, b in zip(by_bar, by_bar[1:]) if a or b]
    return Mean(float(sum(values)), len(values))


def kick_coverage(bass: Iterable[Note], drums: Iterable[Note], ticks_per_beat: int) -> Share:
    """Kick onsets (distinct 16th slots) that have a bass onset in the same 16th slot, of all
    kick onsets: how much of the kick pattern the bass doubles (the other direction of
    `bass_on_kick`)."""
    kicks = {sixteenth(n.start, ticks_per_beat) for n in drums if n.pitch in KICKS}
    onsets = {sixteenth(n.start, ticks_per_beat) for n in bass}
    return Share(len(kicks & onsets), len(kicks))


def relative_key(key: Key) -> Key:
    """The major/minor key with the same notes (C major <-> A minor)."""
    return Key((key.tonic + 9) % 12, "minor") if key.mode == "major" else Key((key.tonic + 3) % 12, "major")


def key_found(notes: Iterable[Note], asked: Key) -> bool:
    """True when `estimate_key` (Krumhansl-Schmuckler with the Krumhansl-Kessler profiles,
    duration-weighted pitch classes) names the asked key or its relative major/minor: the
    notes make the asked key audible (a relative key has the same scale, so a listener may
    hear either). False without notes."""
    pitched = list(notes)
    if not pitched:
        return False
    return estimate_key(pitched) in (asked, relative_key(asked))


def _chord_at(spans: Sequence[ChordSpanLike], tick: int) -> ChordLike | None:
    """The chord sounding at `tick` (start <= tick < end); None outside every span."""
    for span in spans:
        if span.start <= tick < span.end:
            return span.chord
    return None


def chord_tones(chord: ChordLike) -> frozenset[int]:
    """Pitch classes of root, third, fifth and seventh."""
    return frozenset((chord.root + i) % 12 for i in (0, chord.third, chord.fifth, chord.seventh))


def bass_roots_on_downbeats(bass: Iterable[Note], chords: Sequence[ChordSpanLike], bars: int,
                            ticks_per_beat: int) -> Share:
    """Bars whose bass gives the chord's bass note (its slash note, else the root; the root
    also counts) where the harmony is set, of all bars with a chord and a bass note: the
    judged note is the first (lowest-per-onset) bass onset of the bar that sits on the
    downbeat or on a chord change (same 16th) under a chord, compared by pitch class with
    the chord sounding there. A bar whose bass plays nothing there counts as a miss."""
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    bass_line = line(snap_notes(bass, ticks_per_beat), ticks_per_beat, lowest=True)
    hits = total = 0
    for index, notes in enumerate(split_bars(bass_line, bars, ticks_per_beat)):
        lo, hi = index * ticks_per_bar, (index + 1) * ticks_per_bar
        if not notes or not any(s.start < hi and s.end > lo for s in chords):
            continue
        anchors = {sixteenth(lo, ticks_per_beat)} | {sixteenth(s.start, ticks_per_beat) for s in chords
                                                     if lo < s.start < hi}
        judged = [(n, chord) for n in notes if sixteenth(n.start, ticks_per_beat) in anchors
                  for chord in [_chord_at(chords, n.start)] if chord is not None]
        total += 1
        if judged:
            note, chord = judged[0]
            hits += int(note.pitch % 12 in (chord.bass % 12, chord.root % 12))
    return Share(hits, total)


def melody_strong_beat_chord_tones(melody: Iterable[Note], chords: Sequence[ChordSpanLike],
                                   ticks_per_beat: int) -> Share:
    """Melody onsets on a beat (steps 0, 12, 24, 36 of the 48 in a bar) whose pitch class is
    a tone of the chord sounding there (root, third, fifth, seventh), of all melody onsets
    on a beat under a chord: consonance where the ear checks it."""
    hits = total = 0
    for note in snap_notes(melody, ticks_per_beat):
        if grid_step(note.start, ticks_per_beat) % GRID_PER_BAR not in BEAT_POSITIONS:
            continue
        chord = _chord_at(chords, note.start)
        if chord is None:
            continue
        total += 1
        hits += int(note.pitch % 12 in chord_tones(chord))
    return Share(hits, total)


def grid_swing(notes: Iterable[Note], ticks_per_beat: int) -> Share:
    """`swing` of the onsets snapped to the 1/12-beat grid: micro-timing does not read as
    straight, a swung 8th played at 62% reads as swung (it snaps to the triplet)."""
    return swing(snap_notes(notes, ticks_per_beat), ticks_per_beat)


def distinct_velocities(drums: Iterable[Note], bars: int, ticks_per_beat: int, span_bars: int = SPAN_BARS) -> Mean:
    """Mean number of distinct drum velocities per complete `span_bars`-bar span (bars by
    snapped onset): 1-3 is a programmed beat, dozens a played one. Nothing for pieces shorter
    than a span."""
    by_bar = split_bars(drums, bars, ticks_per_beat)
    counts = [len({n.velocity for bar in by_bar[start:start + span_bars] for n in bar})
              for start in range(0, bars - span_bars + 1, span_bars)]
    return Mean(float(sum(counts)), len(counts))


def duplicate_drum_hits(drums: Iterable[Note]) -> Share:
    """Drum hits that repeat an earlier hit of the same pitch at the same tick (as written),
    of all hits: doubled hits flam or phase in a sampler and are never intended."""
    counts = Counter((n.start, n.pitch) for n in drums)
    return Share(sum(c - 1 for c in counts.values()), sum(counts.values()))


def overlapping_same_pitch(notes: Iterable[Note]) -> int:
    """Notes (as written) that start before an earlier note of the same pitch has ended, or
    at the same tick: a synth or sampler cuts or doubles them, and a DAW shows a mess."""
    ends: dict[int, int] = defaultdict(lambda: -1)
    count = 0
    for note in sorted(notes):
        if note.start < ends[note.pitch]:
            count += 1
        ends[note.pitch] = max(ends[note.pitch], note.start + note.duration)
    return count


def part_notes_per_bar(notes: Sequence[Note], bars: int) -> Mean:
    """Notes of one part per bar (pools as notes over bars)."""
    return Mean(float(len(notes)), bars)


def snare_or_clap_on_beat3(drums: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Bars with a snare or clap (38, 39, 40) on the 16th step 8 of 16 (beat 3), of all bars:
    the half-time backbeat that marks trap."""
    by_bar = split_bars(drums, bars, ticks_per_beat)
    return Share(sum(1 for bar in by_bar if any(n.pitch in SNARE_OR_CLAP and sixteenth(n.start, ticks_per_beat)
                                                % STEPS_PER_BAR == 8 for n in bar)), bars)


def hihat_rolls(drums: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Bars in which a hi-hat roll starts, of all bars: 3 or more consecutive closed-hat
    onsets (snapped, distinct) less than a 16th apart (32nds, 16th triplets)."""
    steps = sorted({grid_step(n.start, ticks_per_beat) for n in drums if n.pitch in CLOSED_HATS})
    roll_bars: set[int] = set()
    run_start = 0
    for index in range(1, len(steps) + 1):
        if index < len(steps) and steps[index] - steps[index - 1] < STEPS_PER_GRID_SIXTEENTH:
            continue
        if index - run_start >= 3:
            roll_bars.add(steps[run_start] // GRID_PER_BAR)
        run_start = index
    return Share(len({b for b in roll_bars if 0 <= b < bars}), bars)


# ------------------------------------------------------------------ every figure of a piece

KICK_LOCKED_GENRES: tuple[str, ...] = ("hiphop", "trap", "house", "techno", "funk", "rock", "pop", "soul", "dnb")
ROLES_WITH_NOTES: tuple[str, ...] = ("drums", "bass", "melody")
MELODY_LAGS: tuple[int, ...] = (1, 2, 4)
BASS_LAG = 4

# name -> what it means, in the words of the tables
FIGURES: dict[str, str] = {
    "melody_self_similarity": "melody self-similarity across 1/2/4 bars (mean of the three)",
    "melody_self_similarity_lag1": "melody self-similarity, 1 bar apart",
    "melody_self_similarity_lag2": "melody self-similarity, 2 bars apart",
    "melody_self_similarity_lag4": "melody self-similarity, 4 bars apart",
    "melody_bars_repeated": "melody bars repeated exactly",
    "melody_repeats": "melody repeated notes",
    "melody_steps": "melody steps (1-2 semitones)",
    "melody_leaps": "melody leaps (>= 5 semitones)",
    "bass_self_similarity_lag4": "bass self-similarity, 4 bars apart",
    "bass_repeats": "bass repeated notes",
    "bass_steps": "bass steps (1-2 semitones)",
    "bass_leaps": "bass leaps (>= 5 semitones)",
    "kick_snare_kept": "kick+snare pattern kept bar to bar",
    "bass_on_kick": "bass onsets on a kick",
    "kicks_covered": "kicks covered by a bass onset",
    "key_found": "key-finding gives the asked key or its relative",
    "key_found_minor": "key-finding gives the asked key or its relative (minor keys)",
    "in_scale": "bass+melody notes in the asked scale",
    "drum_swing": "drum off-beats on swung positions",
    "drum_velocities_per_8_bars": "distinct drum velocities per 8 bars",
    "drums_notes_per_bar": "drum notes per bar",
    "bass_notes_per_bar": "bass notes per bar",
    "melody_notes_per_bar": "melody notes per bar",
    "drum_duplicate_hits": "duplicate drum hits (share of hits)",
    "drum_duplicate_pieces": "pieces with duplicate drum hits",
    "bass_overlap_pieces": "pieces with overlapping same-pitch bass notes",
    "melody_overlap_pieces": "pieces with overlapping same-pitch melody notes",
    "bass_overlaps": "overlapping same-pitch bass notes (share of notes)",
    "melody_overlaps": "overlapping same-pitch melody notes (share of notes)",
    "snare_on_beat3": "bars with a snare/clap on beat 3",
    "hihat_roll_bars": "bars with a hi-hat roll",
    "bass_roots_on_downbeats": "bass roots on downbeats / chord changes",
    "melody_chord_tones": "melody strong-beat chord tones",
}


# How the tables print a figure: counts per bar / per 8 bars with one decimal, similarities
# (0-1) with two, every other figure is a share, in percent.
COUNT_FIGURES: frozenset[str] = frozenset({"drum_velocities_per_8_bars", "drums_notes_per_bar", "bass_notes_per_bar",
                                           "melody_notes_per_bar"})
SIMILARITY_FIGURES: frozenset[str] = frozenset({
    "melody_self_similarity", "melody_self_similarity_lag1", "melody_self_similarity_lag2",
    "melody_self_similarity_lag4", "bass_self_similarity_lag4", "kick_snare_kept"})


def format_figure(name: str, value: float | None) -> str:
    """A figure as the tables show it ("-" for nothing measured)."""
    if value is None or math.isnan(value):
        return "-"
    if name in COUNT_FIGURES:
        return f"{value:.1f}"
    if name in SIMILARITY_FIGURES:
        return f"{value:.2f}"
    return f"{100 * value:.0f}%"


def _melody_figures(melody: list[Note], bars: int, tpb: int) -> dict[str, Stat]:
    out: dict[str, Stat] = {f"melody_self_similarity_lag{lag}": self_similarity(melody, bars, lag, tpb)
                            for lag in MELODY_LAGS}
    intervals = line_intervals(melody, tpb)
    overlaps = overlapping_same_pitch(melody)
    out.update(melody_bars_repeated=bars_repeated_exactly(melody, bars, tpb), melody_repeats=intervals.repeats,
               melody_steps=intervals.steps, melody_leaps=intervals.leaps,
               melody_overlaps=Share(overlaps, len(melody)), melody_overlap_pieces=Share(int(overlaps > 0), 1))
    return out


def _bass_figures(bass: list[Note], bars: int, tpb: int) -> dict[str, Stat]:
    intervals = line_intervals(bass, tpb, lowest=True)
    overlaps = overlapping_same_pitch(bass)
    return {"bass_self_similarity_lag4": self_similarity(bass, bars, BASS_LAG, tpb), "bass_repeats": intervals.repeats,
            "bass_steps": intervals.steps, "bass_leaps": intervals.leaps, "bass_overlaps": Share(overlaps, len(bass)),
            "bass_overlap_pieces": Share(int(overlaps > 0), 1)}


def _drum_figures(drums: list[Note], bars: int, tpb: int) -> dict[str, Stat]:
    duplicates = duplicate_drum_hits(drums)
    return {"kick_snare_kept": kick_snare_persistence(drums, bars, tpb), "drum_swing": grid_swing(drums, tpb),
            "drum_velocities_per_8_bars": distinct_velocities(drums, bars, tpb),
            "drum_duplicate_hits": duplicates, "drum_duplicate_pieces": Share(int(duplicates.hits > 0), 1),
            "snare_on_beat3": snare_or_clap_on_beat3(drums, bars, tpb), "hihat_roll_bars": hihat_rolls(drums, bars, tpb)}


def piece_figures(tracks: dict[str, list[Note]], bars: int, ticks_per_beat: int, key: Key | None = None,
                  chords: Sequence[ChordSpanLike] | None = None) -> dict[str, Stat]:
    """Every figure of `FIGURES` that the piece can give, as poolable `Share`/`Mean`.

    A role absent from `tracks` gives no figures (real sets lack parts: GMD has only drums),
    while a present but empty part does (a generated piece with a silent bass counts).
    Kick figures need a kick in the drums; key figures an asked key; chord figures chord
    spans. Drums never count as pitched notes."""
    out: dict[str, Stat] = {}
    for role in ROLES_WITH_NOTES:
        if role in tracks:
            out[f"{role}_notes_per_bar"] = part_notes_per_bar(tracks[role], bars)
    melody, bass, drums = tracks.get("melody"), tracks.get("bass"), tracks.get("drums")
    if melody is not None:
        out.update(_melody_figures(melody, bars, ticks_per_beat))
    if bass is not None:
        out.update(_bass_figures(bass, bars, ticks_per_beat))
    if drums is not None:
        out.update(_drum_figures(drums, bars, ticks_per_beat))
    if bass is not None and drums is not None and any(n.pitch in KICKS for n in drums):
        snapped_drums = snap_notes(drums, ticks_per_beat)
        out["bass_on_kick"] = bass_on_kick(snap_notes(bass, ticks_per_beat), snapped_drums)
        out["kicks_covered"] = kick_coverage(bass, drums, ticks_per_beat)
    pitched = (bass or []) + (melody or [])
    if key is not None and (bass is not None or melody is not None):
        out["in_scale"] = in_key(pitched, key)
        out["key_found"] = Share(int(key_found(pitched, key)), 1)
        if key.mode == "minor":
            out["key_found_minor"] = out["key_found"]
    if chords:
        if bass is not None:
            out["bass_roots_on_downbeats"] = bass_roots_on_downbeats(bass, chords, bars, ticks_per_beat)
        if melody is not None:
            out["melody_chord_tones"] = melody_strong_beat_chord_tones(melody, chords, ticks_per_beat)
    return out


def pool_figures(pieces: Iterable[dict[str, Stat]]) -> dict[str, Stat]:
    """Figures of many pieces added up name by name (ratios of sums)."""
    out: dict[str, Stat] = {}
    for figures in pieces:
        for name, stat in figures.items():
            out[name] = out[name] + stat if name in out else stat
    return out


def figure_values(pooled: dict[str, Stat]) -> dict[str, float]:
    """Pooled figures as numbers, plus "melody_self_similarity" = the mean of the lag 1, 2
    and 4 values that exist (the "self-similarity across 1/2/4 bars" of the tables)."""
    values = {name: stat.value for name, stat in pooled.items()}
    lags = [values[f"melody_self_similarity_lag{lag}"] for lag in MELODY_LAGS
            if not math.isnan(values.get(f"melody_self_similarity_lag{lag}", math.nan))]
    if lags:
        values["melody_self_similarity"] = float(np.mean(lags))
    return values


# ------------------------------------------------------------------ classifier features

PITCHED = ("bass", "melody")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"drums_{g}_step{s}" for g in DRUM_GROUPS for s in range(STEPS_PER_BAR)),
    *(f"{r}_step{s}" for r in PITCHED for s in range(STEPS_PER_BAR)),
    *(f"{r}_notes_per_bar" for r in ("drums", *PITCHED)),
    *(f"{r}_{stat}" for r in PITCHED for stat in ("mean_pitch", "pitch_spread", "mean_beats")),
    *(f"{r}_mean_velocity" for r in ("drums", *PITCHED)),
    "drums_swing", "melody_swing", "bass_on_kick",
)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def window_features(tracks: dict[str, list[Note]], ticks_per_beat: int, bars: int) -> np.ndarray:
    """One vector (named by FEATURE_NAMES) describing a window: per-bar onset histograms of
    the drum groups, bass and melody; notes per bar; register, spread and note length of the
    pitched parts; loudness; swing; bass on kick. Tempo is left out on purpose: it is a
    condition, not something the composer generates. An absent part gives zeros. Onsets are
    snapped to the 1/12-beat grid first, so a grooved (micro-timed) window reads like the
    on-grid training windows the classifier learnt from."""
    tracks = {role: snap_notes(notes, ticks_per_beat) for role, notes in tracks.items()}
    drums, bass, melody = (tracks.get(r, []) for r in ("drums", *PITCHED))
    parts = [group_histograms(drums, ticks_per_beat)[g] / bars for g in DRUM_GROUPS]
    parts += [onset_histogram(tracks.get(r, []), ticks_per_beat) / bars for r in PITCHED]
    values = [len(drums) / bars, len(bass) / bars, len(melody) / bars]
    for notes in (bass, melody):
        pitches = [n.pitch for n in notes]
        values += [_mean(pitches), float(np.std(pitches)) if pitches else 0.0,
                   _mean([n.duration / ticks_per_beat for n in notes])]
    values += [_mean([n.velocity for n in notes]) for notes in (drums, bass, melody)]
    for share in (swing(drums, ticks_per_beat), swing(melody, ticks_per_beat), bass_on_kick(bass, drums)):
        values.append(0.0 if share.total == 0 else share.value)
    return np.concatenate([*parts, np.asarray(values)]).astype(np.float32)


@dataclass
class GenreClassifier:
    """Multinomial logistic regression on standardised features (L2-regularised, fitted
    full-batch with L-BFGS). Written here because scikit-learn is not a dependency; it is
    a dozen lines of torch. l2 = 1e-2 had the best held-out accuracy on the default corpus
    (validation windows: 1e-4 76.5%, 1e-3 77.5%, 1e-2 77.8%, 1e-1 73.8%)."""

    labels: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)

    @classmethod
    def fit(cls, features: np.ndarray, labels: list[str], l2: float = 1e-2, steps: int = 200) -> GenreClassifier:
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError(f"classifier: needs at least two genres to tell apart, got {names}")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-6] = 1.0
        x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
        y = torch.tensor([names.index(label) for label in labels])
        weight = torch.zeros(x.shape[1], len(names), requires_grad=True)
        bias = torch.zeros(len(names), requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(names, mean, scale, weight.detach().numpy().copy(), bias.detach().numpy().copy())

    def predict(self, features: np.ndarray) -> list[str]:
        logits = ((features - self.mean) / self.scale) @ self.weight + self.bias
        return [self.labels[i] for i in logits.argmax(axis=1)]
