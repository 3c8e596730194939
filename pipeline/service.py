"""`pipeline serve`: an HTTP API with a job queue, and a web page to compose, listen and download.

    from stemforge.pipeline.service import ServiceLimits, create_app, serve
    serve(host="127.0.0.1", port=8000, data_dir=Path("stemforge-service"), token=None, model=None, workers=1)

Jobs run `pipeline.run.run()` exactly as the CLI does (see pipeline/jobs.py for the queue and
the worker processes); run folders live in DATA_DIR/jobs/<job id>/, job states in
DATA_DIR/jobs.sqlite3. Requests are checked up front with the CLI's own rules and messages
(422 naming the field), so a bad request never queues. Limits come from configs/service.yaml
(or the YAML file named by $STEMFORGE_SERVICE_CONFIG).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sqlite3
import sys
import time
import zipfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, get_origin

import yaml
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, create_model

from stemforge.configs import CONFIG_DIR
from stemforge.pipeline.jobs import (
    FINISHED,
    WORKER_BATCH,
    Job,
    JobError,
    JobStore,
    WorkerPool,
    is_job_id,
    recover,
    wait_for_orphan_workers,
)
from stemforge.pipeline.renderers import needs_weights
from stemforge.pipeline.request import GROUPS, MAX_TAKES, FieldSpec, RunRequest, request_fields, request_types
from stemforge.pipeline.run import check_inputs
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import DiskFullError, disk_full, write_atomic
from stemforge.symbolic.decoding.model import read_model_info
from stemforge.symbolic.music.conditions import validate
from stemforge.symbolic.runtime.run_manifest import MANIFEST_NAME, RunManifest

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_CONFIG = CONFIG_DIR / "service.yaml"
CONFIG_ENV = "STEMFORGE_SERVICE_CONFIG"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServiceError(UserError):
    """A service setting that cannot be used; one line naming the file/flag."""


@dataclass(frozen=True)
class ServiceLimits:
    """configs/service.yaml: what one client may ask of the machine."""

    max_bars: int = 64  # longest piece a request may ask for (past the model's reach: a form of sections)
    max_queued: int = 16  # jobs waiting to run; one more gets 429 with Retry-After
    max_request_bytes: int = 16384  # request bodies above this get 413
    job_timeout_seconds: float = 300.0  # a job running longer is killed and reported failed
    # threads per worker process, for a job's takes decoding side by side and for torch (the torch
    # decoder, MusicGen); None: the machine's cores shared among the workers
    worker_threads: int | None = None
    recent_jobs: int = 50  # GET /jobs lists this many unless ?limit= says otherwise
    musicgen_model: str | None = None  # renderer "musicgen" is offered only when the operator names weights
    max_takes: int = 4  # takes one job may ask for (each is a whole piece; they compose together)
    max_upload_bytes: int = 16_000_000  # a reference loop (POST /loops) above this gets 413
    # queued jobs a free worker takes at once and composes in one batched pass (1: one at a time)
    worker_batch: int = WORKER_BATCH

    @classmethod
    def load(cls, path: str | Path | None = None) -> ServiceLimits:
        path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
        if not path.is_file():
            raise ServiceError(f"service config: {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ServiceError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ServiceError(f"{path}: unknown config key(s) {sorted(unknown)}; known: {sorted(known)}")
        limits = cls(**data)
        for name in ("max_bars", "max_queued", "max_request_bytes", "worker_threads", "recent_jobs", "max_takes",
                     "max_upload_bytes", "worker_batch"):
            if name == "worker_threads" and limits.worker_threads is None:
                continue
            if not isinstance(getattr(limits, name), int) or getattr(limits, name) < 1:
                raise ServiceError(f"{path}: {name} must be a whole number >= 1")
        if not isinstance(limits.job_timeout_seconds, int | float) or limits.job_timeout_seconds <= 0:
            raise ServiceError(f"{path}: job_timeout_seconds must be > 0")
        return limits


# ------------------------------------------------------------------ request / response bodies

def _api_annotation(hint: Any, spec: FieldSpec) -> Any:
    """The API type of a request field: tuples are JSON lists; list items and dict values bounded."""
    if get_origin(hint) is tuple:
        return list[Annotated[str, Field(max_length=spec.item_max_length)]]
    if get_origin(hint) is dict:
        return dict[str, Annotated[str, Field(max_length=spec.item_max_length)]]
    return hint


def _presentation(spec: FieldSpec, hint: Any) -> dict[str, Any]:
    """What the schema says beyond validation, for the page that builds its form from it: the
    field's group (`x-group`, titled in the schema's `x-groups`), what leaving it empty means
    (`x-unset`) and the values the checks accept (`enum`; null too where the field may be unset)."""
    extra: dict[str, Any] = {"x-group": spec.group}
    if spec.unset is not None:
        extra["x-unset"] = spec.unset
    values = spec.choices or spec.menu
    if values:
        extra["enum"] = [*values, None] if type(None) in getattr(hint, "__args__", ()) else list(values)
    return extra


def _job_request_model() -> type[BaseModel]:
    """POST /jobs's body, derived from RunRequest (pipeline/request.py): its API fields with
    their help as descriptions, every string, list and number bounded before any parsing (an
    unbounded field was a denial of service: a 15 KB key froze the server for ~47 s), plus
    `from_job`."""
    hints = request_types()
    fields: dict[str, Any] = {}
    for item, spec in request_fields():
        if not spec.api:
            continue
        hint = hints[item.name]
        bounds = {name: getattr(spec, name) for name in ("max_length", "ge", "le") if getattr(spec, name) is not None}
        if float in getattr(hint, "__args__", (hint,)):
            bounds["allow_inf_nan"] = False
        if spec.has_api_default:
            default = {"default": spec.api_default}
        elif item.default_factory is not dataclasses.MISSING or isinstance(item.default, tuple):
            default = {"default_factory": list if get_origin(hint) is tuple else dict}
        else:
            default = {"default": item.default}
        fields[item.name] = (_api_annotation(hint, spec), Field(description=spec.help, title=spec.label, **default,
                                                                **bounds, json_schema_extra=_presentation(spec, hint)))
    iterate = {"x-group": "iterate"}
    fields["from_job"] = (str | None, Field(None, max_length=64, description="an earlier finished job to take "
                                            "conditions and kept parts from (render fields default to its own)",
                                            json_schema_extra=iterate))
    fields["from_take"] = (int | None, Field(None, ge=1, le=MAX_TAKES, description="which take of from_job "
                                             "(a job composed with takes); default its first",
                                             json_schema_extra=iterate))
    fields["like_loop"] = (str | None, Field(None, pattern=r"^[0-9a-f]{16}$", description="a reference loop sent "
                                             "with POST /loops (its id): its tempo and key become the conditions "
                                             "unless bpm, key or the prompt name them", json_schema_extra=iterate))
    model = create_model("JobRequest", __config__=ConfigDict(extra="forbid"), **fields)
    model.__doc__ = ("The fields of `pipeline run` (flags with dashes become underscores; paths on the server's "
                     "disk are not offered), plus `from_job`. Unset fields take the CLI's defaults, but stems are "
                     "rendered unless `stems` is false; with `from_job`, unset render fields take that job's.")
    return model


JobRequest = _job_request_model()
RENDER_FIELDS = tuple(item.name for item, spec in request_fields() if spec.api and spec.group == "stems")


def _value_schema(properties: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema a field's value meets when it is set: of an optional field, its non-null branch."""
    prop = properties[name]
    return next((branch for branch in prop.get("anyOf", ()) if branch.get("type") != "null"), prop)


def service_request_schema(limits: ServiceLimits, model_genres: list[str], model_max_bars: int,
                           sound_names: list[str], presets: list[str]) -> dict[str, Any]:
    """POST /jobs's body as JSON Schema (bounds, defaults, enums, descriptions), narrowed to what
    this service accepts: its bar and take limits, its renderers and sample rates; its model's
    genres, kits and presets as `examples` (a genre the model lacks is still mapped to a neighbour).
    The page builds its form from this, so a request field added to RunRequest appears there."""
    from stemforge.audio.render import SUPPORTED_SAMPLE_RATES

    schema = JobRequest.model_json_schema()
    properties = schema["properties"]
    _value_schema(properties, "bars")["maximum"] = limits.max_bars  # past the model's reach a piece is a form of sections
    for name in ("takes", "from_take"):
        _value_schema(properties, name)["maximum"] = limits.max_takes
    if not limits.musicgen_model:  # offered only with the operator's weights (see _check_offered)
        properties["renderer"]["enum"] = [name for name in properties["renderer"]["enum"] if name != "musicgen"]
    properties["sample_rate"]["enum"] = list(SUPPORTED_SAMPLE_RATES)
    properties["genre"]["examples"] = list(model_genres)
    properties["kit"]["examples"] = list(sound_names)
    properties["preset"]["examples"] = list(presets)
    schema["x-groups"] = {key: title for key, title in GROUPS.items() if key}
    return schema


class JobInfo(BaseModel):
    id: str
    status: str = Field(description="queued | running | done | failed | cancelled")
    progress: float
    stage: str
    error: str | None
    created: float
    started: float | None
    finished: float | None
    title: str
    request: dict
    queue_position: int | None = None
    run: dict | None = Field(None, description="run.json, when done (GET /jobs/{id} only); of take 1 for a job "
                             "with takes, its paths relative to the job folder (take1/...)")
    takes: list[dict] | None = Field(None, description="every take's run.json (paths relative to the job folder), "
                                     "for a job composed with takes")
    file_query: str | None = Field(None, description="with a token: `exp=...&sig=...` to append to a file or zip "
                                   "URL of this job so it opens without the Authorization header (drag-out), "
                                   "for an hour")
    report: dict | None = Field(None, description="eval numbers, when a report.json is in the run folder")


class JobList(BaseModel):
    jobs: list[JobInfo]
    counts: dict[str, int]


class DeleteResult(BaseModel):
    id: str
    status: str
    removed: bool


class ModelInfo(BaseModel):
    path: str
    genres: list[str]
    max_bars: int
    service_max_bars: int
    sha256: str | None
    val_loss: float | None
    parameters: int | None
    steps: int | None


class LoopInfo(BaseModel):
    id: str = Field(description="pass as like_loop in POST /jobs")
    bpm: float | None
    key: str | None
    seconds: float
    description: str


class SoundInfo(BaseModel):
    name: str
    kind: str
    path: str
    source: str


class Health(BaseModel):
    status: str = Field(description="ok | starting | degraded (the job scheduler is dead or stuck)")
    workers: int
    workers_ready: int
    scheduler: str = Field(description="ok | stuck | dead")
    scheduler_error: str = Field(description="the last error a scheduler turn survived (e.g. a full disk)")
    jobs: dict[str, int]


class NoteTrack(BaseModel):
    program: int
    is_drum: bool
    notes: list[list[int]] = Field(description="[start_tick, duration_ticks, pitch, velocity]")


class NotesInfo(BaseModel):
    bpm: float
    bars: int
    beats_per_bar: int
    ticks_per_beat: int
    tracks: dict[str, NoteTrack]


# ------------------------------------------------------------------ validation (the CLI's rules)

class FieldError(UserError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _as_field_error(error: UserError, default_field: str) -> FieldError:
    """The 422 of a user error: the field its raiser named (`UserError.field`), else the
    field the caller checked; the message as the error says it, with a leading CLI flag
    ("--instrument 'x'") spelled as that field."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    name = error.field if error.field in JobRequest.model_fields else default_field
    if message.startswith("-"):
        message = name + message[len(message.split(":")[0].split(" ")[0]):]
    return FieldError(name, message)


class ServiceState:
    """Everything the handlers share: paths, limits, the composer's metadata, store and pool."""

    def __init__(self, data_dir: Path, token: str | None, model: Path | None, workers: int,
                 limits: ServiceLimits, broker: str | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.jobs_dir = self.data_dir / "jobs"
        self.cache_dir = self.data_dir / "cache"
        self.uploads_dir = self.data_dir / "uploads"  # reference loops (POST /loops), named by content
        self.token = token or None
        self.limits = limits
        # metadata only: the main process never composes, so it never loads torch (workers do)
        self.composer = read_model_info(Path(model) if model is not None else None)
        self.model = self.composer.path
        if limits.musicgen_model:  # the operator's weights, checked at start, not on a client's first job
            from stemforge.audio.musicgen_weights import check_musicgen_weights

            try:
                print(f"stemforge: {check_musicgen_weights(limits.musicgen_model, 'musicgen_model')}", file=sys.stderr)
            except UserError as error:
                raise ServiceError(f"service config: {error}") from error
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            self.cache_dir.mkdir(exist_ok=True)
            self.uploads_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise ServiceError(f"--data: cannot create {self.data_dir} ({error.strerror})") from error
        self._lock_file = self._take_lock()
        self.broker = broker
        if broker:  # jobs run on `pipeline worker` processes anywhere (pipeline/broker.py)
            from stemforge.pipeline.broker import BrokerPool

            self.store = JobStore(self.data_dir / "jobs.sqlite3")
            try:
                self.pool = BrokerPool(broker, self.store, self.data_dir, self.jobs_dir, self.model,
                                       limits.job_timeout_seconds, self.run_kwargs, limits.musicgen_model)
            except UserError:
                self.close()
                raise
        else:
            wait_for_orphan_workers(self.data_dir)
            self.store = JobStore(self.data_dir / "jobs.sqlite3")
            for note in recover(self.store, self.jobs_dir):
                print(f"stemforge: {note}", file=sys.stderr)
            self.pool = WorkerPool(self.store, self.data_dir, self.jobs_dir, self.model, workers,
                                   limits.job_timeout_seconds, limits.worker_threads, self.run_kwargs,
                                   batch=limits.worker_batch)
        self._runs: dict[str, list[tuple[str, RunManifest]]] = {}
        self._sound_names: set[str] | None = None

    def _take_lock(self):
        handle = open(self.data_dir / "service.lock", "a+")  # noqa: SIM115 - held while the service runs
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                handle.close()
                raise ServiceError(f"--data: {self.data_dir} is in use by another running service; "
                                   "stop it or choose another folder") from error
        return handle

    def close(self) -> None:
        self.store.close()
        self._lock_file.close()

    # -- jobs and their folders
    def run_dir(self, job: Job) -> Path:
        return self.jobs_dir / job.id

    def takes(self, job: Job) -> list[tuple[str, RunManifest]]:
        """(folder inside the job folder, run.json) of every take of a finished job: ("", ...) for
        a one-take job, ("take1", ...), ("take2", ...) for a job with takes (cached: run folders
        never change)."""
        if job.status != "done":
            return []
        if job.id not in self._runs:
            folder = self.run_dir(job)
            names = [""] if (folder / MANIFEST_NAME).is_file() else sorted(
                (p.name for p in folder.glob("take*") if (p / MANIFEST_NAME).is_file()), key=lambda n: int(n[4:]))
            try:
                self._runs[job.id] = [(name, RunManifest.read(folder / name, "from_job")) for name in names]
            except UserError:
                return []
        return self._runs[job.id]

    def manifest(self, job: Job, take: int | None = None) -> RunManifest | None:
        """run.json of a finished job (of take `take`, default the first)."""
        takes = self.takes(job)
        index = (take or 1) - 1
        return takes[index][1] if 0 <= index < len(takes) else None

    def take_dir(self, job: Job, take: int | None = None) -> Path:
        takes = self.takes(job)
        index = (take or 1) - 1
        return self.run_dir(job) / (takes[index][0] if 0 <= index < len(takes) else "")

    def forget(self, job_id: str) -> None:
        self._runs.pop(job_id, None)

    def sound_names(self) -> set[str]:
        if self._sound_names is None:
            from stemforge.audio.assets import find_sounds

            self._sound_names = {s.name.lower() for s in find_sounds()}
        return self._sound_names

    # -- validation before queueing, and the RunRequest a worker builds
    def check(self, body: BaseModel) -> dict:
        """The request as it will be stored: this service's own rules (what it offers), then
        `pipeline.run.check_inputs`, the check `run` itself makes, on the RunRequest the worker
        will run; inherited render fields filled in."""
        values = body.model_dump()
        if body.takes > self.limits.max_takes:
            raise FieldError("takes", f"takes: {body.takes} is above this service's limit of {self.limits.max_takes} "
                             "(max_takes in the service config); ask for fewer")
        if body.like_loop is not None and not (self.uploads_dir / f"{body.like_loop}.audio").is_file():
            raise FieldError("like_loop", f"like_loop: no loop {body.like_loop!r} on this service; send it with "
                             "POST /loops first")
        if body.from_take is not None and body.from_job is None:
            raise FieldError("from_take", "from_take: needs from_job (the job whose take to start from)")
        if body.from_job is not None:
            parent = self.store.get(body.from_job) if is_job_id(body.from_job) else None
            if parent is None or self.manifest(parent) is None:
                raise FieldError("from_job", f"from_job: no finished job {body.from_job!r}; regenerate from a "
                                 "job whose status is done")
            if self.manifest(parent, body.from_take) is None:
                raise FieldError("from_take", f"from_take: job {body.from_job} has {len(self.takes(parent))} "
                                 f"take(s), not {body.from_take}")
            for name in RENDER_FIELDS:  # new stems should sound like the old ones unless asked otherwise
                if name not in body.model_fields_set and name in parent.request:
                    values[name] = parent.request[name]
        request = self.run_request(values, out=None)
        if request.stems:
            self._check_offered(request)
        try:
            inputs = check_inputs(request)
            if inputs.conditions.bars > self.limits.max_bars:
                raise FieldError("bars", f"bars: {inputs.conditions.bars} is above this service's limit of "
                                 f"{self.limits.max_bars} (max_bars in the service config); ask for fewer")
            validate(inputs.conditions, self.composer.max_bars)
        except UserError as error:
            raise _as_field_error(error, "prompt") from error
        return values

    def _check_offered(self, request: RunRequest) -> None:
        """What this service offers a client: musicgen only when the operator named weights,
        presets and kits only by the names it lists (never a path on its disk)."""
        from stemforge.audio.effects import available_presets

        if needs_weights(request.renderer) and not self.limits.musicgen_model:
            raise FieldError("renderer", f"renderer: {request.renderer} is not offered by this service (set "
                             "musicgen_model in the service config); use sample")
        if request.preset is not None and request.preset not in available_presets():
            raise FieldError("preset", f"preset: unknown preset {request.preset!r}; choose from "
                             f"{', '.join(available_presets())}")
        if request.kit is not None and request.kit.lower() not in self.sound_names():
            raise FieldError("kit", f"kit: {request.kit!r} is not a kit or SoundFont of this service; "
                             "GET /sounds lists them")

    def run_request(self, stored: dict, out: Path | None) -> RunRequest:
        """The RunRequest of a stored job request: its fields, with this service's model, the
        job's folder, the parent job's folder and the operator's MusicGen weights."""
        fields = {name: value for name, value in stored.items() if name not in ("from_job", "from_take", "like_loop")}
        fields["prompt"] = fields.get("prompt") or ""
        from_job, from_run = stored.get("from_job"), None
        if from_job:
            parent = self.store.get(from_job)
            from_run = self.take_dir(parent, stored.get("from_take")) if parent else self.jobs_dir / from_job
        like = self.uploads_dir / f"{stored['like_loop']}.audio" if stored.get("like_loop") else None
        return dataclasses.replace(
            RunRequest.from_json(fields), model=self.model, out=out, from_run=from_run, like=like,
            musicgen=self.limits.musicgen_model if needs_weights(fields.get("renderer")) else None)

    def run_kwargs(self, job: Job) -> dict:
        """What the pool sends a worker for a stored job: its RunRequest as JSON."""
        return self.run_request(job.request, out=self.jobs_dir / job.id).to_json()

    # -- responses
    def title(self, job: Job) -> str:
        manifest = self.manifest(job)
        if manifest is not None:
            c = manifest.conditions
            count = len(self.takes(job))
            seeds = f"seed {manifest.seed}" if count == 1 else f"{count} takes, seeds {manifest.seed}-{manifest.seed + count - 1}"
            return f"{c.genre} · {c.bpm:g} bpm · {c.key} · {c.bars} bars · {seeds}"
        request = job.request
        if request.get("from_job"):
            kept = ", ".join(request.get("keep") or ()) or "nothing"
            return f"regenerate {request['from_job']} keeping {kept}"
        return request.get("prompt") or "(no prompt)"

    def info(self, job: Job, full: bool = False) -> JobInfo:
        info = JobInfo(id=job.id, status=job.status, progress=job.progress, stage=job.stage, error=job.error,
                       created=job.created, started=job.started, finished=job.finished, title=self.title(job),
                       request=job.request)
        if job.status == "queued":
            info.queue_position = self.store.queue_position(job)
        takes = self.takes(job) if full else []
        if takes:
            runs = [_in_job_folder(manifest.to_dict(), folder) for folder, manifest in takes]
            info.run = runs[0]
            info.takes = runs if len(runs) > 1 else None
            info.report = self.report(job)
            info.file_query = file_link_query(self.token, job.id) if self.token else None
        return info

    def report(self, job: Job) -> dict | None:
        """The numbers of an eval report written into the run folder
        (`pipeline eval DATA/jobs/ID --out DATA/jobs/ID/eval`)."""
        for candidate in (self.run_dir(job) / "report.json", self.run_dir(job) / "eval" / "report.json"):
            if candidate.is_file():
                try:
                    report = json.loads(candidate.read_text())
                except (OSError, json.JSONDecodeError):
                    return None
                return {k: report.get(k) for k in ("fad", "novelty", "warnings") if k in report}
        return None

    def job_file(self, job: Job, path: str) -> Path:
        """A file inside the job's own run folder, or an HTTP error; never anything outside it."""
        base = self.run_dir(job).resolve()
        if not path or "\x00" in path or "\\" in path or PurePosixPath(path).is_absolute():
            raise HTTPException(400, f"path: {path!r} must be a relative path inside the job's folder")
        target = (base / path).resolve()
        if not target.is_relative_to(base):
            raise HTTPException(400, f"path: {path!r} leads outside the job's folder")
        if not target.is_file():
            raise HTTPException(404, f"path: {path!r} is not a file of job {job.id}")
        return target

    def zip_file(self, job: Job, mixer: dict | None = None) -> Path:
        """The run folder zipped under one top folder (cached: run folders never change); with
        `mixer`, the folder exported through it (`mixed_export`)."""
        if mixer:
            folder, name = self.mixed_export(job, mixer)
            return self.zip_folder(folder, self.cache_dir / f"{name}.zip", self.zip_root(job))
        return self.zip_folder(self.run_dir(job), self.cache_dir / f"{job.id}.zip", self.zip_root(job))

    def mixed_export(self, job: Job, mixer: dict) -> tuple[Path, str]:
        """The job's run folder exported through `mixer` (role -> ChannelMix): the mixes
        re-rendered and the sets carrying the faders and pans (`pipeline.exports`); cached per
        job and mixer, as run folders never change. Returns the folder and its cache key."""
        from stemforge.pipeline.exports import export_with_mixer

        key = hashlib.sha256(json.dumps({r: [m.volume_db, m.pan] for r, m in sorted(mixer.items())}).encode())
        name = f"{job.id}-mix-{key.hexdigest()[:16]}"
        folder = self.cache_dir / name
        if not folder.is_dir():
            try:
                export_with_mixer(self.run_dir(job), mixer, folder)
            except FileExistsError:  # another request made the same export meanwhile
                pass
            except ValueError as error:
                raise HTTPException(422, str(error)) from error
        return folder, name

    def zip_folder(self, folder: Path, cached: Path, root: str) -> Path:
        """`folder` zipped under the top folder `root` into `cached` (once)."""
        if cached.is_file():
            return cached
        tmp = self.cache_dir / f".{cached.stem}.{secrets.token_hex(4)}.zip"
        try:
            with zipfile.ZipFile(tmp, "w") as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file() and not path.is_symlink():  # run() writes no links: never follow one
                        # WAV barely deflates; storing it keeps zipping instant
                        method = zipfile.ZIP_STORED if path.suffix == ".wav" else zipfile.ZIP_DEFLATED
                        archive.write(path, f"{root}/{path.relative_to(folder)}", method)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached

    def zip_root(self, job: Job) -> str:
        manifest = self.manifest(job)
        if manifest is None:
            return f"stemforge_{job.id}"
        return f"{manifest.conditions.genre}_{manifest.conditions.bpm_label}bpm_{job.id}"


MIXER_HELP = ('the page\'s mixer as JSON, e.g. {"drums": {"volume_db": -3, "pan": -0.25}}: volume_db up to +6 '
              '(-60 or below is silence), pan -1 (left) to 1 (right); roles left out stay at 0 dB, centre')
FILE_LINK_SECONDS = 3600  # how long a signed file link (drag-out, a plain download) keeps working


def file_link_query(token: str, job_id: str, now: float | None = None) -> str:
    """`exp=...&sig=...` for a job's files: a drop onto the desktop or a DAW downloads with no
    Authorization header, so a link carries a signature of the job and an expiry instead
    (HMAC-SHA256 with the service's token): it opens that job's files and nothing else."""
    expires = int((now if now is not None else time.time()) + FILE_LINK_SECONDS)
    signature = hmac.new(token.encode(), f"{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"exp={expires}&sig={signature}"


def _signed_file_request(request: Request, token: str) -> bool:
    """A GET of a job's files or zip with a valid, unexpired signature for that job."""
    job_id = request.path_params.get("job_id")
    parts = request.url.path.rstrip("/").split("/")
    if request.method != "GET" or not job_id or not ("files" in parts or parts[-1] in ("zip", "mix")):
        return False
    expires, signature = request.query_params.get("exp", ""), request.query_params.get("sig", "")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    expected = hmac.new(token.encode(), f"{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()
    return secrets.compare_digest(signature.encode(), expected.encode())


def parse_mixer(text: str | None) -> dict:
    """The `mixer` query of GET /jobs/{id}/zip and /mix: JSON {role: {"volume_db": dB, "pan": -1..1}}
    (either key may be left out); role -> ChannelMix, neutral channels dropped."""
    from stemforge.audio.daw import ChannelMix

    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise HTTPException(422, f"mixer: not JSON ({error.msg}); send {{\"drums\": {{\"volume_db\": -3, "
                                 f"\"pan\": 0}}}}") from error
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise HTTPException(422, "mixer: send an object of roles, each {\"volume_db\": dB, \"pan\": -1..1}")
    mixer = {}
    for role, channel in values.items():
        unknown = set(channel) - {"volume_db", "pan"}
        if unknown:
            raise HTTPException(422, f"mixer.{role}: unknown key {sorted(unknown)[0]!r}; use volume_db and pan")
        try:
            mix = ChannelMix(float(channel.get("volume_db", 0.0)), float(channel.get("pan", 0.0))).check(role)
        except (TypeError, ValueError) as error:
            raise HTTPException(422, str(error) if str(error).startswith("mixer") else
                                f"mixer.{role}: volume_db and pan must be numbers") from error
        if not mix.neutral:
            mixer[str(role)] = mix
    return mixer


def _in_job_folder(run: dict, folder: str) -> dict:
    """A take's run.json with its file paths relative to the job folder (take2/stems/...)."""
    if not folder:
        return run
    moved = dict(run)
    moved["midi"] = {role: f"{folder}/{path}" for role, path in run.get("midi", {}).items()}
    moved["stems"] = {role: f"{folder}/{path}" for role, path in run.get("stems", {}).items()}
    for name in ("mix", "live_set", "dawproject"):
        if run.get(name):
            moved[name] = f"{folder}/{run[name]}"
    moved["folder"] = folder
    return moved


# ------------------------------------------------------------------ the app

def _host_name(host_header: bytes) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1'."""
    host = host_header.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class _Guard:
    """413 for request bodies above `limit` bytes (announced by Content-Length or streamed), and
    400 for a Host header not in `allowed_hosts`: on loopback that defeats DNS rebinding, where
    a web page in the producer's browser would otherwise reach the service through its own name."""

    def __init__(self, app, limit: int, allowed_hosts: tuple[str, ...] | None,
                 upload_limits: dict[str, int] | None = None) -> None:
        self.app, self.default_limit, self.allowed_hosts = app, limit, allowed_hosts
        self.upload_limits = upload_limits or {}  # paths that take audio get their own (larger) limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limits.get(scope.get("path", ""), self.default_limit)
        headers = dict(scope.get("headers") or [])
        if self.allowed_hosts is not None and _host_name(headers.get(b"host", b"")) not in self.allowed_hosts:
            return await self._send(send, 400, "host: this service answers only to "
                                    f"{', '.join(self.allowed_hosts)} (start it with --host to serve others)")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await self._refuse(send, limit)
        seen = {"bytes": 0, "over": False, "answered": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    seen["over"] = True
                    raise _TooLarge()
            return message

        async def guarded_send(message) -> None:
            # FastAPI turns an exception while reading the body into its own 400: a streamed
            # (chunked) body over the limit must still be a 413, so the app's answer is replaced.
            if seen["over"]:
                if not seen["answered"]:
                    seen["answered"] = True
                    await self._refuse(send, limit)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not seen["answered"]:
                seen["answered"] = True
                await self._refuse(send, limit)

    async def _refuse(self, send, limit: int) -> None:
        setting = "max_request_bytes" if limit == self.default_limit else "max_upload_bytes"
        await self._send(send, 413, f"request body is larger than {limit} bytes ({setting} in the service config)")

    @staticmethod
    async def _send(send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _unprocessable(error: FieldError) -> JSONResponse:
    return JSONResponse(status_code=422, content={
        "detail": [{"loc": ["body", error.field], "msg": str(error), "type": "value_error"}]})


def create_app(data_dir: Path, token: str | None, model: Path | None, workers: int,
               limits: ServiceLimits, allowed_hosts: tuple[str, ...] | None = None,
               broker: str | None = None) -> FastAPI:
    """The API and the page. Opens (and locks) the data folder now; workers start with the app.
    `allowed_hosts`: Host header names to answer (None = any). `broker`: a Redis URL, to run
    jobs on `pipeline worker` processes (pipeline/broker.py) instead of local ones."""
    state = ServiceState(data_dir, token, model, workers, limits, broker)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.pool.start()
        try:
            yield
        finally:
            state.pool.stop()
            state.close()

    # With a token the API's schema is not published either: /docs and /openapi.json would
    # show every route and field to anyone who can reach the port.
    public_docs = token is None
    app = FastAPI(title="stemforge", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs" if public_docs else None, redoc_url="/redoc" if public_docs else None,
                  openapi_url="/openapi.json" if public_docs else None,
                  description="Compose drums, bass and melody; render synced WAV stems; download them.")
    app.state.stemforge = state

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each bad input back; a NaN or an infinity cannot be
        # written as JSON, so that answer was a 500. Location, message and type say enough.
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in error.errors()]})
    @app.exception_handler(OSError)
    async def no_room(request, error: OSError | DiskFullError) -> JSONResponse:
        # a full disk while writing an upload, a zip or a job: 507 with the reason, not a 500
        full = disk_full(error, state.data_dir)
        if full is None:
            raise error
        return JSONResponse(status_code=507, content={"detail": str(full)})

    app.add_exception_handler(DiskFullError, no_room)  # an export's folder (atomic_folder) says it in one line

    app.add_middleware(_Guard, limit=limits.max_request_bytes, allowed_hosts=allowed_hosts,
                       upload_limits={"/loops": limits.max_upload_bytes})

    def authorized(request: Request, authorization: str | None = Header(None, include_in_schema=False)) -> None:
        if state.token is None:
            return
        if _signed_file_request(request, state.token):
            return
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), state.token.encode()):
            raise HTTPException(401, "token: send Authorization: Bearer <token> (the service was started with "
                                "--token)", headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(dependencies=[Depends(authorized)])

    def job_or_404(job_id: str) -> Job:
        job = state.store.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise HTTPException(404, f"job: no job {job_id!r}")
        return job

    def done_job(job_id: str) -> Job:
        job = job_or_404(job_id)
        if job.status != "done" or not state.run_dir(job).is_dir():
            raise HTTPException(409, f"job: {job_id} is {job.status}, not done; its files appear when it is done")
        return job

    @api.post("/jobs", status_code=202, response_model=JobInfo,
              responses={413: {"description": "body too large"}, 422: {"description": "a field is invalid"},
                         429: {"description": "queue full; see Retry-After"}})
    def post_job(body: JobRequest):  # type: ignore[valid-type]
        try:
            values = state.check(body)
        except FieldError as error:
            return _unprocessable(error)
        try:
            job = state.store.add(values, max_queued=limits.max_queued)
        except sqlite3.OperationalError as error:
            if "full" in str(error).lower():
                return JSONResponse(status_code=507, content={
                    "detail": f"disk: the data folder's disk is full ({state.data_dir}); free space there and "
                              "try again"})
            return JSONResponse(status_code=503, content={
                "detail": f"store: the job database cannot be written ({error}); try again"})
        if job is None:
            queued = state.store.counts()["queued"]
            retry = state.pool.retry_after_seconds(queued)
            return JSONResponse(status_code=429, headers={"Retry-After": str(retry)}, content={
                "detail": f"queue: {queued} jobs are waiting (max_queued {limits.max_queued}); "
                          f"try again in {retry} s"})
        state.pool.wake()
        info = state.info(job)
        return JSONResponse(status_code=202, content=info.model_dump(), headers={"Location": f"/jobs/{job.id}"})

    @api.get("/jobs", response_model=JobList)
    def list_jobs(limit: int | None = Query(None, ge=1, le=1000)) -> JobList:
        jobs = state.store.recent(limit or limits.recent_jobs)
        return JobList(jobs=[state.info(j) for j in jobs], counts=state.store.counts())

    @api.get("/jobs/{job_id}", response_model=JobInfo)
    def get_job(job_id: str) -> JobInfo:
        return state.info(job_or_404(job_id), full=True)

    @api.delete("/jobs/{job_id}", response_model=DeleteResult)
    def delete_job(job_id: str) -> DeleteResult:
        """Cancel a queued or running job (a running one is killed; nothing of it stays on disk),
        or remove a finished one with its files."""
        job = job_or_404(job_id)
        if job.status == "queued" and state.store.finish(job.id, "cancelled", error="cancelled by a client",
                                                         was=("queued",)):
            return DeleteResult(id=job.id, status="cancelled", removed=False)
        if state.pool.cancel(job.id):
            return DeleteResult(id=job.id, status="cancelled", removed=False)
        job = job_or_404(job_id)
        if job.status not in FINISHED:  # it moved on between the reads (e.g. just started): try again
            if state.pool.cancel(job.id):
                return DeleteResult(id=job.id, status="cancelled", removed=False)
            raise HTTPException(409, f"job: {job_id} is {job.status}; try again")
        shutil.rmtree(state.run_dir(job), ignore_errors=True)
        (state.cache_dir / f"{job.id}.zip").unlink(missing_ok=True)
        state.forget(job.id)
        state.store.delete(job.id)
        return DeleteResult(id=job.id, status=job.status, removed=True)

    @api.get("/jobs/{job_id}/files/{path:path}", response_class=FileResponse,
             responses={200: {"description": "the file"}, 400: {"description": "path outside the job"}})
    def get_file(job_id: str, path: str, download: bool = False):
        job = done_job(job_id)
        target = state.job_file(job, path)
        return FileResponse(target, filename=target.name if download else None)

    @api.get("/jobs/{job_id}/zip", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
    def get_zip(job_id: str, mixer: str | None = Query(None, max_length=4000, description=MIXER_HELP)):
        """The run folder as a zip; with `mixer`, its mixes re-rendered and its Live set (and
        DAWproject) carrying those faders and pans."""
        job = done_job(job_id)
        return FileResponse(state.zip_file(job, parse_mixer(mixer)), media_type="application/zip",
                            filename=f"{state.zip_root(job)}.zip")

    @api.get("/jobs/{job_id}/mix", response_class=FileResponse, responses={200: {"content": {"audio/wav": {}}}})
    def get_mix(job_id: str, take: int | None = Query(None, ge=1, le=MAX_TAKES),
                mixer: str | None = Query(None, max_length=4000, description=MIXER_HELP)):
        """A take's mix WAV re-rendered through `mixer` (the page's faders and pans)."""
        job = done_job(job_id)
        manifest = state.manifest(job, take)
        if manifest is None or not manifest.mix:
            raise HTTPException(404, f"job: {job_id} has no mix" + (f" for take {take}" if take else ""))
        parsed = parse_mixer(mixer)
        folder = state.mixed_export(job, parsed)[0] if parsed else state.run_dir(job)
        path = folder / state.take_dir(job, take).relative_to(state.run_dir(job)) / manifest.mix
        return FileResponse(path, media_type="audio/wav", filename=path.name)

    @api.get("/jobs/{job_id}/notes", response_model=NotesInfo)
    def get_notes(job_id: str, take: int | None = Query(None, ge=1, le=MAX_TAKES)) -> NotesInfo:
        """The notes of every role for the page's piano roll (read with stemforge.symbolic.music.arrangement.read_tracks)."""
        from stemforge.pipeline.run_folder import arrangement_from_run
        from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT

        job = done_job(job_id)
        manifest = state.manifest(job, take)
        if manifest is None:
            raise HTTPException(404, f"job: {job_id} has no readable run.json" + (f" for take {take}" if take else ""))
        arrangement = arrangement_from_run(state.take_dir(job, take), manifest)
        tracks = {role: NoteTrack(program=t.program, is_drum=t.is_drum,
                                  notes=[[n.start, n.duration, n.pitch, n.velocity] for n in t.notes])
                  for role, t in arrangement.tracks.items()}
        return NotesInfo(bpm=arrangement.conditions.bpm, bars=arrangement.conditions.bars,
                         beats_per_bar=BEATS_PER_BAR, ticks_per_beat=TICKS_PER_BEAT, tracks=tracks)

    @api.get("/models", response_model=ModelInfo)
    def get_model() -> ModelInfo:
        meta = state.composer.meta
        return ModelInfo(path=str(state.model), genres=list(state.composer.genres), max_bars=state.composer.max_bars,
                         service_max_bars=limits.max_bars,  # past the model's reach a piece is a form of sections
                         sha256=meta.get("weights_sha256"), val_loss=meta.get("val_loss"),
                         parameters=meta.get("parameters"), steps=meta.get("steps"))

    @api.post("/loops", response_model=LoopInfo, responses={413: {"description": "above max_upload_bytes"},
                                                            422: {"description": "not a usable loop"}})
    async def post_loop(request: Request) -> LoopInfo:
        """A reference loop as the raw request body (WAV, FLAC, OGG, MP3): stored by its
        content's sha256 and analysed; its id goes into POST /jobs as `like_loop`."""
        from starlette.concurrency import run_in_threadpool

        data = await request.body()
        loop_id = hashlib.sha256(data).hexdigest()[:16]
        target = state.uploads_dir / f"{loop_id}.audio"
        if not target.is_file():
            write_atomic(target, data)
        from stemforge.audio.loop_analysis import estimate_loop

        try:  # librosa's analysis takes ~0.5 s: off the event loop
            estimate = await run_in_threadpool(estimate_loop, target, require_beat=False)
        except UserError as error:
            target.unlink(missing_ok=True)
            message = str(error).splitlines()[0].replace(str(target), "the upload")
            return _unprocessable(FieldError("like_loop", message.replace("--like: ", "like_loop: ", 1)))
        except BaseException:  # a bug: answered 500, and the upload no POST /jobs can use is not kept
            target.unlink(missing_ok=True)
            raise
        return LoopInfo(id=loop_id, bpm=estimate.bpm, key=estimate.key, seconds=round(estimate.seconds, 3),
                        description=estimate.describe().replace(target.name, "the loop"))

    @api.get("/schema", response_model=dict[str, Any])
    def get_schema() -> dict[str, Any]:
        """POST /jobs's body as JSON Schema with this service's limits, genres, kits and presets
        (`service_request_schema`): what the page builds its form from."""
        from stemforge.audio.assets import find_sounds
        from stemforge.audio.effects import available_presets

        return service_request_schema(limits, list(state.composer.genres), state.composer.max_bars,
                                      [sound.name for sound in find_sounds()], list(available_presets()))

    @api.get("/sounds", response_model=list[SoundInfo])
    def get_sounds() -> list[SoundInfo]:
        from stemforge.audio.assets import find_sounds

        return [SoundInfo(name=s.name, kind=s.kind, path=str(s.path), source=s.source) for s in find_sounds()]

    app.include_router(api)

    @app.get("/health", response_model=Health)
    def health() -> JSONResponse:
        pool = state.pool.status()
        try:
            counts = state.store.counts()
        except sqlite3.Error:
            counts = {}
        status = "degraded" if pool["scheduler"] != "ok" else "ok" if pool["ready"] else "starting"
        body = Health(status=status, workers=pool["workers"], workers_ready=pool["ready"],
                      scheduler=pool["scheduler"], scheduler_error=pool["scheduler_error"], jobs=counts)
        # a monitor that only reads the status code sees a dead scheduler too
        return JSONResponse(status_code=503 if status == "degraded" else 200, content=body.model_dump())

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def serve(host: str, port: int, data_dir: Path, token: str | None, model: Path | None, workers: int,
          config: Path | None = None, broker: str | None = None) -> None:
    """Run the service with uvicorn until interrupted. `config`: a service YAML (default
    $STEMFORGE_SERVICE_CONFIG or configs/service.yaml)."""
    import uvicorn

    limits = ServiceLimits.load(config)
    if workers < 1:
        raise ServiceError(f"--workers: {workers} must be at least 1")
    if not 0 < port < 65536:
        raise ServiceError(f"--port: {port} is not a TCP port (1-65535)")
    if not (host in LOOPBACK_HOSTS or host.startswith("127.")) and not token:
        print(f"warning: serving on {host} without --token: anyone who can reach this machine can submit jobs "
              "and download results", file=sys.stderr)
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    app = create_app(data_dir, token, model, workers, limits,
                     allowed_hosts=(*LOOPBACK_HOSTS, host) if loopback else None, broker=broker)
    shown = f"[{host}]" if ":" in host else host
    if broker:
        from stemforge.pipeline.broker import redacted

        where = f"jobs on the broker {redacted(broker)}, queue {app.state.stemforge.pool.queue_name}"
    else:
        where = f"{workers} worker{'s' if workers > 1 else ''}"
    print(f"stemforge: http://{shown}:{port}/  (data {app.state.stemforge.data_dir}, model "
          f"{app.state.stemforge.model}, {where})", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["JobRequest", "ServiceError", "ServiceLimits", "create_app", "serve", "JobError"]
