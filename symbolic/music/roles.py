"""Which track of a MIDI file plays which role: drums by channel 10, bass by program, name or
register, melody as the most melodic remaining line. `pipeline prepare` reads training files
this way and `pipeline run --seed-midi` reads a user's clip this way, so a clip is understood
as the training material was."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import symusic

from stemforge.symbolic.music.arrangement import Note


def _skyline(notes: list[Note]) -> list[Note]:
    """The top line: one note per onset, the highest."""
    by_onset: dict[int, Note] = {}
    for note in notes:
        if note.start not in by_onset or note.pitch > by_onset[note.start].pitch:
            by_onset[note.start] = note
    return sorted(by_onset.values())


def _monophony(notes: list[Note]) -> float:
    onsets = Counter(n.start for n in notes)
    return len(onsets) / max(1, len(notes))


def detect_roles(tracks: list[symusic.Track], scale: float) -> dict[str, list[Note]]:
    """drums = channel 10 / is_drum; bass = GM 32-39, a track named bass, or the lowest
    sustained line; melody = a track named like one, else the most melodic remaining line."""
    def to_notes(track: symusic.Track) -> list[Note]:
        return [Note(round(n.time * scale), max(1, round(n.duration * scale)), n.pitch, n.velocity)
                for n in track.notes]

    roles: dict[str, list[Note]] = {}
    drums = [note for t in tracks if t.is_drum for note in to_notes(t)]
    if drums:
        roles["drums"] = sorted(drums)
    pitched = [(t, to_notes(t)) for t in tracks if not t.is_drum and len(t.notes) > 0]
    name = lambda t: (t.name or "").lower()  # noqa: E731
    bass = (
        [p for p in pitched if "bass" in name(p[0])]
        or [p for p in pitched if 32 <= p[0].program <= 39]
    )
    if not bass:
        low = [p for p in pitched if np.mean([n.pitch for n in p[1]]) < 52 and _monophony(p[1]) > 0.75]
        bass = sorted(low, key=lambda p: np.mean([n.pitch for n in p[1]]))[:1]
    if bass:
        chosen = max(bass, key=lambda p: len(p[1]))
        roles["bass"] = _skyline(chosen[1])
        pitched = [p for p in pitched if p[0] is not chosen[0]]
    melodic_names = ("melody", "lead", "vocal", "voice", "melo", "solo")
    named = [p for p in pitched if any(w in name(p[0]) for w in melodic_names)]
    candidates = named or pitched
    if candidates:
        def melodic_score(p: tuple[symusic.Track, list[Note]]) -> float:
            notes = p[1]
            return _monophony(notes) * math.log1p(len(notes)) * (1.0 if np.mean([n.pitch for n in notes]) >= 55 else 0.5)
        roles["melody"] = _skyline(max(candidates, key=melodic_score)[1])
    return roles
