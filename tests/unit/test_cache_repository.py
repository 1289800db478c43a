"""The cache repository: one contract for the in-memory fake and the JSON file; the file's refusals."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import real_assets
from fakes import InMemoryCacheRepository
from immich_sync import load_cache, open_cache, save_cache
from immich_sync.adapters.json_repository import JsonCacheRepository
from immich_sync.domain.cache import ImmichCache
from immich_sync.domain.match import Check, Confidence, DateEvidence, Evidence, MatchResult
from immich_sync.errors import CacheFileError, CacheLocked

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "cache.schema.json").read_text())


def sample_cache() -> ImmichCache:
    cache = ImmichCache()
    for _, body in real_assets()[:40]:
        cache.upsert(body, T0)
    ids = cache.ids()
    cache.set_match(
        ids[0],
        MatchResult.found(
            "/lib/a.jpg",
            "filename+exif_date",
            Confidence.HIGH,
            Evidence(name=True, date=DateEvidence.EQUAL, size=Check.EQUAL),
            matched_at=T0,
            file_size=123,
        ),
    )
    cache.set_match(ids[1], MatchResult.ambiguous(("/lib/1/b.jpg", "/lib/2/b.jpg"), "filename", Evidence()))
    cache.set_match(ids[2], MatchResult.not_found(matched_at=T0))
    cache.replace_albums({"al": "Italy Trip"}, {"al": ids[:3]})
    cache.replace_tags({"t": "Travel/Paris"}, {"t": ids[1:2]})
    cache.mark_gone(ids[3], T0)
    cache.target, cache.server = "/lib", {"url": "http://x", "version": "3.1.0", "userId": "u"}
    cache.add_run({"at": "2026-11-24T12:00:00.000Z", "fetched": 40})
    return cache


def same(a: ImmichCache, b: ImmichCache) -> None:
    assert a.ids() == b.ids()
    for node in a:
        other = b.get(node.id)
        assert other.asset_raw == node.asset_raw
        assert other.match == node.match
        assert (other.albums, other.tags, other.gone_since, other.cached_at) == (
            node.albums,
            node.tags,
            node.gone_since,
            node.cached_at,
        )
    assert (a.albums, a.tags, a.target, a.server, a.runs) == (b.albums, b.tags, b.target, b.server, b.runs)


@pytest.fixture(params=["memory", "json"])
def repo(request, tmp_path):
    return InMemoryCacheRepository() if request.param == "memory" else JsonCacheRepository(tmp_path / "c.json")


class TestRepositoryContract:
    def test_empty_when_nothing_saved(self, repo):
        assert len(repo.load()) == 0

    def test_save_then_load_round_trips(self, repo):
        cache = sample_cache()
        repo.save(cache)
        same(cache, repo.load())

    def test_checkpoint_is_separate_and_dropped(self, repo):
        repo.save(ImmichCache())
        repo.save_checkpoint(sample_cache())
        assert len(repo.load()) == 0
        assert len(repo.load_checkpoint()) == len(sample_cache()) > 0
        repo.drop_checkpoint()
        assert repo.load_checkpoint() is None

    def test_lock_refuses_a_second_holder(self, repo):
        with repo.lock(), pytest.raises(CacheLocked), repo.lock():
            pass
        with repo.lock():  # released
            pass


def test_real_assets_round_trip_unchanged(tmp_path):
    cache = ImmichCache()
    bodies = {}
    for _, body in real_assets():
        cache.upsert(body, T0)
        bodies.setdefault(body["id"], body)
    save_cache(cache, tmp_path / "c.json")
    doc = json.loads((tmp_path / "c.json").read_text())
    for asset_id, node in doc["assets"].items():
        assert node["asset"] == cache.get(asset_id).asset_raw  # no key renamed, dropped or added


def test_saved_file_validates_against_the_documented_schema(tmp_path):
    save_cache(sample_cache(), tmp_path / "c.json")
    doc = json.loads((tmp_path / "c.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["version"] == 1
    found = [n["match"] for n in doc["assets"].values() if n["match"] and n["match"]["status"] == "found"]
    assert found and all(m["path"].startswith("/") for m in found)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.uuids().map(str),
                "originalFileName": st.text(min_size=1),
                "updatedAt": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
                "extra": st.recursive(
                    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8,
                ),
            }
        ),
        max_size=8,
    ),
    st.sampled_from(["found", "ambiguous", "none"]),
)
def test_save_load_round_trips_exactly(tmp_path, bodies, kind):
    cache = ImmichCache()
    for body in bodies:
        cache.upsert(body, T0)
        if kind == "found":
            cache.set_match(
                body["id"],
                MatchResult.found(
                    f"/lib/{body['id']}.jpg", "filename", Confidence.LOW, Evidence(name=True), matched_at=T0
                ),
            )
        elif kind == "ambiguous":
            cache.set_match(body["id"], MatchResult.ambiguous(("/a", "/b"), "filename+size", Evidence()))
    path = tmp_path / "rt.json"
    save_cache(cache, path)
    same(cache, load_cache(path))


@pytest.mark.parametrize(
    "content,message",
    [
        pytest.param(b"{not json", "not a valid JSON cache file", id="corrupt"),
        pytest.param(
            b'{"version": 1, "assets": {"a": {"asset": {"id": "a"}, "match": {"status": "found"}}}',
            "not a valid JSON",
            id="truncated",
        ),
        pytest.param(b"[1, 2, 3]", "not an immich-sync cache file", id="foreign-list"),
        pytest.param(b'{"name": "package.json"}', "not an immich-sync cache file", id="foreign-object"),
        pytest.param(b'{"version": 2, "assets": {}}', "written by a newer immich-sync", id="newer-version"),
        pytest.param(
            b'{"version": 1, "assets": {"a": {"match": null}}}', "damaged cache file", id="node-without-asset"
        ),
        pytest.param(
            b'{"version": 1, "assets": {"a": {"asset": {"id": "a"}, "match": {"status": "maybe"}}}}',
            "damaged cache file",
            id="bad-status",
        ),
    ],
)
def test_refuses_a_file_it_cannot_read_and_leaves_it_untouched(tmp_path, content, message):
    path = tmp_path / "cache.json"
    path.write_bytes(content)
    with pytest.raises(CacheFileError) as raised, open_cache(path):
        pass
    text = str(raised.value)
    assert message in text and str(path) in text and "\n" not in text
    assert path.read_bytes() == content


def test_creates_the_parent_folder(tmp_path):
    path = tmp_path / "log" / "deeper" / "cache.json"
    save_cache(sample_cache(), path)
    assert len(load_cache(path)) == len(sample_cache())


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "cache.json"
    save_cache(sample_cache(), path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        save_cache(ImmichCache(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.json"]


def _hold_lock(path, ready, release):
    with JsonCacheRepository(path).lock():
        ready.set()
        release.wait(10)


def test_lock_held_by_another_process_is_refused_at_once(tmp_path):
    path = tmp_path / "cache.json"
    save_cache(sample_cache(), path)
    before = path.read_bytes()
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(CacheLocked) as raised, open_cache(path):
            pass
        assert "in use by another immich-cache run" in str(raised.value)
    finally:
        release.set()
        holder.join(10)
    assert path.read_bytes() == before


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    path = tmp_path / "cache.json"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    assert ready.wait(10)
    holder.kill()
    holder.join(10)
    with open_cache(path) as cache:  # no error: the OS dropped the dead process's lock
        cache.upsert({"id": "a", "updatedAt": "2026-01-01T00:00:00Z"}, T0)
    assert load_cache(path).ids() == ["a"]


def test_one_line_per_asset_and_untouched_nodes_written_back_as_read(tmp_path):
    path = tmp_path / "cache.json"
    save_cache(sample_cache(), path)
    first = path.read_bytes()
    json.loads(first)  # plain JSON for any other tool
    node_lines = [line for line in first.split(b"\n") if line.startswith(b'    "') and b'"asset":' in line]
    assert len(node_lines) == len(sample_cache())
    cache = load_cache(path)
    save_cache(cache, path)  # nothing changed: every node's line is the one read
    second = path.read_bytes()
    assert [line for line in second.split(b"\n") if b'"asset":' in line] == node_lines
    some = cache.ids()[5]
    cache.mark_gone(some, T0)
    save_cache(cache, path)
    changed = [line for line in path.read_bytes().split(b"\n") if b'"asset":' in line]
    assert sum(a != b for a, b in zip(changed, node_lines, strict=False)) == 1
    again = load_cache(path)
    assert again.get(some).gone_since == T0
    assert again.get(some).asset_raw == sample_cache().get(some).asset_raw  # the asset survived the change


def test_every_kind_of_change_after_loading_keeps_the_asset(tmp_path):
    path = tmp_path / "cache.json"
    original = sample_cache()
    save_cache(original, path)
    cache = load_cache(path)
    ids = cache.ids()
    cache.mark_gone(ids[4], T0)
    cache.upsert(cache.get(ids[4]).asset_raw, T0)  # seen again
    cache.set_match(ids[5], MatchResult.not_found(matched_at=T0))
    cache.replace_albums({"b": "New"}, {"b": ids[6:9]})
    cache.replace_tags({}, {})
    save_cache(cache, path)
    final = load_cache(path)
    for asset_id in ids:
        assert final.get(asset_id).asset_raw == original.get(asset_id).asset_raw


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_a_truncated_file_is_refused_and_kept(tmp_path, cut):
    path = tmp_path / "cache.json"
    save_cache(sample_cache(), path)
    data = path.read_bytes()[: int(len(path.read_bytes()) * cut)]
    path.write_bytes(data)
    with pytest.raises(CacheFileError) as raised, open_cache(path):
        pass
    assert str(path) in str(raised.value)
    assert path.read_bytes() == data


def test_streamed_file_is_byte_for_byte_orjsons_indented_document():
    import orjson

    from immich_sync.adapters.json_repository import _header, encode_cache_bytes, encode_node

    cache = sample_cache()
    whole = orjson.dumps(
        {**_header(cache, T0), "assets": {n.id: orjson.Fragment(orjson.dumps(encode_node(n))) for n in cache}},
        option=orjson.OPT_INDENT_2,
    )
    assert encode_cache_bytes(cache, T0) == whole
    assert encode_cache_bytes(ImmichCache(), T0).endswith(b'"assets": {}\n}')


def test_a_packed_node_holds_its_asset_as_bytes_and_is_saved_as_one_never_packed(tmp_path):
    repo = JsonCacheRepository(tmp_path / "packed.json", now=lambda: T0)
    parsed_repo = JsonCacheRepository(tmp_path / "parsed.json", now=lambda: T0)
    packed, parsed = sample_cache(), sample_cache()
    raws = {node.id: json.loads(json.dumps(node.asset_raw)) for node in packed}
    first = next(iter(packed))
    assert first.asset.id == first.id  # a typed view, built before the packing, is dropped with the dict
    for node in packed:
        repo.pack(node)
    assert all(node.untouched_asset_source() is not None for node in packed)  # the dict is dropped
    assert not any(n.untouched_asset_source() for n in parsed)
    assert all(node.stored is None for node in packed)  # never written back as the packed bytes
    assert first._asset is None
    repo.pack(first)  # packing again changes nothing
    assert {node.id: node.asset_raw for node in packed} == raws  # read back from the bytes
    for node in packed:  # packing a node whose asset was read back again holds it as bytes again
        repo.pack(node)
    repo.save(packed)
    parsed_repo.save(parsed)
    assert (tmp_path / "packed.json").read_bytes() == (tmp_path / "parsed.json").read_bytes()
    same(repo.load(), parsed)


def test_a_packed_node_changed_beside_its_asset_is_saved_the_same_without_decoding_the_asset(tmp_path):
    packed_repo = JsonCacheRepository(tmp_path / "packed.json", now=lambda: T0)
    parsed_repo = JsonCacheRepository(tmp_path / "parsed.json", now=lambda: T0)
    packed, parsed = sample_cache(), sample_cache()
    for repo, cache in ((packed_repo, packed), (parsed_repo, parsed)):
        for node in cache:
            if cache is packed:
                repo.pack(node)
        ids = cache.ids()  # as a first run's membership, which arrives after the matching
        cache.replace_albums({"big": "Everything"}, {"big": ids})
        cache.replace_tags({"t": "People/Ann", "u": "Places"}, {"t": ids[::2], "u": ids[1:5]})
        cache.set_match(ids[7], MatchResult.not_found(matched_at=T0))
        cache.mark_gone(ids[8], T0)
    assert all(node.stored is None and node.untouched_asset_source() is not None for node in packed)
    packed_repo.save(packed)
    parsed_repo.save(parsed)
    assert (tmp_path / "packed.json").read_bytes() == (tmp_path / "parsed.json").read_bytes()
    assert all(node.untouched_asset_source() is not None for node in packed)  # no asset was decoded
    same(packed_repo.load(), parsed)


def _old_layout(line: bytes) -> bytes:
    """A node line as the first release wrote it: asset first, no keys."""
    head, _, node = line.partition(b": ")
    trailer = b"," if node.endswith(b",") else b""
    doc = json.loads(node.rstrip(b","))
    doc.pop("keys")
    old = {"asset": doc.pop("asset"), **doc}
    return head + b": " + json.dumps(old, separators=(",", ":"), ensure_ascii=False).encode() + trailer


def test_nodes_load_from_their_keys_without_parsing_assets_and_old_layout_files_load_the_same(tmp_path, monkeypatch):
    import immich_sync.adapters.json_repository as repository

    original = sample_cache()
    original.set_match(
        original.ids()[4],
        MatchResult.found(
            '/lib/x,"asset":{y.jpg', "filename", Confidence.LOW, Evidence(name=True), matched_at=T0, file_size=1
        ),
    )
    new_path, old_path = tmp_path / "new.json", tmp_path / "old.json"
    save_cache(original, new_path)
    lines = new_path.read_bytes().split(b"\n")
    node_lines = [line for line in lines if line.startswith(b'    "') and b'"asset":' in line]
    assert all(line.split(b": ", 1)[1].startswith(b'{"keys":{"name":') for line in node_lines)
    assert all(line.rstrip(b",").endswith(b"}}") for line in node_lines)
    old_path.write_bytes(b"\n".join(_old_layout(line) if line in node_lines else line for line in lines))
    json.loads(old_path.read_bytes())

    parsed_assets = []
    real = repository._asset_of
    monkeypatch.setattr(repository, "_asset_of", lambda stored: parsed_assets.append(1) or real(stored))
    from_keys = load_cache(new_path)
    assert parsed_assets == []  # the index keys came from `keys`
    from_assets = load_cache(old_path)
    same(from_keys, original)
    same(from_assets, original)
    for node in original:
        for loaded in (from_keys.get(node.id), from_assets.get(node.id)):
            assert (loaded.name_key, loaded.day, loaded.updated_text) == (node.name_key, node.day, node.updated_text)
    some = original.get(original.ids()[7]).asset_raw
    assert from_keys.find_by_name(some["originalFileName"]) == from_assets.find_by_name(some["originalFileName"])
    assert from_keys.get(original.ids()[4]).match.path == '/lib/x,"asset":{y.jpg'


def test_a_loaded_node_keeps_a_summary_of_its_match_and_reads_the_match_again_from_its_bytes(tmp_path):
    """A loaded node does not hold its parsed match (two dicts, a list and their strings): its
    summary serves indexes and counts, and the match is read again from the node's bytes when it
    is decoded or the node is encoded again, giving what the file holds."""
    from immich_sync.adapters.json_repository import StoredJson

    original = sample_cache()
    ids = original.ids()
    original.set_match(ids[3], MatchResult.not_found(matched_at=T0))
    for n in (5, 6):
        found = MatchResult.found(f"/lib/{n}.jpg", "filename", Confidence.HIGH, Evidence(name=True), matched_at=T0)
        original.set_match(ids[n], found)
    path = tmp_path / "cache.json"
    save_cache(original, path)
    loaded = load_cache(path)
    for asset_id in ids:
        node, before = loaded.get(asset_id), original.get(asset_id)
        stored = node.stored
        assert isinstance(stored, StoredJson) and stored._doc is None  # the parsed match is not kept
        assert stored.match_summary() == before.match_summary()
        assert node.found_path() == before.found_path()
    assert loaded.get(ids[3]).stored.match_summary().status == "not_found"
    summaries = [loaded.get(i).stored.match_summary() for i in ids if loaded.get(i).stored.match_summary()]
    found = [m for m in summaries if m.status == "found" and m.method == "filename"]
    assert len(found) >= 2 and found[0].method == found[1].method
    assert found[0].method is found[1].method and found[0].status is found[1].status  # one text object each
    loaded.replace_tags({"t": "People/Ann"}, {"t": ids[::3]})  # re-encoded with undecoded matches
    save_cache(loaded, path)
    again = load_cache(path)
    for asset_id in ids:
        assert again.get(asset_id).match == original.get(asset_id).match
        assert again.get(asset_id).tags == (("t",) if asset_id in ids[::3] else ())


def test_loading_and_saving_without_decoding_a_match_does_not_import_cattrs(tmp_path):
    """cattrs reads a stored match back into a MatchResult, on first use only: a run that decodes
    none (a first run, an unchanged run, a script's lookups) starts ~40 ms sooner."""
    import subprocess
    import sys

    cache = ImmichCache()
    cache.upsert({"id": "a", "originalFileName": "IMG_0001.JPG", "updatedAt": "2026-01-01T00:00:00Z"}, T0)
    cache.set_match("a", MatchResult.not_found(matched_at=T0))
    path = tmp_path / "cache.json"
    JsonCacheRepository(path).save(cache)
    script = (
        "import sys\n"
        "from immich_sync.adapters.json_repository import JsonCacheRepository\n"
        "import immich_sync.entrypoints.cache_cli\n"
        "repo = JsonCacheRepository(sys.argv[1])\n"
        "cache = repo.load()\n"
        "node = next(iter(cache))\n"
        "repo.save(cache)\n"
        "before = 'cattrs' in sys.modules\n"
        "print(before, node.match.status.value, 'cattrs' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["False", "not_found", "True"], run.stderr
