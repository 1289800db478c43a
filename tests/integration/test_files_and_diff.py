"""Issue 17 end to end: immich-cache, then immich-cache-files (the file section, read again only
when a file changed), immich-cache-diff, and the example script against the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from conftest import command
from immich_sync.testing.factory import jpeg_with_metadata, make_asset, sha1_b64, xmp_packet

TAKEN = datetime(2024, 7, 14, 21, 5, 3)
ROOT = Path(__file__).parents[2]


@pytest.fixture
def library(fake_server, tmp_path):
    fake = fake_server((3, 1, 0))
    photos = tmp_path / "Photos"
    photos.mkdir()
    files = {
        "a.jpg": jpeg_with_metadata(TAKEN, description="Tower", rating=2),
        "b.jpg": jpeg_with_metadata(TAKEN + (datetime(2024, 1, 1, 0, 0, 1) - datetime(2024, 1, 1))),
        "c.jpg": jpeg_with_metadata(TAKEN, description="Already in Immich"),
    }
    ids = {}
    for name, data in files.items():
        (photos / name).write_bytes(data)
        taken = TAKEN if name != "b.jpg" else datetime(2024, 7, 14, 21, 5, 4)
        raw = make_asset(owner_id=fake.user_id, name=name, taken=taken, size=len(data), checksum=sha1_b64(data))
        if name == "c.jpg":
            raw["exifInfo"]["description"] = "Already in Immich"
        ids[name] = fake.add_asset(raw)["id"]
    (photos / "b.jpg.xmp").write_bytes(xmp_packet(description="From Lightroom", hierarchical=["Trips|Paris"]))
    env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
    run = command(tmp_path, env, "Photos")
    assert run.returncode == 0, run.stderr
    return fake, tmp_path, env, ids


def files_cli(tmp, env, *args):
    return command(tmp, env, *args, module="immich_sync.entrypoints.files_cli")


def diff_cli(tmp, env, *args):
    return command(tmp, env, *args, module="immich_sync.entrypoints.diff_cli")


def cache(tmp):
    return json.loads((tmp / "log" / "cache_Photos.json").read_text())


def test_files_are_read_into_the_cache_and_only_changed_ones_again(library):
    _fake, tmp, env, ids = library
    run = files_cli(tmp, env, "Photos")
    assert run.returncode == 0, run.stderr
    assert "3 found assets" in run.stdout and "3 files read, 0 unchanged" in run.stdout
    doc = cache(tmp)
    jsonschema.validate(doc, json.loads((ROOT / "docs" / "cache.schema.json").read_text()))
    b = doc["assets"][ids["b.jpg"]]["file"]
    assert b["description"] == {"value": "From Lightroom", "source": "sidecar"}
    assert b["tags"] == {"value": ["Trips/Paris"], "source": "sidecar:lr:hierarchicalSubject"}
    assert b["sidecar"]["path"] == str(tmp / "Photos" / "b.jpg.xmp")
    assert doc["assets"][ids["a.jpg"]]["file"]["rating"] == {"value": 2, "source": "exif"}
    before = (tmp / "log" / "cache_Photos.json").read_bytes()
    again = files_cli(tmp, env, "Photos")
    assert "0 files read, 3 unchanged" in again.stdout and "unchanged:" in again.stdout
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before
    time.sleep(0.01)
    (tmp / "Photos" / "b.jpg.xmp").write_bytes(xmp_packet(description="Edited again"))
    third = files_cli(tmp, env, "Photos")
    assert "1 files read, 2 unchanged" in third.stdout
    assert cache(tmp)["assets"][ids["b.jpg"]]["file"]["description"]["value"] == "Edited again"
    # an immich-cache run keeps the file sections
    assert command(tmp, env, "Photos").returncode == 0
    assert cache(tmp)["assets"][ids["b.jpg"]]["file"]["description"]["value"] == "Edited again"


def test_diff_lists_what_differs_as_json_lines_and_as_a_table(library):
    _fake, tmp, env, ids = library
    assert diff_cli(tmp, env, "Photos").stdout.count("run immich-cache-files first") == 1
    assert files_cli(tmp, env, "Photos").returncode == 0
    run = diff_cli(tmp, env, "Photos", "--json", "--field=description")
    assert run.returncode == 1, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert sorted((line["asset"], line["immich"], line["file"], line["source"]) for line in lines) == sorted(
        [(ids["a.jpg"], None, "Tower", "exif"), (ids["b.jpg"], None, "From Lightroom", "sidecar")]
    )
    assert all(set(line) == {"asset", "path", "field", "immich", "file", "source"} for line in lines)
    table = diff_cli(tmp, env, "Photos")
    assert "a.jpg  description: Immich - | file Tower (exif)" in table.stdout
    assert "b.jpg  tags: Immich - | file Trips/Paris (sidecar:lr:hierarchicalSubject)" in table.stdout
    assert "b.jpg  latitude: Immich 43.46715 | file - (not in the file)" in table.stdout  # the asset's GPS
    summary = "3 found assets compared; differences: latitude 3, longitude 3, description 2, rating 1, tags 1"
    assert summary in table.stdout
    assert diff_cli(tmp, env, "Photos", "--field=colour").returncode == 2


def test_the_example_sets_descriptions_dry_run_first_then_applied_and_refreshed(library):
    fake, tmp, env, ids = library
    assert files_cli(tmp, env, "Photos").returncode == 0
    script = [sys.executable, str(ROOT / "examples" / "set_descriptions.py"), "Photos"]
    dry = subprocess.run(script, cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "2 assets would get a description (dry run" in dry.stdout and fake.updates == []
    applied = subprocess.run([*script, "--apply"], cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
    assert applied.returncode == 0, applied.stderr
    assert sorted((u["description"], tuple(u["ids"])) for u in fake.updates) == [
        ("From Lightroom", (ids["b.jpg"],)),
        ("Tower", (ids["a.jpg"],)),
    ]
    doc = cache(tmp)["assets"]
    assert doc[ids["a.jpg"]]["asset"]["exifInfo"]["description"] == "Tower"  # refreshed from the server
    assert doc[ids["a.jpg"]]["match"]["status"] == "found"
    again = subprocess.run(script, cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
    assert "0 assets would get a description" in again.stdout
    assert datetime.fromisoformat(doc[ids["a.jpg"]]["asset"]["updatedAt"]) > datetime(2026, 6, 1, tzinfo=UTC)


def test_a_body_over_the_servers_limit_is_refused_as_the_real_one_does(library):
    import requests

    fake, _tmp, _env, ids = library
    body = {"ids": [ids["a.jpg"]], "description": "x" * (11 << 20)}
    answer = requests.put(f"{fake.url}/api/assets", json=body, headers={"x-api-key": fake.api_key}, timeout=30)
    assert answer.status_code == 413 and fake.updates == []


def test_the_readmes_python_example_runs_as_written(library, monkeypatch, capsys):
    fake, tmp, env, _ids = library
    data = jpeg_with_metadata(TAKEN, description="readme")
    (tmp / "Photos" / "IMG_0001.JPG").write_bytes(data)
    fake.add_asset(make_asset(owner_id=fake.user_id, name="IMG_0001.JPG", taken=TAKEN, size=len(data), checksum="c"))
    assert command(tmp, env, "Photos").returncode == 0
    assert files_cli(tmp, env, "Photos").returncode == 0
    (tmp / "log" / "cache_photos.json").write_bytes((tmp / "log" / "cache_Photos.json").read_bytes())
    readme = (ROOT / "README.md").read_text()
    block = readme.split("From Python, one call each:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'description': {'value': 'readme', 'source': 'exif'}" in printed
    assert "description None -> readme" in printed


def test_output_cut_short_by_the_reader_ends_quietly(library):
    """`immich-cache-diff --json | head -1`: the reader goes away, no traceback follows."""
    _fake, tmp, env, _ids = library
    assert files_cli(tmp, env, "Photos").returncode == 0
    for module in ("diff_cli", "find_cli"):
        args = ["Photos", "--json"] if module == "diff_cli" else ["--target=Photos", "--name=a.jpg"]
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from immich_sync.entrypoints.{module} import run; run()", *args],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read()
        proc.wait(30)
        assert "Traceback" not in err and "BrokenPipe" not in err, (module, err)
