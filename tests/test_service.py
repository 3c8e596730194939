"""`pipeline serve` as a client sees it: a real server on a loopback port, jobs posted and
polled, files and zips downloaded, a restart that keeps the jobs, a job killed mid-run that
leaves nothing behind, the queue limit, traversal attempts and bad fields refused."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import soundfile

from stemforge.audio.render import parse_instrument_flags
from stemforge.pipeline.jobs import INTERRUPTED, TEST_STALL_ENV, JobStore, WorkerPool, recover
from stemforge.pipeline.service import ServiceError, ServiceLimits
from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.music.conditions import build_conditions
from stemforge.symbolic.runtime.sampling import SamplingSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
STALL_SEED = 4242  # jobs with this seed stall in their render stage (test-only knob, see pipeline/jobs.py)
TEST_LIMITS = {"max_bars": 8, "max_queued": 2, "max_request_bytes": 4096, "job_timeout_seconds": 8,
               "worker_threads": 1, "recent_jobs": 50, "max_upload_bytes": 1_500_000}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """`python -m stemforge.pipeline.cli serve` in a subprocess (so a test can kill -9 it); with
    `new_session`, in a process group of its own (as systemd runs it)."""

    new_session = False
    entry: tuple[str, ...] = ("-m", "stemforge.pipeline.cli")  # how python starts the CLI

    def __init__(self, data_dir: Path, model: Path, config: Path, token: str | None = None,
                 stall_seconds: float = 60.0) -> None:
        self.data_dir, self.model, self.config, self.token = data_dir, model, config, token
        self.stall_seconds = stall_seconds
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, token: str | None = None) -> None:
        self.token = token
        command = [sys.executable, *self.entry, "serve", "--port", str(self.port), "--data",
                   str(self.data_dir), "--model", str(self.model), "--workers", "1"]
        if token:
            command += ["--token", token]
        env = {**os.environ, "STEMFORGE_SERVICE_CONFIG": str(self.config),
               TEST_STALL_ENV: f"{STALL_SEED}:{self.stall_seconds}", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=self.new_session)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the service exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json()["status"] == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        pytest.fail(f"the service did not become ready:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, token: str | None = "default") -> httpx.Client:
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def raw_get(self, path: str, host: str | None = None) -> tuple[int, bytes]:
        """A GET whose path is sent byte for byte (httpx would normalise `..`)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if host is not None:
            headers["Host"] = host
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body


def write_config(path: Path, **overrides) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({**TEST_LIMITS, **overrides}))
    return path


def wait_for(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses}: {job}")


def partial_of(jobs_dir: Path, job_id: str, timeout: float = 60.0, not_pid: int | None = None) -> tuple[Path, int]:
    """The job's partial run folder and the pid of the worker writing it (`.<id>.partial-<pid>`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in jobs_dir.glob(f".{job_id}.partial-*"):
            pid = int(found.name.rpartition("-")[2])
            if pid != not_pid:
                return found, pid
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never had a partial run folder (other than pid {not_pid})")


def post(client: httpx.Client, **body) -> dict:
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture(scope="module")
def service(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("service")
    server = ServiceProcess(root / "data", tiny_model, write_config(root / "service.yaml"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def finished_job(service: ServiceProcess) -> dict:
    with service.client() as client:
        job = post(client, prompt="hiphop 90bpm", bars=2, seed=11, sample_rate=48000)
        return wait_for(client, job["id"], ("done", "failed"))


# ------------------------------------------------------------------ no server needed

def test_limits_config_refuses_unknown_keys(tmp_path: Path) -> None:
    shipped = ServiceLimits.load()  # the shipped configs/service.yaml loads
    assert shipped.max_queued >= 1 and shipped.worker_threads is None  # None: the cores shared among the workers
    with pytest.raises(ServiceError, match="worker_threads must be a whole number >= 1"):
        ServiceLimits.load(write_config(tmp_path / "threads.yaml", worker_threads=0))
    with pytest.raises(ServiceError, match=r"unknown config key\(s\) \['max_jobs'\]"):
        ServiceLimits.load(write_config(tmp_path / "bad.yaml", max_jobs=3))
    with pytest.raises(ServiceError, match="job_timeout_seconds"):
        ServiceLimits.load(write_config(tmp_path / "bad2.yaml", job_timeout_seconds=0))


@pytest.mark.parametrize("make, field", [
    (lambda: build_conditions("lofi", bpm=500), "bpm"),
    (lambda: build_conditions("lofi", key="H major"), "key"),
    (lambda: build_conditions("lofi", chords="Xyz"), "chords"),
    (lambda: build_conditions("lofi", density="loud"), "density"),
    (lambda: SamplingSettings(top_k=-1).validate(), "top_k"),
    (lambda: SamplingSettings(key_bias=float("nan")).validate(), "key_bias"),
    (lambda: parse_instrument_flags(["vox=1"]), "instruments"),
], ids=["bpm", "key", "chords", "density", "top-k", "key-bias", "instrument"])
def test_input_errors_carry_the_field_they_name(make, field: str) -> None:
    """The service's 422 points at `UserError.field`, set where the error is raised; it is
    never guessed from the message text."""
    with pytest.raises(UserError) as caught:
        make()
    assert caught.value.field == field


# ------------------------------------------------------------------ a real server

def test_health_page_and_openapi_are_served(service: ServiceProcess) -> None:
    with service.client() as client:
        assert client.get("/health").json()["workers_ready"] == 1
        page = client.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "stemforgePlayer" in client.get("/static/app.js").text
        schema = client.get("/openapi.json").json()
        assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/zip", "/models", "/sounds"} <= set(schema["paths"])
        assert client.get("/docs").status_code == 200
        model = client.get("/models").json()
        assert model["path"] == str(service.model) and model["genres"] and model["service_max_bars"] <= 8
        assert any(s["kind"] == "soundfont" for s in client.get("/sounds").json())


def test_the_request_schema_is_post_jobs_body_with_this_services_limits(service: ServiceProcess) -> None:
    """GET /schema, which the page builds its form from: every field of POST /jobs with its
    label, group, default, bounds and choices, narrowed to what this service accepts."""
    from stemforge.pipeline.request import request_fields
    from stemforge.pipeline.service import JobRequest

    with service.client() as client:
        schema = client.get("/schema").json()
        model = client.get("/models").json()
    properties = schema["properties"]
    assert set(properties) == set(JobRequest.model_fields)
    for item, spec in request_fields():
        if spec.api:
            assert properties[item.name]["description"] == spec.help, item.name
            assert properties[item.name]["x-group"] == spec.group in schema["x-groups"], item.name
    assert properties["bpm"]["title"] == "BPM" and properties["seed"]["x-unset"] == "random"
    assert properties["stems"]["default"] is True and properties["temperature"]["default"] == 1.0

    def value(name: str) -> dict:
        return next(branch for branch in properties[name].get("anyOf", [properties[name]]) if branch["type"] != "null")

    assert value("bars")["maximum"] == model["service_max_bars"] <= TEST_LIMITS["max_bars"]
    assert (value("takes")["minimum"], value("takes")["maximum"]) == (1, 4)  # max_takes, default 4 (the request's: 16)
    assert properties["density"]["enum"] == ["sparse", "normal", "busy", None]
    assert properties["tail"]["enum"] == ["wrap", "cut"] and properties["decoder"]["enum"] == ["int8", "compiled", "torch"]
    assert properties["renderer"]["enum"] == ["sample"]  # musicgen only with musicgen_model
    assert 44100 in properties["sample_rate"]["enum"] and 12345 not in properties["sample_rate"]["enum"]
    assert properties["genre"]["examples"] == model["genres"]
    assert properties["kit"]["examples"] and properties["preset"]["examples"]


def test_job_runs_and_its_files_download(service: ServiceProcess, finished_job: dict) -> None:
    assert finished_job["status"] == "done", finished_job["error"]
    with service.client() as client:
        job = client.get(f"/jobs/{finished_job['id']}").json()
        run = job["run"]
        assert run["conditions"]["bars"] == 2 and run["conditions"]["bpm"] == 90 and run["seed"] == 11
        assert set(run["stems"]) == {"drums", "bass", "melody"} and job["progress"] == 1.0
        expected = round(2 * 4 * 60 / 90 * 48000)
        for path in run["stems"].values():
            response = client.get(f"/jobs/{job['id']}/files/{path}")
            assert response.status_code == 200
            audio, rate = soundfile.read(io.BytesIO(response.content))
            assert rate == 48000 and audio.shape == (expected, 2), path
            assert hashlib.sha256(response.content).hexdigest() == run["files"][path]
        midi = client.get(f"/jobs/{job['id']}/files/{run['midi']['bass']}")
        assert midi.status_code == 200 and midi.content.startswith(b"MThd")
        notes = client.get(f"/jobs/{job['id']}/notes").json()
        assert notes["bars"] == 2 and set(notes["tracks"]) == {"drums", "bass", "melody"}
        assert all(0 <= n[0] < 2 * 4 * 480 for n in notes["tracks"]["drums"]["notes"])
        listed = client.get("/jobs").json()["jobs"]
        assert job["id"] in [j["id"] for j in listed]


def test_zip_contents_match_run_json(service: ServiceProcess, finished_job: dict) -> None:
    with service.client() as client:
        run = client.get(f"/jobs/{finished_job['id']}").json()["run"]
        response = client.get(f"/jobs/{finished_job['id']}/zip")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    root = f"hiphop_90bpm_{finished_job['id']}/"
    names = {name.removeprefix(root): name for name in archive.namelist()}
    assert all(name.startswith(root) for name in archive.namelist())
    assert set(names) == set(run["files"]) | {"run.json"}
    for relative, digest in run["files"].items():
        assert hashlib.sha256(archive.read(names[relative])).hexdigest() == digest, relative
    assert json.loads(archive.read(names["run.json"])) == run


def test_the_pages_mixer_reaches_the_mix_and_the_set(service: ServiceProcess, finished_job: dict) -> None:
    """GET /jobs/{id}/mix and /zip with the page's faders and pans: the mix re-rendered (a stem
    at -60 dB is gone, a stem panned hard left leaves the right channel), the zip's Live set
    carrying them; a bad mixer is a 422 naming the field."""
    import gzip
    from xml.etree import ElementTree as ET

    job, run = finished_job["id"], finished_job["run"]
    roles = list(run["stems"])
    silent, left = roles[0], roles[1]
    mixer = json.dumps({silent: {"volume_db": -60}, left: {"pan": -1}})
    with service.client() as client:
        stems = {role: soundfile.read(io.BytesIO(client.get(f"/jobs/{job}/files/{path}").content), always_2d=True)[0].T
                 for role, path in run["stems"].items()}
        response = client.get(f"/jobs/{job}/mix", params={"mixer": mixer})
        assert response.status_code == 200, response.text
        mix = soundfile.read(io.BytesIO(response.content), always_2d=True)[0].T
        rest = sum(audio for role, audio in stems.items() if role not in (silent, left))
        assert abs(mix[1] - rest[1]).max() < 1e-5  # right: neither the silent nor the hard-left stem
        assert abs(mix[0] - rest[0] - stems[left][0] - stems[left][1]).max() < 1e-5
        archive = zipfile.ZipFile(io.BytesIO(client.get(f"/jobs/{job}/zip", params={"mixer": mixer}).content))
        live_set = next(n for n in archive.namelist() if n.endswith(".als"))
        root = ET.fromstring(gzip.decompress(archive.read(live_set)))
        pans = {t.find("Name/UserName").get("Value"): float(t.find("DeviceChain/Mixer/Pan/Manual").get("Value"))
                for t in root.iter("AudioTrack")}
        assert pans[left] == -1.0 and all(pans[r] == 0.0 for r in roles if r != left)
        plain = zipfile.ZipFile(io.BytesIO(client.get(f"/jobs/{job}/zip").content))
        assert plain.read(next(n for n in plain.namelist() if n.endswith("_mix.wav"))) != archive.read(
            next(n for n in archive.namelist() if n.endswith("_mix.wav")))
        bad = client.get(f"/jobs/{job}/mix", params={"mixer": json.dumps({left: {"pan": 3}})})
        assert bad.status_code == 422 and f"mixer.{left}.pan" in bad.json()["detail"]
        unknown = client.get(f"/jobs/{job}/zip", params={"mixer": json.dumps({"chords": {"volume_db": -3}})})
        assert unknown.status_code == 422 and "chords" in unknown.json()["detail"]


def test_regenerate_one_role_keeps_the_others(service: ServiceProcess, finished_job: dict) -> None:
    with service.client() as client:
        child = post(client, from_job=finished_job["id"], keep=["drums", "melody"], seed=12)
        child = wait_for(client, child["id"], ("done", "failed"))
        assert child["status"] == "done", child["error"]
        assert child["run"]["context"]["keep"] == ["drums", "melody"]
        assert child["run"]["conditions"]["bpm"] == 90 and child["run"]["conditions"]["bars"] == 2
        assert child["run"]["sample_rate"] == 48000  # render settings come from the parent job
        parent_notes = client.get(f"/jobs/{finished_job['id']}/notes").json()["tracks"]
        child_notes = client.get(f"/jobs/{child['id']}/notes").json()["tracks"]
    assert child_notes["drums"] == parent_notes["drums"] and child_notes["melody"] == parent_notes["melody"]


def test_a_job_with_takes_serves_every_take_and_regenerates_from_one(service: ServiceProcess) -> None:
    with service.client() as client:
        job = wait_for(client, post(client, prompt="rock 120bpm", bars=1, seed=30, takes=2)["id"], ("done", "failed"))
        assert job["status"] == "done", job["error"]
        assert "2 takes, seeds 30-31" in job["title"]
        takes = job["takes"]
        assert [t["seed"] for t in takes] == [30, 31] and job["run"] == takes[0]
        for number, take in enumerate(takes, 1):  # paths relative to the job folder, every file served
            for path in [*take["stems"].values(), take["mix"], *take["midi"].values()]:
                assert path.startswith(f"take{number}/")
                assert client.get(f"/jobs/{job['id']}/files/{path}").status_code == 200
        second_notes = client.get(f"/jobs/{job['id']}/notes", params={"take": 2}).json()["tracks"]
        assert second_notes != client.get(f"/jobs/{job['id']}/notes").json()["tracks"]
        child = post(client, from_job=job["id"], from_take=2, keep=["drums", "melody"], seed=5)
        child = wait_for(client, child["id"], ("done", "failed"))
        assert child["status"] == "done", child["error"]
        child_notes = client.get(f"/jobs/{child['id']}/notes").json()["tracks"]
        assert child_notes["drums"] == second_notes["drums"] and child_notes["melody"] == second_notes["melody"]
        too_many = client.post("/jobs", json={"prompt": "rock", "takes": 5})
        no_such_take = client.post("/jobs", json={"from_job": job["id"], "from_take": 3, "keep": ["drums"]})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"][-1] == "takes"
    assert no_such_take.status_code == 422 and "2 take(s)" in no_such_take.json()["detail"][0]["msg"]


def test_a_reference_loop_upload_sets_the_tempo_and_key_of_a_job(service: ServiceProcess, tmp_path: Path) -> None:
    import io

    import soundfile

    from tests.test_loop_analysis import RATE, _loop

    buffer = io.BytesIO()
    soundfile.write(buffer, _loop(92.0, ["Am", "F", "C", "G"], bars=2), RATE, format="WAV", subtype="PCM_16")
    with service.client() as client:
        found = client.post("/loops", content=buffer.getvalue(), headers={"content-type": "audio/wav"})
        assert found.status_code == 200, found.text
        loop = found.json()
        assert abs(loop["bpm"] - 92.0) <= 1.0 and loop["key"] in ("A minor", "C major")
        job = wait_for(client, post(client, prompt="rock", bars=1, seed=4, like_loop=loop["id"])["id"], ("done", "failed"))
        assert job["status"] == "done", job["error"]
        assert job["run"]["conditions"]["bpm"] == loop["bpm"] and job["run"]["conditions"]["key"] == loop["key"]
        text = client.post("/loops", content=b"not audio at all" * 1000, headers={"content-type": "audio/wav"})
        huge = client.post("/loops", content=b"\0" * 1_600_000, headers={"content-type": "audio/wav"})
        unknown = client.post("/jobs", json={"prompt": "rock", "like_loop": "0123456789abcdef"})
    assert text.status_code == 422 and text.json()["detail"][0]["loc"][-1] == "like_loop"
    assert "not readable audio" in text.json()["detail"][0]["msg"] and "uploads" not in text.text
    assert huge.status_code == 413 and "max_upload_bytes" in huge.text
    assert unknown.status_code == 422 and "POST /loops" in unknown.json()["detail"][0]["msg"]


BAD_FIELDS = [
    ({"prompt": "lofi", "bpm": 500}, "bpm", "out of range"),
    ({"prompt": "lofi", "bars": 20}, "bars", "limit of 8"),
    ({"prompt": "lofi 20 bars"}, "bars", "limit of 8"),
    ({"prompt": "lofi", "bars": "two"}, "bars", ""),
    ({"prompt": "lofi", "key": "H major"}, "key", "unknown key"),
    ({"prompt": "lofi", "top_p": 2}, "top_p", "(0, 1]"),
    ({"prompt": "lofi", "temperature": 0}, "temperature", "> 0"),
    ({"prompt": "lofi", "density": "loud"}, "density", "loud"),
    ({"prompt": "lofi", "genre": "polka"}, "genre", "unknown genre"),
    ({"prompt": "lofi", "keep": ["bass"]}, "keep", "from_job"),
    ({"from_job": "0123456789abcdef", "keep": ["bass"]}, "from_job", "no finished job"),
    ({"prompt": "lofi", "sample_rate": 1000}, "sample_rate", "unsupported"),
    ({"prompt": "lofi", "kit": "/etc/passwd"}, "kit", "GET /sounds"),
    ({"prompt": "lofi", "preset": "../../etc/passwd"}, "preset", "unknown preset"),
    ({"prompt": "lofi", "instruments": {"vox": "3"}}, "instruments", "unknown role"),
    ({"prompt": "lofi", "out": "/tmp/x"}, "out", ""),
    ({"prompt": "lofi", "temperature": float("nan")}, "temperature", "finite number"),
    ({"prompt": "lofi", "key_bias": float("inf")}, "key_bias", "finite number"),
    ({"prompt": "lofi", "key_bias": -1}, "key_bias", ">= 0"),
    ({"prompt": "lofi", "seed": 2**70}, "seed", "less than or equal"),
    ({"prompt": "lofi", "key": "a" + " " * 3000 + "x"}, "key", "at most 40 characters"),
    ({"prompt": "lofi", "instruments": {"bass": "/etc/passwd"}}, "instruments", "not a path"),
]


@pytest.mark.parametrize("body, field, words", BAD_FIELDS, ids=[
    "bpm", "bars-flag", "bars-prompt", "bars-type", "key", "top_p", "temperature", "density", "genre",
    "keep-alone", "from_job", "sample_rate", "kit-path", "preset-path", "instruments", "unknown-field",
    "temperature-nan", "key_bias-inf", "key_bias-negative", "seed-70-bits", "key-3000-spaces", "instrument-path"])
def test_bad_fields_are_refused_naming_the_field(service: ServiceProcess, body: dict, field: str,
                                                 words: str) -> None:
    with service.client() as client:
        before = sum(client.get("/jobs").json()["counts"].values())
        # json.dumps writes NaN/Infinity as a careless client would (httpx's json= refuses them)
        response = client.post("/jobs", content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"][-1] == field and words in detail["msg"]
        assert sum(client.get("/jobs").json()["counts"].values()) == before  # nothing queued


def test_regenerate_requests_are_checked_before_queueing(service: ServiceProcess, finished_job: dict) -> None:
    with service.client() as client:
        every = client.post("/jobs", json={"from_job": finished_job["id"], "keep": ["drums", "bass", "melody"]})
        unknown = client.post("/jobs", json={"from_job": finished_job["id"], "keep": ["vocals"]})
        # the prompt of a regenerate counts as the worker reads it (it once passed as the parent's bars)
        longer = client.post("/jobs", json={"from_job": finished_job["id"], "prompt": "16 bars", "keep": ["drums"]})
    assert longer.status_code == 422, longer.text
    assert longer.json()["detail"][0]["loc"][-1] == "bars" and "limit of 8" in longer.json()["detail"][0]["msg"]
    assert every.status_code == 422 and every.json()["detail"][0]["loc"][-1] == "keep"
    assert unknown.status_code == 422 and "unknown role 'vocals'" in unknown.json()["detail"][0]["msg"]


def test_oversized_request_is_refused(service: ServiceProcess) -> None:
    with service.client() as client:
        response = client.post("/jobs", json={"prompt": "lofi " * 2000})
    assert response.status_code == 413 and "max_request_bytes" in response.json()["detail"]


def test_oversized_streamed_request_is_refused(service: ServiceProcess) -> None:
    """A chunked body announces no length; it is counted as it arrives (it was a 400)."""
    def chunks():
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"lofi " * 100
        yield b'"}'

    with service.client() as client:
        before = sum(client.get("/jobs").json()["counts"].values())
        response = client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413 and "max_request_bytes" in response.json()["detail"]
        assert sum(client.get("/jobs").json()["counts"].values()) == before


@pytest.mark.parametrize("path", [
    "../../etc/passwd", "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "/etc/passwd",
    "midi/../../../../../../etc/passwd", "escape/passwd",
], ids=["dotdot", "encoded-dotdot", "encoded-absolute", "absolute", "nested-dotdot", "symlink-out"])
def test_files_outside_the_job_folder_are_refused(service: ServiceProcess, finished_job: dict, path: str) -> None:
    run_dir = service.data_dir / "jobs" / finished_job["id"]
    if path.startswith("escape/") and not (run_dir / "escape").exists():
        (run_dir / "escape").symlink_to("/etc")
    status, body = service.raw_get(f"/jobs/{finished_job['id']}/files/{path}")
    assert status in (400, 404), status
    assert b"root:" not in body


def test_job_ids_cannot_traverse(service: ServiceProcess) -> None:
    for path in ("/jobs/..%2F..%2F..%2Fetc/files/passwd", "/jobs/../jobs.sqlite3", "/jobs/%2E%2E/zip"):
        status, body = service.raw_get(path)
        assert status in (400, 404), path
        assert b"SQLite" not in body and b"root:" not in body


def test_loopback_service_refuses_foreign_host_names(service: ServiceProcess) -> None:
    """DNS rebinding: a web page whose name resolves to 127.0.0.1 must not reach the API."""
    assert service.raw_get("/jobs", host=f"evil.example:{service.port}")[0] == 400
    assert service.raw_get("/health", host=f"localhost:{service.port}")[0] == 200
    assert service.raw_get("/health", host=f"[::1]:{service.port}")[0] == 200


def test_cancelled_running_job_leaves_no_partial_folder(service: ServiceProcess) -> None:
    jobs_dir = service.data_dir / "jobs"
    with service.client() as client:
        job = post(client, prompt="rock 120bpm", bars=2, seed=STALL_SEED)
        partial_of(jobs_dir, job["id"])  # it is mid-run, with its run folder half written
        response = client.delete(f"/jobs/{job['id']}")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        cancelled = client.get(f"/jobs/{job['id']}").json()
        assert cancelled["status"] == "cancelled" and "cancelled" in cancelled["error"]
        assert not list(jobs_dir.glob(f".{job['id']}*")) and not (jobs_dir / job["id"]).exists()
        after = wait_for(client, post(client, prompt="rock 120bpm", bars=1, seed=5)["id"], ("done", "failed"))
        assert after["status"] == "done", after["error"]  # the killed worker was replaced


def test_job_past_its_timeout_is_killed_and_failed(service: ServiceProcess) -> None:
    jobs_dir = service.data_dir / "jobs"
    with service.client() as client:
        job = post(client, prompt="house 124bpm", bars=2, seed=STALL_SEED)
        partial_of(jobs_dir, job["id"])
        failed = wait_for(client, job["id"], ("failed", "done"), timeout=60)
    assert failed["status"] == "failed" and failed["error"].startswith("timeout:")
    assert not list(jobs_dir.glob(f".{job['id']}*")) and not (jobs_dir / job["id"]).exists()


def test_full_queue_answers_429_with_retry_after(service: ServiceProcess) -> None:
    with service.client() as client:
        running = post(client, prompt="rock", bars=1, seed=STALL_SEED)
        wait_for(client, running["id"], ("running",))
        queued = [post(client, prompt="rock", bars=1, seed=n) for n in (1, 2)]  # max_queued is 2
        assert [j["queue_position"] for j in queued] == [1, 2]
        refused = client.post("/jobs", json={"prompt": "rock", "bars": 1})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "max_queued" in refused.json()["detail"]
        for job in [*queued, running]:
            assert client.delete(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert client.get("/jobs").json()["counts"]["queued"] == 0


def test_finished_job_can_be_removed(service: ServiceProcess) -> None:
    with service.client() as client:
        job = wait_for(client, post(client, prompt="rock", bars=1, seed=3)["id"], ("done", "failed"))
        assert client.get(f"/jobs/{job['id']}/zip").status_code == 200
        # an eval report written into the run folder (`pipeline eval ... --out DATA/jobs/ID/eval`) is shown
        report_dir = service.data_dir / "jobs" / job["id"] / "eval"
        report_dir.mkdir()
        (report_dir / "report.json").write_text(json.dumps({"fad": {"features": {"mix": {"fad": 12.5}}},
                                                            "novelty": {}, "inputs": {"runs": []}}))
        report = client.get(f"/jobs/{job['id']}").json()["report"]
        assert report["fad"]["features"]["mix"]["fad"] == 12.5 and "inputs" not in report
        removed = client.delete(f"/jobs/{job['id']}").json()
        assert removed["removed"] and client.get(f"/jobs/{job['id']}").status_code == 404
    assert not (service.data_dir / "jobs" / job["id"]).exists()
    assert not (service.data_dir / "cache" / f"{job['id']}.zip").exists()


def test_restart_after_kill_keeps_jobs_and_token_guards_the_api(service: ServiceProcess,
                                                                finished_job: dict) -> None:
    jobs_dir = service.data_dir / "jobs"
    with service.client() as client:
        interrupted = post(client, prompt="rock", bars=2, seed=STALL_SEED)
        partial_of(jobs_dir, interrupted["id"])
        waiting = post(client, prompt="rock 100bpm", bars=1, seed=21)
    service.kill9()  # a crash: no shutdown handlers run

    service.start(token="s3cret")  # same data folder and port, now with a LAN token
    with service.client(token=None) as anonymous:
        assert anonymous.get("/health").status_code == 200
        for path in ("/jobs", f"/jobs/{finished_job['id']}", "/models", "/sounds", "/schema"):
            assert anonymous.get(path).status_code == 401, path
        assert service.client(token="wrong").get("/jobs").status_code == 401
        for path in ("/docs", "/redoc", "/openapi.json"):  # the schema is not published either
            assert anonymous.get(path).status_code == 404, path
    with service.client() as client:
        kept = client.get(f"/jobs/{finished_job['id']}").json()
        assert kept["status"] == "done" and kept["run"]["seed"] == 11
        stem = next(iter(kept["run"]["stems"].values()))
        assert client.get(f"/jobs/{finished_job['id']}/files/{stem}").status_code == 200
        failed = client.get(f"/jobs/{interrupted['id']}").json()
        assert failed["status"] == "failed" and failed["error"] == INTERRUPTED
        # the waiting job may be running (its own partial folder) by now: only the crash's must be gone
        assert not list(jobs_dir.glob(f".{interrupted['id']}.partial*")) and not (jobs_dir / interrupted["id"]).exists()
        resumed = wait_for(client, waiting["id"], ("done", "failed"))  # the queue survived the crash
        assert resumed["status"] == "done", resumed["error"]


# ------------------------------------------------------------------ the scheduler under a full disk

class FullDiskStore(JobStore):
    """A real job store whose disk is full for a moment: the next writes of progress and of
    results raise what SQLite raises then."""

    def __init__(self, path: Path, progress_failures: int, result_failures: int) -> None:
        super().__init__(path)
        self.failures = {"progress": progress_failures, "result": result_failures}

    def _full(self, kind: str) -> None:
        if self.failures[kind] > 0:
            self.failures[kind] -= 1
            raise sqlite3.OperationalError("database or disk is full")

    def set_progress(self, job_id: str, stage: str, fraction: float) -> bool:
        self._full("progress")
        return super().set_progress(job_id, stage, fraction)

    def finish(self, job_id: str, status: str, *args, **kwargs) -> bool:
        self._full("result")
        return super().finish(job_id, status, *args, **kwargs)


def test_the_scheduler_survives_a_full_disk_and_finishes_every_job(tiny_model: Path, tmp_path: Path) -> None:
    """It died on the first "database or disk is full" in a progress update: the running job
    stayed at 7% forever and every later job stayed queued, while /health said ok."""
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    store = FullDiskStore(tmp_path / "jobs.sqlite", progress_failures=2, result_failures=2)
    pool = WorkerPool(store, tmp_path, jobs_dir, tiny_model, 1, timeout_seconds=300, threads=1,
                      to_run_kwargs=lambda job: {"prompt": "rock", "bars": 1, "seed": 1, "stems": False,
                                                 "model": str(tiny_model), "out": str(jobs_dir / job.id)})
    assert pool.scheduler_state() == "dead"  # not started: /health must not say ok
    pool.start()
    try:
        first, second = store.add({}), store.add({})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and {store.get(j.id).status for j in (first, second)} != {"done"}:
            time.sleep(0.2)
        assert [store.get(j.id).status for j in (first, second)] == ["done", "done"], pool.status()
        assert store.failures == {"progress": 0, "result": 0}  # the disk really was full for a while
        assert all((jobs_dir / j.id / "run.json").is_file() for j in (first, second))
        assert pool.status()["scheduler"] == "ok"
    finally:
        pool.stop()
        store.close()


def test_a_restart_settles_queued_jobs_whose_folders_exist(tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    store = JobStore(tmp_path / "jobs.sqlite")
    finished, half, clean = store.add({}), store.add({}), store.add({})
    (jobs_dir / finished.id).mkdir(parents=True)
    (jobs_dir / finished.id / "run.json").write_text("{}")
    (jobs_dir / half.id).mkdir()
    notes = recover(store, jobs_dir)
    assert store.get(finished.id).status == "done" and any(finished.id in n for n in notes)
    assert store.get(half.id).status == "queued" and not (jobs_dir / half.id).exists()  # runs again, no orphan
    assert store.get(clean.id).status == "queued"
    store.close()


def test_health_reports_the_scheduler(service: ServiceProcess) -> None:
    """On the real server; a dead or stuck scheduler makes /health 503 "degraded" (the pool
    reports "dead" before it starts, above)."""
    with service.client() as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["scheduler"] == "ok"
        assert health.json()["scheduler_error"] == ""


def test_a_full_disk_answers_507_naming_the_data_folder(tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    """It was a bare 500 ("cannot rollback"). The app is built but its workers not started
    (a TestClient outside `with` runs no lifespan): only the request path is under test."""
    from fastapi.testclient import TestClient

    from stemforge.pipeline.service import create_app

    app = create_app(tmp_path / "data", None, tiny_model, 1, ServiceLimits())
    state = app.state.stemforge

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(state.store, "add", full)
    try:
        response = TestClient(app).post("/jobs", json={"prompt": "lofi", "bars": 2})
        assert response.status_code == 507, response.text
        assert "disk is full" in response.json()["detail"] and str(state.data_dir) in response.json()["detail"]
    finally:
        state.close()


def test_an_aborted_jobs_end_is_recorded_once_the_disk_has_room(tmp_path: Path) -> None:
    """A cancel (or timeout) while the disk is full left the job "running" for good."""
    store = FullDiskStore(tmp_path / "jobs.sqlite", progress_failures=0, result_failures=1)
    pool = WorkerPool(store, tmp_path, tmp_path / "jobs", None, 1, timeout_seconds=60, threads=1,
                      to_run_kwargs=lambda job: {})
    job = store.add({})
    assert store.mark_running(job.id)
    pool._slots[0].job_ids = [job.id]  # as if a worker ran it
    assert pool.cancel(job.id)  # the client gets its answer; the store could not take it yet
    assert store.get(job.id).status == "running" and "disk is full" in pool.status()["scheduler_error"]
    pool._slots = []  # no worker processes in this test: only the scheduler's bookkeeping
    pool._turn()
    assert store.get(job.id).status == "cancelled"
    store.close()


def test_health_does_not_hang_on_a_scheduler_stuck_inside_a_turn(tmp_path: Path) -> None:
    import threading

    store = JobStore(tmp_path / "jobs.sqlite")
    pool = WorkerPool(store, tmp_path, tmp_path / "jobs", None, 1, timeout_seconds=60, threads=1,
                      to_run_kwargs=lambda job: {})
    held, release = threading.Event(), threading.Event()

    def stuck_turn() -> None:
        with pool._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=stuck_turn)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    assert pool.status()["scheduler"] == "stuck" and time.monotonic() - started < 3
    release.set()
    thread.join()
    store.close()


def test_the_service_main_process_checks_and_queues_without_torch(tiny_model: Path, tmp_path: Path) -> None:
    """The main process only checks requests and hands them to workers: it never composes, so it
    never loads torch (it held ~260 MB for it; ~75 MB without). Workers load it once each."""
    code = f"""
import sys
from pathlib import Path
from fastapi.testclient import TestClient
from stemforge.pipeline.service import ServiceLimits, create_app
app = create_app(Path({str(tmp_path / "data")!r}), None, Path({str(tiny_model)!r}), 1, ServiceLimits())
client = TestClient(app)  # outside `with`: no lifespan, so no worker processes start
assert client.post("/jobs", json={{"prompt": "rock", "bars": 2}}).status_code == 202
assert client.post("/jobs", json={{"prompt": "rock", "temperature": 0}}).status_code == 422
assert client.get("/models").json()["genres"]
app.state.stemforge.close()
print(sorted(m for m in ("torch", "transformers", "librosa", "miditok") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_free_worker_composes_queued_jobs_together_each_as_it_comes_alone(tiny_model: Path, tmp_path: Path) -> None:
    """Point 4 of the speed issue: the queued jobs of one worker go through the batched
    decoder in one pass. Each job's files must be byte for byte what the same request makes
    alone (a producer's seed means the same piece however busy the service was)."""
    from stemforge.pipeline.run import RunRequest, cached_composer, run

    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    store = JobStore(tmp_path / "jobs.sqlite")
    requests = {"rock": {"prompt": "rock 120bpm", "bars": 2, "seed": 3},
                "house": {"prompt": "house", "bars": 1, "seed": 4, "quantize": True}}
    queued = {store.add(request).id: name for name, request in requests.items()}
    pool = WorkerPool(store, tmp_path, jobs_dir, tiny_model, 1, timeout_seconds=300, threads=1, batch=2,
                      to_run_kwargs=lambda job: {**job.request, "stems": False, "model": str(tiny_model),
                                                 "out": str(jobs_dir / job.id)})
    pool.start()  # both are queued before the worker is ready: its first dispatch takes both
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and {store.get(j).status for j in queued} != {"done"}:
            time.sleep(0.2)
        assert {store.get(j).status for j in queued} == {"done"}, [store.get(j).error for j in queued]
    finally:
        pool.stop()
        store.close()
    manifests = {name: json.loads((jobs_dir / job_id / "run.json").read_text()) for job_id, name in queued.items()}
    assert manifests["rock"]["timings"]["compose"] == manifests["house"]["timings"]["compose"]  # one pass
    composer = cached_composer(str(tiny_model))
    for name, request in requests.items():
        alone = run(RunRequest(**request, model=tiny_model, out=tmp_path / f"alone-{name}"), None, composer)
        assert json.loads((alone.run_dir / "run.json").read_text())["files"] == manifests[name]["files"], name


def test_run_together_gives_each_request_its_own_result_or_error(tiny_model: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """A bad request among a worker's jobs fails alone; requests with other sampling settings
    compose in their own pass; a kept part composes alone (a pass shares its context)."""
    import stemforge.symbolic.runtime.compose as compose_module
    from stemforge.pipeline.run import RunRequest, cached_composer, run_together

    passes: list[list[int]] = []  # the seeds of each compose pass (compose times can coincide on a fast machine)
    compose_pieces = compose_module.compose_pieces

    def recorded(composer, orders, *args, **kwargs):
        passes.append([order.seed for order in orders])
        return compose_pieces(composer, orders, *args, **kwargs)

    monkeypatch.setattr(compose_module, "compose_pieces", recorded)
    composer = cached_composer(str(tiny_model))
    first = RunRequest(prompt="rock", bars=2, seed=1, model=tiny_model, out=tmp_path / "first")
    requests = [first,
                RunRequest(prompt="rock", bars=65, seed=2, model=tiny_model, out=tmp_path / "far"),
                RunRequest(prompt="house", bars=1, seed=3, temperature=0.8, model=tiny_model, out=tmp_path / "warm"),
                RunRequest(prompt="house", bars=1, seed=4, model=tiny_model, out=tmp_path / "third")]
    reports: list[list[str]] = [[] for _ in requests]
    heard: dict[int, object] = {}
    outcomes = run_together(requests, [lambda stage, fraction, seen=seen: seen.append(stage) for seen in reports],
                            composer, finished=lambda number, outcome: heard.setdefault(number, outcome))
    assert heard == dict(enumerate(outcomes))  # each job told as it ends, once
    assert isinstance(outcomes[1], UserError) and "bars: " in str(outcomes[1])
    assert not (tmp_path / "far").exists()
    for number in (0, 2, 3):
        assert outcomes[number].run_dir == requests[number].out and (requests[number].out / "run.json").is_file()
        assert reports[number][-1] == "done" and "composing" in reports[number]
    timings = [json.loads((requests[n].out / "run.json").read_text())["timings"] for n in (0, 2, 3)]
    assert timings[0]["compose"] == timings[2]["compose"]  # 0 and 3 share a pass, 2 has its own
    assert sorted(passes) == [[1, 4], [3]], passes
    passes.clear()
    kept = run_together([RunRequest(prompt="rock", bars=2, seed=5, model=tiny_model, out=tmp_path / "regen",
                                    from_run=first.out, keep=("drums",)),
                         RunRequest(prompt="rock", bars=2, seed=6, model=tiny_model, out=tmp_path / "plain")],
                        [None, None], composer)
    assert all(result.run_dir.is_dir() for result in kept)
    assert sorted(passes) == [[5], [6]], passes


def test_cancelling_one_job_of_a_batch_queues_the_others_again(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    pool = WorkerPool(store, tmp_path, tmp_path / "jobs", None, 1, timeout_seconds=60, threads=1,
                      to_run_kwargs=lambda job: {})
    cancelled, beside = store.add({}), store.add({})
    assert store.mark_running(cancelled.id) and store.mark_running(beside.id)
    pool._slots[0].job_ids = [cancelled.id, beside.id]  # as if a worker composed them together
    assert pool.cancel(cancelled.id)
    assert store.get(cancelled.id).status == "cancelled" and store.get(beside.id).status == "queued"
    assert pool.status()["busy"] == 0
    store.close()
