"""`pipeline serve` under load: N concurrent clients on loopback for a bounded time.

    python bench/service.py [--clients 4] [--seconds 30] [--bars 2] [--workers 1] [--model MODEL_DIR]
    python bench/service.py --backend broker --workers 2 ...     # jobs on `pipeline worker` processes
    python bench/service.py --batch 100 --bars 8 --workers 2 [--backend broker]

--backend broker starts a throwaway redis-server (Debian's, on a free loopback port), the API with
--broker and --workers `pipeline worker` processes on one shared data folder (processes standing in
for machines). "Overhead per job" is the latency to first audio minus the time `run()` itself took
on the worker (run.json timings.total): what the queue, polling and download add to a job.

--batch N renders N prompts with `pipeline batch` (one subprocess, its workers load the model
once) and, for comparison, a few single `pipeline run` subprocess calls (each loads the model);
printed: the batch's wall time and per-item cost against a single call's.

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
import json
import os
import shutil
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

from stemforge.pipeline.jobs import WORKER_BATCH  # noqa: E402

PROMPTS = ("hiphop 90bpm", "house 124bpm", "rock 120bpm", "lofi 80bpm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_model(given: Path | None, scratch: Path) -> Path:
    from stemforge.symbolic.decoding.model import DEFAULT_MODEL_DIR, is_model_dir

    if given is not None:
        return given
    if is_model_dir(DEFAULT_MODEL_DIR):
        return DEFAULT_MODEL_DIR
    print("no shipped model: training a tiny one for the bench", file=sys.stderr)
    from stemforge.symbolic.training.prepare import prepare_dataset
    from stemforge.symbolic.training.train import TrainConfig, train
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


class Redis:
    """A throwaway redis-server on a free loopback port (no persistence)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("--backend broker needs redis-server (apt-get install -y redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                         str(folder), "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_workers(broker: str, data: Path, model: Path, count: int) -> list[subprocess.Popen]:
    (data / "jobs").mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([sys.executable, "-m", "stemforge.pipeline.cli", "worker", "--broker", broker,
                              "--data", str(data), "--model", str(model)], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=open(data.parent / f"worker-{n}.log", "w")) for n in range(count)]


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class Server:
    def __init__(self, model: Path, data: Path, workers: int, clients: int, broker: str | None = None,
                 worker_threads: int | None = 1, worker_batch: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = data.parent / "service.yaml"
        threads = "null" if worker_threads is None else worker_threads
        config.write_text(f"max_bars: 32\nmax_queued: {max(16, clients * 2)}\nmax_request_bytes: 16384\n"
                          f"job_timeout_seconds: 300\nworker_threads: {threads}\nrecent_jobs: 50\n"
                          f"worker_batch: {worker_batch}\n")
        env = {**os.environ, "STEMFORGE_SERVICE_CONFIG": str(config)}
        self.workers = start_workers(broker, data, model, workers) if broker else []
        backend = ["--broker", broker] if broker else ["--workers", str(workers)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stemforge.pipeline.cli", "serve", "--port", str(self.port), "--data", str(data),
             "--model", str(model), *backend], cwd=ROOT, env=env,
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
            if time.monotonic() - started > 180:
                raise SystemExit("the service did not become ready in 120 s")
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - started

    def rss_bytes(self) -> int:
        total = 0
        for pid in [self.process.pid, *(w.pid for w in self.workers)]:
            try:
                root = psutil.Process(pid)
                total += sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        stop_processes([self.process, *self.workers])


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
                    results["overheads"].append(latency - job["run"]["timings"]["total"])


def warm_up(url: str, workers: int, bars: int) -> None:
    """Two jobs per worker before measuring: a worker's first job compiles the decoder (numba,
    cached per machine, again after a source change), which is start-up, not throughput."""
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = [client.post("/jobs", json={"prompt": PROMPTS[n % 4], "bars": bars, "stems": True}).json()["id"]
               for n in range(2 * workers)]
        for job_id in ids:
            while client.get(f"/jobs/{job_id}").json()["status"] not in ("done", "failed", "cancelled"):
                time.sleep(0.1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def bench_batch(model: Path, scratch: Path, args: argparse.Namespace, broker: str | None) -> int:
    """`pipeline batch` of N prompts against single `pipeline run` calls (each a new process)."""
    data = scratch / "data"
    prompts = scratch / "prompts.txt"
    prompts.write_text("".join(f"{PROMPTS[n % len(PROMPTS)]} --seed {n}\n" for n in range(args.batch)))
    common = ["--model", str(model), "--bars", str(args.bars), "--stems"]
    singles = []
    for number in range(args.singles):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stemforge.pipeline.cli", "run", "--prompt", PROMPTS[number % 4],
                        "--seed", str(number), "--out", str(scratch / f"single-{number}"), *common], cwd=ROOT,
                       check=True, capture_output=True)
        singles.append(time.perf_counter() - started)
    workers: list[subprocess.Popen] = []
    command = [sys.executable, "-m", "stemforge.pipeline.cli", "batch", str(prompts), "--out", str(data / "batch"),
               *common]
    if broker:
        workers = start_workers(broker, data, model, args.workers)
        command += ["--broker", broker, "--data", str(data)]
    else:
        command += ["--workers", str(args.workers)]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    finally:
        wall = time.perf_counter() - started
        stop_processes(workers)
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return 1
    index = json.loads((data / "batch" / "index.json").read_text())
    totals = [t["timings"]["total"] for item in index["items"] for t in item["takes"]]
    single = statistics.median(singles)
    print(f"batch bench: {args.batch} prompts, {args.bars} bars + stems each, {args.workers} "
          f"{'broker worker process(es)' if broker else 'local worker(s)'}, model {model}")
    print(f"  batch wall time               {wall:7.1f} s  ({index['counts']['done']} done)")
    print(f"  per item (wall / items)       {wall / args.batch:7.2f} s  ({args.batch / wall * 60:.1f} items/min)")
    print(f"  run() per item p50 / p95      {statistics.median(totals):7.2f} / {percentile(totals, 0.95):.2f} s "
          "(inside the workers)")
    print(f"  single `pipeline run` call    {single:7.2f} s  (median of {len(singles)}; new process, loads the model)")
    print(f"  single calls for all items    {single * args.batch:7.1f} s  (estimated: {args.batch} x the median)")
    print(f"  speed-up                      {single * args.batch / wall:7.2f} x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long clients keep posting jobs")
    parser.add_argument("--bars", type=int, default=2, help="bars per job")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (local, or `pipeline worker`s)")
    parser.add_argument("--backend", choices=("local", "broker"), default="local",
                        help="local worker processes, or RQ over a throwaway redis-server")
    parser.add_argument("--model", type=Path, help="model directory (default: shipped, else a tiny one)")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-process run() reference")
    parser.add_argument("--worker-threads", type=int, default=None,
                        help="threads per worker (default: the service's, the cores shared among the workers)")
    parser.add_argument("--worker-batch", type=int, default=WORKER_BATCH,
                        help=f"queued jobs a free worker composes together (1: one at a time; default {WORKER_BATCH})")
    parser.add_argument("--batch", type=int, default=0, help="bench `pipeline batch` of this many prompts instead")
    parser.add_argument("--singles", type=int, default=3, help="with --batch: single `pipeline run` calls to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stemforge-bench-") as scratch_name:
        scratch = Path(scratch_name)
        model = bench_model(args.model, scratch)
        redis = Redis(scratch / "redis") if args.backend == "broker" else None
        try:
            if args.batch:
                return bench_batch(model, scratch, args, redis.url if redis else None)
            reference = None if args.no_reference else reference_seconds(model, args.bars, scratch)
            server = Server(model, scratch / "data", args.workers, args.clients, redis.url if redis else None,
                            args.worker_threads, args.worker_batch)
            warm_up(server.url, args.workers, args.bars)
            results: dict = {"latencies": [], "finished": [], "overheads": [], "errors": [], "throttled": 0}
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
        finally:
            if redis is not None:
                redis.stop()

    latencies = results["latencies"]
    print(f"service bench: {args.clients} clients x {args.seconds:g} s, {args.bars} bars + stems per job, "
          f"{args.backend} back end, {args.workers} worker(s) x {args.worker_threads or 'the cores shared'} "
          f"thread(s), up to {args.worker_batch} job(s) composed together, model {model}")
    print(f"  start-up until workers ready  {server.startup_seconds:6.2f} s")
    print(f"  jobs finished                 {len(latencies):6d}  ({len(latencies) / elapsed * 60:.1f} jobs/min)")
    if latencies:
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        print(f"  latency to first audio p50    {p50:6.2f} s")
        print(f"  latency to first audio p95    {p95:6.2f} s")
        overheads = results["overheads"]
        print(f"  overhead per job p50 / p95    {statistics.median(overheads):6.2f} / {percentile(overheads, 0.95):.2f} s "
              "(latency minus run() on the worker: queueing, polling, download)")
        if reference is not None:
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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        sys.exit(main())
