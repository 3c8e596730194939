"""`pipeline corpus`: the reproducible training corpus of the default composer.

../shared/data (GMD drum grooves, POP909 melodies + chords, Freedoom multitrack songs)
-> `out_dir/<genre>/<id>.mid` (drums / bass / melody, 4/4, one tempo, 480 ticks per beat,
on the 1/12-beat token grid) + `out_dir/tracks.csv` + `out_dir/corpus.json`.

Read top to bottom: config, the three source loaders, the plan (which drum window and
which source group each piece of each genre gets), melody allotment (every POP909 song
serves exactly one group, so a `group` never shares a source with another group), piece
assembly (groove transform, melody retime, bass derived on the kicks), writing.
The genre rules themselves live in `symbolic/recipes/corpus_rules.py`; `docs/corpus.md` documents
what every genre rests on. Deterministic: every random choice comes from a
`random.Random` seeded by (config seed, genre, piece index).
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import symusic

from stemforge.configs import load_config
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import atomic_folder
from stemforge.symbolic.core.progress import progress_bar
from stemforge.symbolic.core.ticks import STEP_TICKS as GRID
from stemforge.symbolic.core.ticks import TICKS_PER_BAR as BAR
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as TPB
from stemforge.symbolic.music import drum_map
from stemforge.symbolic.music.arrangement import GENRE_PROGRAMS, Arrangement, Note, Track
from stemforge.symbolic.music.conditions import GENRES, Conditions
from stemforge.symbolic.music.genres import MELODY_SOURCES, genre_table
from stemforge.symbolic.music.keys import Key, parse_key
from stemforge.symbolic.recipes import corpus_rules as rules

LICENCES = {
    "gmd": "CC-BY-4.0 (Groove MIDI Dataset, Gillick et al. 2019)",
    "pop909": "MIT (POP909, Wang et al. 2020)",
    "freedoom": "BSD-3-Clause (Freedoom contributors)",
    "wjd": "ODbL-1.0 / MIT (Weimar Jazz Database, Pfleiderer et al. 2017, via jazzodata)",
    "rule": "MIT (stemforge corpus rules)",
}
TRANSFORMS = ("real", "lofi", "trap", "dnb", "house", "techno")
# How the melody (and its chords) of a genre is re-expressed in the groove's beats, and whose
# bass takes its pitches from the POP909 pianist: each genre's `corpus` rules in the genre table
# (configs/genres.yaml), as the tables below (a genre is in one only where its rule applies).
_RULES = {g.name: g.corpus for g in genre_table().genres.values() if g.corpus}
MELODY_STRETCH = {g: r.melody.stretch for g, r in _RULES.items() if r.melody.stretch != 1}  # half-time: 1 beat = 2
MELODY_LOOP_BARS = {g: r.melody.loop_bars for g, r in _RULES.items() if r.melody.loop_bars}  # electronic hooks repeat
MELODY_VELOCITY = {g: r.melody.velocity for g, r in _RULES.items() if r.melody.velocity != 1.0}
RETIMED_MELODY_GENRES = {g for g, r in _RULES.items() if r.melody.retimed}
# Genres whose derived bass takes its pitches from the POP909 pianist's lowest notes where
# they sound (real inversions, passing and approach notes) on the genre's own bass rhythm;
# electronic genres keep their root-and-fifth lines.
PIANO_BASS_GENRES = frozenset(g for g, r in _RULES.items() if r.piano_bass)


class CorpusError(UserError):
    """Bad corpus config or data layout; the message names the file or key."""


# ----------------------------------------------------------------------------- config


@dataclass
class CorpusConfig:
    seed: int = 1234
    items_per_genre: int = 100
    bars: list[int] = field(default_factory=lambda: [8, 16])
    genres: list[str] = field(default_factory=lambda: list(GENRES))
    gmd_splits: list[str] = field(default_factory=lambda: ["train", "validation"])
    gmd_styles: dict[str, str] = field(default_factory=dict)  # GMD style -> genre of its grooves
    # genre -> drum sources, best first; a genre the recipe leaves out takes its genre table `corpus.drums`
    drums: dict[str, list[str]] = field(default_factory=dict)
    # genre -> [low, high]; a genre the recipe leaves out takes its genre table `tempo.range`
    bpm_ranges: dict[str, list[float]] = field(default_factory=dict)
    window_hop_bars: int = 2
    max_window_uses: int = 2
    source_max_share: dict[str, float] = field(default_factory=dict)  # drum source -> share of a genre
    transpose: bool = True
    pop909_max_songs: int | None = None  # None = all; a small number makes quick test builds
    gmd_max_files: int | None = None
    # genre -> pop909 | wjd (pop909 when not named); the genre table's `corpus.melody_source` fills the
    # genres it gives another source and the recipe leaves out
    melody_sources: dict[str, str] = field(default_factory=dict)
    wjd_max_solos: int | None = None
    fill_share: float = 0.0  # the last bar of an 8-bar phrase gets a real GMD fill this often

    @classmethod
    def load(cls, path: Path) -> CorpusConfig:
        return load_config(cls, path, CorpusError, "corpus config").validated(str(path))

    def validated(self, where: str = "corpus config") -> CorpusConfig:
        for genre in self.genres:
            if genre not in GENRES:
                raise CorpusError(f"{where}: genres: {genre!r} is not one of {', '.join(GENRES)}")
            entry = genre_table().entry(genre)
            if genre not in self.bpm_ranges and entry.tempo.range is not None:
                self.bpm_ranges[genre] = list(entry.tempo.range)
            if genre not in self.drums and entry.corpus is not None:
                self.drums[genre] = list(entry.corpus.drums)
            if genre not in self.drums or genre not in self.bpm_ranges:
                raise CorpusError(f"{where}: genre {genre!r} needs entries in 'drums' and 'bpm_ranges'")
            low, high = self.bpm_ranges[genre]
            if not 20 <= low <= high <= 300:
                raise CorpusError(f"{where}: bpm_ranges.{genre} must be [low, high] within 20-300")
            for source in self.drums[genre]:
                kind, _, of = source.partition(":")
                if source not in ("freedoom", "rule") and (kind not in TRANSFORMS or of not in GENRES):
                    raise CorpusError(f"{where}: drums.{genre}: {source!r} is not 'freedoom', 'rule' or "
                                      f"'<{'|'.join(TRANSFORMS)}>:<genre>'")
        for source, share in self.source_max_share.items():
            if not 0 <= share <= 1:
                raise CorpusError(f"{where}: source_max_share.{source} must be between 0 and 1")
        for style, genre in self.gmd_styles.items():
            if genre not in GENRES:
                raise CorpusError(f"{where}: gmd_styles.{style}: {genre!r} is not a genre")
        for entry in genre_table().genres.values():  # every genre's, as the recipe's WJD check reads them all
            if entry.corpus and entry.corpus.melody_source != "pop909":
                self.melody_sources.setdefault(entry.name, entry.corpus.melody_source)
        for genre, source in self.melody_sources.items():
            if genre not in GENRES or source not in MELODY_SOURCES:
                raise CorpusError(f"{where}: melody_sources.{genre}: {source!r} must be one of "
                                  f"{', '.join(MELODY_SOURCES)} for a listed genre")
        if not 0 <= self.fill_share <= 1:
            raise CorpusError(f"{where}: fill_share must be between 0 and 1")
        if not self.bars or any(not 1 <= b <= 32 for b in self.bars):
            raise CorpusError(f"{where}: bars must list piece lengths between 1 and 32")
        if self.items_per_genre < 1 or self.window_hop_bars < 1 or self.max_window_uses < 1:
            raise CorpusError(f"{where}: items_per_genre, window_hop_bars and max_window_uses must be >= 1")
        return self


# ----------------------------------------------------------------------------- sources


@dataclass
class Groove:
    """A quantized drum performance (GMD) or multitrack song (Freedoom), bars from 0."""

    group: str  # source id: "gmd:drummer1/session1/100", "freedoom:freedoom2/D_SHAWN3"
    source: str  # gmd | freedoom
    genre: str
    bpm: float
    feel: str
    drums: list[Note]
    good_bars: list[bool]  # bars usable in a window
    bass: list[Note] = field(default_factory=list)  # Freedoom only
    melody: list[Note] = field(default_factory=list)  # Freedoom only
    key: Key | None = None  # Freedoom only


@dataclass
class Song:
    """A POP909 song in beats: quantized melody, chord spans, keys, usable bars, and the
    PIANO notes in the bass register (the real bass line of the accompaniment, which
    eval/real_music.py measures; the corpus derives its own bass from the chords)."""

    song_id: str
    melody: list[Note]
    chords: list[rules.ChordSpan]
    keys: list[Key]
    good_bars: list[bool]
    piano_bass: list[Note] = field(default_factory=list)
    bass: list[Note] = field(default_factory=list)  # a real bass line played with the melody (WJD's walking bass)


def _notes_between(notes: list[Note], start: int, end: int) -> list[Note]:
    """Notes starting in [start, end), shifted to start at 0, cut at the end."""
    return [Note(n.start - start, min(n.duration, end - n.start), n.pitch, n.velocity)
            for n in notes if start <= n.start < end]


def _bar_flags(total_bars: int, good: Callable[[int], bool]) -> list[bool]:
    return [bool(good(bar)) for bar in range(total_bars)]


GMD_COLUMNS = frozenset({"id", "style", "bpm", "beat_type", "time_signature", "midi_filename", "split"})


def read_gmd_info(root: Path) -> list[dict[str, str]]:
    """The rows of GMD's info.csv; an error naming the file when it or a column is missing."""
    info = root / "info.csv"
    if not info.is_file():
        raise CorpusError(f"{info}: missing; the GMD folder needs its info.csv")
    with open(info, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not GMD_COLUMNS <= set(rows[0]):
        raise CorpusError(f"{info}: needs columns {sorted(GMD_COLUMNS)}")
    return rows


def gmd_genre(style: str, styles: dict[str, str]) -> str | None:
    """The genre of a GMD style: its full "a/b" label first, else its first part."""
    return styles.get(style) or styles.get(style.split("/")[0])


def read_gmd_hits(path: Path) -> list[tuple[int, int, int]] | None:
    """(tick at 480 per beat, GM drum, velocity) of a GMD performance as played (timing and
    velocities untouched), the TD-11 notes mapped by GMD_TO_GM; None when unreadable."""
    try:
        score = symusic.Score(str(path)).resample(TPB, min_dur=1)
    except Exception:  # symusic raises RuntimeError on unreadable files
        return None
    hits = [(n.time, n.pitch, n.velocity) for t in score.tracks for n in t.notes]
    return drum_map.map_drums(hits, rules.GMD_TO_GM, keep_gm=False)


def load_gmd(root: Path, config: CorpusConfig, skipped: Counter) -> list[Groove]:
    """GMD 4/4 "beat" performances of the configured splits whose style maps to a genre."""
    grooves = []
    rows = [r for r in read_gmd_info(root) if r["beat_type"] == "beat" and r["split"] in config.gmd_splits]
    for row in progress_bar(rows[: config.gmd_max_files], desc="gmd", enabled=_PROGRESS[0], leave=False):
        genre = gmd_genre(row["style"], config.gmd_styles)
        if row["time_signature"] != "4-4":
            skipped["gmd: not 4/4"] += 1
            continue
        if genre is None:
            skipped["gmd: style not mapped"] += 1
            continue
        hits = read_gmd_hits(root / row["midi_filename"])
        if hits is None:
            skipped["gmd: unreadable MIDI"] += 1
            continue
        if not hits:
            skipped["gmd: no drum notes"] += 1
            continue
        feel, offset = rules.detect_feel([t for t, _, _ in hits])
        end = max(t for t, _, _ in hits) + 1
        drums = rules.quantize_hits(hits, feel, end + TPB, offset)
        grooves.append(Groove(f"gmd:{row['id']}", "gmd", genre, float(row["bpm"]), feel, drums,
                              good_drum_bars(drums)))
    return grooves


@dataclass
class Fill:
    """The last two beats of a GMD fill performance, before the hit it lands on: (tick from
    the fill's start at 480 per beat, GM drum, velocity), ticks in [0, 960)."""

    group: str  # the performance: "gmd:drummer1/session1/103"
    genre: str
    hits: list[tuple[int, int, int]]


FILL_TICKS = 2 * TPB  # a fill takes the last two beats of its bar
# DJ tools and half-time trap keep their groove; some genres borrow fills (`corpus.fills`, `fill_donors`)
FILL_GENRES_EXCLUDED = frozenset(g for g, r in _RULES.items() if not r.fills)
FILL_DONORS = {g: r.fill_donors for g, r in _RULES.items() if r.fill_donors}


def load_gmd_fills(root: Path, config: CorpusConfig, skipped: Counter) -> dict[str, list[Fill]]:
    """genre -> the fills GMD's drummers played in that style (beat_type "fill", 4/4, the
    configured splits): each cut to the two beats before the hit it lands on (the kick or
    crash on the next downbeat; the end of its last hit where it has none)."""
    fills: dict[str, list[Fill]] = defaultdict(list)
    rows = [r for r in read_gmd_info(root) if r["beat_type"] == "fill" and r["split"] in config.gmd_splits
            and r["time_signature"] == "4-4"][: config.gmd_max_files]
    for row in progress_bar(rows, desc="gmd fills", enabled=_PROGRESS[0], leave=False):
        genre = gmd_genre(row["style"], config.gmd_styles)
        hits = read_gmd_hits(root / row["midi_filename"]) if genre else None
        if not hits:
            skipped["gmd fills: unmapped, unreadable or empty"] += 1
            continue
        hits.sort()
        last_tick, last_pitch, _ = hits[-1]
        lands = last_pitch in (rules.KICK, rules.CRASH) and len(hits) > 3
        end = last_tick if lands else last_tick + TPB // 4
        region = [(t - (end - FILL_TICKS), p, v) for t, p, v in hits if end - FILL_TICKS <= t < end]
        if len(region) < 3 or not any(p in rules.FILL_DRUMS for _, p, _ in region):
            skipped["gmd fills: no fill in its last two beats"] += 1
            continue
        fills[genre].append(Fill(f"gmd:{row['id']}", genre, region))
    return dict(fills)


def splice_fills(notes: list[Note], bars: int, feel: str, genre: str, group: str, fills: dict[str, list[Fill]],
                 share: float, rng: random.Random) -> tuple[list[Note], bool]:
    """The groove with real fills in its phrase ends: the last two beats of each 8-bar
    phrase's last bar (with chance `share`, a third of that at a 4-bar phrase end) replaced by
    a fill of the genre (a donor genre's where it has none), the same drummer's first."""
    pool = [f for donor in (genre, *FILL_DONORS.get(genre, ())) for f in fills.get(donor, [])][:400]
    if not pool or genre in FILL_GENRES_EXCLUDED:
        return notes, False
    drummer = group.split("/")[0]
    own = [f for f in pool if f.group.split("/")[0] == drummer] or pool
    filled = False
    for bar in range(bars):
        chance = share if (bar + 1) % 8 == 0 else share / 3 if (bar + 1) % 4 == 0 else 0.0
        if not chance or rng.random() >= chance:
            continue
        fill = own[rng.randrange(len(own))]
        start = bar * BAR + BAR - FILL_TICKS
        played = rules.quantize_hits([(start + t, p, v) for t, p, v in fill.hits], feel, (bar + 1) * BAR)
        notes = [n for n in notes if not start <= n.start < (bar + 1) * BAR] + played
        filled = True
    return sorted(notes), filled


def good_drum_bars(drums: list[Note]) -> list[bool]:
    """A bar is usable when it is a played groove: 4+ hits, a kick or snare, and a hit in
    its first 8th (not a pickup, count-in or a bar where the drummer stopped)."""
    total = -(-max((n.start for n in drums), default=0) // BAR) if drums else 0
    by_bar: dict[int, list[Note]] = defaultdict(list)
    for n in drums:
        by_bar[n.start // BAR].append(n)

    def good(bar: int) -> bool:
        notes = by_bar.get(bar, [])
        return (len(notes) >= 4 and any(n.pitch in (rules.KICK, rules.SNARE, rules.RIM) for n in notes)
                and any(n.start % BAR < 240 for n in notes))

    return _bar_flags(total, good)


def _read_pop909_index(path: Path) -> dict[str, tuple[int, int]]:
    """song id -> (beats per measure, quavers per beat) from index.xlsx."""
    import openpyxl  # only needed here

    try:
        sheet = openpyxl.load_workbook(path, read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
    except Exception as error:  # openpyxl raises several unrelated types on bad files
        raise CorpusError(f"{path}: cannot read the POP909 index ({error})") from error
    header = [str(h) for h in rows[0]]
    try:
        beats, quavers = header.index("num_beats_per_measure"), header.index("num_quavers_per_beat")
    except ValueError as error:
        raise CorpusError(f"{path}: needs columns num_beats_per_measure and num_quavers_per_beat") from error
    return {str(r[0]).zfill(3): (int(r[beats]), int(r[quavers])) for r in rows[1:] if r[0] is not None}


def _pop909_key(text: str) -> Key | None:
    """'Gb:maj' / 'C:min' -> Key."""
    tonic, _, mode = text.partition(":")
    try:
        return parse_key(f"{tonic} {'minor' if mode.startswith('min') else 'major'}")
    except ValueError:
        return None


@dataclass
class Pop909Harmony:
    """A POP909 song's chords and keys in beats, without its MIDI: what chord statistics need."""

    song_id: str
    chords: list[rules.ChordSpan]
    key_spans: list[tuple[int, int, Key]]  # (start, end ticks, key) from key_audio.txt


def _pop909_beat_grid(beat_rows: np.ndarray) -> Callable[[float], int] | str:
    """seconds -> ticks at 480 per beat with tick 0 on the first downbeat of beat_midi.txt,
    or why the beats are unusable. Interpolated between annotated beats, so tempo drift is
    absorbed."""
    if beat_rows.shape[0] < 8 or beat_rows.shape[1] < 3:
        return "beat_midi.txt too short"
    beat_times = beat_rows[:, 0]
    downbeats = np.flatnonzero(beat_rows[:, 2] == 1)
    if len(downbeats) < 2 or np.median(np.diff(downbeats)) != 4:
        return "bars are not 4 beats in beat_midi.txt"
    first = int(downbeats[0])

    def to_tick(seconds: float) -> int:
        index = np.arange(len(beat_times), dtype=float)
        if seconds <= beat_times[0]:
            beat = (seconds - beat_times[0]) / (beat_times[1] - beat_times[0])
        elif seconds >= beat_times[-1]:
            beat = index[-1] + (seconds - beat_times[-1]) / (beat_times[-1] - beat_times[-2])
        else:
            beat = float(np.interp(seconds, beat_times, index))
        return round((beat - first) * TPB)

    return to_tick


def _pop909_chords(chord_lines: list[str], to_tick: Callable[[float], int]) -> list[rules.ChordSpan]:
    """chord_midi.txt rows -> chord spans with both ends on the half-beat grid; no-chord
    rows and spans wholly before the first downbeat dropped."""
    chords = []
    for line in chord_lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        chord = rules.parse_chord(parts[2])
        start, end = _round_to(to_tick(float(parts[0])), 240), _round_to(to_tick(float(parts[1])), 240)
        if chord is not None and end > start and end > 0:
            chords.append(rules.ChordSpan(max(0, start), end, chord))
    return chords


def _pop909_key_spans(key_lines: list[str], to_tick: Callable[[float], int]) -> list[tuple[int, int, Key]]:
    """key_audio.txt rows -> (start, end ticks, key). Its times are audio seconds, which
    drift from the MIDI's by up to a few seconds: callers keep clear of key changes."""
    spans = []
    for line in key_lines:
        parts = line.split()
        key = _pop909_key(parts[2]) if len(parts) >= 3 else None
        if key is not None:
            spans.append((to_tick(float(parts[0])), to_tick(float(parts[1])), key))
    return spans


def _pop909_annotations(folder: Path, meter: tuple[int, int] | None, midi: bool = False) -> tuple | str:
    """(beat grid: seconds -> ticks, chord_midi.txt lines, key_audio.txt lines[, the MIDI in
    seconds]) of a POP909 song, or the reason it is skipped."""
    if meter is None:
        return "not in index.xlsx"
    if meter != (2, 2):
        return "not 4/4 (index meter)"
    try:
        beat_rows = np.loadtxt(folder / "beat_midi.txt", ndmin=2)
        chord_lines = (folder / "chord_midi.txt").read_text().splitlines()
        key_lines = (folder / "key_audio.txt").read_text().splitlines()
        score = symusic.Score(str(folder / f"{folder.name}.mid")).to("second") if midi else None
    except Exception:  # missing or unreadable file: skip the song, count it
        return "missing or unreadable files"
    to_tick = _pop909_beat_grid(beat_rows)
    if isinstance(to_tick, str):
        return to_tick
    return (to_tick, chord_lines, key_lines, score) if midi else (to_tick, chord_lines, key_lines)


def load_pop909_harmony(folder: Path, meter: tuple[int, int] | None) -> Pop909Harmony | str:
    """One POP909 song's chords and key spans in beats (as `load_pop909_song` reads them,
    without the MIDI file), or the reason it was skipped."""
    files = _pop909_annotations(folder, meter)
    if isinstance(files, str):
        return files
    to_tick, chord_lines, key_lines = files
    chords, key_spans = _pop909_chords(chord_lines, to_tick), _pop909_key_spans(key_lines, to_tick)
    if not chords or not key_spans:
        return "no chords or key"
    return Pop909Harmony(folder.name, chords, key_spans)


def _pop909_notes(track: symusic.Track, to_tick: Callable[[float], int], below: int = 128) -> list[Note]:
    """A POP909 track's notes under pitch `below` (times in seconds) on the 16th grid of the
    song's beats; notes before the first downbeat dropped."""
    out = []
    for n in track.notes:
        start = _round_to(to_tick(n.time), 120)
        end = max(start + 120, _round_to(to_tick(n.time + n.duration), 120))
        if start >= 0 and n.pitch < below:
            out.append(Note(start, end - start, n.pitch, n.velocity))
    return out


def load_pop909_song(folder: Path, meter: tuple[int, int] | None) -> Song | str:
    """One POP909 song in beats, or the reason it was skipped.

    Keeps songs whose index meter is (2 beats per measure, 2 quavers per beat): bars of
    four rows of beat_midi.txt, i.e. 4/4 (the MIDI time signatures are unreliable).
    Times are mapped to beats through beat_midi.txt, so tempo drift is absorbed."""
    song_id = folder.name
    files = _pop909_annotations(folder, meter, midi=True)
    if isinstance(files, str):
        return files
    to_tick, chord_lines, key_lines, score = files
    melody_tracks = [t for t in score.tracks if t.name.strip().upper() == "MELODY"]
    if not melody_tracks or not melody_tracks[0].notes:
        return "no MELODY track"
    melody = monophonic(_pop909_notes(melody_tracks[0], to_tick))
    piano = [t for t in score.tracks if t.name.strip().upper() == "PIANO"]
    piano_bass = sorted(_pop909_notes(piano[0], to_tick, below=rules.BASS_HIGH + 1)) if piano else []
    chords = _pop909_chords(chord_lines, to_tick)
    keys = [k for k in (_pop909_key(line.split()[2]) for line in key_lines if len(line.split()) >= 3) if k]
    if not melody or not chords or not keys:
        return "no melody, chords or key"
    total_bars = max(n.start for n in melody) // BAR + 1
    onset_bars = Counter(n.start // BAR for n in melody)
    chord_bars = {bar for s in chords for bar in range(s.start // BAR, (s.end - 1) // BAR + 1)}
    good = _bar_flags(total_bars, lambda bar: onset_bars[bar] >= 2 and bar in chord_bars)
    return Song(song_id, melody, chords, keys, good, piano_bass)


def _round_to(tick: int, step: int) -> int:
    return int(round(tick / step)) * step


def monophonic(notes: list[Note]) -> list[Note]:
    """One note at a time: the highest note of each onset, cut where the next one starts;
    durations on the token grid."""
    by_start: dict[int, Note] = {}
    for n in notes:
        if n.start not in by_start or n.pitch > by_start[n.start].pitch:
            by_start[n.start] = n
    ordered = sorted(by_start.values())
    out = []
    for index, n in enumerate(ordered):
        limit = ordered[index + 1].start - n.start if index + 1 < len(ordered) else n.duration
        duration = max(GRID, min(n.duration, limit) // GRID * GRID)
        out.append(Note(n.start, duration, n.pitch, n.velocity))
    return out


def load_pop909(root: Path, config: CorpusConfig, skipped: Counter) -> list[Song]:
    index_path = root / "index.xlsx"
    if not index_path.is_file():
        raise CorpusError(f"{index_path}: missing; POP909 needs index.xlsx for beats per bar")
    index = _read_pop909_index(index_path)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    songs = []
    for folder in progress_bar(folders[: config.pop909_max_songs], desc="pop909", enabled=_PROGRESS[0], leave=False):
        song = load_pop909_song(folder, index.get(folder.name.zfill(3)))
        if isinstance(song, str):
            skipped[f"pop909: {song}"] += 1
        else:
            songs.append(song)
    return songs


WJD_DIVISIONS_GRID = GRID  # metrical positions (tatum / division of a beat) land on the 1/12-beat grid
WJD_MAX_NOTE_BEATS = 2  # a solo note lasts to the next one, at most two beats


def _wjd_key(text: str) -> Key | None:
    """'Bb-maj' / 'C-min' / 'F-dor' -> Key (modes other than major read as minor)."""
    tonic, _, mode = str(text).partition("-")
    try:
        return parse_key(f"{tonic} {'major' if mode.startswith(('maj', 'lyd', 'mix')) else 'minor'}")
    except ValueError:
        return None


def load_wjd(root: Path, skipped: Counter, max_solos: int | None = None) -> list[Song]:
    """The 4/4 solos of the Weimar Jazz Database as songs: the soloist's line as the melody,
    on the transcription's own metrical grid (bar, beat, tatum of a `division` of the beat:
    8ths as written, played swung, triplets as triplets), and the bass annotated on every beat
    as a real walking bass (one note a beat; the annotators estimated it from the recording,
    so an octave may be off: `transpose_excerpt` folds it into the bass register). Tick 0 is
    bar 0, beat 1 of the annotation; the pickup before it is dropped."""
    import pyreadr  # only the corpus builder reads R data

    try:
        meta = pyreadr.read_r(str(root / "wjd_meta.rda"))["wjd_meta"]
        notes = pyreadr.read_r(str(root / "wjd_transforms.rda"))["wjd_transforms"]
        beats = pyreadr.read_r(str(root / "wjd_annotated_beat_tracks.rda"))["wjd_annotated_beat_tracks"]
    except Exception as error:  # pyreadr raises its own and OSError types on bad files
        raise CorpusError(f"{root}: cannot read the WJD .rda files ({error})") from error
    notes_by_solo = {int(k): v for k, v in notes.groupby("melid")}
    beats_by_solo = {int(k): v for k, v in beats.groupby("melid")}
    songs = []
    rows = list(meta.itertuples())[:max_solos]
    for row in progress_bar(rows, desc="wjd", enabled=_PROGRESS[0], leave=False):
        melid = int(row.melid)
        if str(row.signature).strip("'") != "4/4":
            skipped["wjd: not 4/4"] += 1
            continue
        solo, beat_track = notes_by_solo.get(melid), beats_by_solo.get(melid)
        if solo is None or beat_track is None:
            skipped["wjd: no notes or beats"] += 1
            continue
        onsets = []
        for bar, beat, tatum, division, pitch in zip(solo.bar, solo.beat, solo.tatum, solo.division, solo.pitch_raw):
            if bar < 0 or not 1 <= beat <= 4 or division < 1:
                continue
            inside = round((tatum - 1) / division * TPB / WJD_DIVISIONS_GRID) * WJD_DIVISIONS_GRID
            onsets.append(((int(bar) * 4 + int(beat) - 1) * TPB + min(inside, TPB - GRID), int(pitch)))
        onsets.sort()
        melody = []
        for index, (start, pitch) in enumerate(onsets):
            following = onsets[index + 1][0] if index + 1 < len(onsets) else start + TPB
            if following == start:
                continue
            duration = max(GRID, min(following - start, WJD_MAX_NOTE_BEATS * TPB))
            melody.append(Note(start, duration, pitch, 90))
        bass = []
        for bar, beat, pitch in zip(beat_track.bar, beat_track.beat, beat_track.bass):
            if bar >= 0 and 1 <= beat <= 4 and pitch == pitch and 20 <= pitch <= 80:  # NaN != NaN
                bass.append(Note((int(bar) * 4 + int(beat) - 1) * TPB, 440, int(pitch), 85))
        if not melody or not bass:
            skipped["wjd: no notes or bass"] += 1
            continue
        key = _wjd_key(row.key) or estimate_key(melody)
        total_bars = max(n.start for n in melody) // BAR + 1
        melody_bars = Counter(n.start // BAR for n in melody)
        bass_beats = Counter(n.start // BAR for n in bass)
        good = [melody_bars[bar] >= 1 and bass_beats[bar] == 4 for bar in range(total_bars)]
        songs.append(Song(f"wjd:{melid}", monophonic(melody), [], [key], good, [], sorted(bass)))
    return songs


# Krumhansl-Kessler key profiles. Written here because no installed library (librosa,
# miditok, symusic) estimates a key from symbolic notes.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(notes: list[Note], candidates: list[Key] | None = None) -> Key:
    """The key whose profile best correlates with the duration-weighted pitch classes."""
    histogram = np.zeros(12)
    for n in notes:
        histogram[n.pitch % 12] += n.duration
    if not histogram.any():
        return candidates[0] if candidates else Key(9, "minor")
    options = candidates or [Key(t, m) for m in ("major", "minor") for t in range(12)]

    def score(key: Key) -> float:
        profile = np.roll(_MAJOR_PROFILE if key.mode == "major" else _MINOR_PROFILE, key.tonic)
        return float(np.corrcoef(histogram, profile)[0, 1])

    return max(options, key=lambda k: (score(k), -k.tonic))


def _pick_roles(tracks: list[symusic.Track]) -> tuple[list[Note], list[Note], list[Note]]:
    """Drums (every drum track), bass (a bass-program track, else the lowest line) and
    melody (the most single-line of the higher tracks, busiest first) of a GM song."""
    def notes_of(track: symusic.Track) -> list[Note]:
        return [Note(n.time, max(1, n.duration), n.pitch, n.velocity) for n in track.notes]

    drums = [(n.start, n.pitch, n.velocity) for t in tracks if t.is_drum for n in notes_of(t)]
    pitched = [(t, notes_of(t)) for t in tracks if not t.is_drum and len(t.notes) >= 8]

    def median_pitch(item: tuple[symusic.Track, list[Note]]) -> float:
        return float(np.median([n.pitch for n in item[1]]))

    def single_line(item: tuple[symusic.Track, list[Note]]) -> float:
        notes = item[1]
        return len({n.start for n in notes}) / len(notes)

    bass_like = [p for p in pitched if 32 <= p[0].program <= 39 and median_pitch(p) < 55]
    low = [p for p in pitched if median_pitch(p) < 50]
    bass = max(bass_like or low, key=lambda p: len(p[1]), default=None)
    rest = [p for p in pitched if p is not bass and median_pitch(p) >= 52 and single_line(p) > 0.8]
    melody = max(rest, key=lambda p: (round(single_line(p), 1), len(p[1])), default=None)
    rules_drums = [Note(t, rules.DRUM_TICKS, p, v) for t, p, v in drum_map.map_drums(drums, rules.GM_FOLD, True)]
    return rules_drums, (bass[1] if bass else []), (melody[1] if melody else [])


def load_freedoom(root: Path, skipped: Counter) -> list[Groove]:
    """Freedoom songs in one tempo and 4/4 throughout, with a bass and a melody line:
    genre rock when they have drums, ambient when they have none."""
    grooves = []
    seen_digests = set()
    for path in progress_bar(sorted(root.rglob("*.mid")), desc="freedoom", enabled=_PROGRESS[0], leave=False):
        try:
            score = symusic.Score(str(path)).resample(TPB, min_dur=1)
        except Exception:  # symusic raises RuntimeError on unreadable files
            skipped["freedoom: unreadable MIDI"] += 1
            continue
        if any((ts.numerator, ts.denominator) != (4, 4) for ts in score.time_signatures):
            skipped["freedoom: not 4/4 throughout"] += 1
            continue
        if len({round(t.qpm, 1) for t in score.tempos}) > 1:
            skipped["freedoom: tempo changes"] += 1
            continue
        hits, bass, melody = _pick_roles(list(score.tracks))
        if not bass or not melody:
            skipped["freedoom: no bass or melody line"] += 1
            continue
        digest = hash((tuple(bass[:64]), tuple(melody[:64])))  # a few songs ship twice
        if digest in seen_digests:
            skipped["freedoom: duplicate song"] += 1
            continue
        seen_digests.add(digest)
        onsets = [n.start for n in bass + melody] + [n.start for n in hits]
        feel, _ = rules.detect_feel(onsets)  # sequenced files: no offset to correct
        end = max(n.start + n.duration for n in bass + melody + hits) + TPB
        drums = rules.quantize_hits([(n.start, n.pitch, n.velocity) for n in hits], feel, end)
        bass_q, melody_q = (_quantize_line(line, feel) for line in (bass, melody))
        total_bars = end // BAR
        has_drums = len(drums) >= 4 * total_bars  # a real kit part, not a few effects hits
        bass_bars, melody_bars = Counter(n.start // BAR for n in bass_q), Counter(n.start // BAR for n in melody_q)
        drum_bars = good_drum_bars(drums) if has_drums else [True] * total_bars
        good = [bool(bass_bars[b] and melody_bars[b] and (b < len(drum_bars) and drum_bars[b]))
                for b in range(total_bars)]
        bpm = round(score.tempos[0].qpm, 2) if len(score.tempos) else 120.0
        key = estimate_key(bass_q + melody_q)
        relative = path.relative_to(root).with_suffix("")
        grooves.append(Groove(f"freedoom:{relative.as_posix()}", "freedoom", "rock" if has_drums else "ambient",
                              bpm, feel, drums if has_drums else [], good, bass_q, melody_q, key))
    return grooves


def _quantize_line(notes: list[Note], feel: str) -> list[Note]:
    out = []
    for n in notes:
        start = rules.snap(n.start, feel)
        end = max(start + GRID, _round_to(n.start + n.duration, GRID))
        out.append(Note(start, end - start, n.pitch, n.velocity))
    return monophonic(out)


# ----------------------------------------------------------------------------- plan


@dataclass
class Slot:
    """One piece to build: its genre, length, drum source and window, and its group."""

    genre: str
    index: int
    bars: int
    transform: str  # real | lofi | trap | dnb | house | techno | freedoom | rule
    group: str
    groove: Groove | None = None
    start_bar: int = 0
    filled: bool = False  # a real fill went into one of its phrase ends (set when its drums are made)


def _windows(groove: Groove, source_bars: int, hop: int) -> list[int]:
    flags = groove.good_bars
    return [s for s in range(0, len(flags) - source_bars + 1, hop) if all(flags[s:s + source_bars])]


def plan_slots(grooves: list[Groove], config: CorpusConfig, have_melodies: bool) -> tuple[list[Slot], dict]:
    """For every genre, `items_per_genre` slots filled from its drum sources in order:
    each source's windows are used least-used first, at most `max_window_uses` times;
    a source listed in `source_max_share` fills at most that share of the genre; "rule"
    is unlimited."""
    by_genre: dict[tuple[str, str], list[Groove]] = defaultdict(list)
    for g in grooves:
        by_genre[(g.source, g.genre)].append(g)
    slots: list[Slot] = []
    shortfall = {}
    for genre in config.genres:
        uses: Counter = Counter()
        made = 0
        for index in range(config.items_per_genre):
            rng = random.Random(f"{config.seed}:plan:{genre}:{index}")
            bars = rng.choice(config.bars)
            slot = None
            for source in config.drums[genre]:
                if source == "rule":
                    if have_melodies:
                        slot = Slot(genre, index, bars, "rule", f"rule:{genre}:{index // 4:03d}")
                    break
                share = config.source_max_share.get(source)
                if share is not None and uses[source] >= math.ceil(share * config.items_per_genre):
                    continue
                if source == "freedoom":
                    candidates, transform = by_genre[("freedoom", genre)], "freedoom"
                else:
                    transform, _, of = source.partition(":")
                    if not have_melodies:
                        continue
                    candidates = by_genre[("gmd", of)]
                stretch = 2 if transform == "trap" else 1
                source_bars = -(-bars // stretch)
                options = [(uses[(g.group, s)], g.group, s, g) for g in candidates
                           for s in _windows(g, source_bars, config.window_hop_bars)
                           if uses[(g.group, s)] < config.max_window_uses]
                if not options:
                    continue
                least = min(o[0] for o in options)
                # spread over performances first, then over their windows
                per_group = Counter(uses[("group", o[1])] for o in options if o[0] == least)
                fewest = min(per_group)
                pool = [o for o in options if o[0] == least and uses[("group", o[1])] == fewest]
                _, group, start, groove = pool[rng.randrange(len(pool))]
                uses[(group, start)] += 1
                uses[("group", group)] += 1
                uses[source] += 1
                slot = Slot(genre, index, bars, transform, group, groove, start)
                break
            if slot is None:
                continue
            slots.append(slot)
            made += 1
        if made < config.items_per_genre:
            shortfall[genre] = config.items_per_genre - made
    return slots, shortfall


# ----------------------------------------------------------------------------- melodies


@dataclass
class Excerpt:
    song_id: str
    melody: list[Note]
    chords: list[rules.ChordSpan]
    key: Key
    bass: list[Note] = field(default_factory=list)  # real, where the source has one (WJD)
    piano_bass: list[Note] = field(default_factory=list)  # the accompaniment's low notes (POP909 PIANO)


def melody_bars_needed(slot: Slot) -> int:
    if slot.genre in MELODY_LOOP_BARS:
        return min(slot.bars, MELODY_LOOP_BARS[slot.genre])
    return -(-slot.bars // MELODY_STRETCH.get(slot.genre, 1))


class SongDealer:
    """Deals POP909 songs to groups so that each song serves exactly one group: a group
    asks for an excerpt, gets one from its own songs (least-used window first) and is
    dealt a fresh song when its songs have no unused window of that length. Only when
    every song is dealt (tiny corpora) do groups share songs; `shared` counts those deals."""

    def __init__(self, songs: list[Song], seed: int) -> None:
        self.order = list(songs)
        random.Random(f"{seed}:songs").shuffle(self.order)
        self.position = 0
        self.shared = 0
        self.dealt: dict[str, list[Song]] = defaultdict(list)
        self.uses: Counter = Counter()

    def excerpt(self, group: str, bars: int, rng: random.Random) -> Excerpt | None:
        for _ in range(8):  # a few fresh songs at most: some songs have no long clean stretch
            options = self._options(self.dealt[group], bars)
            if options and min(o[0] for o in options) == 0:
                break
            if not self.order or (self.position >= len(self.order) and options):
                break
            if self.position >= len(self.order):
                self.shared += 1
            self.dealt[group].append(self.order[self.position % len(self.order)])
            self.position += 1
        options = self._options(self.dealt[group], bars)
        if not options:
            return None
        least = min(o[0] for o in options)
        pool = [o for o in options if o[0] == least]
        _, song_id, start, song = pool[rng.randrange(len(pool))]
        self.uses[(song_id, start)] += 1
        return cut_excerpt(song, start, bars)

    def _options(self, songs: list[Song], bars: int) -> list[tuple[int, str, int, Song]]:
        """(uses, song id, start bar, song) for every window of `bars` clean bars, every 2 bars."""
        return [(self.uses[(song.song_id, start)], song.song_id, start, song)
                for song in songs for start in range(0, len(song.good_bars) - bars + 1, 2)
                if all(song.good_bars[start:start + bars])]


def cut_excerpt(song: Song, start_bar: int, bars: int) -> Excerpt:
    lo, hi = start_bar * BAR, (start_bar + bars) * BAR
    melody = _notes_between(song.melody, lo, hi)
    chords = [rules.ChordSpan(max(s.start, lo) - lo, min(s.end, hi) - lo, s.chord)
              for s in song.chords if s.end > lo and s.start < hi]
    key = song.keys[0] if len(song.keys) == 1 else estimate_key(melody, song.keys)
    return Excerpt(song.song_id, melody, chords, key, _notes_between(song.bass, lo, hi),
                   _notes_between(song.piano_bass, lo, hi))


def retime_line(notes: list[Note], genre: str, bars: int, feel: str) -> list[Note]:
    """A line of the excerpt in the groove's beats: half-time for trap/dnb/ambient, looped
    for house/techno, swung to the groove's feel; cut at the piece's end."""
    factor = MELODY_STRETCH.get(genre, 1)
    if factor > 1:
        notes = rules.stretch(notes, factor)
    loop_bars = MELODY_LOOP_BARS.get(genre)
    if loop_bars:
        span = min(bars, loop_bars) * BAR
        notes = [Note(n.start + k, n.duration, n.pitch, n.velocity)
                 for k in range(0, bars * BAR, span) for n in notes if n.start < span]
    if feel == "triplet":
        notes = [Note(n.start - n.start % TPB + {120: 160, 240: 320, 360: 400}.get(n.start % TPB, n.start % TPB),
                      n.duration, n.pitch, n.velocity) for n in notes]
    elif feel == "swing16":
        notes = rules.swing_16ths(notes)
    total = bars * BAR
    return [Note(n.start, min(n.duration, total - n.start), n.pitch, n.velocity) for n in notes if n.start < total]


def retime_melody(excerpt: Excerpt, genre: str, bars: int, feel: str) -> tuple[list[Note], list[rules.ChordSpan]]:
    """The excerpt's melody and chords in the groove's beats (`retime_line`), legato and
    soft for ambient."""
    melody, chords = excerpt.melody, excerpt.chords
    factor = MELODY_STRETCH.get(genre, 1)
    if factor > 1:
        chords = [rules.ChordSpan(s.start * factor, s.end * factor, s.chord) for s in chords]
    loop_bars = MELODY_LOOP_BARS.get(genre)
    if loop_bars:
        span = min(bars, loop_bars) * BAR
        chords = [rules.ChordSpan(s.start + k, s.end + k, s.chord)
                  for k in range(0, bars * BAR, span) for s in chords if s.start < span]
    melody = retime_line(melody, genre, bars, feel)
    if _RULES[genre].melody.legato:  # long notes: each note held to the next one (at most a bar)
        melody = [n for n in melody if n.duration >= 240] or melody
        melody = [Note(n.start, min(BAR, (melody[i + 1].start if i + 1 < len(melody) else bars * BAR) - n.start),
                       n.pitch, n.velocity) for i, n in enumerate(melody)]
    factor_velocity = MELODY_VELOCITY.get(genre, 1.0)
    melody = [Note(n.start, n.duration, n.pitch, rules.clamp_velocity(n.velocity * factor_velocity)) for n in melody]
    total = bars * BAR
    melody = monophonic([Note(n.start, min(n.duration, total - n.start), n.pitch, n.velocity)
                         for n in melody if n.start < total])
    chords = [rules.ChordSpan(s.start, min(s.end, total), s.chord) for s in chords if s.start < total]
    return melody, chords


MELODY_CENTRE = 71  # a melody's mean pitch after transposition (B4; POP909's melodies: median 73)


def transpose_excerpt(excerpt: Excerpt, rng: random.Random, spread: bool) -> Excerpt:
    """Move the excerpt to a random tonic (all 12 equally likely), by at most 6 semitones,
    and keep the melody's register around MELODY_CENTRE on average (it sang around F#4,
    66, before issue 26: a register below the real melodies it came from)."""
    shift = ((rng.randrange(12) - excerpt.key.tonic + 6) % 12) - 6 if spread else 0
    mean = np.mean([n.pitch for n in excerpt.melody]) + shift if excerpt.melody else MELODY_CENTRE
    octave = 12 * int(np.clip(np.round((MELODY_CENTRE - mean) / 12), -2, 2))
    melody = [Note(n.start, n.duration, int(np.clip(n.pitch + shift + octave, 36, 100)), n.velocity)
              for n in excerpt.melody]
    chords = [rules.ChordSpan(s.start, s.end, s.chord.transposed(shift)) for s in excerpt.chords]

    def low(notes: list[Note]) -> list[Note]:  # a bass moves with the key, in the bass register
        out, previous = [], None
        for n in notes:
            pitch = rules.bass_pitch((n.pitch + shift) % 12, previous)
            out.append(Note(n.start, n.duration, pitch, n.velocity))
            previous = pitch
        return out

    return Excerpt(excerpt.song_id, melody, chords, excerpt.key.transposed(shift), low(excerpt.bass),
                   low(excerpt.piano_bass))


# ----------------------------------------------------------------------------- pieces


@dataclass
class Piece:
    genre: str
    bars: int
    bpm: float
    key: Key
    group: str
    sources: list[str]  # drums source, then melody/bass source
    tracks: dict[str, Track]
    basis: dict[str, str]  # role -> how it was obtained


def _bpm_for(slot: Slot, config: CorpusConfig, rng: random.Random) -> float:
    low, high = config.bpm_ranges[slot.genre]
    if slot.transform in ("real", "freedoom") and slot.groove is not None:
        return float(np.clip(round(slot.groove.bpm, 2), low, high))
    return float(rng.randint(int(low), int(high)))


def _drums_for(slot: Slot, rng: random.Random, fills: dict[str, list[Fill]] | None = None,
               fill_share: float = 0.0) -> list[Note]:
    bars = slot.bars
    if slot.groove is None:
        return rules.ambient_drums(bars, rng) if slot.genre == "ambient" and rng.random() < 0.5 else []
    stretch = 2 if slot.transform == "trap" else 1
    source_bars = -(-bars // stretch)
    notes = _notes_between(slot.groove.drums, slot.start_bar * BAR, (slot.start_bar + source_bars) * BAR)
    if fills and fill_share and slot.transform in ("real", "lofi", "dnb"):
        fill_rng = random.Random(f"fills:{slot.genre}:{slot.index}")  # its own stream: the grooves stay as they were
        notes, slot.filled = splice_fills(notes, source_bars, slot.groove.feel, slot.genre,
                                          slot.group.removeprefix("gmd:"), fills, fill_share, fill_rng)
    if slot.transform == "lofi":
        notes = rules.lofi_groove(notes, rng)
    elif slot.transform == "trap":
        notes = rules.trap_groove(notes, bars, rng)
    elif slot.transform == "dnb":
        notes = rules.dnb_groove(notes, bars, rng)
    elif slot.transform in ("house", "techno"):
        notes = rules.four_on_the_floor(notes, bars, rng, techno=slot.transform == "techno")
    elif slot.genre in ("house", "techno"):  # real disco grooves: complete the kick pattern
        notes = rules.complete_four_on_the_floor(notes, bars)
    return [n for n in notes if n.start < bars * BAR]


def build_piece(slot: Slot, excerpt: Excerpt | None, config: CorpusConfig,
                fills: dict[str, list[Fill]] | None = None) -> Piece:
    rng = random.Random(f"{config.seed}:piece:{slot.genre}:{slot.index}")
    bpm = _bpm_for(slot, config, rng)
    total = slot.bars * BAR
    programs = GENRE_PROGRAMS[slot.genre]
    tracks: dict[str, Track] = {}
    if slot.transform == "freedoom":
        groove = slot.groove
        lo, hi = slot.start_bar * BAR, (slot.start_bar + slot.bars) * BAR
        drums = _notes_between(groove.drums, lo, hi)
        bass, melody = _notes_between(groove.bass, lo, hi), _notes_between(groove.melody, lo, hi)
        key = estimate_key(bass + melody)
        sources = ["freedoom"]
        basis = {"drums": "freedoom" if drums else "none", "bass": "freedoom", "melody": "freedoom"}
    else:
        drums = _drums_for(slot, rng, fills, config.fill_share)
        feel = rules.detect_feel([n.start for n in drums])[0] if drums else "straight"
        excerpt = transpose_excerpt(excerpt, rng, config.transpose)
        melody, chords = retime_melody(excerpt, slot.genre, slot.bars, feel)
        key = excerpt.key
        kicks = rules.kick_ticks(drums)
        melody_source = "wjd" if excerpt.song_id.startswith("wjd:") else "pop909"
        if excerpt.bass:  # a real bass line came with the melody
            bass = monophonic(retime_line(excerpt.bass, slot.genre, slot.bars, feel))
            bass_basis = f"{melody_source} real"
        else:
            real_pitches = excerpt.piano_bass if slot.genre in PIANO_BASS_GENRES else None
            if real_pitches:
                real_pitches = retime_line(real_pitches, slot.genre, slot.bars, feel)
            bass = rules.derive_bass(chords, kicks, total, key, slot.genre, rng, real_pitches)
            bass_basis = ("rhythm by rules, pitches from the pop909 piano's lowest notes" if real_pitches
                          else "derived from pop909 chords by rules")
        drum_source = {"real": "gmd", "rule": "rule"}.get(slot.transform, "gmd")
        sources = [drum_source, melody_source] if drums else [melody_source]
        drums_basis = {"real": "gmd real", "rule": "rule-made"}.get(slot.transform, f"gmd -> {slot.transform} rules")
        if slot.transform == "real" and slot.genre in ("house", "techno"):
            drums_basis = "gmd real + kicks completed"
        if slot.filled:
            drums_basis += " + real gmd fills"
        basis = {
            "drums": drums_basis,
            "melody": f"{melody_source} retimed by rules" if slot.genre in RETIMED_MELODY_GENRES else f"{melody_source} real",
            "bass": bass_basis,
        }
        if not drums:
            basis["drums"] = "none"
    if drums:
        tracks["drums"] = Track("drums", 0, True, drums)
    tracks["bass"] = Track("bass", programs["bass"], False, bass)
    tracks["melody"] = Track("melody", programs["melody"], False, melody)
    return Piece(slot.genre, slot.bars, bpm, key, slot.group, sources, tracks, basis)


# ----------------------------------------------------------------------------- build

_PROGRESS = [True]  # tqdm bars on/off for the loaders (set by build_corpus)


def build_corpus(data_root: Path, out_dir: Path, config: CorpusConfig, progress: bool = True) -> dict:
    """Build the corpus into `out_dir` (replacing an earlier corpus there) and return the
    summary also written to `out_dir/corpus.json`."""
    started = time.perf_counter()
    _PROGRESS[0] = progress
    data_root, out_dir = Path(data_root), Path(out_dir)
    config = config.validated()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "corpus.json").exists():
        raise CorpusError(f"{out_dir}: exists and is not a corpus folder; choose an empty or new --out")
    skipped: Counter = Counter()
    grooves: list[Groove] = []
    songs: list[Song] = []
    for name in ("gmd", "pop909", "freedoom"):
        if not (data_root / name).is_dir():
            skipped[f"{name}: folder missing"] += 1
    fills: dict[str, list[Fill]] = {}
    if (data_root / "gmd").is_dir():
        grooves += load_gmd(data_root / "gmd", config, skipped)
        if config.fill_share:
            fills = load_gmd_fills(data_root / "gmd", config, skipped)
    if (data_root / "pop909").is_dir():
        songs = load_pop909(data_root / "pop909", config, skipped)
    solos: list[Song] = []
    if "wjd" in config.melody_sources.values():
        if (data_root / "wjd").is_dir():
            solos = load_wjd(data_root / "wjd", skipped, config.wjd_max_solos)
        else:
            skipped["wjd: folder missing"] += 1
    if (data_root / "freedoom").is_dir():
        grooves += load_freedoom(data_root / "freedoom", skipped)
    if not grooves and not songs:
        raise CorpusError(f"{data_root}: found no usable gmd/, pop909/ or freedoom/ data")

    slots, shortfall = plan_slots(grooves, config, have_melodies=bool(songs))
    dealers = {"pop909": SongDealer(songs, config.seed), "wjd": SongDealer(solos, config.seed)}
    # an earlier corpus in out_dir is replaced whole, once this one is complete
    with atomic_folder(out_dir, replace=True) as tmp_dir:
        rows, pieces_meta = [], []
        total_notes = 0
        for slot in progress_bar(slots, desc="corpus", enabled=progress, unit="piece"):
            excerpt = None
            if slot.transform != "freedoom":
                rng = random.Random(f"{config.seed}:melody:{slot.genre}:{slot.index}")
                source = config.melody_sources.get(slot.genre, "pop909")
                if source == "wjd" and not solos:
                    source = "pop909"  # no WJD folder: the genre keeps POP909 melodies (counted as skipped)
                excerpt = dealers[source].excerpt(slot.group, melody_bars_needed(slot), rng)
                if excerpt is None:
                    skipped["pieces: no melody excerpt long enough"] += 1
                    continue
            piece = build_piece(slot, excerpt, config, fills)
            name = f"{slot.genre}/{slot.genre}_{slot.index:04d}.mid"
            conditions = Conditions(genre=piece.genre, bpm=piece.bpm, key=piece.key.name, bars=piece.bars,
                                    seed=config.seed)
            Arrangement(conditions, piece.tracks).write_midi(tmp_dir / name)
            source = "+".join(piece.sources)
            rows.append({"filename": name, "genre": piece.genre, "bpm": f"{piece.bpm:g}", "key": piece.key.name,
                         "group": piece.group, "source": source,
                         "licence": " + ".join(LICENCES[s] for s in piece.sources)})
            pieces_meta.append((piece, source, excerpt.song_id if excerpt else None))
            total_notes += sum(len(t.notes) for t in piece.tracks.values())
        with open(tmp_dir / "tracks.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["filename", "genre", "bpm", "key", "group", "source", "licence"])
            writer.writeheader()
            writer.writerows(rows)
        summary = _summary(config, pieces_meta, skipped, shortfall, sum(d.shared for d in dealers.values()), grooves,
                           songs + solos, total_notes,
                           time.perf_counter() - started)
        (tmp_dir / "corpus.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        _plot(summary, tmp_dir / "corpus.png")
    return summary


def _summary(config: CorpusConfig, pieces: list[tuple[Piece, str, str | None]], skipped: Counter,
             shortfall: dict, shared: int, grooves: list[Groove], songs: list[Song], total_notes: int,
             seconds: float) -> dict:
    per_genre: dict[str, dict] = {}
    for genre in config.genres:
        mine = [(p, s) for p, s, _ in pieces if p.genre == genre]
        basis: dict[str, Counter] = defaultdict(Counter)
        for p, _ in mine:
            for role in ("drums", "bass", "melody"):
                basis[role][p.basis.get(role, "none")] += 1
        bpms = [p.bpm for p, _ in mine]
        per_genre[genre] = {
            "files": len(mine),
            "sources": dict(Counter(s for _, s in mine)),
            "basis": {role: dict(counts) for role, counts in basis.items()},
            "bpm_min": min(bpms, default=None), "bpm_max": max(bpms, default=None),
            "groups": len({p.group for p, _ in mine}),
            "keys": len({p.key.name for p, _ in mine}),
            "notes": sum(sum(len(t.notes) for t in p.tracks.values()) for p, _ in mine),
        }
    return {
        "files": len(pieces),
        "notes": total_notes,
        "seconds": round(seconds, 1),
        "per_genre": per_genre,
        "shortfall": shortfall,
        "skipped": dict(sorted(skipped.items())),
        "loaded": {"gmd_performances": sum(g.source == "gmd" for g in grooves),
                   "freedoom_songs": sum(g.source == "freedoom" for g in grooves),
                   "pop909_songs": sum(not s.song_id.startswith("wjd:") for s in songs),
                   "pop909_songs_used": len({s for _, _, s in pieces if s and not s.startswith("wjd:")}),
                   "wjd_solos": sum(s.song_id.startswith("wjd:") for s in songs),
                   "wjd_solos_used": len({s for _, _, s in pieces if s and s.startswith("wjd:")}),
                   "song_deals_shared_between_groups": shared},
        "config": asdict(config),
    }


def _plot(summary: dict, path: Path) -> None:
    """Files per genre, stacked by how the drums were obtained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres = list(summary["per_genre"])
    kinds = sorted({k for g in genres for k in summary["per_genre"][g]["basis"].get("drums", {})})
    fig, ax = plt.subplots(figsize=(12, 4))
    bottom = np.zeros(len(genres))
    for kind in kinds:
        counts = np.array([summary["per_genre"][g]["basis"].get("drums", {}).get(kind, 0) for g in genres])
        ax.bar(genres, counts, bottom=bottom, label=f"drums: {kind}")
        bottom += counts
    ax.set_ylabel("files")
    ax.set_title(f"stemforge corpus: {summary['files']} files, {summary['notes']} notes")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
