"""ImmichConnection over real HTTP against the fake server, for each server version."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import UTC, datetime

import pytest
from urllib3.util.retry import Retry

from conftest import RECORDED
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import ImmichConnection
from immich_sync.errors import AlbumNotFound, ApiKeyRejected, BadInput, ImmichError, ServerUnreachable
from immich_sync.testing.factory import make_asset
from immich_sync.testing.fake_immich import FakeImmich, Fault

VERSIONS = [(1, 120, 0), (2, 7, 5), (3, 0, 0), (3, 1, 0), (3, 2, 0)]
TAKEN = datetime(2024, 7, 14, 10, 0)


def fast_retry(total=4) -> Retry:
    return Retry(
        total=total,
        connect=total,
        read=total,
        status=total,
        backoff_factor=0.01,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        raise_on_status=False,
    )


def connect(fake: FakeImmich, **kwargs) -> ImmichConnection:
    kwargs.setdefault("retry", fast_retry())
    return ImmichConnection(ImmichConfig(url=fake.url, api_key=fake.api_key), **kwargs)


def populate(fake: FakeImmich, n: int = 7) -> dict[str, str]:
    """Owned assets of every visibility plus trashed, locked and a partner's: returns name -> id."""
    partner = str(uuid.uuid4())
    fake.partner_in_timeline.add(partner)
    kinds = {
        "timeline": {},
        "archive": {"visibility": "archive"},
        "hidden": {"visibility": "hidden"},
        "trashed": {"is_trashed": True},
        "locked": {"visibility": "locked"},
    }
    ids = {}
    for kind, extra in kinds.items():
        for i in range(n if kind == "timeline" else 2):
            a = make_asset(owner_id=fake.user_id, name=f"{kind}_{i}.jpg", taken=TAKEN, size=10, checksum="c", **extra)
            ids[a["originalFileName"]] = fake.add_asset(a)["id"]
    p = make_asset(owner_id=partner, name="partner.jpg", taken=TAKEN, size=10, checksum="c")
    ids["partner.jpg"] = fake.add_asset(p)["id"]
    return ids


def expected_names(version, ids):
    wanted = {n for n in ids if n.startswith(("timeline", "archive"))}
    if version >= (1, 133, 0):
        wanted |= {n for n in ids if n.startswith("hidden")}
    return wanted


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "v" + ".".join(map(str, v)))
def test_lists_every_owned_asset_exactly_once(fake_server, version):
    fake = fake_server(version, cursor_includes_trash=version >= (3, 2, 0))
    ids = populate(fake)
    conn = connect(fake, page_size=3)
    listed = [a["originalFileName"] for a in conn.iter_assets()]
    assert len(listed) == len(set(listed))
    assert set(listed) == expected_names(version, ids)
    bodies = fake.search_requests()
    if version >= (3, 2, 0):
        assert all("filter" in b and "page" not in b for b in bodies)
    if (1, 133, 0) <= version < (3, 0, 0):
        assert {b.get("visibility") for b in bodies} == {"timeline", "archive", "hidden"}
    assert all(b["size"] <= 1000 and b.get("withExif") for b in bodies)


@pytest.mark.parametrize("version", [(2, 7, 5), (3, 1, 0), (3, 2, 0)], ids=lambda v: "v" + ".".join(map(str, v)))
def test_date_filters_are_sent_and_checked(fake_server, version):
    fake = fake_server(version)
    for day in (1, 10, 20):
        fake.add_asset(
            make_asset(
                owner_id=fake.user_id,
                name=f"d{day}.jpg",
                taken=TAKEN,
                size=1,
                checksum="c",
                updated_at=datetime(2026, 1, day, tzinfo=UTC),
            )
        )
    conn = connect(fake)
    after, before = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC)
    assert sorted(a["originalFileName"] for a in conn.iter_assets(updated_after=after)) == ["d10.jpg", "d20.jpg"]
    assert sorted(a["originalFileName"] for a in conn.iter_assets(updated_before=after)) == ["d1.jpg", "d10.jpg"]
    both = conn.iter_assets(updated_after=after, updated_before=before - (before - after) / 2)
    assert [a["originalFileName"] for a in both] == ["d10.jpg"]


@pytest.mark.parametrize(
    "version", [(1, 120, 0), (2, 7, 5), (3, 1, 0), (3, 2, 0)], ids=lambda v: "v" + ".".join(map(str, v))
)
def test_album_mode_includes_shared_assets_and_membership(fake_server, version):
    fake = fake_server(version)
    ids = populate(fake, n=3)
    album = fake.add_album("Trip", [ids["timeline_0.jpg"], ids["archive_0.jpg"], ids["partner.jpg"]])
    fake.add_tag("Travel/Paris", [ids["timeline_1.jpg"]])
    fake.add_tag("Family", [ids["timeline_1.jpg"], ids["archive_1.jpg"]])
    conn = connect(fake)
    names = {a["originalFileName"] for a in conn.iter_assets(album_id=album.id)}
    assert names == {"timeline_0.jpg", "archive_0.jpg", "partner.jpg"}
    groups = conn.albums()
    assert groups.names == {album.id: "Trip"} and groups.members[album.id] == frozenset(album.asset_ids)
    tags = conn.tags()
    if version < (1, 126, 0):  # no tagIds filter yet: sending it would return everything
        assert tags.names == {} and not any(b.get("tagIds") for b in fake.search_requests())
        return
    by_value = {tags.names[t]: m for t, m in tags.members.items()}
    assert by_value["Travel/Paris"] == {ids["timeline_1.jpg"]} and by_value["Travel"] == frozenset()
    assert by_value["Family"] == {ids["timeline_1.jpg"], ids["archive_1.jpg"]}


def test_v31_album_page_loop_stops(fake_server):
    fake = fake_server((3, 1, 0), albumids_page_loop=True)
    ids = populate(fake, n=3)
    album = fake.add_album("Trip", list(ids.values())[:3])
    conn = connect(fake, page_size=2)
    assert len(list(conn.iter_assets(album_id=album.id))) == 3
    pages = [body["page"] for body in fake.search_requests()]
    # the second page repeated: stop (page 3 may have been asked for already, as the guess ahead)
    assert sorted(pages) in ([1, 2], [1, 2, 3])


@pytest.mark.parametrize("version", [(2, 7, 5), (3, 1, 0), (3, 2, 0)], ids=lambda v: "v" + ".".join(map(str, v)))
def test_versions_list_the_same_assets_without_exif(fake_server, version):
    fake = fake_server(version, cursor_includes_trash=version >= (3, 2, 0))
    populate(fake)
    conn = connect(fake, page_size=3)
    whole = {a["id"]: (a["updatedAt"], a["originalFileName"]) for a in conn.iter_assets()}
    fake.requests.clear()
    versions = list(conn.iter_versions())
    assert {i: (u, n) for i, u, n in versions} == whole and len(versions) == len(whole)
    assert fake.search_requests() and not any(b.get("withExif") for b in fake.search_requests())


# --- a large listing of versions runs in a process of its own (VERSIONS_IN_PROCESS)
@pytest.mark.parametrize("version", [(2, 7, 5), (3, 1, 0), (3, 2, 0)], ids=lambda v: "v" + ".".join(map(str, v)))
def test_versions_listed_in_a_process_of_their_own_are_the_same_in_the_same_order(fake_server, version):
    import multiprocessing

    fake = fake_server(version, cursor_includes_trash=version >= (3, 2, 0))
    populate(fake)
    # one page in flight: the number of pages guessed ahead is the same in both
    here = connect(fake, page_size=3, pages_in_flight=1, versions_in_process=None)
    there = connect(fake, page_size=3, pages_in_flight=1, versions_in_process=1)
    assert here.count_assets() == there.count_assets()  # the listing's own count, asked beforehand by both
    listed_here = list(here.iter_versions())
    assert not multiprocessing.active_children()
    listing = there.iter_versions()
    first = next(listing)
    assert [p.name for p in multiprocessing.active_children()] == ["immich-versions"]
    assert [first, *listing] == listed_here and len(listed_here) > 3  # more than one page
    assert not multiprocessing.active_children()  # ended with the listing
    assert there.requests_made == here.requests_made  # the process's requests counted, none more


def test_where_no_process_can_start_the_versions_are_listed_here(fake_server, monkeypatch, caplog):
    import multiprocessing.context

    def refused(self):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", refused)
    fake = fake_server((3, 1, 0))
    populate(fake)
    listed = list(connect(fake, page_size=3, versions_in_process=1).iter_versions())
    assert len(listed) == len(list(connect(fake, page_size=3, versions_in_process=None).iter_versions())) > 3
    assert "listing the assets in this process (cannot start a process for it" in caplog.text


def test_a_listing_in_its_own_process_logs_here_and_catches_up_as_one_here_does(fake_server, caplog):
    fake = fake_server((3, 1, 0))
    ids = [
        fake.add_asset(make_asset(owner_id=fake.user_id, name=f"a{i:02d}.jpg", taken=TAKEN, size=i, checksum="c"))["id"]
        for i in range(40)
    ]
    order = sorted(ids, key=lambda i: (fake.assets[i]["fileCreatedAt"], i), reverse=True)

    def trash_three(f):  # listed already: the pages after them move back three places
        for asset_id in order[:3]:
            f.trash(asset_id)

    fake.after_search[2] = trash_three
    with caplog.at_level(logging.INFO, logger="immich_sync"):
        listed = [v[0] for v in connect(fake, page_size=10, pages_in_flight=1, versions_in_process=1).iter_versions()]
    assert len(listed) == len(set(listed)) and set(order[3:]) <= set(listed)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("catch up" in r.getMessage() for r in warnings), caplog.text
    assert all(r.name == "immich_sync.adapters.immich_http" for r in warnings)


def test_a_listing_in_its_own_process_fails_here_and_leaves_no_process(fake_server):
    import multiprocessing

    fake = fake_server((3, 1, 0))
    populate(fake)
    conn = connect(fake, retry=fast_retry(total=2), versions_in_process=1)
    conn.check()
    fake.faults.append(Fault("status", "/api/search/metadata", count=100, status=503))
    with pytest.raises(ImmichError) as raised:
        list(conn.iter_versions())
    assert "search/metadata" in str(raised.value) and "503" in str(raised.value)
    assert fake.api_key not in str(raised.value)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("how", ["cancel", "leave", "killed"])
def test_a_listing_in_its_own_process_stops_when_cancelled_or_left(fake_server, how):
    import multiprocessing

    fake = fake_server((3, 1, 0))
    populate(fake, n=30)
    conn = connect(fake, page_size=3, pages_in_flight=1, versions_in_process=1)
    conn.versions_batch = 3  # a page a message: the process has more to send
    listing = conn.iter_versions()
    next(listing)
    fake.latency = 0.2  # the rest comes slowly: the process is still at work
    assert multiprocessing.active_children()
    if how == "cancel":
        conn.cancel()
        with pytest.raises(ImmichError, match="cancelled"):
            list(listing)
    elif how == "killed":  # out of memory, say: the listing fails, and says so
        for process in multiprocessing.active_children():
            process.kill()
        with pytest.raises(ImmichError, match=r"ended before the listing did \(exit code -9\)"):
            list(listing)
    else:
        listing.close()
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("in_flight", [1, 2])
def test_listing_asks_for_the_next_page_before_reading_this_one(fake_server, in_flight):
    fake = fake_server((3, 1, 0))
    ids = populate(fake, n=9)
    fake.latency = 0.05  # each answer takes 50 ms: pages asked for together overlap
    # searches only: an album of several pages would otherwise be read from the timeline
    conn = connect(fake, page_size=3, pages_in_flight=in_flight, timeline=False)
    conn.check()
    fake.most_in_flight = 0
    listed = [a["id"] for a in conn.iter_assets()]
    owned = {i for name, i in ids.items() if name.startswith(("timeline", "archive", "hidden"))}
    assert len(listed) == len(owned) and set(listed) == owned  # each once, none lost to a guess
    assert fake.most_in_flight == in_flight
    pages = sorted(body["page"] for body in fake.search_requests())
    assert pages[:5] == [1, 2, 3, 4, 5] and len(pages) <= 5 + (in_flight - 1)  # at most one guess past the end
    fake.requests.clear()
    fake.add_album("Trip", list(owned))
    callers: list[str] = []
    call = conn._call

    def recording(method, path, **kwargs):
        callers.append(threading.current_thread().name)
        return call(method, path, **kwargs)

    conn._call = recording
    conn.albums()  # membership passes ask one page at a time: most albums fit in one
    assert sorted(body["page"] for body in fake.search_requests()) == [1, 2, 3, 4, 5]
    # ... each in the thread that runs the pass, not in a page thread of its own per pass
    assert callers and not any(name.startswith("immich-page") for name in callers)


def test_listing_and_both_membership_passes_at_once_keep_every_connection(fake_server, caplog):
    """The album and the tag passes run at once beside the listing, each with `workers` requests
    in flight: the connection pool keeps a connection for each, so none is closed and opened again
    (urllib3 warned "Connection pool is full, discarding connection" with a pool sized for one pass)."""
    from concurrent.futures import ThreadPoolExecutor

    fake = fake_server((3, 1, 0))
    ids = [
        fake.add_asset(make_asset(owner_id=fake.user_id, name=f"a{i}.jpg", taken=TAKEN, size=1, checksum="c"))["id"]
        for i in range(300)
    ]
    for k in range(24):
        fake.add_album(f"Album {k}", ids[k::24])
        fake.add_tag(f"Tag {k}", ids[k::24])
    fake.latency = 0.02  # requests overlap
    conn = connect(fake, page_size=50)
    conn.check()
    fake.most_in_flight = 0
    with caplog.at_level(logging.WARNING, logger="urllib3"), ThreadPoolExecutor(3) as pool:
        listed = pool.submit(lambda: sum(1 for _ in conn.iter_versions()))
        albums, tags = pool.submit(conn.albums), pool.submit(conn.tags)
        assert (listed.result(), len(albums.result().names), len(tags.result().names)) == (300, 24, 24)
    assert 2 * conn.workers < fake.most_in_flight <= 2 * conn.workers + conn.pages_in_flight  # all at once
    assert "pool is full" not in caplog.text


def test_album_errors(fake_server):
    fake = fake_server((3, 1, 0))
    conn = connect(fake)
    with pytest.raises(BadInput, match="not a UUID"):
        list(conn.iter_assets(album_id="holidays"))
    assert fake.requests == []  # rejected before any request
    with pytest.raises(AlbumNotFound, match="album 00000000-0000-4000-8000-000000000000 not found"):
        list(conn.iter_assets(album_id="00000000-0000-4000-8000-000000000000"))


def test_retries_transient_faults(fake_server):
    fake = fake_server((3, 1, 0))
    populate(fake, n=5)
    fake.faults += [
        Fault("status", "/api/search/metadata", count=2, status=503),
        Fault("status", "/api/search/metadata", count=1, status=429, retry_after=0),
        Fault("drop", "/api/search/metadata", count=1),
        Fault("slow", "/api/users/me", delay=0.2),
    ]
    conn = connect(fake)
    assert len(list(conn.iter_assets())) == 5 + 2 + 2
    # four failed tries (a request succeeds only once the faults are used up), then page 1 and
    # page 2, asked for beside it as the guess ahead (past the end: it brings nothing)
    pages = [body["page"] for body in fake.search_requests()]
    assert len(pages) == 6 and set(pages) == {1, 2}
    assert all(f.count == 0 for f in fake.faults if f.path == "/api/search/metadata")


def test_gives_up_cleanly_after_persistent_faults(fake_server):
    fake = fake_server((3, 1, 0))
    fake.faults.append(Fault("status", "/api/search/metadata", count=100, status=503))
    conn = connect(fake, retry=fast_retry(total=2))
    with pytest.raises(ImmichError) as raised:
        list(conn.iter_assets())
    assert "search/metadata" in str(raised.value) and "503" in str(raised.value)


@pytest.mark.parametrize(
    "permissions,message",
    [
        pytest.param(None, "the API key was rejected", id="401-wrong-key"),
        pytest.param({"user.read"}, "Missing required permission: asset.read", id="403-scoped-key"),
    ],
)
def test_key_rejected(fake_server, permissions, message, caplog):
    fake = fake_server((3, 1, 0), permissions=permissions)
    key = fake.api_key if permissions else "wrong-key-abcdef-123456"
    conn = ImmichConnection(ImmichConfig(url=fake.url, api_key=key), retry=fast_retry())
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ApiKeyRejected) as raised:
        list(conn.iter_assets())
    assert message in str(raised.value)
    assert key not in str(raised.value) and key not in caplog.text and key not in repr(conn)


def test_unreachable_server():
    conn = ImmichConnection(ImmichConfig(url="http://127.0.0.1:9", api_key="k"), retry=fast_retry(total=1))
    with pytest.raises(ServerUnreachable, match=re.escape("cannot reach http://127.0.0.1:9")):
        conn.check()


def test_an_unreachable_server_is_tried_once_for_all_who_ask(monkeypatch):
    conn = ImmichConnection(ImmichConfig(url="http://127.0.0.1:9", api_key="k"), retry=fast_retry(total=1))
    tries = []
    real = conn._check
    monkeypatch.setattr(conn, "_check", lambda: tries.append(1) or real())
    for _ in range(3):  # the listing and the album and tag passes each ask
        with pytest.raises(ServerUnreachable, match=re.escape("cannot reach http://127.0.0.1:9")):
            conn.check()
    assert tries == [1]


def test_check_is_made_once_when_threads_ask_together(fake_server):
    from concurrent.futures import ThreadPoolExecutor

    fake = fake_server((3, 1, 0))
    conn = connect(fake)
    with ThreadPoolExecutor(4) as pool:
        infos = list(pool.map(lambda _: conn.check(), range(4)))
    assert len(set(infos)) == 1 and infos[0].user_id == fake.user_id
    assert sum(1 for _, path, _ in fake.requests if path == "/api/users/me") == 1


def test_too_old_server(fake_server):
    conn = connect(fake_server((1, 90, 0)))
    with pytest.raises(ImmichError, match="too old"):
        conn.check()


def test_url_with_api_and_trailing_slash(fake_server):
    fake = fake_server((3, 1, 0))
    for url in (fake.url, fake.url + "/", fake.url + "/api", fake.url + "/api/"):
        assert ImmichConnection(ImmichConfig(url=url, api_key=fake.api_key)).check().version == (3, 1, 0)


def test_count_assets_by_version(fake_server):
    old = connect(fake_server((1, 120, 0)))
    assert old.count_assets() is None
    fake = fake_server((2, 7, 5))
    populate(fake, n=4)
    assert connect(fake).count_assets() == 4 + 2 + 2 + 1  # owned per visibility, partner's timeline asset too


@pytest.mark.parametrize("version", sorted(RECORDED))
def test_recorded_real_server_contents(version):
    """The fake holding exactly what the real server held: 60 asset records, of which one trashed,
    three the partner's and the locked one invisible: 56 listed."""
    with FakeImmich.from_recorded(RECORDED[version]) as fake:
        conn = connect(fake)
        assets = list(conn.iter_assets())
        assert len(assets) == 56 and len({a["id"] for a in assets}) == 56
        assert all(a["ownerId"] == fake.user_id and not a["isTrashed"] for a in assets)
        assert {a["visibility"] for a in assets} == {"timeline", "archive", "hidden"}
        albums = conn.albums()
        assert sorted(len(m) for m in albums.members.values()) == [3, 5]


def test_a_listing_keeps_its_pace_while_another_thread_is_busy(fake_server):
    """Each socket read gives up the GIL and waits to get it back: read in 10 KB pieces (requests'
    `.content`), a page of 1,000 assets took ~0.7 s while another thread computed. Counted, not
    timed: the number of reads of the socket per page stays small."""
    import socket

    fake = fake_server((3, 1, 0))
    for i in range(300):
        fake.add_asset(make_asset(owner_id=fake.user_id, name=f"IMG_{i:04d}.JPG", taken=TAKEN, size=10, checksum="c"))
    conn = connect(fake)
    conn.check()
    reads = []
    real = socket.socket.recv_into

    def counted(self, *args, **kwargs):
        reads.append(1)
        return real(self, *args, **kwargs)

    socket.socket.recv_into = counted
    try:
        body = len(list(conn.iter_assets()))
    finally:
        socket.socket.recv_into = real
    assert body == 300 and len(reads) < 20
