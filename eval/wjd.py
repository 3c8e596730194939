"""The Weimar Jazz Database (via jazzodata, `../shared/data/wjd`): 456 transcribed jazz solos
with the chord and an estimated bass pitch on every beat, read into typed dataclasses.

Plain functions over the three R data files (read with pyreadr, which needs pandas):
`wjd_meta.rda` (one row per solo), `wjd_transforms.rda` (one row per note) and
`wjd_annotated_beat_tracks.rda` (one row per beat). Positions are metrical, as annotated:
bar number, beat (1-based) and `mcm_48`, the onset in 48ths of the bar (12 a beat in 4/4, the
project's 1/12-beat grid), so a solo lands on the grid without any beat tracking. The notes
table has no duration; `solo_notes` ends each note at the next onset, at most a beat later.

This module imports nothing from `eval/` (only the symbolic types), so the corpus builder can
use it as it is. Licence: jazzodata MIT, upstream ODbL 1.0; credit "Weimar Jazz Database
(Pfleiderer, Frieler, Abesser, Zaddach, Burkhart 2017), via jazzodata (MIT)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.harmony import ChordSpan
from stemforge.symbolic.music.keys import Key

# one reading of WJD's chord and key labels, the harmony tables' (an augmented major 7th,
# 'Ab+j7', is read as its triad: the chord qualities have no augmented major 7th)
from stemforge.symbolic.recipes.harmony_data import parse_wjd_chord, parse_wjd_key

GRID_PER_BAR = 48  # mcm_48: 48ths of a bar
FILES = {"meta": "wjd_meta.rda", "notes": "wjd_transforms.rda", "beats": "wjd_annotated_beat_tracks.rda"}


class WjdError(ValueError):
    """A WJD folder or file that cannot be read; the message names it."""


@dataclass(frozen=True)
class WjdNote:
    bar: int  # as annotated (a pickup bar may be 0 or negative)
    beat: int  # 1-based
    position_48: int  # onset in 48ths of the bar (mcm_48)
    onset_seconds: float
    pitch: int  # MIDI
    chord: str  # the chord symbol sounding (WJD syntax: "C-7", "Fj7", "Bb7alt", "NC")
    phrase_begin: bool


@dataclass(frozen=True)
class WjdBeat:
    bar: int
    beat: int  # 1-based
    onset_seconds: float
    signature: str  # "4/4", "3/4", ...
    chord: str
    bass_pitch: int | None  # estimated from the recording (octave errors happen); None where missing
    form: str  # section label: "A1", "B1", "I1" (intro) ...


@dataclass
class WjdSolo:
    melid: int
    performer: str
    title: str
    instrument: str  # ts, tp, as, tb, ...
    style: str  # POSTBOP, HARDBOP, SWING, BEBOP, COOL, TRADITIONAL, FUSION, FREE
    rhythm_feel: str  # SWING, TWOBEAT, LATIN, FUNK, BALLAD, ...
    tempo_bpm: float
    key: Key | None  # None for chromatic or unannotated solos
    signature: str
    notes: list[WjdNote] = field(default_factory=list)
    beats: list[WjdBeat] = field(default_factory=list)


def _read(path: Path):
    import pyreadr

    if not path.is_file():
        raise WjdError(f"{path}: missing (see ../shared/data/wjd/README.md)")
    try:
        frames = pyreadr.read_r(str(path))
    except Exception as error:  # pyreadr raises its own and library errors on damaged files
        raise WjdError(f"{path}: not a readable R data file ({error})") from error
    return next(iter(frames.values()))


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _rows(frame, columns: tuple[str, ...]):
    """The frame's rows as tuples of plain values (pandas' own row iteration is ~10x slower)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise WjdError(f"WJD table lacks the columns {missing}")
    return zip(*(frame[c].tolist() for c in columns))


def read_wjd(root: Path) -> list[WjdSolo]:
    """Every solo of the WJD folder `root` (the one holding the three .rda files), its notes
    and beats in time order."""
    root = Path(root)
    meta, notes, beats = (_read(root / FILES[name]) for name in ("meta", "notes", "beats"))
    solos: dict[int, WjdSolo] = {}
    for row in _rows(meta, ("melid", "performer", "title", "instrument", "style", "rhythmfeel", "avgtempo", "key",
                            "signature")):
        melid, performer, title, instrument, style, feel, tempo, key, signature = row
        solos[int(melid)] = WjdSolo(int(melid), str(performer), str(title), str(instrument), str(style), str(feel),
                                    float(tempo), parse_wjd_key(str(key)), str(signature))
    for melid, bar, beat, position, onset, pitch, chord, begin in _rows(
            notes, ("melid", "bar", "beat", "mcm_48", "onset", "pitch_raw", "chord", "phrase_begin")):
        solo = solos.get(int(melid))
        if solo is not None:
            solo.notes.append(WjdNote(int(bar), int(beat), int(position), float(onset), int(pitch), str(chord),
                                      _number(begin) == 1.0))
    for melid, bar, beat, onset, signature, chord, bass, form in _rows(
            beats, ("melid", "bar", "beat", "onset", "signature", "chord", "bass", "form")):
        solo = solos.get(int(melid))
        if solo is not None:
            pitch = _number(bass)
            solo.beats.append(WjdBeat(int(bar), int(beat), float(onset), str(signature).strip("'"), str(chord),
                                      None if pitch is None else int(pitch), str(form)))
    for solo in solos.values():
        solo.notes.sort(key=lambda n: n.onset_seconds)
        solo.beats.sort(key=lambda b: b.onset_seconds)
    return [solos[melid] for melid in sorted(solos)]


def solo_notes(solo: WjdSolo, first_bar: int, ticks_per_beat: int, beats_per_bar: int = 4,
               velocity: int = 90) -> list[Note]:
    """The solo's notes as `Note`s, bar `first_bar` at tick 0, on the annotated metrical grid;
    each note lasts until the next onset, at most one beat (the table has no durations)."""
    ticks_per_bar = ticks_per_beat * beats_per_bar
    starts = [(n.bar - first_bar) * ticks_per_bar + n.position_48 * ticks_per_bar // GRID_PER_BAR for n in solo.notes]
    out = []
    following = later = None  # walking backwards: the next onset after this note's, the last note's onset
    for start, note in zip(reversed(starts), reversed(solo.notes)):
        if later is not None and later > start:
            following = later
        end = start + ticks_per_beat if following is None else min(following, start + ticks_per_beat)
        out.append(Note(start, max(ticks_per_bar // GRID_PER_BAR, end - start), note.pitch, velocity))
        later = start
    return out[::-1]


def solo_bass(solo: WjdSolo, first_bar: int, ticks_per_beat: int, beats_per_bar: int = 4,
              velocity: int = 80) -> list[Note]:
    """The estimated bass pitch of every beat as a one-beat `Note` (beats without one skipped)."""
    return [Note(((b.bar - first_bar) * beats_per_bar + b.beat - 1) * ticks_per_beat, ticks_per_beat, b.bass_pitch,
                 velocity) for b in solo.beats if b.bass_pitch is not None]


def solo_chords(solo: WjdSolo, first_bar: int, ticks_per_beat: int, beats_per_bar: int = 4) -> list[ChordSpan]:
    """The chord of every beat as `ChordSpan`s, consecutive beats of one symbol merged; 'NC'
    and unreadable symbols leave a gap."""
    spans: list[ChordSpan] = []
    previous = None
    for beat in solo.beats:
        start = ((beat.bar - first_bar) * beats_per_bar + beat.beat - 1) * ticks_per_beat
        chord = parse_wjd_chord(beat.chord)
        if chord is None:
            previous = None
            continue
        if previous == beat.chord and spans and spans[-1].end == start:
            spans[-1] = ChordSpan(spans[-1].start, start + ticks_per_beat, spans[-1].chord)
        else:
            spans.append(ChordSpan(start, start + ticks_per_beat, chord))
        previous = beat.chord
    return spans
