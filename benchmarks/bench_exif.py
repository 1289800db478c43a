"""Benchmark: the EXIF capture-time read (`exif_reader.read_capture_time`) on a folder's files.

    python benchmarks/bench_exif.py FOLDER [--repeat 200] [--limit 30000]

Prints the CPU time a file, the files read and how many gave a date. The files should be in the
page cache (a first pass reads them once, untimed): this measures the parsing, not the disk.
Not a test: numbers go to benchmarks/README.md. `tests/data/camera-samples/jpeg` holds twelve
real cameras' JPEGs; a folder of one's own photos shows what a first run spends on its dates.
"""

from __future__ import annotations

import argparse
import os
import time

from immich_sync.adapters.exif_reader import read_capture_times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--repeat", type=int, default=0, help="passes over the files (default: ~1 s of work)")
    parser.add_argument("--limit", type=int, default=30000, help="at most this many files")
    args = parser.parse_args()
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(args.folder) for f in files)[: args.limit]
    if not paths:
        raise SystemExit(f"no files under {args.folder}")
    first = read_capture_times(paths)  # untimed: brings the files into the page cache
    repeat = args.repeat or max(1, 20000 // len(paths))
    started = time.process_time()
    for _ in range(repeat):
        read_capture_times(paths)
    spent = time.process_time() - started
    dated = sum(t is not None for t in first)
    print(f"{len(paths)} files x {repeat}: {spent / repeat / len(paths) * 1e6:.1f} us of CPU a file, {dated} dated")


if __name__ == "__main__":
    main()
