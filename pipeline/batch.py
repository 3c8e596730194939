"""`pipeline batch PROMPTS.txt --out DIR`: many prompts rendered into one folder, with an index.

    pipeline batch prompts.txt --out renders/ --takes 2 --stems --bars 8 --workers 2

One prompt a line; a line may carry `pipeline run` flags after its prompt words
(`lofi 80bpm --bars 4 --seed 7`), and the flags given to `pipeline batch` itself are every line's
defaults. Blank lines and comments are skipped: `#` at the start of a line or after a space (as
in a shell) starts one; a `#` inside a word is part of it (`trap in F# minor --key C#m`). Every line is parsed with the flag parser
`pipeline run` uses and checked with `pipeline.run.check_inputs` before anything slow starts, so a
bad line is one error naming the file and the line, and nothing is written.

Each line becomes one `RunRequest` whose run folder is DIR/items/<name>: the same `run()` (and,
with --takes, the same batched takes path) the CLI and the service call, on the service's own
worker processes (`pipeline.jobs.WorkerPool`) or, with --broker, on the broker's workers
(`pipeline.broker`). `run()` moves a folder into place only when it is complete, so a folder that
exists is a finished item: a second call with the same --out skips it (resumable), and an item
interrupted mid-run leaves no trace. The folder name carries a hash of the item's request, so an
edited line is rendered again rather than mistaken for its old result.

DIR/index.csv (prompt, seed, files, timings, status per take) gets each item's rows appended as
it ends, so after a kill -9 it lists what is on disk; DIR/index.json (the same, with counts) is
replaced whole at the start, every INDEX_SECONDS while items run (less often when writing it
takes more than 2 % of that time: ~1 s at 10,000 lines), and at the end, when
index.csv is also rewritten in line order. Neither is rewritten per item: at 10,000 lines that
cost more than the items (throughput fell from 366 to 150 items a minute). At most IN_FLIGHT
items wait in the scheduler at once, so its bookkeeping stays the same size however long the
file. The scheduler's job store lives in DIR/.scratch (removed at the end, or by the next call
after a kill -9), never in /tmp.

A prompts file must be a regular file of at most MAX_PROMPTS_BYTES with lines of at most
MAX_LINE_CHARS characters (a FIFO, /dev/zero or one 20 MB line is refused at once).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stemforge.pipeline.request import RunRequest
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import output_problem, remove_stale_partials, write_atomic
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME, RunManifest

try:  # Unix: one batch at a time per folder
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

INDEX_VERSION = 1
ITEMS = "items"
SCRATCH = ".scratch"  # the scheduler's job store while a batch runs
MAX_PROMPTS_BYTES = 32 * 1024 * 1024
MAX_LINE_CHARS = 4096  # a prompt (at most 500) and its flags
INDEX_SECONDS = 5.0  # index.json is replaced at most this often while items run
IN_FLIGHT_PER_WORKER = 4  # items handed to the scheduler ahead of the workers (the broker's: IN_FLIGHT_BROKER)
IN_FLIGHT_BROKER = 64
LINE_ONLY_FLAGS = ("out", "model")  # the batch's own: one folder, one model for every line
JOB_TIMEOUT_SECONDS = 3600.0  # one item running longer than this is killed and failed


class BatchError(UserError):
    """A prompts file, a line of it or a batch folder that cannot be used."""


@dataclass
class BatchItem:
    """One line of the prompts file as a run: where it goes and what it asks."""

    line: int  # 1-based line number in the prompts file
    text: str  # the line as written
    name: str  # its run folder's name under DIR/items
    request: RunRequest  # `out` is DIR/items/<name>
    status: str = "pending"  # pending | done | failed
    error: str | None = None
    takes: list[dict] = field(default_factory=list)  # the index rows of a finished item


class _LineParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting: the caller names the line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BatchError(message)


def line_parser() -> argparse.ArgumentParser:
    """The flags a line may carry: `pipeline run`'s own (pipeline/request.py), less --out and --model."""
    from stemforge.pipeline.flags import RUN_GROUPS, add_request_flags

    parser = _LineParser(prog="line", add_help=False)
    add_request_flags(parser, RUN_GROUPS, skip=LINE_ONLY_FLAGS)
    return parser


def _slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "_".join(words)[:limit].strip("_") or "prompt"


def item_name(line: int, request: RunRequest) -> str:
    """<line>_<prompt words>_<hash of the request>: stable across calls, new when the line changes."""
    values = {k: v for k, v in request.to_json().items() if k != "out"}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
    return f"{line:04d}_{_slug(request.prompt)}_{digest}"


def parse_line(text: str, defaults: argparse.Namespace, parser: argparse.ArgumentParser) -> RunRequest | None:
    """A line's RunRequest (the batch's flags as defaults), or None for a blank or comment line."""
    from stemforge.pipeline.flags import request_from_args

    try:
        tokens = shlex.split(_without_comment(text))
    except ValueError as error:  # an unbalanced quote
        raise BatchError(f"{error}; quote the prompt or the flag value in full") from error
    if not tokens:
        return None
    first_flag = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
    words, flags = tokens[:first_flag], tokens[first_flag:]
    namespace = argparse.Namespace(**vars(defaults))
    try:
        parser.parse_args(flags, namespace=namespace)
    except BatchError as error:
        text = str(error)
        if any(f"--{name}" in text for name in LINE_ONLY_FLAGS):
            text += " (--out and --model are the whole batch's: give them to `pipeline batch`)"
        raise BatchError(text) from error
    if words and "--prompt" in flags:
        raise BatchError("the prompt is given twice (words and --prompt); keep one")
    if words:
        namespace.prompt = " ".join(words)
    return request_from_args(namespace)


def _without_comment(text: str) -> str:
    """The line up to its comment: a `#` at its start or after whitespace, outside quotes (shlex's
    own comments also began inside a word: "F# minor" became "F", "--key C#m" lost the key)."""
    quote, escaped, before = None, False, " "
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and before.isspace():
            return text[:index]
        before = char
    return text


def read_lines(prompts: Path) -> list[str]:
    """The lines of a prompts file, refused at once when it is not a regular file, too large,
    not UTF-8 or holds a line longer than MAX_LINE_CHARS (read line by line, never whole)."""
    import stat

    try:
        info = prompts.stat()
    except FileNotFoundError as error:
        raise BatchError(f"PROMPTS: {prompts} does not exist") from error
    except OSError as error:
        raise BatchError(f"PROMPTS: {prompts} cannot be read ({error.strerror})") from error
    if not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
        raise BatchError(f"PROMPTS: {prompts} is {kind}; give a text file, one prompt a line")
    if info.st_size > MAX_PROMPTS_BYTES:
        raise BatchError(f"PROMPTS: {prompts} is {info.st_size / 2**20:.0f} MB; a prompts file holds at most "
                         f"{MAX_PROMPTS_BYTES // 2**20} MB (split it into several batches)")
    lines = []
    try:
        with open(prompts, encoding="utf-8", newline="") as source:
            while line := source.readline(MAX_LINE_CHARS + 2):
                if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
                    raise BatchError(f"{prompts}:{len(lines) + 1}: the line is longer than {MAX_LINE_CHARS} "
                                     "characters; a line holds one prompt and its flags")
                lines.append(line.rstrip("\r\n"))
    except UnicodeDecodeError as error:
        raise BatchError(f"PROMPTS: {prompts} is not UTF-8 text (one prompt a line)") from error
    except OSError as error:
        raise BatchError(f"PROMPTS: {prompts} cannot be read ({error.strerror})") from error
    return lines


def read_items(prompts: Path, defaults: argparse.Namespace, out_dir: Path, model: Path | None) -> list[BatchItem]:
    """Every line of `prompts` as a checked BatchItem; the first bad line raises a BatchError
    "FILE:LINE: what is wrong", before anything slow (the model is not loaded)."""
    from stemforge.pipeline.run import check_inputs
    from stemforge.symbolic.decoding.model import read_model_info
    from stemforge.symbolic.music.conditions import validate

    lines = read_lines(prompts)
    max_bars = read_model_info(model).max_bars
    parser = line_parser()
    items: list[BatchItem] = []
    for number, text in enumerate(lines, 1):
        try:
            request = parse_line(text, defaults, parser)
            if request is None:
                continue
            request = dataclasses.replace(request, model=model, out=None)
            inputs = check_inputs(request)  # out=None: a finished item's folder exists on purpose
            validate(inputs.conditions, max_bars)
        except UserError as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise BatchError(f"{prompts}:{number}: {message}") from error
        name = item_name(number, request)
        items.append(BatchItem(number, text.strip(), name, dataclasses.replace(request, out=out_dir / ITEMS / name)))
    if not items:
        raise BatchError(f"PROMPTS: {prompts} has no prompts (one a line; # at a line's start begins a comment)")
    return items


# ------------------------------------------------------------------ the batch folder and its index

def open_batch_dir(out_dir: Path):
    """Create DIR, or reuse it when it is a batch folder (resume); never take over another folder.
    Returns the held lock (one batch per folder at a time)."""
    if out_dir.exists():
        if not (out_dir / "index.json").is_file():
            raise BatchError(f"--out: {out_dir} exists and is not a batch folder (no index.json); choose a new "
                             "folder (results are never overwritten)")
    else:
        problem = output_problem(out_dir)
        if problem:
            raise BatchError(f"--out: {problem}")
    (out_dir / ITEMS).mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / ".batch.lock", "a+")  # noqa: SIM115 - held while the batch runs
    if fcntl is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            lock.close()
            raise BatchError(f"--out: another `pipeline batch` is writing {out_dir}; wait for it") from error
    remove_stale_partials(out_dir / ITEMS)  # an interrupted earlier call's (a running worker's stay)
    shutil.rmtree(out_dir / SCRATCH, ignore_errors=True)  # a killed earlier call's job store
    return lock


def take_rows(item: BatchItem, out_dir: Path) -> list[dict]:
    """The index rows of a finished item: one per take, paths relative to DIR."""
    folder = item.request.out
    runs = [folder] if (folder / MANIFEST_NAME).is_file() else sorted(
        (p for p in folder.glob("take*") if (p / MANIFEST_NAME).is_file()), key=lambda p: int(p.name[4:]))
    rows = []
    for number, run_dir in enumerate(runs, 1):
        manifest = RunManifest.read(run_dir)
        relative = run_dir.relative_to(out_dir).as_posix()
        files = {"midi": {role: f"{relative}/{path}" for role, path in manifest.midi.items()},
                 "stems": {role: f"{relative}/{path}" for role, path in manifest.stems.items()},
                 "mix": f"{relative}/{manifest.mix}" if manifest.mix else None,
                 "live_set": f"{relative}/{manifest.live_set}" if manifest.live_set else None}
        c = manifest.conditions
        rows.append({"take": number, "seed": manifest.seed, "genre": c.genre, "bpm": c.bpm, "key": c.key,
                     "bars": c.bars, "folder": relative, "files": files, "timings": manifest.timings})
    return rows


def is_finished(item: BatchItem) -> bool:
    folder = item.request.out
    return (folder / MANIFEST_NAME).is_file() or (folder / "take1" / MANIFEST_NAME).is_file()


CSV_COLUMNS = ("line", "prompt", "status", "take", "seed", "genre", "bpm", "key", "bars", "folder", "mix",
               "stems", "midi", "live_set", "load_s", "compose_s", "render_s", "total_s", "error")


def _csv_rows(item: BatchItem) -> list[dict]:
    base = {"line": item.line, "prompt": item.text, "status": item.status, "error": item.error or ""}
    if not item.takes:
        return [{**base, "folder": f"{ITEMS}/{item.name}"}]
    rows = []
    for take in item.takes:
        files, timings = take["files"], take["timings"]
        rows.append({**base, "take": take["take"], "seed": take["seed"], "genre": take["genre"], "bpm": take["bpm"],
                     "key": take["key"], "bars": take["bars"], "folder": take["folder"], "mix": files["mix"] or "",
                     "stems": ";".join(files["stems"].values()), "midi": files["midi"].get("full", ""),
                     "live_set": files["live_set"] or "",
                     **{f"{k}_s": timings.get(k, "") for k in ("load", "compose", "render", "total")}})
    return rows


def write_index(out_dir: Path, prompts: Path, items: list[BatchItem], wall_seconds: float,
                csv_items: list[BatchItem] | None = None) -> None:
    """index.json and index.csv, each replaced whole (symbolic/paths.write_atomic); index.csv
    lists `csv_items` (default: every item) in line order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items if csv_items is None else csv_items:
        writer.writerows(_csv_rows(item))
    write_json_index(out_dir, prompts, items, wall_seconds)
    write_atomic(out_dir / "index.csv", buffer.getvalue().encode())


def write_json_index(out_dir: Path, prompts: Path, items: list[BatchItem], wall_seconds: float) -> None:
    """index.json alone (index.csv is appended to while items run)."""
    counts = {status: sum(i.status == status for i in items) for status in ("done", "failed", "pending")}
    index = {"stemforge_batch": INDEX_VERSION, "prompts": str(prompts), "wall_seconds": round(wall_seconds, 3),
             "counts": counts,
             "items": [{"line": i.line, "prompt": i.text, "status": i.status, "error": i.error,
                        "folder": f"{ITEMS}/{i.name}", "takes": i.takes} for i in items]}
    write_atomic(out_dir / "index.json", (json.dumps(index, indent=1) + "\n").encode())


def append_index_rows(out_dir: Path, item: BatchItem) -> None:
    """An ended item's rows at the end of index.csv (what a kill -9 leaves stays true to the disk)."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n").writerows(_csv_rows(item))
    with open(out_dir / "index.csv", "a", encoding="utf-8") as index:
        index.write(buffer.getvalue())
        index.flush()


# ------------------------------------------------------------------ running

class PoolRunner:
    """Items run by one of the service's pools, fed from a job store in DIR/.scratch (the batch
    folder's, so a kill -9 leaves nothing in /tmp and the next call removes it): `WorkerPool`
    (worker processes here) or `broker.BrokerPool` (the broker's workers, with its retry of a
    job whose worker died). `make_pool(store, scratch)` builds the pool; `in_flight` is how many
    items the batch hands it ahead of the workers."""

    def __init__(self, make_pool, in_flight: int) -> None:
        self.make_pool, self.in_flight = make_pool, in_flight
        self.store = self.pool = self.scratch = None

    def open(self, scratch: Path) -> None:
        from stemforge.pipeline.jobs import JobStore

        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch = scratch
        self.store = JobStore(scratch / "jobs.sqlite3")
        self.pool = self.make_pool(self.store, scratch)

    @classmethod
    def local(cls, model: Path | None, workers: int) -> PoolRunner:
        from stemforge.pipeline.jobs import WorkerPool

        return cls(lambda store, scratch: WorkerPool(store, scratch, scratch, model, workers, JOB_TIMEOUT_SECONDS,
                                                     None, to_run_kwargs=lambda job: job.request),
                   IN_FLIGHT_PER_WORKER * workers)

    @classmethod
    def broker(cls, url: str, model: Path | None, data_dir: Path | None, out_dir: Path,
               musicgen: str | None = None) -> PoolRunner:
        """On the broker's workers: the batch folder must be inside the shared data folder, since
        the workers write the items (paths travel relative to it). `musicgen` (the batch's
        --musicgen) routes `--renderer musicgen` lines to the workers started with that name.
        The broker is reached now, before anything is written."""
        from stemforge.pipeline.broker import BrokerPool, connect

        if data_dir is None:
            raise BatchError("--data: with --broker, name the shared data folder (the workers' --data) as "
                             "mounted here")
        data_dir = Path(data_dir).expanduser().resolve()
        if not Path(out_dir).expanduser().resolve().is_relative_to(data_dir):
            raise BatchError(f"--out: {out_dir} is not inside --data {data_dir}; the broker's workers write the "
                             "items, so the batch folder must be in the folder they share")
        connect(url).close()
        return cls(lambda store, scratch: BrokerPool(url, store, data_dir, Path(out_dir).resolve() / ITEMS, model,
                                                     JOB_TIMEOUT_SECONDS, to_run_kwargs=lambda job: job.request,
                                                     musicgen=musicgen, cancel_on_stop=True),
                   IN_FLIGHT_BROKER)

    def start(self) -> None:
        self.pool.start()

    def submit(self, request: dict) -> str:
        job = self.store.add(request)
        self.pool.wake()
        return job.id

    def finished(self, job_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        ended = {}
        for job_id in job_ids:
            job = self.store.get(job_id)
            if job is not None and job.status in ("done", "failed", "cancelled"):
                ended[job_id] = (job.status, job.error)
        return ended

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        if self.store is not None:
            self.store.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def run_batch(prompts: Path, out_dir: Path, defaults: argparse.Namespace, model: Path | None, workers: int,
              make_runner: Callable[[], PoolRunner] | None = None, poll_seconds: float = 0.1) -> list[BatchItem]:
    """Render every line of `prompts` into `out_dir` (skipping the items already there); returns
    the items with their status. `make_runner` defaults to local worker processes."""
    from stemforge.symbolic.core.progress import progress_bar

    if workers < 1:
        raise BatchError(f"--workers: {workers} must be at least 1")
    items = read_items(prompts, defaults, out_dir, model)  # every line checked before anything is written
    todo = [item for item in items if not is_finished(item)]
    # the runner checks its own settings (the broker answers, --out inside --data) before anything is written
    runner = (make_runner or (lambda: PoolRunner.local(model, min(workers, len(todo)))))() if todo else None
    lock = open_batch_dir(out_dir)
    started = time.perf_counter()
    try:
        for item in items:
            if is_finished(item):
                item.status, item.takes = "done", take_rows(item, out_dir)
        write_index(out_dir, prompts, items, 0.0, csv_items=[i for i in items if i.status == "done"])
        if runner is None:
            return items
        bar = progress_bar(total=len(items), desc="batch", unit="item", initial=len(items) - len(todo))
        try:
            runner.open(out_dir / SCRATCH)
            runner.start()
            _run_items(runner, todo, out_dir, prompts, items, bar, started, poll_seconds)
        finally:
            runner.stop()
            bar.close()
            remove_stale_partials(out_dir / ITEMS)  # a Ctrl-C's running items
            write_index(out_dir, prompts, items, time.perf_counter() - started)
    finally:
        lock.close()
    return items


def _run_items(runner: PoolRunner, todo: list[BatchItem], out_dir: Path, prompts: Path, items: list[BatchItem],
               bar, started: float, poll_seconds: float) -> None:
    """Feed `todo` to the runner, IN_FLIGHT at a time, and record each item as it ends: its rows
    appended to index.csv, index.json replaced at most every INDEX_SECONDS."""
    pending = iter(todo)
    waiting: dict[str, BatchItem] = {}
    failed = 0
    last_index, index_cost = time.monotonic(), 0.0
    while True:
        while len(waiting) < runner.in_flight and (item := next(pending, None)) is not None:
            waiting[runner.submit(item.request.to_json())] = item
        if not waiting:
            return
        ended = runner.finished(list(waiting))
        if not ended:
            time.sleep(poll_seconds)
            continue
        for job_id, (status, error) in ended.items():
            item = waiting.pop(job_id)
            if status == "done" and is_finished(item):
                item.status, item.takes = "done", take_rows(item, out_dir)
            else:
                item.status, item.error = "failed", error or f"the job ended {status}"
                failed += 1
            append_index_rows(out_dir, item)
            bar.update(1)
            bar.set_postfix_str(f"{failed} failed" if failed else "")
        # index.json is O(lines) to write (~1 s at 10,000): at most 2 % of the time goes to it
        if time.monotonic() - last_index >= max(INDEX_SECONDS, 50 * index_cost):
            writing = time.monotonic()
            write_json_index(out_dir, prompts, items, time.perf_counter() - started)
            last_index, index_cost = time.monotonic(), time.monotonic() - writing


def print_summary(items: list[BatchItem], out_dir: Path, prompts: Path) -> int:
    """What `pipeline batch` prints; the exit code is 1 when an item failed (the rest are kept,
    and a second call runs only the failed and missing ones)."""
    done = sum(i.status == "done" for i in items)
    failed = [i for i in items if i.status == "failed"]
    print(f"wrote {out_dir}  ({done}/{len(items)} items done, {len(failed)} failed; index.json, index.csv)")
    for item in failed:
        print(f"error: {prompts}:{item.line}: {item.error}", file=sys.stderr)
    return 1 if failed else 0
