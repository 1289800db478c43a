"""Issue 13: what real servers do (FACTS.md, "More, confirmed"), modelled by the fake server over
real HTTP, and what the client must make of it: every asset the user has, filtered exactly, none
called gone by mistake, none from another account."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from urllib3.util.retry import Retry

from conftest import PAYLOADS, RECORDED, command
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import ImmichConnection
from immich_sync.domain.asset import Asset
from immich_sync.errors import ImmichError, ServerTooNew
from immich_sync.testing.factory import jpeg_bytes, make_asset, sha1_b64
from immich_sync.testing.fake_immich import FakeImmich

GENERATIONS = [(2, 7, 5), (3, 1, 0), (3, 2, 0)]
gen_id = lambda v: "v" + ".".join(map(str, v))


def fast_retry() -> Retry:
    return Retry(
        total=2,
        backoff_factor=0.01,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        raise_on_status=False,
    )


def connect(fake: FakeImmich, **kwargs) -> ImmichConnection:
    kwargs.setdefault("retry", fast_retry())
    return ImmichConnection(ImmichConfig(url=fake.url, api_key=fake.api_key), **kwargs)


def add_assets(fake: FakeImmich, n: int, *, start: datetime = datetime(2024, 1, 1), prefix: str = "a") -> list[str]:
    ids = []
    for i in range(n):
        raw = make_asset(
            owner_id=fake.user_id,
            name=f"{prefix}{i:03d}.jpg",
            taken=start + timedelta(hours=i),
            size=100 + i,
            checksum=f"c{prefix}{i}",
            updated_at=datetime(2026, 1, 1, 0, 0, i % 60, tzinfo=UTC) + timedelta(minutes=i),
        )
        ids.append(fake.add_asset(raw)["id"])
    return ids


# --- 1. --before is inclusive for real
@pytest.mark.parametrize("version", GENERATIONS, ids=gen_id)
def test_before_and_after_include_an_asset_whose_updated_at_is_the_bound(fake_server, version):
    fake = fake_server(version)  # keeps updatedAt with 456 µs more than it returns
    ids = add_assets(fake, 20)
    bound_raw = fake.assets[ids[7]]
    bound = datetime.fromisoformat(bound_raw["updatedAt"].replace("Z", "+00:00"))
    conn = connect(fake, page_size=5)
    before = {a["id"] for a in conn.iter_assets(updated_before=bound)}
    after = {a["id"] for a in conn.iter_assets(updated_after=bound)}

    def moment(i):
        return datetime.fromisoformat(fake.assets[i]["updatedAt"].replace("Z", "+00:00"))

    assert before == {i for i in ids if moment(i) <= bound} and ids[7] in before
    assert after == {i for i in ids if moment(i) >= bound} and ids[7] in after
    if version >= (3, 2, 0):
        assert not fake.deprecated_seen and all("filter" in b for b in fake.search_requests())


def test_the_recorded_v310_server_excludes_the_bound_and_the_client_does_not():
    """Replayed: real v3.1.0 answered `updatedBefore = <fa321042's updatedAt>` with 57 items,
    without fa321042 (stored 2026-11-24T12:25:49.339931Z, returned .339Z)."""
    folder = RECORDED["3.1.0"]
    recorded = json.loads((folder / "search-metadata_updatedBefore-exact.json").read_text())
    fake = FakeImmich.from_recorded(folder, extra_microseconds=931).start()
    try:
        import requests

        body = {"size": 1000, "updatedBefore": "2026-11-24T12:25:49.339Z"}
        answer = requests.post(f"{fake.url}/api/search/metadata", json=body, headers={"x-api-key": fake.api_key})
        served = {a["id"] for a in answer.json()["assets"]["items"]}
        assert served == {a["id"] for a in recorded["assets"]["items"]}  # the fake errs as the real one did
        target = "fa321042-9620-471b-9d51-b79c61465064"
        assert target not in served
        bound = datetime(2026, 11, 24, 12, 25, 49, 339000, tzinfo=UTC)
        ours = {a["id"] for a in connect(fake, include_partners=True).iter_assets(updated_before=bound)}
        assert target in ours
    finally:
        fake.stop()


# --- 2. a listing that survives a library changing under it
@pytest.mark.parametrize("version", GENERATIONS, ids=gen_id)
def test_assets_trashed_during_the_listing_shift_pages_and_the_rest_is_still_listed(fake_server, version, caplog):
    fake = fake_server(version)
    ids = add_assets(fake, 40)
    order = sorted(ids, key=lambda i: (fake.assets[i]["fileCreatedAt"], i), reverse=True)
    passes = 3 if version < (3, 0, 0) else 1  # v2: one listing per visibility, timeline first

    def trash_three(f):
        for asset_id in order[:3]:  # already listed: everything after moves back three places
            f.trash(asset_id)

    fake.after_search[2] = trash_three
    listed = [a["id"] for a in connect(fake, page_size=10, pages_in_flight=1).iter_assets()]
    assert len(listed) == len(set(listed))
    assert set(order[3:]) <= set(listed), "an asset the server still has was skipped"
    assert "catch up" in caplog.text and passes >= 1


@pytest.mark.parametrize("version", [(1, 132, 0), *GENERATIONS], ids=gen_id)
def test_uploads_that_sort_first_never_end_a_listing_early(fake_server, version):
    """v1.132 has no statistics to catch up with: only paging on past a stale page lists the rest."""
    fake = fake_server(version)
    ids = add_assets(fake, 40)

    def upload_a_page(f):  # newer photos sort first: the next page repeats the first one exactly
        add_assets(f, 10, start=datetime(2026, 6, 1), prefix="new")

    fake.after_search[1] = upload_a_page
    listed = [a["id"] for a in connect(fake, page_size=10, pages_in_flight=1).iter_assets()]
    assert set(ids) <= set(listed), "the listing ended on a page that brought no new id"
    assert len(listed) == len(set(listed))
    if version >= (1, 135, 0):
        assert len(listed) == 50  # the uploads too, caught up by id


def test_when_nothing_moves_the_check_costs_one_statistics_request(fake_server):
    fake = fake_server((3, 1, 0))
    add_assets(fake, 30)
    conn = connect(fake, page_size=10)
    assert conn.count_assets() == 30  # the progress bar's count, shared with the listing
    before = len(fake.requests)
    assert len(list(conn.iter_assets())) == 30
    paths = [p for _, p, _ in fake.requests[before:]]
    assert paths.count("/api/search/statistics") == 1 and "/api/assets" not in "".join(paths)


# --- 3. assets without EXIF are listed
@pytest.mark.parametrize("version", [(2, 7, 5), (3, 1, 0)], ids=gen_id)
def test_assets_whose_metadata_was_never_extracted_are_listed(fake_server, version):
    fake = fake_server(version)
    ids = add_assets(fake, 25)
    fake.no_exif = set(ids[:3])  # a fresh external-library import: no EXIF row yet
    listed = {a["id"]: a for a in connect(fake, page_size=10).iter_assets()}
    assert set(listed) == set(ids)
    assert all("exifInfo" not in listed[i] or not listed[i]["exifInfo"] for i in ids[:3])


# --- 4. v3.2+: only the current request shape; newer servers; malformed answers
def test_v32_requests_use_the_filter_shape_only(fake_server):
    fake = fake_server((3, 2, 0))
    ids = add_assets(fake, 12)
    album = fake.add_album("Trip", ids[:4])
    fake.add_tag("Travel/Paris", ids[4:6])
    conn = connect(fake, page_size=5)
    assert len(list(conn.iter_assets())) == 12 and len(list(conn.iter_assets(album_id=album.id))) == 4
    assert conn.albums().members[album.id] == frozenset(ids[:4])
    tags = conn.tags()
    assert {tags.names[t]: m for t, m in tags.members.items()}["Travel/Paris"] == frozenset(ids[4:6])
    assert fake.deprecated_seen == []  # the fake records any flat field a v3.2 client sends
    for _method, path, body in fake.requests:
        if path.startswith("/api/search/"):
            assert "filter" in body and not {"albumIds", "tagIds", "page", "updatedAfter", "visibility"} & body.keys()


def test_a_v32_server_flags_deprecated_fields(fake_server):
    import requests

    fake = fake_server((3, 2, 0))
    answer = requests.post(
        f"{fake.url}/api/search/metadata",
        json={"size": 10, "page": 1, "visibility": "archive"},
        headers={"x-api-key": fake.api_key},
    )
    assert answer.status_code == 200 and answer.headers["Deprecation"] == "true"
    assert fake.deprecated_seen == ["page", "visibility"]


def test_a_4x_server_gets_the_newest_shape(fake_server):
    fake = fake_server((4, 0, 0))
    ids = add_assets(fake, 7)
    fake.add_album("Trip", ids[:2])
    conn = connect(fake, page_size=3)
    assert len(list(conn.iter_assets())) == 7 and len(conn.albums().names) == 1


def test_a_4x_server_that_refuses_a_property_stops_the_run_with_one_line(fake_server):
    fake = fake_server((4, 1, 0))
    add_assets(fake, 3)
    fake.refused_properties = {"withExif"}
    with pytest.raises(ServerTooNew, match=r"runs Immich v4\.1\.0, newer than this immich-sync supports"):
        list(connect(fake).iter_assets())


def test_a_search_answer_without_items_is_an_error_never_an_empty_library(fake_server):
    fake = fake_server((3, 1, 0))
    add_assets(fake, 3)
    fake.search_without_items = True
    with pytest.raises(ImmichError, match=r"answered without assets\.items"):
        list(connect(fake).iter_assets())


# --- 5. upload libraries of v1.9x
def test_v195_uploaded_assets_with_a_library_id_are_uploaded_not_external():
    doc = json.loads((PAYLOADS / "search-metadata_v1.95.json").read_text())
    items = doc["assets"]["items"]
    assert items and all(i.get("libraryId") and i.get("isExternal") is False for i in items)
    assert not any(Asset.from_api(i).is_external for i in items)  # content SHA1 rules apply to them


# --- the command end to end: gone marks, accounts, refusals
def cli(tmp_path, env, *args):
    return command(tmp_path, env, *args)


@pytest.fixture
def library(fake_server, tmp_path):
    def make(version=(3, 1, 0), n=30):
        fake = fake_server(version)
        photos = tmp_path / "Photos"
        photos.mkdir()
        ids = []
        for i in range(n):
            taken = datetime(2024, 1, 1) + timedelta(days=i)
            data = jpeg_bytes(taken, padding=i)
            (photos / f"IMG_{i:04d}.JPG").write_bytes(data)
            ids.append(
                fake.add_asset(
                    make_asset(
                        owner_id=fake.user_id,
                        name=f"IMG_{i:04d}.JPG",
                        taken=taken,
                        size=len(data),
                        checksum=sha1_b64(data),
                        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
                    )
                )["id"]
            )
        env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
        env.pop("IMMICH_URL", None)
        return fake, env, ids

    return make


def cache_doc(tmp_path):
    return json.loads((tmp_path / "log" / "cache_Photos.json").read_text())


@pytest.mark.parametrize("version", GENERATIONS, ids=gen_id)
def test_a_full_run_marks_gone_only_what_the_server_no_longer_has(library, tmp_path, version):
    fake, env, ids = library(version)
    assert cli(tmp_path, env, "Photos").returncode == 0
    order = sorted(ids, key=lambda i: (fake.assets[i]["fileCreatedAt"], i), reverse=True)
    listed_then_trashed, trashed_ahead = order[:3], order[20:22]

    def trash(f):
        # three already listed: the pages after them move back three places and three
        # assets the server still has fall between pages; two not yet listed are gone for real
        for asset_id in listed_then_trashed + trashed_ahead:
            f.trash(asset_id)

    fake.after_search[fake.searches_served + 1] = trash  # right after the re-run's first page
    env = {**env, "IMMICH_SYNC_PAGE_SIZE": "10"}
    run = cli(tmp_path, env, "Photos")
    assert run.returncode == 0, run.stderr
    gone = {i for i, n in cache_doc(tmp_path)["assets"].items() if n["goneSince"]}
    # never one the server still has (the skipped ones are caught up); the listed-then-trashed ones
    # only if the trash came before their page (two pages are asked for at once)
    assert set(trashed_ahead) <= gone <= set(listed_then_trashed + trashed_ahead), [order.index(i) for i in gone]
    again = cli(tmp_path, env, "Photos")  # the listed-then-trashed ones: at the next run
    assert again.returncode == 0, again.stderr
    gone = {i for i, n in cache_doc(tmp_path)["assets"].items() if n["goneSince"]}
    assert gone == set(listed_then_trashed + trashed_ahead)


def test_a_first_run_during_which_three_assets_are_trashed_caches_every_other(library, tmp_path):
    fake, env, ids = library((3, 1, 0))
    order = sorted(ids, key=lambda i: (fake.assets[i]["fileCreatedAt"], i), reverse=True)
    fake.after_search[1] = lambda f: [f.trash(i) for i in order[:3]]
    run = cli(tmp_path, {**env, "IMMICH_SYNC_PAGE_SIZE": "10"}, "Photos")
    assert run.returncode == 0, run.stderr
    assert set(order[3:]) <= set(cache_doc(tmp_path)["assets"])
    assert (
        "caught up"
        in (tmp_path / "log")
        .joinpath(sorted(p.name for p in (tmp_path / "log").glob("immich-cache_*.log"))[-1])
        .read_text()
    )


def test_assets_without_exif_are_cached_once_and_not_listed_again(library, tmp_path):
    fake, env, ids = library((3, 1, 0))
    fake.no_exif = set(ids[:3])
    assert cli(tmp_path, env, "Photos").returncode == 0
    assert set(cache_doc(tmp_path)["assets"]) == set(ids)
    fake.requests.clear()
    again = cli(tmp_path, env, "Photos")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert not any(b.get("withExif") for b in fake.search_requests())  # no whole re-listing


def test_another_account_is_refused_before_any_change(library, tmp_path):
    fake, env, _ = library((3, 1, 0), n=3)
    assert cli(tmp_path, env, "Photos").returncode == 0
    path = tmp_path / "log" / "cache_Photos.json"
    before = path.read_bytes()
    other_user = str(uuid.uuid4())
    fake.extra_keys["other-key-0123456789"] = other_user
    run = cli(tmp_path, {**env, "IMMICH_API_KEY": "other-key-0123456789"}, "Photos")
    assert run.returncode == 2 and path.read_bytes() == before
    line = run.stderr.strip().splitlines()[-1]
    assert fake.user_id in line and other_user in line and "--clear" in line and "--cache" in line
    assert "other-key-0123456789" not in run.stderr
    cleared = cli(tmp_path, {**env, "IMMICH_API_KEY": "other-key-0123456789"}, "Photos", "--clear")
    assert cleared.returncode == 0 and cache_doc(tmp_path)["server"]["userId"] == other_user


def test_the_same_account_under_another_spelling_of_the_url_is_the_same(library, tmp_path):
    fake, env, _ = library((3, 1, 0), n=3)
    assert cli(tmp_path, env, "Photos").returncode == 0
    path = tmp_path / "log" / "cache_Photos.json"
    before = path.read_bytes()
    for spelling in (fake.url + "/", fake.url + "/api", fake.url.replace("127.0.0.1", "localhost") + "/api/"):
        run = cli(tmp_path, {**env, "IMMICH_INSTANCE_URL": spelling}, "Photos")
        assert run.returncode == 0, run.stderr
        assert "nothing changed" in run.stdout and path.read_bytes() == before


def test_a_newer_server_refusing_a_request_leaves_the_cache_as_it_was(library, tmp_path):
    fake, env, ids = library((3, 1, 0), n=3)
    assert cli(tmp_path, env, "Photos").returncode == 0
    path = tmp_path / "log" / "cache_Photos.json"
    before = path.read_bytes()
    fake.version = (4, 0, 0)
    fake.refused_properties = {"withExif"}
    fake.touch(ids[0], "2026-06-01T00:00:00.000Z")  # something to fetch with EXIF
    run = cli(tmp_path, env, "Photos")
    assert run.returncode == 1 and path.read_bytes() == before
    assert "newer than this immich-sync supports" in run.stderr and len(run.stderr.strip().splitlines()) == 1


# --- 7. the progress total is what will be listed, or says it is an estimate
def test_a_progress_total_that_counts_partners_is_shown_as_an_estimate():
    import io

    from immich_sync.entrypoints.progress import LineProgress

    ticks = iter(range(0, 1000, 11))
    out = io.StringIO()
    progress = LineProgress(out, every=10.0, clock=lambda: next(ticks), tick_every=None)
    progress.stage("listing and matching", 59, estimate=True)  # recorded v3.1.0: 59 counted, 56 own
    progress.advance(56)
    assert out.getvalue().strip() == "immich-cache: listing and matching: 56/~59 assets (11 s)"
    exact = io.StringIO()
    progress = LineProgress(exact, every=10.0, clock=lambda: next(ticks), tick_every=None)
    progress.stage("listing and matching", 4)  # an album: the count is what will be listed
    progress.advance(4)
    assert exact.getvalue().strip() == "immich-cache: listing and matching: 4/4 assets (11 s)"


def test_the_recorded_v310_statistics_count_partners_assets():
    folder = RECORDED["3.1.0"]
    counted = json.loads((folder / "search-statistics.json").read_text())["total"]
    fake = FakeImmich.from_recorded(folder).start()
    try:
        conn = connect(fake)
        own = list(conn.iter_assets())
        assert conn.count_assets() == counted > len(own)  # 59 > 56: the bar shows it as an estimate
    finally:
        fake.stop()
