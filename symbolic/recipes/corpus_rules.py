"""Genre rules for the training corpus: drum mapping and quantization, groove transforms,
and bass lines derived from chords and the kick pattern (the chord types live in
`symbolic/music/harmony.py`).

Every function here is pure: plain notes in, plain notes out, randomness only through the
`random.Random` passed in. Times are integer ticks at 480 per beat, 4/4 bars; every onset
and duration lands on the token grid of 1/12 beat (40 ticks), which holds both the 16th
grid (120) and the 8th-triplet grid (160). `docs/corpus.md` explains each rule.
"""

from __future__ import annotations

import random

from stemforge.symbolic.core.ticks import STEP_TICKS as GRID  # 40 ticks: the token grid
from stemforge.symbolic.core.ticks import TICKS_PER_BAR as BAR
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as TPB
from stemforge.symbolic.music import drum_map
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.drum_map import (
    CLAP,
    CLOSED_HAT,
    CRASH,
    HIGH_TOM,
    KICK,
    LOW_TOM,
    MID_TOM,
    OPEN_HAT,
    PEDAL_HAT,
    RIDE,
    RIDE_BELL,
    RIM,
    SHAKER,
    SNARE,
)
from stemforge.symbolic.music.feel import clamp_velocity, snap
from stemforge.symbolic.music.feel import (
    detect_feel as detect_feel,  # re-exported: the corpus, eval's real-music reader and tests read it here
)
from stemforge.symbolic.music.genres import BassStyle, genre_table
from stemforge.symbolic.music.harmony import Chord, ChordSpan
from stemforge.symbolic.music.harmony import (
    parse_chord as parse_chord,  # re-exported: corpus and its tests read chords here
)
from stemforge.symbolic.music.keys import Key

DRUM_TICKS = GRID  # drum hits are one grid step long; only the onset matters

# Drum names and the corpus's drum tables come from the one drum map (symbolic/music/drum_map.py):
# GMD performances are read as the Roland TD-11 that recorded them and folded to one note
# per drum (rim/edge hits onto their drum) so the model sees one kick, one snare, one
# closed hat...; General MIDI files (Freedoom) are folded the same way.
GMD_TO_GM: dict[int, int] = drum_map.GMD_TO_GM
GM_FOLD: dict[int, int] = drum_map.GM_FOLD
GM_PERCUSSION = drum_map.GM_PERCUSSION
FILL_DRUMS = frozenset({SNARE, 40, 41, LOW_TOM, 45, MID_TOM, 48, HIGH_TOM})  # what a fill is played on

# ----------------------------------------------------------------------------- drums


def quantize_hits(hits: list[tuple[int, int, int]], feel: str, total_ticks: int, offset: int = 0) -> list[Note]:
    """Hits moved by `offset` and snapped to the feel's grid; one note per (tick, pitch),
    the loudest wins."""
    best: dict[tuple[int, int], int] = {}
    for tick, pitch, velocity in hits:
        start = snap(max(0, tick + offset), feel)
        if start >= total_ticks:
            continue
        key = (start, pitch)
        best[key] = max(best.get(key, 0), max(1, min(127, velocity)))
    return sorted(Note(t, DRUM_TICKS, p, v) for (t, p), v in best.items())


def hits_at(notes: list[Note], pitches: set[int]) -> list[int]:
    return sorted({n.start for n in notes if n.pitch in pitches})


def kick_ticks(notes: list[Note]) -> list[int]:
    return hits_at(notes, {KICK})


def swing_ratio(notes: list[Note]) -> float:
    """Share of off-beat onsets sitting late (swung) rather than on the straight grid:
    0 for a straight groove, 1 for a fully swung one."""
    offbeat = [n.start % TPB for n in notes if n.start % TPB]
    if not offbeat:
        return 0.0
    swung = sum(1 for o in offbeat if o in (160, 320, 400))
    return swung / len(offbeat)


def _shift_positions(notes: list[Note], mapping: dict[int, int]) -> list[Note]:
    out = []
    for n in notes:
        beat, offset = divmod(n.start, TPB)
        out.append(Note(beat * TPB + mapping.get(offset, offset), n.duration, n.pitch, n.velocity))
    return sorted(set(out))


def swing_16ths(notes: list[Note]) -> list[Note]:
    """Full (2:1) 16th swing: the 2nd and 4th 16th of each beat move late."""
    return _shift_positions(notes, {120: 160, 360: 400})


def straighten(notes: list[Note]) -> list[Note]:
    """Swung positions back onto the straight 16th grid (for genres played straight)."""
    out = [Note(snap(n.start, "straight") if n.start % 120 else n.start, n.duration, n.pitch, n.velocity)
           for n in notes]
    dedup: dict[tuple[int, int], Note] = {}
    for n in out:
        if (n.start, n.pitch) not in dedup or dedup[(n.start, n.pitch)].velocity < n.velocity:
            dedup[(n.start, n.pitch)] = n
    return sorted(dedup.values())


def scale_velocity(notes: list[Note], factor: float, pitches: set[int] | None = None) -> list[Note]:
    return [Note(n.start, n.duration, n.pitch, clamp_velocity(n.velocity * factor))
            if pitches is None or n.pitch in pitches else n for n in notes]


def _hit(tick: int, pitch: int, velocity: float) -> Note:
    return Note(tick, DRUM_TICKS, pitch, clamp_velocity(velocity))


def lofi_groove(notes: list[Note], rng: random.Random) -> list[Note]:
    """Hip-hop / soul / jazz groove made lofi: straight grid first, then heavy swing (of
    the 16ths, or of the 8ths when the groove has hardly any 16ths), crashes dropped, everything softer with hats and ghost notes pushed further down."""
    notes = [n for n in straighten(notes) if n.pitch != CRASH]
    offbeat = [n.start % TPB for n in notes if n.start % TPB]
    sixteenths = sum(1 for o in offbeat if o in (120, 360))
    if offbeat and sixteenths >= 0.15 * len(offbeat):
        notes = swing_16ths(notes)
    else:  # an 8th-note groove: swing its 8ths (a lazy triplet feel) instead
        notes = _shift_positions(notes, {240: 320, 120: 160, 360: 400})
    notes = scale_velocity(notes, rng.uniform(0.75, 0.9))
    return scale_velocity(notes, 0.8, {CLOSED_HAT, PEDAL_HAT, OPEN_HAT, RIDE, RIM})


def trap_groove(notes: list[Note], bars: int, rng: random.Random) -> list[Note]:
    """A hip-hop groove as trap: every source beat becomes two beats (half-time, so the
    backbeat lands on beat 3), kicks kept as 808 hits, ghost notes dropped, snare+clap on
    3, and new hats: straight 8ths or 16ths with 16th-triplet and 1/48 rolls."""
    total = bars * BAR
    source = straighten(notes)
    out: list[Note] = []
    for n in source:
        start = n.start * 2
        if start >= total:
            continue
        if n.pitch == KICK:
            out.append(_hit(start, KICK, max(n.velocity, 90)))
    for bar in range(bars):
        out.append(_hit(bar * BAR + 2 * TPB, SNARE, 112))
        out.append(_hit(bar * BAR + 2 * TPB, CLAP, 105))
        if bar % 2 == 1 and rng.random() < 0.4:  # a late snare pickup before the next bar
            out.append(_hit(bar * BAR + 3 * TPB + 360, SNARE, 80))
    if not any(n.pitch == KICK and n.start % BAR == 0 for n in out):
        out.append(_hit(0, KICK, 110))
    step = rng.choice((120, 240, 240))
    for bar in range(bars):
        roll_beats = {b for b in range(4) if rng.random() < 0.3}
        for beat in range(4):
            base = bar * BAR + beat * TPB
            if beat in roll_beats:
                # half a beat of straight hats, then a roll (16th triplets or 1/48s)
                roll_step = rng.choice((80, 80, 40))
                out.append(_hit(base, CLOSED_HAT, 95))
                for t in range(base + TPB // 2, base + TPB, roll_step):
                    out.append(_hit(t, CLOSED_HAT, 60 + 30 * (t - base - TPB // 2) / (TPB // 2)))
            else:
                for t in range(base, base + TPB, step):
                    out.append(_hit(t, CLOSED_HAT, 95 if t % TPB == 0 else 70))
        if rng.random() < 0.25:
            out.append(_hit(bar * BAR + 3 * TPB + 240, OPEN_HAT, 80))
    return _dedupe(out)


def dnb_groove(notes: list[Note], bars: int, rng: random.Random) -> list[Note]:
    """A funk/soul/hip-hop break sped up as drum and bass: straight grid, the two-step
    backbone forced (kick on 1 and the "and" of 3, snare on 2 and 4), the source's other
    kicks kept only sometimes, its hats and ghost snares kept."""
    source = straighten(notes)
    out = [n for n in source if n.pitch not in (KICK, SNARE, CRASH)]
    out += [Note(n.start, n.duration, n.pitch, min(n.velocity, 55)) for n in source
            if n.pitch == SNARE and n.start % TPB and n.velocity < 70]  # ghost snares
    for n in source:
        on_backbeat = n.start % BAR in (TPB, 3 * TPB)
        if n.pitch == KICK and not on_backbeat and rng.random() < 0.35:
            out.append(n)
    for bar in range(bars):
        base = bar * BAR
        out += [_hit(base, KICK, 115), _hit(base + 2 * TPB + 240, KICK, 105),
                _hit(base + TPB, SNARE, 118), _hit(base + 3 * TPB, SNARE, 118)]
    if not any(n.pitch in (CLOSED_HAT, RIDE) for n in out):
        out += [_hit(t, CLOSED_HAT, 80 if t % TPB else 95) for t in range(0, bars * BAR, 240)]
    return _dedupe(out)


def four_on_the_floor(notes: list[Note], bars: int, rng: random.Random, techno: bool) -> list[Note]:
    """House / techno from a dance or funk groove: straight grid, a kick on every beat,
    snare turned into a clap on 2 and 4, an open hat on every off-beat 8th, the source's
    closed hats / ride / percussion kept as the 16th texture. Techno drops the source's
    extra snares and toms and adds a steady 16th closed hat."""
    source = straighten(notes)
    keep = {CLOSED_HAT, PEDAL_HAT, RIDE, RIDE_BELL} if techno else {CLOSED_HAT, PEDAL_HAT, RIDE, RIDE_BELL, RIM}
    out = [n for n in source if n.pitch in keep and n.start % TPB != TPB // 2]
    for bar in range(bars):
        base = bar * BAR
        for beat in range(4):
            out.append(_hit(base + beat * TPB, KICK, 120 if beat == 0 else 112))
            out.append(_hit(base + beat * TPB + 240, OPEN_HAT, rng.uniform(80, 95)))
        for beat in (1, 3):
            out.append(_hit(base + beat * TPB, CLAP, 105))
        if techno:
            out += [_hit(base + t, CLOSED_HAT, 70 if t % 240 else 55) for t in range(0, BAR, 120)
                    if t % TPB != TPB // 2]
        if bar % 8 == 0:
            out.append(_hit(base, CRASH, 90))
    return _dedupe(out)


def complete_four_on_the_floor(notes: list[Note], bars: int) -> list[Note]:
    """A real disco/house groove with a kick added on every beat that lacks one (at the
    groove's median kick velocity): house needs its four-on-the-floor."""
    kicks = [n for n in notes if n.pitch == KICK]
    velocity = sorted(n.velocity for n in kicks)[len(kicks) // 2] if kicks else 110
    have = {n.start for n in kicks}
    added = [_hit(t, KICK, velocity) for t in range(0, bars * BAR, TPB) if t not in have]
    return sorted(notes + added)


def ambient_drums(bars: int, rng: random.Random) -> list[Note]:
    """Sparse ambient pulse: a soft kick on the first beat of every other bar, a soft ride
    or shaker on some beats, nothing on a backbeat."""
    out: list[Note] = []
    texture = rng.choice((RIDE, SHAKER))
    for bar in range(bars):
        base = bar * BAR
        if bar % 2 == 0:
            out.append(_hit(base, KICK, rng.uniform(55, 70)))
        for beat in range(4):
            if rng.random() < 0.35:
                out.append(_hit(base + beat * TPB + rng.choice((0, 240)), texture, rng.uniform(30, 50)))
    return _dedupe(out)


def _dedupe(notes: list[Note]) -> list[Note]:
    best: dict[tuple[int, int], Note] = {}
    for n in notes:
        key = (n.start, n.pitch)
        if key not in best or best[key].velocity < n.velocity:
            best[key] = n
    return sorted(best.values())


def stretch(notes: list[Note], factor: int) -> list[Note]:
    """Symbolic half-time: every tick position and duration multiplied by `factor`."""
    return [Note(n.start * factor, n.duration * factor, n.pitch, n.velocity) for n in notes]


# ------------------------------------------------------------------------- harmony


def chord_at(spans: list[ChordSpan], tick: int) -> Chord | None:
    for span in spans:
        if span.start <= tick < span.end:
            return span.chord
    earlier = [s for s in spans if s.start <= tick]
    return earlier[-1].chord if earlier else (spans[0].chord if spans else None)


def tonic_chord(key: Key) -> Chord:
    third, seventh = (4, 11) if key.mode == "major" else (3, 10)
    return Chord(key.tonic, third, 7, seventh, key.tonic)


BASS_LOW, BASS_HIGH = 28, 55  # E1 .. G3: where bass lines live


def bass_pitch(pitch_class: int, previous: int | None) -> int:
    """The octave of `pitch_class` in the bass register closest to the previous note
    (so lines move by small steps), starting near A1-C3."""
    candidates = [p for p in range(BASS_LOW, BASS_HIGH + 1) if p % 12 == pitch_class]
    target = previous if previous is not None else 40
    return min(candidates, key=lambda p: (abs(p - target), p))


# How each genre's bass moves: which rhythm and which chord tones, each genre's `corpus.bass` in
# the genre table (configs/genres.yaml; BassStyle is defined in symbolic/music/genres.py). See docs/corpus.md.
BASS_STYLES: dict[str, BassStyle] = {g.name: g.corpus.bass for g in genre_table().genres.values() if g.corpus}


def _tone(chord: Chord, which: str) -> int:
    offsets = {"root": 0, "third": chord.third, "fifth": chord.fifth, "seventh": chord.seventh, "octave": 0}
    return (chord.root + offsets[which]) % 12


def _bass_onsets(style: BassStyle, kicks: list[int], spans: list[ChordSpan], total: int) -> list[int]:
    """Where bass notes start: the rhythm of the style, plus every chord change that falls
    on a beat, plus beat 1 of any bar the rhythm leaves empty."""
    if style.rhythm == "kick":
        onsets = set(kicks)
    elif style.rhythm == "kick_bounce":  # house: with the kicks, and the "and" of 4 into the next bar
        onsets = set(kicks) | set(range(3 * TPB + 240, total, BAR))
    elif style.rhythm == "walking":
        onsets = set(range(0, total, TPB))
    elif style.rhythm == "eighths":
        onsets = set(range(0, total, 240))
    elif style.rhythm == "tumbao":  # the anticipated bass of Afro-Cuban music: "and" of 2, and 4
        onsets = {b + o for b in range(0, total, BAR) for o in (TPB + 240, 3 * TPB)}
    elif style.rhythm == "sustain":
        onsets = {0}
    else:
        raise ValueError(f"bass rhythm {style.rhythm!r} is not known")
    if style.rhythm != "tumbao":
        onsets |= {s.start for s in spans if s.start % TPB == 0 and 0 <= s.start < total}
    for bar_start in range(0, total, BAR):
        if not any(bar_start <= t < bar_start + BAR for t in onsets):
            onsets.add(bar_start)
    return sorted(t for t in onsets if 0 <= t < total)


def _sounding(notes: list[Note], tick: int) -> Note | None:
    """The lowest note of `notes` sounding at `tick` (struck there or held over it)."""
    found = [n for n in notes if n.start <= tick < n.start + n.duration]
    return min(found, key=lambda n: n.pitch) if found else None


def derive_bass(spans: list[ChordSpan], kicks: list[int], total_ticks: int, key: Key, genre: str,
                rng: random.Random, real_pitches: list[Note] | None = None) -> list[Note]:
    """A bass line from chords: roots (and fifths, octaves, 7ths on weak notes, as the
    genre's style allows) placed on the groove's kick pattern (or the genre's idiomatic
    bass rhythm), in the bass register, lengths up to the next note times the style's gate.
    Chord changes on a beat always get a root; a chord's slash note replaces its root.
    With `real_pitches` (a pianist's lowest notes), a note takes the pitch the pianist's left
    hand has at that moment: on a downbeat or chord change only when it is a tone of the
    chord (an inversion), elsewhere when it is in the key or the chord (a passing tone)."""
    style = BASS_STYLES[genre]
    onsets = _bass_onsets(style, kicks, spans, total_ticks)
    change_ticks = {s.start for s in spans}
    notes: list[Note] = []
    previous: int | None = None
    for index, start in enumerate(onsets):
        chord = chord_at(spans, start) or tonic_chord(key)
        end = onsets[index + 1] if index + 1 < len(onsets) else total_ticks
        next_change = min((c for c in change_ticks if start < c < end), default=end)
        strong = start % BAR == 0 or start in change_ticks
        real = _sounding(real_pitches, start) if real_pitches else None
        tones = {(chord.root + o) % 12 for o in (0, chord.third, chord.fifth, chord.seventh)} | {chord.bass}
        if style.rhythm == "walking":
            pitch = _walking_pitch(spans, onsets, index, chord, previous, rng, key)
        else:
            if real is not None and (real.pitch % 12 in tones
                                     or (not strong and real.pitch % 12 in key.scale_pitch_classes)):
                pitch_class = real.pitch % 12
            elif strong:
                pitch_class = chord.bass
            else:
                pitch_class = _tone(chord, rng.choice(style.weak_tones))
            pitch = bass_pitch(pitch_class, previous)
            if not strong and "octave" in style.weak_tones and rng.random() < 0.15 and pitch + 12 <= BASS_HIGH:
                pitch += 12
        span_ticks = min(end, next_change) - start
        duration = max(GRID, round(span_ticks * style.gate / GRID) * GRID)
        duration = min(duration, span_ticks, 4 * TPB)
        accent = 12 if start % BAR == 0 else (5 if start % TPB == 0 else 0)
        velocity = clamp_velocity(style.velocity + accent + rng.randint(-6, 6))
        notes.append(Note(start, duration, pitch, velocity))
        previous = pitch
    return notes


def _same_notes(a: Chord | None, b: Chord | None) -> bool:
    """Whether a walking bass hears the same chord: C then Cmaj7 (one voicing) is no change."""
    if a is None or b is None:
        return a is b
    return (a.root, a.third, a.fifth, a.seventh, a.bass) == (b.root, b.third, b.fifth, b.seventh, b.bass)


def _walking_pitch(spans: list[ChordSpan], onsets: list[int], index: int, chord: Chord,
                   previous: int | None, rng: random.Random, key: Key) -> int:
    """Walking bass: root on a chord's first beat, chord tones on the middle beats, a
    chromatic or scale step into the next chord's root on the beat before it changes."""
    start = onsets[index]
    next_start = onsets[index + 1] if index + 1 < len(onsets) else None
    next_chord = chord_at(spans, next_start) if next_start is not None else None
    first_beat_of_chord = index == 0 or not _same_notes(chord_at(spans, onsets[index - 1]), chord) \
        or start % BAR == 0
    if first_beat_of_chord:
        return bass_pitch(chord.bass, previous)
    if next_chord is not None and not _same_notes(next_chord, chord):
        target = bass_pitch(next_chord.bass, previous)
        return max(BASS_LOW, min(BASS_HIGH, target + rng.choice((-1, 1, -2, 2))))
    return bass_pitch(_tone(chord, rng.choice(("third", "fifth", "seventh", "fifth"))), previous)
