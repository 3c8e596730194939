"""Jobs past one machine: the service's jobs (and `pipeline batch` items) on RQ over Redis.

    pipeline serve  --broker redis://:PASSWORD@10.0.0.5:6379/0 --data /mnt/stemforge
    pipeline worker --broker redis://:PASSWORD@10.0.0.5:6379/0 --data /mnt/stemforge   # on any machine

Why RQ: the smallest of the well-kept Redis task queues (one dependency, `redis`), jobs are plain
function calls, and its SimpleWorker runs them in the worker's own process, so the composer loaded
at start stays loaded (and warm) between jobs. Celery and Dramatiq bring far more machinery
(brokers, result backends, middlewares) for nothing this service uses.

What RQ carries and what stays ours:
- The API keeps its SQLite job store (`pipeline.jobs.JobStore`): states, the 429 bound, the
  list a restarted API shows. `BrokerPool` (the broker's `WorkerPool`) enqueues each queued job
  on RQ and mirrors what workers report back into that store, so the API, the page and the job
  states are the same on both back ends.
- Queues are per model (`model_queue`: its weights' sha256): a worker takes only jobs for the
  model it loaded. Jobs are JSON (RQ's JSONSerializer, never pickle: whoever can write to Redis
  must not be able to run code in the API). Paths travel relative to the shared data folder, so
  each machine may mount it where it likes.
- Promises RQ alone does not keep, kept with three small Redis keys per job: progress and the
  outcome (`stemforge:job:<rq id>`), a heartbeat the worker renews every second
  (`stemforge:beat:<rq id>`), and a stop flag (`stemforge:stop:<rq id>`) the API sets to cancel
  or time a job out. A worker checks the flag at every progress step and stops `run()` there
  (which removes its partial folder); one that does not stop within HARD_STOP_SECONDS exits. A
  job whose heartbeat is gone (kill -9, a lost machine) is retried once on another worker, and
  failed with its reason the second time: never lost, never left "running".

This module is the API side (and what both sides share); the worker is pipeline/broker_worker.py.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

from stemforge.pipeline.jobs import (
    FINISHED,
    Job,
    JobError,
    JobStore,
    SchedulerHealth,
    remove_partials,
)
from stemforge.pipeline.renderers import needs_weights
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import partial_owner, partial_pattern
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME

KEY = "stemforge"
BEAT_SECONDS = 1.0  # a worker renews a running job's heartbeat this often
BEAT_TTL = 3  # ... and it expires after this many seconds without renewal
LOST_AFTER_SECONDS = 5.0  # a started job without a heartbeat this long was lost with its worker
HARD_STOP_SECONDS = 20.0  # a job asked to stop that has not within this long: its worker exits
STATE_TTL = 7 * 24 * 3600  # how long Redis keeps a job's progress and outcome
RETRIES = 1  # a job whose worker died runs once more elsewhere
EVENTS = f"{KEY}:events"  # pub/sub channel: a worker announces a job's start and end, the API wakes at once
# request paths inside the shared data folder (a job carries them relative to it)
PATH_FIELDS = ("out", "from_run", "like", "seed_midi", "soundfont")
# fields that are a sound's name or a path: a path travels as "./relative" inside the data folder
NAME_OR_PATH_FIELDS = ("kit", "preset")
PERFORM = "stemforge.pipeline.broker_worker.perform"  # the job function, by name: the API never imports it
REQUEUED = "requeued"  # a job's outcome when its worker was stopped mid-job: the API queues it again


class BrokerError(UserError):
    """A broker address or worker setting that cannot be used; one line naming the flag."""


def connect(url: str):
    """A Redis connection that answers, or a one-line error naming --broker."""
    import redis

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise BrokerError(f"--broker: {url!r} is not a Redis URL; use redis://[:PASSWORD@]HOST:6379/0")
    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        connection.ping()
    except redis.AuthenticationError as error:
        raise BrokerError(f"--broker: Redis refused the password ({error}); put it in the URL as "
                          "redis://:PASSWORD@HOST:6379/0") from error
    except (redis.ConnectionError, redis.TimeoutError, ValueError) as error:
        raise BrokerError(f"--broker: cannot reach {redacted(url)} ({error}); is redis-server running and "
                          "reachable from here?") from error
    return connection


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}://{rest}"


def model_queue(model: Path | None, musicgen: str | None = None) -> str:
    """The RQ queue of a model's jobs: named by its weights, so only workers that loaded the same
    model take them (a model folder may sit at another path on each machine)."""
    import hashlib

    from stemforge.symbolic.core.hashing import file_sha256
    from stemforge.symbolic.decoding.model import read_model_info

    info = read_model_info(model)
    sha = info.meta.get("weights_sha256") or file_sha256(info.path / "model.safetensors")
    name = f"{KEY}-model-{sha[:16]}"
    if musicgen:  # MusicGen jobs only to workers started with the same --musicgen name
        name += f"-musicgen-{hashlib.sha256(musicgen.encode()).hexdigest()[:8]}"
    return name


def relative_request(kwargs: dict, data_dir: Path) -> dict:
    """A RunRequest's JSON with its data-folder paths relative to `data_dir` (and no model: the
    worker uses its own copy of the model the queue names). A kit or preset that is a file or
    folder here travels as "./<path in the data folder>"; anything else is a name (a found kit,
    a shipped preset) each worker looks up among its own."""
    moved = dict(kwargs, model=None)
    for name in (*PATH_FIELDS, *NAME_OR_PATH_FIELDS):
        value = moved.get(name)
        if not value:
            continue
        path = Path(value).expanduser()
        if name in NAME_OR_PATH_FIELDS and not path.exists():
            continue  # a name
        path = path.resolve()
        if not path.is_relative_to(data_dir):
            raise JobError(f"{name}: {path} is outside the shared data folder {data_dir}; workers on other "
                           "machines could not reach it" + (" (name a kit or preset by its name instead)"
                                                            if name in NAME_OR_PATH_FIELDS else ""))
        relative = path.relative_to(data_dir).as_posix()
        moved[name] = f"./{relative}" if name in NAME_OR_PATH_FIELDS else relative
    return moved


def workers_key(queue: str) -> str:
    """A sorted set per queue: worker name -> the time of its last heartbeat. Workers renew it
    every second, so it is back within a second of Redis returning empty (RQ's own worker
    registry is not: a worker that survived a Redis restart stayed invisible)."""
    return f"{KEY}:workers:{queue}"


def job_keys(rq_id: str) -> tuple[str, str, str]:
    return f"{KEY}:job:{rq_id}", f"{KEY}:beat:{rq_id}", f"{KEY}:stop:{rq_id}"


def json_serializer():
    """JSON, never pickle: whoever can write to Redis must not be able to run code in the API or
    the workers."""
    from rq.serializers import JSONSerializer

    return JSONSerializer


# ------------------------------------------------------------------ the API side

class BrokerPool(SchedulerHealth):
    """The broker's `WorkerPool`: the same calls (start, stop, wake, cancel, status,
    retry_after_seconds), with the jobs run by `pipeline worker` processes anywhere.

    One scheduler thread enqueues the store's queued jobs on RQ and folds what workers report
    (started, progress, outcome, a lost heartbeat) back into the store. `to_run_kwargs(job)` is
    the RunRequest JSON of a stored job, with absolute paths inside `data_dir`."""

    def __init__(self, url: str, store: JobStore, data_dir: Path, jobs_dir: Path, model: Path | None,
                 timeout_seconds: float, to_run_kwargs, musicgen: str | None = None,
                 cancel_on_stop: bool = False) -> None:
        from rq import Queue

        self.cancel_on_stop = cancel_on_stop  # a batch's jobs end with it; the service's outlive the API
        self.connection = connect(url)
        self.url = url
        self.store, self.data_dir, self.jobs_dir = store, data_dir, jobs_dir
        self.timeout_seconds = timeout_seconds
        self.to_run_kwargs = to_run_kwargs
        self.queue_name = model_queue(model)
        self.musicgen_queue = model_queue(model, musicgen) if musicgen else None
        serializer = json_serializer()
        self._queues = {name: Queue(name, connection=self.connection, serializer=serializer)
                        for name in filter(None, (self.queue_name, self.musicgen_queue))}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_turn = time.monotonic()
        self._scheduler_error = ""
        self._active: dict[str, str] = {}  # job id -> rq id, for the store's queued and running jobs
        self._settling: dict[str, str] = {}  # job id -> rq id: ended in the store, still on a worker
        self._lost_since: dict[str, float] = {}  # rq id -> when its heartbeat was first missed

    # -- lifecycle
    def start(self) -> None:
        self._reattach()
        self._thread = threading.Thread(target=self._loop, name="stemforge-broker", daemon=True)
        self._thread.start()
        threading.Thread(target=self._listen, name="stemforge-broker-events", daemon=True).start()

    def _listen(self) -> None:
        """Wake the scheduler when a worker starts or ends a job: without it a finished job waited
        for the next poll (a job's latency over its run() was 0.19 s, with it 0.11 s; local 0.08 s:
        bench/service.py). The poll stays, for messages missed while Redis was away."""
        while not self._stopping.is_set():
            events = self.connection.pubsub(ignore_subscribe_messages=True)
            try:
                events.subscribe(EVENTS)
                while not self._stopping.is_set():
                    if events.get_message(timeout=1.0) is not None:
                        self._wake.set()
            except Exception:  # noqa: BLE001 - Redis away for a moment: the poll carries on meanwhile
                self._stopping.wait(1.0)
            finally:
                events.close()

    def stop(self) -> None:
        """The service's jobs stay on the broker: workers finish them, and the next API start
        picks them up. With `cancel_on_stop` (a batch) they are stopped wherever they run, so a
        second call cannot race a first one's leftovers for the same folder."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.cancel_on_stop:
            with self._lock:
                for rq_id in self._active.values():
                    self._stop(rq_id, "cancelled: the batch was stopped")
                    self._cancel_queued(rq_id)
                self._active.clear()

    def wake(self) -> None:
        self._wake.set()

    @property
    def workers(self) -> int:
        return max(1, self._worker_count())

    def _worker_count(self) -> int:
        """Workers on this model's queues that renewed their heartbeat in the last BEAT_TTL
        seconds (`workers_key`; RQ alone keeps a killed worker registered for minutes, and forgets
        a living one when Redis restarts)."""
        now = time.time()
        names: set[bytes] = set()
        for queue in self._queues:
            self.connection.zremrangebyscore(workers_key(queue), "-inf", now - BEAT_TTL)
            names.update(self.connection.zrangebyscore(workers_key(queue), now - BEAT_TTL, "+inf"))
        return len(names)

    def status(self) -> dict:
        scheduler = {"scheduler": self.scheduler_state(), "scheduler_error": self._scheduler_error}
        try:
            count = self._worker_count()
        except Exception as error:  # noqa: BLE001 - Redis away: /health says so instead of failing
            return {"workers": 0, "ready": 0, "busy": 0, "errors": [f"broker: {error}"], **scheduler}
        return {"workers": count, "ready": count, "busy": len(self._active), "errors": [], **scheduler}

    def retry_after_seconds(self, queued: int) -> int:
        import math
        import statistics

        durations = self.store.recent_durations()
        typical = statistics.median(durations) if durations else 10.0
        return max(1, math.ceil(typical * (queued + 1) / max(1, self._worker_count())))

    # -- operations called from request handlers
    def cancel(self, job_id: str, wait_seconds: float = 10.0) -> bool:
        """Stop `job_id` on whichever worker runs it; True when it was running. Waits (up to
        `wait_seconds`) until the worker has stopped, so nothing of it is left on disk."""
        with self._lock:
            rq_id = self._active.get(job_id)
            job = self.store.get(job_id)
            if rq_id is None or job is None or job.status != "running":
                return False
            self._stop(rq_id, "cancelled by a client")
            self.store.finish(job_id, "cancelled", error="cancelled by a client")
            self._settling[job_id] = self._active.pop(job_id)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and job_id in self._settling:
            self._wake.set()
            time.sleep(0.05)
        return True

    # -- internals
    def _stop(self, rq_id: str, reason: str) -> None:
        self.connection.set(job_keys(rq_id)[2], reason, ex=STATE_TTL)

    def _rq_id(self, job_id: str, attempt: int) -> str:
        return job_id if attempt == 0 else f"{job_id}-retry{attempt}"

    def _reattach(self) -> None:
        """After an API (re)start: the store's queued and running jobs are still on the broker (or
        ran to their end while the API was away); partial folders of jobs that ended are removed.
        A job on no attempt at all is enqueued (queued) or treated as lost (running)."""
        from rq.job import Job as RQJob

        for job in [*self.store.queued(), *self.store.running()]:
            ids = [self._rq_id(job.id, a) for a in range(RETRIES, -1, -1)]
            found = [rq for rq in RQJob.fetch_many(ids, connection=self.connection, serializer=json_serializer()) if rq]
            if found:
                self._active[job.id] = found[0].id
            elif job.status == "running":
                self._active[job.id] = self._rq_id(job.id, 0)  # its beat is missing: handled as lost
        active = set(self._active)
        for partial in self.jobs_dir.glob(partial_pattern()):
            owner = partial_owner(partial)
            if owner not in active:  # jobs that ended; a running job's partial may be on a worker now
                shutil.rmtree(partial, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._turn()
                self._last_turn = time.monotonic()
                self._scheduler_error = ""
            except Exception as error:  # noqa: BLE001 - Redis or the disk away for a moment
                self._scheduler_error = f"{type(error).__name__}: {error}"
                print(f"stemforge: broker scheduler: {self._scheduler_error}; retrying", file=sys.stderr)
                self._stopping.wait(1.0)
            self._wake.wait(0.2)
            self._wake.clear()

    def _turn(self) -> None:
        with self._lock:
            for job in self.store.queued():
                if job.id not in self._active:
                    self._enqueue(job, attempt=0)
            for job_id, rq_id in list(self._active.items()):
                self._follow(job_id, rq_id)
            for job_id, rq_id in list(self._settling.items()):
                self._settle(job_id, rq_id)

    def _enqueue(self, job: Job, attempt: int) -> None:
        try:
            kwargs = relative_request(self.to_run_kwargs(job), self.data_dir)
        except UserError as error:
            self.store.finish(job.id, "failed", error=str(error).splitlines()[0], was=("queued",))
            return
        queue = self._queues[self.musicgen_queue if needs_weights(kwargs.get("renderer")) and self.musicgen_queue
                             else self.queue_name]
        rq_id = self._rq_id(job.id, attempt)
        queue.enqueue_call(PERFORM, args=(job.id, kwargs, self.timeout_seconds), job_id=rq_id,
                           timeout=int(self.timeout_seconds + HARD_STOP_SECONDS + 60), result_ttl=STATE_TTL,
                           failure_ttl=STATE_TTL, description=f"stemforge job {job.id}")
        self._active[job.id] = rq_id

    def _follow(self, job_id: str, rq_id: str) -> None:
        """Fold one active job's broker state into the store."""
        job = self.store.get(job_id)
        if job is None or job.status in FINISHED:  # cancelled while queued, or deleted
            self._active.pop(job_id, None)
            self._stop(rq_id, "cancelled by a client")
            self._cancel_queued(rq_id)
            self._settling[job_id] = rq_id
            return
        info_key, beat_key, _ = job_keys(rq_id)
        info = {k.decode(): v.decode() for k, v in self.connection.hgetall(info_key).items()}
        if info.get("status") == REQUEUED:
            self._requeue(job, rq_id)
            return
        if info.get("status"):
            self._active.pop(job_id, None)
            self._lost_since.pop(rq_id, None)
            status = info["status"]
            if status != "done":
                self._remove_leftovers(job_id)
            run_dir = str(self.data_dir / info["run_dir"]) if status == "done" else None
            self.store.finish(job_id, status, error=info.get("error"), run_dir=run_dir, was=("queued", "running"))
            return
        rq_status = self._rq_status(rq_id)
        if rq_status is None and not info and job.status == "queued":  # the broker lost it (flushed?)
            self._enqueue(job, 0 if rq_id == job_id else int(rq_id.rpartition("-retry")[2]))
            return
        if rq_status == "failed":  # an error outside perform's own handling (RQ's timeout backstop)
            self._active.pop(job_id, None)
            self._remove_leftovers(job_id)
            self.store.finish(job_id, "failed", error=self._rq_error(rq_id), was=("queued", "running"))
            return
        if info.get("worker") and job.status == "queued":
            self.store.mark_running(job_id)
            job = self.store.get(job_id)
        if job.status == "running":
            if info.get("stage"):
                self.store.set_progress(job_id, info["stage"], float(info.get("progress", 0.0)))
            if job.started is not None and time.time() - job.started > self.timeout_seconds + 5:
                # the worker stops itself at the timeout; this covers one that cannot say so
                self._stop(rq_id, "timeout")
                self._active.pop(job_id, None)
                self.store.finish(job_id, "failed", error=f"timeout: the job ran longer than "
                                  f"{self.timeout_seconds:g} s (job_timeout_seconds in the service config); ask "
                                  "for fewer bars")
                self._settling[job_id] = rq_id
                return
        alive = self.connection.exists(beat_key)
        started = rq_status == "started" or info.get("worker") or rq_status is None and job.status == "running"
        if alive or not started:
            self._lost_since.pop(rq_id, None)
            return
        first_missed = self._lost_since.setdefault(rq_id, time.monotonic())
        if time.monotonic() - first_missed >= LOST_AFTER_SECONDS:
            self._lost(job, rq_id, info.get("worker") or "?")

    def _requeue(self, job: Job, rq_id: str) -> None:
        """A job its worker handed back when it was stopped (SIGTERM: a systemd stop, a deploy):
        queued again, as the same attempt, once that worker has let go of it (RQ has it finished)."""
        seen = self._lost_since.setdefault(rq_id, time.monotonic())
        if self._rq_status(rq_id) in ("started", "queued") and time.monotonic() - seen < HARD_STOP_SECONDS:
            return  # RQ still finishing it on the worker (a worker that died there is waited for no longer)
        self._active.pop(job.id, None)
        self._lost_since.pop(rq_id, None)
        self._remove_leftovers(job.id)
        self._delete_rq(rq_id)
        self.connection.delete(*job_keys(rq_id))
        if job.status == "queued" or self.store.requeue(job.id):
            print(f"stemforge: job {job.id}: its worker was stopped; queued again", file=sys.stderr)
            self._enqueue(self.store.get(job.id), 0 if rq_id == job.id else int(rq_id.rpartition("-retry")[2]))

    def _lost(self, job: Job, rq_id: str, worker: str) -> None:
        """A job whose worker died mid-run: once more on another worker, else failed saying why.
        A job whose folder is complete was finished by a worker that could not say so (Redis
        away at that moment): it is done."""
        self._lost_since.pop(rq_id, None)
        self._active.pop(job.id, None)
        run_dir = self.jobs_dir / job.id
        if (run_dir / MANIFEST_NAME).is_file() or (run_dir / "take1" / MANIFEST_NAME).is_file():
            self.store.finish(job.id, "done", run_dir=str(run_dir), was=("queued", "running"))
            return
        self._remove_leftovers(job.id)
        self._delete_rq(rq_id)
        attempt = 0 if rq_id == job.id else int(rq_id.rpartition("-retry")[2])
        if attempt < RETRIES and (job.status == "queued" or self.store.requeue(job.id)):
            print(f"stemforge: job {job.id}: worker {worker} stopped answering mid-job; running it again",
                  file=sys.stderr)
            self._enqueue(self.store.get(job.id), attempt + 1)
            return
        self.store.finish(job.id, "failed", error=f"worker {worker} stopped answering while running the job (killed "
                          f"or its machine lost), {attempt + 1} time(s); submit it again", was=("queued", "running"))

    def _settle(self, job_id: str, rq_id: str) -> None:
        """An ended job still on a worker: once that worker has let go (outcome written, heartbeat
        gone, or never started), nothing of the job may stay on disk."""
        info_key, beat_key, _ = job_keys(rq_id)
        if self.connection.hexists(info_key, "status"):
            done = True
        elif self.connection.exists(beat_key):
            done = False
        elif self._rq_status(rq_id) == "started" or self.connection.hexists(info_key, "worker"):
            # started, no heartbeat: give a just-started job its first beat, then count it gone
            done = time.monotonic() - self._lost_since.setdefault(rq_id, time.monotonic()) >= LOST_AFTER_SECONDS
        else:  # never started (a worker taking it now sees the stop flag first)
            done = True
        if done:
            self._settling.pop(job_id, None)
            self._lost_since.pop(rq_id, None)
            job = self.store.get(job_id)
            if job is None or job.status != "done":
                self._remove_leftovers(job_id)

    def _remove_leftovers(self, job_id: str) -> None:
        remove_partials(self.jobs_dir, job_id)
        job = self.store.get(job_id)
        if job is None or job.status != "done":
            shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)

    def _rq_status(self, rq_id: str) -> str | None:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job as RQJob

        try:
            return RQJob.fetch(rq_id, connection=self.connection, serializer=json_serializer()).get_status(refresh=False)
        except NoSuchJobError:
            return None

    def _rq_error(self, rq_id: str) -> str:
        from rq.job import Job as RQJob

        try:
            result = RQJob.fetch(rq_id, connection=self.connection, serializer=json_serializer()).latest_result()
            text = (result.exc_string or "").strip().splitlines() if result else []
        except Exception:  # noqa: BLE001 - the reason is a courtesy; the failure is recorded regardless
            text = []
        return f"internal error on the worker: {text[-1] if text else 'no reason recorded'}"

    def _cancel_queued(self, rq_id: str) -> None:
        from rq.exceptions import InvalidJobOperation, NoSuchJobError
        from rq.job import Job as RQJob

        try:
            rq_job = RQJob.fetch(rq_id, connection=self.connection, serializer=json_serializer())
            if rq_job.get_status(refresh=False) == "queued":
                rq_job.cancel()
        except (NoSuchJobError, InvalidJobOperation):
            pass

    def _delete_rq(self, rq_id: str) -> None:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job as RQJob

        try:
            RQJob.fetch(rq_id, connection=self.connection, serializer=json_serializer()).delete()
        except NoSuchJobError:
            pass
