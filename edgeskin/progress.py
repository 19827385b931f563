"""Conversion is never silent for long: a bar on a terminal, a line per stage with elapsed seconds otherwise.

Converters' own output goes to a log by redirecting file descriptors 1 and 2 (quiet.py), so the
command's messages are written to a copy of stderr taken before any redirection (Console).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

HEARTBEAT_SECONDS = 10.0  # without a terminal: a line at least this often while a stage runs


class Console:
    """The user's stderr as it was at start-up: progress still reaches it while a converter's
    output is being sent to a log."""

    def __init__(self, prefix: str = "  "):
        try:
            self.stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation: stderr is not a file (captured)
            self.stream = sys.stderr
        self.prefix = prefix

    def __call__(self, message: str) -> None:
        self.stream.write(f"{self.prefix}{message}\n")
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def _terminal(report):
    stream = getattr(report, "stream", None)
    return stream if stream is not None and report.isatty() else None


@contextmanager
def stage(report, label: str, total: int | None = None):
    """Run one stage; yields advance(n) for stages that count (calibration images).

    A terminal gets a tqdm bar (elapsed time only when there is no count); anything else a start
    line, a line every HEARTBEAT_SECONDS, and the stage's total seconds."""
    began = time.perf_counter()
    done = threading.Event()
    counted = [0]
    terminal = _terminal(report)
    if terminal is not None:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"  {label}", file=terminal, leave=False, mininterval=0.5,
                   bar_format=None if total else "{desc}: {elapsed}")

        def advance(n: int = 1) -> None:
            bar.update(n)

        def tick() -> None:
            while not done.wait(1.0):
                bar.refresh()
    else:
        report(f"{label} ...")
        bar = None

        def advance(n: int = 1) -> None:
            counted[0] += n

        def tick() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                count = f", {counted[0]}/{total}" if total else ""
                report(f"{label}: {time.perf_counter() - began:.0f} s{count}")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield advance
    finally:
        done.set()
        thread.join()
        if bar is not None:
            bar.close()
    report(f"{label}: {time.perf_counter() - began:.1f} s")


_CONSOLE: list[Console] = []


def _console() -> Console:
    """One Console per process for progress_iter (each holds a duplicate of stderr's descriptor)."""
    if not _CONSOLE:
        _CONSOLE.append(Console())
    return _CONSOLE[0]


def progress_iter(items, label: str, enabled: bool = True, report=None):
    """Iterate `items` with a stage's progress (a bar on a terminal, a line every HEARTBEAT_SECONDS
    and the total time otherwise); `enabled=False` iterates silently."""
    items = list(items)
    if not enabled:
        yield from items
        return
    with stage(report or _console(), label, total=len(items)) as advance:
        for item in items:
            yield item
            advance()
