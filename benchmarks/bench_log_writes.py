"""Benchmark: 100,000 AUDIT-sized lines written by one thread while others parse JSON.

    python benchmarks/bench_log_writes.py [--busy 2] [--lines 100000]

Each write of a full file buffer is a system call that gives up the GIL; the writing thread then
waits behind the busy threads to get it back. Prints the writer's wall and CPU time with the
default 8 KiB buffer and with the log's LOG_BUFFER (immich_sync.audit). Not a test: numbers go
to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import orjson

from immich_sync.audit import LOG_BUFFER

LINE = (
    '{"time":"2026-12-02T01:51:27.123+00:00","level":"AUDIT","asset":"0f4c5a2e-1111-2222-3333-444455556666",'
    '"name":"IMG_1234.JPG","status":"found","path":"/photos/2019/05/IMG_1234.JPG","method":"filename",'
    '"confidence":"high","outcome":"unchanged, match kept"}\n'
)


def written(path: str, lines: int, buffering: int) -> tuple[float, float]:
    with open(path, "w", encoding="utf-8", buffering=buffering) as handle:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(lines):
            handle.write(LINE)
        return time.perf_counter() - wall, time.thread_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=2, help="threads parsing a 1 MB page of JSON meanwhile")
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    page = orjson.dumps([{"id": str(i), "text": "x" * 800} for i in range(1000)])
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            orjson.loads(page)

    threads = [threading.Thread(target=busy, daemon=True) for _ in range(args.busy)]
    for thread in threads:
        thread.start()
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "log")
        for label, buffering in (("8 KiB (default)", -1), (f"{LOG_BUFFER >> 10} KiB", LOG_BUFFER)) * 2:
            wall, cpu = written(path, args.lines, buffering)
            print(f"{label:16s} wall {wall:5.2f} s   cpu {cpu:5.2f} s")
    stop.set()


if __name__ == "__main__":
    main()
