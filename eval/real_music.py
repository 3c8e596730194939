"""Real music to hold generated pieces against: the "real" column of `bench/quality.py`.

Three reference sets from the shared data folder (`../shared/data` beside the repository;
every loader takes another root), each cut into 8-bar excerpts like a default generated
piece, as plain notes per role at 480 ticks per beat with bar 1 at tick 0:

- `gmd_validation`: the Groove MIDI Dataset's validation-split 4/4 "beat" performances,
  drums only, as played: raw velocities and raw micro-timing (only moved by the drummer's
  constant offset from the click, so bar lines fall where the drummer heard them), TD-11
  notes mapped to General MIDI; `RealPiece.snapped()` gives the grid-snapped version.
  Genre from the style, mapped as the default corpus maps it.
- `pop909_songs`: POP909 melodies with their annotated chords and key; the bass is the
  lowest PIANO note of each onset in the bass register (POP909 has no bass track).
- `freedoom_songs`: the Freedoom multitrack songs' bass and melody lines (and drums where
  the song has a kit part), as the corpus loader quantizes them; no key (not annotated).

The loaders reuse `symbolic/corpus.py` (the code that built the default model's corpus
from the same files), so "real" and "training" read the data the same way. Nothing is
cached or written. A missing folder raises `RealDataMissing`, naming it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from stemforge.eval.music_features import Stat, grid_step, line, piece_figures, snap_notes
from stemforge.symbolic import corpus_rules as rules
from stemforge.symbolic.arrangement import BEATS_PER_BAR, Note
from stemforge.symbolic.conditions import Key
from stemforge.symbolic.corpus import (
    CorpusConfig,
    cut_excerpt,
    gmd_genre,
    good_drum_bars,
    load_freedoom,
    load_pop909,
    read_gmd_hits,
    read_gmd_info,
)

TICKS_PER_BEAT = rules.TPB  # 480, the corpus resolution
TICKS_PER_BAR = TICKS_PER_BEAT * BEATS_PER_BAR
EXCERPT_BARS = 8  # the default piece length of `pipeline run`
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "corpus" / "default.yaml"
DATASETS: dict[str, str] = {
    "gmd": "GMD validation drums (played: raw timing and velocities)",
    "pop909": "POP909 melodies, chords and keys (bass: lowest piano notes)",
    "freedoom": "Freedoom bass and melody lines (+ drums)",
}
# Which reference set answers each figure: the one that holds that part as people made it.
FIGURE_SOURCES: dict[str, str] = {
    **{name: "pop909" for name in (
        "melody_self_similarity", "melody_self_similarity_lag1", "melody_self_similarity_lag2",
        "melody_self_similarity_lag4", "melody_bars_repeated", "melody_repeats", "melody_steps", "melody_leaps",
        "melody_notes_per_bar", "melody_overlaps", "melody_overlap_pieces", "key_found", "key_found_minor",
        "in_scale", "bass_roots_on_downbeats", "melody_chord_tones")},
    **{name: "freedoom" for name in (
        "bass_self_similarity_lag4", "bass_repeats", "bass_steps", "bass_leaps", "bass_notes_per_bar",
        "bass_overlaps", "bass_overlap_pieces", "bass_on_kick", "kicks_covered")},
    **{name: "gmd" for name in (
        "kick_snare_kept", "drum_swing", "drum_velocities_per_8_bars", "drums_notes_per_bar",
        "drum_duplicate_hits", "drum_duplicate_pieces", "snare_on_beat3", "hihat_roll_bars")},
}


class RealDataMissing(FileNotFoundError):
    """A reference set's folder is not on this machine; the message names it."""


@dataclass
class RealPiece:
    """One excerpt of real music: notes per role (only the parts the set has), what it is."""

    dataset: str  # gmd | pop909 | freedoom
    source: str  # the file or song and the excerpt's bars
    genre: str | None
    bars: int
    tracks: dict[str, list[Note]]
    key: Key | None = None
    chords: list[rules.ChordSpan] = field(default_factory=list)

    def snapped(self) -> dict[str, list[Note]]:
        """The tracks with onsets on the 1/12-beat grid (velocities kept)."""
        return {role: snap_notes(notes, TICKS_PER_BEAT) for role, notes in self.tracks.items()}

    @cached_property
    def figures(self) -> dict[str, Stat]:
        """`piece_figures` of the excerpt (computed once)."""
        return piece_figures(self.tracks, self.bars, TICKS_PER_BEAT, self.key, self.chords or None)


def _folder(root: Path, name: str) -> Path:
    folder = Path(root) / name
    if not folder.is_dir():
        raise RealDataMissing(f"{folder}: not on this machine (see ../shared/data/README.md)")
    return folder


def excerpt_starts(good_bars: list[bool], bars: int) -> list[int]:
    """Start bars of non-overlapping runs of `bars` usable bars, earliest first."""
    starts, start = [], 0
    while start + bars <= len(good_bars):
        if all(good_bars[start:start + bars]):
            starts.append(start)
            start += bars
        else:
            start += 1
    return starts


def cut(notes: Iterable[Note], start_bar: int, bars: int) -> list[Note]:
    """The notes whose snapped onset lies in the `bars` bars from `start_bar`, moved to start
    at tick 0 (an onset a few ticks before the first downbeat is put on it) and cut at the
    excerpt's end."""
    lo, hi = start_bar * TICKS_PER_BAR, (start_bar + bars) * TICKS_PER_BAR
    step_lo, step_hi = grid_step(lo, TICKS_PER_BEAT), grid_step(hi, TICKS_PER_BEAT)
    out = []
    for n in notes:
        if step_lo <= grid_step(n.start, TICKS_PER_BEAT) < step_hi:
            start = max(0, n.start - lo)
            out.append(Note(start, max(1, min(n.duration, hi - lo - start)), n.pitch, n.velocity))
    return sorted(out)


def gmd_validation(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS, max_files: int | None = None,
                   styles: dict[str, str] | None = None) -> list[RealPiece]:
    """8-bar excerpts of the GMD validation split's 4/4 "beat" performances (bars where the
    drummer plays a groove, as the corpus judges them), drums as played."""
    folder = _folder(root, "gmd")
    styles = CorpusConfig.load(CORPUS_CONFIG).gmd_styles if styles is None else styles
    rows = [r for r in read_gmd_info(folder)
            if r["split"] == "validation" and r["beat_type"] == "beat" and r["time_signature"] == "4-4"]
    pieces = []
    for row in rows[:max_files]:
        hits = read_gmd_hits(folder / row["midi_filename"])
        if not hits:
            continue
        feel, offset = rules.detect_feel([t for t, _, _ in hits])
        played = [Note(max(0, t + offset), rules.DRUM_TICKS, p, v) for t, p, v in hits]
        good = good_drum_bars(rules.quantize_hits(hits, feel, max(t for t, _, _ in hits) + TICKS_PER_BEAT, offset))
        for start in excerpt_starts(good, bars):
            pieces.append(RealPiece("gmd", f"gmd:{row['id']} bars {start + 1}-{start + bars}",
                                    gmd_genre(row["style"], styles), bars, {"drums": cut(played, start, bars)}))
    return pieces


def pop909_songs(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS,
                 max_songs: int | None = None) -> list[RealPiece]:
    """8-bar excerpts of POP909 songs (4/4 by the index, bars with melody and chords): the
    melody, the lowest piano note of each onset in the bass register as the bass, the
    annotated chords, and the annotated key (the one sounding in the excerpt)."""
    folder = _folder(root, "pop909")
    pieces = []
    for song in load_pop909(folder, CorpusConfig(pop909_max_songs=max_songs), Counter()):
        for start in excerpt_starts(song.good_bars, bars):
            excerpt = cut_excerpt(song, start, bars)
            bass = line(cut(song.piano_bass, start, bars), TICKS_PER_BEAT, lowest=True)
            pieces.append(RealPiece("pop909", f"pop909:{song.song_id} bars {start + 1}-{start + bars}", "pop", bars,
                                    {"melody": excerpt.melody, "bass": bass}, excerpt.key, excerpt.chords))
    return pieces


def freedoom_songs(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS) -> list[RealPiece]:
    """8-bar excerpts of the Freedoom songs in one tempo and 4/4 with a bass and a melody
    line (bars where both play), with their drums when the song has a kit part."""
    folder = _folder(root, "freedoom")
    pieces = []
    for song in load_freedoom(folder, Counter()):
        for start in excerpt_starts(song.good_bars, bars):
            tracks = {"bass": cut(song.bass, start, bars), "melody": cut(song.melody, start, bars)}
            if song.drums:
                tracks["drums"] = cut(song.drums, start, bars)
            pieces.append(RealPiece("freedoom", f"{song.group} bars {start + 1}-{start + bars}", song.genre, bars,
                                    tracks))
    return pieces


def load_reference_sets(root: Path = DEFAULT_DATA_ROOT, bars: int = EXCERPT_BARS, pop909_max_songs: int | None = None,
                        gmd_max_files: int | None = None) -> tuple[dict[str, list[RealPiece]], dict[str, str]]:
    """Every reference set found under `root` ({dataset: pieces}) and, for the others, why
    not ({dataset: reason})."""
    loaders = {
        "gmd": lambda: gmd_validation(root, bars, gmd_max_files),
        "pop909": lambda: pop909_songs(root, bars, pop909_max_songs),
        "freedoom": lambda: freedoom_songs(root, bars),
    }
    found: dict[str, list[RealPiece]] = {}
    missing: dict[str, str] = {}
    for name, load in loaders.items():
        try:
            found[name] = load()
        except (RealDataMissing, ValueError) as error:  # CorpusError is a ValueError: a damaged folder
            missing[name] = str(error)
    return found, missing
