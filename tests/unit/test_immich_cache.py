"""ImmichCache, Asset and CacheIndex: the domain, on plain values."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conftest import real_assets
from immich_sync.domain.asset import Asset
from immich_sync.domain.cache import ImmichCache, Upsert, is_newer
from immich_sync.domain.index import path_key
from immich_sync.domain.match import Confidence, Evidence, MatchResult, Status
from immich_sync.domain.names import asset_file_name, normalise_name

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def raw(
    asset_id: str,
    name: str = "IMG_0001.JPG",
    updated: str = "2026-01-01T00:00:00.000Z",
    local: str = "2024-07-14T10:00:00.000Z",
) -> dict:
    return {
        "id": asset_id,
        "originalFileName": name,
        "originalPath": f"/data/{name}",
        "updatedAt": updated,
        "localDateTime": local,
        "checksum": "x",
        "exifInfo": {"fileSizeInByte": 10},
    }


def found(path: str) -> MatchResult:
    return MatchResult.found(path, "filename", Confidence.HIGH, Evidence(name=True))


@pytest.mark.parametrize("source,payload", real_assets(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_real_asset_builds_an_asset(source, payload):
    asset = Asset.from_api(payload)
    assert asset.id == payload["id"]
    assert asset.raw is payload
    assert asset.file_name  # never empty: the name, or the name with the path's extension


def test_real_payloads_cover_every_version():
    sources = {s for s, _ in real_assets()}
    assert any("v1.82" in s for s in sources) and any("recorded-v3.1.0" in s for s in sources)
    assert len(real_assets()) > 200


@pytest.mark.parametrize(
    "name,path,expected",
    [
        pytest.param(
            "PXL_20231006_063851485",
            "/x/PXL_20231006_063851485.jpg",
            "PXL_20231006_063851485.jpg",
            id="v1.82-name-without-extension",
        ),
        pytest.param("IMG_2307.JPG", "/x/IMG_2307.JPG", "IMG_2307.JPG", id="name-with-extension"),
        pytest.param("", "/x/a.heic", "a.heic", id="no-name-uses-path"),
        pytest.param("archive.tar", "/x/other.gz", "archive.tar", id="own-extension-kept"),
    ],
)
def test_asset_file_name(name, path, expected):
    assert asset_file_name(name, path) == expected


@given(st.text())
def test_normalising_twice_changes_nothing(text):
    assert normalise_name(normalise_name(text)) == normalise_name(text)


def test_normalise_ignores_case_and_unicode_form():
    assert normalise_name("Cre\u0301mieux.TIFF") == normalise_name("crémieux.tiff")


def test_optional_fields_stay_optional():
    asset = Asset.from_api({"id": "a"})
    assert asset.checksum is None and asset.local_date_time is None and asset.file_size is None


@pytest.mark.parametrize(
    "incoming,cached,newer",
    [
        pytest.param("2026-01-02T00:00:00.000Z", "2026-01-01T00:00:00.000Z", True, id="later"),
        pytest.param("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", False, id="equal"),
        pytest.param("2025-12-31T00:00:00.000Z", "2026-01-01T00:00:00.000Z", False, id="older"),
        pytest.param("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00Z", False, id="same-instant-other-spelling"),
        pytest.param("2026-01-01T00:00:00.001Z", "2026-01-01T00:00:00+00:00", True, id="one-millisecond"),
    ],
)
def test_update_rule(incoming, cached, newer):
    assert is_newer({"updatedAt": incoming}, {"updatedAt": cached}) is newer


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_older_or_equal_never_replaces(a, b):
    cache = ImmichCache()
    first = (T0 + timedelta(seconds=a)).isoformat()
    second = (T0 + timedelta(seconds=b)).isoformat()
    cache.upsert({**raw("x"), "updatedAt": first, "v": 1}, T0)
    outcome = cache.upsert({**raw("x"), "updatedAt": second, "v": 2}, T0)
    assert (outcome is Upsert.UPDATED) == (b > a)
    assert cache.get("x").asset_raw["v"] == (2 if b > a else 1)


def test_upsert_says_what_happened_and_keeps_the_raw_dict():
    cache = ImmichCache()
    body = raw("a")
    assert cache.upsert(body, T0) is Upsert.ADDED
    assert cache.upsert(body, T0) is Upsert.UNCHANGED
    assert cache.upsert({**body, "updatedAt": "2026-02-01T00:00:00.000Z"}, T0) is Upsert.UPDATED
    assert cache.get("a").asset_raw["updatedAt"] == "2026-02-01T00:00:00.000Z"
    assert len(cache) == 1


def test_lookups():
    cache = ImmichCache()
    cache.upsert(raw("a", "IMG_0001.JPG", local="2024-07-14T23:59:00.000Z"), T0)
    cache.upsert(raw("b", "img_0001.jpg", local="2024-07-15T00:00:00.000Z"), T0)
    cache.upsert(raw("c", "Cre\u0301mieux.tiff", local="2023-01-01T00:00:00.000Z"), T0)
    cache.set_match("a", found("/lib/2024/IMG_0001.JPG"))
    cache.replace_albums({"al": "Italy Trip"}, {"al": ["a", "c"]})
    cache.replace_tags({"t1": "Travel", "t2": "Travel/Paris"}, {"t2": ["b"]})
    assert [n.id for n in cache.find_by_name("IMG_0001.jpg")] == ["a", "b"]
    assert [n.id for n in cache.find_by_name("crémieux.TIFF")] == ["c"]
    assert [n.id for n in cache.find_by_path("/lib/2024/IMG_0001.JPG")] == ["a"]
    assert [n.id for n in cache.find_file("/other/img_0001.JPG")] == ["a", "b"]  # by name when no path
    assert [n.id for n in cache.find_by_day(date(2024, 7, 14))] == ["a"]
    assert [n.id for n in cache.find_by_day_range(date(2024, 7, 14), date(2024, 7, 15))] == ["a", "b"]
    assert [n.id for n in cache.find_by_album("italy trip")] == ["a", "c"]
    assert [n.id for n in cache.find_by_album("al")] == ["a", "c"]
    assert [n.id for n in cache.find_by_tag("Travel")] == ["b"]  # a tag includes its descendants
    assert [n.id for n in cache.find_by_tag("paris")] == ["b"]
    assert cache.find_by_tag("Family") == []


def test_match_changes_move_the_path_index():
    cache = ImmichCache()
    cache.upsert(raw("a"), T0)
    cache.set_match("a", found("/lib/x.jpg"))
    cache.set_match("a", found("/lib/y.jpg"))
    assert cache.find_by_path("/lib/x.jpg") == [] and [n.id for n in cache.find_by_path("/lib/y.jpg")] == ["a"]
    cache.clear_match("a")
    assert cache.find_by_path("/lib/y.jpg") == []


def test_a_file_claimed_by_two_assets_then_one_is_no_longer_claimed():
    cache = ImmichCache()
    for asset_id in "abc":
        cache.upsert(raw(asset_id), T0)
        cache.set_match(asset_id, found("/lib/x.jpg"))
    assert cache.index.claimed_paths() == {"/lib/x.jpg": ["a", "b", "c"]}
    cache.set_match("a", found("/lib/y.jpg"))
    cache.remove("b")
    assert cache.index.claimed_paths() == {}
    assert [n.id for n in cache.find_by_path("/lib/x.jpg")] == ["c"]
    cache.set_match("a", found("/lib/x.jpg"))
    assert cache.index.claimed_paths() == {"/lib/x.jpg": ["a", "c"]}


class HeldNode:
    """A StoredNode as a repository hands it to the domain: bytes, and what they decode to."""

    def __init__(self, data, raw, match):
        self.data, self._raw, self._match = data, raw, match

    def asset(self):
        return self._raw

    def match(self):
        return self._match

    def match_summary(self):
        return None if self._match is None else self._match.summary()

    def found_path(self):
        return self._match.path if self._match is not None and self._match.status is Status.FOUND else None


def test_the_same_result_again_is_no_change():
    cache = ImmichCache()
    cache.upsert(raw("a"), T0)
    node = cache.get("a")
    cache.set_match("a", MatchResult.not_found(matched_at=T0))
    node.keep_stored(HeldNode(b"{}", raw("a"), node.match))  # as the file holds it from here on
    cache.set_match("a", MatchResult.not_found(matched_at=T0 + timedelta(days=1)))
    assert node.stored is not None and node.match.matched_at == T0  # kept, first time kept
    cache.set_match("a", found("/lib/a.jpg"))
    assert node.stored is None and node.match.status is Status.FOUND  # another result: changed


def test_gone_marking_and_stats():
    cache = ImmichCache()
    cache.upsert(raw("a"), T0)
    cache.upsert(raw("b"), T0)
    cache.set_match("a", found("/lib/a.jpg"))
    cache.set_match("b", MatchResult.not_found())
    assert cache.mark_gone("b", T0) and not cache.mark_gone("b", T0)
    stats = cache.stats()
    assert stats["assets"] == 2 and stats["goneFromServer"] == 1
    assert stats["byStatus"] == {"found": 1, "not_found": 1}
    assert stats["byConfidence"] == {"high": 1}
    assert set(stats["byMethod"]) == {found("/lib/a.jpg").method}  # found assets only, as byConfidence
    cache.upsert(raw("b"), T0)  # seen again
    assert cache.get("b").gone_since is None


def test_clear_forgets_everything():
    cache = ImmichCache()
    cache.upsert(raw("a"), T0)
    cache.replace_albums({"al": "x"}, {"al": ["a"]})
    cache.clear()
    assert len(cache) == 0 and cache.albums == {} and cache.find_by_name("IMG_0001.JPG") == []


NAMES = st.sampled_from(["IMG_0001.JPG", "img_0001.jpg", "IMG_0002.JPG", "Cre\u0301mieux.tiff", "crémieux.TIFF"])
IDS = st.sampled_from(list(string.ascii_lowercase[:6]))
DAYS = st.sampled_from(["2024-07-14T10:00:00.000Z", "2024-07-15T10:00:00.000Z", "2023-01-01T00:00:00.000Z", None])
PATHS = st.sampled_from(["/lib/a.jpg", "/lib/b.jpg", "/lib/Cre\u0301mieux.tiff"])


class IndexMatchesBruteForce(RuleBasedStateMachine):
    """After any sequence of changes, every index answers what a scan of all nodes answers."""

    def __init__(self):
        super().__init__()
        self.cache = ImmichCache()
        self.clock = 0

    @rule(asset_id=IDS, name=NAMES, day=DAYS)
    def upsert(self, asset_id, name, day):
        self.clock += 1
        self.cache.upsert(
            {
                **raw(asset_id, name),
                "localDateTime": day,
                "updatedAt": (T0 + timedelta(seconds=self.clock)).isoformat(),
            },
            T0,
        )

    @rule(asset_id=IDS, path=PATHS, status=st.sampled_from(list(Status)))
    def match(self, asset_id, path, status):
        if asset_id in self.cache:
            result = found(path) if status is Status.FOUND else MatchResult.ambiguous((path,), "filename", Evidence())
            self.cache.set_match(asset_id, result)

    @rule(asset_id=IDS)
    def remove(self, asset_id):
        self.cache.remove(asset_id)

    @rule(members=st.dictionaries(st.sampled_from(["al1", "al2"]), st.lists(IDS)))
    def albums(self, members):
        self.cache.replace_albums({"al1": "One", "al2": "Two"}, members)

    @rule(members=st.dictionaries(st.sampled_from(["t1", "t2"]), st.lists(IDS)))
    def tags(self, members):
        self.cache.replace_tags({"t1": "Travel", "t2": "Travel/Paris"}, members)

    @rule()
    def clear(self):
        self.cache.clear()

    @invariant()
    def indexes_agree(self):
        nodes = list(self.cache)
        for name in ["IMG_0001.JPG", "IMG_0002.JPG", "crémieux.tiff"]:
            expected = sorted(
                n.id for n in nodes if normalise_name(n.asset_raw["originalFileName"]) == normalise_name(name)
            )
            assert [n.id for n in self.cache.find_by_name(name)] == expected
        for path in ["/lib/a.jpg", "/lib/b.jpg", "/lib/Crémieux.tiff"]:
            expected = sorted(
                n.id
                for n in nodes
                if n.match and n.match.status is Status.FOUND and path_key(n.match.path) == path_key(path)
            )
            assert [n.id for n in self.cache.find_by_path(path)] == expected
        claimed: dict[str, list[str]] = {}
        for n in nodes:
            if n.match and n.match.status is Status.FOUND:
                claimed.setdefault(path_key(n.match.path), []).append(n.id)
        assert self.cache.index.claimed_paths() == {p: sorted(ids) for p, ids in claimed.items() if len(ids) > 1}
        for day in [date(2024, 7, 14), date(2023, 1, 1)]:
            expected = sorted(n.id for n in nodes if (n.asset_raw.get("localDateTime") or "")[:10] == day.isoformat())
            assert [n.id for n in self.cache.find_by_day(day)] == expected
        for album in ["al1", "al2"]:
            assert [n.id for n in self.cache.find_by_album(album)] == sorted(n.id for n in nodes if album in n.albums)
        expected = sorted(n.id for n in nodes if {"t1", "t2"} & set(n.tags))
        if self.cache.tags:
            assert [n.id for n in self.cache.find_by_tag("Travel")] == expected


IndexMatchesBruteForce.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestIndexMatchesBruteForce = IndexMatchesBruteForce.TestCase
