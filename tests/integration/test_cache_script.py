"""The real `immich-cache` command in a subprocess, against the fake server over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from immich_sync.testing.factory import make_asset, sha1_b64, write_library

TAKEN = datetime(2024, 7, 14, 10, 0)
ALBUM_UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def setup(fake_server, tmp_path):
    fake = fake_server((3, 1, 0))
    specs = [(f"{2020 + i % 3}/IMG_{i:04d}.JPG", datetime(2020 + i % 3, 1, 1 + i % 27, 10, 0, 0), i) for i in range(12)]
    specs.append(("2021/IMG_0000.JPG", datetime(2021, 5, 5, 5, 5, 5), 1))  # a same-named file
    written = write_library(str(tmp_path / "Photos"), specs)
    ids = []
    for (_path, data), (rel, taken, _) in zip(written, specs[:12], strict=False):
        ids.append(
            fake.add_asset(
                make_asset(
                    owner_id=fake.user_id,
                    name=os.path.basename(rel),
                    taken=taken,
                    size=len(data),
                    checksum=sha1_b64(data),
                    updated_at=datetime(2026, 1, 1 + len(ids), tzinfo=UTC),
                )
            )["id"]
        )
    fake.add_album("Trip", ids[:2])
    env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
    env.pop("IMMICH_URL", None)
    return fake, tmp_path, env, ids


def cli(tmp_path, env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "immich_sync", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cache_of(tmp_path) -> dict:
    return json.loads((tmp_path / "log" / "cache_Photos.json").read_text())


def test_first_run_second_run_and_clear(setup):
    fake, tmp, env, ids = setup
    first = cli(tmp, env, "Photos")
    assert first.returncode == 0, first.stderr
    assert "12 assets" in first.stdout and "12 added" in first.stdout
    doc = cache_of(tmp)  # the default cache path
    assert len(doc["assets"]) == 12
    assert {n["match"]["status"] for n in doc["assets"].values()} == {"found"}
    assert doc["assets"][ids[0]]["albums"] == list(fake.albums)
    written = (tmp / "log" / "cache_Photos.json").read_bytes()
    same = cli(tmp, env, "Photos")
    assert same.returncode == 0 and "0 added, 0 updated, 12 unchanged" in same.stdout
    assert "nothing changed: the file is left as it was" in same.stdout
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == written
    fake.touch(ids[3], "2026-06-01T00:00:00.000Z")
    second = cli(tmp, env, "--target=Photos")
    assert second.returncode == 0 and "0 added, 1 updated, 11 unchanged" in second.stdout
    assert "saved to" in second.stdout and len(cache_of(tmp)["runs"]) == 2
    del fake.assets[ids[5]]
    third = cli(tmp, env, "Photos", "--clear")
    assert third.returncode == 0 and "11 added" in third.stdout and len(cache_of(tmp)["assets"]) == 11


def test_filters_and_their_combination(setup):
    fake, tmp, env, ids = setup
    run = cli(tmp, env, "Photos", "--after=2026-01-05T00:00:00Z", "--before=2026-01-08T00:00:00+00:00")
    assert run.returncode == 0, run.stderr
    assert sorted(cache_of(tmp)["assets"]) == sorted(ids[4:8])
    run = cli(tmp, env, "Photos", "--clear", f"--album={next(iter(fake.albums))}", "--after=2026-01-02T00:00:00")
    assert run.returncode == 0 and sorted(cache_of(tmp)["assets"]) == [ids[1]]


@pytest.mark.parametrize(
    "verbose", [pytest.param(["-v"], id="through-logging"), pytest.param([], id="straight-to-the-file")]
)
def test_audit_log_has_one_line_per_asset_and_no_key(setup, verbose):
    """Every line of the log is one JSON object (parsed here by json.loads): an AUDIT object per
    asset with its time and fields, and the summary as one object."""
    fake, tmp, env, ids = setup
    run = cli(tmp, env, "Photos", *verbose)
    logs = list((tmp / "log").glob("immich-cache_*.log"))
    assert run.returncode == 0 and len(logs) == 1
    text = logs[0].read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    audit = [line for line in lines if line["level"] == "AUDIT" and "asset" in line]
    assert len(audit) == 12 and {line["asset"] for line in audit} == set(ids)
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
    assert all(stamp.match(line["time"]) for line in lines), lines[:2]
    assert all(line["status"] == "found" and line["path"] and line["confidence"] for line in audit), audit[:2]
    assert {line["outcome"] for line in audit} == {"added"}
    assert ("AUDIT {" in run.stderr) == bool(verbose)
    (summary,) = [line for line in lines if line.get("event") == "summary"]
    assert summary["summary"]["fetched"] == 12 and summary["summary"]["byStatus"] == {"found": 12}
    for blob in (text, run.stdout, run.stderr, (tmp / "log" / "cache_Photos.json").read_text()):
        assert fake.api_key not in blob


@pytest.mark.parametrize(
    "args,message",
    [
        pytest.param(["Photos", "--after=2025-06-30"], "--after needs a full ISO 8601 date-time", id="date-only"),
        pytest.param(["Photos", "--before=yesterday"], "--before needs a full ISO 8601", id="not-a-date"),
        pytest.param(
            ["Photos", "--after=2026-02-01T00:00:00Z", "--before=2026-01-01T00:00:00Z"],
            "is later than",
            id="after-later-than-before",
        ),
        pytest.param(["Nowhere"], "does not exist", id="missing-target"),
        pytest.param(["Photos/2020/IMG_0000.JPG"], "is not a folder", id="target-is-a-file"),
        pytest.param(
            ["Photos", "--album=Nowhere Trip"], "no album named 'Nowhere Trip' among the 1 albums", id="no-album-named"
        ),
        pytest.param(["Photos", f"--album={ALBUM_UNKNOWN}"], f"album {ALBUM_UNKNOWN} not found", id="unknown-album"),
        pytest.param(["Photos", "--cache=foreign.json"], "not an immich-sync cache file", id="foreign-cache"),
        pytest.param(
            ["Photos", "--bogus"], "error: unknown option --bogus (see immich-cache --help)", id="unknown-option"
        ),
        pytest.param([], "error: TARGET is missing: the library folder to match", id="no-target"),
        pytest.param(["Photos", "Photos"], "one TARGET only (got 'Photos', 'Photos')", id="two-targets"),
        pytest.param(["--target=Photos", "Photos"], "give TARGET or --target, not both", id="target-twice"),
        pytest.param(["Photos", "--cache"], "--cache needs a value, as in --cache=...", id="option-without-value"),
        pytest.param(["Photos", "--clear=yes"], "--clear takes no value", id="flag-with-value"),
        pytest.param(["Photos", "-x"], "unknown option -x", id="unknown-short-option"),
        pytest.param(["Photos", "--keep-logs=some"], "--keep-logs must be a whole number", id="bad-keep-logs"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_keeps_the_cache(setup, args, message):
    _fake, tmp, env, _ids = setup
    (tmp / "foreign.json").write_text('{"name": "not ours"}')
    assert cli(tmp, env, "Photos").returncode == 0
    before = (tmp / "log" / "cache_Photos.json").read_bytes()
    run = cli(tmp, env, *args)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Option(" not in run.stderr and "Usage:" not in run.stderr
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before
    assert (tmp / "foreign.json").read_text() == '{"name": "not ours"}'


@pytest.mark.parametrize(
    "change,message",
    [
        pytest.param({"IMMICH_API_KEY": "wrong-key-0123456789"}, "the API key was rejected", id="key-rejected"),
        pytest.param(
            {"IMMICH_INSTANCE_URL": "http://127.0.0.1:9"}, "cannot reach http://127.0.0.1:9", id="server-down"
        ),
    ],
)
def test_server_problems_exit_1(setup, change, message):
    _fake, tmp, env, _ids = setup
    run = cli(tmp, {**env, **change}, "Photos")
    assert run.returncode == 1 and message in run.stderr and "Traceback" not in run.stderr
    assert "wrong-key-0123456789" not in run.stderr + run.stdout
    assert not (tmp / "log" / "cache_Photos.json").exists()


def test_missing_configuration_exits_2(setup):
    _fake, tmp, env, _ids = setup
    env = {k: v for k, v in env.items() if not k.startswith("IMMICH_")}
    run = cli(tmp, env, "Photos")
    assert run.returncode == 2 and "IMMICH_INSTANCE_URL is not set" in run.stderr and ".env" in run.stderr


def test_env_file_option(setup):
    fake, tmp, env, _ids = setup
    (tmp / "server.env").write_text(f"IMMICH_INSTANCE_URL={fake.url}\nIMMICH_API_KEY={fake.api_key}\n")
    env = {k: v for k, v in env.items() if not k.startswith("IMMICH_")}
    assert cli(tmp, env, "Photos", "--env=server.env", "-q").returncode == 0


def start_slow_run(fake, tmp, env, latency=0.5, until="/api/search/metadata"):
    """Start the command against a slow server; return once it has asked for `until`."""
    fake.latency = latency
    fake.requests.clear()
    proc = subprocess.Popen(
        [sys.executable, "-m", "immich_sync", "Photos"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not any(p[1] == until for p in fake.requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def run_to_interrupt(setup):
    """A cache from a first run, every asset changed since, and a slow second run under way.
    Returns the running process and the cache file's bytes before it."""
    fake, tmp, env, ids = setup
    assert cli(tmp, env, "Photos").returncode == 0
    before = (tmp / "log" / "cache_Photos.json").read_bytes()
    for asset_id in ids:
        fake.touch(asset_id, "2026-09-01T00:00:00.000Z")
    return start_slow_run(fake, tmp, env), before  # every request is slow: the run is mid-way


def test_killed_run_keeps_the_old_cache_and_the_next_run_completes(setup):
    fake, tmp, env, _ids = setup
    proc, before = run_to_interrupt(setup)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before
    fake.latency = 0
    run = cli(tmp, env, "Photos")
    assert run.returncode == 0 and "12 updated" in run.stdout


def test_a_read_only_cache_folder_is_refused_before_any_work(setup):
    fake, tmp, env, _ids = setup
    # root writes anywhere chmod allows: /sys refuses new files even to root
    folder = "/sys/kernel" if os.geteuid() == 0 else str(tmp / "ro")
    if folder != "/sys/kernel":
        os.mkdir(folder, 0o555)
    run = cli(tmp, env, "Photos", f"--cache={folder}/cache.json")
    assert run.returncode == 2, run.stderr
    assert f"cannot write in {folder}" in run.stderr and "give --cache=FILE" in run.stderr
    assert "in use by another" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not any(path.startswith("/api/search") for _method, path, _body in fake.requests)


@pytest.mark.parametrize(
    "content,message",
    [
        pytest.param('{"name": "not ours"}', "not an immich-sync cache file", id="foreign"),
        pytest.param('{"version": 1, "assets": {"a": ', "corrupt or truncated", id="truncated"),
    ],
)
def test_a_refused_file_gets_no_lock_file_and_the_message_says_what_to_do(setup, content, message):
    _fake, tmp, env, _ids = setup
    path = tmp / "other.json"
    path.write_text(content)
    run = cli(tmp, env, "Photos", f"--cache={path}")
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "left as it is" in run.stderr and "--cache=FILE" in run.stderr
    assert path.read_text() == content and sorted(p.name for p in tmp.iterdir() if p.name.startswith("other")) == [
        "other.json"
    ]


def test_a_plain_http_server_spoken_to_with_https_gets_the_right_hint(setup):
    fake, tmp, env, _ids = setup
    run = cli(tmp, {**env, "IMMICH_INSTANCE_URL": fake.url.replace("http://", "https://")}, "Photos")
    assert run.returncode == 1, run.stderr
    assert "does not speak TLS" in run.stderr and f"try {fake.url}" in run.stderr, run.stderr
    assert "certificate" not in run.stderr


def test_url_option_login_file_and_verbose_says_where_each_came_from(setup):
    fake, tmp, env, _ids = setup
    home = tmp / "home"
    (home / ".config" / "immich").mkdir(parents=True)
    (home / ".config" / "immich" / "auth.yml").write_text(f"url: {fake.url}/api\nkey: {fake.api_key}\n")
    bare = {k: v for k, v in env.items() if not k.startswith("IMMICH_")}
    run = cli(tmp, {**bare, "HOME": str(home), "XDG_CONFIG_HOME": ""}, "Photos", "-v")
    assert run.returncode == 0, run.stderr
    login = str(home / ".config" / "immich" / "auth.yml")
    assert f"server URL from {login}; API key from {login}" in run.stderr
    assert fake.api_key not in run.stderr + run.stdout
    run = cli(tmp, {**bare, "IMMICH_API_KEY": fake.api_key}, "Photos", f"--url={fake.url}", "-v", "--insecure")
    assert run.returncode == 0, run.stderr
    assert "server URL from --url; API key from IMMICH_API_KEY in the environment" in run.stderr


def test_album_by_name_and_names_shared_by_two_albums(setup):
    fake, tmp, env, ids = setup
    run = cli(tmp, env, "Photos", "--album=Trip")
    assert run.returncode == 0, run.stderr
    assert sorted(cache_of(tmp)["assets"]) == sorted(ids[:2])
    twin = fake.add_album("Trip", ids[5:6])
    before = (tmp / "log" / "cache_Photos.json").read_bytes()
    run = cli(tmp, env, "Photos", "--album=Trip")
    assert run.returncode == 2 and "2 albums are named 'Trip'" in run.stderr and twin.id in run.stderr, run.stderr
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before


def test_log_dir_and_keep_logs(setup):
    _fake, tmp, env, _ids = setup
    for _ in range(3):
        assert cli(tmp, env, "Photos", "--log-dir=logs", "--keep-logs=2").returncode == 0
    logs = sorted((tmp / "logs").glob("immich-cache_*.log"))
    assert len(logs) == 2 and not list((tmp / "log").glob("immich-cache_*.log"))
    run = cli(tmp, env, "Photos", "--log-dir=logs", "--keep-logs=2")
    assert f"log:        {tmp / 'logs'}" in run.stdout


def test_two_runs_at_once_the_second_is_refused(setup):
    fake, tmp, env, _ids = setup
    first = start_slow_run(fake, tmp, env, latency=0.3, until="/api/server/ping")  # holds the lock
    second = cli(tmp, env, "Photos")
    first.communicate(timeout=60)
    assert second.returncode == 1 and "in use by another immich-cache run" in second.stderr
    assert first.returncode == 0


def test_find_command(setup):
    _fake, tmp, env, ids = setup
    assert cli(tmp, env, "Photos").returncode == 0
    target = tmp / "Photos" / "2020" / "IMG_0003.JPG"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from immich_sync.entrypoints.find_cli import run; run()",
            "--target=Photos",
            f"--path={target}",
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert [n["id"] for n in found] == [ids[3]] and found[0]["match"]["path"] == str(target)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from immich_sync.entrypoints.find_cli import run; run()",
            "--target=Photos",
            "--album=trip",
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
    )
    assert sorted(n["id"] for n in json.loads(run.stdout)) == sorted(ids[:2])


def test_help_and_version():
    run = subprocess.run([sys.executable, "-m", "immich_sync", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--after=ISO" in run.stdout and "Examples:" in run.stdout
    run = subprocess.run([sys.executable, "-m", "immich_sync", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("immich-cache ")


def test_ctrl_c_stops_cleanly_and_keeps_the_cache(setup):
    _fake, tmp, _env, _ids = setup
    proc, before = run_to_interrupt(setup)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before
    # a run stopped before two minutes of matching kept no checkpoint, and says so
    assert "no checkpoint was kept" in err and not (tmp / "log" / "cache_Photos.json.checkpoint").exists()


def test_sigterm_ends_as_cleanly_as_ctrl_c_and_names_the_checkpoint_that_exists(setup):
    """A checkpoint from an earlier interrupted run is there: the message names it."""
    fake, tmp, env, _ids = setup
    proc, before = run_to_interrupt(setup)
    checkpoint = tmp / "log" / "cache_Photos.json.checkpoint"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "terminated" in err, err
    assert "Traceback" not in err and "leaked" not in err and "resource_tracker" not in err, err
    assert (tmp / "log" / "cache_Photos.json").read_bytes() == before
    assert "no checkpoint was kept" in err
    checkpoint.write_bytes(before)  # as an earlier interrupted run leaves it
    proc = start_slow_run(fake, tmp, env)  # resumes from it, and is stopped again
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and f"kept in the checkpoint {checkpoint} and the next run continues" in err, err


def test_the_readmes_log_example_has_the_shape_of_a_real_log(setup):
    """README "The log" shows lines copied from a run: each has the keys, in the order, of the
    same kind of line in a run made now."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("### The log", 1)[1].split("```\n", 2)[1]
    shown = [json.loads(line) for line in block.strip().splitlines()]
    _fake, tmp, env, _ids = setup
    (tmp / "Photos" / "2021" / "IMG_0001.JPG").unlink()  # one not found, as in the example
    assert cli(tmp, env, "Photos").returncode == 0
    (log,) = (tmp / "log").glob("immich-cache_*.log")
    real = [json.loads(line) for line in log.read_text().splitlines()]

    def kind(line):
        return (line["level"], line.get("event"), line.get("status"), "message" in line)

    for example in shown:
        twin = next(line for line in real if kind(line) == kind(example))
        assert list(twin) == list(example), example
        if "summary" in example:
            assert list(twin["summary"]) == list(example["summary"])


def test_log_time_stamps_read_as_loggings_own():
    """The log's stamp (cached per second and per millisecond) is local ISO 8601 time whose
    milliseconds are logging's own `msecs`, for times in the same and in following milliseconds."""
    import logging
    import time

    from immich_sync.audit import SecondFormatter

    ours = SecondFormatter()
    start = 1_796_000_000.0
    for created in [start + k * 0.00037 for k in range(5000)] + [start + 59.9996, start + 60.0, start + 3600.5]:
        record = logging.makeLogRecord({"created": created})
        record.msecs = int((created - int(created)) * 1000)
        local = time.localtime(int(created))
        offset = time.strftime("%z", local)
        expected = f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{int(record.msecs):03d}{offset[:3]}:{offset[3:]}"
        assert ours.stamp(created) == expected, created
        assert datetime.fromisoformat(expected).timestamp() == pytest.approx(created, abs=0.001)


def test_the_fake_server_started_by_hand_serves_a_run_as_the_readme_says(tmp_path):
    """README: start the bundled fake server by hand, export what it prints, run immich-cache."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "immich_sync.testing.fake_immich", f"--port={port}", "--assets=40", "--library=Pics"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(6)]
        assert lines[0].startswith(f"fake Immich v3.1.0 at http://127.0.0.1:{port} with 40 assets; photo folder ")
        exports = dict(line.strip().removeprefix("export ").split("=", 1) for line in lines if "export " in line)
        assert exports["IMMICH_INSTANCE_URL"] == f"http://127.0.0.1:{port}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("IMMICH_")}, **exports}
        run = cli(tmp_path, env, "Pics")
        assert run.returncode == 0, run.stderr
        assert "40 assets from Immich v3.1.0" in run.stdout and "found " in run.stdout
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)


def test_the_demo_keeps_its_folder_when_asked(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "immich_sync.demo", "60", "--keep"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    kept = run.stdout.split("demo: kept ", 1)[1].split(" ", 1)[0]
    try:
        assert os.path.isfile(os.path.join(kept, "log", "cache_Photos.json"))
        log_line = next(line for line in run.stdout.splitlines() if line.strip().startswith("log:"))
        assert os.path.isfile(log_line.split(None, 1)[1])  # the log the summary names is there
    finally:
        import shutil

        shutil.rmtree(kept)
    gone = subprocess.run([sys.executable, "-m", "immich_sync.demo", "30"], capture_output=True, text=True, timeout=120)
    assert gone.returncode == 0 and "demo: kept" not in gone.stdout
    folder = gone.stdout.split("photo folder ", 1)[1].split()[0]
    assert not os.path.exists(folder)
