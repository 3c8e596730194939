"""How a run grows with its length: compose and render time and peak memory for 4, 8, 16
and 32 bars of `pipeline run --prompt "lofi 80bpm" --stems` (shipped model, 3 stems).

    python bench/scaling.py [--bars 4 8 16 32] [--repeats 3] [--model MODEL_DIR]

Each length runs in its own fresh process, after an untimed 1-bar run in that process (the
costs paid once per process: grammar tables, the compiled decoder's cache, sounds), so the
times are a warm run's (run.json's stage timings, median of --repeats seeds) and the peak
resident memory (ru_maxrss) is that length's. The reference is the 8-bar run of the same
invocation: each row gives its time per bar against it (1.00 = linear); an 8-bar run through
`--decoder torch` is measured beside it. A length the model cannot compose is reported with
the one-line error a user gets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from stemforge.pipeline.request import RunRequest
from stemforge.pipeline.run import run
from stemforge.symbolic.errors import UserError
bars, seed, out, model, decoder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] or None, sys.argv[5]
# untimed warm-up: grammar tables, the compiled decoder loaded from its cache, sounds read
run(RunRequest(prompt="lofi 80bpm", bars=1, seed=seed, stems=True, out=out.with_name(out.name + "_warm"),
               model=Path(model) if model else None, decoder=decoder))
try:
    result = run(RunRequest(prompt="lofi 80bpm", bars=bars, seed=seed, stems=True, out=out,
                            model=Path(model) if model else None, decoder=decoder))
except UserError as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
manifest = json.loads((out / "run.json").read_text())
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"timings": manifest["timings"], "tokens": manifest["tokens"], "peak_mb": peak_mb,
                  "process": time.perf_counter() - started}))
"""


def one_run(bars: int, seed: int, out: Path, model: Path | None, decoder: str = "compiled") -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(bars), str(seed), str(out), str(model or ""), decoder],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{bars} bars: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    lengths = sorted(set(args.bars) | {8})
    rows: dict[int, list[dict]] = {}
    torch_rows: list[dict] = []  # the reference: 8 bars through the torch decoder
    with tempfile.TemporaryDirectory() as folder:
        one_run(8, 0, Path(folder) / "warm", args.model)  # disk cache, the compiled decoder's cache
        for repeat in range(args.repeats):
            for bars in lengths:
                rows.setdefault(bars, []).append(one_run(bars, repeat + 1, Path(folder) / f"{bars}_{repeat}",
                                                         args.model))
            torch_rows.append(one_run(8, repeat + 1, Path(folder) / f"torch_{repeat}", args.model, "torch"))

    def median(bars: int, pick) -> float:
        return statistics.median(pick(r) for r in rows[bars])

    reference = {stage: median(8, lambda r, s=stage: r["timings"][s]) / 8 for stage in ("compose", "render", "total")}
    print(f"pipeline run --stems, lofi 80bpm, median of {args.repeats}; per bar against 8 bars (1.00 = linear)")
    print(f"{'bars':>5}{'tokens':>8}{'compose s':>11}{'render s':>10}{'run s':>8}{'peak MB':>9}"
          f"{'compose/bar':>13}{'render/bar':>12}{'run/bar':>9}")
    for bars in lengths:
        if any("error" in r for r in rows[bars]):
            print(f"{bars:>5}  refused: {next(r['error'] for r in rows[bars] if 'error' in r)}")
            continue
        compose, render, total = (median(bars, lambda r, s=s: r["timings"][s]) for s in ("compose", "render", "total"))
        print(f"{bars:>5}{median(bars, lambda r: r['tokens']):>8.0f}{compose:>11.2f}{render:>10.2f}{total:>8.2f}"
              f"{median(bars, lambda r: r['peak_mb']):>9.0f}{compose / bars / reference['compose']:>13.2f}"
              f"{render / bars / reference['render']:>12.2f}{total / bars / reference['total']:>9.2f}")
    torch_total = statistics.median(r["timings"]["total"] for r in torch_rows)
    torch_compose = statistics.median(r["timings"]["compose"] for r in torch_rows)
    print(f"\nwarm 8-bar run with the torch decoder (same run): compose {torch_compose:.2f} s, run {torch_total:.2f} s; "
          f"the compiled decoder's run is {reference['total'] * 8 / torch_total:.2f}x of it")


if __name__ == "__main__":
    main()
