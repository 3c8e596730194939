"""`pipeline eval` on this machine: a second eval from the cache vs the first, and the novelty
check against copies of training material vs fresh runs.

    python bench/eval.py [--model MODEL_DIR] [--runs 4] [--copies 20] [--fresh 48] [--out DIR]

1. cache: makes --runs runs of "lofi 80bpm" with stems (8 bars), evaluates them with an empty
   frames cache (renders and embeds the model's reference), then again from the cache; prints
   both times, their ratio, and whether the two reports' numbers are identical.
2. novelty: takes --copies stored 4-bar training windows of the model (index/windows.npz, its
   training set's own notes), pastes each into the first bars of a fresh run exactly,
   transposed, one to fifteen 16ths late and humanized (+-20 ms, velocities), and counts the
   verdicts; the fresh runs alone must all be "new". Nothing here needs ../shared/data.
3. played copies (needs ../shared/data/gmd; skipped without it): `pipeline prepare` on
   --gmd-files Groove MIDI performances of four drummers as played (a user's own grooves),
   then 8-bar copies of them read from the raw files: as played, humanized (+-20 ms, +-20
   velocity), a 16th late, both; other drummers' performances (played, not copies) and the
   fresh runs must not be flagged (the same drummers' other takes are counted too: a
   drummer replays grooves across takes, and those count as the same music); runs of a tiny model trained on that data, seeded with 4-bar
   clips of its training files (as played), must say "copied" for the seeded bars. And 40
   raw GMD performances the shipped model's corpus took its grooves from, against its index.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

# Run as a file, this folder would shadow the `eval` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import symusic  # noqa: E402

from stemforge.eval.novelty import (  # noqa: E402
    VERDICTS,
    assess_grid,
    assess_tracks,
    piece_novelty,
    run_grid_tracks,
)
from stemforge.eval.reference import run_tracks  # noqa: E402
from stemforge.eval.report import EvalRequest, run_eval, store_tracks  # noqa: E402
from stemforge.pipeline.run import RunRequest, run  # noqa: E402
from stemforge.symbolic.core.ticks import TICKS_PER_BAR, TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.decoding.model import DEFAULT_MODEL_DIR  # noqa: E402
from stemforge.symbolic.music.arrangement import Note  # noqa: E402
from stemforge.symbolic.music.canonical import NoveltyIndex  # noqa: E402
from stemforge.symbolic.runtime.run_manifest import RunManifest  # noqa: E402
from stemforge.symbolic.training.window_store import load_window_notes  # noqa: E402

GENRES = ("lofi", "hiphop", "house", "techno", "funk", "rock", "jazz", "pop", "trap", "dnb", "reggae", "soul")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
USER_DRUMMERS = ("drummer1", "drummer5", "drummer7", "drummer8")  # the "user" of the played-copies bench


def make_runs(folder: Path, prompts: list[str], model: Path, stems: bool) -> list[Path]:
    dirs = []
    for i, prompt in enumerate(prompts):
        out = folder / f"run{i:02d}"
        run(RunRequest(prompt=prompt, bars=8, seed=100 + i, out=out, stems=stems, model=model))
        dirs.append(out)
    return dirs


def bench_cache(model: Path, runs: int, work: Path) -> dict:
    run_dirs = make_runs(work / "cache_runs", ["lofi 80bpm"] * runs, model, stems=True)
    cache = work / "cache"
    times, reports = [], []
    for attempt in ("first (empty cache)", "second (from the cache)"):
        started = time.perf_counter()
        report = run_eval(EvalRequest(run_dirs, work / f"report{len(times)}", model_dir=model, cache_dir=cache),
                          progress=False)
        times.append(time.perf_counter() - started)
        reports.append(report)
        print(f"eval of {runs} runs, {attempt}: {times[-1]:.1f} s  (cache: {report['inputs']['cache']['hits']} hits, "
              f"{report['inputs']['cache']['written']} written)")
    same = all(reports[0][k] == reports[1][k] for k in ("fad", "fad_by_genre", "symbolic")) and (
        reports[0]["novelty"]["summary"] == reports[1]["novelty"]["summary"])
    print(f"second / first: {times[1] / times[0]:.3f} ({times[0] / times[1]:.1f}x faster); numbers identical: {same}")
    return {"runs": runs, "first_s": round(times[0], 2), "second_s": round(times[1], 2),
            "ratio": round(times[1] / times[0], 4), "identical": same}


def _cut(tracks: dict[str, list[Note]], bars: int, shift: int = 0) -> dict[str, list[Note]]:
    end = bars * TICKS_PER_BAR
    return {r: [Note(n.start + shift, n.duration, n.pitch, n.velocity) for n in notes if n.start + shift < end]
            for r, notes in tracks.items()}


def _transpose(tracks: dict[str, list[Note]], semitones: int) -> dict[str, list[Note]]:
    return {r: [Note(n.start, n.duration, n.pitch + (0 if r == "drums" else semitones), n.velocity) for n in notes]
            for r, notes in tracks.items()}


def _humanize(tracks: dict[str, list[Note]], bpm: float, rng: random.Random) -> dict[str, list[Note]]:
    jitter = round(0.020 * bpm / 60 * TICKS_PER_BEAT)  # 20 ms in ticks
    return {r: [Note(max(0, n.start + rng.randint(-jitter, jitter)), max(10, n.duration + rng.randint(-jitter, jitter)),
                     n.pitch, max(1, min(127, n.velocity + rng.randint(-20, 20)))) for n in notes]
            for r, notes in tracks.items()}


def _splice(copy: dict[str, list[Note]], fresh: dict[str, list[Note]], copied_bars: int) -> dict[str, list[Note]]:
    """The copied bars, then the fresh run's notes after them."""
    end = copied_bars * TICKS_PER_BAR
    return {r: sorted(copy.get(r, []) + [n for n in fresh.get(r, []) if n.start >= end])
            for r in set(copy) | set(fresh)}


def print_verdicts(table: dict[str, Counter], last: str, wanted: Callable[[str, Counter], int]) -> None:
    """A markdown table of verdict counts per kind of piece, with how many came out as wanted."""
    print("| what | " + " | ".join(VERDICTS) + f" | {last} |\n|---|" + "---|" * (len(VERDICTS) + 1))
    for kind, counts in table.items():
        print(f"| {kind} | " + " | ".join(str(counts[v]) for v in VERDICTS)
              + f" | {wanted(kind, counts)}/{sum(counts.values())} |")


def bench_novelty(model: Path, copies: int, fresh_runs: int, work: Path) -> dict:
    index = NoveltyIndex.load(model / "index")
    store = load_window_notes(model / "index" / "windows.npz")
    rng = random.Random(0)
    full = [i for i in range(len(store)) if len(store.window(i)) == 3]
    chosen = rng.sample(full, min(copies, len(full)))
    fresh_dirs = make_runs(work / "fresh_runs", [GENRES[i % len(GENRES)] for i in range(fresh_runs)], model,
                           stems=False)
    fresh = []
    for folder in fresh_dirs:
        manifest = RunManifest.read(folder)
        grid, how = run_grid_tracks(manifest, run_tracks(folder, manifest), TICKS_PER_BEAT)
        fresh.append((grid, how, manifest.conditions.bpm))
    table: dict[str, Counter] = defaultdict(Counter)
    parts: dict[str, Counter] = defaultdict(Counter)
    seconds = []

    def check(kind: str, tracks: dict[str, list[Note]], grid: str | None = None) -> None:
        started = time.perf_counter()
        result = (assess_grid(tracks, TICKS_PER_BEAT, 8, index, grid) if grid
                  else assess_tracks(tracks, TICKS_PER_BEAT, 8, index))
        seconds.append(time.perf_counter() - started)
        table[kind][result.verdict] += 1
        for role, part in result.parts.items():
            parts[kind][f"{role} {part.verdict}"] += 1

    for n, window in enumerate(chosen):
        training = store_tracks(store, window)  # 4 bars of training notes, on the grid
        base, _, bpm = fresh[n % len(fresh)]
        check("exact (4 copied bars, then new)", _splice(training, base, 4))
        check("transposed", _splice(_transpose(training, rng.choice([-5, -3, -2, 2, 3, 5])), base, 4))
        for sixteenths in range(1, 16):
            check("shifted 1-15 16ths", _splice(_cut(training, 5, sixteenths * TICKS_PER_BEAT // 4), base, 5))
        check("humanized (+-20 ms)", _splice(_humanize(training, bpm, rng), base, 4))
        check("shifted + transposed + humanized", _splice(_humanize(_transpose(
            _cut(training, 5, rng.randint(1, 15) * TICKS_PER_BEAT // 4), 4), bpm, rng), base, 5))
    for (grid, how, _), folder in zip(fresh, fresh_dirs, strict=True):
        flagged = sum(table["fresh runs (token grid)"].values()) - table["fresh runs (token grid)"]["new"]
        check("fresh runs (token grid)", grid, how)
        if sum(table["fresh runs (token grid)"].values()) - table["fresh runs (token grid)"]["new"] > flagged:
            print(f"flagged fresh run: {folder.name} {RunManifest.read(folder).conditions}")
    print(f"\nnovelty: {len(chosen)} training windows of {model}, {len(fresh)} fresh runs; lookup per piece: "
          f"median {1000 * np.median(seconds):.0f} ms, max {1000 * max(seconds):.0f} ms")
    print_verdicts(table, "flagged as wanted", lambda kind, counts: counts["new"] if kind.startswith("fresh")
                   else counts["copied"] + counts["near copy"])
    out = {kind: {**{v: counts[v] for v in VERDICTS}, "parts": dict(parts[kind])} for kind, counts in table.items()}
    return {"copies": len(chosen), "fresh_runs": len(fresh), "lookup_ms_median": round(1000 * float(np.median(seconds)), 1),
            "verdicts": out, "fresh_grids": fresh}


def _gmd_beats(gmd: Path) -> list[dict[str, str]]:
    with open(gmd / "info.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["beat_type"] == "beat" and r["time_signature"] == "4-4"]
    return [r for r in rows if float(r["duration"]) >= 20]  # 8 bars at 120 bpm and more


def _played(path: Path) -> dict[str, list[Note]]:
    """A performance's drums as played (raw MIDI notes at TICKS_PER_BEAT, nothing mapped)."""
    score = symusic.Score(str(path)).resample(TICKS_PER_BEAT, min_dur=1)
    return {"drums": sorted(Note(n.time, n.duration, n.pitch, n.velocity) for t in score.tracks for n in t.notes)}


def _excerpt(tracks: dict[str, list[Note]], first_bar: int, bars: int) -> dict[str, list[Note]]:
    """Bars [first_bar, first_bar + bars) as played, moved to start at 0 (hits played a little
    before the first bar line come along)."""
    lo, early = first_bar * TICKS_PER_BAR, TICKS_PER_BEAT // 8
    hi = lo + bars * TICKS_PER_BAR
    return {r: [Note(max(0, n.start - lo), n.duration, n.pitch, n.velocity) for n in notes
                if lo - early <= n.start < hi - early] for r, notes in tracks.items()}


def _write_clip(tracks: dict[str, list[Note]], bpm: float, path: Path) -> Path:
    from stemforge.symbolic.music.arrangement import Track, tracks_to_score

    end = max(n.start + n.duration for notes in tracks.values() for n in notes)
    score = tracks_to_score([Track(r, 0, r == "drums", notes) for r, notes in tracks.items()], bpm=bpm,
                            ticks_per_beat=TICKS_PER_BEAT, total_ticks=-(-end // TICKS_PER_BAR) * TICKS_PER_BAR)
    score.dump_midi(str(path))
    return path


def bench_played_copies(gmd: Path, model: Path, fresh_grids: list, files: int, work: Path,
                        verbose: bool = False) -> dict:
    """Copies of played grooves against an index `pipeline prepare` made of them (module doc, 3)."""
    from stemforge.symbolic.training.prepare import PrepareConfig, prepare_dataset
    from stemforge.symbolic.training.train import TrainConfig, train

    rng = random.Random(7)
    beats = _gmd_beats(gmd)
    rng.shuffle(beats)
    theirs = [r for r in beats if r["drummer"] in USER_DRUMMERS]
    chosen, same_drummers = theirs[:files], theirs[files:files + files // 2]
    other_drummers = [r for r in beats if r["drummer"] not in USER_DRUMMERS][:files]
    folder = work / "gmd_user"
    for row in chosen:  # the folders as GMD has them: a drummer's session is one kit
        target = folder / row["midi_filename"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(gmd / row["midi_filename"])
    data = work / "gmd_user_data"
    config = PrepareConfig(window_bars=[4], transpositions=[], valid_fraction=0.0)
    prepare_dataset(folder, data, config=config, progress=False)
    index = NoveltyIndex.load(data / "index")
    table: dict[str, Counter] = defaultdict(Counter)

    def check(kind: str, tracks: dict[str, list[Note]], bars: int = 8, name: str = "") -> None:
        result = assess_tracks(tracks, TICKS_PER_BEAT, bars, index)
        table[kind][result.verdict] += 1
        if verbose and (result.verdict != "new") == ("not copied" in kind):
            match = result.parts["drums"].match
            print(f"  {kind}: {name} -> {result.verdict} {result.grid} {match}")

    for row in chosen:
        played, bpm = _played(gmd / row["midi_filename"]), float(row["bpm"])
        length = max(n.start for n in played["drums"]) // TICKS_PER_BAR + 1
        first = rng.randrange(0, max(1, length - 8))
        copy = _excerpt(played, first, 8)
        name = f"{row['id']} bars {first}-{first + 8}"
        check("as played", copy, name=name)
        check("humanized (+-20 ms, +-20 velocity)", _humanize(copy, bpm, rng), name=name)
        check("a 16th late", _cut(copy, 9, TICKS_PER_BEAT // 4), 9, name=name)
        check("humanized and a 16th late", _humanize(_cut(copy, 9, TICKS_PER_BEAT // 4), bpm, rng), 9, name=name)
    for kind, rows in (("other drummers' performances (played, not copied)", other_drummers),
                       ("the same drummers' other takes (not copied; they replay grooves)", same_drummers)):
        for row in rows:
            played = _played(gmd / row["midi_filename"])
            length = max(n.start for n in played["drums"]) // TICKS_PER_BAR + 1
            first = rng.randrange(0, max(1, length - 8))
            check(kind, _excerpt(played, first, 8), name=f"{row['id']} bars {first}-{first + 8}")
    for grid, how, _ in fresh_grids:
        table["fresh runs of the default model"][assess_grid(grid, TICKS_PER_BEAT, 8, index, how).verdict] += 1

    # seeded runs: a tiny model trained on this data, each run seeded with 4 bars of a training file
    tiny = work / "gmd_user_model"
    train(data, tiny, TrainConfig.load("tiny"), progress=False)
    for n, row in enumerate(chosen[:10]):
        played = _played(gmd / row["midi_filename"])
        clip = _write_clip(_excerpt(played, 1, 4), float(row["bpm"]), work / f"seed{n}.mid")
        out = work / f"seeded{n}"
        run(RunRequest(prompt="rock", seed_midi=clip, bars=8, seed=n, out=out, model=tiny))
        manifest = RunManifest.read(out)
        tracks, how = run_grid_tracks(manifest, run_tracks(out, manifest), TICKS_PER_BEAT)
        piece = piece_novelty(tracks, TICKS_PER_BEAT, 8, index, None, how)
        drums = piece["parts"]["drums"]
        match = drums["match"] or {}
        on_seed = drums["verdict"] == "copied" and match.get("start_bar", 99) <= 1 and match.get("bars", 0) >= 3
        table["runs seeded with 4 bars of a training file"]["copied" if on_seed else drums["verdict"]] += 1

    # the shipped model's index against raw GMD performances its corpus took grooves from
    shipped = NoveltyIndex.load(model / "index")
    rows = {r["id"]: r for r in _gmd_beats(gmd)}
    used = sorted(g.split(":", 1)[1] for g in shipped.groups if g.startswith("gmd:") and g.split(":", 1)[1] in rows)
    for performance in random.Random(0).sample(used, min(40, len(used))):
        played = _played(gmd / rows[performance]["midi_filename"])
        bars = max(n.start for n in played["drums"]) // TICKS_PER_BAR + 1
        verdict = assess_tracks(played, TICKS_PER_BEAT, bars, shipped).verdict
        table["raw GMD performances of the shipped corpus, vs its index"][verdict] += 1

    print(f"\nplayed copies: {len(chosen)} Groove MIDI performances prepared as a user's data ({len(index)} "
          f"training bars); copies read from the raw files")
    print_verdicts(table, "as wanted", lambda kind, counts: counts["new"] if (
        "not copied" in kind or kind.startswith("fresh")) else counts["copied"])
    out = {kind: {v: counts[v] for v in VERDICTS} for kind, counts in table.items()}
    copies = [k for k in table if k in ("as played", "humanized (+-20 ms, +-20 velocity)", "a 16th late",
                                         "humanized and a 16th late")]
    flagged = sum(table[k]["copied"] for k in copies)
    total = sum(sum(table[k].values()) for k in copies)
    print(f"copies flagged \"copied\": {flagged}/{total} ({flagged / max(1, total):.1%})")
    return {"files": len(chosen), "verdicts": out, "copies_flagged": flagged, "copies": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--runs", type=int, default=4, help="runs evaluated twice (cache)")
    parser.add_argument("--copies", type=int, default=20, help="training windows copied (novelty)")
    parser.add_argument("--fresh", type=int, default=48, help="fresh runs that must all be new (novelty)")
    parser.add_argument("--gmd-files", type=int, default=60, help="Groove MIDI performances prepared (played copies)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder (gmd/ in it)")
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stemforge-bench-eval-") as tmp:
        work = Path(tmp)
        figures = {"novelty": bench_novelty(args.model, args.copies, args.fresh, work)}
        fresh_grids = figures["novelty"].pop("fresh_grids")
        if (args.data / "gmd" / "info.csv").is_file():
            figures["played_copies"] = bench_played_copies(args.data / "gmd", args.model, fresh_grids,
                                                           args.gmd_files, work)
        else:
            print(f"\nplayed copies: skipped ({args.data}/gmd not found)")
        if not args.skip_cache:
            figures["cache"] = bench_cache(args.model, args.runs, work)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        raise SystemExit(main())
