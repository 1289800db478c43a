"""See immich-cache work without an Immich server: `python -m immich_sync.demo [N] [--keep]`.

Starts the test suite's fake Immich server on 127.0.0.1 holding N generated assets, writes a
matching photo folder (with same-named files in other years, and a few files missing), runs
`immich-cache` on it and looks one file up in the cache, all in a temporary folder, deleted at
the end unless `--keep` (then the cache and the log it names can be opened afterwards).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta

from .api import load_cache
from .entrypoints import cache_cli
from .testing.factory import make_asset, sha1_b64, write_library
from .testing.fake_immich import FakeImmich


def build(fake: FakeImmich, root: str, n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    specs: list[tuple[str, datetime | None, int]] = []
    taken_at: list[datetime] = []
    ids = []
    for i in range(n):
        taken = datetime(2019, 1, 1) + timedelta(minutes=rnd.randrange(3_000_000))
        name = f"IMG_{i % max(n // 20, 50):04d}.JPG"  # names wrap, as camera counters do
        specs.append((f"{taken:%Y}/{taken:%m}/{name}", taken, rnd.randrange(0, 400)))
        taken_at.append(taken)
    written = write_library(root, specs)
    for (_path, data), (rel, _, _), taken in zip(written, specs, taken_at, strict=True):
        asset = make_asset(
            owner_id=fake.user_id,
            name=os.path.basename(rel),
            taken=taken,
            size=len(data),
            checksum=sha1_b64(data),
            updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        ids.append(fake.add_asset(asset)["id"])
    for path, _ in written[:: max(n // 10, 1)]:
        if os.path.exists(path):
            os.unlink(path)  # a few files the library lost
    fake.add_album("Holidays", ids[: n // 4])
    fake.add_tag("Travel/Paris", ids[: n // 10])
    return ids


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    keep = "--keep" in argv
    numbers = [a for a in argv if a != "--keep"]
    if any(not a.isdigit() for a in numbers) or len(numbers) > 1:
        print("usage: python -m immich_sync.demo [N] [--keep]", file=sys.stderr)
        return 2
    n = int(numbers[0]) if numbers else 300
    work = tempfile.mkdtemp(prefix="immich-sync-demo-")
    here = os.getcwd()
    try:
        with FakeImmich((3, 1, 0)) as fake:
            root = os.path.join(work, "Photos")
            build(fake, root, n)
            os.environ.update(IMMICH_INSTANCE_URL=fake.url, IMMICH_API_KEY=fake.api_key)
            os.chdir(work)
            print(f"demo: fake Immich v3.1.0 at {fake.url} with {n} assets; photo folder {root}\n")
            code = cache_cli.main([root])
            cache = load_cache(os.path.join(work, "log", "cache_Photos.json"))
            path = next(node.match.path for node in cache if node.match and node.match.path)
            print(f"\ndemo: looking up {path}")
            for node in cache.find_file(path):
                assert node.match is not None
                print(
                    f"  -> asset {node.id}: {node.match.status.value} by {node.match.method}, "
                    f"confidence {node.match.confidence.label}, taken {node.asset_raw['localDateTime']}"
                )
            if keep:
                print(f"\ndemo: kept {work} (the cache is in {work}/log; delete the folder when done)")
            return code
    finally:
        os.chdir(here)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
