"""`pipeline prepare`: a folder of MIDI files -> a token dataset, a SHA-256 novelty index
and a prepare report.

Per file: read (symusic), keep 4/4 regions (read from the notes where the header is a
tool's default such as POP909's 1/4), detect roles, map extended drum notes to General
MIDI, quantize to the token grid, cut into N-bar windows, transpose pitched tracks
(training side only), tokenize. The split
is by source group (a CSV `group` column, else the file), so no window of one song sits on
both sides. A file that cannot be used is skipped with its reason; it never stops the run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import symusic

from stemforge.configs import load_config, resolve_config
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import atomic_folder, output_problem
from stemforge.symbolic.core.progress import progress_bar
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.core.ticks import STEP_TICKS as GRID_TICKS
from stemforge.symbolic.music import drum_map
from stemforge.symbolic.music.arrangement import Note, Track, end_tracks_at, tracks_to_score
from stemforge.symbolic.music.conditions import DENSITIES, GENRES, ROLES, UNLABELLED_GENRE, match_genre
from stemforge.symbolic.music.drum_map import map_drum_notes
from stemforge.symbolic.music.keys import Key, parse_key
from stemforge.symbolic.music.roles import detect_roles
from stemforge.symbolic.music.tokenizer import NO_KEY, ComposerTokenizer, TokenizerSpec
from stemforge.symbolic.training.meter import MeterJudgement, judge_meter
from stemforge.symbolic.training.training_index import (
    PIECES_FILE,
    TrainingPiece,
    build_novelty_index,
    save_training_pieces,
)
from stemforge.symbolic.training.window_store import save_window_notes

MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
CONTEXT_SIZES = (1024, 2048)  # n_positions of the shipped train configs (tiny, small)

class PrepareError(UserError):
    pass


@dataclass
class PrepareConfig:
    window_bars: list[int] = field(default_factory=lambda: [4, 8])
    stride_bars: int = 4
    transpositions: list[int] = field(default_factory=lambda: [-2, -1, 1, 2])
    valid_fraction: float = 0.1
    min_notes_per_window: int = 4
    max_bars: int = 16
    reference_windows: int = 64
    seed: int = 0
    # How drum notes are read (symbolic/music/drum_map.py): "auto" (a V-Drums kit where a file or
    # another file of its folder has edge hats 22/26, else General MIDI), "gm" or "vdrums".
    drum_kit: str = "auto"

    @classmethod
    def load(cls, name_or_path: str | Path | None) -> PrepareConfig:
        if name_or_path is None:
            return cls()
        return load_config(cls, resolve_config(name_or_path, "prepare"), PrepareError, "prepare config")


@dataclass
class SourcePiece:
    """One usable file: quantized tracks at TICKS_PER_BEAT, its labels and 4/4 bar range."""

    path: str  # relative to the MIDI folder
    group: str
    genre: str
    bpm: float
    key: str
    tracks: dict[str, Track]
    bar_ranges: list[tuple[int, int]]  # [first bar, end bar) regions in 4/4
    meter: dict = field(default_factory=dict)  # what the bars were taken from (Meter.as_report)
    drum_notes: dict = field(default_factory=dict)  # {"mapped": {pitch: n}, "dropped": {pitch: n}, "kit": ...}
    # the notes as played (meter shift, drum map and ranges applied, not quantized): what the
    # novelty index reads, the same way eval reads a run (symbolic/music/canonical.py)
    played: dict[str, list[Note]] = field(default_factory=dict)


# ---------------------------------------------------------------- metadata

def read_metadata(csv_path: Path | None) -> dict[str, dict]:
    """filename (relative path or bare name) -> row."""
    if csv_path is None:
        return {}
    if not csv_path.is_file():
        raise PrepareError(f"--metadata: {csv_path} does not exist")
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "filename" not in reader.fieldnames:
            raise PrepareError(f"--metadata: {csv_path} needs a 'filename' column (plus genre, bpm, key...)")
        rows = {}
        for row in reader:
            name = row["filename"].strip()
            rows[name] = row
            rows.setdefault(Path(name).name, row)
    return rows


def genre_from_text(text: str) -> str | None:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|[_\-.]+", " ", text)
    spaced = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", spaced)
    return match_genre(spaced)


def bpm_from_name(name: str) -> float | None:
    match = re.search(r"(\d{2,3}(?:\.\d+)?)\s*[_\- ]?bpm", name, re.IGNORECASE)
    if match and 20 <= float(match.group(1)) <= 300:
        return float(match.group(1))
    return None


# Krumhansl-Kessler key profiles
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(notes: list[Note]) -> str:
    if len(notes) < 8:
        return NO_KEY
    histogram = np.zeros(12)
    for note in notes:
        histogram[note.pitch % 12] += note.duration
    best, best_score = NO_KEY, -np.inf
    for tonic in range(12):
        for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
            score = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            if score > best_score:
                best, best_score = Key(tonic, mode).name, score
    return best


def _fit_range(notes: list[Note], low: int, high: int) -> list[Note]:
    """Move notes by octaves into [low, high); drop what cannot fit."""
    out = []
    for note in notes:
        pitch = note.pitch
        while pitch < low:
            pitch += 12
        while pitch >= high:
            pitch -= 12
        if low <= pitch < high:
            out.append(Note(note.start, note.duration, pitch, note.velocity))
    return out


def quantize(notes: list[Note]) -> list[Note]:
    out = set()
    for note in notes:
        start = round(note.start / GRID_TICKS) * GRID_TICKS
        duration = max(GRID_TICKS, round(note.duration / GRID_TICKS) * GRID_TICKS)
        out.add(Note(start, min(duration, 4 * TICKS_PER_BEAT), note.pitch, note.velocity))
    return sorted(out)


# ---------------------------------------------------------------- meter

def header_kind(numerator: int, denominator: int) -> str:
    """"4/4" (4/4, or 2/2: the same bars), "unclear" (a bar of 1/4, 1/2, 1, 2, 4 or 8
    quarter notes that is not 4/4: 1/4, 2/4, 8/8, 4/8... are what tools write by default,
    POP909 writes 1/4 over 4/4 songs; the notes decide), or "other" (3/4, 6/8, 5/4, 12/8...:
    a real meter, taken at its word)."""
    if (numerator, denominator) in ((4, 4), (2, 2)):
        return "4/4"
    quarters = 4 * numerator / max(1, denominator)
    return "unclear" if quarters in (0.25, 0.5, 1, 2, 4, 8) else "other"


@dataclass
class Meter:
    """Which stretches of a file are used as 4/4 and where their bar lines fall, and why."""

    regions: list[tuple[int, int | None]]  # [start, end) in the file's ticks; None = to the end
    header: str  # the time signatures as written, "1/4" or "4/4 2/4", or "none"
    source: str  # the bars come from the "header", an "annotation", the "notes" or the "default" (no header: 4/4)
    shift: int = 0  # ticks (at TICKS_PER_BEAT) added to every note to put a downbeat on a bar line
    judgement: MeterJudgement | None = None
    skip_reason: str = ""  # why no stretch is usable ("" when some is)
    note: str = ""  # what else the report should say

    def place(self, notes: list[Note]) -> list[Note]:
        """The notes moved so the bar lines fall where the meter says."""
        return notes if not self.shift else [Note(n.start + self.shift, n.duration, n.pitch, n.velocity) for n in notes]

    def bar_ranges(self, ticks_per_quarter: int, total_bars: int) -> list[tuple[int, int]]:
        """[first bar, end bar) of each region after the shift; whole bars only."""
        per_bar = TICKS_PER_BAR * ticks_per_quarter  # a bar in units of 1/(TICKS_PER_BEAT * tpq) beat
        out = []
        for start, end in self.regions:
            first = -(-(start * TICKS_PER_BEAT + self.shift * ticks_per_quarter) // per_bar)
            last = total_bars if end is None else (end * TICKS_PER_BEAT + self.shift * ticks_per_quarter) // per_bar
            if min(last, total_bars) > first:
                out.append((first, min(last, total_bars)))
        return out

    def as_report(self) -> dict:
        report = {"header": self.header, "from": self.source, "read_as": "4/4" if self.regions else None,
                  "shift_ticks": self.shift}
        if self.judgement is not None:
            report["judged"] = asdict(self.judgement)
        if self.note:
            report["note"] = self.note
        return report


def _scaled_notes(score: symusic.Score, scale: float) -> tuple[list[Note], list[Note]]:
    """Every note of the file (pitched, drums) at TICKS_PER_BEAT, unquantized."""
    pitched: list[Note] = []
    drums: list[Note] = []
    for track in score.tracks:
        (drums if track.is_drum else pitched).extend(
            Note(round(n.time * scale), max(1, round(n.duration * scale)), n.pitch, n.velocity) for n in track.notes)
    return pitched, drums


@dataclass(frozen=True)
class BeatAnnotation:
    """Where a file's bars are, as someone annotated them: bars of `beats_per_bar` beats, the
    first downbeat at `downbeat` (ticks at TICKS_PER_BEAT in the file's own time)."""

    beats_per_bar: int
    downbeat: int
    source: str  # "beat_midi.txt" or "markers"
    downbeats: tuple[int, ...] = ()  # every annotated downbeat (beat_midi.txt), ticks at TICKS_PER_BEAT


def _ticks_at(score: symusic.Score, seconds: float) -> float:
    """A time in seconds as file ticks, through the file's tempo map."""
    tempos = sorted(((t.time, t.qpm) for t in score.tempos), key=lambda t: t[0]) or [(0, 120.0)]
    if tempos[0][0] > 0:
        tempos.insert(0, (0, 120.0))
    elapsed, tpq = 0.0, score.ticks_per_quarter
    for (tick, qpm), following in zip(tempos, [*tempos[1:], None]):
        span = None if following is None else (following[0] - tick) * 60.0 / (qpm * tpq)
        if span is None or seconds < elapsed + span:
            return tick + (seconds - elapsed) * qpm * tpq / 60.0
        elapsed += span
    return 0.0  # not reached: the last tempo has no end


def read_beat_annotation(path: Path, score: symusic.Score) -> BeatAnnotation | None:
    """The file's bars as annotated, where they are: a POP909-style `beat_midi.txt` beside a
    folder's only MIDI file (one row a beat: seconds, beat flag, downbeat flag), else MIDI
    markers (section names sit on downbeats) when at least two agree on where in a 4-beat
    bar they fall. None where there is no annotation, or one whose beats are not the file's
    quarter notes. Of beat_midi.txt, the bar lines most of its downbeats mark: 681 of
    POP909's 792 4/4 songs have an annotated bar of 2, 3 or 5 beats, a beat tracker's slip
    more often than the music's (the long piano notes of songs 009, 026, 029 and 067 keep
    their beat across it), so a song keeps one phase instead of following each slip."""
    scale = TICKS_PER_BEAT / score.ticks_per_quarter
    beat_file = path.parent / "beat_midi.txt"
    if beat_file.is_file() and len([p for p in path.parent.iterdir() if p.suffix.lower() in MIDI_SUFFIXES]) == 1:
        try:
            rows = np.loadtxt(beat_file, ndmin=2)
        except (ValueError, OSError):  # an unreadable annotation is no annotation: the notes decide
            rows = np.zeros((0, 0))
        if rows.shape[0] >= 8 and rows.shape[1] >= 3:
            beats = np.array([_ticks_at(score, float(t)) * scale for t in rows[:, 0]])
            downbeats = np.flatnonzero(rows[:, 2] == 1)
            period = float(np.median(np.diff(beats)))
            if len(downbeats) >= 2 and abs(period / TICKS_PER_BEAT - 1) < 0.1:
                per_bar = int(np.median(np.diff(downbeats)))
                # the bars most downbeats agree on: an odd first bar (5 beats in POP909 033) is
                # not where the song's bar lines are
                phase = Counter(int(i) % per_bar for i in downbeats).most_common(1)[0][0]
                first = next(int(i) for i in downbeats if i % per_bar == phase)
                return BeatAnnotation(per_bar, round(beats[first]), "beat_midi.txt",
                                      tuple(round(beats[i]) for i in downbeats))
    markers = [round(m.time * scale) for m in score.markers]
    if len(markers) >= 2:
        phases = Counter(round((tick % TICKS_PER_BAR) / GRID_TICKS) * GRID_TICKS % TICKS_PER_BAR for tick in markers)
        phase, agreeing = phases.most_common(1)[0]
        if agreeing >= 2 and agreeing >= 2 * len(markers) / 3:
            return BeatAnnotation(BEATS_PER_BAR, min(t for t in markers if (t - phase) % TICKS_PER_BAR < GRID_TICKS
                                                     or (phase - t) % TICKS_PER_BAR < GRID_TICKS), "markers")
    return None


def read_meter(score: symusic.Score, scale: float, annotation: BeatAnnotation | None = None) -> Meter:
    """The 4/4 stretches of a file. A 4/4 header (or none) is taken as written, and so is a
    real other meter (3/4, 6/8: not used). Where the header is unclear (1/4, 2/4, 8/8...),
    an annotation of the bars decides (`read_beat_annotation`), else the notes do
    (symbolic/training/meter.py): 4/4 with the downbeat they imply, or skipped. A beat_midi.txt
    annotation is taken over any header: it is someone's reading of this very song."""
    if annotation is not None and annotation.source == "beat_midi.txt":
        return _annotated_meter(score, annotation)
    by_tick: dict[int, tuple[int, int]] = {}
    for signature in sorted(score.time_signatures, key=lambda ts: ts.time):
        by_tick[signature.time] = (signature.numerator, signature.denominator)  # the last at a tick wins
    signatures: list[tuple[int, int, int]] = []
    for time, (numerator, denominator) in sorted(by_tick.items()):
        if not signatures or signatures[-1][1:] != (numerator, denominator):
            signatures.append((time, numerator, denominator))
    if not signatures:
        return Meter([(0, None)], "none", "default")
    header = " ".join(dict.fromkeys(f"{n}/{d}" for _, n, d in signatures))
    spans = [(time, following[0] if following else None, header_kind(n, d))
             for (time, n, d), following in zip(signatures, [*signatures[1:], None])]
    written = [(start, end) for start, end, kind in spans if kind == "4/4"]
    unclear = [(start, end) for start, end, kind in spans if kind == "unclear"]
    if not unclear:
        return Meter(written, header, "header", skip_reason="" if written else f"not in 4/4 ({header})")

    candidates = _merge_spans(sorted(written + unclear))
    if annotation is not None:
        return _annotated_meter(score, annotation, candidates)
    pitched, drums = _scaled_notes(score, scale)
    inside = lambda note: any(start * scale <= note.start and (end is None or note.start < end * scale)  # noqa: E731
                              for start, end in candidates)
    judgement = judge_meter([n for n in pitched if inside(n)], [n for n in drums if inside(n)])
    unclear_header = " ".join(dict.fromkeys(f"{n}/{d}" for _, n, d in signatures if header_kind(n, d) == "unclear"))
    if judgement.beats_per_bar == 4:
        shift = (TICKS_PER_BAR - judgement.downbeat) % TICKS_PER_BAR
        return Meter(candidates, header, "notes", shift, judgement,
                     note=f"header {unclear_header} read as 4/4 from the notes: first downbeat "
                          f"{judgement.downbeat / TICKS_PER_BEAT:.2f} beats in, every note moved {shift} ticks later")
    if judgement.too_short:
        why = f"{judgement.beats} beats are too few to read the meter from the notes"
    elif judgement.beats_per_bar == 3:
        why = "the notes move in bars of 3 beats"
    else:
        why = "the notes do not settle the meter"
    fix = "" if judgement.beats_per_bar == 3 else " (give the file a 4/4 time signature if it is in 4/4)"
    if written:
        return Meter(written, header, "header", judgement=judgement,
                     note=f"the {unclear_header} parts are not used: {why}")
    return Meter([], header, "notes", judgement=judgement,
                 skip_reason=f"not in 4/4: the header says {header} and {why}{fix}")


def _annotated_meter(score: symusic.Score, annotation: BeatAnnotation,
                     regions: list[tuple[int, int | None]] | None = None) -> Meter:
    header = " ".join(dict.fromkeys(f"{t.numerator}/{t.denominator}" for t in score.time_signatures)) or "none"
    if annotation.beats_per_bar != BEATS_PER_BAR:
        return Meter([], header, "annotation",
                     skip_reason=f"not in 4/4: {annotation.source} has bars of {annotation.beats_per_bar} beats")
    odd = sum(1 for a, b in zip(annotation.downbeats, annotation.downbeats[1:])
              if abs(b - a - TICKS_PER_BAR) > TICKS_PER_BEAT // 4)
    shift = (TICKS_PER_BAR - annotation.downbeat % TICKS_PER_BAR) % TICKS_PER_BAR
    return Meter(regions or [(0, None)], header, "annotation", shift,
                 note=f"bars from {annotation.source}: first downbeat {annotation.downbeat / TICKS_PER_BEAT:.2f} "
                      f"beats in, every note moved {shift} ticks later"
                      + (f" ({odd} annotated bar(s) of another length: the bars most downbeats mark are used)"
                         if odd else ""))


def _merge_spans(spans: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """Adjacent [start, end) spans joined, so a bar may cross a header change."""
    merged: list[tuple[int, int | None]] = []
    for start, end in spans:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


# ---------------------------------------------------------------- drums

def _pitch_counts(counter: Counter) -> dict[str, int]:
    return {str(pitch): counter[pitch] for pitch in sorted(counter)}


def read_score(path: Path) -> symusic.Score:
    """A MIDI file, or PrepareError with the reason it cannot be read."""
    try:
        score = symusic.Score(str(path))
    except Exception as error:
        raise PrepareError(f"unreadable MIDI ({str(error).splitlines()[0][:80]})") from error
    if score.note_num() == 0:
        raise PrepareError("no notes")
    if score.ticks_per_quarter <= 0:
        raise PrepareError("bad ticks per beat")
    return score


def drum_pitches(score: symusic.Score) -> set[int]:
    return {n.pitch for t in score.tracks if t.is_drum for n in t.notes}


def load_piece(path: Path, root: Path, meta: dict[str, dict], spec: TokenizerSpec, kit: str | None = None,
               score: symusic.Score | None = None) -> SourcePiece:
    """Raises PrepareError with the reason a file cannot be used. `kit`: how its drums are
    read ("gm", "vdrums"; None: from its own notes); `score`: the file already read."""
    relative = str(path.relative_to(root))
    score = score if score is not None else read_score(path)
    row = meta.get(relative) or meta.get(path.name) or {}
    scale = TICKS_PER_BEAT / score.ticks_per_quarter
    roles = detect_roles(list(score.tracks), scale)
    if not roles:
        raise PrepareError("no usable tracks")
    meter = read_meter(score, scale, read_beat_annotation(path, score))
    tracks, played = {}, {}
    drum_notes: dict = {"mapped": {}, "dropped": {}}
    for role, notes in roles.items():
        low, high = spec.role_pitch_ranges[role]
        notes = meter.place(notes)
        if role == "drums":
            drum_kit = kit or drum_map.kit_of(n.pitch for n in notes)
            fitted, mapped, dropped = map_drum_notes(notes, low, high, drum_kit)
            drum_notes = {"mapped": _pitch_counts(mapped), "dropped": _pitch_counts(dropped), "kit": drum_kit}
        else:
            fitted = _fit_range(notes, low, high)
        notes_q = quantize(fitted)
        if notes_q:
            tracks[role] = Track(role, 0, role == "drums", notes_q)
            played[role] = sorted(fitted)
    if not tracks:
        raise PrepareError("no notes in playable ranges")
    if meter.skip_reason:
        raise PrepareError(meter.skip_reason)
    end_tick = max(t.end_tick() for t in tracks.values())
    total_bars = math.ceil(end_tick / TICKS_PER_BAR)
    regions = meter.bar_ranges(score.ticks_per_quarter, total_bars)
    if not regions:
        raise PrepareError(f"no whole 4/4 bar ({meter.header})")
    genre_text = (row.get("genre") or "").strip()
    genre = match_genre(genre_text) if genre_text else genre_from_text(relative)
    bpm = None
    if row.get("bpm"):
        try:
            bpm = float(row["bpm"])
        except ValueError as error:
            raise PrepareError(f"metadata bpm {row['bpm']!r} is not a number") from error
    bpm = bpm or bpm_from_name(path.name) or (score.tempos[0].qpm if len(score.tempos) else 120.0)
    if row.get("key"):
        try:
            key = parse_key(row["key"]).name
        except ValueError as error:
            raise PrepareError(f"metadata key {row['key']!r}: {error}") from error
    else:
        key = estimate_key([n for r in ("bass", "melody") if r in tracks for n in tracks[r].notes])
    return SourcePiece(relative, (row.get("group") or relative).strip(), genre or UNLABELLED_GENRE,
                       float(bpm), key, tracks, regions, meter.as_report(), drum_notes, played)


# ---------------------------------------------------------------- windows

@dataclass
class Window:
    source: int  # index into pieces
    start_bar: int
    bars: int
    tracks: dict[str, Track]
    notes_per_bar: float = 0.0


def cut_windows(piece: SourcePiece, index: int, config: PrepareConfig) -> list[Window]:
    windows = []
    for first, end in piece.bar_ranges:
        for bars in config.window_bars:
            for start_bar in range(first, end - bars + 1, config.stride_bars):
                lo, hi = start_bar * TICKS_PER_BAR, (start_bar + bars) * TICKS_PER_BAR
                tracks, total = {}, 0
                for role, track in piece.tracks.items():
                    notes = [Note(n.start - lo, min(n.duration, hi - n.start), n.pitch, n.velocity)
                             for n in track.notes if lo <= n.start < hi]
                    if notes:
                        tracks[role] = Track(role, 0, track.is_drum, notes)
                        total += len(notes)
                if total >= config.min_notes_per_window:
                    windows.append(Window(index, start_bar, bars, tracks, total / bars))
    return windows


def transpose_tracks(tracks: dict[str, Track], semitones: int, spec: TokenizerSpec) -> dict[str, Track] | None:
    out = {}
    for role, track in tracks.items():
        if role == "drums":
            out[role] = track
            continue
        low, high = spec.role_pitch_ranges[role]
        notes = [Note(n.start, n.duration, n.pitch + semitones, n.velocity) for n in track.notes]
        if any(not low <= n.pitch < high for n in notes):
            return None
        out[role] = Track(role, 0, False, notes)
    return out


def density_thresholds(windows: list[Window], genre_of: list[str]) -> dict[str, tuple[float, float]]:
    """Per genre (and '*' overall) the 1/3 and 2/3 quantiles of notes per bar."""
    values: dict[str, list[float]] = defaultdict(list)
    for window in windows:
        values[genre_of[window.source]].append(window.notes_per_bar)
        values["*"].append(window.notes_per_bar)
    out = {}
    for genre, v in values.items():
        if len(v) >= 12 or genre == "*":
            low, high = np.quantile(v, [1 / 3, 2 / 3])
            out[genre] = (float(low), float(high))
    return out


def density_of(notes_per_bar: float, genre: str, thresholds: dict[str, tuple[float, float]]) -> str:
    low, high = thresholds.get(genre, thresholds["*"])
    return DENSITIES[0] if notes_per_bar < low else DENSITIES[2] if notes_per_bar > high else DENSITIES[1]


def token_lengths(lengths: list[int], bars: list[int]) -> dict:
    """How long the training sequences are, in tokens: what a model's context (the train
    config's n_positions) has to hold. Percentiles, the longest, the share longer than each
    shipped context, overall and per window length (shorter windows are the other cure)."""
    def stats(values: np.ndarray) -> dict:
        out: dict = {"count": int(len(values)), "mean": round(float(values.mean()), 1)}
        out.update({f"p{q}": int(np.percentile(values, q)) for q in (50, 90, 95, 99)})
        out["max"] = int(values.max())
        out.update({f"over_{size}": round(float((values > size).mean()), 4) for size in CONTEXT_SIZES})
        return out

    values, window_bars = np.asarray(lengths), np.asarray(bars)
    return {**stats(values),
            "by_window_bars": {str(b): stats(values[window_bars == b]) for b in sorted(set(bars))}}


def _untrained_warning(genre: str, valid_windows: int, files: int) -> str:
    where = (f"all {valid_windows} of its windows are in validation" if valid_windows
             else f"its {files} file(s) gave no window")
    return (f"genre {genre!r} has no training windows ({where}): a model trained on this data knows its "
            f"name but not its music; add files of it, give them their own `group`s, or lower valid_fraction")


def _drum_note_totals(pieces: list[SourcePiece]) -> dict[str, dict[str, int]]:
    """Mapped and dropped drum notes per original pitch, over every used file."""
    totals: dict[str, Counter] = {"mapped": Counter(), "dropped": Counter()}
    for piece in pieces:
        for kind in totals:
            totals[kind].update({int(pitch): count for pitch, count in piece.drum_notes.get(kind, {}).items()})
    return {kind: _pitch_counts(counts) for kind, counts in totals.items()}


def split_groups(groups: list[str], valid_fraction: float) -> set[str]:
    """Validation groups: a deterministic hash order, at least one when there are two."""
    unique = sorted(set(groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    if len(unique) < 2 or valid_fraction <= 0:
        return set()
    count = min(len(unique) - 1, max(1, round(len(unique) * valid_fraction)))
    return set(unique[:count])


# ---------------------------------------------------------------- main entry

def _by_folder(files: list[Path]) -> dict[Path, list[Path]]:
    folders: dict[Path, list[Path]] = defaultdict(list)
    for path in files:
        folders[path.parent].append(path)
    return folders


def folder_drum_kit(scores: list[symusic.Score], setting: str = "auto") -> str | None:
    """The kit every file of one folder is read as: `setting` when it names one, "vdrums"
    when any file of the folder has V-Drums edge hats (a folder of takes is one kit: a take
    without edge hats still has the kit's rims on 58/52/55), else None (each file its own)."""
    if setting not in drum_map.KITS:
        raise PrepareError(f"prepare config: drum_kit {setting!r} is not one of {', '.join(drum_map.KITS)}")
    if setting != "auto":
        return setting
    return "vdrums" if any(drum_map.kit_of(drum_pitches(score)) == "vdrums" for score in scores) else None


def prepare_dataset(
    midi_dir: Path, out_dir: Path, metadata: Path | None = None, config: PrepareConfig | None = None,
    progress: bool = True,
) -> dict:
    config = config or PrepareConfig()
    midi_dir, out_dir = Path(midi_dir), Path(out_dir)
    if not midi_dir.is_dir():
        raise PrepareError(f"MIDI_DIR: {midi_dir} is not a folder")
    problem = output_problem(out_dir)
    if problem:  # before minutes of reading and tokenizing
        raise PrepareError(f"--out: {problem}")
    files = sorted(p for p in midi_dir.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise PrepareError(f"MIDI_DIR: {midi_dir} holds no .mid/.midi files")
    meta = read_metadata(metadata)
    provisional = TokenizerSpec(genres=list(GENRES), max_bars=max(config.max_bars, *config.window_bars))

    outcomes: dict[Path, SourcePiece | str] = {}  # per file: its piece or why it was skipped
    bar = progress_bar(total=len(files), desc="reading MIDI", unit="file", enabled=progress)
    for paths in _by_folder(files).values():
        scores: dict[Path, symusic.Score] = {}
        for path in paths:
            try:
                scores[path] = read_score(path)
            except PrepareError as error:
                outcomes[path] = str(error)
        folder_kit = folder_drum_kit(list(scores.values()), config.drum_kit)
        for path, score in scores.items():
            try:
                outcomes[path] = load_piece(path, midi_dir, meta, provisional, folder_kit, score)
            except PrepareError as error:
                outcomes[path] = str(error)
        bar.update(len(paths))
    bar.close()
    pieces = [outcomes[p] for p in files if isinstance(outcomes[p], SourcePiece)]
    skipped = [{"file": str(p.relative_to(midi_dir)), "reason": outcomes[p]} for p in files
               if not isinstance(outcomes[p], SourcePiece)]
    if not pieces:
        reasons = Counter(s["reason"] for s in skipped).most_common(3)
        raise PrepareError(f"MIDI_DIR: none of the {len(files)} files is usable ({reasons})")

    genres = sorted({p.genre for p in pieces})
    spec = TokenizerSpec(genres=genres, max_bars=provisional.max_bars)
    tokenizer = ComposerTokenizer(spec)
    valid_groups = split_groups([p.group for p in pieces], config.valid_fraction)

    windows: list[Window] = []
    for index, piece in enumerate(pieces):
        windows += cut_windows(piece, index, config)
    if not windows:
        raise PrepareError(f"MIDI_DIR: no {min(config.window_bars)}-bar 4/4 window with notes in any file")
    genre_of = [p.genre for p in pieces]
    thresholds = density_thresholds(windows, genre_of)

    sequences: dict[str, list[list[int]]] = {"train": [], "valid": []}
    sequence_bars: dict[str, list[int]] = {"train": [], "valid": []}  # window length of each sequence
    window_counts: Counter = Counter()
    for window in progress_bar(windows, desc="tokenizing", unit="window", enabled=progress):
        piece = pieces[window.source]
        split = "valid" if piece.group in valid_groups else "train"
        density = density_of(window.notes_per_bar, piece.genre, thresholds)
        variants = [(0, window.tracks)]
        if split == "train":
            for semitones in config.transpositions:
                moved = transpose_tracks(window.tracks, semitones, spec)
                if moved is not None:
                    variants.append((semitones, moved))
        for semitones, tracks in variants:
            key = piece.key if piece.key == NO_KEY else parse_key(piece.key).transposed(semitones).name
            sequences[split].append(tokenizer.encode(
                tracks, TICKS_PER_BEAT, genre=piece.genre, bpm=piece.bpm, key=key,
                density=density, bars=window.bars,
            ))
            sequence_bars[split].append(window.bars)
        window_counts[(split, piece.genre)] += 1
    if not sequences["train"]:
        raise PrepareError("MIDI_DIR: every window fell into validation; add files or lower valid_fraction")

    with atomic_folder(out_dir) as tmp:
        digest = hashlib.sha256()
        token_counts = {}
        for split, seqs in sequences.items():
            flat = np.asarray([t for s in seqs for t in s], dtype=np.uint16)
            offsets = np.cumsum([0] + [len(s) for s in seqs]).astype(np.int64)
            np.save(tmp / f"{split}_tokens.npy", flat)
            np.save(tmp / f"{split}_offsets.npy", offsets)
            digest.update(flat.tobytes())
            digest.update(offsets.tobytes())
            token_counts[split] = int(len(flat))
        tokenizer.save(tmp / "tokenizer.json")
        digest.update((tmp / "tokenizer.json").read_bytes())

        train_pieces = [p for p in pieces if p.group not in valid_groups]
        save_training_pieces((TrainingPiece(p.path, p.group, p.played) for p in train_pieces), tmp / PIECES_FILE)
        index_bars = build_novelty_index(tmp, progress=progress)
        _write_window_store(train_pieces, tmp / "index")
        reference = _write_reference_midi(windows, pieces, valid_groups, config, tmp / "reference_midi")

        untrained = [g for g in genres if window_counts[("train", g)] == 0]
        warnings = [_untrained_warning(g, window_counts[("valid", g)], sum(p.genre == g for p in pieces))
                    for g in untrained]
        for warning in warnings:  # here as well as in the report: a model trained on this cannot play them
            print(f"warning: {warning}", file=sys.stderr)
        summary = {
            "kind": "stemforge-dataset",
            "data_sha256": digest.hexdigest(),
            "source": str(midi_dir.resolve()),
            "metadata": str(metadata) if metadata else None,
            "config": asdict(config),
            "files": {"found": len(files), "used": len(pieces), "skipped": len(skipped)},
            "groups": {"train": len({p.group for p in train_pieces}), "valid": len(valid_groups)},
            "windows": {s: sum(c for (sp, _), c in window_counts.items() if sp == s) for s in ("train", "valid")},
            "sequences": {s: len(v) for s, v in sequences.items()},
            "tokens": token_counts,
            "tokens_per_sequence": token_lengths([len(s) for s in sequences["train"]], sequence_bars["train"]),
            "genres": {g: {s: window_counts[(s, g)] for s in ("train", "valid")} for g in genres},
            "genres_without_training_windows": untrained,
            "meter": dict(Counter(p.meter["from"] for p in pieces)),
            "drum_notes": _drum_note_totals(pieces),
            "warnings": warnings,
            "density_thresholds": thresholds,
            "roles": {r: sum(1 for p in pieces if r in p.tracks) for r in ROLES},
            "reference_midi": reference,
            "index_digests": index_bars,
        }
        (tmp / "dataset.json").write_text(json.dumps(summary, indent=1))
        report = {"summary": summary, "skipped": skipped,
                  "used": [{"file": p.path, "genre": p.genre, "bpm": p.bpm, "key": p.key,
                            "roles": sorted(p.tracks), "split": "valid" if p.group in valid_groups else "train",
                            "meter": p.meter, "drum_notes": p.drum_notes}
                           for p in pieces]}
        (tmp / "prepare_report.json").write_text(json.dumps(report, indent=1))
        (tmp / "prepare_report.md").write_text(_report_markdown(summary, skipped, pieces))
    return summary


def _write_window_store(pieces: list[SourcePiece], directory: Path) -> None:
    """Notes of non-overlapping 4-bar training windows, for nearest-neighbour lookups in eval."""
    windows = []
    for piece in pieces:
        bars = math.ceil(max(t.end_tick() for t in piece.tracks.values()) / TICKS_PER_BAR)
        for start_bar in range(0, max(1, bars - 3), 4):
            lo, hi = start_bar * TICKS_PER_BAR, (start_bar + 4) * TICKS_PER_BAR
            tracks = {r: [Note(n.start - lo, n.duration, n.pitch, n.velocity) for n in t.notes if lo <= n.start < hi]
                      for r, t in piece.tracks.items()}
            windows.append((piece.path, start_bar, {r: n for r, n in tracks.items() if n}))
    save_window_notes(windows, TICKS_PER_BEAT, directory / "windows.npz")


def _write_reference_midi(
    windows: list[Window], pieces: list[SourcePiece], valid_groups: set[str], config: PrepareConfig, directory: Path,
) -> int:
    """A sample of training windows as stemforge MIDI, spread over genres, for FAD references."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(config.seed)
    longest = max(config.window_bars)
    candidates = [w for w in windows if w.bars == longest and pieces[w.source].group not in valid_groups]
    by_genre: dict[str, list[Window]] = defaultdict(list)
    for window in candidates:
        by_genre[pieces[window.source].genre].append(window)
    chosen: list[Window] = []
    per_genre = max(1, config.reference_windows // max(1, len(by_genre)))
    for genre in sorted(by_genre):
        group = by_genre[genre]
        for i in rng.permutation(len(group))[:per_genre]:
            chosen.append(group[i])
    rows = []
    for number, window in enumerate(chosen[: config.reference_windows]):
        piece = pieces[window.source]
        name = f"{number:03d}_{piece.genre}_{piece.bpm:g}bpm.mid"
        score = tracks_to_score([window.tracks[r] for r in ROLES if r in window.tracks], bpm=piece.bpm,
                                ticks_per_beat=TICKS_PER_BEAT, total_ticks=window.bars * TICKS_PER_BAR)
        score.dump_midi(str(directory / name))
        end_tracks_at(directory / name, window.bars * TICKS_PER_BAR)
        rows.append({"file": name, "genre": piece.genre, "bpm": piece.bpm, "key": piece.key,
                     "bars": window.bars, "source": piece.path, "start_bar": window.start_bar})
    (directory / "reference.json").write_text(json.dumps(rows, indent=1))
    return len(rows)


def _report_markdown(summary: dict, skipped: list[dict], pieces: list[SourcePiece]) -> str:
    lines = ["# Prepare report", ""]
    if summary["warnings"]:
        lines += [f"**Warning:** {warning}" for warning in summary["warnings"]] + [""]
    lines += [f"- source: `{summary['source']}`",
              f"- files: {summary['files']['found']} found, {summary['files']['used']} used, "
              f"{summary['files']['skipped']} skipped",
              f"- windows: {summary['windows']['train']} train, {summary['windows']['valid']} valid "
              f"({summary['sequences']['train']} train sequences with transpositions)",
              f"- tokens: {summary['tokens']['train']} train, {summary['tokens']['valid']} valid",
              f"- data sha256: `{summary['data_sha256']}`", "", "| genre | train windows | valid windows |",
              "|---|---|---|"]
    lines += [f"| {g} | {c['train']} | {c['valid']} |" for g, c in summary["genres"].items()]
    lines += _length_lines(summary["tokens_per_sequence"])
    judged = [p for p in pieces if p.meter.get("from") == "notes" or p.meter.get("note")]
    if judged:
        lines += ["", "## Meter read from the notes", "",
                  "The time signature of these files does not say where their bars are (1/4, 2/4, 8/8...), "
                  "so the notes did (symbolic/training/meter.py). A skipped one is listed under skipped files.", "",
                  "| file | header | read as | first downbeat (beats) | notes moved (ticks) | note |", "|---|---|---|---|---|---|"]
        for piece in judged:
            meter, judgement = piece.meter, piece.meter.get("judged") or {}
            downbeat = judgement.get("downbeat", 0) / TICKS_PER_BEAT
            lines.append(f"| {piece.path} | {meter['header']} | {meter['read_as']} | {downbeat:.2f} | "
                         f"{meter['shift_ticks']} | {meter.get('note', '')} |")
    drums = summary["drum_notes"]
    if drums["mapped"]:
        table = drum_map.table("vdrums")
        kits = Counter(p.drum_notes.get("kit") for p in pieces if "drums" in p.tracks)
        lines += ["", "## Drum notes mapped to General MIDI", "",
                  f"Drum kits: {kits['vdrums']} file(s) read as Roland V-Drums (edge hats 22/26 in the file or "
                  f"its folder), {kits['gm']} as General MIDI (symbolic/music/drum_map.py).", "",
                  "Extended notes (Roland V-Drums hi-hat edges 22/26; in V-Drums files, the kit's rim and "
                  "edge notes 58/52/55) as the General MIDI drum they are.", "",
                  "| note | as | hits |", "|---|---|---|"]
        lines += [f"| {pitch} | {table[int(pitch)]} | {count} |" for pitch, count in drums["mapped"].items()]
    if drums["dropped"]:
        lines += ["", "## Drum notes dropped", "",
                  "Outside the drum notes the tokenizer holds (27-87, General MIDI 2) and in no known map.", "",
                  "| note | hits |", "|---|---|"]
        lines += [f"| {pitch} | {count} |" for pitch, count in drums["dropped"].items()]
    if skipped:
        lines += ["", "## Skipped files", "", "| file | reason |", "|---|---|"]
        lines += [f"| {s['file']} | {s['reason']} |" for s in skipped]
    return "\n".join(lines) + "\n"


def _length_lines(lengths: dict) -> list[str]:
    """The token-length distribution, and what it means for the shipped contexts."""
    lines = ["", "## Sequence lengths (tokens, training side)", "",
             "| windows | sequences | median | p90 | p95 | p99 | longest | > 1024 | > 2048 |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [("all", lengths), *((f"{bars} bars", v) for bars, v in lengths["by_window_bars"].items())]
    lines += [f"| {name} | {v['count']} | {v['p50']} | {v['p90']} | {v['p95']} | {v['p99']} | {v['max']} | "
              f"{v['over_1024']:.1%} | {v['over_2048']:.1%} |" for name, v in rows]
    for size in CONTEXT_SIZES:
        share = lengths[f"over_{size}"]
        if share:
            lines += ["", f"{share:.1%} of the training sequences are longer than {size} tokens: a model with "
                          f"`n_positions: {size}` sees only their first {size} tokens (`pipeline train` says how "
                          f"many); use a larger `n_positions` (at least {lengths['max']}) or shorter `window_bars`."]
            break
    return lines
