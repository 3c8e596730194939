"""The service's job queue: job states persist in SQLite in the data folder, and a bounded pool
of worker processes runs them with the same `pipeline.run.run()` the CLI calls.

Why processes, one long-lived per slot: a job must be killable mid-run (a client cancels it, or
it passes the per-job timeout) without leaving a half-written run folder or a wedged thread.
Each worker loads the model once (`cached_composer` is per process) and takes jobs from its own
pipe; cancelling kills that worker, removes the job's partial folder (`atomic_folder`) and spawns a new
worker. Pipes, not a shared `multiprocessing.Queue`: a process killed while holding a shared
queue's lock would wedge every other writer.

Start-up after a crash: jobs still marked `running` are marked failed ("interrupted by a service
restart") rather than requeued, so a job that brought the service down cannot do it again in a
loop; the page offers to submit it again. A `running` job whose run folder is complete (the
crash came between the folder's rename and the database update) is marked done. Queued jobs
stay queued and run after the restart.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import partial_pattern
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from stemforge.pipeline.run import RunResult
    from stemforge.symbolic.decoding.model import Composer

try:  # Unix: lets a restarted service wait until the workers of a killed one have exited
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
INTERRUPTED = "interrupted by a service restart; submit it again"
# Test-only knob: "SEED:SECONDS" makes a worker stall SECONDS (in the render stage, while the
# job's partial folder exists) on jobs whose seed is SEED, so tests can kill a job mid-run.
TEST_STALL_ENV = "STEMFORGE_TEST_STALL"
WORKER_LOCK = "workers.lock"


class JobError(UserError):
    """A job request or a job operation that cannot be done; one line naming the field."""


@dataclass
class Job:
    id: str
    status: str
    request: dict
    progress: float = 0.0
    stage: str = ""
    error: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    run_dir: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    run_dir TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
"""


def new_job_id() -> str:
    """Sortable by creation time (hex seconds) and unguessable (random tail)."""
    return f"{int(time.time()):08x}{secrets.token_hex(4)}"


def is_job_id(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


class JobStore:
    """Job rows in SQLite (WAL). One connection behind a lock: the API handlers and the
    scheduler thread share it, and every state change is one committed statement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        if row is None:
            return None
        values = dict(row)
        values["request"] = json.loads(values["request"])
        return Job(**values)

    def add(self, request: dict, max_queued: int | None = None) -> Job | None:
        """Queue a job; None when `max_queued` jobs are already waiting."""
        job = Job(new_job_id(), "queued", request, created=time.time())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if max_queued is not None:
                    (waiting,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()
                    if waiting >= max_queued:
                        self._db.execute("ROLLBACK")
                        return None
                self._db.execute(
                    "INSERT INTO jobs (id, status, request, created) VALUES (?, ?, ?, ?)",
                    (job.id, job.status, json.dumps(request), job.created),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on a full disk; a second
                    self._db.execute("ROLLBACK")  # ROLLBACK would hide that error behind "cannot rollback"
                raise
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._job(self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())

    def recent(self, limit: int) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC, id DESC LIMIT ?", (limit,))
            return [self._job(r) for r in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | {status: n for status, n in rows}

    def queue_position(self, job: Job) -> int:
        """1 = next to run."""
        with self._lock:
            (ahead,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status='queued' AND (created < ? OR (created = ? AND id < ?))",
                (job.created, job.created, job.id),
            ).fetchone()
        return ahead + 1

    def next_queued(self) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE status='queued' ORDER BY created, id LIMIT 1")
            return self._job(row.fetchone())

    def recent_durations(self, count: int = 20) -> list[float]:
        with self._lock:
            rows = self._db.execute(
                "SELECT finished - started FROM jobs WHERE status='done' AND started IS NOT NULL "
                "ORDER BY finished DESC LIMIT ?", (count,)).fetchall()
        return [r[0] for r in rows]

    def _update(self, sql: str, values: tuple) -> bool:
        with self._lock:
            return self._db.execute(sql, values).rowcount > 0

    def mark_running(self, job_id: str) -> bool:
        return self._update("UPDATE jobs SET status='running', started=?, stage='starting', progress=0 "
                            "WHERE id=? AND status='queued'", (time.time(), job_id))

    def requeue(self, job_id: str) -> bool:
        return self._update("UPDATE jobs SET status='queued', started=NULL, stage='', progress=0 "
                            "WHERE id=? AND status='running'", (job_id,))

    def set_progress(self, job_id: str, stage: str, fraction: float) -> bool:
        return self._update("UPDATE jobs SET stage=?, progress=? WHERE id=? AND status='running'",
                            (stage, max(0.0, min(1.0, float(fraction))), job_id))

    def finish(self, job_id: str, status: str, error: str | None = None, run_dir: str | None = None,
               was: tuple[str, ...] = ("running",)) -> bool:
        """Move a job from one of `was` to a final status; False when it was not in `was`
        (e.g. a result arriving for a job a client has just cancelled)."""
        assert status in FINISHED
        marks = ",".join("?" * len(was))
        return self._update(
            f"UPDATE jobs SET status=?, error=?, run_dir=?, finished=?, "
            f"progress=CASE WHEN ?='done' THEN 1 ELSE progress END, "
            f"stage=CASE WHEN ?='done' THEN 'done' ELSE stage END WHERE id=? AND status IN ({marks})",
            (status, error, run_dir, time.time(), status, status, job_id, *was),
        )

    def delete(self, job_id: str) -> bool:
        return self._update("DELETE FROM jobs WHERE id=?", (job_id,))

    def running(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status='running'").fetchall()
        return [self._job(r) for r in rows]

    def queued(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status='queued'").fetchall()
        return [self._job(r) for r in rows]


def remove_partials(jobs_dir: Path, job_id: str | None = None) -> list[Path]:
    """Delete the partial folders `run()` writes a job's folder in before its rename
    (`symbolic.paths.atomic_folder`): the job's, or every one."""
    pattern = partial_pattern(job_id or "*")
    removed = []
    for path in jobs_dir.glob(pattern):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def wait_for_orphan_workers(data_dir: Path, timeout_seconds: float = 20.0) -> None:
    """Workers hold a shared lock on `workers.lock` for their lifetime; a service killed with
    -9 leaves workers that exit within a second (they watch their parent). Taking the lock
    exclusively once proves none of them can still write into the jobs folder."""
    if fcntl is None:
        return
    with open(data_dir / WORKER_LOCK, "a+") as handle:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                return
            except BlockingIOError as error:
                if time.monotonic() > deadline:
                    raise JobError(f"--data: workers of an earlier service still run in {data_dir}; "
                                   "stop them and start again") from error
                time.sleep(0.1)


def recover(store: JobStore, jobs_dir: Path) -> list[str]:
    """After a restart: finish what a crash left `running`, remove partial folders, and
    settle a queued job whose folder already exists (its result was lost while the disk was
    full): done when the folder is complete, else the folder goes and the job runs again."""
    notes = []
    remove_partials(jobs_dir)
    for job in store.queued():
        run_dir = jobs_dir / job.id
        if (run_dir / MANIFEST_NAME).is_file():
            store.finish(job.id, "done", run_dir=str(run_dir), was=("queued",))
            notes.append(f"job {job.id}: finished before the restart; marked done")
        elif run_dir.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
    for job in store.running():
        run_dir = jobs_dir / job.id
        if (run_dir / MANIFEST_NAME).is_file():
            store.finish(job.id, "done", run_dir=str(run_dir))
            notes.append(f"job {job.id}: finished before the restart; marked done")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            store.finish(job.id, "failed", error=INTERRUPTED)
            notes.append(f"job {job.id}: {INTERRUPTED}")
    return notes


# ------------------------------------------------------------------ the worker process

def _parse_stall(value: str) -> tuple[int, float] | None:
    seed, _, seconds = value.partition(":")
    try:
        return int(seed), float(seconds)
    except ValueError:
        return None


def _watch_parent(parent_pid: int) -> None:
    """Exit when the service dies (kill -9 included): an orphan must not finish a job into
    a folder that the restarted service has already reported failed."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.25)


def worker_threads(workers: int, asked: int | None = None) -> int:
    """Threads for each of `workers` worker processes on this machine: `asked`, or the cores
    shared among them (a job's takes decode side by side in them, and torch uses them)."""
    from stemforge.symbolic.core.cores import usable_cores

    return asked or max(1, usable_cores() // workers)


def load_worker_composer(model: str | None, threads: int) -> Composer:
    """What a worker process of either back end does once, before its first job: the composer
    loaded and its sampler warmed (grammar tables, the compiled decoder), the renderer imported,
    so the first job does not pay for them. `threads` goes to OMP_NUM_THREADS, which a job's
    takes read (`kernels.decode_threads`) and torch reads when a job loads it (the torch
    decoder, MusicGen)."""
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
    from stemforge.pipeline.run import cached_composer
    from stemforge.symbolic.runtime.compose import sampler_for

    composer = cached_composer(model)
    sampler_for(composer).warm()
    import pyloudnorm  # noqa: F401 - the loudness meter every render runs: its scipy.signal import is ~1 s

    import stemforge.audio.render  # noqa: F401 - imported for its cost, not its names
    return composer


def worker_main(conn: Connection, model: str | None, data_dir: str, threads: int) -> None:
    """One worker slot: load the model once, then run jobs sent over `conn` until EOF.

    SIGTERM and SIGINT are the service's to act on, not the worker's: a systemd stop (SIGTERM to
    the whole process group) or Ctrl-C in a terminal reaches every process, and a worker that
    died of it failed its job ("worker process died (exit code -15)") before the service could
    put the job back in the queue. The service stops its workers itself (`WorkerPool.stop`)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if fcntl is not None:
        lock = open(Path(data_dir) / WORKER_LOCK, "a+")  # noqa: SIM115 - held for the process lifetime
        fcntl.flock(lock, fcntl.LOCK_SH)
    try:
        composer = load_worker_composer(model, threads)
    except Exception as error:  # the service checked the model already; this is unexpected
        conn.send(("fatal", f"worker could not load the model: {error}"))
        return
    stall = _parse_stall(os.environ.get(TEST_STALL_ENV, ""))
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, orders = message  # [(job id, RunRequest.to_json()), ...]: composed together where they can be
        _run_jobs(conn, orders, composer, stall)


def _run_jobs(conn: Connection, orders: list[tuple[str, dict]], composer: Composer,
              stall: tuple[int, float] | None) -> None:
    """A worker's jobs of one dispatch through `run_together` (one job: the same path as `run`),
    each job's end sent as soon as it is known: ("done", id, run dir) or ("failed", id, one-line
    error)."""
    from stemforge.pipeline.run import RunRequest, run_together

    requests: list[tuple[str, RunRequest]] = []
    for job_id, kwargs in orders:
        try:
            requests.append((job_id, RunRequest.from_json(kwargs)))
        except UserError as error:
            conn.send(("failed", job_id, _one_line(error)))

    def progress_of(job_id: str, seed: int | None):
        stall_seconds = stall[1] if stall and seed == stall[0] else 0.0
        stalled = {"done": False}

        def progress(stage: str, fraction: float) -> None:
            conn.send(("progress", job_id, stage, fraction))
            if stall_seconds and stage.startswith("render") and not stalled["done"]:
                stalled["done"] = True
                time.sleep(stall_seconds)

        return progress

    def finished(number: int, outcome: RunResult | Exception) -> None:
        job_id = requests[number][0]
        if isinstance(outcome, UserError):  # bad input: the one-line message a CLI user would see
            conn.send(("failed", job_id, _one_line(outcome)))
        elif isinstance(outcome, Exception):
            traceback.print_exception(outcome, file=sys.stderr)
            conn.send(("failed", job_id, f"internal error: {type(outcome).__name__}: {outcome}".splitlines()[0]))
        else:
            conn.send(("done", job_id, str(outcome.run_dir)))

    if requests:
        run_together([request for _, request in requests],
                     [progress_of(job_id, request.seed) for job_id, request in requests], composer, finished)


def _one_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# ------------------------------------------------------------------ the pool (service side)

@dataclass
class _Slot:
    number: int
    process: multiprocessing.Process | None = None
    conn: Connection | None = None
    ready: bool = False
    job_ids: list[str] = field(default_factory=list)  # the jobs it runs (composed together)
    job_started: float = 0.0
    dispatched: int = 0  # jobs sent at job_started: each brings its own time limit
    spawned: float = 0.0
    failed_starts: int = 0  # exits before "ready" in a row: respawn with a growing delay
    last_error: str = ""


class SchedulerHealth:
    """What /health says of a pool's scheduler thread (the local `WorkerPool` and the broker's
    `BrokerPool` each run one, setting `_thread` and `_last_turn`)."""

    STUCK_SECONDS = 30.0  # a scheduler loop that has not turned for this long is reported stuck
    _thread: threading.Thread | None
    _last_turn: float

    def scheduler_state(self) -> str:
        """"ok", "stuck" (no turn for STUCK_SECONDS) or "dead" (its thread is gone)."""
        if self._thread is None or not self._thread.is_alive():
            return "dead"
        return "stuck" if time.monotonic() - self._last_turn > self.STUCK_SECONDS else "ok"


WORKER_BATCH = 4  # queued jobs a free worker composes together (configs/service.yaml: worker_batch)


class WorkerPool(SchedulerHealth):
    """`workers` long-lived worker processes fed from the SQLite queue by one scheduler thread.

    `to_run_kwargs(job)` turns a stored job request into its `RunRequest.to_json()`
    (JSON-able: paths as strings); it may raise ValueError to fail the job.

    A free worker takes up to `batch` queued jobs at once, its share of the queue, and
    composes them in one batched pass (`run.run_together`: each job's files are what it
    makes alone); more than one only while jobs wait, so a lone job never waits for company.
    """

    RESPAWN_DELAY_SECONDS = 1.0

    def __init__(self, store: JobStore, data_dir: Path, jobs_dir: Path, model: Path | None, workers: int,
                 timeout_seconds: float, threads: int | None, to_run_kwargs, batch: int = WORKER_BATCH) -> None:
        if workers < 1:
            raise JobError(f"--workers: {workers} must be at least 1")
        if batch < 1:
            raise JobError(f"worker_batch: {batch} must be at least 1")
        self.batch = batch
        self.store, self.data_dir, self.jobs_dir = store, data_dir, jobs_dir
        self.model = str(model) if model is not None else None
        self.timeout_seconds = timeout_seconds
        self.threads = worker_threads(workers, threads)
        self.to_run_kwargs = to_run_kwargs
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(n) for n in range(workers)]
        self._lock = threading.RLock()
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_turn = time.monotonic()  # the end of the last turn that succeeded
        self._scheduler_error = ""  # the last exception a scheduler turn survived
        # job ends (job, status, error, run dir) the store could not take yet (a full disk)
        self._unrecorded: list[tuple[str, str, str | None, str | None]] = []

    # -- lifecycle
    def start(self) -> None:
        with self._lock:
            for slot in self._slots:
                self._spawn(slot)
        self._thread = threading.Thread(target=self._loop, name="stemforge-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for slot in self._slots:
                if slot.job_ids:  # a clean stop runs the jobs again after the restart
                    self._kill(slot)
                    for job_id in slot.job_ids:
                        remove_partials(self.jobs_dir, job_id)
                        self.store.requeue(job_id)
                    slot.job_ids = []
                elif slot.process is not None:
                    if slot.conn is not None:  # None once its pipe closed (the worker is gone already)
                        try:
                            slot.conn.send(("stop",))
                        except OSError:
                            pass
                    slot.process.join(timeout=2)
                    self._kill(slot)

    def wake(self) -> None:
        try:
            self._wake_w.send(b"")
        except OSError:
            pass

    @property
    def workers(self) -> int:
        return len(self._slots)

    def status(self) -> dict:
        # never wait long on the scheduler's lock: a scheduler hung inside a turn (a stalled
        # disk) must show up as "stuck" on /health, not hang /health too
        scheduler = {"scheduler": self.scheduler_state(), "scheduler_error": self._scheduler_error}
        if not self._lock.acquire(timeout=1.0):
            return {"workers": len(self._slots), "ready": 0, "busy": 0, "errors": [], **scheduler,
                    "scheduler": "stuck"}
        try:
            return {"workers": len(self._slots), "ready": sum(s.ready for s in self._slots),
                    "busy": sum(bool(s.job_ids) for s in self._slots),
                    "errors": [s.last_error for s in self._slots if s.last_error], **scheduler}
        finally:
            self._lock.release()

    def retry_after_seconds(self, queued: int) -> int:
        """A fair guess for 429 Retry-After: the queue ahead divided over the workers."""
        durations = self.store.recent_durations()
        typical = statistics.median(durations) if durations else 10.0
        return max(1, math.ceil(typical * (queued + 1) / len(self._slots)))

    # -- operations called from request handlers
    def cancel(self, job_id: str) -> bool:
        """Kill the worker running `job_id`; True when it was running here. Jobs composing
        beside it go back to the queue."""
        with self._lock:
            for slot in self._slots:
                if job_id in slot.job_ids:
                    self._abort(slot, "cancelled", "cancelled by a client", only=job_id)
                    return True
        return False

    # -- internals (always under self._lock)
    def _spawn(self, slot: _Slot) -> None:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main, args=(child_conn, self.model, str(self.data_dir), self.threads),
            name=f"stemforge-worker-{slot.number}", daemon=True,
        )
        process.start()
        child_conn.close()
        slot.process, slot.conn, slot.ready, slot.spawned = process, parent_conn, False, time.monotonic()

    def _kill(self, slot: _Slot) -> None:
        if slot.process is not None:
            slot.process.kill()
            slot.process.join(timeout=5)
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False

    def _abort(self, slot: _Slot, status: str, error: str, only: str | None = None) -> None:
        """Kill the slot's worker and end its jobs with `status`, or only job `only` and queue
        the others again (they did nothing wrong)."""
        job_ids = slot.job_ids
        self._kill(slot)
        slot.job_ids = []
        for job_id in job_ids:
            remove_partials(self.jobs_dir, job_id)
            # It may have finished between the decision and the kill: a cancelled job leaves nothing.
            shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)
            if only is None or job_id == only:
                self._record(job_id, status, error=error)
            else:
                self.store.requeue(job_id)
        self.wake()  # the scheduler respawns the slot

    def _record(self, job_id: str, status: str, error: str | None = None, run_dir: str | None = None) -> None:
        """A job's end into the store, or, when the store cannot take it (a full disk), kept
        for a later turn; the slot is free either way."""
        try:
            self.store.finish(job_id, status, error=error, run_dir=run_dir)
        except Exception as problem:  # noqa: BLE001 - recorded on a later turn
            self._unrecorded.append((job_id, status, error, run_dir))
            self._scheduler_error = f"{type(problem).__name__}: {problem}"

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._turn()
                self._last_turn = time.monotonic()  # only a turn that succeeded: failing ones go "stuck"
            except Exception as error:  # noqa: BLE001 - one bad turn (a full disk) must not stop every job
                self._scheduler_error = f"{type(error).__name__}: {error}"
                print(f"stemforge: scheduler: {self._scheduler_error}; retrying", file=sys.stderr)
                self._stopping.wait(1.0)

    def _turn(self) -> None:
        with self._lock:
            conns = {s.conn: s for s in self._slots if s.conn is not None}
        try:
            ready = wait([*conns, self._wake_r], timeout=0.25)
        except OSError:  # a connection closed by cancel() between the snapshot and wait()
            ready = []
        if self._stopping.is_set():
            return
        with self._lock:
            while self._unrecorded:
                job_id, status, error, run_dir = self._unrecorded[0]
                self.store.finish(job_id, status, error=error, run_dir=run_dir)  # raises while the disk is full
                self._unrecorded.pop(0)
            for conn in ready:
                if conn is self._wake_r:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                    continue
                slot = conns[conn]
                if slot.conn is conn:
                    self._drain(slot)
            self._check_slots()
            self._dispatch()
        self._scheduler_error = ""

    def _drain(self, slot: _Slot) -> None:
        try:
            while slot.conn is not None and slot.conn.poll():
                self._handle(slot, slot.conn.recv())
        except (EOFError, OSError):
            if slot.conn is not None:
                slot.conn.close()
            slot.conn = None  # the process check below notices the exit

    def _handle(self, slot: _Slot, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            slot.ready, slot.last_error, slot.failed_starts = True, "", 0
        elif kind == "fatal":
            slot.last_error = message[1]
            print(f"stemforge: {message[1]}", file=sys.stderr)
        elif kind == "progress" and message[1] in slot.job_ids:
            self.store.set_progress(message[1], message[2], message[3])  # if it raises: only a stale bar
        elif kind == "done" and message[1] in slot.job_ids:
            slot.job_ids.remove(message[1])
            self._record(message[1], "done", run_dir=message[2])
        elif kind == "failed" and message[1] in slot.job_ids:
            slot.job_ids.remove(message[1])
            remove_partials(self.jobs_dir, message[1])
            self._record(message[1], "failed", error=message[2])

    def _check_slots(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            alive = slot.process is not None and slot.process.is_alive()
            if slot.job_ids and not alive:
                code = slot.process.exitcode if slot.process is not None else None
                self._abort(slot, "failed", f"worker process died (exit code {code}) while running the job")
            elif slot.job_ids and now - slot.job_started > self.timeout_seconds * slot.dispatched:
                self._abort(slot, "failed", f"timeout: the job ran longer than {self.timeout_seconds:g} s "
                            "(job_timeout_seconds in the service config); ask for fewer bars")
            elif slot.process is not None and not alive:
                slot.failed_starts += 0 if slot.ready else 1
                self._kill(slot)
            delay = min(60.0, self.RESPAWN_DELAY_SECONDS * 2 ** slot.failed_starts)
            if slot.process is None and now - slot.spawned > delay:
                self._spawn(slot)

    def _dispatch(self) -> None:
        free = [slot for slot in self._slots if slot.ready and not slot.job_ids]
        for number, slot in enumerate(free):
            # its share of the queue, so two free workers take one job each, not one two
            share = math.ceil(self.store.counts()["queued"] / (len(free) - number))
            orders: list[tuple[str, dict]] = []
            while len(orders) < min(self.batch, share):
                job = self.store.next_queued()
                if job is None:
                    break
                if not self.store.mark_running(job.id):
                    continue
                try:
                    orders.append((job.id, self.to_run_kwargs(job)))
                except UserError as error:
                    self.store.finish(job.id, "failed", error=str(error).splitlines()[0])
            if not orders:
                return
            try:
                slot.conn.send(("run", orders))
            except OSError:
                for job_id, _ in orders:
                    self.store.requeue(job_id)
                self._kill(slot)
                continue
            slot.job_ids, slot.job_started = [job_id for job_id, _ in orders], time.monotonic()
            slot.dispatched = len(orders)
