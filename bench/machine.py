"""The machine a bench ran on, printed by every bench so that its figures can be set beside
another machine's: the CPU model, its caches, the cores this process may use, the memory, the
memory read speed and the load at the time. The benches measure ratios against a reference
in the same run, but a ratio still moves with the machine: a step that reads its weights from
a 32 MB cache is not one that streams them from memory, and a 2-core machine shared with other
jobs (load 6) halves what one core can read.

    from bench.machine import reported

    if __name__ == "__main__":
        with reported():         # the machine first, the load during the run last
            main()
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CACHE_FOLDER = Path("/sys/devices/system/cpu/cpu0/cache")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def caches() -> str:
    """`L1d 48K, L2 2048K, L3 491520K (shared by 2)`: the caches of cpu0 as the kernel reports them
    (a virtual machine reports what its hypervisor says)."""
    described = []
    for index in sorted(CACHE_FOLDER.glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
            shared = (index / "shared_cpu_list").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        name = f"L{level}{'d' if kind == 'Data' else ''}"
        sharing = len([c for part in shared.split(",") for c in _cpus(part)])
        described.append(f"{name} {size}" + (f" (shared by {sharing})" if sharing > 1 else ""))
    return ", ".join(described) or "caches not reported"


def _cpus(part: str) -> range:
    first, _, last = part.partition("-")
    return range(int(first), int(last or first) + 1)


def read_speed_gb_s(megabytes: int) -> float:
    """How fast one core reads a `megabytes` array now (numpy's vectorized max, best of 3): the
    memory (64 MB) or a cache-sized array (2 MB), as the machine's other jobs leave it."""
    array = np.ones(megabytes * 1024 * 1024 // 4, np.float32)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        array.max()
        best = min(best, time.perf_counter() - started)
    return megabytes / 1024 / best


def describe() -> str:
    """The machine in a few lines, ready to print at the top of a bench's output."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")) / 1024
    except (OSError, StopIteration):
        memory = float("nan")
    try:
        virtual = " (virtual machine)" if "hypervisor" in Path("/proc/cpuinfo").read_text() else ""
    except OSError:
        virtual = ""
    return (f"machine: {cpu_model()}{virtual}; {caches()}; {usable} of {os.cpu_count()} cores usable; "
            f"{memory:.0f} GiB memory\n"
            f"  read speed now: {read_speed_gb_s(64):.1f} GB/s from memory (64 MB), "
            f"{read_speed_gb_s(2):.1f} GB/s from a 2 MB array; load average now {os.getloadavg()[0]:.2f}")


class LoadWatch:
    """The 1-minute load average sampled every `every_seconds` from its creation, in a
    background thread, so a bench can say what load its figures were taken at."""

    def __init__(self, every_seconds: float = 5.0) -> None:
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every_seconds,), daemon=True)
        self._thread.start()

    def _sample(self, every_seconds: float) -> None:
        while not self._stop.wait(every_seconds):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        self.samples.append(os.getloadavg()[0])
        return (f"load average during the run: {min(self.samples):.2f}-{max(self.samples):.2f} "
                f"(mean {sum(self.samples) / len(self.samples):.2f}, {len(self.samples)} samples, "
                f"{os.cpu_count()} cores)")


@contextmanager
def reported() -> Iterator[None]:
    """Print the machine before the block and the load during it after (also when it fails)."""
    watch = LoadWatch()
    print(describe(), flush=True)
    try:
        yield
    finally:
        print(watch.summary(), flush=True)
