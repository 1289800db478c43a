"""The cache alone: load + index build, save, lookups and peak memory for N realistic nodes.

    python benchmarks/bench_cache.py --n 100000

Nodes are ~2 KB of AssetResponseDto JSON with exifInfo, plus a found match, albums and tags.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def build(path: str, n: int) -> None:
    from immich_sync import save_cache
    from immich_sync.domain.cache import ImmichCache
    from immich_sync.domain.match import Check, Confidence, DateEvidence, Evidence, MatchResult
    from immich_sync.testing.factory import make_asset

    rnd = random.Random(1)
    cache = ImmichCache()
    ids = []
    for i in range(n):
        taken = datetime(2015, 1, 1) + timedelta(seconds=rnd.randrange(300_000_000))
        raw = make_asset(
            owner_id="u", name=f"IMG_{i:06d}.JPG", taken=taken, size=rnd.randrange(10**6, 10**7), checksum="c" * 28
        )
        raw["exifInfo"]["description"] = "A walk along the river, late afternoon light. " * 4
        cache.upsert(raw, T0)
        cache.set_match(
            raw["id"],
            MatchResult.found(
                f"/photos/{taken:%Y/%m}/IMG_{i:06d}.JPG",
                "filename",
                Confidence.HIGH,
                Evidence(True, False, DateEvidence.EQUAL, Check.EQUAL),
                matched_at=T0,
                file_size=1,
            ),
        )
        ids.append(raw["id"])
    cache.replace_albums(
        {f"a{k}": f"Album {k}" for k in range(200)}, {f"a{k}": rnd.sample(ids, min(50, n)) for k in range(200)}
    )
    cache.replace_tags(
        {f"t{k}": f"Topic/Tag {k}" for k in range(100)}, {f"t{k}": rnd.sample(ids, min(30, n)) for k in range(100)}
    )
    save_cache(cache, path)


MEASURE = r"""
import gc, os, resource, sys, time
from immich_sync import load_cache, save_cache
path = sys.argv[1]
t = time.perf_counter(); cache = load_cache(path); load = time.perf_counter() - t
nodes = list(cache)[:2000]
paths = [n.match_summary().path for n in nodes]
names = [n.asset_raw["originalFileName"] for n in nodes]
t = time.perf_counter()
for p in paths: cache.find_by_path(p)
by_path = (time.perf_counter() - t) / len(paths) * 1e6
t = time.perf_counter()
for p in names: cache.find_by_name(p)
by_name = (time.perf_counter() - t) / len(names) * 1e6
t = time.perf_counter(); save_cache(cache, path + ".out"); save = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{load:.2f} {save:.2f} {by_path:.1f} {by_name:.1f} {rss:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.n)
        return
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "cache.json")
        t = time.perf_counter()
        # built in its own process, so that this one holds no cache while the fresh ones measure
        subprocess.run([sys.executable, __file__, "--build", path, "--n", str(args.n)], check=True)
        print(f"built {args.n} nodes in {time.perf_counter() - t:.1f} s; file {os.path.getsize(path) / 1e6:.0f} MB")
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", MEASURE, path], capture_output=True, text=True, check=True)
            runs.append([float(x) for x in out.stdout.split()])
        med = [sorted(col)[len(col) // 2] for col in zip(*runs, strict=False)]
        print(f"N = {args.n} (median of {args.repeat} fresh processes)")
        print(f"  load + index build   {med[0]:.2f} s")
        print(f"  save                 {med[1]:.2f} s")
        print(f"  lookup by path       {med[2]:.1f} us")
        print(f"  lookup by name       {med[3]:.1f} us")
        print(f"  peak RSS             {med[4]:.0f} MB")


if __name__ == "__main__":
    main()
