"""Issue 18: a re-run keeps album and tag membership exact while reading only what moved, over real
HTTP against the fake server, which moves updatedAt and album stamps as a real v3.1.0 does; and a
run with --full-membership writes the same cache."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import FakeLibrary
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import ImmichConnection
from immich_sync.adapters.json_repository import JsonCacheRepository
from immich_sync.services.extract import ExtractRequest, run_extract
from immich_sync.testing.factory import make_asset
from immich_sync.testing.fake_immich import FakeImmich

TAKEN = datetime(2024, 7, 14, 10, 0)


def world(n: int = 12):
    fake = FakeImmich((3, 1, 0)).start()
    ids = [
        fake.add_asset(
            make_asset(owner_id=fake.user_id, name=f"IMG_{i}.JPG", taken=TAKEN, size=100 + i, checksum=f"c{i}")
        )["id"]
        for i in range(n)
    ]
    travel = fake.add_tag("Travel", ids[:3])
    paris = fake.add_tag("Travel/Paris", ids[2:6])
    family = fake.add_tag("Family", ids[5:8])
    trip = fake.add_album("Trip", ids[:4])
    home = fake.add_album("Home", ids[6:10])
    return fake, ids, {"travel": travel.id, "paris": paris.id, "family": family.id}, {"trip": trip.id, "home": home.id}


def run(fake, path, *, versions_in_process=None, **request):
    connection = ImmichConnection(
        ImmichConfig(url=fake.url, api_key=fake.api_key), versions_in_process=versions_in_process
    )
    try:
        return run_extract(
            ExtractRequest(target="/lib", **request),
            connection,
            JsonCacheRepository(path),
            FakeLibrary(),
            now=lambda: datetime(2026, 6, 1, tzinfo=UTC),
        ), connection
    finally:
        connection.close()


def membership(path):
    doc = json.loads(path.read_text())
    nodes = {i: (tuple(n["albums"]), tuple(n["tags"])) for i, n in doc["assets"].items()}
    return nodes, doc["albums"], doc["tags"]


def searches(fake, start, end=None):
    return [body for _method, path, body in fake.requests[start:end] if path == "/api/search/metadata"]


def test_each_refresh_rule_reads_only_what_moved_and_gives_what_full_passes_give(tmp_path):
    fake, ids, tags, albums = world()
    try:
        path = tmp_path / "cache.json"
        run(fake, path)
        start = len(fake.requests)
        result, _ = run(fake, path)  # nothing moved
        assert not any(b.get("tagIds") or b.get("albumIds") for b in searches(fake, start))
        assert result.saved is False
        edits = [
            ("tag added", lambda: fake.tag_asset(tags["family"], ids[0])),
            ("tag removed", lambda: fake.untag_asset(tags["paris"], ids[3])),
            ("tag deleted", lambda: fake.delete_tag(tags["paris"])),  # ids[2] keeps Travel, directly
            ("album asset added", lambda: fake.album_add(albums["home"], [ids[11]])),
            ("album asset removed", lambda: fake.album_remove(albums["trip"], [ids[1]])),
            ("album deleted", lambda: fake.delete_album(albums["home"])),
        ]
        for name, edit in edits:
            edit()
            full = tmp_path / f"full-{name}.json"
            shutil.copyfile(path, full)  # the same cache, to be run with the full passes
            start = len(fake.requests)
            run(fake, path)
            end = len(fake.requests)
            asked = [p for _m, p, _b in fake.requests[start:end]]
            run(fake, full, full_membership=True)
            assert membership(path) == membership(full), name
            if name.startswith("tag"):
                assert not any(b.get("tagIds") for b in searches(fake, start, end)), name
            if name.startswith("album"):
                assert len([b for b in searches(fake, start, end) if b.get("albumIds")]) <= 1, name
            assert asked.count("/api/albums") == 1 and asked.count("/api/tags") == 1, name
        nodes, album_names, tag_names = membership(path)
        assert tags["paris"] not in tag_names and albums["home"] not in album_names
        assert nodes[ids[2]][1] == (tags["travel"],)  # the deleted child's asset is under its own Travel
        assert nodes[ids[0]][1] == tuple(sorted([tags["travel"], tags["family"]]))
        assert albums["trip"] in nodes[ids[0]][0] and albums["trip"] not in nodes[ids[1]][0]
    finally:
        fake.stop()


def test_a_rerun_whose_versions_are_listed_in_a_process_of_their_own_writes_the_same_cache(tmp_path):
    """A large listing of versions runs in a spawned process (VERSIONS_IN_PROCESS): forced here on a
    small library, a re-run after edits decides and writes what a re-run listing them here does."""
    fake, ids, tags, _albums = world()
    try:
        here, there = tmp_path / "here.json", tmp_path / "there.json"
        run(fake, here)
        shutil.copyfile(here, there)
        fake.tag_asset(tags["family"], ids[0])  # moves its updatedAt: fetched whole again
        fake.trash(ids[4])
        fake.add_asset(make_asset(owner_id=fake.user_id, name="IMG_new.JPG", taken=TAKEN, size=7, checksum="n"))
        done_here, _ = run(fake, here)
        done_there, _ = run(fake, there, versions_in_process=1)
        assert (done_here.added, done_here.updated, done_here.gone) == (1, 1, 1)
        assert done_there.summary() | {"durationSeconds": 0} == done_here.summary() | {"durationSeconds": 0}
        docs = [json.loads(p.read_text()) for p in (here, there)]
        assert docs[0]["assets"] == docs[1]["assets"] and docs[0]["tags"] == docs[1]["tags"]
    finally:
        fake.stop()


def test_an_unconfirmed_server_version_keeps_the_full_passes(tmp_path):
    fake = FakeImmich((3, 0, 1)).start()
    try:
        raw = fake.add_asset(make_asset(owner_id=fake.user_id, name="a.jpg", taken=TAKEN, size=1, checksum="c"))
        fake.add_tag("T", [raw["id"]])
        path = tmp_path / "cache.json"
        run(fake, path)
        start = len(fake.requests)
        run(fake, path)
        assert any(b.get("tagIds") for b in searches(fake, start))  # v3.0: not confirmed, full passes
    finally:
        fake.stop()


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["tag", "untag", "delete-tag", "album-add", "album-remove", "delete-album", "edit", "trash"]),
        st.integers(0, 11),
        st.integers(0, 2),
    ),
    min_size=0,  # a round without edits: nothing moved, the cache's membership is kept as it is
    max_size=6,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(EDITS, min_size=1, max_size=3))
def test_any_edit_sequence_gives_the_cache_full_passes_give(tmp_path_factory, rounds):
    """Random edits between runs (tags, albums, deletions, plain edits): after each run the cache's
    membership is the one a --full-membership run from the same cache writes."""
    fake, ids, tags, albums = world()
    tag_ids, album_ids = list(tags.values()), list(albums.values())
    folder = tmp_path_factory.mktemp("edits")
    try:
        path = folder / "cache.json"
        run(fake, path)
        for n, edits in enumerate(rounds):
            for kind, asset, group in edits:
                asset_id = ids[asset]
                live_tags = [t for t in tag_ids if t in fake.tags]
                live_albums = [a for a in album_ids if a in fake.albums]
                if kind == "tag" and live_tags:
                    fake.tag_asset(live_tags[group % len(live_tags)], asset_id)
                elif kind == "untag" and live_tags:
                    fake.untag_asset(live_tags[group % len(live_tags)], asset_id)
                elif kind == "delete-tag" and live_tags:
                    fake.delete_tag(live_tags[group % len(live_tags)])
                elif kind == "album-add" and live_albums:
                    fake.album_add(live_albums[group % len(live_albums)], [asset_id])
                elif kind == "album-remove" and live_albums:
                    fake.album_remove(live_albums[group % len(live_albums)], [asset_id])
                elif kind == "delete-album" and live_albums:
                    fake.delete_album(live_albums[group % len(live_albums)])
                elif kind == "edit":
                    fake.touch(asset_id, fake.now_text())
                elif kind == "trash" and not fake.assets[asset_id].get("isTrashed"):
                    fake.trash(asset_id, fake.now_text())
            before = folder / f"before-{n}.json"
            shutil.copyfile(path, before)
            run(fake, path)
            run(fake, before, full_membership=True)
            assert membership(path) == membership(before)
    finally:
        fake.stop()


def test_a_rerun_where_nothing_moved_reads_no_membership_and_keeps_it(tmp_path, caplog):
    """Nothing moved since the last run: no album is read again, no asset is asked for its tags,
    the memberships are not rebuilt, and the cache's membership is the one it held; then one
    album edit is read again."""
    caplog.set_level(logging.INFO, logger="immich_sync")
    fake, ids, _tags, albums = world()
    try:
        path = tmp_path / "cache.json"
        run(fake, path)
        held = membership(path)
        start = len(fake.requests)
        result, _ = run(fake, path)
        asked = [p for _m, p, _b in fake.requests[start:] if p.startswith(("/api/albums/", "/api/assets/"))]
        assert asked == [] and not any(b.get("tagIds") or b.get("albumIds") for b in searches(fake, start))
        assert membership(path) == held and not result.saved and (result.albums, result.tags) == (2, 3)
        assert "albums: none of 2 moved" in caplog.text and "tags: none of 3 moved" in caplog.text
        fake.album_add(albums["home"], [ids[0]])
        run(fake, path)
        nodes, _albums, _tags = membership(path)
        assert albums["home"] in nodes[ids[0]][0] and albums["trip"] in nodes[ids[0]][0]
    finally:
        fake.stop()
