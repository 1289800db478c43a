"""Issue 18, item 3: a large tag or album is read from the timeline (counts per month, then compact
column arrays) where that costs less than paging whole assets, and the members are the same as the
searches give, whatever the library holds: archived, hidden and trashed assets, another owner's
assets in an album, a tag's descendants, assets whose metadata was never extracted (the bucket's
inner join on the EXIF table), a key without timeline.read, an edit between the counts and the
buckets. Real HTTP against the fake server, which answers the timeline as the server's
asset.repository.ts does (getTimeBuckets / getTimeBucket)."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta

import jsonschema
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA
from immich_sync.adapters import immich_search as plan
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import ImmichConnection
from immich_sync.testing.factory import make_asset
from immich_sync.testing.fake_immich import FakeImmich

SDK = json.loads((DATA / "immich-sdk-3.2.2.schema.json").read_text())
VERSIONS = [(2, 7, 5), (3, 1, 0), (3, 2, 0)]


def library(fake: FakeImmich, n: int = 60, seed: int = 1) -> list[str]:
    """n assets over about 4 months: mostly timeline, some archived, hidden and trashed."""
    rnd = random.Random(seed)
    ids = []
    for i in range(n):
        visibility = rnd.choice(["timeline"] * 6 + ["archive", "hidden"])
        raw = make_asset(
            owner_id=fake.user_id,
            name=f"IMG_{i:04d}.JPG",
            taken=datetime(2020, 1, 1) + timedelta(days=rnd.randrange(120)),
            size=100 + i,
            checksum=f"c{i}",
            visibility=visibility,
            is_trashed=rnd.random() < 0.1,
        )
        raw["visibility"] = visibility
        ids.append(fake.add_asset(raw)["id"])
    return ids


def connection(fake: FakeImmich, *, timeline: bool = True, page_size: int = 3) -> ImmichConnection:
    return ImmichConnection(ImmichConfig(url=fake.url, api_key=fake.api_key), page_size=page_size, timeline=timeline)


def both(fake: FakeImmich, **kwargs):
    """(tags, albums) read with the timeline allowed, and with searches only; and the timeline requests."""
    before = len(fake.timeline_requests)
    with_timeline = connection(fake, **kwargs)
    tags, albums = with_timeline.tags(), with_timeline.albums()
    used = fake.timeline_requests[before:]
    searched = connection(fake, timeline=False, **kwargs)
    return (tags, albums), (searched.tags(), searched.albums()), used


def validate(body, definition: str) -> None:
    jsonschema.validate(body, {"$ref": f"#/definitions/{definition}", "definitions": SDK["definitions"]})


@pytest.mark.parametrize("version", VERSIONS)
def test_large_tags_and_albums_come_from_the_timeline_with_the_searches_members(fake_server, version):
    fake = fake_server(version)
    ids = library(fake)
    other = make_asset(owner_id="another-user", name="THEIRS.JPG", taken=datetime(2020, 2, 2), size=1, checksum="o")
    fake.add_asset(other)
    fake.partner_in_timeline.add("another-user")
    fake.add_tag("People", ids[:40])
    fake.add_tag("People/Ann", ids[30:45])
    fake.add_tag("Small", ids[:2])
    fake.add_album("Shared", [*ids[10:40], other["id"]])
    (tags, albums), (searched_tags, searched_albums), used = both(fake)
    assert tags.members == searched_tags.members
    assert albums.members == searched_albums.members
    assert {r.get("tagId") for r in used} - {None} == {t.id for t in fake.tags.values() if t.value != "Small"}
    assert any("albumId" in r for r in used) == (version >= (3, 0, 0))  # before v3 an album lists its assets
    assert any(r.get("visibility") == "hidden" for r in used if "timeBucket" in r)
    hidden = {i for i in ids[:40] if fake.assets[i]["visibility"] == "hidden" and not fake.assets[i]["isTrashed"]}
    assert hidden and hidden <= set().union(*tags.members.values())  # hidden tagged assets are not lost


def test_a_small_tag_costs_one_search_page_and_no_timeline_request(fake_server):
    fake = fake_server((3, 1, 0))
    ids = library(fake, n=10)
    fake.add_tag("Few", ids[:3])
    fake.add_album("Few", ids[:3])
    before = len(fake.search_requests())
    tags = connection(fake).tags()
    assert fake.timeline_requests == []
    assert len(fake.search_requests()) - before == 1
    assert len(next(iter(tags.members.values()))) == sum(1 for i in ids[:3] if not fake.assets[i]["isTrashed"])


def test_a_tag_spread_thin_over_many_months_is_searched(fake_server):
    fake = fake_server((3, 1, 0))
    ids = []
    for month in range(40):  # one asset a month: 40 buckets of one against 14 search pages of 3
        raw = make_asset(
            owner_id=fake.user_id,
            name=f"M{month}.JPG",
            taken=datetime(2018, 1, 1) + timedelta(days=31 * month),
            size=1,
            checksum=f"m{month}",
        )
        ids.append(fake.add_asset(raw)["id"])
    fake.add_tag("Thin", ids)
    tags = connection(fake).tags()
    assert not any("timeBucket" in r for r in fake.timeline_requests)  # the counts, then the search
    assert len(fake.timeline_requests) == len(plan.VISIBILITIES)
    assert set(next(iter(tags.members.values()))) == set(ids)
    assert plan.timeline_is_cheaper(25_000, 120, 1) and not plan.timeline_is_cheaper(300, 132, 1)


def test_an_asset_without_metadata_makes_its_tag_searched(fake_server, caplog):
    fake = fake_server((3, 1, 0))
    ids = library(fake)
    tag = fake.add_tag("People", ids[:40])
    fake.no_exif.add(next(i for i in ids[:40] if not fake.assets[i]["isTrashed"]))
    with caplog.at_level(logging.INFO, logger="immich_sync"):
        (tags, _), (searched, _), used = both(fake)
    assert tags.members == searched.members
    assert fake.no_exif <= tags.members[tag.id]  # the bucket left it out; the search did not
    assert any("timeBucket" in r for r in used)
    assert "disagrees with its count" in caplog.text


def test_an_edit_between_the_counts_and_the_buckets_makes_the_tag_searched(fake_server):
    fake = fake_server((3, 1, 0))
    ids = library(fake)
    tag = fake.add_tag("People", ids[:40])
    late = next(i for i in ids[40:] if not fake.assets[i]["isTrashed"] and fake.assets[i]["visibility"] == "timeline")
    fake.after_buckets.append(lambda f: f.tag_asset(tag.id, late))
    tags = connection(fake).tags()
    assert late in tags.members[tag.id]  # tagged before the search that replaced the timeline


def test_a_key_without_timeline_read_falls_back_to_searches(fake_server, caplog):
    fake = fake_server((3, 1, 0))
    ids = library(fake)
    fake.add_tag("People", ids[:40])
    fake.add_tag("Places", ids[20:])
    fake.permissions = {"asset.read", "album.read", "tag.read", "user.read"}
    with caplog.at_level(logging.INFO, logger="immich_sync"):
        (tags, _), (searched, _), _ = both(fake)
    assert tags.members == searched.members
    asked = [path for _, path, _ in fake.requests if path.startswith("/api/timeline")]
    assert 1 <= len(asked) <= 2  # refused once per tag already under way, then never asked again
    assert "not open to this client" in caplog.text


def test_the_fake_timeline_follows_the_sdk_schema(fake_server):
    for version in [(3, 1, 0), (3, 2, 0)]:
        fake = fake_server(version)
        ids = library(fake, n=8)
        tag = fake.add_tag("T", ids)
        headers = {"x-api-key": fake.api_key}
        listed = requests.get(f"{fake.url}/api/timeline/buckets", params={"tagId": tag.id}, headers=headers, timeout=10)
        assert listed.status_code == 200 and listed.json()
        for bucket in listed.json():
            validate(bucket, "TimeBucketsResponseDto")
            columns = requests.get(
                f"{fake.url}/api/timeline/bucket",
                params={"tagId": tag.id, "timeBucket": bucket["timeBucket"]},
                headers=headers,
                timeout=10,
            ).json()
            validate(columns, "TimeBucketAssetResponseDto")
            assert len(columns["id"]) == bucket["count"]
            assert set(columns["visibility"]) <= {"timeline", "archive"}  # hidden only when asked for


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    version=st.sampled_from(VERSIONS),
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    tags=st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 1.0)), min_size=1, max_size=4),
    missing_metadata=st.integers(0, 2),
    page_size=st.sampled_from([1, 2, 5, 1000]),
)
def test_the_timeline_never_changes_a_groups_members(fake_server, version, seed, n, tags, missing_metadata, page_size):
    fake = fake_server(version)
    ids = library(fake, n=n, seed=seed)
    rnd = random.Random(seed)
    made = []
    for parent, share in tags:
        value = f"T{len(made)}" if parent >= len(made) else f"{made[parent].value}/T{len(made)}"
        made.append(fake.add_tag(value, [i for i in ids if rnd.random() < share]))
    fake.add_album("A", [i for i in ids if rnd.random() < 0.5])
    fake.no_exif.update(rnd.sample(ids, min(missing_metadata, len(ids))))
    (got_tags, got_albums), (searched_tags, searched_albums), _ = both(fake, page_size=page_size)
    assert got_tags.members == searched_tags.members
    assert got_albums.members == searched_albums.members


@pytest.mark.parametrize("version", VERSIONS)
def test_a_parent_tag_holding_only_its_childrens_assets_is_counted_not_read(fake_server, version):
    fake = fake_server(version)
    ids = library(fake, n=30)
    ann, bob = fake.add_tag("People/Ann", ids[:12]), fake.add_tag("People/Bob", ids[8:20])
    people = next(t for t in fake.tags.values() if t.value == "People")
    fake.add_tag("Places/Paris", ids[20:25])
    places = next(t for t in fake.tags.values() if t.value == "Places")
    fake.tag_asset(places.id, ids[0])  # Places holds an asset of its own
    (tags, _), (searched, _), _ = both(fake, page_size=1000)
    assert tags.members == searched.members
    assert tags.members[people.id] == frozenset()
    assert ids[0] in tags.members[places.id]
    before = len(fake.search_requests())
    connection(fake, timeline=False, page_size=1000).tags()
    again = [b.get("tagIds", (b.get("filter") or {}).get("tagIds")) for b in fake.search_requests()[before:]]
    assert not any(people.id in str(t) for t in again)  # counted, then not searched
    assert any(places.id in str(t) for t in again)
    assert any(ann.id in str(t) for t in again) and any(bob.id in str(t) for t in again)


@pytest.mark.parametrize("timeline_wins", [False, True])
def test_a_tag_larger_than_the_probe_is_read_whole_either_way(fake_server, monkeypatch, timeline_wins):
    """A tag's first search is a probe smaller than a page; a tag larger than it is then read from
    the timeline or searched from its start with whole pages, and has the same members both ways."""
    fake = fake_server((3, 1, 0))
    ids = library(fake, n=40)
    fake.add_tag("Many", ids)
    monkeypatch.setattr(plan, "PROBE_SIZE", 4)
    if timeline_wins:
        monkeypatch.setattr(plan, "REQUEST_COST", 0.1)
    before = len(fake.search_requests())
    tags = connection(fake, page_size=1000).tags()
    sizes = [body.get("size") for body in fake.search_requests()[before:]]
    assert sizes == ([4] if timeline_wins else [4, 1000])
    assert any("timeBucket" in r for r in fake.timeline_requests) == timeline_wins
    searched = connection(fake, timeline=False, page_size=1000).tags()
    assert tags.members == searched.members
    assert len(next(iter(tags.members.values()))) == sum(1 for i in ids if not fake.assets[i]["isTrashed"])
