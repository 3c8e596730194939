"""One drum map: how every part of stemforge reads a drum note (prepare, the corpus builder,
seed clips, groove templates and the novelty check all call this module).

Kits write notes that General MIDI does not have, or that mean another drum on the kit
that wrote them. Roland V-Drums modules (TD-11 in the Groove MIDI Dataset, TD-1...TD-50)
send hi-hat edge hits as 22 (closed) and 26 (open), a third of GMD's hi-hat hits, and their
tom-3 rim, crash-2 edge and crash-1 edge as 58, 52 and 55, which General MIDI calls
vibraslap, China cymbal and splash. Two readings follow:

- `GM_EXTENSIONS` (everywhere): 22 and 26 are no General MIDI (or GM2) drum at all, so they
  are the V-Drums hats wherever they appear.
- `VDRUMS_RIMS` (in a file of a V-Drums kit): 58 -> 43, 52 -> 57, 55 -> 49. A kit is known
  by its edge hats (`kit_of`); `pipeline prepare` also reads every file of a folder that
  holds such a file as that kit (a folder of takes is one kit: in the Groove MIDI Dataset
  146 of the 148 files with rims but no edge hats sit next to files that have them), and
  `drum_kit: vdrums|gm` in the prepare config says it outright.

`fold` then reduces the variants of one drum to one note (electric snare -> snare, both
crashes -> crash...): the default corpus is written folded (`GMD_TO_GM`, `GM_FOLD`), and
the novelty check reads every kit folded (`novelty_pitch`), so a copy is the same bars
whichever kit or reading wrote it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from stemforge.symbolic.music.arrangement import Note

KICK, RIM, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, RIDE_BELL, SHAKER = 43, 47, 50, 49, 51, 53, 70
CRASH_2 = 57

GM_PERCUSSION = range(35, 82)  # General MIDI 1 drum notes (GM2 adds 27-34 and 82-87)

# Notes no General MIDI kit has: V-Drums hi-hat edges.
GM_EXTENSIONS: dict[int, int] = {22: CLOSED_HAT, 26: OPEN_HAT}
# V-Drums rim and edge hits on notes General MIDI gives to other instruments.
VDRUMS_RIMS: dict[int, int] = {58: LOW_TOM, 52: CRASH_2, 55: CRASH}
KITS: tuple[str, ...] = ("auto", "gm", "vdrums")

# One note per drum: what the default corpus is written in.
FOLD: dict[int, int] = {35: KICK, 40: SNARE, 41: LOW_TOM, 45: MID_TOM, 48: HIGH_TOM, 52: CRASH, 55: CRASH,
                        CRASH_2: CRASH, 59: RIDE}

# The notes of the Roland TD-11 that recorded the Groove MIDI Dataset (Magenta's GMD docs).
TD11_NOTES: tuple[int, ...] = (36, 38, 40, 37, 48, 50, 45, 47, 43, 58, 46, 26, 42, 22, 44, 49, 55, 57, 52, 51, 59, 53)


def kit_of(pitches: Iterable[int]) -> str:
    """"vdrums" when the notes hold V-Drums edge hats (22/26), else "gm"."""
    return "vdrums" if any(p in GM_EXTENSIONS for p in pitches) else "gm"


def table(kit: str) -> dict[int, int]:
    """Pitch -> General MIDI drum for a kit ("gm" or "vdrums"); pitches not listed stay."""
    if kit not in ("gm", "vdrums"):
        raise ValueError(f"drum kit {kit!r}: use one of {KITS}")
    return {**GM_EXTENSIONS, **VDRUMS_RIMS} if kit == "vdrums" else dict(GM_EXTENSIONS)


def to_general_midi(pitch: int, kit: str) -> int:
    return table(kit).get(pitch, pitch)


def fold(pitch: int) -> int:
    """The one note of a drum's variants (a General MIDI pitch in, a General MIDI pitch out)."""
    return FOLD.get(pitch, pitch)


def folded_table(kit: str, pitches: Iterable[int]) -> dict[int, int]:
    """Pitch -> folded General MIDI drum for each of `pitches` read as `kit`, for those
    that land on a General MIDI drum (35-81); the others are left out (dropped)."""
    out = {}
    for pitch in pitches:
        general = fold(to_general_midi(pitch, kit))
        if general in GM_PERCUSSION:
            out[pitch] = general
    return out


# The corpus builder's tables (symbolic/recipes/corpus.py): GMD performances read as the TD-11 and
# folded (notes outside the TD-11 dropped), General MIDI songs (Freedoom) folded.
GMD_TO_GM: dict[int, int] = folded_table("vdrums", TD11_NOTES)
GM_FOLD: dict[int, int] = {p: fold(to_general_midi(p, "gm")) for p in (*FOLD, *GM_EXTENSIONS)
                           if fold(to_general_midi(p, "gm")) != p}


def novelty_pitch(pitch: int) -> int:
    """How the novelty check reads a drum note: every extended note as its V-Drums drum and
    every variant folded, so a GMD groove read without its edge hats (a 4-bar excerpt may
    have none), a General MIDI copy and the folded corpus all say the same bars. (A General
    MIDI vibraslap reads as a tom here; only the check reads it so.)"""
    return fold(to_general_midi(pitch, "vdrums"))


def map_drums(notes: list[tuple[int, int, int]], table: dict[int, int], keep_gm: bool) -> list[tuple[int, int, int]]:
    """(tick, pitch, velocity) hits with pitches mapped to GM; unknown pitches dropped."""
    out = []
    for tick, pitch, velocity in notes:
        mapped = table.get(pitch, pitch if keep_gm and pitch in GM_PERCUSSION else None)
        if mapped is not None:
            out.append((tick, mapped, velocity))
    return out


def map_drum_notes(notes: list[Note], low: int, high: int, kit: str | None = None) -> tuple[list[Note], Counter, Counter]:
    """Drum notes as the General MIDI drums the tokenizer holds ([low, high)), read as `kit`
    ("gm" or "vdrums"; None: the notes' own, `drum_map.kit_of`) through the one drum map;
    whatever is still out of range dropped. Returns the notes and, per original pitch, how
    many were mapped and how many dropped, so the report can say so."""
    mapping = table(kit or kit_of(n.pitch for n in notes))
    kept, mapped, dropped = [], Counter(), Counter()
    for note in notes:
        pitch = mapping.get(note.pitch, note.pitch)
        if not low <= pitch < high:
            dropped[note.pitch] += 1
            continue
        if pitch != note.pitch:
            mapped[note.pitch] += 1
        kept.append(Note(note.start, note.duration, pitch, note.velocity))
    return kept, mapped, dropped


# ---------------------------------------------------------------- what a hit is heard as

KICK_PITCHES: frozenset[int] = frozenset({35, 36})
SNARE_PITCHES: frozenset[int] = frozenset({37, 38, 39, 40})  # rim, snare, clap, electric snare
TOMS: frozenset[int] = frozenset({41, 43, 45, 47, 48, 50})
HATS: frozenset[int] = frozenset({42, 44, 46})
RIDES_AND_CRASHES: frozenset[int] = frozenset({49, 51, 52, 53, 55, 57, 59})


def drum_voice(pitch: int) -> str:
    """kick, snare (37-40), hat, cymbal (ride, crash), tom or other: the voices a fill is heard
    in (the forms' fill rule and eval's phrase-end measure read fills the same way)."""
    if pitch in TOMS:
        return "tom"
    if pitch in HATS:
        return "hat"
    if pitch in RIDES_AND_CRASHES:
        return "cymbal"
    if pitch in KICK_PITCHES:
        return "kick"
    return "snare" if pitch in SNARE_PITCHES else "other"
