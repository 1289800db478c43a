"""Progress on stderr: a tqdm bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class BarProgress:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._bar = None

    def stage(self, name: str, total: int | None, *, estimate: bool = False) -> None:
        from tqdm import tqdm

        self.close()
        if estimate and total:
            name = f"{name} (about {total}: the server's count includes partners' assets)"
        self._bar = tqdm(
            total=total,
            desc=name,
            unit=" assets" if "fetch" in name else " files",
            file=self._stream,
            dynamic_ncols=True,
            leave=False,
        )

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LineProgress:
    def __init__(self, stream: TextIO = sys.stderr, every: float = 10.0, clock=time.monotonic) -> None:
        self._stream, self._every, self._clock = stream, every, clock
        self._name, self._done, self._last = "", 0, 0.0
        self._total: int | None = None
        self._estimate = False

    def stage(self, name: str, total: int | None, *, estimate: bool = False) -> None:
        self._name, self._total, self._done, self._last = name, total, 0, self._clock()
        self._estimate = estimate

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._clock() - self._last >= self._every:
            self._last = self._clock()
            of = (f"/~{self._total}" if self._estimate else f"/{self._total}") if self._total else ""
            print(f"immich-cache: {self._name}: {self._done}{of}", file=self._stream, flush=True)

    def close(self) -> None:
        pass


def for_stream(stream: TextIO, quiet: bool):
    from ..services.extract import NoProgress

    if quiet:
        return NoProgress()
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)
