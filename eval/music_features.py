"""Musical features of arrangements, for comparing generated music with its training data
and with real music (`bench/quality.py`, the "Symbolic" section of `pipeline eval`): where
drum hits fall in the bar, swing, notes per bar, notes in key, bass notes that land on
kicks, how much bars repeat, how lines move, how the parts follow the chords, and a small
genre classifier over a window's features.

Times are integer ticks; every function takes `ticks_per_beat`, bars are 4/4. Shares are
returned as `Share` (hits, total) so that they pool over many windows as a ratio of sums
instead of a mean of ratios (a 2-note bass line must not weigh as much as a 40-note one).
The swing definition is the corpus builder's (`symbolic.recipes.corpus_rules.swing_ratio`), made
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
from functools import lru_cache
from typing import Protocol

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon

from stemforge.symbolic.core.ticks import BEATS_PER_BAR, GRID_PER_BEAT
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.drum_map import TOMS, drum_voice
from stemforge.symbolic.music.genres import genre_table
from stemforge.symbolic.music.keys import Key
from stemforge.symbolic.recipes.corpus import estimate_key

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


@dataclass(frozen=True)
class Median:
    """Median of per-item values (per piece, per 8-bar span); pools by keeping every value,
    so the median is over all items of all pieces. NaN for no items."""

    values: tuple[float, ...] = ()

    def __add__(self, other: Median) -> Median:
        return Median(self.values + other.values)

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def value(self) -> float:
        return float(np.median(self.values)) if self.values else float("nan")


Stat = Share | Mean | Median


class ChordLike(Protocol):
    """The chord fields the measures read (`symbolic.recipes.corpus_rules.Chord`, `symbolic.music.harmony.Chord`):
    pitch classes of root and bass note, third/fifth/seventh in semitones above the root."""

    root: int
    third: int
    fifth: int
    seventh: int
    bass: int


class ChordSpanLike(Protocol):
    """A chord sounding over [start, end) ticks (`symbolic.recipes.corpus_rules.ChordSpan`, or a
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
    notes = list(notes)
    step = ticks_per_beat // GRID_PER_BEAT if ticks_per_beat % GRID_PER_BEAT == 0 else 0
    if step and all(n.start % step == 0 and n.duration % step == 0 and n.duration > 0 for n in notes):
        return sorted(notes)  # already on the grid (composed or quantized notes): nothing moves
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


def exact_bar_signatures(notes: Iterable[Note], bars: int, ticks_per_beat: int) -> list[frozenset | None]:
    """Each bar's set of (onset step in the bar, pitch, duration in steps) on the 1/12-beat
    grid, None for a bar without onsets: two bars with equal signatures are a literal repeat."""
    out: list[frozenset | None] = []
    for bar in split_bars(snap_notes(notes, ticks_per_beat), bars, ticks_per_beat):
        out.append(frozenset((grid_step(n.start, ticks_per_beat) % GRID_PER_BAR, n.pitch,
                              grid_step(n.duration, ticks_per_beat)) for n in bar) if bar else None)
    return out


def bars_repeated_exactly(notes: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Non-empty bars after the first whose set of (onset step, pitch, duration in grid steps)
    equals that of some earlier bar, of all non-empty bars after the first: the share of
    bars a listener hears as a literal repeat."""
    seen: set[frozenset] = set()
    hits = total = 0
    for index, signature in enumerate(exact_bar_signatures(notes, bars, ticks_per_beat)):
        if signature is None:
            continue
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

# genres whose real bass and kick lock (`reference.kick_locked` in configs/genres.yaml)
KICK_LOCKED_GENRES: tuple[str, ...] = tuple(g.name for g in genre_table().genres.values()
                                            if g.reference and g.reference.kick_locked)
ROLES_WITH_NOTES: tuple[str, ...] = ("drums", "bass", "melody")
MELODY_LAGS: tuple[int, ...] = (1, 2, 4)
BASS_LAG = 4

# The figures of `style_figures` (issue 26's table), name -> what it means.
STYLE_FIGURES: dict[str, str] = {
    "backbeat_bars": "bars with a snare/clap/rim on beats 2 and 4 (backbeat)",
    "half_time_bars": "half-time bars (snare/clap/rim on beat 3, none on 2 and 4)",
    "kickless_pieces": "pieces without a kick",
    "offbeat_8ths_swung": "off-beat 8ths swung (at 7/12 of the beat or later)",
    "swing_phase": "swing phase (mean off-beat 8th position; 0.5 straight, 0.667 triplet)",
    "phrase_end_variations_4": "4-bar phrase ends with a fill or variation",
    "phrase_end_variations_8": "8-bar phrase ends with a fill or variation",
    "melody_repeat_lag4": "melody bars exactly repeating the bar 4 earlier",
    "melody_similarity4_median": "melody 4-bar similarity per piece (median)",
    "melody_similar4_pieces": "pieces with melody 4-bar similarity >= 0.5",
    "melody16_copied_bars": "16 bars: melody bars copying an earlier bar",
    "melody16_repeat_lag8": "16 bars: melody bars exactly repeating the bar 8 earlier",
    "melody_distinct_pitches": "melody distinct pitches per 8 bars",
    "melody_range": "melody range per 8 bars (semitones, median)",
    "melody_median_pitch": "melody median pitch (MIDI; median of pieces)",
    "melody_rest_bars": "melody bars at rest (no onset)",
    "melody_same_downbeat_pieces": "pieces with the same melody pitch on every downbeat",
    "melody_high_point_phrases": "4-bar melody phrases with a clear high point",
    "chords_per_4_bars": "chords per 4 bars",
    "one_chord_pieces": "pieces whose progression is one chord",
    "bass_distinct_pitches": "bass distinct pitches per 8 bars",
    "bass_few_pitch_pieces": "pieces with <= 2 bass pitches",
    "bass_tonic_downbeats": "bars whose downbeat bass is the tonic",
    "chord_scale_notes": "bass+melody notes in the chord's scale over out-of-key chords",
    "altered_notes_followed": "notes on a letter an out-of-key chord alters that take the chord's note (C# not C "
                              "over A7 in C)",
    "out_of_key_clashes": "melody beat notes clashing with an out-of-key chord",
    "strong_beat_clashes": "melody beat notes clashing with the chord (any chord)",
}

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
    **STYLE_FIGURES,
}


# How the tables print a figure: counts per bar / per 8 bars with one decimal, similarities
# (0-1) with two, every other figure is a share, in percent.
COUNT_FIGURES: frozenset[str] = frozenset({"drum_velocities_per_8_bars", "drums_notes_per_bar", "bass_notes_per_bar",
                                           "melody_notes_per_bar", "melody_distinct_pitches", "melody_range",
                                           "melody_median_pitch", "bass_distinct_pitches", "chords_per_4_bars"})
PHASE_FIGURES: frozenset[str] = frozenset({"swing_phase"})  # three decimals: 0.561 vs 0.578 matters
SIMILARITY_FIGURES: frozenset[str] = frozenset({
    "melody_self_similarity", "melody_self_similarity_lag1", "melody_self_similarity_lag2",
    "melody_self_similarity_lag4", "bass_self_similarity_lag4", "kick_snare_kept", "melody_similarity4_median"})


def format_figure(name: str, value: float | None) -> str:
    """A figure as the tables show it ("-" for nothing measured)."""
    if value is None or math.isnan(value):
        return "-"
    if name in COUNT_FIGURES:
        return f"{value:.1f}"
    if name in SIMILARITY_FIGURES:
        return f"{value:.2f}"
    if name in PHASE_FIGURES:
        return f"{value:.3f}"
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


# ------------------------------------------------------------------ style: genre, phrases, harmony
# The figures of issue 26: what makes a groove its genre, a melody sing and harmony move,
# held against real music per genre by bench/quality.py (`style_figures`). Drum hits are read
# as played, within a tolerance of the beat, so GMD's timing counts the way it is heard.

BACKBEAT_TOLERANCE_BEATS = 1 / 8  # a snare this close to a beat is on it (60 ticks at 480 a beat)
# Off-beat 8ths are the onsets 0.4-0.75 of the way through a beat: a straight 8th sits at 0.5, a
# triplet (swung) 8th at 0.667; the window keeps both when played a little early or late and
# leaves out the 16ths on either side (0.25 and 0.75, the last 16th of a straight beat). One is
# swung from 7/12 on, halfway between straight and triplet.
OFFBEAT_EIGHTH_WINDOW: tuple[float, float] = (0.4, 0.75)
SWUNG_FROM = 7 / 12
FILL_SIMILARITY = 0.5  # a phrase end whose second half is less alike than this to every other bar's varies
SNARE_ROLL_HITS = 3  # snare hits, each within a 16th of the last
PHRASE_BARS = 4
HIGH_POINT_MAX_NOTES = 2
HIGH_POINT_SEMITONES = 3
FEW_BASS_PITCHES = 2
# Letters C D E F G A B as pitch classes, and the letter (0-6) of each key's tonic as keys are
# written (fewest accidentals; minor keys by their leading tone: C# minor, G# minor).
LETTER_PITCH_CLASSES: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
TONIC_LETTERS: dict[str, tuple[int, ...]] = {"major": (0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 6),
                                             "minor": (0, 0, 1, 2, 2, 3, 3, 4, 4, 5, 6, 6)}
SCALE_STEPS: dict[str, tuple[int, ...]] = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Letters above the root of each interval in semitones (b2 a 2nd, #4 a 4th, b6 a 6th): how a slash
# bass outside the chord is spelled.
INTERVAL_LETTERS: tuple[int, ...] = (0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 6)


def snare_beats(drums: Iterable[Note], bars: int, ticks_per_beat: int,
                tolerance_beats: float = BACKBEAT_TOLERANCE_BEATS) -> list[frozenset[int]]:
    """For each bar, the beats (0-3) that have a snare, clap or rim hit (37-40) within
    `tolerance_beats` of the beat, as played: a backbeat a little early or late is on it."""
    out: list[set[int]] = [set() for _ in range(bars)]
    tolerance = tolerance_beats * ticks_per_beat
    for note in drums:
        if note.pitch not in SNARES:
            continue
        beat = math.floor(note.start / ticks_per_beat + 0.5)
        if abs(note.start - beat * ticks_per_beat) <= tolerance:
            bar, index = divmod(beat, BEATS_PER_BAR)
            if 0 <= bar < bars:
                out[bar].add(index)
    return [frozenset(beats) for beats in out]


def backbeat_bars(drums: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Bars with a snare/clap/rim hit on beat 2 and on beat 4 (`snare_beats`), of all bars."""
    return Share(sum(1 for beats in snare_beats(drums, bars, ticks_per_beat) if {1, 3} <= beats), bars)


def half_time_bars(drums: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Bars with a snare/clap/rim hit on beat 3 and none on beats 2 and 4, of all bars: the
    half-time backbeat."""
    return Share(sum(1 for beats in snare_beats(drums, bars, ticks_per_beat)
                     if 2 in beats and not beats & {1, 3}), bars)


def kickless(drums: Iterable[Note]) -> Share:
    """1 of 1 for a drum part without a kick (35, 36), else 0 of 1: pooled, the pieces of a
    genre that have no kick at all."""
    return Share(int(not any(n.pitch in KICKS for n in drums)), 1)


def offbeat_eighth_phases(notes: Iterable[Note], ticks_per_beat: int) -> list[float]:
    """Where each onset inside `OFFBEAT_EIGHTH_WINDOW` sits in its beat (0-1, as played):
    the off-beat 8ths. Every hit counts (a hat and a snare together are two)."""
    low, high = OFFBEAT_EIGHTH_WINDOW
    phases = [(n.start % ticks_per_beat) / ticks_per_beat for n in notes]
    return [p for p in phases if low <= p < high]


def eighth_swing(notes: Iterable[Note], ticks_per_beat: int) -> Share:
    """Off-beat 8ths at `SWUNG_FROM` (7/12 of a beat) or later, of all off-beat 8ths."""
    phases = offbeat_eighth_phases(notes, ticks_per_beat)
    return Share(sum(1 for p in phases if p >= SWUNG_FROM), len(phases))


def swing_phase(notes: Iterable[Note], ticks_per_beat: int) -> Mean:
    """Mean position of the off-beat 8ths in their beat: 0.5 straight, 0.667 triplet swing."""
    phases = offbeat_eighth_phases(notes, ticks_per_beat)
    return Mean(float(sum(phases)), len(phases))


def _second_half(bar: Iterable[Note], ticks_per_beat: int) -> frozenset[tuple[int, str]]:
    return frozenset((step, drum_voice(n.pitch)) for n in bar
                     for step in [sixteenth(n.start, ticks_per_beat) % STEPS_PER_BAR] if step >= STEPS_PER_BAR // 2)


def _snare_roll(bar: Iterable[Note], ticks_per_beat: int) -> bool:
    """SNARE_ROLL_HITS or more snare hits in the bar's second half, each within a 16th of the last."""
    steps = sorted({grid_step(n.start, ticks_per_beat) % GRID_PER_BAR for n in bar if n.pitch in SNARES})
    steps = [s for s in steps if s >= GRID_PER_BAR // 2]
    run = 1
    for a, b in zip(steps, steps[1:]):
        run = run + 1 if b - a <= STEPS_PER_GRID_SIXTEENTH else 1
        if run >= SNARE_ROLL_HITS:
            return True
    return False


def phrase_end_variations(drums: Iterable[Note], bars: int, ticks_per_beat: int, phrase_bars: int) -> Share:
    """Phrase ends with a fill or a variation, of all phrase ends: the last bar of each complete
    `phrase_bars`-bar phrase varies when its second half (beats 3-4, as (16th, drum voice)) has
    a Jaccard index below FILL_SIMILARITY with the second half of every other bar of the
    phrase, or when it adds toms or a snare roll that no other bar of the phrase has. A phrase
    end that copies a bar of its phrase scores 0, a played fill 1 (GMD's fill files: see
    tests). Phrases without drums are skipped."""
    by_bar = split_bars(drums, bars, ticks_per_beat)
    hits = total = 0
    for start in range(0, bars - phrase_bars + 1, phrase_bars):
        phrase = by_bar[start:start + phrase_bars]
        end, others = phrase[-1], phrase[:-1]
        if not any(phrase):
            continue
        total += 1
        halves = [_second_half(bar, ticks_per_beat) for bar in others]
        own = _second_half(end, ticks_per_beat)
        alike = max((len(own & h) / len(own | h) if own | h else 1.0 for h in halves), default=1.0)
        toms_added = any(n.pitch in TOMS for n in end) and not any(n.pitch in TOMS for bar in others for n in bar)
        roll_added = _snare_roll(end, ticks_per_beat) and not any(_snare_roll(bar, ticks_per_beat) for bar in others)
        hits += int(alike < FILL_SIMILARITY or toms_added or roll_added)
    return Share(hits, total)


def bars_repeating_at_lag(notes: Iterable[Note], bars: int, ticks_per_beat: int, lag: int) -> Share:
    """Non-empty bars b >= lag whose notes equal bar b - lag's (`exact_bar_signatures`: step,
    pitch and duration on the 1/12-beat grid), of all non-empty bars from bar lag + 1 on."""
    signatures = exact_bar_signatures(notes, bars, ticks_per_beat)
    later = [(signatures[b], signatures[b - lag]) for b in range(lag, bars) if signatures[b] is not None]
    return Share(sum(1 for now, before in later if now == before), len(later))


def _spans(notes: Iterable[Note], bars: int, ticks_per_beat: int, span_bars: int) -> list[list[Note]]:
    by_bar = split_bars(notes, bars, ticks_per_beat)
    return [[n for bar in by_bar[start:start + span_bars] for n in bar]
            for start in range(0, bars - span_bars + 1, span_bars)]


def distinct_pitches(notes: Iterable[Note], bars: int, ticks_per_beat: int, span_bars: int = SPAN_BARS) -> Mean:
    """Mean number of distinct pitches (not pitch classes) per complete `span_bars`-bar span."""
    counts = [len({n.pitch for n in span}) for span in _spans(notes, bars, ticks_per_beat, span_bars)]
    return Mean(float(sum(counts)), len(counts))


def pitch_ranges(notes: Iterable[Note], bars: int, ticks_per_beat: int, span_bars: int = SPAN_BARS) -> Median:
    """Highest minus lowest pitch (semitones) of each complete `span_bars`-bar span with notes."""
    return Median(tuple(float(max(n.pitch for n in span) - min(n.pitch for n in span))
                        for span in _spans(notes, bars, ticks_per_beat, span_bars) if span))


def median_pitch(notes: Sequence[Note]) -> Median:
    """The median MIDI pitch of the part (one value per piece; pooled, the median of pieces)."""
    return Median((float(np.median([n.pitch for n in notes])),) if notes else ())


def rest_bars(notes: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """Bars without an onset, of all bars: where a line breathes."""
    return Share(sum(1 for bar in split_bars(notes, bars, ticks_per_beat) if not bar), bars)


def same_downbeat_pitch(notes: Iterable[Note], bars: int, ticks_per_beat: int) -> Share:
    """1 of 1 when every downbeat onset of the line (the highest note starting on a bar's
    first grid step) has the same pitch, 0 of 1 when not; no count with fewer than two bars
    starting on their downbeat."""
    downbeats = [max(n.pitch for n in bar) for bar in
                 ([n for n in bar if grid_step(n.start, ticks_per_beat) % GRID_PER_BAR == 0]
                  for bar in split_bars(notes, bars, ticks_per_beat)) if bar]
    if len(downbeats) < 2:
        return Share()
    return Share(int(len(set(downbeats)) == 1), 1)


def high_point_phrases(notes: Iterable[Note], bars: int, ticks_per_beat: int, phrase_bars: int = PHRASE_BARS) -> Share:
    """Complete `phrase_bars`-bar phrases (with notes) that have a clear high point, of all of
    them: on the line (highest note per onset), the phrase's highest pitch is reached by at most
    HIGH_POINT_MAX_NOTES notes and lies HIGH_POINT_SEMITONES or more above the phrase's median
    pitch. A line that keeps touching one ceiling, or never leaves its middle, has none."""
    hits = total = 0
    for phrase in _spans(line(notes, ticks_per_beat), bars, ticks_per_beat, phrase_bars):
        if not phrase:
            continue
        pitches = [n.pitch for n in phrase]
        top = max(pitches)
        total += 1
        hits += int(pitches.count(top) <= HIGH_POINT_MAX_NOTES and top - float(np.median(pitches)) >= HIGH_POINT_SEMITONES)
    return Share(hits, total)


def chord_identity(chord: ChordLike) -> tuple[int, int, int]:
    """Root and triad (third, fifth): C and Cmaj7 or C/E are one chord, C and Cm are two."""
    return chord.root % 12, chord.third, chord.fifth


def chord_segments(spans: Sequence[ChordSpanLike]) -> list[tuple[int, int, tuple[int, int, int]]]:
    """(start, end, identity) with consecutive spans of one `chord_identity` merged."""
    out: list[tuple[int, int, tuple[int, int, int]]] = []
    for span in sorted(spans, key=lambda s: s.start):
        identity = chord_identity(span.chord)
        if out and out[-1][2] == identity and out[-1][1] >= span.start:
            out[-1] = (out[-1][0], max(out[-1][1], span.end), identity)
        else:
            out.append((span.start, span.end, identity))
    return out


def chords_per_window(spans: Sequence[ChordSpanLike], bars: int, ticks_per_beat: int, window_bars: int = 4) -> Mean:
    """Mean number of chords (`chord_segments`) sounding in each complete `window_bars`-bar
    window; a chord held across a window's edge counts in both windows."""
    ticks = window_bars * BEATS_PER_BAR * ticks_per_beat
    segments = chord_segments(spans)
    counts = [sum(1 for lo, hi, _ in segments if lo < (w + 1) * ticks and hi > w * ticks)
              for w in range(bars // window_bars)]
    return Mean(float(sum(counts)), len(counts))


def one_chord(spans: Sequence[ChordSpanLike]) -> Share:
    """1 of 1 when the whole progression is one chord (`chord_identity`), else 0 of 1."""
    if not spans:
        return Share()
    return Share(int(len({chord_identity(s.chord) for s in spans}) == 1), 1)


def tonic_downbeats(bass: Iterable[Note], bars: int, ticks_per_beat: int, key: Key) -> Share:
    """Bars whose bass at the downbeat (the lowest note sounding there: starting on it or held
    over it, on the 1/12-beat grid) is the key's tonic (any octave), of bars with a bass note
    sounding at the downbeat."""
    snapped = snap_notes(bass, ticks_per_beat)
    ticks_per_bar = ticks_per_beat * BEATS_PER_BAR
    hits = total = 0
    for bar in range(bars):
        tick = bar * ticks_per_bar
        sounding = [n.pitch for n in snapped if n.start <= tick < n.start + n.duration]
        if sounding:
            total += 1
            hits += int(min(sounding) % 12 == key.tonic)
    return Share(hits, total)


def sounding_tones(chord: ChordLike) -> frozenset[int]:
    """Pitch classes the chord plays: root, third, fifth, the seventh when it is a 7th (or 6th)
    chord (`has_seventh`; a chord type without that field always has it), and its bass note."""
    offsets = (0, chord.third, chord.fifth) + ((chord.seventh,) if getattr(chord, "has_seventh", True) else ())
    return frozenset((chord.root + o) % 12 for o in offsets) | {chord.bass % 12}


@dataclass(frozen=True)
class _PlainChord:
    root: int
    third: int
    fifth: int
    seventh: int
    bass: int
    has_seventh: bool


def key_scale_by_letter(key: Key) -> list[int]:
    """The key's scale as a pitch class per letter C, D, E, F, G, A, B (index 0-6)."""
    tonic_letter = TONIC_LETTERS[key.mode][key.tonic]
    out = [0] * 7
    for degree, step in enumerate(SCALE_STEPS[key.mode]):
        out[(tonic_letter + degree) % 7] = (key.tonic + step) % 12
    return out


def _chord_letters(chord: ChordLike) -> list[tuple[int, int]]:
    """(letters above the root, pitch class) of each chord tone, spelled from the root: the
    third a 3rd up (a 2nd for sus2, a 4th for sus4), the fifth a 5th up, the seventh a 7th up
    (a 6th for 6 chords; the diminished 7th a 7th)."""
    third_letters = {2: 1, 3: 2, 4: 2, 5: 3}.get(chord.third, 2)
    tones = [(0, chord.root % 12), (third_letters, (chord.root + chord.third) % 12), (4, (chord.root + chord.fifth) % 12)]
    if getattr(chord, "has_seventh", True):
        diminished_seventh = (chord.third, chord.fifth, chord.seventh) == (3, 6, 9)
        letters = 5 if chord.seventh <= 9 and not diminished_seventh else 6
        tones.append((letters, (chord.root + chord.seventh) % 12))
    return tones


def chord_scale(chord: ChordLike, key: Key) -> frozenset[int] | None:
    """The scale a chord with tones outside the key asks for, None when every chord tone is in
    the key: the key's scale with the note of each chord tone's letter replaced by that tone,
    the tones spelled by letter from the chord's root (A7 in C major: C# on the letter C, so C
    major becomes C# D E F G A B; E in A minor: G becomes G#). A root outside the key is spelled
    as the raised letter below or the lowered letter above, whichever leaves more of the key's
    scale (Ab in C major, not G#). A slash bass outside the chord is spelled by its interval."""
    letters = chord_scale_letters(chord, key)
    return None if letters is None else frozenset(letters)


def chord_scale_letters(chord: ChordLike, key: Key) -> tuple[int, ...] | None:
    """`chord_scale` as a pitch class per letter C..B (compare `key_scale_by_letter`)."""
    return _chord_scale(chord.root % 12, chord.third, chord.fifth, chord.seventh, chord.bass % 12,
                        getattr(chord, "has_seventh", True), key)


@lru_cache(maxsize=4096)
def _chord_scale(root: int, third: int, fifth: int, seventh: int, bass: int, has_seventh: bool,
                 key: Key) -> tuple[int, ...] | None:
    chord = _PlainChord(root, third, fifth, seventh, bass, has_seventh)
    scale = key_scale_by_letter(key)
    if {t for t in sounding_tones(chord)} <= set(scale):
        return None
    root = chord.root % 12
    if root in scale:
        candidates = [scale.index(root)]
    else:
        candidates = [letter for letter in range(7) if (root - scale[letter]) % 12 in (1, 11)]
    tones = _chord_letters(chord)
    if all(bass != pitch_class for _, pitch_class in tones):
        tones.append((INTERVAL_LETTERS[(bass - root) % 12], bass))
    best: list[int] | None = None
    for root_letter in candidates or [0]:
        changed = list(scale)
        for letters, pitch_class in tones:
            changed[(root_letter + letters) % 7] = pitch_class
        if best is None or sum(a != b for a, b in zip(changed, scale)) < sum(a != b for a, b in zip(best, scale)):
            best = changed
    assert best is not None
    return tuple(best)


def chord_scale_notes(pitched: Iterable[Note], spans: Sequence[ChordSpanLike], key: Key, ticks_per_beat: int) -> Share:
    """Notes (onset on the 1/12-beat grid) under a chord with tones outside the key whose
    pitch class is in that chord's `chord_scale`, of all notes under such chords: does the
    line follow an A7 in C major with C# instead of C?"""
    hits = total = 0
    for note in snap_notes(pitched, ticks_per_beat):
        chord = _chord_at(spans, note.start)
        scale = chord_scale(chord, key) if chord is not None else None
        if scale is not None:
            total += 1
            hits += int(note.pitch % 12 in scale)
    return Share(hits, total)


def altered_notes_followed(pitched: Iterable[Note], spans: Sequence[ChordSpanLike], key: Key,
                           ticks_per_beat: int) -> Share:
    """Under chords with tones outside the key: of the notes on a letter the chord alters (C or
    C# over A7 in C major, G or G# over E in A minor), those that take the chord's version (C#,
    G#). 0 when the line keeps the key's note against the chord, 1 when it follows the chord;
    notes on the other letters are not counted."""
    hits = total = 0
    for note in snap_notes(pitched, ticks_per_beat):
        chord = _chord_at(spans, note.start)
        letters = chord_scale_letters(chord, key) if chord is not None else None
        if letters is None:
            continue
        pitch_class = note.pitch % 12
        for key_tone, chord_tone in zip(key_scale_by_letter(key), letters):
            if key_tone != chord_tone and pitch_class in (key_tone, chord_tone):
                total += 1
                hits += int(pitch_class == chord_tone)
                break
    return Share(hits, total)


def beat_clashes(melody: Iterable[Note], spans: Sequence[ChordSpanLike], ticks_per_beat: int,
                 key: Key | None = None) -> Share:
    """Melody onsets on a beat (steps 0, 12, 24, 36) that clash with the chord sounding there
    (not a tone of it, a semitone from one), of all melody onsets on a beat under a chord; with
    `key`, only under chords with tones outside that key."""
    hits = total = 0
    for note in snap_notes(melody, ticks_per_beat):
        if grid_step(note.start, ticks_per_beat) % GRID_PER_BAR not in BEAT_POSITIONS:
            continue
        chord = _chord_at(spans, note.start)
        if chord is None or (key is not None and chord_scale(chord, key) is None):
            continue
        tones = sounding_tones(chord)
        pitch_class = note.pitch % 12
        total += 1
        hits += int(pitch_class not in tones and ((pitch_class + 1) % 12 in tones or (pitch_class - 1) % 12 in tones))
    return Share(hits, total)


def _style_drum_figures(drums: list[Note], bars: int, tpb: int) -> dict[str, Stat]:
    return {"backbeat_bars": backbeat_bars(drums, bars, tpb), "half_time_bars": half_time_bars(drums, bars, tpb),
            "kickless_pieces": kickless(drums), "offbeat_8ths_swung": eighth_swing(drums, tpb),
            "swing_phase": swing_phase(drums, tpb),
            "phrase_end_variations_4": phrase_end_variations(drums, bars, tpb, 4),
            "phrase_end_variations_8": phrase_end_variations(drums, bars, tpb, 8)}


def _style_melody_figures(melody: list[Note], bars: int, tpb: int) -> dict[str, Stat]:
    similarity = self_similarity(melody, bars, 4, tpb)
    out: dict[str, Stat] = {
        "melody_repeat_lag4": bars_repeating_at_lag(melody, bars, tpb, 4),
        "melody_similarity4_median": Median((similarity.value,) if similarity.count else ()),
        "melody_similar4_pieces": Share(int(similarity.value >= 0.5), 1) if similarity.count else Share(),
        "melody_distinct_pitches": distinct_pitches(melody, bars, tpb), "melody_range": pitch_ranges(melody, bars, tpb),
        "melody_median_pitch": median_pitch(melody), "melody_rest_bars": rest_bars(melody, bars, tpb),
        "melody_same_downbeat_pieces": same_downbeat_pitch(melody, bars, tpb),
        "melody_high_point_phrases": high_point_phrases(melody, bars, tpb),
    }
    if bars >= 16:
        out["melody16_copied_bars"] = bars_repeated_exactly(melody, bars, tpb)
        out["melody16_repeat_lag8"] = bars_repeating_at_lag(melody, bars, tpb, 8)
    return out


def style_figures(tracks: dict[str, list[Note]], bars: int, ticks_per_beat: int, key: Key | None = None,
                  chords: Sequence[ChordSpanLike] | None = None) -> dict[str, Stat]:
    """The figures of `STYLE_FIGURES` that the piece can give (issue 26's table), as poolable
    stats, with the same rules as `piece_figures`: an absent role gives none, the tonic and
    out-of-key figures need a key, the harmony figures chord spans. The "melody16" figures come
    from pieces of 16 bars or more only."""
    out: dict[str, Stat] = {}
    drums, bass, melody = tracks.get("drums"), tracks.get("bass"), tracks.get("melody")
    if drums is not None:
        out.update(_style_drum_figures(drums, bars, ticks_per_beat))
    if melody is not None:
        out.update(_style_melody_figures(melody, bars, ticks_per_beat))
    if bass is not None:
        out["bass_distinct_pitches"] = distinct_pitches(bass, bars, ticks_per_beat)
        out["bass_few_pitch_pieces"] = Share(int(len({n.pitch for n in bass}) <= FEW_BASS_PITCHES), 1)
        if key is not None:
            out["bass_tonic_downbeats"] = tonic_downbeats(bass, bars, ticks_per_beat, key)
    if chords:
        out["chords_per_4_bars"] = chords_per_window(chords, bars, ticks_per_beat)
        out["one_chord_pieces"] = one_chord(chords)
        if key is not None and (bass is not None or melody is not None):
            pitched = (bass or []) + (melody or [])
            out["chord_scale_notes"] = chord_scale_notes(pitched, chords, key, ticks_per_beat)
            out["altered_notes_followed"] = altered_notes_followed(pitched, chords, key, ticks_per_beat)
        if melody is not None:
            out["strong_beat_clashes"] = beat_clashes(melody, chords, ticks_per_beat)
            if key is not None:
                out["out_of_key_clashes"] = beat_clashes(melody, chords, ticks_per_beat, key)
    return out


def all_figures(tracks: dict[str, list[Note]], bars: int, ticks_per_beat: int, key: Key | None = None,
                chords: Sequence[ChordSpanLike] | None = None) -> dict[str, Stat]:
    """`piece_figures` and `style_figures` of one piece (what bench/quality.py reads)."""
    return {**piece_figures(tracks, bars, ticks_per_beat, key, chords),
            **style_figures(tracks, bars, ticks_per_beat, key, chords)}


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


DRUM_VOICES: tuple[str, ...] = ("kick", "snare", "hat", "cymbal", "tom")
DRUM_FEATURE_NAMES: tuple[str, ...] = (
    *(f"{v}_step{s}" for v in DRUM_VOICES for s in range(STEPS_PER_BAR)),
    "hits_per_bar", "backbeat", "half_time", "swung_8ths", "swing_phase",
)


def drum_window_features(drums: Sequence[Note], ticks_per_beat: int, bars: int) -> np.ndarray:
    """One vector (named by DRUM_FEATURE_NAMES) describing a window's drums only, for a
    classifier fitted on real drummers (GMD), independent of `window_features`: per voice
    (kick, snare, hat, ride/crash, tom) the onsets per bar on each 16th, hits per bar, the
    backbeat and half-time shares of its bars, and the swing of its off-beat 8ths (swung
    share, mean phase; a straight 0.5 when it has none) read as played."""
    histograms = {voice: np.zeros(STEPS_PER_BAR) for voice in DRUM_VOICES}
    for note in drums:
        voice = drum_voice(note.pitch)
        if voice in histograms:
            histograms[voice][sixteenth(note.start, ticks_per_beat) % STEPS_PER_BAR] += 1
    swung, phase = eighth_swing(drums, ticks_per_beat), swing_phase(drums, ticks_per_beat)
    values = [len(drums) / bars, backbeat_bars(drums, bars, ticks_per_beat).value,
              half_time_bars(drums, bars, ticks_per_beat).value,
              swung.value if swung.total else 0.0, phase.value if phase.count else 0.5]
    return np.concatenate([*(histograms[v] / bars for v in DRUM_VOICES), np.asarray(values)]).astype(np.float32)


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
    def fit(cls, features: np.ndarray, labels: list[str], l2: float = 1e-2, steps: int = 200,
            balanced: bool = False) -> GenreClassifier:
        """Fitted on (windows, features) with their labels; `balanced` weighs each class by the
        inverse of its count, so a class with ten times the windows (GMD rock) does not win
        every doubtful window."""
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError(f"classifier: needs at least two genres to tell apart, got {names}")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-6] = 1.0
        x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
        y = torch.tensor([names.index(label) for label in labels])
        counts = torch.bincount(y, minlength=len(names)).float()
        class_weight = counts.sum() / (len(names) * counts) if balanced else None
        weight = torch.zeros(x.shape[1], len(names), requires_grad=True)
        bias = torch.zeros(len(names), requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = (torch.nn.functional.cross_entropy(x @ weight + bias, y, weight=class_weight)
                    + l2 * weight.pow(2).sum())
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(names, mean, scale, weight.detach().numpy().copy(), bias.detach().numpy().copy())

    def predict(self, features: np.ndarray) -> list[str]:
        logits = ((features - self.mean) / self.scale) @ self.weight + self.bias
        return [self.labels[i] for i in logits.argmax(axis=1)]
