"""`pipeline worker`: the broker's worker process (see pipeline/broker.py for the design).

It loads the composer once, then runs RQ jobs from the queue of that model in its own process
(RQ's SimpleWorker: no fork per job, so every cache stays warm) with `perform`, which calls the
same `pipeline.run.run()` as the CLI. A heartbeat thread renews the running job's heartbeat key,
notices the API's stop flag and ends the process when a job asked to stop does not.

Redis going away (a restart, a network cut) stops nothing: the running job goes on (its progress
and heartbeat are written when Redis answers again, and its outcome is kept until it can be
written), and the worker waits for Redis and takes jobs again; the heartbeat thread puts back its
registration and the running job's keys within a second of Redis returning, even empty. A stop
(SIGTERM, Ctrl-C: systemd's stop, a deploy) hands the running job back at its next progress step
(the API queues it again) and exits; a second one exits at once.

A job is whatever someone with write access to Redis put there: the worker runs only its own job
function, with only the fields the API or `pipeline batch` write, paths inside the shared data
folder, sounds by name or inside it, and no RQ callbacks, webhooks, retries or repeats.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rq.job import Job

from stemforge.pipeline.broker import (
    BEAT_SECONDS,
    BEAT_TTL,
    EVENTS,
    HARD_STOP_SECONDS,
    PATH_FIELDS,
    PERFORM,
    REQUEUED,
    STATE_TTL,
    BrokerError,
    connect,
    job_keys,
    json_serializer,
    model_queue,
    redacted,
    workers_key,
)
from stemforge.pipeline.jobs import (
    TEST_STALL_ENV,
    _parse_stall,
    load_worker_composer,
    remove_partials,
    worker_threads,
)
from stemforge.pipeline.renderers import needs_weights
from stemforge.symbolic.core.errors import UserError


class JobStopped(Exception):
    """Raised inside `run()` (from its progress callback) when the API asked the job to stop;
    `run()` removes its partial folder on the way out."""


@dataclass
class _WorkerState:
    """What `perform` needs besides the job's own arguments (RQ passes only those): set once by
    `worker_main`, read by `perform` and the heartbeat thread."""

    connection: Any
    data_dir: Path
    composer: Any
    musicgen: str | None
    name: str
    stall: tuple[int, float] | None
    queues: list[str] = field(default_factory=list)
    current: str | None = None  # the rq id of the running job
    stop_since: float | None = None  # when the running job was asked to stop (or passed its timeout)
    shutting_down: bool = False  # SIGTERM/Ctrl-C: hand the running job back, then exit
    lock: threading.Lock = field(default_factory=threading.Lock)


_WORKER: _WorkerState | None = None


REDIS_DOWN = ()  # set in worker_main: redis-py's connection and timeout errors


def _heartbeat(state: _WorkerState) -> None:
    """Renews the worker's registration and the running job's heartbeat (and its owner, which a
    Redis restart erases), notices a stop flag, and ends the process when a job asked to stop
    does not (a job stuck inside a C call cannot be interrupted any other way; a process manager
    starts the worker again)."""
    while True:
        with state.lock:
            rq_id, stop_since = state.current, state.stop_since
        try:  # the worker itself: /health counts only workers that answer
            now = time.time()
            for queue in state.queues:
                state.connection.zadd(workers_key(queue), {state.name: now})
        except Exception:  # noqa: BLE001 - Redis away for a moment: the job goes on meanwhile
            pass
        if rq_id is not None:
            try:
                info, beat, stop = job_keys(rq_id)
                state.connection.set(beat, state.name, ex=BEAT_TTL)
                state.connection.hset(info, "worker", state.name)
                state.connection.expire(info, STATE_TTL)
                if stop_since is None and state.connection.exists(stop):
                    with state.lock:
                        if state.current == rq_id and state.stop_since is None:
                            state.stop_since = time.monotonic()
            except Exception as error:  # noqa: BLE001 - Redis away: the API sees the job again when it is back
                print(f"stemforge worker: heartbeat: {error}", file=sys.stderr)
            if stop_since is not None and time.monotonic() - stop_since > HARD_STOP_SECONDS:
                print(f"stemforge worker: job {rq_id} did not stop within {HARD_STOP_SECONDS:g} s; exiting",
                      file=sys.stderr, flush=True)
                os._exit(70)
        time.sleep(BEAT_SECONDS)


def _quietly(call, *args, **kwargs):
    """A Redis call whose failure (Redis away) only loses a progress update."""
    try:
        return call(*args, **kwargs)
    except REDIS_DOWN:
        return None


def _insisting(call, *args, **kwargs):
    """A Redis call that must happen (a job's outcome): retried until Redis answers, for up to
    OUTCOME_PATIENCE_SECONDS (after that the API finds a finished job by its folder)."""
    deadline = time.monotonic() + OUTCOME_PATIENCE_SECONDS
    while True:
        try:
            return call(*args, **kwargs)
        except REDIS_DOWN:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


OUTCOME_PATIENCE_SECONDS = 600.0
MAX_JOB_SECONDS = 24 * 3600.0  # a job's time limit as the API sets it is far below this
JOB_ARGUMENTS = 3  # perform(job_id, kwargs, timeout_seconds)


def perform(job_id: str, kwargs: dict, timeout_seconds: float) -> dict:
    """The RQ job: `pipeline.run.run()` on this worker's loaded composer, the same call the CLI
    makes. The outcome goes to the job's Redis hash (and is returned): done with the run folder
    relative to the data folder, failed / cancelled with the one-line reason, or requeued when
    this worker was stopped mid-job."""
    import dataclasses

    from rq import get_current_job

    from stemforge.pipeline.request import RunRequest
    from stemforge.pipeline.run import run

    state = _WORKER
    if state is None:
        raise RuntimeError("perform() runs only inside `pipeline worker`")
    rq_id = get_current_job().id
    info, beat, stop = job_keys(rq_id)
    connection = state.connection
    _quietly(connection.hset, info, mapping={"worker": state.name, "stage": "starting", "progress": 0.0})
    _quietly(connection.expire, info, STATE_TTL)
    started = time.monotonic()
    with state.lock:
        state.current, state.stop_since = rq_id, None
    _quietly(connection.set, beat, state.name, ex=BEAT_TTL)
    _quietly(connection.publish, EVENTS, rq_id)
    stall = state.stall[1] if state.stall and isinstance(kwargs, dict) and kwargs.get("seed") == state.stall[0] else 0.0

    def check() -> None:
        if time.monotonic() - started > timeout_seconds:
            with state.lock:
                state.stop_since = state.stop_since or time.monotonic()
            raise JobStopped(f"timeout: the job ran longer than {timeout_seconds:g} s (job_timeout_seconds in the "
                             "service config); ask for fewer bars")
        with state.lock:
            asked, leaving = state.stop_since is not None, state.shutting_down
        if leaving:
            raise JobStopped(REQUEUED)
        if asked or _quietly(connection.exists, stop):
            reason = _quietly(connection.get, stop)
            raise JobStopped(reason.decode() if reason else "cancelled by a client")

    stalled = {"done": False}

    def progress(stage: str, fraction: float) -> None:
        _quietly(connection.hset, info, mapping={"stage": stage, "progress": max(0.0, min(1.0, float(fraction))),
                                                 "worker": state.name})
        check()
        if stall and stage.startswith("render") and not stalled["done"]:  # the test-only knob (jobs.py)
            stalled["done"] = True
            until = time.monotonic() + stall
            while time.monotonic() < until:
                time.sleep(0.05)
                check()

    outcome: dict[str, Any]
    try:
        values = checked_job(job_id, kwargs, timeout_seconds, state.data_dir)
        request = RunRequest.from_json(values)
        if needs_weights(request.renderer):  # this machine's copy of the weights the queue names
            request = dataclasses.replace(request, musicgen=state.musicgen)
        check()
        result = run(request, progress, state.composer)
        folder = result.run_dir.parent if result.takes else result.run_dir
        if _quietly(connection.exists, stop):  # stopped between the last step and the rename: keep nothing
            shutil.rmtree(folder, ignore_errors=True)
            outcome = {"status": "cancelled", "error": (_quietly(connection.get, stop) or b"cancelled").decode()}
        else:
            outcome = {"status": "done", "run_dir": folder.relative_to(state.data_dir).as_posix()}
    except JobStopped as stopped:
        reason = str(stopped)
        status = REQUEUED if reason == REQUEUED else "failed" if reason.startswith("timeout:") else "cancelled"
        outcome = {"status": status, "error": "the worker was stopped; queued again" if status == REQUEUED else reason}
    except UserError as error:  # bad input: the one-line message a CLI user would see
        outcome = {"status": "failed", "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        outcome = {"status": "failed", "error": f"internal error: {type(error).__name__}: {error}".splitlines()[0]}
    finally:
        with state.lock:
            state.current, state.stop_since = None, None
    if outcome["status"] != "done" and isinstance(kwargs, dict) and isinstance(kwargs.get("out"), str):
        try:
            out = inside_data(state.data_dir, kwargs["out"], "out")
            remove_partials(out.parent, out.name)
        except UserError:
            pass  # a refused path: nothing was written
    _insisting(connection.hset, info, mapping={k: v for k, v in outcome.items() if v is not None})
    _quietly(connection.expire, info, STATE_TTL)
    _quietly(connection.delete, beat)
    _quietly(connection.publish, EVENTS, rq_id)
    return outcome


def checked_job(job_id: Any, kwargs: Any, timeout_seconds: Any, data_dir: Path) -> dict:
    """A job's request as the API or `pipeline batch` write it, its paths made absolute inside the
    shared data folder; anything else (a job forged by someone with write access to Redis) is
    refused with a UserError naming the field: no model, no other runs root, an `out` inside the
    data folder, files and sound folders inside it, sounds and presets otherwise only by name."""
    from stemforge.audio.effects import available_presets
    from stemforge.pipeline.request import RunRequest

    if not isinstance(job_id, str) or len(job_id) > 64 or not isinstance(kwargs, dict) \
            or not isinstance(timeout_seconds, int | float) or not 0 < timeout_seconds <= MAX_JOB_SECONDS:
        raise UserError("refused: not a job as stemforge enqueues it (job id, request, time limit)")
    values = dict(kwargs)
    if values.get("model") is not None:
        raise UserError("model: refused: a job never names a model (each worker runs its own)", field="model")
    if values.get("runs_root", "runs") != str(RunRequest.runs_root):
        raise UserError("runs_root: refused: a job writes only to its own `out`", field="runs_root")
    if not isinstance(values.get("out"), str):
        raise UserError("out: refused: a job names its folder in the shared data folder", field="out")
    for name in PATH_FIELDS:
        if values.get(name) is not None:
            if not isinstance(values[name], str):
                raise UserError(f"{name}: refused: not a path", field=name)
            values[name] = str(inside_data(data_dir, values[name], name))
    kit, preset = values.get("kit"), values.get("preset")
    if kit is not None:
        values["kit"] = _sound_inside_data_or_named(data_dir, kit, "kit")
    if preset is not None:
        if not isinstance(preset, str):
            raise UserError("preset: refused: not a preset", field="preset")
        if preset.startswith("./"):
            values["preset"] = str(inside_data(data_dir, preset, "preset"))
        elif preset not in available_presets():
            raise UserError(f"preset: refused: no shipped preset {preset[:40]!r}", field="preset")
    return values


def _sound_inside_data_or_named(data_dir: Path, kit: Any, name: str) -> str:
    """A kit as a job may carry it: './<path in the data folder>' or the name of a kit or
    SoundFont this worker found (`pipeline sounds`), as its path; never a path elsewhere."""
    from stemforge.audio.assets import find_sounds

    if not isinstance(kit, str):
        raise UserError(f"{name}: refused: not a kit", field=name)
    if kit.startswith("./"):
        return str(inside_data(data_dir, kit, name))
    found = {sound.name.lower(): sound.path for sound in find_sounds()}
    if kit.strip().lower() not in found:
        raise UserError(f"{name}: refused: {kit[:40]!r} is not a kit found on this worker (`pipeline sounds`) and "
                        "not a path in the shared data folder", field=name)
    return str(found[kit.strip().lower()])


def inside_data(data_dir: Path, relative: str, name: str) -> Path:
    """A job's path inside the shared data folder: a job forged by someone with access to Redis
    must not make a worker read or write anywhere else on its machine."""
    path = (data_dir / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(data_dir):
        raise UserError(f"{name}: {relative!r} is outside the shared data folder; refused")
    return path


class Refused(PermissionError):
    """A job that is not stemforge's own (its reason is the job's failure, one line)."""


class PerformOnly(Job):
    """An RQ job that can only be stemforge's own: RQ calls whatever function a job names, and
    the callbacks (on_success, on_failure, on_stopped) and webhooks it names, so a job someone
    with access to Redis forged for another one (`os.system`, say) fails here instead of running,
    and no callback or webhook of any job is ever called."""

    def _execute(self) -> Any:
        forged = [what for what, present in (
            ("callbacks", self._success_callback_name or self._failure_callback_name or self._stopped_callback_name),
            ("webhooks", self.webhooks), ("retries", self.retries_left), ("repeats", self.repeats_left),
            ("dependencies", self._dependency_ids), ("keyword arguments", self.kwargs),
            ("arguments but (job id, request, time limit)", len(self.args) != JOB_ARGUMENTS)) if present]
        if self.func_name != PERFORM or self.instance is not None:
            raise Refused(f"refused: this worker runs only {PERFORM}, not {self.func_name}")
        if forged:
            raise Refused(f"refused: a stemforge job has no {', '.join(forged)}")
        return super()._execute()

    @property
    def success_callback(self):
        return None

    @property
    def failure_callback(self):
        return None

    @property
    def stopped_callback(self):
        return None

    def send_webhooks(self, status, *, exc_string: str | None = None) -> None:
        return None


def _stoppable_worker_class():
    from rq import SimpleWorker

    class StoppableWorker(SimpleWorker):
        """SimpleWorker whose stop (SIGTERM, Ctrl-C) also hands the running job back at its next
        progress step instead of finishing it (a systemd stop should not wait minutes)."""

        def request_stop(self, signum, frame):
            if _WORKER is not None:
                with _WORKER.lock:
                    _WORKER.shutting_down = True
            print("stemforge worker: stopping; a running job goes back to the queue", file=sys.stderr, flush=True)
            super().request_stop(signum, frame)

        def handle_exception(self, job, *exc_info):
            if isinstance(exc_info[1], Refused):  # a forged job: one line, not a stemforge traceback
                print(f"stemforge worker: job {job.id}: {exc_info[1]}", file=sys.stderr, flush=True)
                return
            super().handle_exception(job, *exc_info)

    return StoppableWorker


def worker_main(url: str, data_dir: Path, model: Path | None, musicgen: str | None, threads: int | None,
                burst: bool = False) -> None:
    """`pipeline worker`: load the composer once, then take jobs from this model's queue on the
    broker until stopped (SIGTERM/Ctrl-C hand the running job back to the queue and exit; twice
    exits at once). Redis going away and coming back (even empty) is waited out."""
    global _WORKER, REDIS_DOWN
    import redis
    from rq import Queue

    REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
    connection = connect(url)
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise BrokerError(f"--data: {data_dir} is not a folder; point it at the shared data folder the API "
                          "was started with (`pipeline serve --data`), as mounted on this machine")
    queues = [model_queue(model)] + ([model_queue(model, musicgen)] if musicgen else [])
    composer = load_worker_composer(str(model) if model else None, worker_threads(1, threads))
    if musicgen:  # loaded once here and kept (audio.musicgen.cached_musicgen) for every MusicGen job
        from stemforge.audio.musicgen import cached_musicgen

        cached_musicgen(musicgen)
    name = f"{socket.gethostname()}.{os.getpid()}"
    _WORKER = _WorkerState(connection, data_dir, composer, musicgen, name,
                           _parse_stall(os.environ.get(TEST_STALL_ENV, "")), queues=queues)
    threading.Thread(target=_heartbeat, args=(_WORKER,), name="stemforge-heartbeat", daemon=True).start()
    serializer = json_serializer()
    worker_class = _stoppable_worker_class()
    print(f"stemforge worker {name}: ready (model {composer.path}, queue {', '.join(queues)}, data {data_dir}, "
          f"broker {redacted(url)})", file=sys.stderr, flush=True)
    while True:
        worker = worker_class([Queue(q, connection=connection, serializer=serializer, job_class=PerformOnly)
                               for q in queues], connection=connection, serializer=serializer, name=name,
                              worker_ttl=30, job_class=PerformOnly)
        try:
            worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
            return
        except REDIS_DOWN as error:  # RQ's own bookkeeping met Redis away: wait for it, then go on
            if _WORKER.shutting_down:
                return
            print(f"stemforge worker {name}: lost the broker ({error}); waiting for it", file=sys.stderr, flush=True)
            _wait_for(connection)
            print(f"stemforge worker {name}: the broker is back; taking jobs again", file=sys.stderr, flush=True)


def _wait_for(connection) -> None:
    while True:
        try:
            connection.ping()
            return
        except REDIS_DOWN:
            time.sleep(1.0)
