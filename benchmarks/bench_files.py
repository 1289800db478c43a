"""immich-cache-files on a large library: the first reading of every matched file, and an
unchanged re-run, beside a first immich-cache run on the same library.

    python benchmarks/bench_files.py --n 100000

Uses bench.py's library (N small JPEGs with EXIF dates, ~5 % shared names) and its fake server; a
tenth of the files get an XMP sidecar (Lightroom's hierarchical keywords and a description).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from bench import build, timed_rss
from immich_sync.testing.factory import xmp_packet
from immich_sync.testing.fake_immich import FakeImmich


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, FakeImmich((3, 1, 0)) as fake:
        root = os.path.join(work, "Photos")
        build(fake, root, args.n)
        sidecar = xmp_packet(description="from Lightroom", hierarchical=["Trips|Paris"])
        written = 0
        for folder, _dirs, names in os.walk(root):
            for name in names:
                if written % 10 == 0:
                    with open(os.path.join(folder, name + ".xmp"), "wb") as handle:
                        handle.write(sidecar)
                written += 1
        env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
        python = sys.executable
        first, rss = timed_rss([python, "-m", "immich_sync", "-q", root], env, work)
        print(f"{args.n} assets: immich-cache first run {first:.1f} s, {rss:.0f} MB")
        files = [python, "-c", "from immich_sync.entrypoints.files_cli import run; run()", root]
        read, rss = timed_rss(files, env, work)
        print(f"  immich-cache-files, first run: {read:.1f} s, {rss:.0f} MB (every found file read)")
        again, rss = timed_rss(files, env, work)
        print(f"  immich-cache-files, unchanged re-run: {again:.1f} s, {rss:.0f} MB")


if __name__ == "__main__":
    main()
