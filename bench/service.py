"""`pipeline serve` under load: N concurrent clients on loopback for a bounded time.

    python bench/service.py [--clients 4] [--seconds 30] [--bars 2] [--workers 1] [--model MODEL_DIR]

Each client posts a job (stems on), polls it, and downloads its first stem: "latency to first
audio" is the time from the POST to that stem's last byte, what a producer waits for before
hearing something. Printed: jobs/min, p50/p95 latency, the service's memory (server + worker
processes, peak RSS), errors (any non-2xx except 429, or a failed job: must be 0) and 429s.
Reference measured in the same run: the same job through `pipeline.run.run()` in this process
(the CLI's path, model already loaded); the ratio is the service's p50 over it.

Without --model the shipped default model is used, or, where it is missing, a tiny model is
trained for the bench (a few seconds). Traffic goes to 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

PROMPTS = ("hiphop 90bpm", "house 124bpm", "rock 120bpm", "lofi 80bpm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_model(given: Path | None, scratch: Path) -> Path:
    from stemforge.symbolic.model import DEFAULT_MODEL_DIR, is_model_dir

    if given is not None:
        return given
    if is_model_dir(DEFAULT_MODEL_DIR):
        return DEFAULT_MODEL_DIR
    print("no shipped model: training a tiny one for the bench", file=sys.stderr)
    from stemforge.symbolic.prepare import prepare_dataset
    from stemforge.symbolic.train import TrainConfig, train
    from tests.midi_fixtures import write_corpus

    corpus = write_corpus(scratch / "corpus", files_per_genre=4)
    prepare_dataset(corpus, scratch / "dataset", corpus / "tracks.csv", progress=False)
    train(scratch / "dataset", scratch / "model", TrainConfig.load("tiny"), progress=False)
    return scratch / "model"


def reference_seconds(model: Path, bars: int, scratch: Path, repeats: int = 3) -> float:
    """The same job through run() in this process, model loaded once (median of `repeats`)."""
    import torch

    from stemforge.pipeline.run import RunRequest, cached_composer, run

    torch.set_num_threads(1)
    composer = cached_composer(str(model))
    times = []
    for number in range(repeats + 1):  # the first one warms caches, as a service worker's first job does
        started = time.perf_counter()
        run(RunRequest(prompt=PROMPTS[number % len(PROMPTS)], bars=bars, seed=number, stems=True, model=model,
                       out=scratch / f"reference-{number}"), composer=composer)
        if number:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


class Server:
    def __init__(self, model: Path, data: Path, workers: int, clients: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = data.parent / "service.yaml"
        config.write_text(f"max_bars: 32\nmax_queued: {max(16, clients * 2)}\nmax_request_bytes: 16384\n"
                          "job_timeout_seconds: 300\nworker_threads: 1\nrecent_jobs: 50\n")
        env = {**os.environ, "STEMFORGE_SERVICE_CONFIG": str(config)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stemforge.pipeline.cli", "serve", "--port", str(self.port), "--data", str(data),
             "--model", str(model), "--workers", str(workers)], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=open(data.parent / "server.log", "w"))
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the service exited: see {data.parent / 'server.log'}")
            try:
                health = httpx.get(f"{self.url}/health", timeout=2).json()
                if health["workers_ready"] == workers:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() - started > 120:
                raise SystemExit("the service did not become ready in 120 s")
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - started

    def rss_bytes(self) -> int:
        try:
            root = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def client_loop(url: str, number: int, bars: int, deadline: float, results: dict, lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        job_number = 0
        while time.monotonic() < deadline:
            job_number += 1
            body = {"prompt": PROMPTS[(number + job_number) % len(PROMPTS)], "bars": bars, "stems": True}
            started = time.monotonic()
            response = client.post("/jobs", json=body)
            if response.status_code == 429:
                with lock:
                    results["throttled"] += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code != 202:
                with lock:
                    results["errors"].append(f"POST {response.status_code}: {response.text[:200]}")
                continue
            job_id = response.json()["id"]
            while True:
                job = client.get(f"/jobs/{job_id}").json()
                if job["status"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            if job["status"] != "done":
                with lock:
                    results["errors"].append(f"job {job_id} {job['status']}: {job['error']}")
                continue
            first_stem = next(iter(job["run"]["stems"].values()))
            audio = client.get(f"/jobs/{job_id}/files/{first_stem}")
            latency = time.monotonic() - started
            with lock:
                if audio.status_code != 200:
                    results["errors"].append(f"GET stem {audio.status_code}")
                elif time.monotonic() <= deadline + 120:
                    results["latencies"].append(latency)
                    results["finished"].append(time.monotonic())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long clients keep posting jobs")
    parser.add_argument("--bars", type=int, default=2, help="bars per job")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--model", type=Path, help="model directory (default: shipped, else a tiny one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stemforge-bench-") as scratch_name:
        scratch = Path(scratch_name)
        model = bench_model(args.model, scratch)
        reference = reference_seconds(model, args.bars, scratch)
        server = Server(model, scratch / "data", args.workers, args.clients)
        results: dict = {"latencies": [], "finished": [], "errors": [], "throttled": 0}
        lock = threading.Lock()
        peak = {"rss": server.rss_bytes()}
        stop_sampling = threading.Event()

        def sample_memory() -> None:
            while not stop_sampling.wait(0.25):
                peak["rss"] = max(peak["rss"], server.rss_bytes())

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        idle_rss = server.rss_bytes()
        started = time.monotonic()
        deadline = started + args.seconds
        clients = [threading.Thread(target=client_loop, args=(server.url, n, args.bars, deadline, results, lock))
                   for n in range(args.clients)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed = time.monotonic() - started
        stop_sampling.set()
        sampler.join()
        server.stop()

    latencies = results["latencies"]
    print(f"service bench: {args.clients} clients x {args.seconds:g} s, {args.bars} bars + stems per job, "
          f"{args.workers} worker(s), model {model}")
    print(f"  start-up until workers ready  {server.startup_seconds:6.2f} s")
    print(f"  jobs finished                 {len(latencies):6d}  ({len(latencies) / elapsed * 60:.1f} jobs/min)")
    if latencies:
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        print(f"  latency to first audio p50    {p50:6.2f} s")
        print(f"  latency to first audio p95    {p95:6.2f} s")
        print(f"  reference run() in-process    {reference:6.2f} s  (same job, CLI path, model loaded)")
        print(f"  ratio p50 / reference         {p50 / reference:6.2f} x  "
              f"(queueing behind {args.clients} clients on {args.workers} worker(s) included)")
        print(f"  ideal jobs/min at reference   {60 / reference * args.workers:6.1f}")
    print(f"  memory idle / peak (RSS)      {idle_rss / 2**20:6.0f} / {peak['rss'] / 2**20:.0f} MiB "
          "(server + workers)")
    print(f"  429 answers                   {results['throttled']:6d}")
    print(f"  errors                        {len(results['errors']):6d}")
    for error in results["errors"][:5]:
        print(f"    {error}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
