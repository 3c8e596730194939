"""Quality of a composer, measured: every advertised genre x several seeds through the exact
production path (`pipeline.run.run`, MIDI files written and read back), compared with the
training data the model saw and with real music made by people.

    python bench/quality.py [--model MODEL_DIR] --data DATA_DIR [--seeds 8] [--bars 8] [--out docs/quality]
                            [--real-data ../shared/data] [--quick] [--genres lofi jazz ...]

DATA_DIR is the prepared dataset the model was trained on (`pipeline prepare`): its training
sequences give the per-genre statistics and the classifier's examples, its validation
sequences a held-out check of the classifier, its `index/` the SHA-256 novelty index.
--real-data is the shared data folder (GMD, POP909, Freedoom, WJD, Billboard; see
eval/real_music.py); the real-music column is left empty, and says why, where a set is absent.
Naming a few --genres is the fast path for probing a change (a couple of minutes for 2 genres
x 4 seeds): the other genres' data is read only for the classifiers.

The requests: every genre x --seeds seeds x --bars bars with the default settings, keys
cycling through 8 keys (F# major and Eb minor among them); for the first --twin-seeds seeds
of every genre a "sparse" and a "busy" twin (same genre, seed and key); and --long-seeds
pieces of 2 x --bars bars per genre; --loopoff-seeds requests with `--loop off` and
--chord-seeds with a typed progression holding a chord outside the key (A7 in C major).
A request that raises anything counts as failing and is listed; the bench never stops on one.

What is measured (per genre, generated vs training, and vs real music where it applies):
- validity: run() succeeds, all three parts, notes inside the bars and the role's range,
  every MIDI file readable by mido; exact bars (file ends at bars x 4 beats, no note past
  it, one 4/4 signature) and exact BPM (one tempo event within 0.001 bpm of the request);
- musical structure (eval/music_features.py `piece_figures`, defined there): melody and
  bass self-similarity across bars, bars repeated exactly, repeated notes / steps / leaps,
  kick+snare pattern kept bar to bar, bass on the kick and kicks covered, key-finding,
  notes in the asked scale, swing, distinct drum velocities, duplicate drum hits,
  overlapping same-pitch notes, notes per bar for each density, trap signatures, bass roots
  and melody chord tones against the piece's chord plan (when the arrangement has one);
- groove: Jensen-Shannon distance (base 2; 0 same, 1 disjoint) between the 16-step drum
  onset histogram of the generated pieces and the genre's training histogram, the nearest
  OTHER genre's distance for contrast, and the floor: the mean distance of same-size random
  samples of training pieces of the genre (what sampling noise alone gives);
- genre control: a logistic regression on window features (eval/music_features.py) fitted on
  the training windows recognises the requested genre in generated 4-bar windows (the
  default requests' and --classifier-seeds more per genre, read by the classifier only);
- novelty: the verdict of `pipeline eval` (eval/novelty.py: bar digests read at every shift,
  any transposition) per run and per part, "copied" / "near copy" / "new" (aim: no run
  copied), and diversity: distinct pieces / parts across seeds;
- style (issue 26; eval/music_features.py `style_figures`): backbeat, half-time, pieces
  without a kick, swung off-beat 8ths and swing phase, fills at phrase ends, melody repeats
  at 4 and 8 bars, distinct pitches, range, register, rests, downbeats, high points, chords
  per 4 bars, one-chord progressions, bass pitches and tonic, chord scales over out-of-key
  chords and clashes: over all genres and per genre, each beside the genre's own real music
  (GMD style, POP909, WJD, Freedoom, Billboard by artist style: `GENRE_SOURCES`);
- genre identity: the classifier above on the held-out windows, its drums-only twin on real
  GMD drums, and an independent classifier fitted on real GMD drums only, applied to the
  generated drums.

Writes `quality.json` (everything), `quality_pianorolls.png` (one piece per genre),
`quality_figures.png` (generated vs real vs training) and `quality_style.png` (the style
figures per genre) into --out and prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

# Run as a file, this folder would shadow the `symbolic` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from stemforge.eval.music_features import (  # noqa: E402
    COUNT_FIGURES,
    DRUM_FEATURE_NAMES,
    FEATURE_NAMES,
    FIGURES,
    KICK_LOCKED_GENRES,
    KICKS,
    GenreClassifier,
    Share,
    Stat,
    bass_on_kick,
    best_key_share,
    cut_window,
    drum_group,
    drum_window_features,
    figure_values,
    format_figure,
    histogram_distance,
    in_key,
    kickless,
    onset_histogram,
    piece_figures,
    pool_figures,
    snap_notes,
    style_figures,
    swing,
    total_share,
    window_features,
)
from stemforge.eval.novelty import VERDICTS, assess_grid  # noqa: E402
from stemforge.eval.real_music import (  # noqa: E402
    DATASETS,
    DEFAULT_DATA_ROOT,
    FIGURE_SOURCES,
    GENRE_SOURCES,
    GMD_GENRE_OF,
    RealPiece,
    genre_source,
    gmd_fill_check,
    load_reference_sets,
)
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.decoding.model import Composer, load_composer  # noqa: E402
from stemforge.symbolic.music.arrangement import Note  # noqa: E402
from stemforge.symbolic.music.canonical import WINDOW_BARS, NoveltyIndex, to_grid, track_digest  # noqa: E402
from stemforge.symbolic.music.conditions import GENRE_DEFAULT_BPM, GENRES, ROLES  # noqa: E402
from stemforge.symbolic.music.keys import KEY_NAMES, Key, parse_key  # noqa: E402
from stemforge.symbolic.music.tokenizer import NO_KEY, ComposerTokenizer  # noqa: E402
from stemforge.symbolic.runtime.plan import GENRE_STYLES  # noqa: E402

TICKS_PER_BAR = TICKS_PER_BEAT * BEATS_PER_BAR
BPM_TOLERANCE = 1e-3
# Tempo asked of seed s: the genre's default plus an offset, fractional ones included,
# so "exact BPM" is tested beyond round numbers.
BPM_OFFSETS: tuple[float, ...] = (0.0, -3.0, 2.5, 5.0, -6.5, 7.0, -1.5, 4.0)
# Keys asked, cycling over genre and seed: four major, four minor, sharp and flat spellings.
KEYS: tuple[str, ...] = ("A minor", "C major", "F# major", "Eb minor", "D minor", "Bb major", "E minor", "G major")
NOVELTY_AIM = 0.0  # share of runs with a part copied from training
FLOOR_DRAWS = 50
QUICK_GENRES: tuple[str, ...] = ("lofi", "trap", "house", "jazz")
FOCUS_CLASSIFIER_SEEDS = 4  # classifier-only requests per genre when --genres names a few


class QualityError(ValueError):
    """Bad bench input; the message names the flag or file."""


@dataclass
class Piece:
    """One arrangement as plain notes per role, with what it was asked to be."""

    genre: str
    key: Key | None
    bars: int
    tracks: dict[str, list[Note]]
    density: str = "normal"
    chords: list | None = None  # the arrangement's chord plan (spans with .start/.end/.chord), if any
    kind: str = "training"  # normal | sparse | busy | long (generated requests) | training
    # the composed notes on the token grid before the feel (swing, micro-timing), where they
    # differ from `tracks`: novelty compares these with the training index, which is on the grid
    grid_tracks: dict[str, list[Note]] | None = None

    @cached_property
    def figures(self) -> dict[str, Stat]:
        """`piece_figures` of the piece as written to MIDI and `style_figures` of its drums as
        played with its bass and melody as composed (computed once): a melody micro-timed 25
        ticks off its step by the feel is no new melody, while the drums' timing is their feel,
        read as GMD's drummers are."""
        composed = {**self.tracks, **{r: n for r, n in (self.grid_tracks or {}).items() if r != "drums"}}
        return {**piece_figures(self.tracks, self.bars, TICKS_PER_BEAT, self.key, self.chords or None),
                **style_figures(composed, self.bars, TICKS_PER_BEAT, self.key, self.chords or None)}


@dataclass(frozen=True)
class Request:
    """One bench request: a genre, seed, length and key, and which kind of twin it is."""

    genre: str
    seed: int
    bars: int
    key: str
    # normal | sparse | busy (density twins of a normal request) | long | classifier (a normal
    # request that only adds windows to the genre classifier's check) | loopoff (`--loop off`) |
    # chords (a typed progression with a chord outside the key, `chords`)
    kind: str = "normal"
    chords: str | None = None

    @property
    def density(self) -> str | None:
        """The density asked (None: the default, what a producer gets without asking)."""
        return self.kind if self.kind in ("sparse", "busy") else None

    @property
    def loop(self) -> int | None:
        """The loop asked: 0 (off) for a loopoff request, else None (the genre's default)."""
        return 0 if self.kind == "loopoff" else None

    @property
    def name(self) -> str:
        return f"{self.genre}_{self.seed}_{self.kind}_{self.bars}bars"


# Typed progressions with a chord outside the key (a secondary dominant, the major V of a minor
# key), each in its key: does the line follow the chord (C# over A7 in C major) or the key?
OUT_OF_KEY_PROGRESSIONS: tuple[tuple[str, str], ...] = (
    ("C major", "C A7 Dm G"), ("A minor", "Am Dm E Am"), ("G major", "G E7 Am D7"),
    ("D minor", "Dm Gm A7 Dm"), ("F major", "F D7 Gm C7"), ("E minor", "Em Am B7 Em"),
)


def request_set(genres: list[str], seeds: int, bars: int, twin_seeds: int, long_seeds: int,
                classifier_seeds: int = 0, loopoff_seeds: int = 0, chord_seeds: int = 0) -> list[Request]:
    """genres x seeds default requests with keys cycling through KEYS, a sparse and a busy
    twin of the first `twin_seeds` of each genre, `long_seeds` pieces of 2 x bars bars,
    `classifier_seeds` more default requests whose windows only the genre classifier reads
    (its per-genre recall from 20 windows moved 10-25 points between seed sets),
    `loopoff_seeds` requests with `--loop off`, and `chord_seeds` requests with a typed
    progression from OUT_OF_KEY_PROGRESSIONS (cycling over genres and seeds)."""
    requests = []
    for index, genre in enumerate(genres):
        for seed in range(seeds):
            key = KEYS[(index + seed) % len(KEYS)]
            requests.append(Request(genre, seed, bars, key))
            if seed < twin_seeds:
                requests += [Request(genre, seed, bars, key, "sparse"), Request(genre, seed, bars, key, "busy")]
        for extra in range(long_seeds):
            seed = seeds + extra
            requests.append(Request(genre, seed, 2 * bars, KEYS[(index + seed) % len(KEYS)], "long"))
        for extra in range(classifier_seeds):
            seed = seeds + long_seeds + extra
            requests.append(Request(genre, seed, bars, KEYS[(index + seed) % len(KEYS)], "classifier"))
        for extra in range(loopoff_seeds):
            seed = seeds + long_seeds + classifier_seeds + extra
            requests.append(Request(genre, seed, bars, KEYS[(index + seed) % len(KEYS)], "loopoff"))
        for extra in range(chord_seeds):
            seed = seeds + long_seeds + classifier_seeds + loopoff_seeds + extra
            key, chords = OUT_OF_KEY_PROGRESSIONS[(index + extra) % len(OUT_OF_KEY_PROGRESSIONS)]
            requests.append(Request(genre, seed, bars, key, "chords", chords))
    return requests


# ----------------------------------------------------------------------------- data side


def key_of_token(token: str) -> Key | None:
    """'Key_Bbm' -> B-flat minor; 'Key_none' -> None."""
    value = token.removeprefix("Key_")
    if value == NO_KEY:
        return None
    minor = value.endswith("m")
    return Key(KEY_NAMES.index(value[:-1] if minor else value), "minor" if minor else "major")


def load_pieces(data_dir: Path, split: str, per_genre: int, seed: int, progress: bool,
                other_genres: int | None = None, focus: set[str] | None = None) -> list[Piece]:
    """Up to `per_genre` random sequences of each genre of a prepared split, decoded; with
    `focus`, genres outside it get only `other_genres` (the same first ones a full run takes)."""
    tokens_path, offsets_path = data_dir / f"{split}_tokens.npy", data_dir / f"{split}_offsets.npy"
    for path in (tokens_path, offsets_path, data_dir / "tokenizer.json"):
        if not path.is_file():
            raise QualityError(f"--data: {path} is missing; point --data at a folder written by `pipeline prepare`")
    tokenizer = ComposerTokenizer.load(data_dir / "tokenizer.json")
    tokens, offsets = np.load(tokens_path), np.load(offsets_path)
    by_genre: dict[str, list[int]] = defaultdict(list)
    for index in range(len(offsets) - 1):
        by_genre[tokenizer.id_to_token[int(tokens[offsets[index] + 1])].removeprefix("Genre_")].append(index)
    rng = np.random.default_rng(seed)
    chosen = sorted(i for genre, rows in by_genre.items() for i in rng.permutation(rows)[
        :per_genre if focus is None or genre in focus or other_genres is None else other_genres].tolist())
    pieces = []
    for index in tqdm(chosen, desc=f"decoding {split} data", unit="seq", disable=not progress):
        ids = tokens[offsets[index]:offsets[index + 1]].tolist()
        names = [tokenizer.id_to_token[i] for i in ids[1:6]]
        tracks = tokenizer.decode_tracks(ids, TICKS_PER_BEAT)
        pieces.append(Piece(names[0].removeprefix("Genre_"), key_of_token(names[2]), int(names[4].removeprefix("Bars_")),
                            {r: t.notes for r, t in tracks.items()}, names[3].removeprefix("Density_")))
    return pieces


@dataclass
class GenreStats:
    """Pooled statistics of many pieces of one genre."""

    pieces: int = 0
    bars: int = 0
    notes: int = 0
    # notes per bar depends on the density condition: compare generated "normal" pieces
    # with the training windows labelled "normal"
    normal_bars: int = 0
    normal_notes: int = 0
    drum_histogram: np.ndarray = field(default_factory=lambda: np.zeros(16))
    piece_histograms: list[np.ndarray] = field(default_factory=list)
    piece_bars: list[int] = field(default_factory=list)
    swing: Share = Share()
    in_key: dict[str, Share] = field(default_factory=lambda: {"bass": Share(), "melody": Share()})
    in_best_key: Share = Share()  # bass+melody in the piece's best-fitting key, whatever was asked
    bass_on_kick: Share = Share()

    def add(self, piece: Piece) -> None:
        # positions read on the 1/12-beat grid: a grooved (micro-timed) piece is not "off the kick"
        drums = snap_notes(piece.tracks.get("drums", []), TICKS_PER_BEAT)
        histogram = onset_histogram(drums, TICKS_PER_BEAT)
        self.pieces += 1
        self.bars += piece.bars
        self.notes += sum(len(n) for n in piece.tracks.values())
        if piece.density == "normal":
            self.normal_bars += piece.bars
            self.normal_notes += sum(len(n) for n in piece.tracks.values())
        self.drum_histogram += histogram
        self.piece_histograms.append(histogram)
        self.piece_bars.append(piece.bars)
        self.swing += swing(drums, TICKS_PER_BEAT)
        if piece.key is not None:
            for role in self.in_key:
                self.in_key[role] += in_key(piece.tracks.get(role, []), piece.key)
            self.in_best_key += best_key_share([n for r in self.in_key for n in piece.tracks.get(r, [])])
        if any(n.pitch in KICKS for n in drums):
            self.bass_on_kick += bass_on_kick(snap_notes(piece.tracks.get("bass", []), TICKS_PER_BEAT), drums)

    @property
    def notes_per_bar(self) -> float:
        return self.notes / self.bars if self.bars else float("nan")

    @property
    def normal_notes_per_bar(self) -> float:
        return self.normal_notes / self.normal_bars if self.normal_bars else float("nan")

    @property
    def in_key_pitched(self) -> Share:
        return self.in_key["bass"] + self.in_key["melody"]

    def summary(self) -> dict:
        total = self.drum_histogram.sum()
        return {
            "pieces": self.pieces, "bars": self.bars, "notes_per_bar": _round(self.notes_per_bar),
            "notes_per_bar_density_normal": _round(self.normal_notes_per_bar),
            "drum_histogram": [_round(v) for v in (self.drum_histogram / total if total else self.drum_histogram)],
            "swing": _round(self.swing.value), "in_key": _round(self.in_key_pitched.value),
            "in_key_bass": _round(self.in_key["bass"].value), "in_key_melody": _round(self.in_key["melody"].value),
            "in_best_fitting_key": _round(self.in_best_key.value), "bass_on_kick": _round(self.bass_on_kick.value),
        }


def stats_by_genre(pieces: list[Piece]) -> dict[str, GenreStats]:
    out: dict[str, GenreStats] = defaultdict(GenreStats)
    for piece in pieces:
        out[piece.genre].add(piece)
    return dict(out)


def distance_floor(stats: GenreStats, bars: int, rng: np.random.Generator) -> float:
    """Mean JS distance between the genre's whole training histogram and random samples of
    its training pieces holding about `bars` bars: the distance sampling noise alone gives
    a generated set of that size."""
    if stats.pieces < 2 or stats.drum_histogram.sum() == 0:
        return float("nan")
    distances = []
    for _ in range(FLOOR_DRAWS):
        sample, count = np.zeros(16), 0
        for index in rng.permutation(stats.pieces):
            sample += stats.piece_histograms[index]
            count += stats.piece_bars[index]
            if count >= bars:
                break
        distances.append(histogram_distance(sample, stats.drum_histogram))
    return float(np.nanmean(distances)) if not all(math.isnan(d) for d in distances) else float("nan")


# ----------------------------------------------------------------------------- generation


@dataclass
class Generated:
    request: Request
    bpm: float
    key: str
    model_genre: str
    piece: Piece | None
    valid: bool
    exact_bars: bool
    exact_bpm: bool
    problems: list[str]
    compose_seconds: float
    end_of_track_past_end_ticks: int = 0
    error: str | None = None  # what a failing request raised

    @property
    def genre(self) -> str:
        return self.request.genre

    @property
    def seed(self) -> int:
        return self.request.seed


def check_midi(path: Path, bars: int, bpm: float) -> tuple[bool, bool, bool, int, list[str]]:
    """(readable, exact bars, exact bpm, ticks from the end marker to the last end-of-track,
    problems) of one written MIDI file, read back with mido (an independent reader)."""
    import mido

    try:
        midi = mido.MidiFile(path)
    except Exception as error:  # mido raises several types on bad bytes
        return False, False, False, 0, [f"{path.name}: mido cannot read it ({error})"]
    problems: list[str] = []
    total = bars * BEATS_PER_BAR * midi.ticks_per_beat
    tempos, signatures, markers, note_ticks, track_ends = [], [], [], [], []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempos.append(mido.tempo2bpm(message.tempo))
            elif message.type == "time_signature":
                signatures.append((message.numerator, message.denominator))
            elif message.type == "marker" and message.text == "end":
                markers.append(tick)
            elif message.type in ("note_on", "note_off"):
                note_ticks.append(tick)
            elif message.type == "end_of_track":
                track_ends.append(tick)
    # what a DAW sees: the file (its longest track) ends exactly at the end of the last bar
    exact_bars = (max(track_ends, default=-1) == total and all(0 <= t <= total for t in note_ticks)
                  and set(signatures) == {(4, 4)})
    if not exact_bars:
        problems.append(f"{path.name}: end of track at {max(track_ends, default=None)} (marker {markers}), last note "
                        f"event {max(note_ticks, default=0)}, "
                        f"signatures {sorted(set(signatures))}, expected {total} ticks in 4/4")
    exact_bpm = len(tempos) == 1 and abs(tempos[0] - bpm) <= BPM_TOLERANCE
    if not exact_bpm:
        problems.append(f"{path.name}: tempo events {[round(t, 4) for t in tempos]}, asked {bpm:g}")
    return True, exact_bars, exact_bpm, max(track_ends, default=total) - total, problems


def check_notes(tracks: dict[str, list[Note]], bars: int, composer: Composer) -> list[str]:
    problems = []
    missing = [r for r in ROLES if r not in tracks]
    if missing:
        problems.append(f"missing parts {missing}")
    total = bars * TICKS_PER_BAR
    for role, notes in tracks.items():
        low, high = composer.tokenizer.spec.role_pitch_ranges[role]
        for note in notes:
            if not (0 <= note.start < total and note.duration > 0 and note.start + note.duration <= total):
                problems.append(f"{role}: note {note} outside the {bars} bars")
            elif not low <= note.pitch < high:
                problems.append(f"{role}: pitch {note.pitch} outside {low}-{high - 1}")
            elif not 1 <= note.velocity <= 127:
                problems.append(f"{role}: velocity {note.velocity}")
    return problems


def run_request(request: Request, composer: Composer, bpm: float, out: Path):
    """The `RunRequest` of a bench request, with only the fields this version of
    pipeline.run has (new options are left at their defaults: the bench measures defaults)."""
    from stemforge.pipeline.run import RunRequest

    wanted = {"prompt": f"{request.genre} {bpm:g} bpm", "genre": request.genre, "seed": request.seed,
              "bars": request.bars, "key": request.key, "density": request.density, "loop": request.loop,
              "chords": request.chords, "model": composer.path, "out": out}
    known = {f.name for f in dataclasses.fields(RunRequest)}
    return RunRequest(**{name: value for name, value in wanted.items() if name in known})


def generate_one(composer: Composer, request: Request, workdir: Path) -> Generated:
    """One request through pipeline.run.run(), checked; any exception is a failing request."""
    bpm = GENRE_DEFAULT_BPM[request.genre] + BPM_OFFSETS[request.seed % len(BPM_OFFSETS)]
    try:
        return _generate(composer, request, bpm, workdir / request.name)
    except Exception as error:  # any failure of the production path is counted and shown, never fatal
        message = f"{type(error).__name__}: {error}"
        return Generated(request, bpm, request.key, "", None, False, False, False, [f"run: {message}"], 0.0,
                         error=message)


def _generate(composer: Composer, request: Request, bpm: float, out: Path) -> Generated:
    from stemforge.pipeline.run import run

    bars = request.bars
    result = run(run_request(request, composer, bpm, out), composer=composer)
    conditions = result.arrangement.conditions
    tracks = {r: list(t.notes) for r, t in result.arrangement.tracks.items()}
    invalid = check_notes(tracks, bars, composer)
    problems = list(invalid)
    readable = exact_bars = exact_bpm = True
    past_end = 0
    for relative in result.manifest.midi.values():
        read_ok, bars_ok, bpm_ok, past, found = check_midi(out / relative, bars, bpm)
        readable, exact_bars, exact_bpm = readable and read_ok, exact_bars and bars_ok, exact_bpm and bpm_ok
        past_end = max(past_end, past)
        problems += found
    if result.manifest.conditions.bpm != bpm:
        problems.append(f"run.json bpm {result.manifest.conditions.bpm} differs from the asked {bpm:g}")
        exact_bpm = False
    if conditions.bars != bars:
        problems.append(f"run.json bars {conditions.bars} differ from the asked {bars}")
        exact_bars = False
    chords = list(getattr(result.arrangement, "chords", None) or []) or None
    grid = {r: list(t.notes) for r, t in (getattr(result.arrangement, "grid_tracks", None) or {}).items()}
    piece = Piece(request.genre, parse_key(conditions.key), bars, tracks, conditions.density, chords, request.kind,
                  {**tracks, **grid} if grid else None)
    return Generated(request, bpm, conditions.key, result.manifest.model_genre, piece,
                     readable and not invalid, exact_bars, exact_bpm, problems,
                     result.manifest.timings["compose"], past_end)


# ----------------------------------------------------------------------------- classifier


@dataclass(frozen=True)
class Window:
    """A WINDOW_BARS window of a piece (generated, training or real) and what the piece is."""

    genre: str | None
    split: str  # a real piece's split (GMD train | validation), else ""
    tracks: dict[str, list[Note]]


def cut_windows(pieces: list) -> list[Window]:
    """Every non-overlapping WINDOW_BARS window of every piece."""
    return [Window(piece.genre, getattr(piece, "split", ""), cut_window(piece.tracks, start, WINDOW_BARS, TICKS_PER_BEAT))
            for piece in pieces for start in range(0, piece.bars - WINDOW_BARS + 1, WINDOW_BARS)]


def features_of(windows: list[Window]) -> tuple[np.ndarray, list[str]]:
    """The classifier's features (`window_features`) of the windows, with their genres."""
    features = [window_features(w.tracks, TICKS_PER_BEAT, WINDOW_BARS) for w in windows]
    return (np.asarray(features, dtype=np.float32).reshape(len(features), len(FEATURE_NAMES)),
            [w.genre for w in windows])


def windows_of(pieces: list[Piece]) -> tuple[np.ndarray, list[str]]:
    """Features of every non-overlapping WINDOW_BARS window of every piece, with its genre."""
    return features_of(cut_windows(pieces))


def accuracy(classifier: GenreClassifier, features: np.ndarray, labels: list[str]) -> tuple[float, dict, dict]:
    """(overall accuracy, per-genre recall, confusion {true: {predicted: count}})."""
    if not labels:
        return float("nan"), {}, {}
    predicted = classifier.predict(features)
    confusion: dict[str, Counter] = defaultdict(Counter)
    for truth, guess in zip(labels, predicted):
        confusion[truth][guess] += 1
    recall = {g: c[g] / sum(c.values()) for g, c in confusion.items()}
    overall = sum(t == p for t, p in zip(labels, predicted)) / len(labels)
    return overall, recall, {g: dict(c) for g, c in confusion.items()}


# ----------------------------------------------------------------------------- picture


DRUM_LANES = {"kick": 4, "snare": 10, "cymbal": 16, "other": 22}


def plot_pianorolls(pieces: list[Piece], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = max(1, math.ceil(len(pieces) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows), squeeze=False)
    colours = {"bass": "tab:blue", "melody": "tab:orange"}
    for ax, piece in zip(axes.flat, pieces):
        for role in ("bass", "melody"):
            notes = piece.tracks.get(role, [])
            for n in notes:
                ax.add_patch(plt.Rectangle((n.start / TICKS_PER_BAR, n.pitch - 0.4), n.duration / TICKS_PER_BAR,
                                           0.8, color=colours[role], lw=0))
        drums = piece.tracks.get("drums", [])
        ax.scatter([n.start / TICKS_PER_BAR for n in drums], [DRUM_LANES[drum_group(n.pitch)] for n in drums],
                   s=14, c="tab:gray", marker="|")
        ax.set_xlim(0, piece.bars)
        ax.set_ylim(0, 100)
        ax.set_xticks(range(piece.bars + 1))
        ax.set_yticks(list(DRUM_LANES.values()) + [36, 48, 60, 72, 84])
        ax.set_yticklabels(list(DRUM_LANES) + ["C2", "C3", "C4", "C5", "C6"], fontsize=6)
        ax.grid(axis="x", alpha=0.3)
        key = piece.key.name if piece.key else "no key"
        ax.set_title(f"{piece.genre} ({key})", fontsize=9)
    for ax in list(axes.flat)[len(pieces):]:
        ax.axis("off")
    figure.suptitle(title + "   (grey: drums by group, blue: bass, orange: melody; x in bars)", fontsize=10)
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- report


def _round(value: float, digits: int = 4) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def novelty_counts(pieces: list[Piece], index: NoveltyIndex) -> tuple[Counter, set[bytes], dict[str, set[bytes]]]:
    """The novelty verdicts `pipeline eval` gives (eval/novelty.py) counted per run
    ("run_<verdict>") and per part ("<role>_<verdict>"); plus the piece and per-part digests
    of the notes on the grid, for diversity."""
    counts: Counter = Counter()
    piece_set: set[bytes] = set()
    track_sets: dict[str, set[bytes]] = defaultdict(set)
    for piece in pieces:
        tracks = piece.grid_tracks if piece.grid_tracks else to_grid(piece.tracks, TICKS_PER_BEAT)[0]
        result = assess_grid(tracks, TICKS_PER_BEAT, piece.bars, index)
        counts[f"run_{result.verdict}"] += 1
        for role, part in result.parts.items():
            counts[f"{role}_{part.verdict}"] += 1
        digests = {role: track_digest(role, notes, TICKS_PER_BEAT) for role, notes in tracks.items() if notes}
        piece_set.add(hashlib.sha256(b"".join(digests[r] for r in sorted(digests))).digest())
        for role, digest in digests.items():
            track_sets[role].add(digest)
    return counts, piece_set, track_sets


def groove_distances(mine: GenreStats, reference: GenreStats | None, train_stats: dict[str, GenreStats],
                     rng: np.random.Generator) -> dict:
    """Drum-histogram distance to the genre's training data, its same-size floor, and the
    nearest other genre's training data."""
    own = histogram_distance(mine.drum_histogram, reference.drum_histogram) if reference else float("nan")
    others = {h: histogram_distance(mine.drum_histogram, s.drum_histogram) for h, s in train_stats.items()
              if s is not reference}
    others = {h: d for h, d in others.items() if not math.isnan(d)}
    nearest = min(others, key=others.__getitem__) if others else None
    floor = distance_floor(reference, max(mine.bars, 1), rng) if reference else float("nan")
    return {"drum_js_own": _round(own), "drum_js_floor": _round(floor),
            "drum_js_nearest_other": _round(others[nearest]) if nearest else None, "nearest_other_genre": nearest}


# ----------------------------------------------------------------------------- musical structure

# The rows of the "generated vs real" table, in the order of issue 10 point 8, each with the
# pieces it pools: "all" every piece; "kick" the kick-locked genres; "jazz"/"trap" that genre;
# "normal" generated pieces of the default density vs training pieces labelled "normal".
STRUCTURE_ROWS: tuple[tuple[str, str], ...] = (
    ("melody_self_similarity", "all"), ("melody_self_similarity_lag1", "all"),
    ("melody_self_similarity_lag2", "all"), ("melody_self_similarity_lag4", "all"),
    ("melody_bars_repeated", "all"), ("bass_self_similarity_lag4", "all"), ("bass_repeats", "all"),
    ("bass_steps", "all"), ("bass_leaps", "all"), ("melody_repeats", "all"), ("melody_steps", "all"),
    ("melody_leaps", "all"), ("kick_snare_kept", "all"), ("bass_on_kick", "kick"), ("kicks_covered", "kick"),
    ("bass_on_kick", "locked"), ("kicks_covered", "locked"),
    ("key_found", "all"), ("key_found_minor", "all"), ("in_scale", "all"), ("drum_swing", "jazz"),
    ("drum_velocities_per_8_bars", "all"), ("drums_notes_per_bar", "normal"), ("bass_notes_per_bar", "normal"),
    ("melody_notes_per_bar", "normal"), ("drum_duplicate_hits", "all"), ("drum_duplicate_pieces", "all"),
    ("bass_overlaps", "all"), ("bass_overlap_pieces", "all"), ("melody_overlaps", "all"),
    ("melody_overlap_pieces", "all"), ("snare_on_beat3", "trap"), ("hihat_roll_bars", "trap"),
    ("bass_roots_on_downbeats", "all"), ("melody_chord_tones", "all"),
)
# The genres whose bass the composition plan locks fully to the kick (rock's drives in 8ths
# at half lock: see symbolic/runtime/plan.py).
LOCKED_GENRES: tuple[str, ...] = tuple(g for g, style in GENRE_STYLES.items() if style.kick_lock >= 1.0)
SCOPE_NOTES = {"kick": "kick-locked genres (" + ", ".join(KICK_LOCKED_GENRES) + ")",
               "locked": "genres whose bass the plan locks to the kick (" + ", ".join(LOCKED_GENRES) + ")",
               "jazz": "jazz only",
               "trap": "trap only", "normal": "density normal", "all": ""}
PER_GENRE_FIGURES: tuple[str, ...] = (
    "melody_self_similarity", "melody_bars_repeated", "bass_self_similarity_lag4", "kick_snare_kept",
    "bass_on_kick", "kicks_covered", "key_found", "in_scale", "drum_swing", "drum_velocities_per_8_bars",
    "snare_on_beat3", "hihat_roll_bars", "bass_roots_on_downbeats", "melody_chord_tones",
)
DENSITY_KINDS = ("sparse", "normal", "busy")


class Pools:
    """Pooled figures of subsets of pieces, each subset pooled once: the tables ask for the
    same subset (all pieces, one genre, a reference set's jazz) for many figures."""

    def __init__(self) -> None:
        self._pooled: dict[tuple, dict[str, float]] = {}
        self._stats: dict[tuple, dict[str, Stat]] = {}

    def values(self, key: tuple, pieces: list) -> dict[str, float]:
        """`figure_values` of the subset named `key` (its pieces given the first time)."""
        if key not in self._pooled:
            self._stats[key] = pool_figures(p.figures for p in pieces)
            self._pooled[key] = figure_values(self._stats[key])
        return self._pooled[key]

    def events(self, key: tuple) -> dict[str, int]:
        return {name: _events(stat) for name, stat in self._stats.get(key, {}).items()}

    def stat(self, key: tuple, name: str) -> Stat | None:
        """The pooled stat of one figure of a subset already asked for (None if it has none)."""
        return self._stats.get(key, {}).get(name)


def _events(stat: Stat) -> int:
    """How many events (notes, bars, bar pairs, pieces) a pooled figure rests on."""
    return stat.total if isinstance(stat, Share) else stat.count


def _scoped(pieces: list[Piece], scope: str, genre: str | None = None) -> list[Piece]:
    if genre is not None:
        return [p for p in pieces if p.genre == genre]
    if scope == "kick":
        return [p for p in pieces if p.genre in KICK_LOCKED_GENRES]
    if scope == "locked":
        return [p for p in pieces if p.genre in LOCKED_GENRES]
    if scope in ("jazz", "trap"):
        return [p for p in pieces if p.genre == scope]
    return pieces


def _real_scoped(real: dict[str, list[RealPiece]], figure: str, scope: str,
                 genre: str | None = None) -> tuple[str, list[RealPiece], str | None]:
    """(set name, the reference pieces answering `figure` in `scope` or of one genre, their
    label); no pieces and no label when the set is absent."""
    source = FIGURE_SOURCES.get(figure, "")
    pieces = real.get(source, [])
    if not pieces:
        return source, [], None
    label = DATASETS[source]
    if genre is not None:
        return source, [p for p in pieces if p.genre == genre], label
    if scope == "jazz":
        return source, [p for p in pieces if p.genre == "jazz"], f"{label}, jazz"
    if scope == "trap":  # no real set holds trap: all styles show how rare the signature is elsewhere
        return source, pieces, f"{label}, all styles (no trap in the data)"
    if scope == "kick":
        return source, [p for p in pieces if p.genre in KICK_LOCKED_GENRES], f"{label}, kick-locked genres"
    if scope == "locked":
        return source, [p for p in pieces if p.genre in LOCKED_GENRES], f"{label}, locked genres"
    return source, pieces, label


def _real_value(pools: Pools, real: dict[str, list[RealPiece]], figure: str, scope: str,
                genre: str | None = None) -> tuple[float | None, str | None]:
    source, pieces, label = _real_scoped(real, figure, scope, genre)
    if not pieces:
        return None, label
    return _round(pools.values(("real", source, scope, genre), pieces).get(figure)), label


def structure_rows(pools: Pools, default: list[Piece], training: list[Piece],
                   real: dict[str, list[RealPiece]]) -> list[dict]:
    """One row per figure: generated (default requests), real (the set that answers it) and
    the training data, each pooled over the row's scope."""
    rows = []
    for name, scope in STRUCTURE_ROWS:
        if scope == "normal":
            gen_pieces, train_pieces = [p for p in default if p.kind == "normal"], [
                p for p in training if p.density == "normal"]
        else:
            gen_pieces, train_pieces = _scoped(default, scope), _scoped(training, scope)
        generated = pools.values(("generated", scope), gen_pieces).get(name)
        real_value, real_label = _real_value(pools, real, name, scope)
        rows.append({
            "name": name, "label": FIGURES[name], "scope": SCOPE_NOTES[scope], "generated": _round(generated),
            "generated_events": pools.events(("generated", scope)).get(name, 0),
            "real": real_value, "real_source": real_label,
            "training": _round(pools.values(("training", scope), train_pieces).get(name)),
        })
    return rows


def per_genre_rows(pools: Pools, default: list[Piece], training: list[Piece], real: dict[str, list[RealPiece]],
                   genres: list[str], model_genres: dict[str, str]) -> dict[str, dict]:
    """{genre: {figure: {generated, training, real}}} for PER_GENRE_FIGURES; the training
    side is the genre the model composed it as, the real side the reference set's pieces of
    that genre (GMD styles and Freedoom are labelled; POP909 is pop)."""
    out = {}
    for genre in genres:
        gen = pools.values(("generated", "genre", genre), _scoped(default, "all", genre))
        train_genre = model_genres.get(genre, genre)
        train = pools.values(("training", "genre", train_genre), _scoped(training, "all", train_genre))
        out[genre] = {name: {"generated": _round(gen.get(name)), "training": _round(train.get(name)),
                             "real": _real_value(pools, real, name, "all", genre)[0]}
                      for name in PER_GENRE_FIGURES}
    return out


def density_table(pools: Pools, generated: list[Generated], training: list[Piece], genres: list[str],
                  model_genres: dict[str, str]) -> dict[str, dict]:
    """Notes per bar of each part for sparse / normal / busy and the busy/sparse ratio, per
    genre and pooled ("all"): generated twins (same genre, seed and key; normal = the
    default request of a twinned seed) vs training pieces by their density label."""
    twinned = {(g.genre, g.seed) for g in generated if g.request.kind in ("sparse", "busy")}
    gen_pieces = [g.piece for g in generated if g.piece is not None and (g.genre, g.seed) in twinned
                  and g.request.kind in DENSITY_KINDS]

    def table_of(side: str, pieces: list[Piece], of_genre: str | None) -> dict:
        per_kind = {}
        for kind in DENSITY_KINDS:
            chosen = [p for p in pieces if (p.kind if side == "generated" else p.density) == kind
                      and (of_genre is None or p.genre == of_genre)]
            per_kind[kind] = pools.values((side, "density", kind, of_genre), chosen)
        out = {}
        for role in ROLES:
            row = {kind: _round(per_kind[kind].get(f"{role}_notes_per_bar")) for kind in DENSITY_KINDS}
            sparse, busy = row["sparse"], row["busy"]
            row["busy_over_sparse"] = _round(busy / sparse) if sparse and busy is not None else None
            out[role] = row
        return out

    result = {}
    for genre in [*genres, None]:
        train_genre = None if genre is None else model_genres.get(genre, genre)
        result[genre or "all"] = {"generated": table_of("generated", gen_pieces, genre),
                                  "training": table_of("training", training, train_genre)}
    return result


def failure_summary(generated: list[Generated]) -> dict:
    """Requests that raised: how many, of which kind, how many mention the context
    (sequence length), and the first messages."""
    failed = [g for g in generated if g.error]
    return {"failed": len(failed), "requests": len(generated),
            "by_type": dict(Counter(g.error.split(":")[0] for g in failed)),
            "by_kind": dict(Counter(g.request.kind for g in failed)),
            "context": sum(1 for g in failed if "context" in g.error.lower()),
            "examples": [f"{g.request.name}: {g.error}" for g in failed[:10]]}


def plot_style(section: dict, path: Path) -> None:
    """One panel per issue-26 figure: the generated value of each genre (bars) and the real
    value of the genre's own data (black diamonds), the all-genre real value as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres = list(section["per_genre"])
    rows = section["all"]
    columns = 5
    figure, axes = plt.subplots(math.ceil(len(rows) / columns), columns, figsize=(4.0 * columns, 2.3 * math.ceil(
        len(rows) / columns)), squeeze=False)
    x = np.arange(len(genres))
    for ax, (index, row) in zip(axes.flat, enumerate(rows)):
        cells = [section["per_genre"][g]["rows"][index] for g in genres]
        generated = [np.nan if c["generated"] is None else c["generated"] for c in cells]
        real = [np.nan if c["real"] is None else c["real"] for c in cells]
        ax.bar(x, generated, color="tab:orange", width=0.7)
        ax.scatter(x, real, color="black", marker="D", s=14, zorder=3)
        if row["real"] is not None:
            ax.axhline(row["real"], color="tab:green", lw=1, ls="--")
        title = row["label"] + (f" [{row['scope']}]" if row["scope"] else "")
        ax.set_title("\n".join(textwrap.wrap(title, 62)[:2]), fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(genres, rotation=90, fontsize=6)
        ax.tick_params(axis="y", labelsize=6)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    figure.suptitle("issue 26 figures per genre: generated (bars), the genre's real data (black), all-genre real "
                    "reference (green line)", fontsize=10)
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)


def plot_structure(rows: list[dict], path: Path) -> None:
    """Bars per figure (shares and 0-1 similarities): generated, real, training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["name"] not in COUNT_FIGURES]
    x = np.arange(len(shown))
    figure, ax = plt.subplots(figsize=(max(8.0, 0.5 * len(shown)), 4.6))
    for offset, (column, colour) in zip((-0.27, 0.0, 0.27), (("generated", "tab:orange"), ("real", "tab:green"),
                                                             ("training", "tab:blue"))):
        values = [np.nan if r[column] is None else r[column] for r in shown]
        ax.bar(x + offset, values, width=0.27, label=column, color=colour)
    ax.set_xticks(x)
    ax.set_xticklabels([r["name"] for r in shown], rotation=70, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share / similarity")
    ax.set_title("generated (default settings) vs real music vs training data", fontsize=10)
    ax.legend(fontsize=8)
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    os.replace(tmp, path)


def symbolic_section(pools: Pools, generated: list[Generated], training: list[Piece], real: dict[str, list[RealPiece]],
                     real_missing: dict[str, str], genres: list[str], model_genres: dict[str, str]) -> dict:
    default = [g.piece for g in generated if g.piece is not None and g.request.kind in ("normal", "long")]
    return {
        "definitions": "eval/music_features.py (piece_figures); real sets: eval/real_music.py",
        "generated_pieces": len(default), "training_pieces": len(training),
        "real_sets": {name: {"label": DATASETS[name], "excerpts": len(pieces)} for name, pieces in real.items()},
        "real_missing": real_missing,
        "rows": structure_rows(pools, default, training, real),
        "per_genre": per_genre_rows(pools, default, training, real, genres, model_genres),
        "density": density_table(pools, generated, training, genres, model_genres),
        "failures": failure_summary(generated),
    }


# ----------------------------------------------------------------------------- issue 26: style figures

# The figures of issue 26's table in its order, each with the requests it reads: "default" the
# default requests (normal + long), "chords" also the typed progressions with an out-of-key
# chord, "loopoff" the `--loop off` requests.
STYLE_ROWS: tuple[tuple[str, str], ...] = (
    ("backbeat_bars", "default"), ("half_time_bars", "default"), ("kickless_pieces", "default"),
    ("offbeat_8ths_swung", "default"), ("swing_phase", "default"), ("kick_snare_kept", "default"),
    ("kick_snare_kept", "loopoff"), ("phrase_end_variations_4", "default"), ("phrase_end_variations_8", "default"),
    ("melody_repeat_lag4", "default"), ("melody_similarity4_median", "default"),
    ("melody_similar4_pieces", "default"), ("melody16_copied_bars", "default"), ("melody16_repeat_lag8", "default"),
    ("melody_repeat_lag4", "loopoff"), ("melody_distinct_pitches", "default"), ("melody_range", "default"),
    ("melody_median_pitch", "default"), ("melody_rest_bars", "default"), ("melody_same_downbeat_pieces", "default"),
    ("melody_repeats", "default"), ("melody_high_point_phrases", "default"), ("chords_per_4_bars", "default"),
    ("one_chord_pieces", "default"), ("bass_distinct_pitches", "default"), ("bass_few_pitch_pieces", "default"),
    ("bass_tonic_downbeats", "default"), ("chord_scale_notes", "chords"), ("altered_notes_followed", "chords"),
    ("out_of_key_clashes", "chords"),
    ("strong_beat_clashes", "default"),
)
STYLE_SCOPES: dict[str, tuple[str, ...]] = {"default": ("normal", "long"), "chords": ("normal", "long", "chords"),
                                            "loopoff": ("loopoff",)}
STYLE_SCOPE_NOTES = {"default": "", "chords": "with typed out-of-key progressions", "loopoff": "--loop off"}
# Figures that count pieces: the tables add "k of n".
PIECE_FIGURES: frozenset[str] = frozenset({"kickless_pieces", "melody_similar4_pieces", "melody_same_downbeat_pieces",
                                           "one_chord_pieces", "bass_few_pitch_pieces"})
MIXED_SETS = frozenset({"gmd", "gmd_all", "freedoom", "billboard"})  # sets whose pieces have different genres
SET_NAMES = {"gmd": "GMD validation", "gmd_all": "GMD", "pop909": "POP909", "pop909_16": "POP909 16 bars",
             "pop909_rests": "POP909 with rests", "freedoom": "Freedoom", "wjd": "WJD", "wjd_16": "WJD 16 bars",
             "billboard": "Billboard"}


def _kind_pieces(generated: list[Generated], kinds: tuple[str, ...], genre: str | None = None) -> list[Piece]:
    return [g.piece for g in generated if g.piece is not None and g.request.kind in kinds
            and (genre is None or g.genre == genre)]


def _real_for(real: dict[str, list[RealPiece]], figure: str, genre: str | None) -> tuple[str | None, tuple, list]:
    """(set, labels, pieces) answering `figure` over all genres (genre None) or in `genre`."""
    if genre is None:
        source = FIGURE_SOURCES.get(figure)
        return source, (), real.get(source, []) if source else []
    found = genre_source(figure, genre)
    if found is None:
        return None, (), []
    source, labels = found
    return source, labels, [p for p in real.get(source, []) if p.genre in labels]


def _count(stat: Stat | None) -> str:
    """'3 of 24' for a pooled share, '' otherwise."""
    return f"{stat.hits} of {stat.total}" if isinstance(stat, Share) and stat.total else ""


def style_rows(pools: Pools, generated: list[Generated], training: list[Piece], real: dict[str, list[RealPiece]],
               genre: str | None, train_genre: str | None) -> list[dict]:
    """One row per STYLE_ROWS figure for one genre (None: all genres pooled): generated, real
    (the genre's own set, `genre_source`; over all genres `FIGURE_SOURCES`), training."""
    train_pieces = training if train_genre is None else [p for p in training if p.genre == train_genre]
    train_values = pools.values(("training", "genre", train_genre), train_pieces)
    rows = []
    for name, scope in STYLE_ROWS:
        key = ("style", scope, genre)
        value = pools.values(key, _kind_pieces(generated, STYLE_SCOPES[scope], genre)).get(name)
        stat = pools.stat(key, name)
        source, labels, pieces = _real_for(real, name, genre)
        real_key = ("real", source, labels)
        real_value = pools.values(real_key, pieces).get(name) if pieces else None
        real_stat = pools.stat(real_key, name) if pieces else None
        label = None
        if source is not None and pieces:  # the style of the sets that hold several
            label = SET_NAMES[source] + (f" {'+'.join(labels)}" if labels and source in MIXED_SETS else "")
        rows.append({"name": name, "label": FIGURES[name], "scope": STYLE_SCOPE_NOTES[scope],
                     "generated": _round(value), "generated_count": _count(stat),
                     "generated_events": _events(stat) if stat is not None else 0,
                     "real": _round(real_value), "real_count": _count(real_stat),
                     "real_source": label, "real_excerpts": len(pieces),
                     "training": _round(train_values.get(name))})
    return rows


def style_section(pools: Pools, generated: list[Generated], training: list[Piece], real: dict[str, list[RealPiece]],
                  genres: list[str], model_genres: dict[str, str]) -> dict:
    """The figures of issue 26's table over all genres and per genre, and the pieces of every
    request of a genre that have no kick (`kickless` over all kinds, not only default)."""
    train_scope = [p for p in training if p.genre in {model_genres.get(g, g) for g in genres}]
    per_genre = {}
    for genre in genres:
        every = _kind_pieces(generated, ("normal", "long", "sparse", "busy", "classifier", "loopoff", "chords"), genre)
        kickless_all = total_share(kickless(p.tracks.get("drums", [])) for p in every if "drums" in p.tracks)
        per_genre[genre] = {
            "model_genre": model_genres.get(genre, genre),
            "requests": {kind: sum(1 for g in generated if g.genre == genre and g.request.kind in kinds)
                         for kind, kinds in STYLE_SCOPES.items()},
            "kickless_all_requests": {"pieces": kickless_all.hits, "of": kickless_all.total},
            "rows": style_rows(pools, generated, training, real, genre, model_genres.get(genre, genre)),
        }
    return {"definitions": "eval/music_features.py (style_figures), docs/eval.md",
            "scopes": {k: list(v) for k, v in STYLE_SCOPES.items()},
            "all": style_rows(pools, generated, train_scope, real, None, None), "per_genre": per_genre}


def billboard_section(pools: Pools, real: dict[str, list[RealPiece]]) -> dict:
    """Chords per 4 bars and one-chord excerpts of the real progressions: Billboard per artist
    style (8-bar excerpts of 4/4 songs), POP909 and WJD, for the genres' default progressions."""
    out = {}
    groups: list[tuple[str, str, list[RealPiece]]] = []
    billboard = real.get("billboard", [])
    for style in sorted({p.genre for p in billboard if p.genre}) + ["(no style)", "all"]:
        chosen = (billboard if style == "all" else [p for p in billboard if p.genre == (None if style == "(no style)"
                                                                                     else style)])
        groups.append((f"Billboard {style}", "billboard", chosen))
    groups += [("POP909", "pop909", real.get("pop909", [])), ("WJD", "wjd", real.get("wjd", []))]
    for label, source, pieces in groups:
        if not pieces:
            continue
        key = ("real", source, "harmony", label)
        values = pools.values(key, pieces)
        one = pools.stat(key, "one_chord_pieces")
        out[label] = {"excerpts": len(pieces), "songs": len({p.source.split(" bars ")[0] for p in pieces}),
                      "chords_per_4_bars": _round(values.get("chords_per_4_bars")),
                      "one_chord_excerpts": _round(values.get("one_chord_pieces")),
                      "one_chord_count": one.hits if isinstance(one, Share) else None}
    return out


# ----------------------------------------------------------------------------- genre identity

DRUM_COLUMNS = np.array([name.startswith("drums_") for name in FEATURE_NAMES])
INDEPENDENT_L2 = 1e-3  # held-out GMD validation: mean recall 1e-3 0.47, 1e-2 0.44, 1e-1 0.39 (balanced classes)


def drum_features(windows: list[Window]) -> np.ndarray:
    """`drum_window_features` of the windows (an absent drum part reads as silence)."""
    rows = [drum_window_features(w.tracks.get("drums", []), TICKS_PER_BEAT, WINDOW_BARS) for w in windows]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(DRUM_FEATURE_NAMES))


def _share_of(predicted: list[str] | dict[int, str], rows: list[int], label: str) -> float | None:
    """Share of the windows `rows` that `predicted` reads as `label` (None for no windows)."""
    return _round(sum(predicted[i] == label for i in rows) / len(rows)) if rows else None


def _reading(predicted: list[str]) -> dict:
    counts = Counter(predicted)
    return {"windows": len(predicted), "read_as": dict(counts.most_common())}


def identity_section(classifier: GenreClassifier, train_x: np.ndarray, train_y: list[str], gen_x: np.ndarray,
                     gen_windows: list[Window], valid_recall: dict[str, float], gen_recall: dict[str, float],
                     real: dict[str, list[RealPiece]], genres: list[str], model_genres: dict[str, str]) -> dict:
    """Genre identity, per genre: the bench classifier's recall on the generated windows and on
    the prepared data's held-out validation windows; its drums-only twin (the same regression
    on the drum columns of the same training windows) on real GMD drums of the genre's style
    and on the generated drums; and an independent classifier fitted on real GMD drums only
    (the train split, `drum_window_features`, balanced classes), checked on GMD's validation
    split and applied to the generated drums: how often it hears the genre's GMD style."""
    drum_classifier = GenreClassifier.fit(train_x[:, DRUM_COLUMNS], train_y)
    gen_y = [w.genre for w in gen_windows]
    gen_drums = drum_features(gen_windows)
    gmd_windows = cut_windows([p for p in real.get("gmd_all", []) if p.genre is not None])
    gmd_y = [w.genre for w in gmd_windows]
    gmd_drums = drum_features(gmd_windows)
    splits = [w.split for w in gmd_windows]
    # the drums-only twin reads the GMD windows of the asked genres' own styles
    own_styles = {GMD_GENRE_OF.get(g) for g in genres} & {model_genres.get(g, g) for g in genres}
    read_rows = [i for i, g in enumerate(gmd_y) if g in own_styles]
    gmd_x, _ = features_of([gmd_windows[i] for i in read_rows])
    out: dict = {"bench_classes": classifier.labels, "per_genre": {}}
    independent = None
    is_train = np.array([s == "train" for s in splits], dtype=bool)
    if len(gmd_y) and is_train.any() and (~is_train).any() and len(set(np.asarray(gmd_y)[is_train])) >= 2:
        labels = np.asarray(gmd_y)
        independent = GenreClassifier.fit(gmd_drums[is_train], labels[is_train].tolist(), l2=INDEPENDENT_L2,
                                          balanced=True)
        held_out = independent.predict(gmd_drums[~is_train])
        truth = labels[~is_train].tolist()
        recall = {g: float(np.mean([p == g for p, t in zip(held_out, truth) if t == g])) for g in sorted(set(truth))}
        out["independent"] = {
            "fitted_on": "GMD train split, 4-bar windows of 8-bar excerpts of the beat performances",
            "classes": independent.labels, "train_windows": int(is_train.sum()), "held_out_windows": len(truth),
            "held_out_accuracy": _round(float(np.mean([p == t for p, t in zip(held_out, truth)]))),
            "held_out_recall": {g: _round(v) for g, v in recall.items()},
            "held_out_recall_mean": _round(float(np.mean(list(recall.values())))),
        }
    gmd_drum_read = dict(zip(read_rows, drum_classifier.predict(gmd_x[:, DRUM_COLUMNS]) if read_rows else []))
    gen_drum_read = drum_classifier.predict(gen_x[:, DRUM_COLUMNS]) if len(gen_y) else []
    gen_independent = independent.predict(gen_drums) if independent is not None and len(gen_y) else []
    for genre in genres:
        model_genre = model_genres.get(genre, genre)
        style = GMD_GENRE_OF.get(genre)
        mine = [i for i, g in enumerate(gen_y) if g == genre]
        row: dict = {"bench_generated_recall": _round(gen_recall.get(genre, float("nan"))),
                     "bench_valid_recall": _round(valid_recall.get(model_genre, float("nan"))),
                     "drums_generated_recall": _share_of(gen_drum_read, mine, model_genre), "gmd_style": style}
        if style == model_genre:  # real drums of the genre itself (GMD hip-hop is no lofi)
            for split in ("validation", "all"):
                rows = [i for i, g in enumerate(gmd_y) if g == style and split in ("all", splits[i])]
                row[f"drums_gmd_{split}_recall"] = _share_of(gmd_drum_read, rows, model_genre)
                row[f"gmd_{split}_windows"] = len(rows)
        if independent is not None and mine:
            reading = _reading([gen_independent[i] for i in mine])
            row["independent"] = {**reading, "own_style_share": _round(reading["read_as"].get(style, 0) / len(mine))
                                  if style in independent.labels else None,
                                  "held_out_recall_of_style": out["independent"]["held_out_recall"].get(style)}
        out["per_genre"][genre] = row
    return out


# ----------------------------------------------------------------------------- measure


@dataclass(frozen=True)
class DataLimits:
    """How much data the bench reads: training/validation sequences per genre (genres outside
    `focus` get `other_genres`: the classifiers still see every genre), POP909 songs, GMD files
    and WJD excerpts per solo (None = all)."""

    train_per_genre: int = 300
    valid_per_genre: int = 60
    other_genres: int | None = None
    focus: frozenset[str] | None = None
    pop909_songs: int | None = 300
    gmd_files: int | None = None
    wjd_per_solo: int | None = 2


def wanted_sets(genres: list[str]) -> set[str]:
    """The reference sets the tables read for these genres: every set an all-genre row names,
    GMD's both splits (the independent classifier), Billboard, and the genres' own sets."""
    wanted = set(FIGURE_SOURCES.values()) | {"gmd_all", "billboard"}
    for part in GENRE_SOURCES.values():
        wanted |= {source for genre, (source, _) in part.items() if genre in genres}
    return wanted


def measure(composer: Composer, data_dir: Path, requests: list[Request], limits: DataLimits,
            real_root: Path | None, progress: bool = True) -> tuple[dict, list[Generated]]:
    started = time.perf_counter()
    if not (data_dir / "index" / "index.json").is_file():
        raise QualityError(f"--data: {data_dir}/index is missing; point --data at a folder written by `pipeline prepare`")
    genres = list(dict.fromkeys(r.genre for r in requests))
    focus = set(limits.focus) if limits.focus is not None else None
    train = load_pieces(data_dir, "train", limits.train_per_genre, 0, progress, limits.other_genres, focus)
    valid = (load_pieces(data_dir, "valid", limits.valid_per_genre, 0, progress, limits.other_genres, focus)
             if (data_dir / "valid_tokens.npy").is_file() else [])
    train_stats = stats_by_genre(train)
    index = NoveltyIndex.load(data_dir / "index")
    fill_check: dict = {}
    if real_root is None:
        real, real_missing = {}, {"all": "--no-real"}
    else:
        real, real_missing = load_reference_sets(real_root, pop909_max_songs=limits.pop909_songs,
                                                 gmd_max_files=limits.gmd_files, wanted=wanted_sets(genres),
                                                 wjd_per_solo=limits.wjd_per_solo)
        if "gmd" in real:
            fill_check = {name: {"varied": share.hits, "of": share.total, "share": _round(share.value)}
                          for name, share in gmd_fill_check(real_root, max_fills=limits.gmd_files).items()}
    data_seconds = time.perf_counter() - started

    generated: list[Generated] = []
    with tempfile.TemporaryDirectory(prefix="stemforge-quality-") as workdir:
        for request in tqdm(requests, desc="composing (run())", unit="piece", disable=not progress):
            generated.append(generate_one(composer, request, Path(workdir)))
    compose_seconds = time.perf_counter() - started - data_seconds

    # the default requests (any length) are "what a producer gets"; twins only feed the density
    # table, loop-off and typed-chord requests only their rows of the style tables
    made = [g.piece for g in generated if g.piece is not None and g.request.kind in ("normal", "long")]
    classified = made + [g.piece for g in generated if g.piece is not None and g.request.kind == "classifier"]
    classified_windows = cut_windows(classified)
    train_x, train_y = windows_of(train)
    classifier = GenreClassifier.fit(train_x, train_y)
    train_accuracy, _, _ = accuracy(classifier, train_x, train_y)
    valid_x, valid_y = windows_of(valid)
    valid_accuracy, valid_recall, _ = accuracy(classifier, valid_x, valid_y)
    gen_x, gen_y = features_of(classified_windows)
    gen_accuracy, gen_recall, confusion = accuracy(classifier, gen_x, gen_y)

    rng = np.random.default_rng(0)
    generated_stats = stats_by_genre(made)
    per_genre: dict[str, dict] = {}
    model_genres: dict[str, str] = {}
    totals: Counter = Counter()
    all_pieces: set[bytes] = set()
    all_tracks: dict[str, set[bytes]] = defaultdict(set)
    for genre in genres:
        runs = [g for g in generated if g.genre == genre]
        model_genre = next((r.model_genre for r in runs if r.model_genre), genre)
        model_genres[genre] = model_genre
        mine = generated_stats.get(genre, GenreStats())
        reference = train_stats.get(model_genre)
        counts, pieces_seen, tracks_seen = novelty_counts([r.piece for r in runs if r.piece], index)
        totals.update(counts)
        all_pieces |= pieces_seen
        for role, found in tracks_seen.items():
            all_tracks[role] |= found
        per_genre[genre] = {
            "model_genre": model_genre, "runs": len(runs), "pieces": mine.pieces,
            "failed": sum(1 for r in runs if r.error),
            "valid": _round(np.mean([r.valid for r in runs])),
            "exact_bars": _round(np.mean([r.exact_bars for r in runs])),
            "exact_bpm": _round(np.mean([r.exact_bpm for r in runs])),
            "generated": mine.summary(), "training": reference.summary() if reference else None,
            **groove_distances(mine, reference, train_stats, rng),
            "classifier_recall": _round(gen_recall.get(genre, float("nan"))),
            "classifier_valid_recall": _round(valid_recall.get(genre, float("nan"))),
            "novelty": {k: int(v) for k, v in counts.items()},
            "distinct_pieces": len(pieces_seen), "distinct_tracks": {r: len(v) for r, v in tracks_seen.items()},
        }

    finished = [g for g in generated if g.piece is not None]
    recalls = [v for v in gen_recall.values() if not math.isnan(v)]
    pools = Pools()
    # the training side of the tables: the genres asked (all of them in a full run)
    train_scope = [p for p in train if p.genre in set(model_genres.values())]
    report = {
        "model": {"path": str(composer.path), "weights_sha256": composer.weights_sha256,
                  "data_sha256": composer.meta.get("data_sha256"), "genres": composer.genres},
        "data": str(data_dir), "real_data": str(real_root) if real_root else None,
        "requests": {"total": len(requests), **Counter(r.kind for r in requests),
                     "bars": sorted({r.bars for r in requests}), "keys": list(KEYS)},
        "genres": genres,
        "sampling": "RunRequest defaults (temperature 1.0, top-p 0.95, top-k off)",
        "distance": "Jensen-Shannon distance, base 2, of 16-step drum onset histograms (0 same, 1 disjoint)",
        "overall": {
            "pieces": len(generated), "valid": _round(np.mean([g.valid for g in generated])),
            "exact_bars": _round(np.mean([g.exact_bars for g in generated])),
            "exact_bpm": _round(np.mean([g.exact_bpm for g in generated])),
            "failed": sum(1 for g in generated if g.error),
            "end_of_track_past_end_ticks": max((g.end_of_track_past_end_ticks for g in generated), default=0),
            "empty_parts": sum(1 for g in finished for r in ROLES if not g.piece.tracks.get(r)),
            "classifier": {"generated_accuracy": _round(gen_accuracy), "valid_accuracy": _round(valid_accuracy),
                           "generated_recall_mean": _round(np.mean(recalls)) if recalls else None,
                           "train_accuracy": _round(train_accuracy), "chance": _round(1 / len(classifier.labels)),
                           "classes": len(classifier.labels), "train_windows": len(train_y),
                           "valid_windows": len(valid_y), "generated_windows": len(gen_y),
                           "features": len(train_x[0]) if len(train_x) else 0, "confusion_generated": confusion},
            "novelty": {"runs": {v: int(totals[f"run_{v}"]) for v in VERDICTS},
                        "parts": {r: {v: int(totals[f"{r}_{v}"]) for v in VERDICTS} for r in (*ROLES, "all")},
                        "copied_share": _round(totals["run_copied"] / max(1, sum(totals[f"run_{v}"] for v in VERDICTS))),
                        "aim": NOVELTY_AIM},
            "diversity": {"distinct_pieces": len(all_pieces), "pieces": len(finished),
                          "distinct_pieces_within_genre": sum(p["distinct_pieces"] for p in per_genre.values()),
                          **{f"distinct_{r}": len(all_tracks[r]) for r in ROLES}},
            "in_key": {"generated": _round(total_share(s.in_key_pitched for s in generated_stats.values()).value),
                       "training": _round(total_share(s.in_key_pitched for s in train_stats.values()).value),
                       "generated_best_fitting": _round(total_share(s.in_best_key for s in generated_stats.values()).value),
                       "training_best_fitting": _round(total_share(s.in_best_key for s in train_stats.values()).value)},
            "compose_seconds_mean": _round(np.mean([g.compose_seconds for g in finished])) if finished else None,
        },
        "per_genre": per_genre,
        "symbolic": symbolic_section(pools, generated, train_scope, real, real_missing, genres, model_genres),
        "style": style_section(pools, generated, train_scope, real, genres, model_genres),
        "real_harmony": billboard_section(pools, real),
        "identity": identity_section(classifier, train_x, train_y, gen_x, classified_windows, valid_recall,
                                     gen_recall, real, genres, model_genres),
        "gmd_fill_check": fill_check,
        "runs": [{"request": g.request.name, "genre": g.genre, "seed": g.seed, "kind": g.request.kind,
                  "bars": g.request.bars, "bpm": g.bpm, "key": g.key, "model_genre": g.model_genre,
                  "valid": g.valid, "exact_bars": g.exact_bars, "exact_bpm": g.exact_bpm, "error": g.error,
                  "problems": g.problems,
                  "notes": {r: len(n) for r, n in g.piece.tracks.items()} if g.piece else None,
                  "has_chord_plan": bool(g.piece and g.piece.chords),
                  "compose_seconds": g.compose_seconds} for g in generated],
    }
    total = time.perf_counter() - started
    report["seconds"] = {"data": round(data_seconds, 1), "compose": round(compose_seconds, 1),
                         "measuring": round(total - data_seconds - compose_seconds, 1), "total": round(total, 1)}
    return report, generated


# ----------------------------------------------------------------------------- tables


def structure_table(section: dict, overall: dict) -> str:
    """The "generated vs real" table (markdown), with the special rows."""
    lines = ["| figure | generated | real | real source | training data |", "|---|---|---|---|---|"]
    for row in section["rows"]:
        label = row["label"] + (f" [{row['scope']}]" if row["scope"] else "")
        generated, real, training = (format_figure(row["name"], row[c]) for c in ("generated", "real", "training"))
        lines.append(f"| {label} | {generated} | {real} | {row['real_source'] or '-'} | {training} |")
    density = section["density"]["all"]
    for role in ROLES:
        gen, train = density["generated"][role], density["training"][role]
        lines.append(f"| {role} notes per bar sparse / normal / busy (busy/sparse) "
                     f"| {' / '.join(_num(gen[k], 1) for k in DENSITY_KINDS)} ({_num(gen['busy_over_sparse'], 1)}x) "
                     f"| - | - | {' / '.join(_num(train[k], 1) for k in DENSITY_KINDS)} "
                     f"({_num(train['busy_over_sparse'], 1)}x) |")
    failures = section["failures"]
    lines.append(f"| requests failing (any exception; mentioning the context) | {failures['failed']} of "
                 f"{failures['requests']} ({failures['context']}) | - | - | - |")
    clf = overall["classifier"]
    lines.append(f"| genre classifier recall, mean over genres (accuracy over windows) "
                 f"| {_pct(clf['generated_recall_mean'])} ({_pct(clf['generated_accuracy'])}) | - | - "
                 f"| held-out validation windows: {_pct(clf['valid_accuracy'])} |")
    return "\n".join(lines)


def per_genre_structure_table(section: dict, report: dict) -> str:
    names = PER_GENRE_FIGURES
    lines = ["| genre | " + " | ".join(names) + " | classifier recall |", "|---|" + "---|" * (len(names) + 1)]
    for genre, figures in section["per_genre"].items():
        cells = []
        for name in names:
            cell = figures[name]
            text = f"{format_figure(name, cell['generated'])} / {format_figure(name, cell['training'])}"
            if cell["real"] is not None:
                text += f" / {format_figure(name, cell['real'])}"
            cells.append(text)
        lines.append(f"| {genre} | " + " | ".join(cells) + f" | {_pct(report['per_genre'][genre]['classifier_recall'])} |")
    return "\n".join(lines)


def density_markdown(section: dict) -> str:
    lines = ["| genre | " + " | ".join(f"{r} s/n/b (x) gen | {r} train" for r in ROLES) + " |",
             "|---|" + "---|---|" * len(ROLES)]
    for genre, sides in section["density"].items():
        cells = []
        for role in ROLES:
            for side in ("generated", "training"):
                row = sides[side][role]
                cells.append(f"{'/'.join(_num(row[k], 1) for k in DENSITY_KINDS)} ({_num(row['busy_over_sparse'], 1)}x)")
        lines.append(f"| {genre} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(report: dict) -> str:
    section = report["symbolic"]
    real = ", ".join(f"{v['label']}: {v['excerpts']} excerpts" for v in section["real_sets"].values()) or "none"
    missing = "; ".join(f"{k}: {v}" for k, v in section["real_missing"].items())
    lines = [
        "## Generated vs real music",
        "",
        f"generated: {section['generated_pieces']} pieces of default requests (density normal, "
        f"{'/'.join(str(b) for b in report['requests']['bars'])} bars; twins only in the density rows); "
        f"training: {section['training_pieces']} decoded training sequences; real ({report['real_data']}): {real}"
        + (f"; absent: {missing}" if missing else ""),
        "",
        structure_table(section, report["overall"]),
        "",
        "## Per genre (generated / training / real where the real sets hold the genre)",
        "",
        per_genre_structure_table(section, report),
        "",
        "## Notes per bar by density (sparse / normal / busy, busy/sparse ratio)",
        "",
        density_markdown(section),
        "",
        "## Validity, groove and novelty",
        "",
        "| genre | valid | exact bars | exact bpm | drum JS own (floor) | nearest other JS | notes/bar gen/train "
        "| swing gen/train | in key gen/train | bass on kick gen/train | classifier |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for genre, row in report["per_genre"].items():
        gen, ref = row["generated"], row["training"] or {}
        name = genre if row["model_genre"] in (None, "", genre) else f"{genre} (as {row['model_genre']})"
        lines.append(
            f"| {name} | {_pct(row['valid'])} | {_pct(row['exact_bars'])} | {_pct(row['exact_bpm'])} "
            f"| {_num(row['drum_js_own'])} ({_num(row['drum_js_floor'])}) "
            f"| {_num(row['drum_js_nearest_other'])} {row['nearest_other_genre'] or ''} "
            f"| {_num(gen['notes_per_bar'], 1)} / {_num(ref.get('notes_per_bar_density_normal'), 1)} "
            f"| {_num(gen['swing'])} / {_num(ref.get('swing'))} "
            f"| {_pct(gen['in_key'])} / {_pct(ref.get('in_key'))} "
            f"| {_pct(gen['bass_on_kick'])} / {_pct(ref.get('bass_on_kick'))} "
            f"| {_pct(row['classifier_recall'])} |")
    overall = report["overall"]
    clf, nov, div = overall["classifier"], overall["novelty"], overall["diversity"]
    requests = report["requests"]
    failures = section["failures"]
    lines += [
        "",
        f"requests: {requests['total']} via pipeline.run.run() ({requests.get('normal', 0)} default, "
        f"{requests.get('sparse', 0)} sparse + {requests.get('busy', 0)} busy twins, {requests.get('long', 0)} of "
        f"{max(requests['bars'])} bars; keys {', '.join(requests['keys'])}); failing: {failures['failed']}"
        + (f" ({failures['by_type']}; e.g. {failures['examples'][0]})" if failures["failed"] else "")
        + f"; valid {_pct(overall['valid'])}, exact bars "
        f"{_pct(overall['exact_bars'])}, exact bpm {_pct(overall['exact_bpm'])}; empty parts: "
        f"{overall['empty_parts']}; compose {_num(overall['compose_seconds_mean'])} s/piece"
        + ("" if overall["valid"] == 1 else "  <- VALIDITY BELOW 100%: see quality.json runs[].problems")
        + (f"; note: every MIDI file's end-of-track event sits {overall['end_of_track_past_end_ticks']} tick(s) "
           "after the end marker" if overall["end_of_track_past_end_ticks"] else ""),
        f"in key, pooled over genres: asked key gen {_pct(overall['in_key']['generated'])} / train "
        f"{_pct(overall['in_key']['training'])}; best-fitting key of each piece gen "
        f"{_pct(overall['in_key']['generated_best_fitting'])} / train {_pct(overall['in_key']['training_best_fitting'])}"
        " (high best-fitting with low asked = tonal, but not in the asked key)",
        f"genre control: classifier recognises the requested genre in {_pct(clf['generated_accuracy'])} of "
        f"{clf['generated_windows']} generated {WINDOW_BARS}-bar windows (mean recall over genres "
        f"{_pct(clf['generated_recall_mean'])}; chance {_pct(clf['chance'])} = "
        f"1/{clf['classes']}; same classifier on held-out real validation windows: "
        f"{_pct(clf['valid_accuracy'])} of {clf['valid_windows']}; on its training windows "
        f"{_pct(clf['train_accuracy'])})",
        "novelty (the verdict of `pipeline eval`): runs " + ", ".join(f"{nov['runs'][v]} {v}" for v in VERDICTS)
        + "; parts " + "; ".join(f"{r}: " + ", ".join(f"{c[v]} {v}" for v in VERDICTS if c[v]) for r, c in nov["parts"].items())
        + f"; aim: {_pct(nov['aim'])} copied: " + ("met" if (nov["copied_share"] or 0) <= nov["aim"] else "NOT met"),
        f"diversity: {div['distinct_pieces']} distinct pieces of {div['pieces']} "
        f"({div['distinct_pieces_within_genre']} counting within each genre, across seeds); distinct parts: drums "
        f"{div['distinct_drums']}, bass {div['distinct_bass']}, melody {div['distinct_melody']}",
        "drum JS: Jensen-Shannon distance (base 2) of 16-step drum onset histograms, generated vs the genre's "
        "training data; (floor) = same-size samples of training pieces vs the whole; nearest other = the "
        "closest other genre's training histogram. notes/bar: all parts; training side = windows labelled "
        "density 'normal' (what run() asks by default). swing: share of off-beat drum hits on swung positions. "
        "in key: bass+melody notes in the requested key's scale. classifier: recall of the requested genre. "
        "Structure figures are defined in eval/music_features.py (docs/eval.md).",
        f"time: data {report['seconds']['data']} s, composing {report['seconds']['compose']} s "
        f"({report['requests']['total']} requests), measuring {report['seconds']['measuring']} s, "
        f"total {report['seconds']['total']} s",
        "",
        style_markdown(report["style"]),
        identity_markdown(report["identity"]),
        "",
        real_harmony_markdown(report["real_harmony"], report["gmd_fill_check"]),
    ]
    return "\n".join(lines)


def _figure_cell(name: str, value: float | None, count: str) -> str:
    return format_figure(name, value) + (f" ({count})" if count else "")


def style_table(rows: list[dict]) -> str:
    """The figures of issue 26 (markdown): generated, real with its set, training."""
    lines = ["| figure | generated | real | real source (excerpts) | training |", "|---|---|---|---|---|"]
    for row in rows:
        label = row["label"] + (f" [{row['scope']}]" if row["scope"] else "")
        source = f"{row['real_source']} ({row['real_excerpts']})" if row["real_source"] else "-"
        lines.append(f"| {label} | {_figure_cell(row['name'], row['generated'], row['generated_count'])} "
                     f"| {_figure_cell(row['name'], row['real'], row['real_count'])} | {source} "
                     f"| {format_figure(row['name'], row['training'])} |")
    return "\n".join(lines)


def style_markdown(section: dict) -> str:
    blocks = ["## Issue 26 figures, all genres (generated vs real music)", "",
              "Generated: the default requests (8 and 16 bars; [--loop off] rows: `--loop off` requests; "
              "[with typed out-of-key progressions] rows: also requests with typed progressions such as "
              "'C A7 Dm G'). Real: the set that holds the part (definitions: eval/music_features.py, "
              "docs/eval.md).", "", style_table(section["all"]), "",
              "## Issue 26 figures per genre (real: the genre's own data where it exists)", ""]
    for genre, entry in section["per_genre"].items():
        requests, kickless_all = entry["requests"], entry["kickless_all_requests"]
        name = genre if entry["model_genre"] == genre else f"{genre} (as {entry['model_genre']})"
        blocks += [f"### {name}", "",
                   f"{requests['default']} default requests, {requests['loopoff']} with --loop off, "
                   f"{requests['chords'] - requests['default']} with a typed out-of-key progression; pieces without "
                   f"a kick over every request of the genre: {kickless_all['pieces']} of {kickless_all['of']}", "",
                   style_table(entry["rows"]), ""]
    return "\n".join(blocks)


def identity_markdown(section: dict) -> str:
    lines = ["## Genre identity", ""]
    independent = section.get("independent")
    if independent:
        recall = ", ".join(f"{g} {_pct(v)}" for g, v in independent["held_out_recall"].items())
        lines += [f"Independent classifier: fitted on real GMD drums only ({independent['fitted_on']}; "
                  f"{independent['train_windows']} windows, {len(independent['classes'])} styles), held-out GMD "
                  f"validation windows ({independent['held_out_windows']}): accuracy "
                  f"{_pct(independent['held_out_accuracy'])}, mean recall {_pct(independent['held_out_recall_mean'])} "
                  f"({recall}). Bench classifier: the one of the tables above (all parts, fitted on the prepared "
                  "training windows); its drums-only twin: the same regression on the drum columns.", ""]
    lines += ["| genre | bench: generated | bench: held-out windows | drums-only bench: generated "
              "| drums-only bench: GMD validation / all | independent: generated read as GMD style "
              "| independent reads them as |", "|---|---|---|---|---|---|---|"]
    for genre, row in section["per_genre"].items():
        gmd = "-"
        if "drums_gmd_all_recall" in row:
            gmd = (f"{_pct(row['drums_gmd_validation_recall'])} ({row['gmd_validation_windows']}) / "
                   f"{_pct(row['drums_gmd_all_recall'])} ({row['gmd_all_windows']})")
        own, reading = "-", "-"
        if "independent" in row:
            found = row["independent"]
            windows = found["windows"]
            if found["own_style_share"] is not None:
                own = f"{_pct(found['own_style_share'])} ({row['gmd_style']}, of {windows})"
            reading = ", ".join(f"{g} {count}" for g, count in list(found["read_as"].items())[:3])
        lines.append(f"| {genre} | {_pct(row['bench_generated_recall'])} | {_pct(row['bench_valid_recall'])} "
                     f"| {_pct(row['drums_generated_recall'])} | {gmd} | {own} | {reading} |")
    return "\n".join(lines)


def real_harmony_markdown(section: dict, fill_check: dict) -> str:
    lines = ["## Real harmony: chords per 4 bars and one-chord excerpts (8 bars)", "",
             "| set | songs | excerpts | chords per 4 bars | one-chord excerpts |", "|---|---|---|---|---|"]
    for label, row in section.items():
        lines.append(f"| {label} | {row['songs']} | {row['excerpts']} | {_num(row['chords_per_4_bars'], 1)} "
                     f"| {_pct(row['one_chord_excerpts'])} ({row['one_chord_count']}) |")
    if fill_check:
        lines += ["", "Fill definition checked on GMD (validation split): 4-bar phrases of a beat file's groove "
                  f"ending in a fill file of the same session: {fill_check['fill']['varied']} of "
                  f"{fill_check['fill']['of']} phrase ends vary; ending in a copy of the groove's first bar: "
                  f"{fill_check['copied']['varied']} of {fill_check['copied']['of']}; the beat files' own 4-bar "
                  f"phrase ends: {_pct(fill_check['beats']['share'])} of {fill_check['beats']['of']}."]
    return "\n".join(lines)


def write_json(data: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the shipped composer)")
    parser.add_argument("--data", type=Path, required=True, help="the prepared dataset the model was trained on")
    parser.add_argument("--seeds", type=int, default=8, help="default requests per genre")
    parser.add_argument("--twin-seeds", type=int, default=3, help="seeds per genre that get a sparse and a busy twin")
    parser.add_argument("--long-seeds", type=int, default=2, help="pieces of 2 x --bars bars per genre")
    parser.add_argument("--classifier-seeds", type=int, default=None,
                        help="more default requests per genre that only the genre classifier reads (default 16; "
                             f"{FOCUS_CLASSIFIER_SEEDS} when --genres names a few)")
    parser.add_argument("--loopoff-seeds", type=int, default=2, help="requests per genre with --loop off")
    parser.add_argument("--chord-seeds", type=int, default=2,
                        help="requests per genre with a typed progression holding a chord outside the key")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--genres", nargs="*", default=list(GENRES),
                        help="default: every advertised genre. Naming a few is the fast path for probing: the "
                             f"other genres' data is read only for the classifiers (--other-genres sequences "
                             f"each), only the real sets these genres need are read, --classifier-seeds "
                             f"defaults to {FOCUS_CLASSIFIER_SEEDS}")
    parser.add_argument("--other-genres", type=int, default=60,
                        help="with --genres: training/validation sequences decoded for each genre not named")
    parser.add_argument("--train-per-genre", type=int, default=300, help="training sequences decoded per genre")
    parser.add_argument("--valid-per-genre", type=int, default=60, help="validation sequences decoded per genre")
    parser.add_argument("--real-data", type=Path, default=DEFAULT_DATA_ROOT,
                        help="the shared data folder (gmd/, pop909/, freedoom/); default ../shared/data")
    parser.add_argument("--no-real", action="store_true", help="leave the real-music column empty")
    parser.add_argument("--pop909-songs", type=int, default=300, help="POP909 songs read (0 = all)")
    parser.add_argument("--wjd-per-solo", type=int, default=2, help="WJD excerpts per solo, spread over it (0 = all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: genres {', '.join(QUICK_GENRES)}, 1 seed (+ twins, 1 long), small samples")
    parser.add_argument("--out", type=Path, default=Path("docs/quality"))
    args = parser.parse_args(argv)
    gmd_files = None
    focus = set(args.genres) < set(GENRES)
    if args.classifier_seeds is None:
        args.classifier_seeds = FOCUS_CLASSIFIER_SEEDS if focus else 16
    if args.quick:
        args.genres = [g for g in QUICK_GENRES if g in args.genres] or args.genres[:4]
        args.seeds, args.twin_seeds, args.long_seeds, args.classifier_seeds = 1, 1, 1, 0
        args.loopoff_seeds, args.chord_seeds = min(args.loopoff_seeds, 1), min(args.chord_seeds, 1)
        args.train_per_genre, args.valid_per_genre, args.pop909_songs, gmd_files = 40, 10, 30, 15
        focus = False
    limits = DataLimits(args.train_per_genre, args.valid_per_genre, args.other_genres if focus else None,
                        frozenset(args.genres) if focus else None, args.pop909_songs or None, gmd_files,
                        args.wjd_per_solo or None)
    try:
        counts = (args.twin_seeds, args.long_seeds, args.classifier_seeds, args.loopoff_seeds, args.chord_seeds,
                  args.other_genres)
        if args.seeds < 1 or args.bars < WINDOW_BARS or min(counts) < 0:
            raise QualityError(f"--seeds must be >= 1, --twin-seeds/--long-seeds/--classifier-seeds/--loopoff-seeds/"
                               f"--chord-seeds/--other-genres >= 0 and --bars >= {WINDOW_BARS} "
                               f"(windows are {WINDOW_BARS} bars)")
        unknown = [g for g in args.genres if g not in GENRES]
        if unknown:
            raise QualityError(f"--genres: unknown {unknown}; choose from {', '.join(GENRES)}")
        import torch

        torch.set_num_threads(1)
        composer = load_composer(args.model)
        requests = request_set(args.genres, args.seeds, args.bars, min(args.twin_seeds, args.seeds), args.long_seeds,
                               args.classifier_seeds, args.loopoff_seeds, args.chord_seeds)
        report, generated = measure(composer, args.data, requests, limits, None if args.no_real else args.real_data)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report["table"] = table(report)
    write_json(report, args.out / "quality.json")
    first = {}
    for g in generated:
        if g.piece is not None and g.request.kind == "normal" and g.genre not in first:
            first[g.genre] = g.piece
    plot_pianorolls(list(first.values()), args.out / "quality_pianorolls.png",
                    f"{composer.path.name}: seed 0 of each genre, {args.bars} bars")
    plot_structure(report["symbolic"]["rows"], args.out / "quality_figures.png")
    plot_style(report["style"], args.out / "quality_style.png")
    print(report["table"])
    print(f"wrote {args.out / 'quality.json'}, {args.out / 'quality_pianorolls.png'}, "
          f"{args.out / 'quality_figures.png'} and {args.out / 'quality_style.png'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        sys.exit(main())
