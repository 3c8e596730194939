"""`pipeline eval`: FAD and SHA-256 novelty of run folders against the training set,
written as report.json, report.md and a self-contained report.html (plots inline).

    from stemforge.eval.report import EvalRequest, run_eval
    report = run_eval(EvalRequest([Path("runs/a"), Path("runs/b")], Path("report"), model_dir=Path("model")))

The out folder is written under a temporary name and renamed into place; an existing
out folder is refused, never overwritten.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from stemforge.eval.cache import CachedClip, FrameCache
from stemforge.eval.embeddings import (
    EMBEDDINGS,
    Embedding,
    build_embedding,
    embedding_identity,
    weights_identity,
)
from stemforge.eval.fad import (
    FEW_CLIPS,
    MIN_CLIPS,
    fad_with_intervals,
    has_usable_interval,
    intervals_overlap,
)
from stemforge.eval.music_features import (
    FIGURES,
    Mean,
    Share,
    Stat,
    figure_values,
    format_figure,
    piece_figures,
    pool_figures,
)
from stemforge.eval.novelty import VERDICTS, piece_novelty, run_grid_tracks, summarize, thresholds
from stemforge.eval.reference import (
    CLIP_ROLES,
    MIX,
    ClipSource,
    EvalError,
    ReferenceSource,
    arrangement_from_midi,
    conform,
    find_reference,
    read_run,
    reference_sources,
    run_sources,
    run_tracks,
)
from stemforge.symbolic.core.cache import code_digest
from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.core.hashing import file_sha256
from stemforge.symbolic.core.paths import FolderExistsError, atomic_folder
from stemforge.symbolic.core.progress import progress_bar
from stemforge.symbolic.core.ticks import GRID_PER_BEAT, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.canonical import WINDOW_BARS, IndexVersionError, NoveltyIndex
from stemforge.symbolic.music.keys import Key, parse_key
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME, RunManifest
from stemforge.symbolic.training.window_store import (
    WindowNotes,
    build_window_notes,
    load_window_notes,
    piece_windows,
)

__all__ = ["EvalError", "EvalRequest", "run_eval"]

REPORT_VERSION = 2  # 2: novelty verdicts per run and part (bar digests at every shift)
MIN_GENRE_REFERENCE_CLIPS = 2  # fewer same-genre reference clips: compare with the whole reference
MAX_PIANO_ROLLS = 6


@dataclass
class EvalRequest:
    run_dirs: list[Path]
    out_dir: Path
    model_dir: Path | None = None
    data_dir: Path | None = None  # overrides the model's index
    reference: Path | None = None  # folder of stems/mixes (wav/flac/aiff) or MIDI; default: reference_midi rendered
    embeddings: tuple[str, ...] = ("features",)
    embedding_weights: dict[str, str] = field(default_factory=dict)  # name -> local path or hub id
    bootstrap: int = 200
    seed: int = 0
    cache_dir: Path | None = None  # frames cache root; default $STEMFORGE_CACHE_DIR or ~/.cache/stemforge
    use_cache: bool = True  # False: neither read nor write cached frames (--no-cache)


# ---------------------------------------------------------------- inputs

def _sha256_tree(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.relative_to(root)}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise EvalError(f"{path}: missing; {what}") from error
    except json.JSONDecodeError as error:
        raise EvalError(f"{path}: not valid JSON ({error})") from error


@dataclass
class TrainingSide:
    """Where the index and reference MIDI come from and which data they describe."""

    index_dir: Path
    reference_midi: Path | None
    data_sha256: str | None
    inputs: dict


def model_of_runs(runs: list[RunManifest]) -> Path | None:
    """Without --model/--data: the model every run was made with, when they agree and it
    is still on disk (the shipped default model for runs made without --model)."""
    paths = {run.model.path for run in runs}
    if len(paths) != 1 or None in paths:
        return None
    candidate = Path(paths.pop())
    return candidate if (candidate / "stemforge.json").is_file() else None


def resolve_training(model_dir: Path | None, data_dir: Path | None) -> TrainingSide:
    if model_dir is None and data_dir is None:
        raise EvalError("--model/--data: pass a model folder (`pipeline train`) or a prepared dataset "
                        "(`pipeline prepare`); the novelty index and FAD reference come from there")
    inputs: dict = {}
    model_sha = None
    if model_dir is not None:
        meta = _read_json(model_dir / "stemforge.json", "pass a model folder written by `pipeline train`")
        model_sha = meta.get("data_sha256")
        inputs["model"] = {"path": str(model_dir.resolve()), "weights_sha256": meta.get("weights_sha256"),
                           "data_sha256": model_sha}
    data_sha = model_sha
    if data_dir is not None:
        meta = _read_json(data_dir / "dataset.json", "pass a dataset folder written by `pipeline prepare`")
        data_sha = meta.get("data_sha256")
        if model_sha and data_sha != model_sha:
            raise EvalError(
                f"--data: {data_dir} holds data {str(data_sha)[:12]}, but the model {model_dir} was trained on "
                f"{model_sha[:12]}; pass the dataset the model was trained on, or drop --model to check "
                "novelty against another dataset"
            )
        inputs["data"] = {"path": str(data_dir.resolve()), "data_sha256": data_sha}
    home = data_dir if data_dir is not None else model_dir
    index_dir = home / "index"
    for name in ("index.json", "index.npz"):
        if not (index_dir / name).is_file():
            raise EvalError(f"{index_dir / name}: missing; run `pipeline prepare` again to write the novelty index")
    inputs["index"] = {"path": str(index_dir.resolve()),
                       **{name: file_sha256(index_dir / name) for name in ("index.json", "index.npz", "windows.npz")
                          if (index_dir / name).is_file()}}
    reference = home / "reference_midi"
    return TrainingSide(index_dir, reference if reference.is_dir() else None, data_sha, inputs)


def _check_request(request: EvalRequest) -> None:
    if request.out_dir.exists():
        raise EvalError(f"--out: {request.out_dir} already exists; choose a new folder (reports are never overwritten)")
    if not request.run_dirs:
        raise EvalError("RUN_DIRS: no run folders given; pass folders written by `pipeline run --stems`")
    if not request.embeddings:
        raise EvalError("--embedding: name at least one embedding (features always works offline)")
    for name in request.embeddings:
        if name not in EMBEDDINGS:
            raise EvalError(f"--embedding: unknown embedding {name!r}; choose from {', '.join(EMBEDDINGS)}")
    for name in request.embedding_weights:
        if name not in request.embeddings:
            raise EvalError(f"--embedding-weights: {name!r} is not among --embedding {','.join(request.embeddings)}")
    if request.bootstrap < 0:
        raise EvalError(f"--bootstrap: {request.bootstrap} must be 0 (off) or more rounds")


# ---------------------------------------------------------------- embedding

@dataclass
class EmbeddedSet:
    """Frames of every clip, per embedding; clip labels in the same order."""

    frames: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    labels: list[tuple[str, str, str | None]] = field(default_factory=list)  # (name, role, genre)

    def select(self, embedding: str, role: str, genre: str | None = None) -> list[np.ndarray]:
        return [f for f, (_, r, g) in zip(self.frames[embedding], self.labels, strict=True) if r == role and
                (genre is None or g == genre)]

    def count(self, role: str, genre: str | None = None) -> int:
        return sum(1 for _, r, g in self.labels if r == role and (genre is None or g == genre))

    def add(self, label: tuple[str, str, str | None], frames: dict[str, np.ndarray]) -> None:
        """One clip: its label and its frames under every embedding (keeps the lists aligned)."""
        for name, clip_frames in frames.items():
            self.frames[name].append(clip_frames)
        self.labels.append(label)


def embed_source(source: ClipSource, embedders: list[Embedding], identities: dict[str, dict], cache: FrameCache,
                 into: EmbeddedSet, warnings: list[str]) -> None:
    """Frames of one source's clips under every embedding, from the cache when it holds them
    all; otherwise the source is read or rendered once, the missing embeddings computed
    (audio conformed once per rate/channel count) and stored."""
    keys = {e.name: {"source": source.key, "embedding": identities[e.name]} for e in embedders}
    cached = {e.name: cache.get(e.name, keys[e.name]) for e in embedders}
    role_lists = {tuple(c.role for c in clips) for clips in cached.values() if clips is not None}
    if all(clips is not None for clips in cached.values()) and len(role_lists) == 1:
        roles = role_lists.pop()
        for index, role in enumerate(roles):
            into.add((source.name, role, source.genre), {name: clips[index].frames for name, clips in cached.items()})
        return
    try:
        clips = source.load()
    except EvalError as error:
        if not source.skip_unreadable:
            raise
        warnings.append(f"reference: skipped {error}")  # one bad file in a producer's folder is not fatal
        return
    roles = tuple(clip.role for clip in clips)
    frames: dict[str, list[np.ndarray]] = {}
    for embedder in embedders:
        hit = cached[embedder.name]
        if hit is not None and tuple(c.role for c in hit) == roles:
            frames[embedder.name] = [c.frames for c in hit]
    conformed: list[dict[tuple[int, int], np.ndarray]] = [{} for _ in clips]
    for embedder in embedders:
        if embedder.name in frames:
            continue
        target = (embedder.sample_rate, embedder.channels)
        computed = []
        for clip, by_target in zip(clips, conformed, strict=True):
            if target not in by_target:
                by_target[target] = conform(clip.audio, clip.sample_rate, *target)
            computed.append(embedder.embed(by_target[target]))
        frames[embedder.name] = computed
        cache.put(embedder.name, keys[embedder.name],
                  [CachedClip(role, f) for role, f in zip(roles, computed, strict=True)])
    for index, clip in enumerate(clips):
        into.add((clip.name, clip.role, clip.genre), {name: frames[name][index] for name in frames})


def embed_sources(sources: list[ClipSource], embedders: list[Embedding], cache: FrameCache, desc: str,
                  progress: bool, warnings: list[str]) -> EmbeddedSet:
    """Embed every source (see `embed_source`) with a progress display."""
    identities = {e.name: embedding_identity(e) for e in embedders}
    into = EmbeddedSet()
    for source in _progress(sources, len(sources), desc, progress, "file"):
        embed_source(source, embedders, identities, cache, into, warnings)
    return into


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool, unit: str = "clip") -> Iterable:
    return progress_bar(iterable, total=total, desc=desc, unit=unit, enabled=enabled, leave=False)


# ---------------------------------------------------------------- FAD tables

def fad_tables(generated: EmbeddedSet, reference: EmbeddedSet, embedders: list[Embedding], request: EvalRequest,
               genres: list[str]) -> tuple[dict, dict]:
    """FAD per embedding and role, and per genre (mix) when the runs span genres."""
    overall: dict = {}
    for embedder in embedders:
        table = {}
        for role in CLIP_ROLES:
            gen, ref = generated.select(embedder.name, role), reference.select(embedder.name, role)
            if not gen:
                continue
            if not ref:
                table[role] = {"fad": None, "missing": f"the reference has no {role} audio"}
                continue
            if sum(len(f) for f in gen) < 2 or sum(len(f) for f in ref) < 2:
                table[role] = {"fad": None, "missing": "fewer than 2 embedding frames on one side (clips too short)"}
                continue
            table[role] = fad_with_intervals(gen, ref, request.bootstrap, request.seed).to_dict()
        overall[embedder.name] = table
    by_genre: dict = {}
    if len(genres) > 1:
        for genre in genres:
            by_genre[genre] = {}
            for embedder in embedders:
                gen = generated.select(embedder.name, MIX, genre)
                ref = reference.select(embedder.name, MIX, genre)
                against = "same-genre reference"
                if len(ref) < MIN_GENRE_REFERENCE_CLIPS:
                    ref, against = reference.select(embedder.name, MIX), "whole reference"
                if sum(len(f) for f in gen) >= 2 and sum(len(f) for f in ref) >= 2:
                    by_genre[genre][embedder.name] = {
                        **fad_with_intervals(gen, ref, request.bootstrap, request.seed).to_dict(), "against": against}
    return overall, by_genre


def compare_rows(rows: dict[str, dict]) -> dict | None:
    """Which rows of one FAD table (same embedding) can be told apart: pairs whose 95%
    intervals overlap cannot, pairs whose intervals are disjoint can; rows without a usable
    interval (bootstrap off, one or two clips) are not compared. None for fewer than two rows."""
    scored = {name: r for name, r in rows.items() if r.get("fad") is not None}
    if len(scored) < 2:
        return None
    usable = [name for name, r in scored.items() if has_usable_interval(r)]
    overlapping, separate = [], []
    for i, a in enumerate(usable):
        for b in usable[i + 1:]:
            (overlapping if intervals_overlap(scored[a], scored[b]) else separate).append([a, b])
    return {"overlapping": overlapping, "separate": separate,
            "no_interval": [name for name in scored if name not in usable]}


def fad_comparisons(fad: dict, fad_by_genre: dict) -> dict:
    """The comparisons a reader makes in the report's FAD tables, per embedding: role
    against role, and genre against genre (the per-genre mix table)."""
    out: dict = {"roles": {}, "genres": {}}
    for name, table in fad.items():
        if (compared := compare_rows(table)) is not None:
            out["roles"][name] = compared
    embeddings = {name for per in fad_by_genre.values() for name in per}
    for name in sorted(embeddings):
        rows = {genre: per[name] for genre, per in fad_by_genre.items() if name in per}
        if (compared := compare_rows(rows)) is not None:
            out["genres"][name] = compared
    return out


MAX_LISTED_PAIRS = 12  # beyond this, the sentence gives a count and report.json the full list


def comparison_sentences(compared: dict, things: str) -> list[str]:
    """Plain sentences under a FAD table saying which of its rows can and cannot be told apart."""
    def pairs(items: list[list[str]]) -> str:
        listed = "; ".join(f"{a} and {b}" for a, b in items[:MAX_LISTED_PAIRS])
        more = len(items) - MAX_LISTED_PAIRS
        return listed + (f"; and {more} more pair(s) (report.json, fad_comparisons)" if more > 0 else "")

    sentences = []
    overlapping, separate = compared["overlapping"], compared["separate"]
    if overlapping and not separate:
        sentences.append(f"These {things} cannot be told apart: every pair's 95% intervals overlap "
                         f"({pairs(overlapping)}), so their differences are within bootstrap noise.")
    elif overlapping:
        sentences.append(f"Cannot be told apart (95% intervals overlap): {pairs(overlapping)}.")
    if separate:
        sentences.append(f"Can be told apart (95% intervals do not overlap): {pairs(separate)}.")
    if compared["no_interval"]:
        sentences.append(f"Not compared, no usable interval (one or two clips, or --bootstrap 0): "
                         f"{', '.join(compared['no_interval'])}.")
    return sentences


def clip_distances(generated: list[np.ndarray], reference: list[np.ndarray]) -> dict:
    """Distance of each clip's mean embedding to its nearest reference clip (dims scaled by
    the reference spread), generated vs reference-to-other-reference: the histogram shows
    whether generated clips sit inside the reference cloud."""
    ref_frames = np.concatenate(reference)
    scale = ref_frames.std(axis=0) + 1e-8
    gen_means = np.stack([g.mean(axis=0) for g in generated]) / scale
    ref_means = np.stack([r.mean(axis=0) for r in reference]) / scale
    gen_to_ref = np.sqrt(((gen_means[:, None] - ref_means[None]) ** 2).sum(-1)).min(axis=1)
    ref_ref = np.sqrt(((ref_means[:, None] - ref_means[None]) ** 2).sum(-1))
    np.fill_diagonal(ref_ref, np.inf)
    ref_to_ref = ref_ref.min(axis=1) if len(reference) > 1 else np.zeros(0)
    return {"generated_to_reference": [float(x) for x in gen_to_ref],
            "reference_to_reference": [float(x) for x in ref_to_ref if np.isfinite(x)]}


# ---------------------------------------------------------------- novelty

def load_store(index_dir: Path, reference_midi: Path | None, notes: list[str]) -> WindowNotes | None:
    """Training windows for nearest-neighbour search: index/windows.npz when prepare wrote
    it, else the reference MIDI windows (a sample of training)."""
    path = index_dir / "windows.npz"
    if path.is_file():
        try:
            return load_window_notes(path)
        except (ValueError, KeyError, OSError) as error:
            notes.append(f"{path}: unusable ({error}); nearest windows searched in the reference MIDI only")
    if reference_midi is None:
        notes.append("no training windows stored (index/windows.npz) and no reference_midi: nearest windows skipped")
        return None
    windows = []
    for midi in sorted(reference_midi.glob("*.mid")):
        try:
            arrangement = arrangement_from_midi(midi)
        except EvalError:
            continue
        tracks = {role: track.notes for role, track in arrangement.tracks.items()}
        windows += piece_windows(midi.name, tracks, TICKS_PER_BEAT, arrangement.conditions.bars)
    notes.append(f"no index/windows.npz: nearest windows searched among {len(windows)} reference_midi windows only")
    return build_window_notes(windows, TICKS_PER_BEAT)


def _json_piece(piece: dict) -> dict:
    return {k: v for k, v in piece.items() if k != "windows"}


def _strongest_match(piece: dict) -> tuple[str, dict] | None:
    """(part, match) of the piece's longest match, strongest verdict first."""
    found = [(role, part) for role, part in piece["parts"].items() if part["match"]]
    if not found:
        return None
    role, part = min(found, key=lambda rp: (VERDICTS.index(rp[1]["verdict"]), -rp[1]["match"]["bars"],
                                            -rp[1]["match"]["distinctive_notes"]))
    return role, part["match"]


def _describe_match(role: str, match: dict) -> str:
    shift = f", {match['shift_steps']}/{GRID_PER_BEAT} beat late" if match["shift_steps"] else ""
    transposed = f", {match['transposition']:+d} st" if match["transposition"] else ""
    return (f"{role}: {match['bars']} bar(s) from bar {match['start_bar'] + 1} = {match['source']} bar "
            f"{match['training_bar'] + 1}{shift}{transposed} ({match['distinctive_notes']} distinctive notes)")


# ---------------------------------------------------------------- symbolic figures

# Figures compared on 4-bar windows, runs cut the way prepare cut the training windows (so
# "bars repeated" or "kick+snare kept" mean the same on both sides); then figures that
# need a whole run (a 4-bar lag, the asked key, 8 bars of velocities) or what the window
# store does not keep, measured on the runs only.
SYMBOLIC_WINDOW_FIGURES: tuple[str, ...] = (
    "melody_self_similarity_lag1", "melody_self_similarity_lag2", "melody_bars_repeated", "melody_repeats",
    "melody_steps", "melody_leaps", "bass_repeats", "bass_steps", "bass_leaps", "kick_snare_kept", "bass_on_kick",
    "kicks_covered", "drum_swing", "drums_notes_per_bar", "bass_notes_per_bar", "melody_notes_per_bar",
    "bass_overlaps", "melody_overlaps", "snare_on_beat3", "hihat_roll_bars",
)
SYMBOLIC_RUN_FIGURES: dict[str, str] = {  # figure -> why the training windows cannot give it
    "melody_self_similarity_lag4": "windows are 4 bars",
    "bass_self_similarity_lag4": "windows are 4 bars",
    "key_found": "windows carry no asked key",
    "in_scale": "windows carry no asked key",
    "drum_velocities_per_8_bars": "the store keeps no velocities",
    "drum_duplicate_hits": "the store keeps each note once",
}
SYMBOLIC_PER_RUN: tuple[str, ...] = ("melody_self_similarity_lag1", "bass_self_similarity_lag4", "kick_snare_kept",
                                     "bass_on_kick", "key_found", "drum_duplicate_hits", "bass_overlaps",
                                     "melody_overlaps")


@dataclass
class RunPiece:
    """A run's notes and what was asked, for the symbolic figures."""

    name: str
    genre: str | None
    bars: int
    tracks: dict[str, list[Note]]
    key: Key | None


def run_piece(run_dir: Path, run: RunManifest, tracks: dict[str, list[Note]]) -> RunPiece:
    conditions = run.conditions
    try:
        key = parse_key(conditions.key) if conditions.key else None
    except ConditionError:
        key = None
    return RunPiece(run_dir.name, conditions.genre, conditions.bars, tracks, key)


def store_tracks(store: WindowNotes, index: int) -> dict[str, list[Note]]:
    """A stored training window as notes at TICKS_PER_BEAT; the store keeps no velocity, so
    every note gets 100 (velocity figures are not read from it)."""
    scale = TICKS_PER_BEAT // GRID_PER_BEAT
    return {role: [Note(int(o) * scale, max(1, int(d)) * scale, int(p), 100) for o, d, p in rows.tolist()]
            for role, rows in store.window(index).items()}


def _window_figures(piece: RunPiece) -> list[dict[str, Stat]]:
    """Figures of each 4-bar window of a run (stride 4: the cut of the training windows)."""
    windows = piece_windows(piece.name, piece.tracks, TICKS_PER_BEAT, piece.bars)
    return [piece_figures({role: window.get(role, []) for role in piece.tracks}, WINDOW_BARS, TICKS_PER_BEAT)
            for _, _, window in windows]


def _source_genre(source: str) -> str:
    """The first folder of a training file's path (prepare keeps `genre/file.mid` layouts)."""
    return source.split("/")[0] if "/" in source else ""


def training_figures(store: WindowNotes, cache: FrameCache | None = None) -> dict[str, dict[str, Stat]]:
    """The figures of the training windows pooled per genre (of the source path). Thousands
    of windows take ~15 s, so the result is cached, keyed by the windows' content and the
    code that measures them; pooled figures are sums, so genres add up exactly."""
    key = {"kind": "training window figures", "version": 1,
           "windows_sha256": hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in (
               store.rows, store.offsets, store.source_ids)) + json.dumps(store.sources).encode()).hexdigest(),
           "code": code_digest(("stemforge.eval.music_features", "stemforge.symbolic.training.window_store", "stemforge.eval.report"))}
    cached = cache.get_document("training-figures", key) if cache is not None else None
    if cached is not None:
        return {genre: {name: (Share if kind == "share" else Mean)(a, b) for name, (kind, a, b) in figures.items()}
                for genre, figures in cached.items()}
    by_genre: dict[str, list[dict[str, Stat]]] = defaultdict(list)
    for i in range(len(store)):
        by_genre[_source_genre(store.sources[int(store.source_ids[i])])].append(
            piece_figures(store_tracks(store, i), WINDOW_BARS, TICKS_PER_BEAT))
    pooled = {genre: pool_figures(figures) for genre, figures in by_genre.items()}
    if cache is not None:
        cache.put_document("training-figures", key, {
            genre: {name: ["share", s.hits, s.total] if isinstance(s, Share) else ["mean", s.total, s.count]
                    for name, s in figures.items()} for genre, figures in pooled.items()})
    return pooled


def symbolic_section(pieces: list[RunPiece], store: WindowNotes | None, cache: FrameCache | None = None) -> dict:
    """The musical-structure figures of `eval/music_features.py` for the runs (their 4-bar
    windows, and whole runs for what needs more) next to the model's training windows: all
    of them, and those of the runs' genres when the training paths name genres."""
    runs_windows = figure_values(pool_figures(f for piece in pieces for f in _window_figures(piece)))
    whole = {piece.name: piece_figures(piece.tracks, piece.bars, TICKS_PER_BEAT, piece.key) for piece in pieces}
    runs_whole = figure_values(pool_figures(whole.values()))
    notes: list[str] = []
    training_all: dict[str, float] = {}
    training_genres: dict[str, float] = {}
    same_genre_windows = 0
    if store is None:
        notes.append("no training windows (index/windows.npz or reference_midi): training columns left empty")
    else:
        genres = {piece.genre for piece in pieces if piece.genre}
        pooled = training_figures(store, cache)
        training_all = figure_values(pool_figures(pooled.values()))
        same = [f for genre, f in pooled.items() if genre in genres]
        in_genres = np.array([_source_genre(source) in genres for source in store.sources], dtype=bool)
        same_genre_windows = int(in_genres[np.asarray(store.source_ids, dtype=np.int64)].sum())
        training_genres = figure_values(pool_figures(same)) if same else {}
        notes.append("training windows are stored once each (repeats of a loop count once) and without "
                     "velocities; a part a window lacks is not measured there")
    rows = [{"name": name, "label": FIGURES[name], "runs": _num(runs_windows.get(name)), "measured_on": "4-bar windows",
             "training_same_genres": _num(training_genres.get(name)), "training_all": _num(training_all.get(name))}
            for name in SYMBOLIC_WINDOW_FIGURES]
    rows += [{"name": name, "label": FIGURES[name], "runs": _num(runs_whole.get(name)), "measured_on": "whole runs",
              "training_same_genres": None, "training_all": None, "training_missing": why}
             for name, why in SYMBOLIC_RUN_FIGURES.items()]
    per_run = {name: {figure: _num(figure_values(f).get(figure)) for figure in SYMBOLIC_PER_RUN}
               for name, f in whole.items()}
    return {"definitions": "eval/music_features.py (docs/eval.md, Symbolic)", "figures": rows, "runs": per_run,
            "training_windows": len(store) if store is not None else 0, "same_genre_windows": same_genre_windows,
            "notes": notes}


def _num(value: float | None) -> float | None:
    """JSON-safe: NaN (nothing to measure) becomes None."""
    return None if value is None or np.isnan(value) else round(float(value), 4)


def symbolic_blocks(section: dict) -> list[tuple]:
    """The Symbolic section of the report document."""
    blocks: list[tuple] = [("h2", "Symbolic (musical structure, runs vs the training windows)")]
    blocks.append(("p", "Figures defined in `eval/music_features.py`: onsets read on the 1/12-beat grid, shares "
                        "pooled over all notes/bars, self-similarity = Jaccard of the (step, pitch) sets of two "
                        "bars. Runs are cut into 4-bar windows like the training set; the last rows need whole "
                        f"runs. {section['training_windows']} training windows, {section['same_genre_windows']} "
                        "of them in the runs' genres."))
    rows = []
    for row in section["figures"]:
        name = row["name"]
        rows.append([row["label"], format_figure(name, row["runs"]), row["measured_on"],
                     format_figure(name, row["training_same_genres"]) if "training_missing" not in row
                     else row["training_missing"], format_figure(name, row["training_all"])])
    blocks.append(("table", ["figure", "runs", "runs measured on", "training (runs' genres)", "training (all)"],
                   rows))
    blocks.append(("h3", "Per run (whole runs)"))
    blocks.append(("table", ["run", *SYMBOLIC_PER_RUN],
                   [[run, *(format_figure(f, values[f]) for f in SYMBOLIC_PER_RUN)]
                    for run, values in section["runs"].items()]))
    if section["notes"]:
        blocks.append(("list", section["notes"]))
    return blocks


# ---------------------------------------------------------------- plots

def _plot_distances(distances: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    values = distances["generated_to_reference"] + distances["reference_to_reference"]
    bins = np.linspace(0, max(values) * 1.05 + 1e-9, 24)
    if distances["reference_to_reference"]:
        ax.hist(distances["reference_to_reference"], bins=bins, alpha=0.6, label="reference -> nearest other reference")
    ax.hist(distances["generated_to_reference"], bins=bins, alpha=0.6, label="generated -> nearest reference")
    ax.set_xlabel("distance between clip-mean embeddings (reference-std units)")
    ax.set_ylabel("clips")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_similarities(similarities: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    ax.hist(similarities, bins=np.linspace(0, 1, 21), color="tab:purple", alpha=0.8)
    ax.set_xlabel("note overlap with the nearest training window (1 = same notes)")
    ax.set_ylabel("generated 4-bar windows")
    ax.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


ROLE_COLOURS = {"drums": "tab:gray", "bass": "tab:blue", "melody": "tab:orange"}


def _roll(ax, window: dict[str, np.ndarray], title: str) -> None:
    from stemforge.symbolic.core.ticks import GRID_PER_BEAT

    for role, rows in window.items():
        for onset, duration, pitch in rows.tolist():
            ax.broken_barh([(onset / GRID_PER_BEAT, duration / GRID_PER_BEAT)], (pitch - 0.4, 0.8),
                           color=ROLE_COLOURS.get(role, "k"))
    for beat in range(0, 17, 4):
        ax.axvline(beat, color="0.85", lw=0.6, zorder=0)
    ax.set_xlim(0, 16)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("beat")


def _plot_piano_rolls(pairs: list[tuple[str, dict, str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 2.4 * len(pairs)), squeeze=False, sharey="row")
    for (gen_title, gen, ref_title, ref), (left, right) in zip(pairs, axes, strict=True):
        _roll(left, gen, gen_title)
        _roll(right, ref, ref_title)
        left.set_ylabel("pitch")
    fig.legend(handles=[Patch(color=c, label=r) for r, c in ROLE_COLOURS.items()], loc="upper center", ncol=3,
               fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (2.4 * len(pairs))))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _window_dict(rows: np.ndarray) -> dict[str, np.ndarray]:
    from stemforge.symbolic.training.window_store import CODE_ROLES

    return {CODE_ROLES[int(c)]: rows[rows[:, 0] == c, 1:].astype(np.int32) for c in np.unique(rows[:, 0])}


# ---------------------------------------------------------------- the report document

def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def _caveat(row: dict) -> str:
    """The short form of a FAD row's small-set warnings, for the table cell; the full
    warnings are listed under the table."""
    clips = min(row["n_generated_clips"], row["n_reference_clips"])
    side = "generated" if row["n_generated_clips"] <= row["n_reference_clips"] else "reference"
    if clips <= FEW_CLIPS:
        return f"only {clips} {side} clip(s): not a score, not comparable"
    if clips < MIN_CLIPS:
        return f"{clips} {side} clips (< {MIN_CLIPS}): rough"
    if row["warnings"]:
        return "see notes below"
    return ""


def report_blocks(report: dict) -> list[tuple]:
    """The document as blocks (kind, ...) rendered to Markdown and HTML alike."""
    blocks: list[tuple] = [("h1", "stemforge evaluation report")]
    inputs = report["inputs"]
    summary = [f"{len(inputs['runs'])} run(s) evaluated against "
               f"{inputs['reference']['kind'].replace('_', ' ')} reference `{inputs['reference']['path']}`"]
    if "model" in inputs:
        summary.append(f"model `{inputs['model']['path']}` (data sha256 `{str(inputs['model']['data_sha256'])[:16]}`)")
    if "data" in inputs:
        summary.append(f"dataset `{inputs['data']['path']}` (data sha256 `{str(inputs['data']['data_sha256'])[:16]}`)")
    runs_by_verdict = report["novelty"]["summary"]["runs"]
    flagged = [p["run"] for p in report["novelty"]["runs"] if p["verdict"] != "new"]
    summary.append("novelty: " + ", ".join(f"**{runs_by_verdict[v]}** {v}" for v in VERDICTS)
                   + f" of {runs_by_verdict['total']} run(s)" + (f" ({', '.join(flagged)}; see Novelty)" if flagged else ""))
    blocks.append(("list", summary))
    if report["warnings"]:
        blocks += [("h2", "Warnings"), ("list", report["warnings"])]

    blocks.append(("h2", "FAD (Frechet Audio Distance; lower = closer to the reference)"))
    blocks.append(("p", "Each embedding is its own table: numbers from different embeddings are not comparable. "
                        "CI is a 95% bootstrap interval over clips; FAD-inf extrapolates to infinitely many "
                        "generated frames. Two FADs of one embedding (two rows of a table here, or one row in the "
                        "reports of two sets of runs against the same reference) can be told apart only when "
                        "their intervals do not overlap; the sentences under each table say which can."))
    comparisons = report.get("fad_comparisons", {})
    for name, table in report["fad"].items():
        meta = next(e for e in inputs["embeddings"] if e["name"] == name)
        blocks.append(("h3", f"embedding: {name} ({meta['dim']}-dim, {meta['sample_rate']} Hz, "
                             f"{'mono' if meta['channels'] == 1 else 'stereo'}; weights: {meta['weights'] or 'none'})"))
        rows, notes = [], defaultdict(list)  # message -> roles, so each caveat is said once
        for role, r in table.items():
            if r.get("fad") is None:
                rows.append([role, "-", "-", "-", "-", "-", ""])
                notes[r.get("missing")].append(role)
                continue
            ci = f"{_fmt(r['ci_low'])} - {_fmt(r['ci_high'])}" if r["ci_low"] is not None else "-"
            rows.append([role, _fmt(r["fad"]), ci, _fmt(r["fad_inf"]),
                         f"{r['n_generated_clips']} / {r['n_generated_frames']}",
                         f"{r['n_reference_clips']} / {r['n_reference_frames']}", _caveat(r)])
            for warning in r["warnings"]:
                notes[warning].append(role)
        blocks.append(("table", ["role", "FAD", "95% CI", "FAD-inf", "generated clips / frames",
                                 "reference clips / frames", "caveat"], rows))
        if notes:
            blocks.append(("list", [f"{', '.join(roles)}: {message}" for message, roles in notes.items()]))
        if name in comparisons.get("roles", {}):
            blocks.append(("list", comparison_sentences(comparisons["roles"][name], "roles")))
        if name in report["plots"].get("distances", {}):
            blocks.append(("img", report["plots"]["distances"][name], f"clip distances ({name}, mix)"))
    if report["fad_by_genre"]:
        blocks.append(("h3", "FAD per genre (mix)"))
        rows, notes = [], defaultdict(list)
        for genre, per in report["fad_by_genre"].items():
            for name, r in per.items():
                ci = f"{_fmt(r['ci_low'])} - {_fmt(r['ci_high'])}" if r["ci_low"] is not None else "-"
                rows.append([genre, name, _fmt(r["fad"]), ci, str(r["n_generated_clips"]),
                             f"{r['against']} ({r['n_reference_clips']} clips)", _caveat(r)])
                for warning in r["warnings"]:
                    notes[warning].append(f"{genre} ({name})")
        blocks.append(("table", ["genre", "embedding", "FAD", "95% CI", "generated clips", "compared with",
                                 "caveat"], rows))
        if notes:
            blocks.append(("list", [f"{', '.join(where)}: {message}" for message, where in notes.items()]))
        for name, compared in comparisons.get("genres", {}).items():
            blocks.append(("list", [f"{name}: {sentence}" for sentence in comparison_sentences(compared, "genres")]))

    novelty = report["novelty"]
    limits = novelty["thresholds"]
    blocks.append(("h2", "Novelty (is anything copied from the training set?)"))
    blocks.append(("p", "Each part is put on the token grid, read as a loop from every grid step of its first bar "
                        f"({limits['shifts_per_bar']} shifts of 1/{limits['grid_per_beat']} beat) and every bar's "
                        "SHA-256 digest (onsets and pitches; pitched parts relative to the bar's lowest note, so "
                        "any transposition matches) is looked up in the training index. A match is a run of "
                        "consecutive bars found at consecutive bars of one training part. Verdict per part: "
                        f"**copied** at {limits['copy_bars']} or more bars, **near copy** at {limits['near_copy_bars']}"
                        f", both only when the matched bars that no other training song holds have at least "
                        f"{limits['min_copy_notes']} notes (a bar {limits['common_songs']} or more songs share, "
                        "a plain backbeat, is a pattern, not a copy); "
                        "**new** otherwise. A run takes its strongest part's verdict; 'all' is the parts together."))
    counts = novelty["summary"]
    blocks.append(("table", ["", *VERDICTS, "total"],
                   [["runs", *(str(counts["runs"][v]) for v in VERDICTS), str(counts["runs"]["total"])]]
                   + [[part, *(str(c[v]) for v in VERDICTS), str(c["total"])] for part, c in counts["parts"].items()]))
    rows = []
    for piece in novelty["runs"]:
        strongest = _strongest_match(piece)
        near = piece["nearest"]
        rows.append([piece["run"], piece["genre"] or "-", f"**{piece['verdict']}**",
                     ", ".join(f"{role} {part['verdict']}" for role, part in piece["parts"].items()),
                     _describe_match(*strongest) if strongest else "-",
                     _fmt(near["similarity"]) if near else "-",
                     f"{near['training']['source']} bar {near['training']['start_bar'] + 1}" if near else "-"])
    blocks.append(("table", ["run", "genre", "verdict", "parts", "longest match", "nearest window overlap",
                             "nearest training window"], rows))
    grids = sorted({piece["grid"] for piece in novelty["runs"]})
    blocks.append(("list", [f"notes compared: {g}" for g in grids] + novelty["notes"]))
    if novelty["model_mismatch"]:
        blocks.append(("h3", "Runs made with another model's data"))
        blocks.append(("list", [f"{m['run']}: run data sha256 `{str(m['run_data_sha256'])[:16]}` vs index "
                                f"`{str(m['index_data_sha256'])[:16]}`" for m in novelty["model_mismatch"]]))
    blocks.append(("p", "Nearest training window: the stored 4-bar training window with the highest note overlap "
                        "(Jaccard of (role, onset, pitch), best transposition), read at the shift of the run's "
                        "strongest match: a graded 'how close' next to the verdict."))
    if "similarity" in report["plots"]:
        blocks.append(("img", report["plots"]["similarity"], "note overlap with the nearest training window"))
    if "piano_rolls" in report["plots"]:
        blocks.append(("img", report["plots"]["piano_rolls"],
                       "closest training window (right) next to the generated window (left)"))
    if report["novelty_by_genre"]:
        blocks.append(("h3", "Novelty per genre"))
        rows = [[g, str(v["runs"]), *(str(v["verdicts"][verdict]) for verdict in VERDICTS)]
                for g, v in report["novelty_by_genre"].items()]
        blocks.append(("table", ["genre", "runs", *VERDICTS], rows))

    if "symbolic" in report:
        blocks += symbolic_blocks(report["symbolic"])

    blocks.append(("h2", "Inputs (to reproduce this report)"))
    rows = [[r["dir"], r["genre"] or "-", str(r["bpm"]), r["run_json_sha256"][:16],
             str(r["model_sha256"] or "-")[:16]] for r in inputs["runs"]]
    blocks.append(("table", ["run folder", "genre", "bpm", "run.json sha256", "model sha256"], rows))
    items = [f"reference: {json.dumps(inputs['reference'])}", f"index: {json.dumps(inputs['index'])}",
             f"embeddings: {json.dumps(inputs['embeddings'])}",
             f"bootstrap rounds: {inputs['bootstrap']}, seed: {inputs['seed']}"]
    cache = inputs.get("cache") or {}
    if cache.get("enabled"):
        items.append(f"frames cache: `{cache['dir']}` ({cache['hits']} entries read, {cache['written']} written; "
                     "the cache only saves time, the numbers are the same without it)")
    else:
        items.append("frames cache: off (--no-cache)")
    blocks.append(("list", items))
    return blocks


def render_markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + block[1], ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "list":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{block[2]}]({block[1]})", ""]
    return "\n".join(out)


def _inline_md(text: str) -> str:
    """Escape, then the two Markdown marks the blocks use: `code` and **bold**."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)


def render_html(blocks: list[tuple], directory: Path) -> str:
    """One file: styles inline, every plot a base64 PNG data URI."""
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline_md(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_md(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline_md(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                           for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((directory / block[1]).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "font-size:.9em;text-align:left}th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;"
             "padding:0 .2em}figcaption{font-size:.85em;color:#555}")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>stemforge evaluation report"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------- run_eval

def run_eval(request: EvalRequest, progress: bool = True) -> dict:
    """Evaluate run folders; write report.json/.md/.html (+ plots/) into `request.out_dir`
    atomically and return the report.json content."""
    _check_request(request)
    started = time.perf_counter()
    run_dirs = [Path(d) for d in request.run_dirs]
    runs = [read_run(d) for d in run_dirs]
    model_dir = request.model_dir
    if model_dir is None and request.data_dir is None:
        model_dir = model_of_runs(runs)
        request = replace(request, model_dir=model_dir)
    training = resolve_training(model_dir, request.data_dir)
    warnings: list[str] = []

    if request.reference is not None:
        reference_source = find_reference(Path(request.reference), "folder")
    elif training.reference_midi is not None:
        reference_source = find_reference(training.reference_midi, "rendered_midi")
    else:
        home = request.data_dir or request.model_dir
        raise EvalError(f"reference: {home}/reference_midi is missing; run `pipeline prepare` again or pass "
                        "--reference DIR (your stems/mixes or MIDI)")
    embedders = [build_embedding(name, request.embedding_weights.get(name)) for name in request.embeddings]
    try:
        index = NoveltyIndex.load(training.index_dir)
    except IndexVersionError as error:
        raise EvalError(str(error)) from None

    cache = FrameCache.open(request.cache_dir, request.use_cache)
    generated_sources = [s for d, r in zip(run_dirs, runs, strict=True) for s in run_sources(d, r)]
    generated = embed_sources(generated_sources, embedders, cache, "embed generated", progress, warnings)
    desc = "render + embed reference" if reference_source.midi_files else "embed reference"
    reference = embed_sources(reference_sources(reference_source, runs, warnings), embedders, cache, desc, progress,
                              warnings)
    if not reference.labels:
        raise EvalError(f"reference: no usable audio in {reference_source.path}; every file was unreadable")
    warnings.extend(cache.notes)

    genres = sorted({r.conditions.genre or "?" for r in runs})
    fad, fad_by_genre = fad_tables(generated, reference, embedders, request, genres)
    comparisons = fad_comparisons(fad, fad_by_genre)

    # novelty
    store_notes: list[str] = []
    store = load_store(training.index_dir, training.reference_midi, store_notes)
    pieces, mismatches = [], []
    run_pieces: list[RunPiece] = []
    for run_dir, run in _progress(list(zip(run_dirs, runs, strict=True)), len(runs), "novelty", progress, "run"):
        tracks = run_tracks(run_dir, run)
        run_pieces.append(run_piece(run_dir, run, tracks))
        grid_tracks, grid = run_grid_tracks(run, tracks, TICKS_PER_BEAT)
        piece = piece_novelty(grid_tracks, TICKS_PER_BEAT, run.conditions.bars, index, store, grid)
        piece["run"], piece["genre"] = run_dir.name, run.conditions.genre
        pieces.append(piece)
        run_data = run.model.data_sha256
        if training.data_sha256 and run_data != training.data_sha256:
            mismatches.append({"run": run_dir.name, "run_data_sha256": run_data,
                               "index_data_sha256": training.data_sha256})
    if mismatches:
        warnings.append(f"{len(mismatches)} run(s) were made with a model trained on other data than the index "
                        "describes; their novelty is measured against data they did not learn from")
    flagged = [p for p in pieces if p["verdict"] != "new"]
    if flagged:
        warnings.append(f"novelty: {len(flagged)} run(s) hold training material: "
                        + ", ".join(f"{p['run']} ({p['verdict']})" for p in flagged))
    novelty = {
        "summary": summarize(pieces),
        "thresholds": thresholds(),
        "runs": [_json_piece(p) for p in pieces],
        "model_mismatch": mismatches,
        "index_bars": len(index),
        "training_windows": len(store) if store is not None else 0,
        "notes": store_notes,
    }
    novelty_by_genre = {}
    if len(genres) > 1:
        for genre in genres:
            subset = [p for p in pieces if (p["genre"] or "?") == genre]
            novelty_by_genre[genre] = {"runs": len(subset), "verdicts": summarize(subset)["runs"]}

    for name, table in fad.items():
        small = [role for role, r in table.items() if r.get("warnings")]
        if small:
            warnings.append(f"FAD ({name}) for {', '.join(small)}: the sets are small, so the numbers are rough; "
                            "see the notes under the table")

    symbolic = symbolic_section(run_pieces, store, cache)  # before the cache's counters are read
    report: dict = {
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inputs": {
            "runs": [{"dir": str(d.resolve()), "run_json_sha256": file_sha256(d / MANIFEST_NAME),
                      "genre": r.conditions.genre, "bpm": r.conditions.bpm, "bars": r.conditions.bars,
                      "seed": r.seed, "model_sha256": r.model.sha256,
                      "model_data_sha256": r.model.data_sha256}
                     for d, r in zip(run_dirs, runs, strict=True)],
            **training.inputs,
            "reference": {**reference_source.describe(), "sha256": _reference_sha(reference_source),
                          "clips": {role: reference.count(role) for role in CLIP_ROLES}},
            "embeddings": [{"name": e.name, "weights": e.weights, "weights_sha256": weights_identity(e),
                            "sample_rate": e.sample_rate, "channels": e.channels, "dim": e.dim,
                            "frame_seconds": e.frame_seconds} for e in embedders],
            "bootstrap": request.bootstrap,
            "seed": request.seed,
            "cache": cache.describe(),
        },
        "fad": fad,
        "fad_by_genre": fad_by_genre,
        "fad_comparisons": comparisons,
        "novelty": novelty,
        "novelty_by_genre": novelty_by_genre,
        "symbolic": symbolic,
        "distances": {},
        "warnings": warnings,
        "plots": {},
    }

    out_dir = Path(request.out_dir)
    try:
        with atomic_folder(out_dir) as tmp:
            (tmp / "plots").mkdir(parents=True)
            _write_plots(report, generated, reference, embedders, pieces, store, tmp)
            report["seconds"] = round(time.perf_counter() - started, 2)
            (tmp / "report.json").write_text(json.dumps(report, indent=1))
            blocks = report_blocks(report)
            (tmp / "report.md").write_text(render_markdown(blocks))
            (tmp / "report.html").write_text(render_html(blocks, tmp))
    except FolderExistsError as error:
        raise EvalError(f"--out: {out_dir} appeared while evaluating; choose a new folder") from error
    return report


def _reference_sha(source: ReferenceSource) -> str:
    return _sha256_tree(source.audio_files + source.midi_files, source.path)


def _write_plots(report: dict, generated: EmbeddedSet, reference: EmbeddedSet, embedders: list[Embedding],
                 pieces: list[dict], store: WindowNotes | None, directory: Path) -> None:
    plots: dict = {"distances": {}}
    for embedder in embedders:
        gen, ref = generated.select(embedder.name, MIX), reference.select(embedder.name, MIX)
        if gen and ref:
            distances = clip_distances(gen, ref)
            report["distances"][embedder.name] = distances
            name = f"plots/distances_{embedder.name}.png"
            _plot_distances(distances, f"{embedder.name}: how far each mix is from the nearest reference mix",
                            directory / name)
            plots["distances"][embedder.name] = name
    similarities = [s for p in pieces if p["nearest"] for s in p["nearest"]["window_similarities"]]
    if similarities:
        _plot_similarities(similarities, directory / "plots/similarity.png")
        plots["similarity"] = "plots/similarity.png"
    ranked = sorted((p for p in pieces if p["nearest"]), key=lambda p: -p["nearest"]["similarity"])
    if ranked and store is not None:
        pairs = []
        for piece in ranked[:MAX_PIANO_ROLLS]:
            near = piece["nearest"]
            gen = _window_dict(piece["windows"][near["bar"]])
            train = store.window(near["training_window"])
            pairs.append((f"{piece['run']} bars {near['bar'] + 1}-{near['bar'] + 4} (generated)", gen,
                          f"{near['training']['source']} bar {near['training']['start_bar'] + 1} "
                          f"(overlap {near['similarity']:.2f}, transposed {near['transposition']:+d})", train))
        _plot_piano_rolls(pairs, directory / "plots/piano_rolls.png")
        plots["piano_rolls"] = "plots/piano_rolls.png"
    report["plots"] = plots
