"""Fine-tuning the shipped composer on a user's own MIDI: does it come to sound like them,
without copying them, in minutes? (`pipeline train DATA --init default [--lora]`)

    python bench/finetune.py [--data ../shared/data] [--pieces 100] [--out figures.json]

The user's material is real music the default model never trained on (read from its index:
the Groove MIDI performances and Freedoom songs its corpus took): Groove MIDI drummer3's rock
grooves and the Freedoom songs outside its training set, all labelled rock, split by source
(each file on one side) into a tuning set and a held-out set.

1. Fine-tunes the default model on the tuning set with the shipped configs, full and LoRA,
   timing each in wall seconds (on a shared machine, the other users' share) and CPU-seconds
   of the process and its threads: on 2 free cores it takes between CPU/2 and CPU seconds.
2. Composes --pieces "rock" pieces (8 bars) with the default and each fine-tuned model and
   measures the distance of each set to the held-out set: 16-step drum onset histograms
   (kick, snare, cymbals), key-relative pitch classes and interval distributions of bass and
   melody (Jensen-Shannon distance, 0 = same), notes per bar per part (relative difference).
   The fine-tune should close at least half of the default's gap on each.
3. Checks the fine-tuned pieces for copies (novelty against the fine-tuned model's index,
   which holds both training sets): how many copy windows of the user's data.
4. Other genres: a few pieces of other genres from each model, measured against the
   default model's own training windows of that genre (index/windows.npz).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a file, this folder would shadow the `eval` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from stemforge.eval.music_features import group_histograms, histogram_distance, line  # noqa: E402
from stemforge.eval.novelty import assess_grid  # noqa: E402
from stemforge.eval.report import store_tracks  # noqa: E402
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.decoding.model import DEFAULT_MODEL_DIR, load_composer  # noqa: E402
from stemforge.symbolic.music.arrangement import Note  # noqa: E402
from stemforge.symbolic.music.canonical import NoveltyIndex  # noqa: E402
from stemforge.symbolic.music.conditions import build_conditions, model_genre_for  # noqa: E402
from stemforge.symbolic.music.keys import Key, parse_key  # noqa: E402
from stemforge.symbolic.runtime.sampling_settings import SamplingSettings  # noqa: E402
from stemforge.symbolic.training.prepare import PrepareConfig, estimate_key, prepare_dataset  # noqa: E402
from stemforge.symbolic.training.training_index import load_training_pieces  # noqa: E402
from stemforge.symbolic.training.window_store import load_window_notes  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
USER_DRUMMER = "drummer3"
HELD_OUT_SHARE = 0.3
OTHER_GENRES = ("funk", "house", "jazz", "lofi", "techno", "pop")
FIGURES = ("drum onsets", "pitch classes", "intervals", "notes per bar")


# ---------------------------------------------------------------- the user's material

def user_files(data: Path, model: Path) -> list[tuple[Path, str]]:
    """(file, source id) of the material the default model never trained on."""
    groups = json.loads((model / "index" / "index.json").read_text())["groups"]
    seen = {g.split(":", 1)[1] for g in groups}
    with open(data / "gmd" / "info.csv", newline="") as handle:
        grooves = [r for r in csv.DictReader(handle) if r["drummer"] == USER_DRUMMER and r["beat_type"] == "beat"
                   and r["time_signature"] == "4-4" and r["style"].startswith("rock") and r["id"] not in seen]
    out = [(data / "gmd" / r["midi_filename"], f"gmd:{r['id']}") for r in grooves]
    for path in sorted((data / "freedoom").rglob("*.mid")):
        name = str(path.relative_to(data / "freedoom")).removesuffix(".mid")
        if name not in seen:
            out.append((path, f"freedoom:{name}"))
    return out


def held_out(source: str) -> bool:
    return int(hashlib.sha256(source.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


def link_folder(files: list[tuple[Path, str]], folder: Path) -> Path:
    """The files under rock/<their source folders> (the genre from the folder name)."""
    for path, source in files:
        target = folder / "rock" / source.replace(":", "_").replace("/", "_")
        target = target.with_suffix(".mid")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
    return folder


# ---------------------------------------------------------------- figures

@dataclass
class Piece:
    tracks: dict[str, list[Note]]
    bars: int
    key: Key | None


def _pitch_classes(piece: Piece) -> np.ndarray:
    histogram = np.zeros(12)
    if piece.key is None:
        return histogram
    tonic = piece.key.tonic + (3 if piece.key.mode == "minor" else 0)  # relative to the major scale
    for role in ("bass", "melody"):
        for note in piece.tracks.get(role, []):
            histogram[(note.pitch - tonic) % 12] += 1
    return histogram


def _intervals(notes: list[Note], lowest: bool) -> np.ndarray:
    pitches = [n.pitch for n in line(notes, TICKS_PER_BEAT, lowest)]
    moves = np.clip(np.diff(pitches), -12, 12) + 12 if len(pitches) > 1 else np.zeros(0, dtype=int)
    return np.bincount(np.asarray(moves, dtype=int), minlength=25).astype(float)


def pooled(pieces: list[Piece]) -> dict:
    """The figures' distributions summed over a set of pieces."""
    drums = {g: np.zeros(16) for g in ("kick", "snare", "cymbal")}
    pcs, intervals = np.zeros(12), {"bass": np.zeros(25), "melody": np.zeros(25)}
    notes, bars = {r: 0 for r in ("drums", "bass", "melody")}, {r: 0 for r in ("drums", "bass", "melody")}
    for piece in pieces:
        for group, histogram in group_histograms(piece.tracks.get("drums", []), TICKS_PER_BEAT).items():
            if group in drums:
                drums[group] += histogram
        pcs += _pitch_classes(piece)
        for role in ("bass", "melody"):
            intervals[role] += _intervals(piece.tracks.get(role, []), lowest=role == "bass")
        for role in notes:
            if piece.tracks.get(role):
                notes[role] += len(piece.tracks[role])
                bars[role] += piece.bars
    return {"drums": drums, "pcs": pcs, "intervals": intervals,
            "notes_per_bar": {r: notes[r] / bars[r] for r in notes if bars[r]}}


def distances(a: dict, b: dict) -> dict[str, float]:
    def mean(values: list[float]) -> float:
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    return {
        "drum onsets": mean([histogram_distance(a["drums"][g], b["drums"][g]) for g in a["drums"]]),
        "pitch classes": histogram_distance(a["pcs"], b["pcs"]),
        "intervals": mean([histogram_distance(a["intervals"][r], b["intervals"][r]) for r in a["intervals"]]),
        "notes per bar": mean([abs(a["notes_per_bar"][r] - b["notes_per_bar"][r]) / b["notes_per_bar"][r]
                               for r in b["notes_per_bar"] if r in a["notes_per_bar"]]),
    }


def _estimated_key(tracks: dict[str, list[Note]]) -> Key | None:
    """The key of a piece's bass and melody (Krumhansl-Kessler), the same way on every side:
    pitch classes are measured relative to it."""
    key = estimate_key([n for r in ("bass", "melody") for n in tracks.get(r, [])])
    return None if key == "none" else parse_key(key)


def user_pieces(data_dir: Path) -> list[Piece]:
    pieces = []
    for piece in load_training_pieces(data_dir / "train_pieces.npz"):
        end = max((n.start for notes in piece.tracks.values() for n in notes), default=0)
        pieces.append(Piece(piece.tracks, end // TICKS_PER_BAR + 1, _estimated_key(piece.tracks)))
    return pieces


# ---------------------------------------------------------------- composing

def compose_set(model: Path, prompt: str, count: int, first_seed: int = 0) -> list[tuple[Piece, dict]]:
    """`count` pieces of `prompt` (8 bars), each as (figures piece on the token grid, grid tracks)."""
    from stemforge.symbolic.runtime.compose import compose_takes

    composer = load_composer(model)
    out = []
    for start in range(first_seed, first_seed + count, 8):
        takes = []
        for seed in range(start, min(start + 8, first_seed + count)):
            takes.append((build_conditions(prompt, bars=8, seed=seed), seed))
        genre, _ = model_genre_for(takes[0][0].genre, composer.genres, composer.genre_windows)
        for composed in compose_takes(composer, takes, SamplingSettings(), model_genre=genre):
            grid = {r: t.notes for r, t in composed.arrangement.grid_tracks.items()}
            out.append((Piece(grid, 8, _estimated_key(grid)), grid))
    return out


def training_windows(model: Path, genre: str) -> list[Piece]:
    store = load_window_notes(model / "index" / "windows.npz")
    pieces = []
    for i in range(len(store)):
        if store.sources[int(store.source_ids[i])].split("/")[0] == genre:
            tracks = store_tracks(store, i)
            pieces.append(Piece(tracks, 4, _estimated_key(tracks)))
    return pieces


# ---------------------------------------------------------------- timing

def timed(function, *args, **kwargs) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process and its threads)."""
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = function(*args, **kwargs)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return result, time.perf_counter() - started, (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--pieces", type=int, default=100, help="pieces composed per model")
    parser.add_argument("--other-pieces", type=int, default=8, help="pieces per other genre per model")
    parser.add_argument("--steps", type=int, default=None, help="fine-tune steps (default: the shipped configs')")
    parser.add_argument("--work", type=Path, help="keep the data and models here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not (args.data / "gmd" / "info.csv").is_file() or not (args.data / "freedoom").is_dir():
        print(f"skipped: {args.data} has no gmd/ and freedoom/")
        return 0
    from stemforge.symbolic.training.train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="stemforge-bench-finetune-") as tmp:
        work = args.work or Path(tmp)
        files = user_files(args.data, args.model)
        tune = [f for f in files if not held_out(f[1])]
        rest = [f for f in files if held_out(f[1])]
        print(f"user material the default never trained on: {len(files)} files ({len(tune)} to tune on, "
              f"{len(rest)} held out, split by source)")
        (tune_data, prepare_wall, _) = timed(prepare_dataset, link_folder(tune, work / "tune_midi"), work / "tune",
                                              config=PrepareConfig(), progress=False)
        prepare_dataset(link_folder(rest, work / "held_midi"), work / "held",
                        config=PrepareConfig(valid_fraction=0.0, transpositions=[]), progress=False)
        print(f"prepared the tuning set in {prepare_wall:.0f} s: {tune_data['windows']['train']} training windows, "
              f"{tune_data['tokens']['train']} tokens")

        figures: dict = {"files": {"tune": len(tune), "held_out": len(rest)}, "fine_tunes": {}}
        models = {"default": args.model}
        for name, config_name in (("full", "finetune"), ("lora", "finetune_lora")):
            config = TrainConfig.load(config_name)
            meta, wall, cpu = timed(train, work / "tune", work / name, config, steps=args.steps, init="default",
                                    progress=True)
            steps = meta["steps"]
            figures["fine_tunes"][name] = {"steps": steps, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                           "prepare_wall_s": round(prepare_wall, 1),
                                           "loss_before": round(meta["fine_tune_losses"]["before"], 3),
                                           "loss_after": round(meta["fine_tune_losses"]["after"], 3)}
            print(f"fine-tune {name}: {steps} steps in {wall:.0f} s wall on this (shared) machine, {cpu:.0f} CPU-s: on "
                  f"2 free cores {cpu / 2 / 60:.1f}-{cpu / 60:.1f} min (the CPU-seconds over 2 cores, or over one); "
                  f"validation loss on the tuning data {meta['fine_tune_losses']['before']:.3f} -> "
                  f"{meta['fine_tune_losses']['after']:.3f}")
            models[name] = work / name

        user = pooled(user_pieces(work / "held"))
        floor = distances(pooled(user_pieces(work / "tune")), user)
        composed = {name: compose_set(path, "rock", args.pieces) for name, path in models.items()}
        gaps = {name: distances(pooled([p for p, _ in pieces]), user) for name, pieces in composed.items()}
        print(f"\n{args.pieces} 'rock' pieces per model against the {len(rest)} held-out files "
              "(Jensen-Shannon distance; notes per bar: relative difference)")
        print("| figure | default | full | LoRA | gap closed (full) | gap closed (LoRA) | tune set vs held out |")
        print("|---|---|---|---|---|---|---|")
        closed = {}
        for figure in FIGURES:
            closed[figure] = {name: 1 - gaps[name][figure] / gaps["default"][figure] for name in ("full", "lora")}
            print(f"| {figure} | {gaps['default'][figure]:.3f} | {gaps['full'][figure]:.3f} | "
                  f"{gaps['lora'][figure]:.3f} | {closed[figure]['full']:.0%} | {closed[figure]['lora']:.0%} | "
                  f"{floor[figure]:.3f} |")
        figures["distances"], figures["gap_closed"], figures["floor"] = gaps, closed, floor

        figures["copies"] = {}
        for name in ("full", "lora"):
            index = NoveltyIndex.load(models[name] / "index")
            verdicts = [assess_grid(grid, TICKS_PER_BEAT, 8, index) for _, grid in composed[name]]
            of_user = sum(1 for v in verdicts if v.verdict != "new" and any(
                p.match and p.verdict != "new" and not p.match.source.startswith("init:") for p in v.parts.values()))
            flagged = sum(1 for v in verdicts if v.verdict != "new")
            figures["copies"][name] = {"pieces": len(verdicts), "copies_of_user_data": of_user, "flagged": flagged}
            print(f"novelty, {name}: {of_user} of {len(verdicts)} pieces copy the user's data ({flagged} flagged "
                  "against either training set)")

        print("\nother genres: distance to the default model's own training windows of the genre (lower = closer)")
        print("| genre | figure | default | full | LoRA |\n|---|---|---|---|---|")
        figures["other_genres"] = {}
        for genre in OTHER_GENRES:
            reference = pooled(training_windows(args.model, genre))
            row = {name: distances(pooled([p for p, _ in compose_set(path, genre, args.other_pieces, 1000)]),
                                   reference) for name, path in models.items()}
            figures["other_genres"][genre] = row
            for figure in FIGURES:
                print(f"| {genre} | {figure} | {row['default'][figure]:.3f} | {row['full'][figure]:.3f} | "
                      f"{row['lora'][figure]:.3f} |")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
