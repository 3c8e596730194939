"""Sample renderer speed: x real time for 8 and 64 bars, 3 stems, vs fluidsynth on the same MIDI.

    python bench/render.py [--soundfont FILE] [--repeats 3] [--model MODEL_DIR]

In order, each measured against its reference in the same run:
1. a whole cold `pipeline run --stems` split into its stages;
2. every effect's CPU cost per minute of 44.1 kHz stereo, run block by block as the renderer
   runs a chain now (`effects.apply_chain`), against the same effect run over the whole buffer
   as the renderer did before (and Distortion against pedalboard's, which numpy's tanh replaced);
3. the render's growth with length: 8, 16 and 32 bars of the lofi groove, warm, rounds
   interleaved, each against 8 bars (aim: 16 bars <= 2.1x);
4. the renderer against fluidsynth on the same MIDI and SoundFont: warm renders in this process
   (3 stems, --dry and with the genre's FX) against `fluidsynth -ni -F` (one stereo mix, no FX),
   and as whole commands (`pipeline render RUN --dry`, a fresh Python process, against the
   `fluidsynth` command), rounds interleaved. fluidsynth rows are skipped where it is not
   installed (`bash scripts/install_sounds.sh --bench`, which `make bench` runs).
The machine and the load during the run are printed too (bench/machine.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import reported  # noqa: E402
from stemforge.audio.assets import best_soundfont, pip_soundfont  # noqa: E402
from stemforge.audio.render import RenderOptions, render_arrangement  # noqa: E402
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT  # noqa: E402
from stemforge.symbolic.music.arrangement import Arrangement, Note, Track  # noqa: E402
from stemforge.symbolic.music.conditions import Conditions  # noqa: E402
from stemforge.symbolic.runtime.run_manifest import RunManifest  # noqa: E402


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


def time_render(arrangement: Arrangement, options: RenderOptions) -> float:
    """CPU seconds of one warm render (all its threads: the effects run beside the synthesis)."""
    started = time.process_time()
    render_arrangement(arrangement, options)
    return time.process_time() - started


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


def fluidsynth_command(midi: Path, soundfont: Path, wav: Path) -> list[str] | None:
    binary = shutil.which("fluidsynth")
    if binary is None:
        return None
    return [binary, "-ni", "-q", "-g", "0.5", "-r", "44100", "-F", str(wav), str(soundfont), str(midi)]


def child_seconds(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])}...: {process.stderr.read().decode()[-300:]}")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


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


def effect_costs(repeats: int) -> list[tuple[str, float, float]]:
    """(effect, ms of CPU a minute of stereo as the renderer runs it now, ms as before): every
    effect with the settings of the first preset that uses it (its defaults where none does),
    interleaved, median of `repeats`. Before: each effect over the whole buffer in turn, and
    Distortion through pedalboard's."""
    import numpy as np
    import pedalboard

    import stemforge.audio.effects as effects_module
    from stemforge.audio.effects import (
        Distortion,
        Gain,
        WowFlutter,
        apply_chain,
        available_presets,
        load_preset,
    )

    sample_rate = 44100
    audio = (np.random.default_rng(0).standard_normal((2, 60 * sample_rate)) * 0.1).astype(np.float32)
    chosen = {}
    for name in available_presets():
        for fx in load_preset(name).roles.values():
            for effect in fx.chain:
                chosen.setdefault(type(effect), effect)
    chosen.setdefault(Gain, Gain(gain_db=-3.0))  # in no shipped preset

    def before(effect) -> None:
        if isinstance(effect, WowFlutter):
            effect.process(audio, sample_rate, 24.0)  # one block holds a minute: as it ran before
        else:
            pedalboard.Pedalboard([effect.plugin(80.0)])(audio, sample_rate)

    saved = effects_module.BLOCK_SAMPLES
    samples: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeats):
        for kind, effect in chosen.items():
            started = time.thread_time()
            apply_chain(audio, sample_rate, (effect,), 80.0, 24.0)
            now = time.thread_time() - started
            effects_module.BLOCK_SAMPLES = audio.shape[1] + 1
            try:
                started = time.thread_time()
                before(effect)
                then = time.thread_time() - started
            finally:
                effects_module.BLOCK_SAMPLES = saved
            samples.setdefault(kind.__name__ + (" (was pedalboard's)" if kind is Distortion else ""), []).append(
                (now * 1000, then * 1000))
    return sorted(((name, statistics.median(n for n, _ in values), statistics.median(t for _, t in values))
                   for name, values in samples.items()), key=lambda row: -row[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", type=Path, default=None, help="default: best found, then TimGM6mb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="composer for the cold run (default: shipped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = cold_pipeline_run(args.model, Path(folder), args.repeats)
    print('\ncold `pipeline run --prompt "lofi 80bpm" --stems` (8 bars, 3 stems), seconds, median of', args.repeats)
    for key in rows[0]:
        print(f"  {key:<20}{statistics.median(r[key] for r in rows):>8.2f}")

    print(f"\neffects, ms of CPU a minute of 44.1 kHz stereo (median of {max(3, args.repeats)}, interleaved)")
    print(f"  {'effect':<30}{'now (blocks)':>14}{'before (whole)':>16}{'now x before':>14}")
    for name, now, then in effect_costs(max(3, args.repeats)):
        print(f"  {name:<30}{now:>14.0f}{then:>16.0f}{now / then:>14.2f}")

    font = args.soundfont or best_soundfont() or pip_soundfont()
    print(f"\nrender by length (lofi groove, 3 stems + FX, {font.name}, CPU s of all threads, median of "
          f"{max(3, args.repeats)} interleaved rounds)")
    lengths = (8, 16, 32)
    songs = {bars: groove(bars) for bars in lengths}
    options = RenderOptions(soundfont=font)
    for song in songs.values():
        render_arrangement(song, options)  # warm: sounds read, first allocations
    by_length: dict[int, list[float]] = {bars: [] for bars in lengths}
    for _ in range(max(3, args.repeats)):
        for bars, song in songs.items():
            by_length[bars].append(time_render(song, options))
    reference = statistics.median(by_length[8])
    for bars in lengths:
        seconds = statistics.median(by_length[bars])
        print(f"  {bars:>3} bars {seconds:8.3f} s  {seconds / reference:5.2f}x the 8-bar time ({bars / 8:.0f}x the audio)")

    fonts = (
        [args.soundfont]
        if args.soundfont
        else list(dict.fromkeys(f for f in (best_soundfont(), pip_soundfont()) if f is not None))
    )
    print(f"\nrenderer vs fluidsynth (same MIDI, same SoundFont; CPU s; median of {args.repeats}, interleaved)")
    print(f"{'soundfont':<26}{'case':<28}{'audio s':>8}{'ours s':>9}{'x real':>8}{'fluidsynth s':>14}{'x real':>8}"
          f"{'ours x fs':>11}")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for font in fonts:
            cold = cold_render(font)
            song = groove(8)
            seconds = song.seconds(song.total_ticks)
            print(f"{font.stem[:24]:<26}{'cold 8 bars (process)':<28}{seconds:>8.1f}{cold:>9.3f}{seconds / cold:>8.1f}")
            for bars in (8, 64):
                song = groove(bars)
                seconds = song.seconds(song.total_ticks)
                midi = work / f"bench{bars}.mid"
                song.write_midi(midi)
                fluid = fluidsynth_command(midi, font, work / "fluidsynth.wav")
                cases = {f"{bars} bars, lofi FX": RenderOptions(soundfont=font),
                         f"{bars} bars, --dry": RenderOptions(soundfont=font, dry=True)}
                times: dict[str, list[float]] = {label: [] for label in [*cases, "fluidsynth"]}
                for _ in range(args.repeats):
                    for label, options in cases.items():
                        times[label].append(time_render(song, options))
                    if fluid:
                        times["fluidsynth"].append(child_seconds(fluid)[0])
                for label in cases:
                    ours = statistics.median(times[label])
                    row = f"{font.stem[:24]:<26}{label:<28}{seconds:>8.1f}{ours:>9.3f}{seconds / ours:>8.1f}"
                    if fluid:
                        theirs = statistics.median(times["fluidsynth"])
                        row += f"{theirs:>14.3f}{seconds / theirs:>8.1f}{ours / theirs:>11.2f}"
                    print(row, flush=True)
        whole_commands(work, args.model, fonts[0], args.repeats)


def whole_commands(work: Path, model: Path | None, font: Path, repeats: int) -> None:
    """`pipeline render RUN --dry` and with FX (fresh processes: Python start-up, imports, the
    render, the WAVs) against the `fluidsynth` command on the run's full MIDI, interleaved."""
    from stemforge.pipeline.request import RunRequest
    from stemforge.pipeline.run import run

    result = run(RunRequest(prompt="lofi 80bpm", seed=1, out=work / "composed", model=model))
    midi = result.manifest.midi_path("full", result.run_dir)
    fluid = fluidsynth_command(midi, font, work / "whole_fluidsynth.wav")
    pipeline = [sys.executable, "-c", "import sys; from stemforge.pipeline.cli import main; sys.exit(main())"]
    commands = {"pipeline render --dry": [*pipeline, "render", str(work / "composed"), "--dry",
                                          "--soundfont", str(font)],
                "pipeline render (lofi FX)": [*pipeline, "render", str(work / "composed"), "--soundfont", str(font)]}
    if fluid:
        commands["fluidsynth -F (one mix, no FX)"] = fluid
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for number in range(repeats):
        for name, command in commands.items():
            if name.startswith("pipeline"):
                command = [*command, "--out", str(work / f"{name.split()[-1]}_{number}")]
            samples[name].append(child_seconds(command))
    print(f"\nwhole commands, 8-bar lofi piece (fresh processes, median of {repeats}, interleaved)")
    reference = statistics.median(c for c, _ in samples[next(iter(samples))])
    for name, values in samples.items():
        cpu, wall = statistics.median(c for c, _ in values), statistics.median(w for _, w in values)
        print(f"  {name:<34} CPU {cpu:6.2f} s  wall {wall:6.2f} s  CPU x `pipeline render --dry` "
              f"{cpu / reference:5.2f}")
    if fluid:
        ours = statistics.median(c for c, _ in samples["pipeline render --dry"])
        theirs = statistics.median(c for c, _ in samples["fluidsynth -F (one mix, no FX)"])
        print(f"  `pipeline render --dry` x `fluidsynth -F`: {ours / theirs:.2f} (CPU)")


if __name__ == "__main__":
    with reported():
        main()
