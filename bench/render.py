"""Sample renderer speed: x real time for 8 and 64 bars, 3 stems, vs fluidsynth on the same MIDI.

    python bench/render.py [--soundfont FILE] [--repeats 3] [--model MODEL_DIR]

First a whole cold `pipeline run --stems` split into its stages, then the renderer alone.

Rows: a cold process (import + first render of 8 bars, what a `pipeline run` pays), then
warm renders (median of --repeats) with the genre's FX and --dry. The fluidsynth column
renders the same MIDI file with the same SoundFont (`fluidsynth -ni -F`, one stereo mix,
no FX) in this run; it is skipped where fluidsynth is not installed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemforge.audio.assets import best_soundfont, pip_soundfont  # noqa: E402
from stemforge.audio.render import RenderOptions, render_arrangement  # noqa: E402
from stemforge.symbolic.arrangement import TICKS_PER_BEAT, Arrangement, Note, Track  # noqa: E402
from stemforge.symbolic.conditions import Conditions  # noqa: E402
from stemforge.symbolic.run_manifest import RunManifest  # noqa: E402


def groove(bars: int, bpm: float = 80.0, genre: str = "lofi") -> Arrangement:
    """Drums (kick, snare, 8th hats), a bass line and chords + a melody: a busy 3-stem loop."""
    T = TICKS_PER_BEAT
    drums, bass, melody = [], [], []
    for bar in range(bars):
        b = bar * 4 * T
        drums += [Note(b + i * T // 2, T // 4, 42, 60 + 20 * (i % 2 == 0)) for i in range(8)]
        drums += [
            Note(b, T // 2, 36, 110),
            Note(b + 5 * T // 2, T // 2, 36, 95),
            Note(b + T, T // 2, 38, 105),
            Note(b + 3 * T, T // 2, 38, 112),
        ]
        root = (45, 41, 43, 40)[bar % 4]
        bass += [
            Note(b, 3 * T // 2, root, 100),
            Note(b + 2 * T, T, root + 7, 90),
            Note(b + 7 * T // 2, T // 2, root + 12, 85),
        ]
        melody += [Note(b, 2 * T, root + 12 + iv, 70) for iv in (12, 15, 19)]
        melody += [
            Note(b + i * T + (T // 4) * (i % 2), T // 2, root + 24 + iv, 80 + 5 * i)
            for i, iv in enumerate((12, 10, 7, 3))
        ]
    tracks = {
        "drums": Track("drums", 0, True, sorted(drums)),
        "bass": Track("bass", 33, False, bass),
        "melody": Track("melody", 4, False, sorted(melody)),
    }
    return Arrangement(Conditions(genre=genre, bpm=bpm, bars=bars), tracks)


def time_render(arrangement: Arrangement, options: RenderOptions, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render_arrangement(arrangement, options)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_render(soundfont: Path) -> float:
    """Seconds for a fresh interpreter to import the renderer and render 8 bars x 3 stems."""
    code = (
        f"import time; t = time.perf_counter(); import sys; sys.path.insert(0, {str(ROOT)!r}); "
        "from bench.render import groove; from stemforge.audio.render import RenderOptions, render_arrangement; "
        "from pathlib import Path; "
        f"render_arrangement(groove(8), RenderOptions(soundfont=Path({str(soundfont)!r}))); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def time_fluidsynth(arrangement: Arrangement, soundfont: Path, work: Path, repeats: int) -> float | None:
    binary = shutil.which("fluidsynth")
    if binary is None:
        return None
    midi, wav = work / "bench.mid", work / "fluidsynth.wav"
    arrangement.write_midi(midi)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [binary, "-ni", "-q", "-g", "0.5", "-r", "44100", "-F", str(wav), str(soundfont), str(midi)],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_pipeline_run(model: Path | None, work: Path, repeats: int) -> list[dict[str, float]]:
    """A whole `pipeline run --prompt "lofi 80bpm" --stems` in a fresh process, split into
    interpreter start + imports, model load, compose, render, write (from run.json)."""
    rows = []
    for number in range(repeats):
        out = work / f"cold_run_{number}"
        args = ["run", "--prompt", "lofi 80bpm", "--stems", "--seed", str(number), "--out", str(out)]
        if model is not None:
            args += ["--model", str(model)]
        code = (
            "import time, sys; t = time.perf_counter(); "
            "import stemforge.pipeline.cli, stemforge.pipeline.run, stemforge.audio.render; "
            "sys.stderr.write(f'IMPORTED {time.perf_counter() - t}\\n'); "
            f"sys.exit(stemforge.pipeline.cli.main({args!r}))"
        )
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"pipeline run failed: {result.stderr.strip().splitlines()[-1]}")
        imported = float(next(line.split()[1] for line in result.stderr.splitlines() if line.startswith("IMPORTED")))
        timings = RunManifest.read(out).timings
        rows.append({
            "start + import": wall - timings["total"],
            "import (of which)": imported,
            "load": timings["load"],
            "compose": timings["compose"],
            "render": timings["render"],
            "write": timings["total"] - timings["load"] - timings["compose"] - timings["render"],
            "total (wall)": wall,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", type=Path, default=None, help="default: best found, then TimGM6mb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="composer for the cold run (default: shipped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = cold_pipeline_run(args.model, Path(folder), args.repeats)
    print('cold `pipeline run --prompt "lofi 80bpm" --stems` (8 bars, 3 stems), seconds, median of', args.repeats)
    for key in rows[0]:
        print(f"  {key:<20}{statistics.median(r[key] for r in rows):>8.2f}")
    total = statistics.median(r["total (wall)"] for r in rows)
    print(f"  aim: <= 5 s cold on 2 cores -> {total / 5.0:.2f} of the budget\n")
    fonts = (
        [args.soundfont]
        if args.soundfont
        else list(dict.fromkeys(f for f in (best_soundfont(), pip_soundfont()) if f is not None))
    )
    print(
        f"{'soundfont':<26}{'case':<24}{'audio s':>8}{'render s':>10}{'x real':>8}"
        f"{'fluidsynth s':>14}{'x real':>8}{'speed vs fs':>12}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for font in fonts:
            cold = cold_render(font)
            song = groove(8)
            seconds = song.seconds(song.total_ticks)
            label = "cold 8 bars (process)"
            print(f"{font.stem[:24]:<26}{label:<24}{seconds:>8.1f}{cold:>10.3f}{seconds / cold:>8.1f}")
            for bars in (8, 64):
                song = groove(bars)
                seconds = song.seconds(song.total_ticks)
                fluid = time_fluidsynth(song, font, Path(folder), args.repeats)
                for label, options in (
                    (f"{bars} bars, lofi FX", RenderOptions(soundfont=font)),
                    (f"{bars} bars, --dry", RenderOptions(soundfont=font, dry=True)),
                ):
                    ours = time_render(song, options, args.repeats)
                    row = f"{font.stem[:24]:<26}{label:<24}{seconds:>8.1f}{ours:>10.3f}{seconds / ours:>8.1f}"
                    if fluid is not None:
                        row += f"{fluid:>14.3f}{seconds / fluid:>8.1f}{fluid / ours:>12.2f}"
                    print(row, flush=True)


if __name__ == "__main__":
    main()
