"""Harmony: chords, chord progressions and the plan a piece follows.

Loop music rests on a short chord cycle (1, 2 or 4 bars) repeated under the whole piece:
the bass takes its roots on the downbeats and chord changes, the melody lands chord tones on
its strong beats. This module owns the chord types (`Chord`, `ChordSpan`), reads chords as
producers write them (symbols "Am7 F C/E", roman numerals "vi IV I V", POP909's Harte
labels "F#:maj7/5"), finds chords named in a prompt, and picks a default progression per
genre from real pop progressions counted in POP909 (`symbolic/progressions.json`, rebuilt by
`python -m stemforge.symbolic.harmony build`). `docs/harmony.md` is the user-facing description.

Times are ticks at 480 per beat unless a caller says otherwise; bars are 4/4.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from stemforge.symbolic.conditions import KEY_NAMES, PITCH_CLASSES, ConditionError, Key, parse_key

TPB = 480
BEATS_PER_BAR = 4
MAX_CYCLE_BARS = 8  # a typed progression may be this long; defaults are 1, 2 or 4 bars
DEFAULT_CYCLE_BARS = (1, 2, 4)  # loops repeat every 4 bars: a longer cycle would not loop
TABLE_PATH = Path(__file__).with_name("progressions.json")
SOURCE = "POP909, Wang et al. 2020, MIT"
CHORDS_HELP = "use symbols like Am7, F, C/E or roman numerals like vi IV I V"


class ChordError(ConditionError):
    """Chords that cannot be read; the one-line message names the field `chords` and says
    what to type instead (a ConditionError, so the CLI and service report it like one)."""

    field = "chords"


# ----------------------------------------------------------------------------- chords

# quality -> (third, fifth, seventh, has_seventh), semitones above the root. A triad keeps
# a `seventh` too: the 7th a jazz or lofi voicing would add to it (the corpus bass uses it).
QUALITIES: dict[str, tuple[int, int, int, bool]] = {
    "maj": (4, 7, 11, False), "min": (3, 7, 10, False), "dim": (3, 6, 9, False),
    "aug": (4, 8, 10, False), "sus2": (2, 7, 10, False), "sus4": (5, 7, 10, False),
    "7": (4, 7, 10, True), "maj7": (4, 7, 11, True), "min7": (3, 7, 10, True),
    "hdim7": (3, 6, 10, True), "dim7": (3, 6, 9, True), "minmaj7": (3, 7, 11, True),
    "maj6": (4, 7, 9, True), "min6": (3, 7, 9, True), "7sus4": (5, 7, 10, True),
    "aug7": (4, 8, 10, True),
}
_TRIAD_QUALITY = {(t, f): q for q, (t, f, _, seventh) in QUALITIES.items() if not seventh}
_SEVENTH_QUALITY = {(t, f, s): q for q, (t, f, s, seventh) in QUALITIES.items() if seventh}


@dataclass(frozen=True)
class Chord:
    """A chord as pitch classes and intervals: what a bass line and a melody follow.

    `seventh` is the fourth chord tone (a 7th; the 6th of a 6 chord); it sounds only when
    `has_seventh`, otherwise it is the 7th a jazzy voicing would add to the triad."""

    root: int  # pitch class
    third: int  # semitones above the root (2 or 5 for sus chords)
    fifth: int
    seventh: int
    bass: int  # pitch class the bass plays (the slash note, else the root)
    has_seventh: bool = False

    def transposed(self, semitones: int) -> Chord:
        return replace(self, root=(self.root + semitones) % 12, bass=(self.bass + semitones) % 12)


@dataclass(frozen=True)
class ChordSpan:
    start: int  # ticks
    end: int
    chord: Chord


def make_chord(root: int, quality: str, bass: int | None = None) -> Chord:
    third, fifth, seventh, has_seventh = QUALITIES[quality]
    return Chord(root % 12, third, fifth, seventh, root % 12 if bass is None else bass % 12, has_seventh)


def chord_quality(chord: Chord) -> str:
    """The name in QUALITIES ('min7', 'maj'...); an odd interval set reads as its nearest
    major or minor form."""
    if chord.has_seventh:
        found = _SEVENTH_QUALITY.get((chord.third, chord.fifth, chord.seventh))
        if found:
            return found
    found = _TRIAD_QUALITY.get((chord.third, chord.fifth))
    if found and not chord.has_seventh:
        return found
    minor = chord.third == 3
    if chord.has_seventh:
        return ("min7" if minor else "7") if chord.seventh == 10 else ("minmaj7" if minor else "maj7")
    return "min" if minor else "maj"


def chord_tones(chord: Chord) -> frozenset[int]:
    """Pitch classes a melody may land on: root, third, fifth, and the seventh only when it
    is a 7th chord (a triad's 7th is a colour the melody may pass through, not a target)."""
    offsets = (0, chord.third, chord.fifth) + ((chord.seventh,) if chord.has_seventh else ())
    return frozenset((chord.root + o) % 12 for o in offsets) | {chord.bass}


# Harte shorthand (POP909 chord files) -> quality. Extensions (9ths) are voiced as 7ths.
_HARTE: dict[str, str] = {
    "maj": "maj", "min": "min", "7": "7", "maj7": "maj7", "min7": "min7", "dim": "dim",
    "dim7": "dim7", "hdim7": "hdim7", "aug": "aug", "sus2": "sus2", "sus4": "sus4",
    "sus4(b7)": "7sus4", "maj6": "maj6", "min6": "min6", "minmaj7": "minmaj7", "9": "7",
    "maj9": "maj7", "min9": "min7",
}
_DEGREE = {"1": 0, "b2": 1, "2": 2, "b3": 3, "3": 4, "4": 5, "#4": 6, "b5": 6, "5": 7, "#5": 8, "b6": 8,
           "6": 9, "bb7": 9, "b7": 10, "7": 11}


def parse_chord(label: str) -> Chord | None:
    """Harte labels as in POP909: 'B:maj', 'F#:maj7/5', 'Bb:sus4(b7)', 'C' -> Chord;
    'N'/'X' (no chord) or unreadable -> None. Unknown qualities fall back to a major or
    minor triad by their name (so 'C:maj(9)' is C)."""
    label = label.strip()
    if not label or label in ("N", "X"):
        return None
    match = re.fullmatch(r"([A-G][b#]?)(?::([^/]*))?(?:/(.+))?", label)
    if not match:
        return None
    root_name, quality, inversion = match.groups()
    root = PITCH_CLASSES.get(root_name.lower())
    if root is None:
        return None
    quality = quality or "maj"
    bass = (root + _DEGREE.get(inversion, 0)) % 12 if inversion else root
    return make_chord(root, _HARTE.get(quality, "min" if quality.startswith("min") else "maj"), bass)


# Chord symbol suffix -> quality. Exact first (m/M matter), then lower-cased for words.
_SYMBOL_SUFFIX: dict[str, str] = {
    "": "maj", "M": "maj", "maj": "maj", "add9": "maj", "add2": "maj",
    "m": "min", "min": "min", "mi": "min", "-": "min", "madd9": "min",
    "dim": "dim", "°": "dim", "o": "dim", "aug": "aug", "+": "aug", "#5": "aug",
    "sus2": "sus2", "sus4": "sus4", "sus": "sus4",
    "7": "7", "dom7": "7", "9": "7", "13": "7", "11": "7sus4",
    "maj7": "maj7", "M7": "maj7", "ma7": "maj7", "Δ": "maj7", "Δ7": "maj7", "maj9": "maj7", "M9": "maj7",
    "m7": "min7", "min7": "min7", "mi7": "min7", "-7": "min7", "m9": "min7", "min9": "min7", "m11": "min7",
    "m7b5": "hdim7", "min7b5": "hdim7", "-7b5": "hdim7", "ø": "hdim7", "ø7": "hdim7",
    "dim7": "dim7", "°7": "dim7", "o7": "dim7",
    "mmaj7": "minmaj7", "mM7": "minmaj7", "m(maj7)": "minmaj7", "minmaj7": "minmaj7",
    "6": "maj6", "maj6": "maj6", "m6": "min6", "min6": "min6",
    "7sus4": "7sus4", "7sus": "7sus4", "aug7": "aug7", "+7": "aug7", "7#5": "aug7",
}
_DISPLAY_SUFFIX = {
    "maj": "", "min": "m", "dim": "dim", "aug": "aug", "sus2": "sus2", "sus4": "sus4", "7": "7",
    "maj7": "maj7", "min7": "m7", "hdim7": "m7b5", "dim7": "dim7", "minmaj7": "mMaj7", "maj6": "6",
    "min6": "m6", "7sus4": "7sus4", "aug7": "aug7",
}
_SYMBOL = re.compile(r"([A-Ga-g])([#b♯♭]?)([^/]{0,12})(?:/([A-Ga-g][#b♯♭]?))?")


def _pitch_class(letter: str, accidental: str) -> int:
    return PITCH_CLASSES[letter.lower() + {"♯": "#", "♭": "b"}.get(accidental, accidental)]


def parse_chord_symbol(text: str) -> Chord | None:
    """'Am7', 'F', 'C/E', 'F#m7b5', 'Bbmaj7', 'Esus4', 'A7', 'Bdim' -> Chord; None when the
    text is not a chord symbol. A lower-case root ('am') reads as upper case."""
    match = _SYMBOL.fullmatch(text.strip())
    if not match:
        return None
    letter, accidental, suffix, bass = match.groups()
    quality = _SYMBOL_SUFFIX.get(suffix)
    if quality is None and len(suffix) > 2:
        quality = _SYMBOL_SUFFIX.get(suffix.lower())
    if quality is None:
        return None
    root = _pitch_class(letter, accidental)
    bass_pc = _pitch_class(bass[0], bass[1:]) if bass else None
    return make_chord(root, quality, bass_pc)


# ----------------------------------------------------------------------- spelling, romans

_LETTERS = "CDEFGAB"
_NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_TONIC_NAMES = {  # how keys are written (fewest accidentals; minor keys by their leading tone)
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}
_SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# semitones above the tonic -> (scale degree 0-6, accidental), numbered against the key's
# own scale (natural minor in minor keys): flats for borrowed roots (bII bIII bVI bVII),
# sharps for raised ones (#IV, and in minor #III #VI #VII).
_DEGREES: dict[str, dict[int, tuple[int, int]]] = {
    "major": {0: (0, 0), 1: (1, -1), 2: (1, 0), 3: (2, -1), 4: (2, 0), 5: (3, 0), 6: (3, 1), 7: (4, 0),
              8: (5, -1), 9: (5, 0), 10: (6, -1), 11: (6, 0)},
    "minor": {0: (0, 0), 1: (1, -1), 2: (1, 0), 3: (2, 0), 4: (2, 1), 5: (3, 0), 6: (3, 1), 7: (4, 0),
              8: (5, 0), 9: (5, 1), 10: (6, 0), 11: (6, 1)},
}
_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")
_DIMINISHED = ("dim", "hdim7", "dim7")
_ENHARMONIC = {"E#": "F", "B#": "C", "Cb": "B", "Fb": "E"}  # what producers would rather read


def note_name(pitch_class: int, key: Key | None = None) -> str:
    """The pitch class spelled in the key: its scale letters ('E#' in F# major is written F,
    'Cb' in Eb minor B), chromatic notes as the roman numerals name them; without a key the
    project's key names (C C# D Eb E F F# G Ab A Bb B)."""
    if key is None:
        return KEY_NAMES[pitch_class % 12]
    degree, _ = _DEGREES[key.mode][(pitch_class - key.tonic) % 12]
    tonic_letter = _TONIC_NAMES[key.mode][key.tonic][0]
    letter = _LETTERS[(_LETTERS.index(tonic_letter) + degree) % 7]
    accidental = (pitch_class - _NATURAL[letter] + 6) % 12 - 6
    if abs(accidental) > 1:
        return KEY_NAMES[pitch_class % 12]
    name = letter + ("#" if accidental > 0 else "b" if accidental < 0 else "")
    return _ENHARMONIC.get(name, name)


def _letter_index(pitch_class: int, key: Key) -> int:
    """The letter (0 = C ... 6 = B) the key spells `pitch_class` with."""
    return _LETTERS.index(note_name(pitch_class, key)[0])


def chord_scale(chord: Chord, key: Key) -> frozenset[int]:
    """The scale a line plays over `chord` in `key`: the key's scale with each scale note
    replaced by the chord tone spelled on the same letter where the chord alters it (A7 in C
    major: C becomes C#; E major in A minor: G becomes G#; Bb in C major: B becomes Bb).
    The chord wins over the key, so a secondary dominant or a borrowed chord sounds as
    itself instead of being contradicted by the key's own note a semitone away."""
    scale = set(key.scale_pitch_classes)
    root_letter = _letter_index(chord.root, key)
    offsets = (0, chord.third, chord.fifth) + ((chord.seventh,) if chord.has_seventh else ())
    letter_steps = (0, 2, 4, 6)  # root, third, fifth, seventh: every other letter
    for step, offset in zip(letter_steps, offsets):
        tone = (chord.root + offset) % 12
        if tone in scale:
            continue
        letter = _LETTERS[(root_letter + step) % 7]
        scale -= {pc for pc in scale if _LETTERS.index(note_name(pc, key)[0]) == _LETTERS.index(letter)}
        scale.add(tone)
    if chord.bass not in scale:  # a slash bass outside the key: the nearest scale note gives way
        scale -= {(chord.bass - 1) % 12, (chord.bass + 1) % 12} - set(chord_tones(chord))
        scale.add(chord.bass)
    return frozenset(scale)


def chord_symbol(chord: Chord, key: Key | None = None) -> str:
    """The chord as a producer writes it: 'Am7', 'F', 'C/E', 'Bdim', 'F#m7b5', spelled in
    `key` when given. `parse_chord_symbol` reads it back to the same chord."""
    text = note_name(chord.root, key) + _DISPLAY_SUFFIX[chord_quality(chord)]
    return text if chord.bass == chord.root else f"{text}/{note_name(chord.bass, key)}"


# quality -> (upper-case numeral, suffix) and back
_ROMAN_FORM = {
    "maj": (True, ""), "min": (False, ""), "dim": (False, "°"), "aug": (True, "+"),
    "sus2": (True, "sus2"), "sus4": (True, "sus4"), "7": (True, "7"), "maj7": (True, "maj7"),
    "min7": (False, "7"), "hdim7": (False, "ø7"), "dim7": (False, "°7"), "minmaj7": (False, "maj7"),
    "maj6": (True, "6"), "min6": (False, "6"), "7sus4": (True, "7sus4"), "aug7": (True, "+7"),
}
_ROMAN_QUALITY = {form: quality for quality, form in _ROMAN_FORM.items()}
_ROMAN_ALIASES = {"o": "°", "dim": "°", "ø": "ø7", "m7b5": "ø7", "o7": "°7", "dim7": "°7", "M7": "maj7",
                  "Δ": "maj7", "Δ7": "maj7", "aug": "+", "sus": "sus4", "9": "7", "add9": "", "M9": "maj7",
                  "maj9": "maj7"}
_CASELESS = {"°", "°7", "ø7", "+", "+7", "sus2", "sus4", "7sus4"}  # the suffix alone fixes the quality
_ROMAN = re.compile(r"([b#♭♯]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)([^/]{0,8})")


def roman_numeral(chord: Chord, key: Key) -> str:
    """The chord's roman numeral in `key` ('vi', 'bVII', 'V7', 'iiø7', 'vii°'), numbered
    against the key's own scale: in A minor C is III, G is VII and G#dim the leading-tone
    vii°. Slash basses are left out. `parse_roman` reads it back to the same chord."""
    quality = chord_quality(chord)
    offset = (chord.root - key.tonic) % 12
    degree, accidental = _DEGREES[key.mode][offset]
    if key.mode == "minor" and quality in _DIMINISHED:
        if offset == 11:
            accidental = 0  # vii°: the leading-tone chord of minor, written without the sharp
        elif offset == 10:
            accidental = -1  # bvii°: plain vii° means the leading tone in minor
    upper, suffix = _ROMAN_FORM[quality]
    numeral = _NUMERALS[degree] if upper else _NUMERALS[degree].lower()
    return ("#" if accidental > 0 else "b" if accidental < 0 else "") + numeral + suffix


def _roman_root(accidental: str, numeral: str, quality: str, key: Key) -> int:
    degree = _NUMERALS.index(numeral.upper())
    shift = {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)
    if key.mode == "minor":
        if shift == -1 and degree in (2, 5, 6):
            shift = 0  # bIII bVI bVII in minor: the major-scale spelling of III VI VII
        elif shift == 0 and degree == 6 and quality in _DIMINISHED:
            shift = 1  # vii° in minor is the leading-tone chord
    return (key.tonic + _SCALE_STEPS[key.mode][degree] + shift) % 12


def parse_roman(text: str, key: Key) -> Chord | None:
    """'vi', 'IV', 'bVII', 'V7', 'iiø7', 'vii°', 'Imaj7', 'V7/V' -> the chord in `key`;
    None when the text is not a roman numeral. Upper case is major, lower case minor.
    Accidentals count against the key's scale, except that bIII, bVI and bVII in a minor
    key mean its III, VI and VII (how rock and pop theory writes them)."""
    head, _, target = text.strip().partition("/")
    match = _ROMAN.fullmatch(head)
    if not match:
        return None
    accidental, numeral, suffix = match.groups()
    suffix = _ROMAN_ALIASES.get(suffix, suffix)
    if suffix in _CASELESS:
        quality = _ROMAN_QUALITY.get((True, suffix)) or _ROMAN_QUALITY.get((False, suffix))
    else:
        quality = _ROMAN_QUALITY.get((numeral.isupper(), suffix))
    if quality is None:
        return None
    if target:  # secondary chord: V7/V is the V7 of the key of V
        tonicized = parse_roman(target, key)
        if tonicized is None or "/" in target:
            return None
        key = Key(tonicized.root, "major" if tonicized.third == 4 else "minor")
    return make_chord(_roman_root(accidental, numeral, quality, key), quality)


# --------------------------------------------------------------------------- progression


@dataclass(frozen=True)
class Progression:
    """A cycle of chords, each held a whole number of beats, repeated under the piece.

    The cycle is a whole number of 4/4 bars (1, 2 or 4 usually, at most 8). `source` says
    where it came from ("typed", "named: axis", "POP909 minor #3 ..."), for run.json."""

    key: Key
    chords: tuple[Chord, ...]
    beats: tuple[int, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if not self.chords or len(self.chords) != len(self.beats):
            raise ChordError("chords: a progression needs at least one chord, each with a length")
        if any(b <= 0 for b in self.beats):
            raise ChordError("chords: every chord must last at least one beat")
        if sum(self.beats) % BEATS_PER_BAR:
            raise ChordError(f"chords: the cycle is {sum(self.beats)} beats; it must fill whole "
                             f"bars of {BEATS_PER_BAR} beats")

    @property
    def cycle_bars(self) -> int:
        return sum(self.beats) // BEATS_PER_BAR

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(chord_symbol(c, self.key) for c in self.chords)

    @property
    def romans(self) -> tuple[str, ...]:
        return tuple(roman_numeral(c, self.key) for c in self.chords)

    def text(self, romans: bool = False) -> str:
        """Bars separated by '|', the form `parse_progression` reads: 'Am F | C G'. A chord
        held over a bar line is written again in the next bar."""
        names = self.romans if romans else self.symbols
        bars: list[str] = []
        position = 0
        starts = []
        for name, length in zip(names, self.beats):
            starts.append((position, position + length, name))
            position += length
        for bar in range(self.cycle_bars):
            lo, hi = bar * BEATS_PER_BAR, (bar + 1) * BEATS_PER_BAR
            pieces = [(max(s, lo), min(e, hi), n) for s, e, n in starts if s < hi and e > lo]
            step = min(e - s for s, e, _ in pieces)
            if any((e - s) % step for s, e, _ in pieces):
                step = 1
            bars.append(" ".join(n for s, e, n in pieces for _ in range((e - s) // step)))
        return " | ".join(bars)

    def spans(self, bars: int, ticks_per_beat: int = TPB) -> list[ChordSpan]:
        """The cycle repeated from tick 0 to the end of bar `bars`: consecutive spans with no
        gap, the last one cut at the end (a cycle longer than the piece is cut too)."""
        total = bars * BEATS_PER_BAR * ticks_per_beat
        spans: list[ChordSpan] = []
        tick = 0
        while tick < total:
            for chord, length in zip(self.chords, self.beats):
                end = min(total, tick + length * ticks_per_beat)
                spans.append(ChordSpan(tick, end, chord))
                tick = end
                if tick >= total:
                    break
        return spans

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key.name, "chords": self.text(), "symbols": list(self.symbols),
                "romans": list(self.romans), "beats": list(self.beats), "cycle_bars": self.cycle_bars,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progression:
        """Inverse of to_dict (reads key, symbols, beats, source)."""
        try:
            key = parse_key(str(data["key"]))
            symbols, beats = list(data["symbols"]), [int(b) for b in data["beats"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ChordError(f"chords: a saved progression needs key, symbols and beats ({error})") from error
        chords = []
        for symbol in symbols:
            chord = parse_chord_symbol(str(symbol))
            if chord is None:
                raise ChordError(f"chords: {symbol!r} is not a chord; {CHORDS_HELP}")
            chords.append(chord)
        return cls(key, tuple(chords), tuple(beats), str(data.get("source", "")))


# Named progressions in each mode (their usual minor or major counterpart in the other).
NAMED_PROGRESSIONS: dict[str, dict[str, str]] = {
    "axis": {"major": "I V vi IV", "minor": "i VI III VII"},
    "andalusian": {"major": "vi V IV III", "minor": "i VII VI V"},
    "doo-wop": {"major": "I vi IV V", "minor": "i VI iv V"},
    "ii-V-I": {"major": "ii7 | V7 | Imaj7 | Imaj7", "minor": "iiø7 | V7 | i7 | i7"},
    "royal road": {"major": "IVmaj7 | V7 | iii7 | vi", "minor": "VImaj7 | VII7 | v7 | i"},
    "pachelbel": {"major": "I V | vi iii | IV I | IV V", "minor": "i v | VI III | iv i | iv V"},
}
_NAME_ALIASES = {
    "axis": "axis", "axis of awesome": "axis", "four chord": "axis", "four-chord": "axis",
    "andalusian": "andalusian", "andalusian cadence": "andalusian",
    "doo-wop": "doo-wop", "doo wop": "doo-wop", "doowop": "doo-wop", "50s": "doo-wop", "fifties": "doo-wop",
    "ii-v-i": "ii-V-I", "2-5-1": "ii-V-I", "two-five-one": "ii-V-I",
    "royal road": "royal road", "pachelbel": "pachelbel", "canon": "pachelbel", "canon in d": "pachelbel",
}
_NAME_SUFFIX = re.compile(r"\s+(?:progression|chords?|changes|cadence|loop)$")


def _named(text: str) -> str | None:
    name = _NAME_SUFFIX.sub("", " ".join(text.lower().split()))
    return _NAME_ALIASES.get(name)


_SPLIT_DASH = re.compile(r"[–—]|(?<=[^\s|])-(?=[b#♭♯]?[A-Ga-gIViv])")


def _chord_tokens(text: str) -> list[str]:
    """Chords of one bar: separated by spaces, commas or dashes ('ii-V-I', 'ii - V'); a dash
    that is part of a symbol ('C-7') stays."""
    return [t for t in re.split(r"[\s,]+", _SPLIT_DASH.sub(" ", text)) if t and t != "-"]


def parse_chord_token(token: str, key: Key) -> Chord | None:
    """One chord, a symbol or a roman numeral; None when it is neither."""
    if len(token) > 24:
        return None
    return parse_roman(token, key) or parse_chord_symbol(token)


def parse_progression(text: str, key: Key) -> Progression:
    """Chords as a producer types them, in `key` (for roman numerals and spelling).

    'Am F C G' (one chord per bar), 'Am F | C G' ('|' separates bars; chords inside a bar
    share it: 1, 2 or 4 of them), 'vi IV I V', 'ii-V-I', 'iv7 i', 'V7/V', or a named
    progression ('axis', 'andalusian', 'ii-V-I', 'doo-wop', 'royal road', 'pachelbel')."""
    stripped = text.strip()
    if not stripped:
        raise ChordError(f"chords: empty; {CHORDS_HELP}")
    name = _named(stripped)
    if name is not None:
        parsed = parse_progression(NAMED_PROGRESSIONS[name][key.mode], key)
        return replace(parsed, source=f"named: {name}")
    if "12-bar" in stripped.lower() or "12 bar" in stripped.lower():
        raise ChordError("chords: a 12-bar blues is longer than a loop (at most 8 bars); type the bars "
                         "you want, e.g. 'I7 | IV7 | I7 | V7'")
    bars = stripped.strip("|").split("|") if "|" in stripped else _chord_tokens(stripped)
    if len(bars) > MAX_CYCLE_BARS:
        raise ChordError(f"chords: {len(bars)} bars is longer than a loop; use at most {MAX_CYCLE_BARS} bars "
                         "(the cycle repeats over the piece)")
    chords: list[Chord] = []
    beats: list[int] = []
    for bar in bars:
        tokens = _chord_tokens(bar)
        if not tokens:
            raise ChordError("chords: an empty bar between '|'; write a chord in every bar, e.g. 'Am | Am | F | G'")
        if len(tokens) not in (1, 2, 4):
            raise ChordError(f"chords: {len(tokens)} chords in the bar {bar.strip()!r} do not share its 4 beats "
                             "evenly; use 1, 2 or 4 chords per bar")
        for token in tokens:
            chord = parse_chord_token(token, key)
            if chord is None:
                raise ChordError(f"chords: {token!r} is not a chord; {CHORDS_HELP}")
            chords.append(chord)
            beats.append(BEATS_PER_BAR // len(tokens))
    return Progression(key, tuple(chords), tuple(beats), "typed")


# ------------------------------------------------------------------------- prompt finder

_CUES = {"chords", "chord", "progression", "changes", "over"}
_PAIR_CUES = {"over", "changes"}  # common words: need two chords after them
_PROMPT_TOKEN = re.compile(r"\||[^\s,;|]+")
_NAMED_ANYWHERE = re.compile(
    r"\b(andalusian|axis of awesome|royal road|pachelbel|ii-v-i|2-5-1|two-five-one)\b")
_NAMED_WITH_WORD = re.compile(
    r"\b(axis|doo[- ]?wop|50s|fifties|canon|four[- ]chord)\s+(?:progression|chords?|changes|cadence)\b")
_UPPER_SYMBOL = re.compile(r"[A-G]")
_C_MAJOR = Key(0, "major")  # any key: the finder only asks whether a word is a chord
_CHORD_START = frozenset("ABCDEFGabcdefgIVivb#♭♯")


@lru_cache(maxsize=4096)
def _prompt_chords(word: str) -> tuple[tuple[str, ...], bool] | None:
    """The chords in one prompt word ('Am', 'ii-V-I', 'G.') and whether the word alone
    reads as a chord run (3+ numerals or capital symbols joined by dashes, which no English
    word is); None when it is not chords. Cached: long prompts repeat their words."""
    word = word.strip(".:!?()[]\"'")
    if not word or word[0] not in _CHORD_START or len(word) > 40:
        return None
    if "-" in word or "–" in word or "—" in word:
        parts = tuple(p for p in _SPLIT_DASH.sub(" ", word).split(" ") if p)
        if len(parts) > 1 and all(parse_chord_token(p, _C_MAJOR) for p in parts):
            run = len(parts) >= 3 and all(_capital_symbol(p) or parse_roman(p, _C_MAJOR) for p in parts)
            return parts, run
    return ((word,), False) if parse_chord_token(word, _C_MAJOR) else None


@lru_cache(maxsize=4096)
def _capital_symbol(text: str) -> bool:
    """'Am', 'F#m7', 'C/E': a chord symbol written with a capital root (never an English
    word such as 'a' or 'I')."""
    return bool(_UPPER_SYMBOL.match(text)) and parse_chord_symbol(text) is not None


def progression_in_prompt(prompt: str) -> str | None:
    """The chords a prompt names, as text for `parse_progression`, or None.

    Fires on a cue word followed by chords ('chords Am F C G', 'chords: i VI III VII',
    'progression vi-IV-I-V', 'over Am F C G'; after 'over' and 'changes' two chords at
    least), on named progressions ('axis progression', 'andalusian', 'ii-V-I', 'doo-wop
    chords', '50s progression', 'royal road', 'pachelbel'), and without a cue on 3+ chords in
    a row that cannot be words: capital symbols ('lofi Am F C G') or dashed numerals
    ('vi-IV-I-V'). Linear in the prompt's length: one pass over its words, and every pattern
    is free of nested repetition (no catastrophic backtracking)."""
    lowered = prompt.lower()
    for pattern in (_NAMED_ANYWHERE, _NAMED_WITH_WORD):
        match = pattern.search(lowered)
        if match:
            return _NAME_ALIASES[" ".join(match.group(1).split()).replace("doo wop", "doo-wop")]
    words = _PROMPT_TOKEN.findall(prompt)
    reads = [None if w == "|" else _prompt_chords(w) for w in words]
    index = 0
    while index < len(words):
        if reads[index] is None and words[index] != "|":
            cue = words[index].lower().strip(":")
            if cue not in _CUES:
                index += 1
                continue
            position = index + 1
        else:
            cue, position = "", index
        found: list[str] = []
        distinctive = True  # every chord of the run is a capital symbol or in a dashed run
        while position < len(words) and (reads[position] is not None or words[position] == "|"):
            read = reads[position]
            if read is None:
                if found and found[-1] != "|":
                    found.append("|")
            else:
                found += read[0]
                distinctive = distinctive and (read[1] or all(_capital_symbol(p) for p in read[0]))
            position += 1
        while found and found[-1] == "|":
            found.pop()
        count = len(found) - found.count("|")
        if cue and (count >= 2 or count == 1 and cue not in _PAIR_CUES and _capital_symbol(found[0])):
            return " ".join(found)
        if not cue and count >= 3 and distinctive:
            return " ".join(found)
        index = max(position, index + 1)
    return None


# ------------------------------------------------------------------ defaults per genre


@dataclass(frozen=True)
class HarmonyStyle:
    """How a genre uses the progressions counted in POP909 (see docs/harmony.md)."""

    sevenths: bool = False  # voice every chord as its diatonic 7th chord (lofi, jazz, soul)
    min_chords: int = 2  # distinct chords in the cycle: a song needs movement...
    max_chords: int = 4  # ...a vamp has 1-2
    min_beats: int = 2  # shortest chord: 2 allows half-bar changes, 4 keeps one chord a bar or longer
    fifth_motion: float = 0.0  # extra weight per root motion down a fifth (ii-V-I), per chord


_TRIADS = HarmonyStyle()
_SEVENTHS = HarmonyStyle(sevenths=True)
_VAMP = HarmonyStyle(min_chords=1, max_chords=2, min_beats=4)
GENRE_HARMONY: dict[str, HarmonyStyle] = {
    "lofi": _SEVENTHS, "soul": _SEVENTHS, "hiphop": _SEVENTHS,
    "jazz": HarmonyStyle(sevenths=True, fifth_motion=3.0),
    "techno": _VAMP, "house": _VAMP, "trap": _VAMP, "dnb": _VAMP, "ambient": _VAMP,
    "pop": _TRIADS, "rock": _TRIADS, "reggae": _TRIADS, "latin": _TRIADS, "afrobeat": _TRIADS,
    "funk": _TRIADS,
}
# Roots outside the scale that pop borrows (semitones above the tonic): bIII, bVI, bVII
# from the parallel minor in major keys; the leading tone (vii°, and V's raised third is no
# root) in minor keys.
BORROWED_ROOTS: dict[str, frozenset[int]] = {"major": frozenset({3, 8, 10}), "minor": frozenset({11})}


@cache
def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    """The shipped progression statistics (`python -m stemforge.symbolic.harmony build` writes them)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ChordError(f"chords: cannot read the progression table {path} ({error}); rebuild it with "
                         "`python -m stemforge.symbolic.harmony build`") from error


def romans_in_key(romans: list[str], key: Key) -> tuple[Chord, ...]:
    """Table romans -> chords in `key`; a ChordError when the table holds something else."""
    chords = tuple(parse_roman(r, key) for r in romans)
    if any(c is None for c in chords):
        raise ChordError(f"chords: the progression table holds {' '.join(romans)!r}, not roman numerals; "
                         "rebuild it with `python -m stemforge.symbolic.harmony build`")
    return chords  # type: ignore[return-value]  # no None left


def _fifth_motions(chords: tuple[Chord, ...]) -> int:
    """Root moves down a fifth (ii->V, V->I) in the cycle, the last chord leading to the first."""
    roots = [c.root for c in chords]
    return sum(1 for a, b in zip(roots, roots[1:] + roots[:1]) if len(roots) > 1 and (b - a) % 12 == 5)


def with_seventh(chord: Chord, key: Key) -> Chord:
    """The chord's diatonic 7th chord: maj7 where the major 7th is in the scale (I, IV, bVI),
    else a dominant 7 (V, secondary dominants, bVII in minor); m7 on minor chords; m7b5 or
    dim7 on diminished ones. Other chords (sus, aug) stay as they are."""
    quality = chord_quality(chord)
    scale = key.scale_pitch_classes
    if quality == "maj":
        quality = "maj7" if (chord.root + 11) % 12 in scale else "7"
    elif quality == "min":
        quality = "min7"
    elif quality == "dim":
        quality = "hdim7" if (chord.root + 10) % 12 in scale else "dim7"
    else:
        return chord
    return make_chord(chord.root, quality, chord.bass)


def in_mode(chords: tuple[Chord, ...], key: Key) -> bool:
    """Roots in the scale or idiomatically borrowed (BORROWED_ROOTS), and a tonic chord (if
    any) of the key's own mode: no A major chord in an A minor piece."""
    allowed = {(key.tonic + s) % 12 for s in _SCALE_STEPS[key.mode] + tuple(BORROWED_ROOTS[key.mode])}
    return all(c.root in allowed and (c.root != key.tonic or (c.third == 4) == (key.mode == "major"))
               for c in chords)


@cache
def default_candidates(genre: str, mode: str) -> tuple[tuple[dict[str, Any], float], ...]:
    """(table entry, weight) of the POP909 progressions a genre may default to: cycles of
    1, 2 or 4 bars in the mode (`in_mode`), the genre's chord count and change rate;
    weighted by the number of songs that use them (jazz: more for ii-V motion)."""
    style = GENRE_HARMONY.get(genre, _TRIADS)
    key = Key(0, mode)
    out = []
    for entry in load_table()["modes"][mode]:
        chords = romans_in_key(entry["romans"].split(), key)
        if (entry["cycle_bars"] in DEFAULT_CYCLE_BARS and style.min_chords <= len(set(chords)) <= style.max_chords
                and min(entry["beats"]) >= style.min_beats and in_mode(chords, key)):
            weight = entry["songs"] * (1 + style.fifth_motion * _fifth_motions(chords) / len(chords))
            out.append((entry, weight))
    return tuple(out)


def default_progression(genre: str, key: Key, seed: int) -> Progression:
    """A progression for a piece that names no chords: drawn (weighted by how many POP909
    songs use it) from the real progressions of the key's mode that suit the genre, in
    the key, with 7th chords for lofi, jazz, soul and hip-hop. The draw depends on genre,
    mode and seed only, so the same seed in another key gives the same progression
    transposed. An unknown genre is treated as pop."""
    candidates = default_candidates(genre, key.mode)
    if not candidates:  # cannot happen with the shipped table; keeps a broken table usable
        return Progression(key, (make_chord(key.tonic, "maj" if key.mode == "major" else "min"),), (4,),
                           "tonic (no progression table)")
    rng = random.Random(f"{genre}|{key.mode}|{seed}")
    entry, _ = rng.choices(candidates, weights=[w for _, w in candidates])[0]
    rank = load_table()["modes"][key.mode].index(entry) + 1
    chords = romans_in_key(entry["romans"].split(), key)
    if GENRE_HARMONY.get(genre, _TRIADS).sevenths:
        chords = tuple(with_seventh(c, key) for c in chords)
    source = f"POP909 {key.mode} #{rank}: {entry['romans']} ({entry['songs']} songs)"
    return Progression(key, chords, tuple(entry["beats"]), source)


# ------------------------------------------------------------------ POP909 extraction

HALF_BAR = BEATS_PER_BAR * TPB // 2
WINDOW_BARS = 4
KEY_CHANGE_MARGIN_BARS = 2  # key_audio.txt times are audio seconds: keep clear of key changes


def _diatonic_triad(root: int, key: Key) -> str:
    steps = sorted((s + key.tonic) % 12 for s in _SCALE_STEPS[key.mode])
    if root not in steps:
        return "maj"
    i = steps.index(root)
    third, fifth = (steps[(i + 2) % 7] - root) % 12, (steps[(i + 4) % 7] - root) % 12
    return {(4, 7): "maj", (3, 7): "min", (3, 6): "dim"}.get((third, fifth), "maj")


_TRIAD_OF = {"maj": "maj", "7": "maj", "maj7": "maj", "maj6": "maj", "min": "min", "min7": "min",
             "min6": "min", "minmaj7": "min", "dim": "dim", "hdim7": "dim", "dim7": "dim", "aug": "aug",
             "aug7": "aug"}


def window_label(chord: Chord, key: Key) -> str:
    """The roman numeral a progression count uses: the chord's triad on its root (7ths,
    extensions and inversions dropped, so G7/B and G count as V), a sus chord as the
    key's own triad on that root (Fsus2 in C is IV)."""
    quality = _TRIAD_OF.get(chord_quality(chord)) or _diatonic_triad(chord.root, key)
    return roman_numeral(make_chord(chord.root, quality), key)


def half_bar_slots(spans: list[ChordSpan], total_bars: int) -> list[Chord | None]:
    """The chord of every half bar: the one sounding longest in it (the earlier on a tie);
    None when chords cover less than half of it."""
    best: list[tuple[int, Chord | None]] = [(0, None)] * (2 * total_bars)
    for span in sorted(spans, key=lambda s: s.start):
        for slot in range(max(0, span.start // HALF_BAR), min(len(best), -(-span.end // HALF_BAR))):
            overlap = min(span.end, (slot + 1) * HALF_BAR) - max(span.start, slot * HALF_BAR)
            if overlap > best[slot][0]:
                best[slot] = (overlap, span.chord)
    return [chord if overlap >= HALF_BAR // 2 else None for overlap, chord in best]


def cycle_of(labels: list[str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Half-bar labels of a window -> (chords, beats) of its shortest cycle: a 2-bar pattern
    played twice is a 2-bar cycle, one chord held 4 bars a 1-bar cycle."""
    while len(labels) > 2 and len(labels) % 2 == 0 and labels[: len(labels) // 2] == labels[len(labels) // 2:]:
        labels = labels[: len(labels) // 2]
    romans: list[str] = []
    beats: list[int] = []
    for label in labels:
        if romans and romans[-1] == label:
            beats[-1] += BEATS_PER_BAR // 2
        else:
            romans.append(label)
            beats.append(BEATS_PER_BAR // 2)
    return tuple(romans), tuple(beats)


def _window_key(key_spans: list[tuple[int, int, Key]], lo: int, hi: int) -> Key | None:
    """The annotated key of ticks [lo, hi): one key span holds it, clear of key changes."""
    margin = KEY_CHANGE_MARGIN_BARS * BEATS_PER_BAR * TPB
    for index, (start, end, key) in enumerate(key_spans):
        after_change = index > 0 and lo < start + margin
        before_change = index + 1 < len(key_spans) and hi > end - margin
        if (start <= lo or index == 0) and (hi <= end or index + 1 == len(key_spans)) \
                and not after_change and not before_change:
            return key
    return None


def song_windows(spans: list[ChordSpan], key_spans: list[tuple[int, int, Key]], relative_minor: bool,
                 skipped: Counter) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
    """(mode, romans, beats) of a song's 4-bar windows, one every 4 bars. A window needs a
    chord on each half bar and one key.

    Phrases rarely start on the first annotated downbeat (pickups, odd intros), and a loop
    read from the middle of a phrase starts on the wrong chord: the windows start at the
    phase (0-3 bars after the first downbeat) where most of them begin on the tonic (the
    earliest phase on a tie). With `relative_minor`, a major-key window that starts and
    ends on vi counts in the relative minor too."""
    total_bars = max(s.end for s in spans) // (BEATS_PER_BAR * TPB)
    slots = half_bar_slots(spans, total_bars)
    options: list[tuple[float, int, list[tuple[Key, list[Chord]]], Counter]] = []
    for phase in range(WINDOW_BARS):
        found: list[tuple[Key, list[Chord]]] = []
        missed: Counter = Counter()
        for bar in range(phase, total_bars - WINDOW_BARS + 1, WINDOW_BARS):
            window = [c for c in slots[2 * bar: 2 * (bar + WINDOW_BARS)] if c is not None]
            key = _window_key(key_spans, bar * BEATS_PER_BAR * TPB, (bar + WINDOW_BARS) * BEATS_PER_BAR * TPB)
            if len(window) < 2 * WINDOW_BARS:
                missed["window without a chord on every half bar"] += 1
            elif key is None:
                missed["window near a key change"] += 1
            else:
                found.append((key, window))
        on_tonic = sum(1 for key, window in found if window[0].root == key.tonic)
        options.append((on_tonic / max(1, len(found)), -phase, found, missed))
    _, _, found, missed = max(options, key=lambda o: (o[0], o[1]))
    skipped.update(missed)
    out = []
    for key, window in found:
        labels = [window_label(chord, key) for chord in window]
        out.append((key.mode, *cycle_of(labels)))
        if relative_minor and key.mode == "major" and labels[0] == labels[-1] == "vi":
            minor = Key((key.tonic + 9) % 12, "minor")
            out.append(("minor", *cycle_of([window_label(chord, minor) for chord in window])))
    return out


def extract_progressions(pop909: Path, max_songs: int | None = None, top: int = 150,
                         relative_minor: bool = False) -> dict[str, Any]:
    """Count the 4-bar chord cycles of POP909 (chord_midi.txt, key_audio.txt, beat_midi.txt,
    index.xlsx) as roman numerals per mode; the `top` of each mode by songs using them."""
    from stemforge.symbolic.corpus import _read_pop909_index, load_pop909_harmony  # heavy: only to build

    index = _read_pop909_index(pop909 / "index.xlsx")
    folders = sorted(p for p in pop909.iterdir() if p.is_dir() and p.name.isdigit())[:max_songs]
    windows: Counter = Counter()
    songs: dict[tuple, set[str]] = defaultdict(set)
    skipped: Counter = Counter()
    used = 0
    for folder in folders:
        harmony = load_pop909_harmony(folder, index.get(folder.name.zfill(3)))
        if isinstance(harmony, str):
            skipped[f"song: {harmony}"] += 1
            continue
        found = song_windows(harmony.chords, harmony.key_spans, relative_minor, skipped)
        used += bool(found)
        for pattern in found:
            windows[pattern] += 1
            songs[pattern].add(harmony.song_id)
    modes: dict[str, list[dict[str, Any]]] = {}
    for mode in ("major", "minor"):
        patterns = sorted((p for p in windows if p[0] == mode),
                          key=lambda p: (-len(songs[p]), -windows[p], " ".join(p[1]), p[2]))
        modes[mode] = [{"romans": " ".join(p[1]), "beats": list(p[2]), "cycle_bars": sum(p[2]) // BEATS_PER_BAR,
                        "songs": len(songs[p]), "windows": windows[p]} for p in patterns[:top]]
    return {
        "source": SOURCE,
        "built_by": "python -m stemforge.symbolic.harmony build",
        "method": "4-bar windows every 4 bars from each song's phrase phase (the bar 0-3 after its first "
                  "downbeat where most windows start on the tonic), chords snapped to half bars, triads on "
                  "their roots as roman numerals of the annotated key, reduced to the shortest cycle; "
                  "ranked by songs using them",
        "relative_minor": relative_minor,
        "songs_read": len(folders),
        "songs_used": used,
        "windows": {mode: sum(n for p, n in windows.items() if p[0] == mode) for mode in ("major", "minor")},
        "distinct": {mode: sum(1 for p in windows if p[0] == mode) for mode in ("major", "minor")},
        "skipped": dict(sorted(skipped.items())),
        "modes": modes,
    }


def write_table(table: dict[str, Any], path: Path) -> None:
    """JSON with one progression per line: small, diffable, deterministic."""
    head = {k: v for k, v in table.items() if k != "modes"}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    lines.append('  "modes": {')
    for m, mode in enumerate(("major", "minor")):
        entries = table["modes"][mode]
        lines.append(f"    {json.dumps(mode)}: [")
        lines += [f"      {json.dumps(e, ensure_ascii=False)}{',' if i + 1 < len(entries) else ''}"
                  for i, e in enumerate(entries)]
        lines.append("    ]" + ("," if m == 0 else ""))
    lines += ["  }", "}"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemforge.symbolic.harmony",
                                     description="Rebuild symbolic/progressions.json from POP909.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="count POP909's chord progressions")
    build.add_argument("--pop909", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                       / "pop909", help="the POP909 folder (default: ../shared/data/pop909)")
    build.add_argument("--out", type=Path, default=TABLE_PATH, help=f"default: {TABLE_PATH}")
    build.add_argument("--top", type=int, default=150, help="progressions kept per mode (default 150)")
    build.add_argument("--max-songs", type=int, default=None, help="read only the first N songs")
    build.add_argument("--relative-minor", action="store_true",
                       help="also count major-key windows that start and end on vi as minor")
    args = parser.parse_args(argv)
    if not (args.pop909 / "index.xlsx").is_file():
        print(f"error: {args.pop909}: not a POP909 folder (no index.xlsx)", file=sys.stderr)
        return 2
    table = extract_progressions(args.pop909, args.max_songs, args.top, args.relative_minor)
    write_table(table, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): {table['songs_used']} of "
          f"{table['songs_read']} songs, windows {table['windows']}, distinct {table['distinct']}")
    for mode in ("major", "minor"):
        print(f"top 10 {mode}:")
        for entry in table["modes"][mode][:10]:
            print(f"  {entry['romans']:<24} beats {entry['beats']}  {entry['songs']} songs, "
                  f"{entry['windows']} windows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
