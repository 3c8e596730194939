"""The fault and bad-input battery (issue 27): every case a real process meets (the CLI, the service
on both back ends, the broker's workers, batch), each checked for what a user would notice.

    .venv/bin/python bench/faults.py [--skip-service] [--skip-broker] [--keep DIR]

Prints one line per case and then the totals: cases, tracebacks (a bad input or a fault must be a
one-line error or a clean recovery, never "internal error" and a traceback), hangs (a command or
a job past its time limit), leftovers (partial folders, job stores, uploads or files where none
should stay, anything in /tmp), jobs lost or duplicated (every job a fault touched ends exactly
once, with exactly one folder). The Redis-restart and process-group-stop cases run on both back
ends (the local back end has no Redis: its case is that a restart beside it changes nothing).
Real redis-server, real signals, a real size-limited tmpfs (as root; skipped otherwise), the
shipped model.
Exit code 1 when any total is not 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from stemforge.symbolic.core.paths import is_held

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STALL_SEED = 4242


@dataclass
class Totals:
    cases: int = 0
    tracebacks: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    lost_or_duplicated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # a case whose outcome was not the expected one


TOTALS = Totals()


def case(name: str, ok: bool, detail: str = "", *, traceback: bool = False, hang: bool = False,
         leftover: str = "", lost: str = "") -> None:
    TOTALS.cases += 1
    for flag, bucket in ((traceback, TOTALS.tracebacks), (hang, TOTALS.hangs), (bool(leftover), TOTALS.leftovers),
                         (bool(lost), TOTALS.lost_or_duplicated)):
        if flag:
            bucket.append(name)
    if not ok:
        TOTALS.failed.append(name)
    mark = "ok   " if ok and not (traceback or hang or leftover or lost) else "FAIL "
    extra = "; ".join(filter(None, [detail[:160], leftover and f"left: {leftover}", lost and f"jobs: {lost}"]))
    print(f"  {mark} {name}" + (f": {extra}" if extra and mark.startswith("FAIL") else ""), flush=True)


def pipeline(*args, timeout: float = 180, env: dict | None = None, cwd: Path | None = None,
             **popen) -> subprocess.CompletedProcess | None:
    """`pipeline ARGS` in a child process; None when it hung past `timeout`."""
    try:
        return subprocess.run([PYTHON, "-m", "stemforge.pipeline.cli", *map(str, args)], cwd=cwd or REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
                              **popen)
    except subprocess.TimeoutExpired:
        return None


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def tmp_leftovers(before: set[str]) -> str:
    now = {p.name for p in Path(tempfile.gettempdir()).glob("stemforge*")}
    return ", ".join(sorted(now - before))


# ------------------------------------------------------------------ files the cases use

def wav(path: Path, audio: np.ndarray, rate: int = 44100, subtype: str = "PCM_16") -> Path:
    soundfile.write(path, audio, rate, subtype=subtype)
    return path


def loop_audio(bpm: float = 120.0, bars: int = 2, rate: int = 44100) -> np.ndarray:
    beat = 60 / bpm
    out = np.zeros(int(round(bars * 4 * beat * rate)), np.float32)
    t = np.arange(int(0.2 * rate)) / rate
    kick = (np.sin(2 * np.pi * 60 * t) * np.exp(-t * 20)).astype(np.float32)
    for index in range(bars * 4):
        start = int(round(index * beat * rate))
        out[start:start + kick.size] += kick[: out.size - start]
    return 0.8 * out / np.abs(out).max()


def zero_hz_wav(path: Path) -> Path:
    wav(path, loop_audio())
    data = bytearray(path.read_bytes())
    at = data.index(b"fmt ")
    data[at + 12:at + 16] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    return path


def zero_tick_midi(path: Path) -> Path:
    track = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0) + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


def spoiled_run(source: Path, folder: Path, **changes) -> Path:
    shutil.copytree(source, folder)
    data = json.loads((folder / "run.json").read_text())
    for key, value in changes.items():
        if key == "bars":
            data["conditions"]["bars"] = value
        elif key == "nested":
            (folder / "run.json").write_text("[" * 100_000 + "]" * 100_000)
            return folder
        else:
            data[key] = value
    (folder / "run.json").write_text(json.dumps(data))
    return folder


# ------------------------------------------------------------------ the CLI

def cli_cases(work: Path, reference: Path) -> None:
    print("CLI: bad input is one line, exit 2, nothing written, no traceback", flush=True)
    files = work / "files"
    files.mkdir()
    midi = json.loads((reference / "run.json").read_text())["midi"]
    swapped = spoiled_run(reference, files / "swapped")
    (swapped / midi["bass"]).write_bytes((swapped / midi["drums"]).read_bytes())
    hashes = spoiled_run(reference, files / "hashes")
    data = json.loads((hashes / "run.json").read_text())
    data["files"][midi["bass"]] = "0" * 64
    (hashes / "run.json").write_text(json.dumps(data))
    readonly = files / "readonly"
    readonly.mkdir(mode=0o555)
    fifo = files / "fifo"
    os.mkfifo(fifo)
    long_line = files / "long.txt"
    long_line.write_text("rock\n" + "x" * 20_000_000 + "\n")
    text = files / "words.wav"
    text.write_text("not audio\n" * 100)
    run = ["run", "--bars", "2", "--seed", "1"]
    cases: dict[str, list] = {
        "run --bpm 900": [*run, "--prompt", "rock", "--bpm", "900"],
        "run --bpm nan": [*run, "--prompt", "rock", "--bpm", "nan"],
        "run --key H": [*run, "--prompt", "rock", "--key", "H"],
        "run --bars 0": ["run", "--prompt", "rock", "--bars", "0"],
        "run --bars 100000": ["run", "--prompt", "rock", "--bars", "100000"],
        "run --seed -1": ["run", "--prompt", "rock", "--seed", "-1"],
        "run --takes 17": [*run, "--prompt", "rock", "--takes", "17"],
        "run --swing 90": [*run, "--prompt", "rock", "--swing", "90"],
        "run --temperature 0": [*run, "--prompt", "rock", "--temperature", "0"],
        "run --top-p 2": [*run, "--prompt", "rock", "--top-p", "2"],
        "run --decoder x": [*run, "--prompt", "rock", "--decoder", "x"],
        "run --loop 3": [*run, "--prompt", "rock", "--loop", "3"],
        "run --keep without --from": [*run, "--prompt", "rock", "--keep", "bass"],
        "run --prompt of 100,000 characters": [*run, "--prompt", "rock " * 20_000],
        "run --sample-rate 1234": [*run, "--prompt", "rock", "--stems", "--sample-rate", "1234"],
        "run --instrument bass=/etc/passwd": [*run, "--prompt", "rock", "--stems", "--instrument", "bass=/etc/x"],
        "run --kit missing": [*run, "--prompt", "rock", "--stems", "--kit", files / "nokit"],
        "run --soundfont missing": [*run, "--prompt", "rock", "--stems", "--soundfont", files / "no.sf2"],
        "run --preset missing": [*run, "--prompt", "rock", "--stems", "--preset", "nopreset"],
        "run --loudness 3": [*run, "--prompt", "rock", "--stems", "--loudness", "3"],
        "run --true-peak 5": [*run, "--prompt", "rock", "--stems", "--true-peak", "5"],
        "run --like missing": [*run, "--prompt", "rock", "--like", files / "none.wav"],
        "run --like a folder": [*run, "--prompt", "rock", "--like", files],
        "run --like text": [*run, "--prompt", "rock", "--like", text],
        "run --like silence": [*run, "--prompt", "rock", "--like", wav(files / "silent.wav", np.zeros(88200))],
        "run --like 0.5 s": [*run, "--prompt", "rock", "--like", wav(files / "short.wav", loop_audio()[:22050])],
        "run --like 0 Hz header": [*run, "--prompt", "rock", "--like", zero_hz_wav(files / "zero.wav")],
        "run --like NaN samples": [*run, "--prompt", "rock", "--like",
                                   wav(files / "nan.wav", np.full(88200, np.nan, np.float32), subtype="FLOAT")],
        "run --seed-midi missing": [*run, "--prompt", "rock", "--seed-midi", files / "none.mid"],
        "run --seed-midi not MIDI": [*run, "--prompt", "rock", "--seed-midi", text],
        "run --seed-midi 0 ticks per quarter": [*run, "--prompt", "rock", "--seed-midi",
                                                zero_tick_midi(files / "zero.mid")],
        "run --seed-midi that fills the requested bars": [*run, "--prompt", "rock", "--seed-midi",
                                                          reference / midi["full"]],
        "run --from missing": [*run, "--from", files / "nothing", "--keep", "bass"],
        "run --from nested run.json": [*run, "--from", spoiled_run(reference, files / "n1", nested=True), "--keep",
                                       "bass"],
        "run --from 100000 bars": [*run, "--from", spoiled_run(reference, files / "b1", bars=100_000), "--keep",
                                   "bass"],
        "run --out exists": [*run, "--prompt", "rock", "--out", reference],
        **({} if os.geteuid() == 0 else {"run --out read-only": [*run, "--prompt", "rock", "--out", readonly / "x"]}),
        "render nested run.json": ["render", spoiled_run(reference, files / "n2", nested=True)],
        "render 100000 bars": ["render", spoiled_run(reference, files / "b2", bars=100_000)],
        "render name ../../../x": ["render", spoiled_run(reference, files / "e1", name="../../../escaped")],
        "render name /tmp/x": ["render", spoiled_run(reference, files / "e2", name="/tmp/stemforge-escaped")],
        "render midi path ../": ["render", spoiled_run(reference, files / "e3",
                                                       midi={**midi, "bass": "../../etc/hostname"})],
        "render a swapped MIDI": ["render", swapped],
        "render wrong sha256": ["render", hashes, "--out", files / "hashes-copy"],
        "render no run.json": ["render", files],
        "eval nested run.json": ["eval", spoiled_run(reference, files / "n3", nested=True), "--out", files / "r1"],
        "eval 100000 bars": ["eval", spoiled_run(reference, files / "b3", bars=100_000), "--out", files / "r2"],
        "batch /dev/zero": ["batch", "/dev/zero", "--out", files / "batch1"],
        "batch a FIFO": ["batch", fifo, "--out", files / "batch2"],
        "batch a 20 MB line": ["batch", long_line, "--out", files / "batch3"],
        "finetune-musicgen no base": ["finetune-musicgen", files, "--out", files / "ft", "--base", files / "none"],
    }
    for name, args in cases.items():
        before, tmp_before = tree(work), {p.name for p in Path(tempfile.gettempdir()).glob("stemforge*")}
        if "--out" not in args and args[0] == "run":
            args = [*args, "--out", files / "out"]
        started = time.monotonic()
        result = pipeline(*args, timeout=120, cwd=work)
        seconds = time.monotonic() - started
        if result is None:
            case(name, False, "no answer in 120 s", hang=True)
            continue
        lines = [line for line in result.stderr.splitlines() if not line.startswith("run: ")]
        traceback = "Traceback" in result.stderr or "internal error" in result.stderr
        one_line = result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
        left = sorted(tree(work) - before)
        left_text = ", ".join(left[:3]) + (" ..." if len(left) > 3 else "")
        tmp_left = tmp_leftovers(tmp_before)
        case(name, one_line, f"rc {result.returncode}, {seconds:.1f} s: {(lines or [''])[-1]}", traceback=traceback,
             leftover=", ".join(filter(None, [left_text, tmp_left])))
    readonly.chmod(0o755)

    # the same file read correctly: '#' inside a word is part of the line
    prompts = files / "sharps.txt"
    prompts.write_text("trap 140 in F# minor --bars 1 --seed 1\nlofi --key C#m --bars 1 --seed 2  # a comment\n")
    result = pipeline("batch", prompts, "--out", files / "sharps", timeout=300, cwd=work)
    keys = []
    if result is not None and result.returncode == 0:
        keys = [(t["key"], t["bars"]) for i in json.loads((files / "sharps" / "index.json").read_text())["items"]
                for t in i["takes"]]
    case("batch keeps F# minor and C#m", keys == [("F# minor", 1), ("C# minor", 1)], str(keys),
         traceback=result is not None and "Traceback" in result.stderr, hang=result is None)


def disk_full_cases(work: Path, reference: Path) -> None:
    if os.geteuid() != 0:
        print("disk full: skipped (mounting a tmpfs needs root)")
        return
    print("disk full (a 256 KB tmpfs): one line, nothing half-written", flush=True)
    disk = work / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=262144", "tmpfs", str(disk)], check=True)
    try:
        filler = disk / "filler"
        with open(filler, "wb") as out:
            try:
                out.write(b"\0" * (256 * 1024 - 16 * 1024))
            except OSError:
                pass
        for name, args in (("run onto a full disk", ["run", "--prompt", "lofi", "--bars", "2", "--out", disk / "r"]),
                           ("run --stems onto a full disk", ["run", "--prompt", "lofi", "--bars", "2", "--stems",
                                                             "--out", disk / "s"]),
                           ("render onto a full disk", ["render", reference, "--out", disk / "copy"])):
            result = pipeline(*args, timeout=120)
            if result is None:
                case(name, False, "no answer", hang=True)
                continue
            lines = [line for line in result.stderr.splitlines() if not line.startswith("run: ")]
            ok = result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: disk full")
            case(name, ok, (lines or [""])[-1], traceback="Traceback" in result.stderr,
                 leftover=", ".join(sorted(tree(disk) - {"filler"})))
    finally:
        subprocess.run(["umount", "-l", str(disk)])
    readonly = work / "readonly"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1048576,ro", "tmpfs", str(readonly)], check=True)
    try:
        result = pipeline("run", "--prompt", "lofi", "--bars", "2", "--out", readonly / "r", timeout=120)
        lines = [line for line in (result.stderr if result else "").splitlines() if not line.startswith("run: ")]
        case("run --out on a read-only file system", result is not None and result.returncode == 2 and
             len(lines) == 1 and "not writable" in lines[0], (lines or [""])[-1],
             traceback=result is not None and "Traceback" in result.stderr, hang=result is None)
    finally:
        subprocess.run(["umount", "-l", str(readonly)])


def killed_run_cases(work: Path) -> None:
    print("kill -9: what a killed run or batch leaves is cleared, nothing in /tmp", flush=True)
    runs = work / "runs"
    found = False
    for _ in range(3):
        process = subprocess.Popen([PYTHON, "-m", "stemforge.pipeline.cli", "run", "--prompt", "lofi", "--bars",
                                    "16", "--stems", "--out", str(runs / "first")], cwd=REPO_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline and not list(runs.glob(".*partial*")):
            time.sleep(0.005)
        process.kill()
        process.wait()
        found = bool(list(runs.glob(".*partial*")))
        if found:
            break
        shutil.rmtree(runs, ignore_errors=True)
    result = pipeline("run", "--prompt", "lofi", "--bars", "1", "--out", runs / "second")
    left = [p.name for p in runs.glob(".*partial*")]
    case("run killed mid-write, then another run", found and result is not None and result.returncode == 0,
         "" if found else "never caught mid-write", leftover=", ".join(left))

    prompts = work / "prompts.txt"
    prompts.write_text("".join(f"rock 120bpm --seed {n}\n" for n in range(30)))
    out, scratch = work / "batch", work / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    command = [PYTHON, "-m", "stemforge.pipeline.cli", "batch", str(prompts), "--out", str(out), "--bars", "1"]
    batch = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and batch.poll() is None and \
            len([p for p in (out / "items").glob("*") if (p / "run.json").is_file()]) < 5:
        time.sleep(0.05)
    os.killpg(batch.pid, signal.SIGKILL)
    batch.wait()
    time.sleep(1.0)
    on_disk = {p.name for p in (out / "items").glob("*") if (p / "run.json").is_file()}
    listed = set()
    if (out / "index.csv").is_file():
        import csv

        listed = {Path(r["folder"]).name for r in csv.DictReader((out / "index.csv").open()) if r["status"] == "done"}
    lag = len(on_disk - listed)
    case("batch killed with kill -9: index against the disk", listed <= on_disk and lag <= 1,
         f"{len(listed)} in index.csv, {len(on_disk)} folders", leftover=", ".join(p.name for p in scratch.iterdir()))
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    index = json.loads((out / "index.json").read_text())
    folders = [p for p in (out / "items").iterdir()]
    case("batch resumed after kill -9", result.returncode == 0 and index["counts"]["done"] == 30,
         result.stderr[-200:], traceback="Traceback" in result.stderr,
         leftover=", ".join([p.name for p in out.glob(".scratch*")] + [p.name for p in scratch.iterdir()]
                            + [p.name for p in (out / "items").glob(".*")]),
         lost="" if len(folders) == 30 else f"{len(folders)} item folders for 30 lines")


# ------------------------------------------------------------------ the service, both back ends

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                         str(self.folder), "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(400):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


class Service:
    """`pipeline serve` (local, or --broker) in its own process group, with its workers."""

    def __init__(self, root: Path, broker: str | None = None) -> None:
        self.root, self.broker = root, broker
        self.data = root / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "service.yaml"
        self.config.write_text("max_bars: 8\nmax_queued: 8\njob_timeout_seconds: 120\nworker_threads: 1\n")
        self.env = {**os.environ, "STEMFORGE_SERVICE_CONFIG": str(self.config), "PYTHONUNBUFFERED": "1",
                    "STEMFORGE_TEST_STALL": f"{STALL_SEED}:5"}
        self.log = root / "service.log"
        self.workers: list[subprocess.Popen] = []

    def start(self) -> None:
        command = [PYTHON, "-m", "stemforge.pipeline.cli", "serve", "--port", str(self.port), "--data", str(self.data)]
        command += ["--broker", self.broker] if self.broker else ["--workers", "1"]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.wait_ready(1)

    def worker(self) -> subprocess.Popen:
        with open(self.root / f"worker-{len(self.workers)}.log", "a") as log:
            worker = subprocess.Popen([PYTHON, "-m", "stemforge.pipeline.cli", "worker", "--broker", self.broker,
                                       "--data", str(self.data), "--threads", "1"], cwd=REPO_ROOT, env=self.env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(worker)
        return worker

    def wait_ready(self, workers: int, timeout: float = 180) -> bool:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.url}/health", timeout=2).json()
                if health["status"] == "ok" and health["workers_ready"] >= workers:
                    return True
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        return False

    def client(self):
        import httpx

        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        for process in [self.process, *self.workers]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "".join(p.read_text() for p in self.root.glob("*.log"))


def wait_job(client, job_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    return None


def wait_partial(jobs: Path, job_id: str, timeout: float = 120) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in jobs.glob(f".{job_id}.partial-*"):
            return int(found.name.rpartition("-")[2])
        time.sleep(0.05)
    return None


def job_ended_once(service: Service, client, job_id: str, name: str, statuses=("done",), timeout: float = 120,
                   traceback_free: bool = True) -> None:
    job = wait_job(client, job_id, ("done", "failed", "cancelled"), timeout)
    folders = [p for p in (service.data / "jobs").iterdir() if p.name.startswith(job_id)]
    lost = "" if job is not None and job["status"] in statuses and len(folders) == (job["status"] == "done") else \
        f"{job and job['status']}, {len(folders)} folder(s)"
    # a partial folder a living writer holds (another job still running) is work in progress, not a leftover
    partials = [p.name for p in (service.data / "jobs").glob(".*partial*") if not is_held(p)]
    case(name, job is not None and job["status"] in statuses, f"{job and (job['status'], job['error'])}",
         traceback=traceback_free and "Traceback" in service.logs(), hang=job is None, leftover=", ".join(partials),
         lost=lost)


def http_cases(service: Service) -> None:
    print(f"HTTP ({'broker' if service.broker else 'local'}): bad requests are 4xx naming the field", flush=True)
    bodies = {"bpm 900": {"prompt": "rock", "bpm": 900}, "bars 100000": {"prompt": "rock", "bars": 100000},
              "key H": {"prompt": "rock", "key": "H"}, "out field": {"prompt": "rock", "out": "/tmp/x"},
              "runs_root field": {"prompt": "rock", "runs_root": "/tmp"}, "kit path": {"prompt": "rock", "kit": "/etc"},
              "preset path": {"prompt": "rock", "preset": "/etc/hostname"}, "loudness 3": {"prompt": "r", "loudness_lufs": 3},
              "prompt 600 chars": {"prompt": "r" * 600}, "from_job missing": {"from_job": "0" * 16}}
    with service.client() as client:
        for name, body in bodies.items():
            response = client.post("/jobs", json=body)
            case(f"POST /jobs {name}", 400 <= response.status_code < 500, f"{response.status_code}")
        t = np.arange(88200) / 44100
        uploads = {"NaN samples": (np.full(88200, np.nan, np.float32), "FLOAT"),
                   "silence": (np.zeros(88200, np.float32), "PCM_16"),
                   "0.3 s": ((0.5 * np.sin(2 * np.pi * 220 * t[:13230])).astype(np.float32), "PCM_16")}
        import io

        for name, (audio, subtype) in uploads.items():
            buffer = io.BytesIO()
            soundfile.write(buffer, audio, 44100, format="WAV", subtype=subtype)
            response = client.post("/loops", content=buffer.getvalue())
            kept = list((service.data / "uploads").iterdir())
            case(f"POST /loops {name}", response.status_code == 422, f"{response.status_code} {response.text[:80]}",
                 traceback=response.status_code == 500, leftover=", ".join(p.name for p in kept))
        for path in ("/jobs/../../etc/passwd", "/jobs/%2e%2e/x", "/jobs/" + "0" * 16 + "/files/../../x"):
            response = client.get(path)
            case(f"GET {path}", response.status_code in (400, 404, 422), str(response.status_code))


def local_cases(work: Path) -> None:
    print("local back end: a process-group stop requeues; a Redis restart beside it changes nothing", flush=True)
    service = Service(work / "local")
    service.start()
    try:
        http_cases(service)
        with service.client() as client:
            job = client.post("/jobs", json={"prompt": "rock 120bpm", "bars": 1, "seed": STALL_SEED}).json()
            worker = wait_partial(service.data / "jobs", job["id"])
            if worker is not None:
                os.kill(worker, signal.SIGTERM)  # the group's signal, reaching the worker first
            time.sleep(1.0)
            status = client.get(f"/jobs/{job['id']}").json()["status"]
        os.killpg(service.process.pid, signal.SIGTERM)
        try:
            code = service.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        case("local: SIGTERM to the process group mid-job", code == 0 and status == "running",
             f"exit {code}, job {status} after the worker's SIGTERM", traceback="Traceback" in service.logs()
             or "AttributeError" in service.logs(), hang=code is None)
        service.start()
        with service.client() as client:
            job_ended_once(service, client, job["id"], "local: the stopped job runs after the restart")
            redis = Redis(work / "local-redis")
            job = client.post("/jobs", json={"prompt": "rock 120bpm", "bars": 1, "seed": STALL_SEED}).json()
            wait_partial(service.data / "jobs", job["id"])
            redis.kill()
            time.sleep(5)
            redis.start()
            job_ended_once(service, client, job["id"], "local: a Redis restart mid-job (no Redis in this back end)")
            redis.kill()
    finally:
        service.stop()


def broker_cases(work: Path) -> None:
    print("broker back end: Redis restarts, process-group stops, kill -9, forged jobs", flush=True)
    redis = Redis(work / "redis")
    service = Service(work / "broker", broker=redis.url)
    (service.data / "jobs").mkdir(parents=True)
    first, second = service.worker(), service.worker()
    try:
        service.start()
        case("broker: two workers ready", service.wait_ready(2), "")
        http_cases(service)
        with service.client() as client:
            job = client.post("/jobs", json={"prompt": "rock 120bpm", "bars": 1, "seed": STALL_SEED}).json()
            wait_partial(service.data / "jobs", job["id"])
            redis.kill()
            time.sleep(5)
            redis.start()
            alive = first.poll() is None and second.poll() is None
            ready = service.wait_ready(2, timeout=30)
            health = client.get("/health").json()
            case("broker: Redis restarted mid-job, both workers alive", alive, f"exit codes {first.poll()}, "
                 f"{second.poll()}")
            case("broker: /health counts the surviving workers", ready, str(health))
            after = client.post("/jobs", json={"prompt": "hiphop 90bpm", "bars": 1, "seed": 7}).json()
            job_ended_once(service, client, job["id"], "broker: the job running through the restart ends once")
            job_ended_once(service, client, after["id"], "broker: a job after the restart runs")
            case("broker: no job run twice after the restart", "running it again" not in service.logs(), "",
                 lost="retried" if "running it again" in service.logs() else "")

            job = client.post("/jobs", json={"prompt": "rock 120bpm", "bars": 1, "seed": STALL_SEED}).json()
            pid = wait_partial(service.data / "jobs", job["id"])
            holder = next((w for w in service.workers if w.pid == pid), None)
            if holder is not None:
                os.killpg(holder.pid, signal.SIGTERM)
                try:
                    code = holder.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    code = None
                case("broker: SIGTERM to a worker's process group mid-job", code == 0, f"exit {code}",
                     hang=code is None)
            job_ended_once(service, client, job["id"], "broker: the stopped worker's job runs on the other",
                           traceback_free=False)
            service.worker()
            service.wait_ready(2, timeout=120)

            job = client.post("/jobs", json={"prompt": "rock 120bpm", "bars": 1, "seed": STALL_SEED}).json()
            pid = wait_partial(service.data / "jobs", job["id"])
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            job_ended_once(service, client, job["id"], "broker: kill -9 of a worker mid-job: retried elsewhere",
                           traceback_free=False)
        forged_cases(service, redis)
        case("broker: no traceback in the API or worker logs", "Traceback" not in service.logs(), "",
             traceback="Traceback" in service.logs())
    finally:
        service.stop()
        redis.kill()


def forged_cases(service: Service, redis_server: Redis) -> None:
    import redis
    from rq import Callback, Queue
    from rq.webhook import Webhook

    from stemforge.pipeline.broker import PERFORM, json_serializer, model_queue

    queue = Queue(model_queue(None), connection=redis.Redis.from_url(redis_server.url), serializer=json_serializer())
    outside = service.root / "outside"
    good = {"prompt": "rock", "bars": 1, "seed": 1, "out": "jobs/forged-ok"}
    forged = {
        "os.system": ("os.system", ("touch " + str(outside),), {}),
        "runs_root without out": (PERFORM, ("f1", {"prompt": "rock", "bars": 1, "runs_root": str(outside)}, 60.0), {}),
        "out outside": (PERFORM, ("f2", {**good, "out": "../../escaped"}, 60.0), {}),
        "model": (PERFORM, ("f3", {**good, "model": "/tmp"}, 60.0), {}),
        "soundfont outside": (PERFORM, ("f4", {**good, "soundfont": "/usr/share/sounds/sf2/x.sf2"}, 60.0), {}),
        "kit path": (PERFORM, ("f5", {**good, "kit": "/etc"}, 60.0), {}),
        "on_success callback": (PERFORM, ("f6", good, 60.0), {"on_success": Callback("builtins.print")}),
        "webhook": (PERFORM, ("f7", good, 60.0), {"webhooks": [Webhook("http://127.0.0.1:9/x", "finished")]}),
    }
    for name, (function, args, extra) in forged.items():
        job = queue.enqueue_call(function, args=args, job_id=f"forged-{len(name)}-{abs(hash(name)) % 10**6}", **extra)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.get_status() not in ("failed", "finished"):
            time.sleep(0.1)
        if job.get_status() == "failed":
            text = job.latest_result().exc_string.strip().splitlines()[-1]
        elif job.get_status() == "finished":
            value = job.return_value()
            text = value["error"] if value["status"] != "done" else "ran"
        else:
            text = "never ended"
        case(f"forged job: {name}", "refused" in text, text[:120], hang=text == "never ended",
             leftover=", ".join(p.name for p in [outside, service.data / "jobs" / "forged-ok"] if p.exists()))


def main() -> int:
    parser = argparse.ArgumentParser(description="the fault and bad-input battery")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="faults-", dir=args.keep))
    started = time.monotonic()
    reference = work / "reference"
    made = pipeline("run", "--prompt", "funk 100bpm", "--bars", "2", "--seed", "4", "--out", reference)
    assert made is not None and made.returncode == 0, made and made.stderr
    try:
        (work / "cli").mkdir()
        cli_cases(work / "cli", reference)
        disk_full_cases(work, reference)
        (work / "killed").mkdir()
        killed_run_cases(work / "killed")
        if not args.skip_service:
            local_cases(work)
        if not args.skip_broker and shutil.which("redis-server"):
            broker_cases(work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    t = TOTALS
    print(f"\ncases {t.cases}, tracebacks {len(t.tracebacks)}, hangs {len(t.hangs)}, leftovers {len(t.leftovers)}, "
          f"jobs lost or duplicated {len(t.lost_or_duplicated)}, other failures {len(t.failed)} "
          f"({time.monotonic() - started:.0f} s)")
    for label, names in (("tracebacks", t.tracebacks), ("hangs", t.hangs), ("leftovers", t.leftovers),
                         ("lost or duplicated", t.lost_or_duplicated), ("failed", t.failed)):
        if names:
            print(f"  {label}: {', '.join(names)}")
    return 1 if (t.tracebacks or t.hangs or t.leftovers or t.lost_or_duplicated or t.failed) else 0


if __name__ == "__main__":
    sys.exit(main())
