"""What a listing's check and catch-up cost at N assets: a first run when nothing moves, and one
during which 3 already-listed assets are trashed right after the first page (the pages shift and 3
assets may fall between them), and a re-run after it. Prints time and requests of each. Not a test.

    python benchmarks/bench_catchup.py 100000
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import build
from immich_sync.testing.fake_immich import FakeImmich

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
with tempfile.TemporaryDirectory(prefix="immich-catchup-") as work, FakeImmich((3, 1, 0)) as fake:
    root = os.path.join(work, "Photos")
    build(fake, root, n)
    env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}

    def run(label, *args):
        before = len(fake.requests)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "immich_sync", root, "-q", *args], env=env, cwd=work, check=True)
        took = time.perf_counter() - t
        paths = [p for _, p, _ in fake.requests[before:]]
        print(
            f"  {label:52s} {took:6.2f} s  {len(paths):4d} requests "
            f"({paths.count('/api/search/statistics')} statistics, "
            f"{sum(p.startswith('/api/assets/') for p in paths)} by id)",
            flush=True,
        )

    for _ in range(2):
        run("first run, nothing moves", "--clear")
    order = sorted(fake.assets, key=lambda i: (fake.assets[i]["fileCreatedAt"], i), reverse=True)
    fake.after_search[fake.searches_served + 1] = lambda f: [f.trash(i) for i in order[:3]]
    run("first run, 3 listed assets trashed after page 1", "--clear")
    cache = json.loads(Path(work, "log", "cache_Photos.json").read_text())
    logs = sorted(name for name in os.listdir(os.path.join(work, "log")) if name.endswith(".log"))
    text = Path(work, "log", logs[-1]).read_text()
    print("  log:", [line[24:200] for line in text.splitlines() if "WARNING" in line])
    print("  cached:", len(cache["assets"]), "assets;", n - 3, "are still on the server")
    run("re-run after it")
    cache = json.loads(Path(work, "log", "cache_Photos.json").read_text())
    print("  gone:", sum(1 for a in cache["assets"].values() if a["goneSince"]))
