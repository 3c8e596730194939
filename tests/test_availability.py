"""The service stays available through what operations do to it, on both back ends: a systemd-style
stop (SIGTERM to the whole process group) puts the running job back in the queue and exits
cleanly, and the job runs after the restart; a Redis restart (kill -9, 5 s away, back empty) kills
no broker worker, loses no job and runs none twice, and /health counts the workers that survived.
Real processes, real signals, a real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stemforge.pipeline.jobs import TEST_STALL_ENV
from tests.test_broker import REDIS, Cluster
from tests.test_service import REPO_ROOT, STALL_SEED, ServiceProcess, partial_of, post, wait_for, write_config

pytestmark = pytest.mark.slow


def _traceback_free(log: str) -> None:
    assert "Traceback" not in log and "AttributeError" not in log, log[-3000:]


class GroupService(ServiceProcess):
    """`pipeline serve` (local back end) in a process group of its own, as systemd runs it."""

    new_session = True

    def stop_group(self) -> int:
        os.killpg(self.process.pid, signal.SIGTERM)  # systemd's default KillMode=control-group, SIGTERM
        return self.process.wait(timeout=30)


def test_a_process_group_stop_requeues_the_running_job_local(tiny_model: Path, tmp_path: Path) -> None:
    service = GroupService(tmp_path / "data", tiny_model, write_config(tmp_path / "service.yaml",
                                                                      job_timeout_seconds=60), stall_seconds=4.0)
    service.start()
    try:
        with service.client() as client:
            job = post(client, prompt="rock 120bpm", bars=1, seed=STALL_SEED)
            _, worker = partial_of(service.data_dir / "jobs", job["id"])  # mid-render on the worker
            # the group's SIGTERM reaches the worker too, and maybe first: it is the service's to stop
            os.kill(worker, signal.SIGTERM)
            time.sleep(1.5)
            assert client.get(f"/jobs/{job['id']}").json()["status"] == "running"  # it was failed (exit code -15)
        assert service.stop_group() == 0
        _traceback_free(service.log.read_text())
        service.start()  # systemd's restart
        with service.client() as client:
            done = wait_for(client, job["id"], ("done", "failed"), timeout=90)
        assert done["status"] == "done", done
        assert not list((service.data_dir / "jobs").glob(".*partial*"))
    finally:
        if service.process.poll() is None:
            service.stop_group()


def _group_worker(cluster: Cluster) -> subprocess.Popen:
    env = {**os.environ, TEST_STALL_ENV: f"{STALL_SEED}:6", "PYTHONUNBUFFERED": "1"}
    log = open(cluster.data_dir.parent / f"worker-{len(cluster.workers)}.log", "a")  # noqa: SIM115 - the worker's
    worker = subprocess.Popen([sys.executable, "-m", "stemforge.pipeline.cli", "worker", "--broker", cluster.redis.url,
                               "--data", str(cluster.data_dir), "--model", str(cluster.model), "--threads", "1"],
                              cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.workers.append(worker)
    return worker


def _logs(cluster: Cluster) -> str:
    return "".join(p.read_text() for p in cluster.data_dir.parent.glob("*.log"))


@pytest.fixture
def cluster(tiny_model: Path, tmp_path: Path):
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    cluster = Cluster(tmp_path, tiny_model)
    try:
        yield cluster
    finally:
        cluster.stop_all()


def test_a_process_group_stop_requeues_the_running_job_broker(cluster: Cluster) -> None:
    first = _group_worker(cluster)
    cluster.start()
    with cluster.client() as client:
        job = post(client, prompt="rock 120bpm", bars=1, seed=STALL_SEED)
        partial_of(cluster.data_dir / "jobs", job["id"])  # mid-render on the only worker
        os.killpg(first.pid, signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        queued = wait_for(client, job["id"], ("queued", "failed", "done"), timeout=30)
        assert queued["status"] == "queued", queued  # handed back, not failed
        _group_worker(cluster)
        done = wait_for(client, job["id"], ("done", "failed"), timeout=90)
    assert done["status"] == "done", done
    _traceback_free(_logs(cluster))
    assert "stopped answering" not in _logs(cluster)  # not mistaken for a lost worker either


def test_a_redis_restart_kills_no_worker_and_loses_no_job(cluster: Cluster) -> None:
    busy, idle = _group_worker(cluster), _group_worker(cluster)
    cluster.start()
    cluster.wait_ready(2)
    with cluster.client() as client:
        running = post(client, prompt="rock 120bpm", bars=1, seed=STALL_SEED)  # stalls 6 s in its render
        partial_of(cluster.data_dir / "jobs", running["id"])
        cluster.redis.restart(away_seconds=5.0)
        assert busy.poll() is None and idle.poll() is None  # both workers outlived the outage
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            health = client.get("/health").json()
            if health["status"] == "ok" and health["workers"] == 2:
                break
            time.sleep(0.2)
        assert health["status"] == "ok" and health["workers"] == 2, health  # it said "starting, workers: 0"
        after = post(client, prompt="hiphop 90bpm", bars=1, seed=7)  # taken by a worker after the restart
        results = [wait_for(client, job["id"], ("done", "failed"), timeout=90) for job in (running, after)]
    assert [r["status"] for r in results] == ["done", "done"], results
    assert busy.poll() is None and idle.poll() is None
    logs = _logs(cluster)
    assert "running it again" not in logs and "Traceback" not in logs, logs[-3000:]  # ran once, nothing died
    assert sorted(p.name for p in (cluster.data_dir / "jobs").iterdir()) == sorted([running["id"], after["id"]])
