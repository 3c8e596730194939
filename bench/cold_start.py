"""Cold start: what a fresh `pipeline` process costs, against `python -c "import torch"`
measured in the same run.

    python bench/cold_start.py [--repeats 5] [--model MODEL_DIR]

Rows (CPU = user + system seconds of the child process, the figure the aim is stated in;
wall beside it; median of --repeats):
- `python -c "import torch"`: the reference;
- `pipeline run --prompt "lofi 80bpm" --stems` (8 bars, 3 stems, shipped model), its
  ratio to the reference (aim: <= 1.2x CPU), with the decoder's kernels compiled ahead of
  time (what setup builds), and again with numba's JIT (an empty kernels cache: the fallback);
- `pipeline --help` and a rejected argument (aim: < 0.5 s wall);
then the heaviest top-level imports of the run (`python -X importtime`), to show what is left.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = [sys.executable, "-c", "import sys; from stemforge.pipeline.cli import main; sys.exit(main())"]


# Children run with Python's bytecode cache on, as a producer's shell has it: pip compiled
# torch's modules to .pyc when it installed them, and the untimed first run writes ours (an
# editable install has none), so neither side pays for compiling source. A shell with
# PYTHONDONTWRITEBYTECODE set (this build machine's) would make only our side pay, ~0.1 s.
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], expect_code: int = 0, env: dict | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or CHILD_ENV)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if code != expect_code:
        raise SystemExit(f"{' '.join(command[-6:])}: exit {code}, expected {expect_code}: {stderr.strip()[-300:]}")
    return usage.ru_utime + usage.ru_stime, wall


def heaviest_imports(command: list[str], count: int) -> list[tuple[str, float]]:
    """Packages by cumulative import time (ms) in `python -X importtime`: for each top-level
    package name, its largest cumulative figure wherever it was first imported (torch counts
    whole even when stemforge imported it); stemforge itself is left out."""
    result = subprocess.run([sys.executable, "-X", "importtime", *command[1:]], capture_output=True, text=True,
                            env=CHILD_ENV)
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        top = name.strip().split(".")[0]
        if cumulative.strip().isdigit() and top not in ("stemforge", "site", "encodings"):
            totals[top] = max(totals.get(top, 0.0), int(cumulative) / 1000)
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None, help="composer (default: the shipped one)")
    args = parser.parse_args()
    model = ["--model", str(args.model)] if args.model else []
    from stemforge.symbolic.decoding.kernels import build_ahead_of_time

    print(f"kernels compiled ahead of time: {build_ahead_of_time() or 'not available (numba.pycc missing)'}")
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        jit_only = {**CHILD_ENV, "STEMFORGE_CACHE_DIR": str(Path(folder) / "empty-cache")}
        # warm the disk cache and numba's machine-code cache once, untimed
        for env in (None, jit_only):
            timed([*PIPELINE, "run", "--prompt", "lofi 80bpm", "--stems", "--seed", "0", *model,
                   "--out", str(Path(folder) / f"warm{env is None}")], env=env)
        for number in range(args.repeats):  # interleaved, so load on the machine hits every row alike
            rows.setdefault('python -c "import torch"', []).append(timed([sys.executable, "-c", "import torch"]))
            rows.setdefault('pipeline run --prompt "lofi 80bpm" --stems', []).append(
                timed([*PIPELINE, "run", "--prompt", "lofi 80bpm", "--stems", "--seed", str(number + 1), *model,
                       "--out", str(Path(folder) / f"run{number}")]))
            rows.setdefault("  the same, kernels by numba's JIT", []).append(
                timed([*PIPELINE, "run", "--prompt", "lofi 80bpm", "--stems", "--seed", str(number + 1), *model,
                       "--out", str(Path(folder) / f"jit{number}")], env=jit_only))
            rows.setdefault("pipeline --help", []).append(timed([*PIPELINE, "--help"]))
            rows.setdefault("pipeline run --bogus (rejected)", []).append(
                timed([*PIPELINE, "run", "--bogus"], expect_code=2))
    reference = statistics.median(cpu for cpu, _ in rows['python -c "import torch"'])
    print(f"cold processes, median of {args.repeats} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f})")
    print(f"{'command':<46}{'CPU s':>8}{'wall s':>8}{'CPU x import torch':>20}")
    for name, samples in rows.items():
        cpu = statistics.median(c for c, _ in samples)
        wall = statistics.median(w for _, w in samples)
        print(f"{name:<46}{cpu:8.2f}{wall:8.2f}{cpu / reference:20.2f}")
    print("\nheaviest imports of `pipeline run --stems` (cumulative ms, python -X importtime):")
    with tempfile.TemporaryDirectory() as folder:
        for name, ms in heaviest_imports([*PIPELINE, "run", "--prompt", "lofi 80bpm", "--stems", *model,
                                          "--out", str(Path(folder) / "imports")], 10):
            print(f"  {name:<28}{ms:8.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        main()
