"""Harmony: chords, chord progressions and the plan a piece follows.

Loop music rests on a short chord cycle (1, 2 or 4 bars) repeated under the whole piece:
the bass takes its roots on the downbeats and chord changes, the melody lands chord tones on
its strong beats. This module owns the chord types (`Chord`, `ChordSpan`), reads chords as
producers write them (symbols "Am7 F C/E", roman numerals "vi IV I V", POP909's Harte
labels "F#:maj7/5"), finds chords named in a prompt, and picks a default progression per
genre from real progressions counted in POP909, the McGill Billboard songs (by artist
style) and the Weimar Jazz Database (`symbolic/music/progressions.json`, rebuilt by
`python -m stemforge.symbolic.recipes.progressions build`).
`docs/harmony.md` is the user-facing description.

Times are ticks at 480 per beat unless a caller says otherwise; bars are 4/4.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.core.ticks import BEATS_PER_BAR
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as TPB
from stemforge.symbolic.music.genres import GenreHarmony, genre_entry, genre_table
from stemforge.symbolic.music.keys import KEY_NAMES, PITCH_CLASSES, Key, parse_key

MAX_CYCLE_BARS = 8  # a typed progression may be this long; defaults are 1, 2 or 4 bars
DEFAULT_CYCLE_BARS = (1, 2, 4)  # what 4-bar windows hold; they fit loops of 4 and 8 bars
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
        held over a bar line is written again in the next bar. One bar of several chords
        is written between bar lines, '| Am F |' ('Am F' would read as two bars)."""
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
        return f"| {bars[0]} |" if len(bars) == 1 and " " in bars[0] else " | ".join(bars)

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

BILLBOARD_STYLES = ("soul", "funk", "disco", "rock", "pop", "country")  # harmony_data.ARTIST_STYLES
# The table's sources -> how run.json names them. Each is counted from one real data set.
SOURCE_NAMES: dict[str, str] = {"pop909": "POP909", "wjd": "WJD",
                                **{f"billboard_{style}": f"Billboard {style}" for style in BILLBOARD_STYLES}}
VAMP_SOURCE_SHARE = 0.15  # a source vamps when at least this share of its 4-bar windows holds one chord


# Where each genre's default progressions come from and how they are voiced: its `harmony`
# in the genre table (configs/genres.yaml; GenreHarmony is defined in symbolic/music/genres.py).
GENRE_HARMONY: dict[str, GenreHarmony] = {g.name: g.harmony for g in genre_table().genres.values()}


@cache
def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    """The shipped progression statistics (`python -m stemforge.symbolic.recipes.progressions build` writes them)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ChordError(f"chords: cannot read the progression table {path} ({error}); rebuild it with "
                         "`python -m stemforge.symbolic.recipes.progressions build`") from error


def source_table(source: str) -> dict[str, Any]:
    """One source's counts and figures (vamp_share, chords_per_4_bars, ...) from the table."""
    try:
        return load_table()["sources"][source]
    except KeyError as error:
        raise ChordError(f"chords: the progression table has no source {source!r}; rebuild it with "
                         "`python -m stemforge.symbolic.recipes.progressions build`") from error


def source_entries(source: str, mode: str) -> list[dict[str, Any]]:
    """A source's progressions of one mode, most used first. POP909's stay at the table's
    top level (`modes`), where readers of the POP909-only table find them."""
    return load_table()["modes"][mode] if source == "pop909" else source_table(source)["modes"][mode]


def romans_in_key(romans: list[str], key: Key) -> tuple[Chord, ...]:
    """Table romans -> chords in `key`; a ChordError when the table holds something else."""
    chords = tuple(parse_roman(r, key) for r in romans)
    if any(c is None for c in chords):
        raise ChordError(f"chords: the progression table holds {' '.join(romans)!r}, not roman numerals; "
                         "rebuild it with `python -m stemforge.symbolic.recipes.progressions build`")
    return chords  # type: ignore[return-value]  # no None left


def with_seventh(chord: Chord, key: Key) -> Chord:
    """The chord's diatonic 7th chord: maj7 where the major 7th is in the scale (I, IV, bVI),
    else a dominant 7 (V, secondary dominants, bVII in minor); m7 on minor chords; m7b5 or
    dim7 on diminished ones. Other chords (7th and 6th chords, sus, aug) stay as they are."""
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


def as_triad(chord: Chord) -> Chord:
    """The triad under a 7th or 6th chord (G7 -> G, Am7b5 -> Adim); sus chords stay sus."""
    quality = _TRIAD_OF.get(chord_quality(chord))
    return make_chord(chord.root, quality, chord.bass) if quality else chord


def voiced(chords: tuple[Chord, ...], key: Key, voicing: str) -> tuple[Chord, ...]:
    if voicing == "add":
        return tuple(with_seventh(c, key) for c in chords)
    if voicing == "triads":
        return tuple(as_triad(c) for c in chords)
    return chords


def tonic_in_mode(chords: tuple[Chord, ...], key: Key) -> bool:
    """A tonic chord, if any, has the key's own third: no A major chord in an A minor piece
    (the real data has a few: a Picardy third, a blues song's minor i over a major key)."""
    return all(c.root != key.tonic or c.third not in (3, 4) or (c.third == 4) == (key.mode == "major")
               for c in chords)


def out_of_key(chord: Chord, key: Key) -> bool:
    """A chord tone outside the key's scale (natural minor in minor keys): a secondary
    dominant (A7 in C), a borrowed chord (Bb, Fm in C), the major V of a minor key."""
    return not chord_tones(chord) <= key.scale_pitch_classes


@dataclass(frozen=True)
class Candidate:
    """A table progression a genre may default to, and its share of the draws."""

    source: str
    rank: int  # place in the source's list of the mode, 1 = used by the most songs
    romans: tuple[str, ...]
    beats: tuple[int, ...]
    songs: int
    weight: float


MIN_MODE_WINDOWS = 100  # fewer windows in a mode (Billboard country minor has 9): the source's overall shares
# A default progression cycles over the whole piece, so a drawn vamp holds one chord for all
# 8 bars, while real songs often vamp for 4 bars and move on: of Billboard's 8-bar excerpts
# 26% (funk) and 12% (disco) hold one chord against 42% and 18% of their 4-bar windows
# (bench/quality.py's real column). Vamps are drawn at this share of the 4-bar figure so a
# piece vamps as often as a real 8-bar excerpt does.
PIECE_VAMP_RATIO = 0.64


def draw_shares(source: str, mode: str) -> dict[str, float]:
    """The share of a source's draws that go to each kind of progression, as its real
    windows of the mode show them: "vamp" (one chord for 4 bars; only where the source
    vamps, VAMP_SOURCE_SHARE), "outside" (moving, with a chord outside the key) and
    "inside" (moving, in the key). Counted over every window, not just the listed ones:
    the common progressions at the top of a list are mostly diatonic, the chromatic ones
    spread over a long tail."""
    table = source_table(source)
    pick = mode if table["windows"][mode] >= MIN_MODE_WINDOWS else "all"
    vamp = table["vamp_share"][pick] * PIECE_VAMP_RATIO if table["vamp_share"]["all"] >= VAMP_SOURCE_SHARE else 0.0
    outside = table["out_of_key_share_moving"][pick]
    return {"vamp": vamp, "outside": (1 - vamp) * outside, "inside": (1 - vamp) * (1 - outside)}


def _kind(chords: tuple[Chord, ...], beats: tuple[int, ...], key: Key) -> str | None:
    """Which draw share a table progression belongs to (`draw_shares`); None when it cannot
    be a default: a tonic chord of the other mode, or no tonic chord starting on a bar line
    (a loop states its key by opening on the tonic, `opening_on_tonic`; a loop of one chord
    or of IV iii ii V would make another chord its tonic)."""
    starts = [sum(beats[:i]) for i in range(len(beats))]
    if not tonic_in_mode(chords, key) or not any(
            c.root == key.tonic and start % BEATS_PER_BAR == 0 for c, start in zip(chords, starts)):
        return None
    if len({c.root for c in chords}) == 1:
        return "vamp"
    return "outside" if any(out_of_key(c, key) for c in chords) else "inside"


def _source_candidates(source: str, mode: str, share: float) -> list[Candidate]:
    """The source's progressions of the mode that can be a default (cycles of 1, 2 or 4
    bars, `_kind`), weighted by the songs using them within their kind, each kind given
    its real share of the draws (`draw_shares`; a kind the list lacks passes its share to
    the others), all scaled to `share`."""
    key = Key(0, mode)
    kinds: dict[str, list[tuple[int, dict[str, Any]]]] = {"vamp": [], "outside": [], "inside": []}
    for rank, entry in enumerate(source_entries(source, mode), 1):
        if entry["cycle_bars"] in DEFAULT_CYCLE_BARS:
            kind = _kind(romans_in_key(entry["romans"].split(), key), tuple(entry["beats"]), key)
            if kind:
                kinds[kind].append((rank, entry))
    targets = {kind: part for kind, part in draw_shares(source, mode).items() if kinds[kind] and part > 0}
    out = []
    for kind, part in targets.items():
        total = sum(entry["songs"] for _, entry in kinds[kind])
        out += [Candidate(source, rank, tuple(entry["romans"].split()), tuple(entry["beats"]), entry["songs"],
                          share * part / sum(targets.values()) * entry["songs"] / total)
                for rank, entry in kinds[kind]]
    return out


def opening_on_tonic(chords: tuple[Chord, ...], beats: tuple[int, ...], key: Key
                     ) -> tuple[tuple[Chord, ...], tuple[int, ...]]:
    """The cycle rotated to open on its first tonic chord that starts on a bar line: the
    same loop heard from its tonic, so a piece states its key first without drawing again
    (which would favour the progressions that sit on the tonic). Unchanged without one."""
    position = 0
    for index, (chord, length) in enumerate(zip(chords, beats)):
        if chord.root == key.tonic and position % BEATS_PER_BAR == 0:
            return chords[index:] + chords[:index], beats[index:] + beats[:index]
        position += length
    return chords, beats


@cache
def default_candidates(genre: str, mode: str) -> tuple[Candidate, ...]:
    """The progressions a genre may default to in a mode, from its GENRE_HARMONY sources
    (POP909 where those have none in the mode). The label-free material has its own entry."""
    style = genre_entry(genre).harmony
    try:
        out = [c for source, share in style.sources for c in _source_candidates(source, mode, share)]
    except ChordError as error:  # a source the genre table names that the progression table lacks
        raise ChordError(f"genre {genre!r}, harmony: {str(error).removeprefix('chords: ')}") from error
    return tuple(out or _source_candidates("pop909", mode, 1.0))


def _first_bars(chords: tuple[Chord, ...], beats: tuple[int, ...], bars: int
                ) -> tuple[tuple[Chord, ...], tuple[int, ...]]:
    """The cycle cut to its first `bars` bars (the last chord shortened)."""
    limit, kept, lengths, position = bars * BEATS_PER_BAR, [], [], 0
    for chord, length in zip(chords, beats):
        if position >= limit:
            break
        kept.append(chord)
        lengths.append(min(length, limit - position))
        position += length
    return tuple(kept), tuple(lengths)


def default_progression(genre: str, key: Key, seed: int, loop_bars: int = 0) -> Progression:
    """A progression for a piece that names no chords: drawn from the real progressions of
    the genre's sources (GENRE_HARMONY) in the key's mode, weighted by the songs using
    them, voiced as the genre voices chords, in the key. The draw depends on genre, mode,
    seed and loop only, so the same seed in another key gives the same progression
    transposed. The cycle opens on its tonic chord where it has one on a bar line
    (`opening_on_tonic`). With `loop_bars` (the piece repeats every so many bars) it is
    drawn among the cycles that fit the loop; where the genre has none (POP909 has no
    1-bar cycles that move), the drawn cycle's first `loop_bars` bars.
    `Progression.source` names the table entry ("Billboard soul minor #2: i7 iv7 (6 songs)")."""
    candidates = default_candidates(genre, key.mode)
    if loop_bars > 0:
        candidates = tuple(c for c in candidates if loop_bars % (sum(c.beats) // BEATS_PER_BAR) == 0) or candidates
    if not candidates:  # cannot happen with the shipped table; keeps a broken table usable
        return Progression(key, (make_chord(key.tonic, "maj" if key.mode == "major" else "min"),), (4,),
                           "tonic (no progression table)")
    rng = random.Random(f"{genre}|{key.mode}|{seed}")
    pick = rng.choices(candidates, weights=[c.weight for c in candidates])[0]
    voicing = genre_entry(genre).harmony.voicing
    chords, beats = opening_on_tonic(voiced(romans_in_key(list(pick.romans), key), key, voicing), pick.beats, key)
    unit = ("tune" if pick.source == "wjd" else "song") + ("s" if pick.songs != 1 else "")
    source = f"{SOURCE_NAMES[pick.source]} {key.mode} #{pick.rank}: {' '.join(pick.romans)} ({pick.songs} {unit})"
    if 0 < loop_bars < sum(beats) // BEATS_PER_BAR:
        chords, beats = _first_bars(chords, beats, loop_bars)
        source += f", its first {loop_bars} bar{'s' if loop_bars > 1 else ''}"
    return Progression(key, chords, beats, source)


# the triad a chord quality sounds as (as_triad; progression counts read it too)
_TRIAD_OF = {"maj": "maj", "7": "maj", "maj7": "maj", "maj6": "maj", "min": "min", "min7": "min",
             "min6": "min", "minmaj7": "min", "dim": "dim", "hdim7": "dim", "dim7": "dim", "aug": "aug",
             "aug7": "aug"}
