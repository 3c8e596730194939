"""Small MIDI fixtures the tests write themselves (the project commits no third-party data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemforge.symbolic.core.ticks import TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Arrangement, Note, Track
from stemforge.symbolic.music.conditions import Conditions

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


# ---------------------------------------------------------------- real-world-shaped files
# What `pipeline prepare` meets in folders it has never seen: POP909-style songs whose
# time signature says 1/4 and whose notes sit off the file's own beat grid, drum
# performances from a Roland V-Drums kit (hi-hat edge hits on notes 22/26), and a dense
# arrangement whose token sequence is longer than a small model's context.

CHORDS = ((0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14))  # I vi IV V in C, one per bar
# (start beat, length in beats) of the notes in a bar, per part and meter
SONG_RHYTHMS: dict[int, dict[str, tuple[tuple[tuple[float, float], ...], ...]]] = {
    4: {
        "bass": (((0, 1.5), (1.5, 0.5), (2, 1), (3, 1)),),
        "piano": (((0, 2), (2, 2)),),
        "melody": (((0, 1), (1, 0.5), (1.5, 0.5), (2, 1.5), (3.5, 0.5)), ((0, 2), (2, 0.5), (2.5, 0.5), (3, 1))),
    },
    3: {  # a waltz: the bass on one, the chord on two and three
        "bass": (((0, 3),),),
        "piano": (((1, 1), (2, 1)),),
        "melody": (((0, 2), (2, 1)), ((0, 1), (1, 1), (2, 1))),
    },
}


def _symusic_track(name: str, program: int, notes: list[tuple[int, int, int, int]], is_drum: bool = False):
    import symusic

    track = symusic.Track(name=name, program=program, is_drum=is_drum)
    for start, duration, pitch, velocity in sorted(notes):
        track.notes.append(symusic.Note(start, duration, pitch, velocity))
    return track


def _write_score(path: Path, tracks: list, header: tuple[int, int] | None, bpm: float) -> Path:
    import symusic

    score = symusic.Score(TICKS_PER_BEAT)
    if header is not None:
        score.time_signatures.append(symusic.TimeSignature(0, *header))
    score.tempos.append(symusic.Tempo(0, bpm))
    score.tracks.extend(tracks)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


def write_song(path: Path, beats_per_bar: int = 4, header: tuple[int, int] | None = (1, 4), bars: int = 16,
               lead_in: int = 0, bpm: float = 90.0, seed: int = 0) -> Path:
    """A POP909-shaped song (MELODY, PIANO and a bass line, a chord per bar) in 4/4 or 3/4
    under any time-signature header. `lead_in` ticks come before the first downbeat: a
    one-note pickup and, like most POP909 files, an offset off the file's own beat grid."""
    rng = np.random.default_rng(seed)
    rhythms = SONG_RHYTHMS[beats_per_bar]
    parts: dict[str, list[tuple[int, int, int, int]]] = {"bass": [], "piano": [], "melody": []}
    if lead_in >= TICKS_PER_BEAT:
        parts["melody"].append((lead_in - TICKS_PER_BEAT, TICKS_PER_BEAT, 67, 80))
    for bar in range(bars):
        chord = CHORDS[bar % len(CHORDS)]
        base = lead_in + bar * beats_per_bar * TICKS_PER_BEAT
        for role, patterns in rhythms.items():
            for start, length in patterns[bar % len(patterns)]:
                at, duration = base + int(start * TICKS_PER_BEAT), int(length * TICKS_PER_BEAT)
                if role == "bass":
                    parts[role].append((at, duration, 36 + chord[0] + (7 if start == 2 else 0), 95))
                elif role == "piano":
                    parts[role] += [(at, duration, 60 + pitch, 70) for pitch in chord]
                else:
                    pitch = 72 + chord[int(rng.integers(0, 3))] + (12 if chord[0] < 5 else 0)
                    parts[role].append((at, duration, pitch, 85))
    tracks = [_symusic_track("MELODY", 0, parts["melody"]), _symusic_track("PIANO", 0, parts["piano"]),
              _symusic_track("BASS", 33, parts["bass"])]
    return _write_score(path, tracks, header, bpm)


def write_edge_hat_groove(path: Path, bars: int = 8, bpm: float = 100.0, roland: bool = True,
                          edges: bool = True) -> Path:
    """A drum performance as a Roland V-Drums kit (the Groove MIDI Dataset's TD-11) records
    it: closed hi-hat hits alternate bow (42) and edge (22), the open hat is hit on its edge
    (26), the floor tom on its rim (58), the crash on its edge (55), plus a note (100) no drum
    map knows. `edges=False`: a take of the same kit that hits no hat edge (only the rims
    tell the kit). `roland=False`: the groove on a General MIDI kit, where 58 is a vibraslap
    and 55 a splash."""
    notes = []
    hat_edges = roland and edges
    for bar in range(bars):
        base = bar * 16 * SIXTEENTH
        notes += [(base + s * SIXTEENTH, SIXTEENTH, 36, 110) for s in (0, 7, 10)]
        notes += [(base + s * SIXTEENTH, SIXTEENTH, 38, 100) for s in (4, 12)]
        closed = (22 if hat_edges else 42, 42)
        notes += [(base + s * SIXTEENTH, SIXTEENTH, closed[(s // 2) % 2], 80) for s in range(0, 14, 2)]
        notes.append((base + 14 * SIXTEENTH, SIXTEENTH, 26 if hat_edges else 46, 90))
        notes.append((base + 15 * SIXTEENTH, SIXTEENTH, 58, 70))
        notes.append((base + 15 * SIXTEENTH, SIXTEENTH, 100, 60))
        if bar % 4 == 0:
            notes.append((base, SIXTEENTH, 55, 100))
    return _write_score(path, [_symusic_track("drums", 0, notes, is_drum=True)], (4, 4), bpm)


def write_dense_groove(path: Path, bars: int = 8, bpm: float = 96.0) -> Path:
    """A busy arrangement (16th hats with ghost notes, a 16th bass and a 16th melody): about
    240 tokens a bar, so an 8-bar window is longer than the tiny model's 1024-token context."""
    rng = np.random.default_rng(1)
    drums, bass, melody = [], [], []
    for bar in range(bars):
        base = bar * 16 * SIXTEENTH
        for step in range(16):
            at = base + step * SIXTEENTH
            drums.append((at, SIXTEENTH, 42, 60 + int(rng.integers(0, 40))))
            if step % 4 == 0:
                drums.append((at, SIXTEENTH, 36, 110))
            if step % 8 == 4:
                drums.append((at, SIXTEENTH, 38, 105))
            elif step % 2:
                drums.append((at, SIXTEENTH, 38, 30 + int(rng.integers(0, 20))))
            bass.append((at, SIXTEENTH, 33 + int(rng.integers(0, 12)), 70 + int(rng.integers(0, 40))))
            melody.append((at, SIXTEENTH, 64 + int(rng.integers(0, 20)), 60 + int(rng.integers(0, 50))))
    tracks = [_symusic_track("drums", 0, drums, is_drum=True), _symusic_track("bass", 33, bass),
              _symusic_track("lead", 80, melody)]
    return _write_score(path, tracks, (4, 4), bpm)
