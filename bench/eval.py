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
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

# Run as a file, this folder would shadow the `eval` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from stemforge.eval.novelty import VERDICTS, assess_grid, assess_tracks, run_grid_tracks  # noqa: E402
from stemforge.eval.reference import run_tracks  # noqa: E402
from stemforge.eval.report import EvalRequest, run_eval, store_tracks  # noqa: E402
from stemforge.pipeline.run import RunRequest, run  # noqa: E402
from stemforge.symbolic.arrangement import TICKS_PER_BAR, TICKS_PER_BEAT, Note  # noqa: E402
from stemforge.symbolic.canonical import NoveltyIndex  # noqa: E402
from stemforge.symbolic.model import DEFAULT_MODEL_DIR  # noqa: E402
from stemforge.symbolic.run_manifest import RunManifest  # noqa: E402
from stemforge.symbolic.window_store import load_window_notes  # noqa: E402

GENRES = ("lofi", "hiphop", "house", "techno", "funk", "rock", "jazz", "pop", "trap", "dnb", "reggae", "soul")


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
    print("| what | " + " | ".join(VERDICTS) + " | flagged as wanted |\n|---|" + "---|" * (len(VERDICTS) + 1))
    out = {}
    for kind, counts in table.items():
        total = sum(counts.values())
        wanted = counts["new"] if kind.startswith("fresh") else counts["copied"] + counts["near copy"]
        print(f"| {kind} | " + " | ".join(str(counts[v]) for v in VERDICTS) + f" | {wanted}/{total} |")
        out[kind] = {**{v: counts[v] for v in VERDICTS}, "parts": dict(parts[kind])}
    return {"copies": len(chosen), "fresh_runs": len(fresh), "lookup_ms_median": round(1000 * float(np.median(seconds)), 1),
            "verdicts": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--runs", type=int, default=4, help="runs evaluated twice (cache)")
    parser.add_argument("--copies", type=int, default=20, help="training windows copied (novelty)")
    parser.add_argument("--fresh", type=int, default=48, help="fresh runs that must all be new (novelty)")
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stemforge-bench-eval-") as tmp:
        work = Path(tmp)
        figures = {"novelty": bench_novelty(args.model, args.copies, args.fresh, work)}
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
