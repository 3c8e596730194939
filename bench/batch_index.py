"""What `pipeline batch` spends per item on its own bookkeeping as the prompts file grows: the
index written when an item ends, and the start-up check of every line.

    .venv/bin/python bench/batch_index.py [--sizes 100 1000 10000]

Reference, measured in the same run: the index as it was written before (index.json and
index.csv replaced whole after every item: O(lines) per item, so throughput fell from 366 to 150
items a minute at 10,000 lines) against today's (the item's rows appended to index.csv;
index.json replaced every INDEX_SECONDS, or 50x its own write time when that is longer, its cost
spread over the items that end meanwhile at `--items-per-second`, 6: 366 a minute). Printed:
milliseconds of bookkeeping per item, and as a share of an item's 164 ms at that rate. The rows
are real: one item rendered with the shipped model, its index rows repeated. Also the start-up
check of every line (parsed with `pipeline run`'s flags, `check_inputs`), per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from stemforge.pipeline.batch import (  # noqa: E402
    INDEX_SECONDS,
    ITEMS,
    BatchItem,
    append_index_rows,
    read_items,
    take_rows,
    write_index,
    write_json_index,
)
from stemforge.pipeline.cli import build_parser  # noqa: E402
from stemforge.pipeline.request import RunRequest  # noqa: E402
from stemforge.pipeline.run import run  # noqa: E402


def per_item_ms(action, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--items-per-second", type=float, default=6.0)
    args = parser.parse_args()
    item_ms = 1000 / args.items_per_second
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "batch"
        request = RunRequest(prompt="lofi 80bpm", bars=1, seed=1, out=out / ITEMS / "0001_lofi_80bpm_0")
        run(request)
        item = BatchItem(1, "lofi 80bpm --seed 1", request.out.name, request, "done")
        item.takes = take_rows(item, out)
        prompts = Path(folder) / "prompts.txt"
        print(f"{'lines':>6} {'before ms/item':>15} {'share':>6} {'now ms/item':>12} {'share':>6} {'ratio':>6} "
              f"{'check ms/line':>14}")
        for size in args.sizes:
            items = [dataclasses.replace(item, line=n) for n in range(1, size + 1)]
            repeats = max(3, min(50, 20000 // size))
            before = per_item_ms(lambda items=items: write_index(out, prompts, items, 1.0), repeats)
            appended = per_item_ms(lambda: append_index_rows(out, item), 200)
            flush = per_item_ms(lambda items=items: write_json_index(out, prompts, items, 1.0), repeats)
            interval_s = max(INDEX_SECONDS, 50 * flush / 1000)
            now = appended + flush / (args.items_per_second * interval_s)
            prompts.write_text("".join(f"lofi 80bpm --seed {n}\n" for n in range(min(size, 1000))))
            started = time.perf_counter()
            read_items(prompts, build_parser().parse_args(["batch", str(prompts), "--out", str(out)]), out, None)
            check = (time.perf_counter() - started) / min(size, 1000) * 1000
            print(f"{size:>6} {before:>15.2f} {before / item_ms:>6.0%} {now:>12.3f} {now / item_ms:>6.1%} "
                  f"{before / now:>5.0f}x {check:>14.2f}")


if __name__ == "__main__":
    main()
