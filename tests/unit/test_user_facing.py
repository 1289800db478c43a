"""Issue 15 (in part): the words a user reads say what they count."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections import Counter

import pytest

from immich_sync import load_cache
from immich_sync.domain.match import Confidence, Status
from immich_sync.entrypoints.cache_cli import summary_text
from immich_sync.errors import CacheFileError
from immich_sync.services.extract import ExtractResult


def test_the_summary_counts_decisions_and_lists_methods_of_found_assets_only():
    result = ExtractResult(
        fetched=10,
        added=10,
        matched=10,
        by_status=Counter({"found": 8, "ambiguous": 1, "not_found": 1}),
        by_method=Counter({"filename": 7, "filename+exif_date": 1}),
        by_confidence=Counter({"high": 8}),
        files_scanned=1,
        albums=1,
        tags=2,
        saved=True,
        server_version="3.1.0",
    )
    lines = summary_text(result, "/c.json").splitlines()
    assert lines[0].startswith("immich-cache: 10 assets from Immich v3.1.0 in ")
    assert (
        "  matches:    ambiguous 1, found 8, not found 1 (10 decided this run, 0 of them unchanged assets "
        "matched again; 0 kept)" in lines
    )
    assert "  methods:    filename 7, filename+exif_date 1 (found assets)" in lines
    assert "  library:    1 file scanned; 1 album, 2 tags" in lines
    assert "  saved to:   /c.json" in lines
    assert all(line[:14].rstrip().endswith(":") and line[14] != " " for line in lines[1:])  # aligned


def test_load_cache_of_a_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(CacheFileError, match=r"missing\.json: no cache file there"):
        load_cache(missing)
    assert len(load_cache(missing, missing_ok=True)) == 0 and not missing.exists()


def test_statuses_and_confidences_print_as_their_words():
    assert f"{Status.FOUND} {Confidence.HIGH}" == "found high" and str(Confidence.EXACT) == "exact"
    assert f"{Confidence.HIGH:d}" == "3" and Confidence.HIGH > Confidence.MEDIUM


# --- 2. logs a tool can read: unique names, pruning
def test_two_runs_of_the_same_second_never_share_a_log_file(tmp_path):
    from datetime import datetime

    from immich_sync.audit import new_log_file

    moment = datetime(2026, 12, 1, 13, 53, 18)
    paths = [new_log_file(str(tmp_path), "immich-cache", moment) for _ in range(3)]
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "immich-cache_20261201-135318.log",
        "immich-cache_20261201-135318-2.log",
        "immich-cache_20261201-135318-3.log",
    ]


def test_old_logs_are_pruned_to_the_newest_ones_and_nothing_else_is_touched(tmp_path):
    from immich_sync.audit import prune_logs

    names = [f"immich-cache_202612{day:02d}-120000.log" for day in range(1, 31)]
    names += ["immich-cache_20261231-235959.log", "immich-cache_20261231-235959-2.log"]
    for name in [*names, "notes.txt", "immich-cache-find_20260101-000000.log", "cache_Photos.json"]:
        (tmp_path / name).write_text("x")
    deleted = prune_logs(str(tmp_path), "immich-cache", keep=30)
    assert sorted(p.rsplit("/", 1)[1] for p in deleted) == names[:2]  # the two oldest
    left = {p.name for p in tmp_path.iterdir()}
    assert set(names[2:]) <= left and {"notes.txt", "cache_Photos.json"} <= left
    assert prune_logs(str(tmp_path), "immich-cache", keep=0) == []  # 0 keeps every one


def test_the_log_gathers_audit_lines_but_writes_warnings_and_old_lines_out_at_once(tmp_path, monkeypatch):
    """AUDIT lines wait in a large buffer (a write of a small one gives the GIL away ~1,800 times
    a run), a warning is on disk at once, and a killed run's log lacks at most LOG_FLUSH_SECONDS."""
    import logging
    from pathlib import Path

    from immich_sync import audit

    path, write = audit.setup_logging(False, True, str(tmp_path), keep=0)
    try:
        line = audit.audit_line("id", "IMG_0001.JPG", None, "added")
        for _ in range(2000):  # ~200 KB: the default 8 KiB buffer would have written most of it
            write(line)
        assert os.path.getsize(path) == 0
        logging.getLogger("immich_sync.test").warning("a warning")
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2001 and json.loads(lines[-1])["message"] == "a warning"
        monkeypatch.setattr(audit, "LOG_FLUSH_SECONDS", -1.0)  # as if the last write out were old
        write(line)
        assert len(Path(path).read_text(encoding="utf-8").splitlines()) == 2002
    finally:
        audit.close_logging()


def test_an_audit_line_escapes_what_json_needs_and_keeps_unicode():
    from immich_sync.audit import audit_line
    from immich_sync.domain.match import MatchSummary

    match = MatchSummary(Status.FOUND, 'a "q"\\b/caf\u00e9\n.jpg', "filename", "high", 1, 1)
    line = json.loads("{" + audit_line("id-1", 'caf\u00e9 "1".jpg', match, "added") + "}")
    assert line == {
        "asset": "id-1",
        "name": 'caf\u00e9 "1".jpg',
        "status": "found",
        "path": 'a "q"\\b/caf\u00e9\n.jpg',
        "method": "filename",
        "confidence": "high",
        "outcome": "added",
    }
    unmatched = json.loads("{" + audit_line("id-2", "x.jpg", None, "added") + "}")
    assert unmatched["status"] == "unmatched"


# --- 7. the habits of Immich users: where the URL and the key come from
@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    (home / ".config" / "immich").mkdir(parents=True)
    return home


def login(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "auth.yml").write_text(text)
    return folder / "auth.yml"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("url: https://photos.example/api\nkey: from-login\n", id="current-cli"),
        pytest.param("instanceUrl: https://photos.example/api\napiKey: from-login\n", id="older-cli"),
        pytest.param("url: 'https://photos.example/api'\nkey: \"from-login\"\n", id="quoted"),
    ],
)
def test_the_official_clis_login_file_is_the_last_fallback(config_home, text):
    from immich_sync.adapters.immich_config import ImmichConfig

    path = login(config_home / ".config" / "immich", text)
    config = ImmichConfig.from_env(environ={"HOME": str(config_home)})
    assert (config.url, config.api_key) == ("https://photos.example/api", "from-login")
    assert config.url_source == config.key_source == str(path)


def test_the_login_file_under_xdg_config_home_and_immich_config_dir(config_home, tmp_path):
    from immich_sync.adapters.immich_config import ImmichConfig

    xdg = login(tmp_path / "xdg" / "immich", "url: http://xdg\nkey: k-xdg\n")
    environ = {"HOME": str(config_home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert ImmichConfig.from_env(environ=environ).key_source == str(xdg)
    own = login(tmp_path / "own", "url: http://own\nkey: k-own\n")
    config = ImmichConfig.from_env(environ={**environ, "IMMICH_CONFIG_DIR": str(tmp_path / "own")})
    assert (config.url, config.api_key, config.key_source) == ("http://own", "k-own", str(own))


def test_the_environment_and_env_file_win_over_the_login_file_and_url_wins_over_all(config_home):
    from immich_sync.adapters.immich_config import ImmichConfig

    login(config_home / ".config" / "immich", "url: https://photos.example/api\nkey: from-login\n")
    (config_home.parent / ".env").write_text("IMMICH_API_KEY=from-dotenv\n")
    environ = {"HOME": str(config_home)}
    config = ImmichConfig.from_env(environ=environ)
    assert config.api_key == "from-dotenv" and config.key_source.startswith("IMMICH_API_KEY in ")
    assert config.url_source.endswith("auth.yml")  # the URL still from the login file
    environ["IMMICH_API_KEY"] = "from-env"
    assert ImmichConfig.from_env(environ=environ).key_source == "IMMICH_API_KEY in the environment"
    environ["IMMICH_URL"] = "http://alias"
    assert ImmichConfig.from_env(environ=environ).url_source == "IMMICH_URL in the environment"
    config = ImmichConfig.from_env(environ=environ, url="http://given", insecure=True)
    assert (config.url, config.url_source, config.verify) == ("http://given", "--url", False)


def test_the_login_files_key_is_never_sent_to_another_server(config_home):
    from immich_sync.adapters.immich_config import ImmichConfig
    from immich_sync.errors import BadInput

    login(config_home / ".config" / "immich", "url: https://photos.example/api\nkey: from-login\n")
    same = ImmichConfig.from_env(environ={"HOME": str(config_home)}, url="HTTPS://Photos.example/")
    assert same.api_key == "from-login"  # the same server, spelled otherwise
    with pytest.raises(BadInput, match="holds a key for another server") as raised:
        ImmichConfig.from_env(environ={"HOME": str(config_home)}, url="https://other.example")
    assert "from-login" not in str(raised.value)


def test_a_key_file_is_read_and_a_bad_one_is_named(config_home, tmp_path):
    from immich_sync.adapters.immich_config import ImmichConfig
    from immich_sync.errors import BadInput

    (tmp_path / "key.txt").write_text("  from-file\n")
    environ = {"HOME": str(config_home), "IMMICH_URL": "http://x", "IMMICH_API_KEY_FILE": str(tmp_path / "key.txt")}
    config = ImmichConfig.from_env(environ=environ)
    assert (config.api_key, config.key_source) == ("from-file", str(tmp_path / "key.txt"))
    with pytest.raises(BadInput, match=r"names .*missing.txt, which cannot be read"):
        ImmichConfig.from_env(environ={**environ, "IMMICH_API_KEY_FILE": str(tmp_path / "missing.txt")})
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(BadInput, match="which is empty"):
        ImmichConfig.from_env(environ={**environ, "IMMICH_API_KEY_FILE": str(tmp_path / "empty.txt")})


@pytest.mark.parametrize(
    "text,message",
    [
        pytest.param("url: [unclosed\n", "cannot read the Immich CLI's login file", id="not-yaml"),
        pytest.param("- a\n- b\n", "does not hold url: and key:", id="a-list"),
        pytest.param("url: http://x\n", "does not hold both url: and key:", id="no-key"),
    ],
)
def test_a_broken_login_file_is_named(config_home, text, message):
    from immich_sync.adapters.immich_config import ImmichConfig
    from immich_sync.errors import BadInput

    path = login(config_home / ".config" / "immich", text)
    with pytest.raises(BadInput, match=message) as raised:
        ImmichConfig.from_env(environ={"HOME": str(config_home)})
    assert str(path) in str(raised.value)


def test_without_any_source_the_error_names_every_place(config_home):
    from immich_sync.adapters.immich_config import ImmichConfig
    from immich_sync.errors import BadInput

    with pytest.raises(BadInput) as raised:
        ImmichConfig.from_env(environ={"HOME": str(config_home)})
    text = str(raised.value)
    assert "--url" in text and ".env" in text and "immich login" in text and "auth.yml" in text


# --- 4. a TLS error's hint fits its cause
@pytest.mark.parametrize(
    "cause,hint",
    [
        pytest.param("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", "try http://h:2283", id="plain"),
        pytest.param("[SSL] record layer failure (_ssl.c:1000)", "may serve plain HTTP", id="plain-openssl-3.2"),
        pytest.param(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
            "IMMICH_CA_BUNDLE",
            id="self-signed",
        ),
    ],
)
def test_a_tls_errors_hint_fits_its_cause(cause, hint):
    from immich_sync.adapters.immich_http import tls_problem

    text = tls_problem("https://h:2283/api/server/version", cause)
    assert hint in text
    assert ("certificate" in text) == ("certificate" in cause)


# --- 6. --album by name
def test_an_album_is_found_by_its_name_and_shared_names_are_refused_with_their_ids():
    from fakes import FakeSource
    from immich_sync.errors import BadInput
    from immich_sync.ports import Groups
    from immich_sync.services.extract import album_by_name

    names = {"a1": "Italy Trip", "a2": "Paris", "a3": "Paris", "a4": "Caf\u00e9"}
    source = FakeSource(albums=Groups(names, {"a2": frozenset({"x", "y"})}))
    assert album_by_name(source, "Italy Trip") == "a1"
    assert album_by_name(source, "italy trip") == "a1"  # any case when no album has it exactly
    assert album_by_name(source, "CAFE\u0301") == "a4"  # and any Unicode form
    with pytest.raises(BadInput, match=r"2 albums are named 'Paris': a2 \(2 assets\); a3 \(0 assets\); give --album"):
        album_by_name(source, "Paris")
    with pytest.raises(BadInput, match=r"no album named 'Italy' among the 4 albums .*'Italy Trip'"):
        album_by_name(source, "Italy")


# --- 3. progress from the first second
def test_progress_shows_a_slow_walk_and_a_slow_server_while_they_work():
    import io
    import threading
    import time
    from datetime import UTC, datetime

    from fakes import FakeLibrary, FakeSource, InMemoryCacheRepository
    from immich_sync.entrypoints.progress import LineProgress
    from immich_sync.services.extract import ExtractRequest, run_extract
    from immich_sync.testing.factory import make_asset

    taken = datetime(2024, 5, 1, 12, 0)
    lib = FakeLibrary()
    lib.add("2024/a.jpg", 100, taken)
    walk_started = threading.Event()

    class SlowWalk(FakeLibrary):
        def scan(self, root):
            walk_started.set()
            for n in range(1, 6):  # a network share: files counted as they come
                self.walked_files = n * 100
                time.sleep(0.12)
            return lib.scan(root)

    class SlowServer(FakeSource):
        def check(self):
            walk_started.wait(5)
            time.sleep(0.5)
            return super().check()

    slow_walk = SlowWalk(files=lib.files)
    asset = make_asset(owner_id="me", name="a.jpg", taken=taken, size=100, checksum="c")
    out = io.StringIO()
    progress = LineProgress(out, every=0.1, tick_every=0.02)
    run_extract(
        ExtractRequest(target="/lib"),
        SlowServer([asset]),
        InMemoryCacheRepository(),
        slow_walk,
        now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        progress=progress,
    )
    lines = out.getvalue().splitlines()
    assert any(line.startswith("immich-cache: connecting to the server: working (") for line in lines), lines
    walked = [int(line.split(": ")[2].split()[0]) for line in lines if "walking TARGET" in line]
    assert walked and walked == sorted(walked) and walked[-1] <= 500 and all(line.endswith(" s)") for line in lines)


# --- 4. a checkpoint once there are minutes of work to lose, the stages after the matching too
def test_a_checkpoint_is_kept_while_slow_album_and_tag_passes_finish(monkeypatch):
    import time
    from datetime import UTC, datetime

    from fakes import FakeLibrary, FakeSource, InMemoryCacheRepository
    from immich_sync.ports import Groups
    from immich_sync.services import extract
    from immich_sync.testing.factory import make_asset

    monkeypatch.setattr(extract, "WAIT_POLL", 0.05)
    taken = datetime(2024, 5, 1, 12, 0)
    lib = FakeLibrary()
    lib.add("2024/a.jpg", 100, taken)
    repo = InMemoryCacheRepository()
    seen_during_wait = []

    class SlowTags(FakeSource):
        def tags(self):
            time.sleep(0.6)  # a large library's tag pass: longer than the checkpoint period
            seen_during_wait.append(repo.checkpoints)
            return Groups({}, {})

    asset = make_asset(owner_id="me", name="a.jpg", taken=taken, size=100, checksum="c")
    request = extract.ExtractRequest(target="/lib", checkpoint_seconds=0.3)
    result = extract.run_extract(request, SlowTags([asset]), repo, lib, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    assert result.fetched == 1 and seen_during_wait == [1]  # kept while waiting, not only by the matching
    assert repo.checkpoint is None and repo.saves == 1  # and dropped once the run saved


def test_the_walk_in_a_reader_process_shares_its_count(tmp_path):
    from immich_sync.adapters.library_scan import WALK_COUNT_EVERY, LocalLibrary

    for n in range(WALK_COUNT_EVERY + 7):
        (tmp_path / f"f{n}.jpg").write_bytes(b"x")
    with LocalLibrary(readers=1) as library:
        assert library.walked() == 0
        index = library.scan(str(tmp_path))
        assert library.walked() == len(index) == WALK_COUNT_EVERY + 7
        assert library._walk_count is not None and library._walk_count.value == len(index)  # counted there


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc arena limit is glibc's")
def test_the_installed_command_limits_mallocs_arenas_unless_the_user_did():
    """`immich-cache` (its `run`) asks glibc for two malloc arenas, which a process can only
    tell by its RSS; a MALLOC_ARENA_MAX of the user's own is left alone."""
    probe = "from immich_sync.entrypoints.usage import limit_malloc_arenas as f; print(f())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    asked = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert asked.stdout.strip() == "True"
    env["MALLOC_ARENA_MAX"] = "8"
    left = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert left.stdout.strip() == "False"
