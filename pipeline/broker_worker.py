"""`pipeline worker`: the broker's worker process (see pipeline/broker.py for the design).

It loads the composer once, then runs RQ jobs from the queue of that model in its own process
(RQ's SimpleWorker: no fork per job, so every cache stays warm) with `perform`, which calls the
same `pipeline.run.run()` as the CLI. A heartbeat thread renews the running job's heartbeat key,
notices the API's stop flag and ends the process when a job asked to stop does not.
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
    KEY,
    PATH_FIELDS,
    PERFORM,
    STATE_TTL,
    BrokerError,
    connect,
    job_keys,
    json_serializer,
    model_queue,
    redacted,
)
from stemforge.pipeline.jobs import (
    TEST_STALL_ENV,
    _parse_stall,
    load_worker_composer,
    remove_partials,
    worker_threads,
)
from stemforge.symbolic.errors import UserError


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
    current: str | None = None  # the rq id of the running job
    stop_since: float | None = None  # when the running job was asked to stop (or passed its timeout)
    lock: threading.Lock = field(default_factory=threading.Lock)


_WORKER: _WorkerState | None = None


def _heartbeat(state: _WorkerState) -> None:
    """Renews the running job's heartbeat, notices a stop flag, and ends the process when a job
    asked to stop does not (a job stuck inside a C call cannot be interrupted any other way; a
    process manager starts the worker again)."""
    while True:
        with state.lock:
            rq_id, stop_since = state.current, state.stop_since
        try:  # the worker itself: /health counts only workers that answer
            state.connection.set(f"{KEY}:alive:{state.name}", "1", ex=BEAT_TTL)
        except Exception:  # noqa: BLE001 - Redis away for a moment; RQ reconnects by itself
            pass
        if rq_id is not None:
            try:
                _, beat, stop = job_keys(rq_id)
                state.connection.set(beat, state.name, ex=BEAT_TTL)
                if stop_since is None and state.connection.exists(stop):
                    with state.lock:
                        if state.current == rq_id and state.stop_since is None:
                            state.stop_since = time.monotonic()
            except Exception as error:  # noqa: BLE001 - Redis away for a moment: the API sees a lost job
                print(f"stemforge worker: heartbeat: {error}", file=sys.stderr)
            if stop_since is not None and time.monotonic() - stop_since > HARD_STOP_SECONDS:
                print(f"stemforge worker: job {rq_id} did not stop within {HARD_STOP_SECONDS:g} s; exiting",
                      file=sys.stderr, flush=True)
                os._exit(70)
        time.sleep(BEAT_SECONDS)


def perform(job_id: str, kwargs: dict, timeout_seconds: float) -> dict:
    """The RQ job: `pipeline.run.run()` on this worker's loaded composer, the same call the CLI
    makes. The outcome goes to the job's Redis hash (and is returned): done with the run folder
    relative to the data folder, or failed / cancelled with the one-line reason."""
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
    connection.hset(info, mapping={"worker": state.name, "stage": "starting", "progress": 0.0})
    connection.expire(info, STATE_TTL)
    started = time.monotonic()
    with state.lock:
        state.current, state.stop_since = rq_id, None
    connection.set(beat, state.name, ex=BEAT_TTL)
    connection.publish(EVENTS, rq_id)
    stall = state.stall[1] if state.stall and kwargs.get("seed") == state.stall[0] else 0.0

    def check() -> None:
        if time.monotonic() - started > timeout_seconds:
            with state.lock:
                state.stop_since = state.stop_since or time.monotonic()
            raise JobStopped(f"timeout: the job ran longer than {timeout_seconds:g} s (job_timeout_seconds in the "
                             "service config); ask for fewer bars")
        with state.lock:
            asked = state.stop_since is not None
        if asked or connection.exists(stop):
            reason = connection.get(stop)
            raise JobStopped(reason.decode() if reason else "cancelled by a client")

    stalled = {"done": False}

    def progress(stage: str, fraction: float) -> None:
        connection.hset(info, mapping={"stage": stage, "progress": max(0.0, min(1.0, float(fraction)))})
        check()
        if stall and stage.startswith("render") and not stalled["done"]:  # the test-only knob (jobs.py)
            stalled["done"] = True
            until = time.monotonic() + stall
            while time.monotonic() < until:
                time.sleep(0.05)
                check()

    outcome: dict[str, Any]
    try:
        values = dict(kwargs)
        for name in PATH_FIELDS:
            if values.get(name):
                values[name] = str(inside_data(state.data_dir, values[name], name))
        request = RunRequest.from_json(values)
        if request.renderer == "musicgen":  # this machine's copy of the weights the queue names
            request = dataclasses.replace(request, musicgen=state.musicgen)
        check()
        result = run(request, progress, state.composer)
        folder = result.run_dir.parent if result.takes else result.run_dir
        if connection.exists(stop):  # stopped between the last step and the rename: keep nothing
            shutil.rmtree(folder, ignore_errors=True)
            outcome = {"status": "cancelled", "error": (connection.get(stop) or b"cancelled").decode()}
        else:
            outcome = {"status": "done", "run_dir": folder.relative_to(state.data_dir).as_posix()}
    except JobStopped as stopped:
        reason = str(stopped)
        outcome = {"status": "failed" if reason.startswith("timeout:") else "cancelled", "error": reason}
    except UserError as error:  # bad input: the one-line message a CLI user would see
        outcome = {"status": "failed", "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        outcome = {"status": "failed", "error": f"internal error: {type(error).__name__}: {error}".splitlines()[0]}
    finally:
        with state.lock:
            state.current, state.stop_since = None, None
    if outcome["status"] != "done" and kwargs.get("out"):
        try:
            out = inside_data(state.data_dir, kwargs["out"], "out")
            remove_partials(out.parent, out.name)
        except UserError:
            pass  # a refused path: nothing was written
    connection.hset(info, mapping={k: v for k, v in outcome.items() if v is not None})
    connection.delete(beat)
    connection.publish(EVENTS, rq_id)
    return outcome


def inside_data(data_dir: Path, relative: str, name: str) -> Path:
    """A job's path inside the shared data folder: a job forged by someone with access to Redis
    must not make a worker read or write anywhere else on its machine."""
    path = (data_dir / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(data_dir):
        raise UserError(f"{name}: {relative!r} is outside the shared data folder; refused")
    return path


class PerformOnly(Job):
    """An RQ job that can only be stemforge's own: RQ calls whatever function a job names, so a
    job someone with access to Redis forged for another one (`os.system`, say) fails here
    instead of running."""

    def _execute(self) -> Any:
        if self.func_name != PERFORM or self.instance is not None:
            raise PermissionError(f"refused: this worker runs only {PERFORM}, not {self.func_name}")
        return super()._execute()


def worker_main(url: str, data_dir: Path, model: Path | None, musicgen: str | None, threads: int | None,
                burst: bool = False) -> None:
    """`pipeline worker`: load the composer once, then take jobs from this model's queue on the
    broker until stopped (SIGTERM/Ctrl-C finish the running job first; twice stops at once)."""
    global _WORKER
    from rq import Queue, SimpleWorker

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
                           _parse_stall(os.environ.get(TEST_STALL_ENV, "")))
    threading.Thread(target=_heartbeat, args=(_WORKER,), name="stemforge-heartbeat", daemon=True).start()
    serializer = json_serializer()
    worker = SimpleWorker([Queue(q, connection=connection, serializer=serializer, job_class=PerformOnly)
                           for q in queues], connection=connection, serializer=serializer, name=name,
                          worker_ttl=30, job_class=PerformOnly)
    print(f"stemforge worker {name}: ready (model {composer.path}, queue {', '.join(queues)}, data {data_dir}, "
          f"broker {redacted(url)})", file=sys.stderr, flush=True)
    worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
