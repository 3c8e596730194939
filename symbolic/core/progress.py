"""Progress for long work: a tqdm bar on a terminal, plain lines when stderr is a file or a pipe.

A log of `pipeline train ... 2> train.log` then holds a few readable lines ("training:
400/2000 steps, 40%, 61 s, about 92 s left, loss=2.31") instead of thousands of carriage-return
redraws. Every long loop of stemforge (prepare, corpus, train, eval, MusicGen) goes through
`progress_bar`, so both behave the same everywhere.

    for path in progress_bar(files, desc="reading MIDI", unit="file"):
        ...
    bar = progress_bar(total=steps, desc="training", unit="step")
    bar.update(1); bar.set_postfix(loss="2.31"); bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

PLAIN_LINE_SECONDS = 30.0  # a plain line at least this often, besides every 10%


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
                 enabled: bool = True, initial: int = 0, leave: bool = True) -> Any:
    """A tqdm bar (a terminal), a `PlainProgress` (a file or pipe), or a silent one (`enabled` off).
    Both take the tqdm calls stemforge uses: iteration, update, set_postfix(_str), close."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if enabled and stderr_is_terminal():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=sys.stderr)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, enabled=enabled)


class PlainProgress:
    """tqdm's interface, printing one line per 10% (or PLAIN_LINE_SECONDS) and one at the end."""

    def __init__(self, iterable: Iterable | None, *, total: int | None, desc: str, unit: str, initial: int = 0,
                 enabled: bool = True) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.start_n = initial
        self.enabled = enabled
        self.postfix = ""
        self.started = self.last_line = time.perf_counter()
        self.printed_tenth = self._tenth()
        self.closed = False

    def _tenth(self) -> int:
        return self.n * 10 // self.total if self.total else 0

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        tenth = self._tenth()
        if tenth > self.printed_tenth or now - self.last_line >= PLAIN_LINE_SECONDS:
            if self.total is None or self.n < self.total:
                self._line(now)
            self.printed_tenth, self.last_line = tenth, now

    def set_postfix(self, **values: object) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def _line(self, now: float) -> None:
        if not self.enabled:
            return
        elapsed = now - self.started
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}s" if self.total else f"{self.desc}: {self.n} {self.unit}s"
        if self.total:
            text += f", {self.n / self.total:.0%}"
        text += f", {elapsed:.0f} s"
        done = self.n - self.start_n
        if self.total and done > 0 and self.n < self.total:
            text += f", about {elapsed / done * (self.total - self.n):.0f} s left"
        if self.postfix:
            text += f", {self.postfix}"
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.enabled:
            text = f"{self.desc}: {self.n} {self.unit}(s) in {time.perf_counter() - self.started:.1f} s"
            print(text + (f", {self.postfix}" if self.postfix else ""), file=sys.stderr, flush=True)
