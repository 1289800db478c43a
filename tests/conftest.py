"""Shared fixtures. Test data copied from the workplace's shared/ folder lives in tests/data
(see tests/data/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
PAYLOADS = DATA / "real-payloads"
RECORDED = {"3.1.0": PAYLOADS / "recorded-v3.1.0", "2.7.5": PAYLOADS / "recorded-v2.7.5"}
SAMPLES = DATA / "camera-samples"


def real_assets() -> list[tuple[str, dict]]:
    """Every asset body in the real payloads (v1.82 to v3.1.0), with where it came from."""
    found: list[tuple[str, dict]] = []

    def walk(name: str, value: object) -> None:
        if isinstance(value, dict):
            if "originalFileName" in value and "id" in value and "checksum" in value:
                found.append((name, value))
                return
            for item in value.values():
                walk(name, item)
        elif isinstance(value, list):
            for item in value:
                walk(name, item)

    for path in sorted(PAYLOADS.rglob("*.json")):
        if path.name.endswith(".headers.json") or path.name == "_index.json":
            continue
        walk(str(path.relative_to(PAYLOADS)), json.loads(path.read_text()))
    return found


@pytest.fixture
def fake_server():
    from immich_sync.testing.fake_immich import FakeImmich

    servers = []

    def start(*args, **kwargs):
        server = FakeImmich(*args, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def command(cwd, env, *args, module: str = "immich_sync", timeout: float = 120):
    """One of the project's commands in a subprocess, as a user runs it: `immich-cache` by default,
    or another entrypoint module (`immich_sync.entrypoints.find_cli`)."""
    import subprocess
    import sys

    start = ["-m", module] if module == "immich_sync" else ["-c", f"from {module} import run; run()"]
    return subprocess.run(
        [sys.executable, *start, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
