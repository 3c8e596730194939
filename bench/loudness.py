"""What the loudness stage (audio/loudness.py) costs a render, against the render itself measured in
the same run: an 8-bar piece of the shipped model rendered with the sample renderer, then leveled
without a target (the true-peak ceiling every render gets) and with `--loudness -14`; and the
import of pyloudnorm (scipy.signal) in a fresh process against stemforge's renderer's.

    .venv/bin/python bench/loudness.py [--genres trap lofi ambient] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from stemforge.audio.loudness import LoudnessSettings, level_stems  # noqa: E402
from stemforge.audio.render import RenderOptions, render_arrangement  # noqa: E402
from stemforge.pipeline.request import RunRequest  # noqa: E402
from stemforge.pipeline.run import run  # noqa: E402


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genres", nargs="+", default=["trap", "lofi", "ambient"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'genre':8s} {'render s':>9s} {'ceiling s':>10s} {'ratio':>6s} {'-14 LUFS s':>11s} {'ratio':>6s} "
          f"{'rendered LUFS':>14s} {'dBTP':>6s} {'-14: LUFS':>10s} {'dBTP':>6s} {'limiting dB':>12s}")
    for genre in args.genres:
        arrangement = run(RunRequest(prompt=genre, bars=8, seed=3)).arrangement
        renders, ceilings, targets = [], [], []
        for _ in range(args.repeats):  # interleaved: the machine is shared
            started = time.perf_counter()
            stems, _ = render_arrangement(arrangement, RenderOptions())
            renders.append(time.perf_counter() - started)
            started = time.perf_counter()
            _, plain = level_stems(stems, LoudnessSettings())
            ceilings.append(time.perf_counter() - started)
            started = time.perf_counter()
            _, loud = level_stems(stems, LoudnessSettings(target_lufs=-14.0))
            targets.append(time.perf_counter() - started)
        render, ceiling, target = (statistics.median(v) for v in (renders, ceilings, targets))
        print(f"{genre:8s} {render:9.2f} {ceiling:10.2f} {ceiling / render:6.2f} {target:11.2f} {target / render:6.2f} "
              f"{plain.integrated_lufs:14.1f} {plain.true_peak_dbtp:6.1f} {loud.integrated_lufs:10.1f} "
              f"{loud.true_peak_dbtp:6.1f} {loud.limiting_db:12.1f}")
    renderer = statistics.median(import_seconds("stemforge.audio.render") for _ in range(3))
    meter = statistics.median(import_seconds("pyloudnorm") for _ in range(3))
    print(f"import in a fresh process: stemforge.audio.render {renderer:.2f} s, pyloudnorm {meter:.2f} s "
          f"({meter / renderer:.2f}x)")


if __name__ == "__main__":
    main()
