"""`pipeline serve --broker` with `pipeline worker`s: a real redis-server on a free port, the API and
two worker processes (standing in for two machines) sharing one data folder. The local queue's
promises hold: jobs run and download the same, a cancel or a timeout stops the job on whichever
worker has it, kill -9 of a worker mid-job retries the job once elsewhere and then fails it with
its reason, a restarted API lists every job, nothing partial stays on disk, a full queue is 429."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stemforge.pipeline.jobs import TEST_STALL_ENV
from tests.test_service import (
    REPO_ROOT,
    STALL_SEED,
    ServiceProcess,
    free_port,
    partial_of,
    post,
    wait_for,
    write_config,
)

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (Debian: apt-get install -y "
                                "redis-server; scripts/setup.sh does it where apt is available)")


class RedisServer:
    """A throwaway redis-server: loopback only, no persistence, in its own folder."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        self.command = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                        "--appendonly", "no"]
        self._start()

    def _start(self) -> None:
        import redis

        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def restart(self, away_seconds: float) -> None:
        """kill -9, `away_seconds` away, started again on the same port, empty (no persistence)."""
        self.process.kill()
        self.process.wait()
        time.sleep(away_seconds)
        self._start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Cluster(ServiceProcess):
    """The API (`pipeline serve --broker`) and `pipeline worker` processes on one shared data folder."""

    def __init__(self, root: Path, model: Path) -> None:
        super().__init__(root / "data", model, write_config(root / "service.yaml"), stall_seconds=60.0)
        self.redis = RedisServer(root / "redis")
        self.workers: list[subprocess.Popen] = []
        (self.data_dir / "jobs").mkdir(parents=True)

    def start_worker(self) -> subprocess.Popen:
        env = {**os.environ, TEST_STALL_ENV: f"{STALL_SEED}:{self.stall_seconds}", "PYTHONUNBUFFERED": "1"}
        log = open(self.data_dir.parent / f"worker-{len(self.workers)}.log", "a")  # noqa: SIM115 - the worker's
        worker = subprocess.Popen([sys.executable, "-m", "stemforge.pipeline.cli", "worker", "--broker",
                                   self.redis.url, "--data", str(self.data_dir), "--model", str(self.model)],
                                  cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(worker)
        return worker

    def start(self, token: str | None = None) -> None:
        """As ServiceProcess.start, with --broker (health is "ok" once a worker has registered)."""
        self.token = token
        command = [sys.executable, "-m", "stemforge.pipeline.cli", "serve", "--port", str(self.port), "--data",
                   str(self.data_dir), "--model", str(self.model), "--broker", self.redis.url]
        env = {**os.environ, "STEMFORGE_SERVICE_CONFIG": str(self.config), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(1)

    def wait_ready(self, workers: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the API exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                health = httpx.get(f"{self.url}/health", timeout=2).json()
                if health["status"] == "ok" and health["workers_ready"] >= workers:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        pytest.fail(f"the API with {workers} worker(s) did not become ready:\n{self.log.read_text()[-3000:]}")

    def stop_all(self) -> None:
        self.stop()
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        self.redis.stop()


def nothing_left(jobs_dir: Path, job_id: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not list(jobs_dir.glob(f".{job_id}*")) and not (jobs_dir / job_id).exists():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def cluster(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    cluster = Cluster(tmp_path_factory.mktemp("broker"), tiny_model)
    try:
        cluster.start_worker()
        cluster.start_worker()
        cluster.start()
        cluster.wait_ready(2)
        yield cluster
    finally:
        cluster.stop_all()


def test_a_job_runs_on_a_broker_worker_and_downloads_as_on_the_local_back_end(cluster: Cluster) -> None:
    with cluster.client() as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["workers"] == 2
        job = wait_for(client, post(client, prompt="hiphop 90bpm", bars=2, seed=11)["id"], ("done", "failed"))
        assert job["status"] == "done", job["error"]
        assert job["progress"] == 1.0 and job["run"]["seed"] == 11 and set(job["run"]["stems"]) == {"drums", "bass",
                                                                                                      "melody"}
        stem = client.get(f"/jobs/{job['id']}/files/{job['run']['stems']['bass']}")
        assert stem.status_code == 200 and stem.content.startswith(b"RIFF")
        assert client.get(f"/jobs/{job['id']}/zip").status_code == 200
        assert job["id"] in [j["id"] for j in client.get("/jobs").json()["jobs"]]
    assert (cluster.data_dir / "jobs" / job["id"] / "run.json").is_file()


def test_cancel_stops_the_job_on_the_worker_that_runs_it(cluster: Cluster) -> None:
    jobs_dir = cluster.data_dir / "jobs"
    with cluster.client() as client:
        job = post(client, prompt="rock 120bpm", bars=2, seed=STALL_SEED)
        partial_of(jobs_dir, job["id"])  # mid-run on one of the workers, its folder half written
        response = client.delete(f"/jobs/{job['id']}")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert nothing_left(jobs_dir, job["id"], timeout=1.0)
        after = wait_for(client, post(client, prompt="rock 120bpm", bars=1, seed=5)["id"], ("done", "failed"))
        assert after["status"] == "done", after["error"]  # both workers are still there


def test_a_job_past_its_timeout_is_stopped_and_failed(cluster: Cluster) -> None:
    jobs_dir = cluster.data_dir / "jobs"
    with cluster.client() as client:
        job = post(client, prompt="house 124bpm", bars=2, seed=STALL_SEED)
        partial_of(jobs_dir, job["id"])
        failed = wait_for(client, job["id"], ("failed", "done"), timeout=60)
    assert failed["status"] == "failed" and failed["error"].startswith("timeout:"), failed
    assert nothing_left(jobs_dir, job["id"])


def test_a_full_queue_answers_429(cluster: Cluster) -> None:
    with cluster.client() as client:
        running = [post(client, prompt="rock", bars=1, seed=STALL_SEED) for _ in range(2)]
        for job in running:
            wait_for(client, job["id"], ("running",))
        queued = [post(client, prompt="rock", bars=1, seed=n) for n in (1, 2)]  # max_queued is 2
        refused = client.post("/jobs", json={"prompt": "rock", "bars": 1})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        for job in [*queued, *running]:
            assert client.delete(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert client.get("/jobs").json()["counts"]["queued"] == 0


def test_a_batch_runs_across_the_brokers_workers_and_resumes(cluster: Cluster, capsys) -> None:
    from stemforge.pipeline.cli import main

    prompts = cluster.data_dir.parent / "prompts.txt"
    prompts.write_text("rock 120bpm --seed 1\nhiphop 90bpm --seed 2\nhouse --seed 3 --takes 2\n")
    out = cluster.data_dir / "batches" / "night"
    args = ["batch", str(prompts), "--out", str(out), "--broker", cluster.redis.url, "--data", str(cluster.data_dir),
            "--model", str(cluster.model), "--bars", "1", "--stems"]
    assert main(args) == 0, capsys.readouterr().err
    assert "3/3 items done" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert [[t["seed"] for t in i["takes"]] for i in index["items"]] == [[1], [2], [3, 4]]
    assert all((out / t["files"]["mix"]).is_file() for i in index["items"] for t in i["takes"])
    assert main(args) == 0 and "3/3 items done" in capsys.readouterr().out  # nothing to run the second time
    outside = main([*args[:3], str(cluster.data_dir.parent / "elsewhere"), *args[4:]])
    assert outside == 2 and "is not inside --data" in capsys.readouterr().err
    assert not (cluster.data_dir.parent / "elsewhere").exists()


def test_a_job_forged_in_redis_runs_nothing_but_stemforges_own(cluster: Cluster, tmp_path: Path) -> None:
    """Whoever can write to Redis can queue jobs: a worker still calls only its own job function,
    and only with paths inside the shared data folder."""
    import redis
    from rq import Queue

    from stemforge.pipeline.broker import json_serializer, model_queue

    marker = tmp_path / "owned"
    queue = Queue(model_queue(cluster.model), connection=redis.Redis.from_url(cluster.redis.url),
                  serializer=json_serializer())
    forged = queue.enqueue_call("os.system", args=(f"touch {marker}",), job_id="forged-os-system")
    escape = queue.enqueue_call("stemforge.pipeline.broker_worker.perform",
                                args=("x", {"prompt": "rock", "bars": 1, "out": "../../escaped"}, 60.0),
                                job_id="forged-path")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (forged.get_status() not in ("failed", "finished")
                                           or escape.get_status() not in ("failed", "finished")):
        time.sleep(0.1)
    assert forged.get_status() == "failed" and "refused" in forged.latest_result().exc_string
    assert not marker.exists()
    assert escape.return_value()["status"] == "failed" and "outside the shared data folder" in escape.return_value()["error"]
    assert not (cluster.data_dir.parent.parent / "escaped").exists()


def test_kill_9_of_a_worker_mid_job_retries_it_once_elsewhere_then_fails_it(cluster: Cluster) -> None:
    jobs_dir = cluster.data_dir / "jobs"
    with cluster.client() as client:
        job = post(client, prompt="rock 120bpm", bars=2, seed=STALL_SEED)
        _, first = partial_of(jobs_dir, job["id"])
        os.kill(first, signal.SIGKILL)  # the machine running it is gone
        _, second = partial_of(jobs_dir, job["id"], timeout=30, not_pid=first)  # running again elsewhere
        assert second != first and client.get(f"/jobs/{job['id']}").json()["status"] in ("queued", "running")
        os.kill(second, signal.SIGKILL)
        failed = wait_for(client, job["id"], ("failed", "done"), timeout=30)
        assert failed["status"] == "failed" and "stopped answering" in failed["error"] and "2 time(s)" in failed["error"]
        assert nothing_left(jobs_dir, job["id"])
        deadline = time.monotonic() + 10  # /health no longer counts the dead workers
        while client.get("/health").json()["workers"] != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/health").json()["workers"] == 0
        cluster.start_worker()  # what a process manager (systemd Restart=) does
        cluster.start_worker()
        cluster.wait_ready(2)
        after = wait_for(client, post(client, prompt="rock", bars=1, seed=8)["id"], ("done", "failed"))
        assert after["status"] == "done", after["error"]


def test_a_restarted_api_lists_every_job_and_collects_what_ran_meanwhile(cluster: Cluster) -> None:
    with cluster.client() as client:
        before = {j["id"]: j["status"] for j in client.get("/jobs", params={"limit": 1000}).json()["jobs"]}
        assert "done" in before.values() and "cancelled" in before.values()
        pending = post(client, prompt="lofi 80bpm", bars=2, seed=21)
    cluster.kill9()  # the API crashes; the workers and the broker go on
    cluster.start()
    with cluster.client() as client:
        after = {j["id"]: j["status"] for j in client.get("/jobs", params={"limit": 1000}).json()["jobs"]}
        assert {k: v for k, v in after.items() if k in before} == before
        done = wait_for(client, pending["id"], ("done", "failed"))
        assert done["status"] == "done", done["error"]


def test_a_worker_with_an_unreachable_broker_says_so_in_one_line(tiny_model: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "stemforge.pipeline.cli", "worker", "--broker",
                             f"redis://127.0.0.1:{free_port()}/0", "--data", str(tmp_path), "--model", str(tiny_model)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --broker: cannot reach redis://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_workers_queue_is_named_by_its_weights_not_its_path(tiny_model: Path, tmp_path: Path) -> None:
    """A worker takes only jobs for the model it loaded: the same weights at another path on
    another machine share a queue; other weights, or MusicGen jobs, have their own."""
    from stemforge.pipeline.broker import model_queue

    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(tiny_model, copy)
    assert model_queue(copy) == model_queue(tiny_model)
    assert model_queue(None) != model_queue(tiny_model)  # the shipped composer
    assert model_queue(tiny_model, "musicgen-small") not in (model_queue(tiny_model),
                                                             model_queue(tiny_model, "musicgen-tuned"))


def test_a_forged_job_is_refused_every_field_the_api_never_writes(cluster: Cluster, tmp_path: Path) -> None:
    """A job forged in Redis: a runs_root with no out wrote outside the data folder, and an RQ
    on_success callback naming any importable function was called by the worker. Every field
    the API (or `pipeline batch`) never writes is refused; no callback or webhook is ever run."""
    import redis
    from rq import Callback, Queue
    from rq.webhook import Webhook

    from stemforge.pipeline.broker import PERFORM, json_serializer, model_queue

    queue = Queue(model_queue(cluster.model), connection=redis.Redis.from_url(cluster.redis.url),
                  serializer=json_serializer())
    outside = tmp_path / "outside"
    good = {"prompt": "rock", "bars": 1, "seed": 1, "out": "jobs/forged-ok"}
    forged = {
        "runs-root": ({"prompt": "rock", "bars": 1, "runs_root": str(outside)}, {}),
        "model": ({**good, "model": str(cluster.model)}, {}),
        "soundfont": ({**good, "soundfont": "/usr/share/sounds/sf2/FluidR3_GM.sf2"}, {}),
        "kit-path": ({**good, "kit": "/etc"}, {}),
        "preset-path": ({**good, "preset": "/etc/hostname"}, {}),
        "callback": (good, {"on_success": Callback("builtins.print")}),
        "webhook": (good, {"webhooks": [Webhook("http://127.0.0.1:9/forged", job_status="finished")]}),
    }
    jobs = {name: queue.enqueue_call(PERFORM, args=("forged" + name, request, 60.0), job_id=f"forged-{name}", **extra)
            for name, (request, extra) in forged.items()}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(j.get_status() not in ("failed", "finished") for j in jobs.values()):
        time.sleep(0.1)
    outcomes = {}
    for name, job in jobs.items():
        if job.get_status() == "failed":
            outcomes[name] = job.latest_result().exc_string.strip().splitlines()[-1]
        else:
            outcomes[name] = job.return_value()["error"] if job.return_value()["status"] != "done" else "ran"
    assert all("refused" in text for text in outcomes.values()), outcomes
    assert not outside.exists() and not (cluster.data_dir / "jobs" / "forged-ok").exists()
    logs = "".join(p.read_text() for p in cluster.data_dir.parent.glob("worker-*.log"))
    assert f"forged-callback: {PERFORM}(" not in logs  # print(job, connection, result) was never called
