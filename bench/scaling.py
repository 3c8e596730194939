"""How a run grows with its length: compose and render time and peak memory for 4, 8, 16
and 32 bars of `pipeline run --prompt "lofi 80bpm" --stems` (shipped model, 3 stems).

    python bench/scaling.py [--bars 4 8 16 32] [--repeats 3] [--model MODEL_DIR] [--before REV]

Each length runs in its own fresh process, after an untimed 1-bar run in that process (the
costs paid once per process: grammar tables, the compiled decoder's cache, sounds), so the
times are a warm run's (run.json's stage timings, median of --repeats seeds) and the peak
resident memory (ru_maxrss) is that length's. The reference is the 8-bar run of the same
invocation: each row gives its time per bar against it (1.00 = linear); an 8-bar run through
`--decoder torch` is measured beside it. A length the model cannot compose is reported with
the one-line error a user gets.

--before REV also times the same warm 8-bar run on the code of git revision REV (checked
out into a temporary worktree, its own default model and defaults), interleaved with ours, so
"x the code before" is a ratio measured in the same run (c7c0f7d: the code before the speed
work of the speed issue, whose 8-bar + stems run() it measured at 4.45 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from stemforge.pipeline.request import RunRequest
from stemforge.pipeline.run import run
from stemforge.symbolic.core.errors import UserError
bars, seed, out, model, decoder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] or None, sys.argv[5]
chosen = {"decoder": decoder} if decoder else {}  # "": the code's own default (--before: it may predate the field)
# untimed warm-up: grammar tables, the compiled decoder loaded from its cache, sounds read
run(RunRequest(prompt="lofi 80bpm", bars=1, seed=seed, stems=True, out=out.with_name(out.name + "_warm"),
               model=Path(model) if model else None, **chosen))
try:
    result = run(RunRequest(prompt="lofi 80bpm", bars=bars, seed=seed, stems=True, out=out,
                            model=Path(model) if model else None, **chosen))
except UserError as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
manifest = json.loads((out / "run.json").read_text())
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import stemforge.pipeline.run as code
print(json.dumps({"timings": manifest["timings"], "tokens": manifest["tokens"], "peak_mb": peak_mb,
                  "process": time.perf_counter() - started, "module": str(Path(code.__file__).parents[1])}))
"""


def one_run(bars: int, seed: int, out: Path, model: Path | None, decoder: str = "",
            package: Path | None = None) -> dict:
    """One fresh process; `package`: a folder whose `stemforge` is imported instead of ours."""
    env = {**os.environ, "PYTHONPATH": str(package)} if package else None
    # run from the output's folder: `python -c` puts its working folder first on sys.path, and from
    # the repository that would import our `stemforge` before the one in `package`
    result = subprocess.run([sys.executable, "-c", CHILD, str(bars), str(seed), str(out), str(model or ""), decoder],
                            capture_output=True, text=True, env=env, cwd=out.parent)
    if result.returncode != 0:
        raise SystemExit(f"{bars} bars: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def code_at(revision: str, folder: Path) -> Iterator[Path]:
    """A folder holding `stemforge` as it was at git `revision` (a detached worktree, its role
    folders linked beneath one `stemforge`, as pyproject.toml maps ours), removed afterwards."""
    repository = Path(__file__).resolve().parents[1]
    tree = folder / "tree"
    subprocess.run(["git", "-C", str(repository), "worktree", "add", "--detach", "--quiet", str(tree), revision],
                   check=True)
    try:
        package = folder / "package" / "stemforge"
        package.mkdir(parents=True)
        shutil.copy(tree / "stemforge" / "__init__.py", package / "__init__.py")
        for role in ("symbolic", "audio", "eval", "pipeline", "configs"):
            (package / role).symlink_to(tree / role)
        yield package.parent
    finally:
        subprocess.run(["git", "-C", str(repository), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--before", help="git revision whose warm 8-bar run is timed beside ours (e.g. c7c0f7d)")
    args = parser.parse_args()
    lengths = sorted(set(args.bars) | {8})
    rows: dict[int, list[dict]] = {}
    torch_rows: list[dict] = []  # the reference: 8 bars through the torch decoder
    before_rows: list[dict] = []  # --before: 8 bars on that revision's code
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        before = stack.enter_context(code_at(args.before, Path(folder) / "before")) if args.before else None
        one_run(8, 0, Path(folder) / "warm", args.model)  # disk cache, the compiled decoder's cache
        if before:
            one_run(8, 0, Path(folder) / "warm_before", args.model, "", before)
        for repeat in range(args.repeats):
            for bars in lengths:
                rows.setdefault(bars, []).append(one_run(bars, repeat + 1, Path(folder) / f"{bars}_{repeat}",
                                                         args.model))
            torch_rows.append(one_run(8, repeat + 1, Path(folder) / f"torch_{repeat}", args.model, "torch"))
            if before:
                before_rows.append(one_run(8, repeat + 1, Path(folder) / f"before_{repeat}", args.model, "", before))

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
    if 16 in rows and not any("error" in r for r in rows[16]):
        times = {stage: median(16, lambda r, s=stage: r["timings"][s]) / (reference[stage] * 8)
                 for stage in ("compose", "render", "total")}
        tokens = median(16, lambda r: r["tokens"]) / median(8, lambda r: r["tokens"])
        print(f"16 bars x 8 bars: compose {times['compose']:.2f}x ({tokens:.2f}x the tokens), render "
              f"{times['render']:.2f}x, run {times['total']:.2f}x (aims: compose and render <= 2.1x)")
    torch_total = statistics.median(r["timings"]["total"] for r in torch_rows)
    torch_compose = statistics.median(r["timings"]["compose"] for r in torch_rows)
    print(f"\nwarm 8-bar run with the torch decoder (same run): compose {torch_compose:.2f} s, run {torch_total:.2f} s; "
          f"the default decoder's run is {reference['total'] * 8 / torch_total:.2f}x of it")
    if before_rows:
        before_total = statistics.median(r["timings"]["total"] for r in before_rows)
        before_compose = statistics.median(r["timings"]["compose"] for r in before_rows)
        print(f"warm 8-bar run on {args.before}'s code (same run, its stemforge from {before_rows[0]['module']}): "
              f"compose {before_compose:.2f} s, run {before_total:.2f} s; ours is "
              f"{reference['total'] * 8 / before_total:.2f}x of it")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        main()
