"""The review page on a large cache: how long until the first page is ready, and each page after.

    python benchmarks/bench_review.py --n 100000 --review 5000

Builds a cache of N assets of which REVIEW are ambiguous between two files that exist in a
temporary TARGET (so the page reads their sizes and EXIF dates as it would), then times: loading
the cache and listing what to review (once, when the command starts), the first page, a page in
the middle, and one local preview made and then served again (an iPhone HEIC, a JPEG, a raw
file's embedded JPEG), all through Flask's test client, without the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta


def build(root: str, path: str, n: int, review: int) -> None:
    from immich_sync import save_cache
    from immich_sync.domain.cache import ImmichCache
    from immich_sync.domain.match import Confidence, Evidence, MatchResult
    from immich_sync.testing.factory import jpeg_bytes, make_asset

    cache = ImmichCache()
    cache.target = root
    start = datetime(2020, 1, 1)
    for i in range(n):
        taken = start + timedelta(minutes=i)
        name = f"IMG_{i:06d}.JPG"
        raw = make_asset(owner_id="me", name=name, taken=taken, size=1000, checksum=f"c{i}")
        cache.upsert(raw, datetime(2026, 1, 1, tzinfo=UTC))
        if i < review:
            paths = []
            for folder in ("a", "b"):
                os.makedirs(os.path.join(root, folder), exist_ok=True)
                path_i = os.path.join(root, folder, name)
                with open(path_i, "wb") as handle:
                    handle.write(jpeg_bytes(taken))
                paths.append(path_i)
            cache.set_match(raw["id"], MatchResult.ambiguous(tuple(paths), "filename", Evidence()))
        else:
            cache.set_match(raw["id"], MatchResult.found(f"{root}/x/{name}", "filename", Confidence.HIGH, Evidence()))
    save_cache(cache, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--review", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from immich_sync.adapters.json_repository import JsonCacheRepository
    from immich_sync.entrypoints.review_web import ReviewState, create_app

    with tempfile.TemporaryDirectory() as work:
        root, path = os.path.join(work, "Photos"), os.path.join(work, "cache.json")
        build(root, path, args.n, args.review)
        started = time.perf_counter()
        state = ReviewState(JsonCacheRepository(path), "t")
        ready = time.perf_counter() - started
        client = create_app(state).test_client()
        pages = {"first": 1, "middle": max(1, args.review // 40)}
        print(f"{args.n} assets, {len(state.items)} to review; load and list: {ready:.2f} s")
        for label, page in pages.items():
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                answer = client.get(f"/?token=t&kind=ambiguous&page={page}")
                times.append(time.perf_counter() - t)
                assert answer.status_code == 200 and b"card-20" in answer.data
            print(f"  {label} page ({page}): median {statistics.median(times) * 1000:.0f} ms over {args.repeat}")
        samples = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "camera-samples")
        for sample in ("IMG_5195.HEIC", "Canon_40D.jpg", "FujiFilm.raf"):
            cold, warm = [], []
            for n in range(args.repeat):
                copy = os.path.join(root, f"{n}-{sample}")
                shutil.copyfile(os.path.join(samples, sample), copy)
                t = time.perf_counter()
                assert client.get(f"/preview?token=t&path={copy}").status_code == 200
                cold.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert client.get(f"/preview?token=t&path={copy}").status_code == 200
                warm.append(time.perf_counter() - t)
            print(
                f"  preview of {sample}: first {statistics.median(cold) * 1000:.0f} ms (made and kept), "
                f"then {statistics.median(warm) * 1000:.1f} ms (median of {args.repeat})"
            )


if __name__ == "__main__":
    main()
