"""Benchmark: immich-cache against the fake server, beside the floor for the same job.

    python benchmarks/bench.py --n 20000 [--latency 0.0] [--version 3.1.0] [--repeat 3] [--short]

Prints wall time, peak RSS, cache size, request count and ratios to the baseline (a minimal
script that pages the same server with one requests.Session, walks the folder with os.scandir
and writes the raw assets with json.dump). Not a test: numbers go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from immich_sync.api import load_cache, save_cache
from immich_sync.testing.factory import jpeg_bytes, make_asset, sha1_b64
from immich_sync.testing.fake_immich import FakeImmich

PERSON = {
    "id": "6f7b1a3e-0000-4000-8000-000000000001",
    "name": "Alice",
    "birthDate": None,
    "thumbnailPath": "/data/thumbs/people/6f7b1a3e.jpeg",
    "isHidden": False,
    "isFavorite": False,
    "color": None,
    "updatedAt": "2026-01-01T00:00:00.000Z",
}


def build(
    fake: FakeImmich, root: str, n: int, albums: int = 200, tags: int = 100, seed: int = 7, heavy: bool = False
) -> list[str]:
    """N assets (~2 KB of JSON each) and N small JPEGs. About 5 % of the names are shared by 2-4 files
    in different folders, with distinct sizes and EXIF dates, so that the date decides. The heavy
    profile adds what people who tag have: 8 tags on a quarter of the assets each (about two tags
    per asset) and 4 albums of a tenth each."""
    rnd = random.Random(seed)
    ids: list[str] = []
    i = 0
    while i < n:
        group = rnd.randint(2, 4) if rnd.random() < 0.05 / 3 else 1
        name = f"IMG_{i:06d}.JPG"
        for k in range(min(group, n - i)):
            taken = datetime(2015, 1, 1) + timedelta(seconds=rnd.randrange(300_000_000))
            data = jpeg_bytes(taken, padding=(i + k) % 997)
            folder = os.path.join(root, f"{taken:%Y}", f"{taken:%m}-{k}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(data)
            asset = make_asset(
                owner_id=fake.user_id,
                name=name,
                taken=taken,
                size=len(data),
                checksum=sha1_b64(data),
                updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
            asset["people"] = [PERSON] if rnd.random() < 0.5 else []
            asset["exifInfo"]["description"] = "A walk along the river, late afternoon light. " * 4
            ids.append(fake.add_asset(asset)["id"])
        i += group
    for a in range(albums):
        fake.add_album(f"Album {a}", rnd.sample(ids, min(len(ids), 50)))
    for t in range(tags):
        fake.add_tag(f"Topic {t % 10}/Tag {t}", rnd.sample(ids, min(len(ids), 30)))
    if heavy:
        for t in range(8):
            fake.add_tag(f"People/Person {t}", rnd.sample(ids, len(ids) // 4))
        for a in range(4):
            fake.add_album(f"Big album {a}", rnd.sample(ids, len(ids) // 10))
    return ids


BASELINE = r"""
import json, os, sys, requests
url, key, root, out = sys.argv[1:5]
s = requests.Session(); s.headers["x-api-key"] = key
assets, page = [], 1
while page:
    r = s.post(url + "/api/search/metadata", json={"withExif": True, "size": 1000, "page": page}).json()["assets"]
    assets += r["items"]; page = int(r["nextPage"]) if r["nextPage"] else None
files = []
stack = [root]
while stack:
    for e in os.scandir(stack.pop()):
        (stack.append(e.path) if e.is_dir() else files.append((e.path, e.stat().st_size)))
json.dump({a["id"]: a for a in assets}, open(out, "w"))
"""


LOAD = r"""
import resource, sys, time
from immich_sync import load_cache
t = time.perf_counter(); cache = load_cache(sys.argv[1]); elapsed = time.perf_counter() - t
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def timed(cmd, env, cwd):
    return timed_rss(cmd, env, cwd)[0]


def timed_rss(cmd, env, cwd):
    """Wall time and peak RSS (MB, from /usr/bin/time) of one command."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{cmd} failed: {proc.stderr[-2000:]}")
    return elapsed, int(proc.stderr.strip().splitlines()[-1]) / 1024


def scan_and_match(fake: FakeImmich, root: str) -> tuple[float, int, float]:
    """The matcher alone: one scan, then every asset matched with cold per-run caches."""
    from immich_sync.adapters.library_scan import LocalLibrary
    from immich_sync.domain.asset import Asset
    from immich_sync.domain.matcher import match_asset

    library = LocalLibrary()
    t = time.perf_counter()
    index = library.scan(root)
    scan = time.perf_counter() - t
    assets = [Asset.from_api(raw) for raw in fake.assets.values()]
    t = time.perf_counter()
    for asset in assets:
        match_asset(asset, index, library)
    return scan, len(index), time.perf_counter() - t


def membership_overlap(fake: FakeImmich) -> tuple[float, float, int]:
    """Listing alone, then listing with album and tag membership fetched beside it, as the service does."""
    from concurrent.futures import ThreadPoolExecutor

    from immich_sync.adapters.immich_config import ImmichConfig
    from immich_sync.adapters.immich_http import ImmichConnection

    conn = ImmichConnection(ImmichConfig(url=fake.url, api_key=fake.api_key))
    conn.check()
    t = time.perf_counter()
    for _ in conn.iter_assets():
        pass
    listing = time.perf_counter() - t
    conn.requests_made = 0
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        albums, tags = pool.submit(conn.albums), pool.submit(conn.tags)
        for _ in conn.iter_assets():
            pass
        albums.result(), tags.result()
    return listing, time.perf_counter() - t, conn.requests_made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--version", default="3.1.0")
    parser.add_argument(
        "--profile", choices=["light", "heavy"], default="light", help="heavy: 8 tags on a quarter of the assets each"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of baseline, first and unchanged run (medians are reported)"
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="only the baseline, a first and an unchanged run, and a cache load (for N = 1,000,000)",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="count the data set's first run too (the fake server's memo empty)"
    )
    args = parser.parse_args()
    version = tuple(int(x) for x in args.version.split("."))
    with tempfile.TemporaryDirectory(prefix="immich-bench-") as work, FakeImmich(version) as fake:
        root = os.path.join(work, "Photos")
        t = time.perf_counter()
        build(fake, root, args.n, heavy=args.profile == "heavy")
        print(f"generated {args.n} assets and files ({args.profile} profile) in {time.perf_counter() - t:.1f} s")
        fake.latency = args.latency
        env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
        cmd = [sys.executable, "-m", "immich_sync", root, "-q"]
        cache_path = os.path.join(work, "log", "cache_Photos.json")
        # The fake server keeps each query's answer while its data is unchanged; a query's first
        # answer costs it a pass over the whole library in Python (~10 s of CPU at 100,000
        # heavily tagged assets, on the cores the client runs on), which a real server's indexes
        # do not. A first and a second run, not counted, fill it: every round then measures the
        # same work, the server's part of it being what a request costs, not a first query.
        if not args.no_warmup:
            shutil.rmtree(os.path.join(work, "log"), ignore_errors=True)
            warm_first, _ = timed_rss(cmd, env, work)
            warm_second, _ = timed_rss(cmd, env, work)
            print(f"  warm-up (not counted): first run {warm_first:.2f} s, unchanged {warm_second:.2f} s", flush=True)
        # baseline, first and unchanged run in turn, `--repeat` times: the box is shared and noisy,
        # so each ratio is taken within one round and the medians are reported
        rounds = []
        for _ in range(args.repeat):
            base, rss_base = timed_rss(
                [sys.executable, "-c", BASELINE, fake.url, fake.api_key, root, os.path.join(work, "raw.json")],
                env,
                work,
            )
            shutil.rmtree(os.path.join(work, "log"), ignore_errors=True)
            fake.requests.clear()
            first, rss_first = timed_rss(cmd, env, work)
            requests_first = len(fake.requests)
            requests_before = len(fake.requests)
            second, rss_second = timed_rss(cmd, env, work)
            requests_second = len(fake.requests) - requests_before
            rounds.append((base, first, second, rss_first, rss_second, rss_base))
            print(
                f"  round {len(rounds)}: baseline {base:.2f} s, first {first:.2f} s (x{first / base:.2f}), "
                f"unchanged {second:.2f} s (x{second / first:.2f} of the first)",
                flush=True,
            )
        base, first, second, rss_first, rss_second, rss_base = (
            statistics.median(r[i] for r in rounds) for i in range(6)
        )
        first_ratio = statistics.median(r[1] / r[0] for r in rounds)
        second_ratio = statistics.median(r[2] / r[1] for r in rounds)
        size_mb = os.path.getsize(cache_path) / 1e6
        load_out = subprocess.run([sys.executable, "-c", LOAD, cache_path], capture_output=True, text=True, check=True)
        load, load_rss = (float(x) for x in load_out.stdout.split())
        print(
            f"\nN = {args.n}, server v{args.version}, latency {args.latency * 1000:.0f} ms/request, "
            f"medians of {len(rounds)} rounds"
        )
        print(f"  {'baseline (page + scandir + json.dump)':40s} {base:7.2f} s   x1.00   peak RSS {rss_base:.0f} MB")
        print(
            f"  {'immich-cache first run':40s} {first:7.2f} s   x{first_ratio:.2f}   peak RSS {rss_first:.0f} MB"
            f" (x{rss_first / rss_base:.2f} of the baseline's)"
        )
        second_label = "second run, nothing changed"
        print(f"  {second_label:40s} {second:7.2f} s   x{second / base:.2f}   peak RSS {rss_second:.0f} MB")
        print(f"  second / first                           x{second_ratio:.2f}")
        print(f"  requests in the first run                {requests_first}")
        print(f"  requests in the unchanged run            {requests_second}")
        print(f"  cache file                               {size_mb:7.1f} MB")
        print(f"  cache load + index build (fresh process) {load:7.2f} s   peak RSS {load_rss:.0f} MB")
        if args.short:
            return
        for asset_id in list(fake.assets)[: args.n // 100]:
            fake.touch(asset_id, "2026-10-01T00:00:00.000Z")
        changed = timed(cmd, env, work)
        after = timed([*cmd, "--after=2026-10-01T00:00:00Z"], env, work)
        print(f"  {'run after 1 % changed':40s} {changed:7.2f} s   x{changed / base:.2f}")
        print(f"  {'--after last change':40s} {after:7.2f} s   x{after / base:.2f}")
        cache = load_cache(cache_path)
        paths = [n.match.path for n in cache if n.match and n.match.path][:1000]
        t = time.perf_counter()
        for p in paths:
            cache.find_by_path(p)
        by_path = (time.perf_counter() - t) / max(len(paths), 1) * 1e6
        t = time.perf_counter()
        for p in paths:
            cache.find_by_name(os.path.basename(p))
        by_name = (time.perf_counter() - t) / max(len(paths), 1) * 1e6
        t = time.perf_counter()
        save_cache(cache, cache_path)
        save = time.perf_counter() - t
        stats = cache.stats()
        del cache
        listing, with_groups, conn_requests = membership_overlap(fake)
        scan_s, files, match_s = scan_and_match(fake, root)
        print(f"  cache save                               {save:7.2f} s")
        print(f"  lookup by path / by name                 {by_path:.1f} us / {by_name:.1f} us")
        print(f"  match status                             {json.dumps(stats.get('byStatus', stats.get('by_status')))}")
        print(f"  scan of TARGET                           {scan_s:7.2f} s   {files / scan_s:,.0f} files/s")
        print(f"  matching all assets (EXIF reads incl.)   {match_s:7.2f} s   {args.n / match_s:,.0f} assets/s")
        print(f"  listing alone (in-process client)        {listing:7.2f} s")
        print(
            f"  listing + {len(fake.albums)} albums + {len(fake.tags)} tags membership  {with_groups:7.2f} s"
            f"   x{with_groups / listing:.2f} of listing alone, {conn_requests} requests"
        )


if __name__ == "__main__":
    main()
