"""Small MIDI fixtures the tests write themselves (the project commits no third-party data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from symbolic.arrangement import TICKS_PER_BEAT, Arrangement, Note, Track
from symbolic.conditions import Conditions

SIXTEENTH = TICKS_PER_BEAT // 4

# (kick steps, snare steps, hat steps) on a 16-step bar
GROOVES: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "house": ((0, 4, 8, 12), (4, 12), (2, 6, 10, 14)),
    "hiphop": ((0, 7, 10), (4, 12), tuple(range(0, 16, 2))),
    "rock": ((0, 8, 10), (4, 12), tuple(range(0, 16, 2))),
}
SCALE_MINOR = (0, 2, 3, 5, 7, 8, 10)


def groove_tracks(genre: str, bars: int, tonic: int, rng: np.random.Generator) -> dict[str, Track]:
    kicks, snares, hats = GROOVES[genre]
    drums, bass, melody = [], [], []
    for bar in range(bars):
        base = bar * 16 * SIXTEENTH
        for step in kicks:
            drums.append(Note(base + step * SIXTEENTH, SIXTEENTH, 36, 110))
            bass.append(Note(base + step * SIXTEENTH, 2 * SIXTEENTH, 36 + tonic + (7 if bar % 2 else 0), 90))
        drums += [Note(base + s * SIXTEENTH, SIXTEENTH, 38, 100) for s in snares]
        drums += [Note(base + s * SIXTEENTH, SIXTEENTH, 42, 70 + int(rng.integers(0, 20))) for s in hats]
        for step in range(0, 16, 4):
            degree = SCALE_MINOR[int(rng.integers(0, 7))]
            melody.append(Note(base + step * SIXTEENTH, 3 * SIXTEENTH, 60 + tonic + degree, 85))
    return {
        "drums": Track("drums", 0, True, sorted(drums)),
        "bass": Track("bass", 33, False, sorted(bass)),
        "melody": Track("melody", 0, False, sorted(melody)),
    }


def write_groove(path: Path, genre: str, bpm: float, bars: int = 8, tonic: int = 9, seed: int = 0) -> Path:
    tracks = groove_tracks(genre, bars, tonic, np.random.default_rng(seed))
    Arrangement(Conditions(genre=genre if genre != "hiphop" else "hiphop", bpm=bpm, bars=bars), tracks).write_midi(path)
    return path


def write_corpus(folder: Path, files_per_genre: int = 3, bars: int = 8) -> Path:
    """A tiny labelled corpus: grooves named like producers name them, plus a metadata CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["filename,genre,bpm,key"]
    tempos = {"house": 124, "hiphop": 90, "rock": 120}
    for genre, bpm in tempos.items():
        for index in range(files_per_genre):
            name = f"{genre}_{index}_{bpm}bpm.mid"
            write_groove(folder / name, genre, bpm, bars=bars, tonic=index * 2, seed=index)
            rows.append(f"{name},{genre},{bpm},{['A', 'B', 'C#'][index % 3]} minor")
    (folder / "tracks.csv").write_text("\n".join(rows) + "\n")
    return folder
