"""Progress on stderr, stage by stage: a tqdm bar on a terminal (refreshed at least every half
second, so that its clock moves while a stage waits), a plain line at least every 10 s otherwise.

A stage may count by itself (`advance`) or be polled (`poll`: the walk of TARGET counts its
files in another process)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..services.extract import NoProgress

Poll = Callable[[], int]


class _Ticker:
    """Calls `tick` every `period` seconds in a daemon thread until stopped."""

    def __init__(self, tick: Callable[[], None], period: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tick, period), daemon=True, name="progress")
        self._thread.start()

    def _run(self, tick: Callable[[], None], period: float) -> None:
        while not self._stop.wait(period):
            try:
                tick()
            except Exception:  # progress must never end a run
                return

    def stop(self) -> None:
        self._stop.set()


class BarProgress:
    def __init__(self, stream: TextIO = sys.stderr, *, tick_every: float | None = 0.5) -> None:
        self._stream = stream
        self._bar: Any = None
        self._poll: Poll | None = None
        self._lock = threading.Lock()
        self._ticker = _Ticker(self.tick, tick_every) if tick_every else None

    def stage(
        self, name: str, total: int | None, *, estimate: bool = False, unit: str = "assets", poll: Poll | None = None
    ) -> None:
        from tqdm import tqdm

        with self._lock:
            self._close_bar()
            if estimate and total:
                name = f"{name} (about {total}: the server's count includes partners' assets)"
            self._poll = poll
            self._bar = tqdm(
                total=total,
                desc=name,
                unit=f" {unit}",
                file=self._stream,
                dynamic_ncols=True,
                leave=False,
                mininterval=0.5,
                # a stage without a count shows its name and its clock
                bar_format=None if unit else "{desc}: {elapsed}",
            )

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(n)

    def tick(self) -> None:
        with self._lock:
            if self._bar is None:
                return
            if self._poll is not None:
                self._bar.n = self._poll()
            self._bar.refresh()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        with self._lock:
            self._close_bar()


class LineProgress:
    """`immich-cache: listing and matching: 12000/~59000 assets (40 s)`, at least every `every`
    seconds once a stage has run that long, never more often (a log file, a CI job)."""

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        tick_every: float | None = 1.0,
    ) -> None:
        self._stream, self._every, self._clock = stream, every, clock
        self._name, self._unit, self._done = "", "", 0
        self._total: int | None = None
        self._estimate = False
        self._poll: Poll | None = None
        self._started = self._last = clock()
        self._lock = threading.Lock()
        self._ticker = _Ticker(self.tick, tick_every) if tick_every else None

    def stage(
        self, name: str, total: int | None, *, estimate: bool = False, unit: str = "assets", poll: Poll | None = None
    ) -> None:
        with self._lock:
            self._name, self._total, self._done, self._unit = name, total, 0, unit
            self._estimate, self._poll = estimate, poll
            self._started = self._clock()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._done += n
            self._maybe_print()

    def tick(self) -> None:
        with self._lock:
            self._maybe_print()

    def _maybe_print(self) -> None:
        now = self._clock()
        if now - self._last < self._every or not self._name:
            return
        self._last = now
        done = self._poll() if self._poll is not None else self._done
        of = (f"/~{self._total}" if self._estimate else f"/{self._total}") if self._total else ""
        count = f"{done}{of} {self._unit}" if self._unit and (done or self._total) else "working"
        print(f"immich-cache: {self._name}: {count} ({now - self._started:.0f} s)", file=self._stream, flush=True)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()


def for_stream(stream: TextIO, quiet: bool) -> BarProgress | LineProgress | NoProgress:
    from ..services.extract import NoProgress

    if quiet:
        return NoProgress()
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)
