"""The fake server cannot drift: its bodies validate against the SDK's schema, and holding a real
server's data it answers the recorded requests with the recorded asset ids."""

from __future__ import annotations

import json

import jsonschema
import pytest
import requests

from conftest import DATA, RECORDED
from immich_sync.testing.factory import make_asset
from immich_sync.testing.fake_immich import FakeImmich

SDK = json.loads((DATA / "immich-sdk-3.2.2.schema.json").read_text())


def validate(body, definition: str) -> None:
    jsonschema.validate(body, {"$ref": f"#/definitions/{definition}", "definitions": SDK["definitions"]})


@pytest.fixture
def fake(fake_server):
    from datetime import datetime

    f = fake_server((3, 2, 0))
    a = f.add_asset(make_asset(owner_id=f.user_id, name="a.jpg", taken=datetime(2024, 1, 1), size=1, checksum="c"))
    f.add_album("Trip", [a["id"]])
    f.add_tag("Travel/Paris", [a["id"]])
    return f


@pytest.mark.parametrize(
    "method,path,body,definition",
    [
        ("POST", "/api/search/metadata", {"withExif": True, "size": 10}, "SearchResponseDto"),
        (
            "POST",
            "/api/search/metadata",
            {"filter": {"trashedAt": {"eq": None}}, "size": 10, "withExif": True},
            "SearchResponseDto",
        ),
        ("POST", "/api/search/statistics", {}, "SearchStatisticsResponseDto"),
        ("GET", "/api/server/version", None, "ServerVersionResponseDto"),
        ("GET", "/api/server/ping", None, "ServerPingResponse"),
    ],
)
def test_fake_bodies_follow_the_sdk_schema(fake, method, path, body, definition):
    r = requests.request(method, fake.url + path, json=body, headers={"x-api-key": fake.api_key}, timeout=10)
    assert r.status_code == 200
    validate(r.json(), definition)


def test_fake_album_and_tag_lists_follow_the_sdk_schema(fake):
    headers = {"x-api-key": fake.api_key}
    for album in requests.get(fake.url + "/api/albums", headers=headers, timeout=10).json():
        validate(album, "AlbumResponseDto")
    for tag in requests.get(fake.url + "/api/tags", headers=headers, timeout=10).json():
        validate(tag, "TagResponseDto")


REPLAYED = [
    "search-metadata_withExif_size1000_p1.json",
    "search-metadata_visibility-timeline.json",
    "search-metadata_visibility-archive.json",
    "search-metadata_visibility-hidden.json",
    "search-metadata_withDeleted.json",
    "search-metadata_updatedAfter.json",
    "search-metadata_updatedBefore.json",
    "search-metadata_updatedAfter_updatedBefore.json",
    "search-metadata_albumIds.json",
    "search-metadata_tagIds.json",
    "search-metadata_withExif_size5_p1.json",
    "search-metadata_withExif_size5_p2.json",
    "search-metadata_albumIds_size2_p2.json",
    "search-metadata_size2000.json",
    "search-metadata_visibility-locked.json",
    "search-metadata_updatedAfter-dateonly.json",
    "search-metadata_badkey.json",
]


@pytest.mark.parametrize("version", sorted(RECORDED))
@pytest.mark.parametrize("name", REPLAYED)
def test_fake_answers_recorded_requests_like_the_real_server(version, name):
    folder = RECORDED[version]
    entry = next(e for e in json.loads((folder / "_index.json").read_text()) if e["file"] == name)
    recorded = json.loads((folder / name).read_text())
    with FakeImmich.from_recorded(folder) as fake:
        key = "wrong" if "badkey" in name else fake.api_key
        r = requests.post(fake.url + entry["path"], json=entry["body"], headers={"x-api-key": key}, timeout=10)
        assert r.status_code == entry["status"]
        if entry["status"] == 200:
            got = r.json()["assets"]
            real = recorded["assets"]["items"]
            if "size5" in name or "size2" in name:  # a page's contents depend on the order; its size does not
                assert len(got["items"]) == len(real)
            else:  # the order of ties is the database's: compare the sets, and the bodies unchanged
                assert {a["id"]: a for a in got["items"]} == {a["id"]: a for a in real}
            assert got["nextPage"] == recorded["assets"]["nextPage"]
