"""Keys: a tonic and a mode, read from text as producers type them ("F minor", "C#m", "Bb")
and spelled back the way they would write them. Conditions, chords, tokens and the audio's
key estimate all read keys here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stemforge.symbolic.core.errors import ConditionError

PITCH_CLASSES: dict[str, int] = {
    "c": 0, "b#": 0, "c#": 1, "db": 1, "d": 2, "d#": 3, "eb": 3, "e": 4, "fb": 4, "f": 5,
    "e#": 5, "f#": 6, "gb": 6, "g": 7, "g#": 8, "ab": 8, "a": 9, "a#": 10, "bb": 10,
    "b": 11, "cb": 11,
}
KEY_NAMES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# a major key's usual spelling where it differs: Db major (5 flats), not C# major (7 sharps)
MAJOR_KEY_NAMES: tuple[str, ...] = ("C", "Db") + KEY_NAMES[2:]
# tonics as people spell them; a key typed with one of these keeps that spelling in names
SPELLED_TONICS = frozenset(("C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb",
                            "B"))


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, C = 0
    mode: str  # "major" | "minor"
    spelled: str = field(default="", compare=False)  # the tonic as typed ("Db"), "" = the usual spelling

    @property
    def tonic_name(self) -> str:
        return self.spelled or (MAJOR_KEY_NAMES if self.mode == "major" else KEY_NAMES)[self.tonic]

    @property
    def name(self) -> str:
        return f"{self.tonic_name} {self.mode}"

    @property
    def scale_pitch_classes(self) -> frozenset[int]:
        steps = (0, 2, 4, 5, 7, 9, 11) if self.mode == "major" else (0, 2, 3, 5, 7, 8, 10)
        return frozenset((self.tonic + s) % 12 for s in steps)

    def transposed(self, semitones: int) -> Key:
        return Key((self.tonic + semitones) % 12, self.mode)


def parse_key(text: str) -> Key:
    """'F minor', 'Fm', 'C#m', 'Am', 'Bb major', 'Eb', 'f#min' -> Key."""
    # whitespace runs collapsed first: the pattern's two optional gaps backtrack quadratically
    # over a long run ("a" + 15,000 spaces + "x" took ~47 s)
    cleaned = " ".join(text.split()).lower().replace("♯", "#").replace("♭", "b")
    match = re.fullmatch(r"([a-g])\s*(#|b|sharp|flat)?\s*(major|maj|minor|min|m|)", cleaned)
    if not match:
        shown = cleaned if len(cleaned) <= 40 else cleaned[:40] + "..."
        raise ConditionError(
            f"key: unknown key {shown!r}; use a tonic and mode like 'F minor', 'Am' or 'C#m'", field="key"
        )
    letter, accidental, mode = match.groups()
    accidental = {"sharp": "#", "flat": "b", None: ""}.get(accidental, accidental)
    tonic = PITCH_CLASSES.get(letter + accidental)
    if tonic is None:
        raise ConditionError(f"key: unknown key {text!r}", field="key")
    spelled = letter.upper() + accidental
    return Key(tonic, "minor" if mode in ("minor", "min", "m") else "major",
               spelled if spelled in SPELLED_TONICS else "")
