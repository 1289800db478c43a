"""A fake Immich server on 127.0.0.1 for tests, the demo and the benchmarks.

It keeps assets, albums and tags in memory and answers like a real server of a chosen version
(FACTS.md): v1.1xx (`withArchived`, no visibility, albums carry their assets), v2.x (one visibility
per query, default timeline), v3.0/3.1 (omitted visibility = all but locked; albums without assets;
optionally v3.1.0's albumIds paging loop, #31311) and v3.2 (the cursor shape; optionally 3.2.0's
trash-by-default, #31511). Filters the version lacks are ignored silently, as Immich does.
It can load the real servers' bodies recorded in `real-payloads/recorded-v*` and serve them, and
it injects faults: 5xx bursts, 429 with Retry-After, slow answers, dropped connections, 401/403.

What real servers do that a client can get wrong, modelled here (FACTS.md, "More, confirmed"):
- `updatedAt` is kept with microseconds (`extra_microseconds` past the returned milliseconds), and
  the date filters compare the kept value: `updatedBefore = <a returned updatedAt>` leaves it out;
- offset paging: `after_search[k]` runs a change (trash, upload, edit) right after the k-th search
  page is answered, so later pages shift as on a live server;
- before v3.2 `withExif: true` is an inner join: assets in `no_exif` (metadata never extracted)
  drop out of such a listing; the v3.2 filter shape, statistics and a listing without EXIF keep them;
- v3.2+ answers the deprecated flat fields with a `Deprecation` header and records them in
  `deprecated_seen`; a 4.x server refuses them with a 400 naming the property;
- `extra_keys` maps further API keys to other users (`GET /users/me`), as another account would;
- the timeline (`GET /api/timeline/buckets` and `/bucket`, v2.x and v3.x, server
  `asset.repository.ts` getTimeBuckets/getTimeBucket): the user's own assets (an album's whoever
  owns them), not trashed, visibility timeline + archive unless one is asked for, a tag with its
  descendants, one bucket per month of `localDateTime`; a bucket's columns come from an inner join
  on the EXIF table, so an asset in `no_exif` is counted in the bucket list but missing from its bucket.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import orjson
from attrs import define, field

T = TypeVar("T")

Version = tuple[int, int, int]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
CURSOR_KEYS = {"filter", "orderBy", "cursor"}
FLAT_FILTERS = {
    "albumIds",
    "tagIds",
    "visibility",
    "updatedAfter",
    "updatedBefore",
    "withArchived",
    "withDeleted",
    "page",
    "order",
    "isFavorite",
    "type",
    "libraryId",
    "takenAfter",
    "takenBefore",
}


@define
class Fault:
    """What to do to the next `count` requests whose path starts with `path`."""

    kind: str  # "status" | "drop" | "slow"
    path: str = "/api/"
    count: int = 1
    status: int = 503
    retry_after: int | None = None
    delay: float = 0.0
    message: str = "Service Unavailable"


@define
class FakeAlbum:
    id: str
    name: str
    owner_id: str
    asset_ids: list[str] = field(factory=list)
    raw: dict[str, Any] | None = None
    updated_at: str = "2026-11-01T00:00:00.000Z"  # moved by adding or removing assets (FACTS.md)


@define
class FakeTag:
    id: str
    value: str
    parent_id: str | None = None
    asset_ids: set[str] = field(factory=set)
    raw: dict[str, Any] | None = None


class _QuietServer(ThreadingHTTPServer):
    """A client that went away (a killed or interrupted run) is not the server's error to print."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def _visibility(raw: dict[str, Any]) -> str:
    """An asset's visibility, from `isArchived` for assets recorded before visibility existed."""
    return raw.get("visibility") or ("archive" if raw.get("isArchived") else "timeline")


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FakeImmich:
    def __init__(
        self,
        version: Version = (3, 1, 0),
        *,
        api_key: str = "fake-api-key-0123456789",
        user_id: str | None = None,
        permissions: set[str] | None = None,
        albumids_page_loop: bool = False,
        cursor_includes_trash: bool = False,
        latency: float = 0.0,
        extra_microseconds: int = 456,
    ) -> None:
        self.version = version
        self.api_key = api_key
        self.user_id = user_id or str(uuid.uuid4())
        self.user_email = "admin@example.com"
        self.permissions = permissions  # None: all
        self.albumids_page_loop = albumids_page_loop
        self.cursor_includes_trash = cursor_includes_trash
        self.latency = latency
        self.assets: dict[str, dict[str, Any]] = {}
        self.partner_in_timeline: set[str] = set()  # owner ids whose assets show in our timeline
        self.albums: dict[str, FakeAlbum] = {}
        self.tags: dict[str, FakeTag] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.thumbnails: dict[str, bytes] = {}  # asset id -> its preview bytes (else a generated one)
        self.updates: list[dict[str, Any]] = []  # the bodies of PUT /api/assets accepted
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.in_flight = 0  # requests being answered now, and the most ever at once
        self.most_in_flight = 0
        self.users_me: dict[str, Any] | None = None
        self.extra_microseconds = extra_microseconds
        self.no_exif: set[str] = set()  # assets whose metadata was never extracted (no EXIF row)
        self.after_search: dict[int, Any] = {}  # k -> fn(fake), run after the k-th search page
        self.searches_served = 0
        self.timeline_requests: list[dict[str, str]] = []  # the query of every timeline request
        self.after_buckets: list[Any] = []  # fn(fake), each run after a bucket list is answered
        self.deprecated_seen: list[str] = []  # flat fields a v3.2+ client sent
        self.extra_keys: dict[str, str] = {}  # API key -> the user id it belongs to
        self.refused_properties: set[str] = set()  # 4.x: properties it answers with a 400
        self.search_without_items = False  # answer searches with an `assets` lacking `items`
        self._lock = threading.Lock()
        self._changes = 0
        self._memo: dict[str, tuple[Any, Any]] = {}
        self._computing: dict[str, threading.Lock] = {}  # a lock per memo key (`_memoised`)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- data
    def add_asset(self, raw: dict[str, Any]) -> dict[str, Any]:
        self.assets[raw["id"]] = raw
        self.changed()
        return raw

    def add_album(
        self, name: str, asset_ids: Iterable[str] = (), *, album_id: str | None = None, owner_id: str | None = None
    ) -> FakeAlbum:
        album = FakeAlbum(album_id or str(uuid.uuid4()), name, owner_id or self.user_id, list(asset_ids))
        self.albums[album.id] = album
        self.changed()
        return album

    def add_tag(self, value: str, asset_ids: Iterable[str] = (), *, tag_id: str | None = None) -> FakeTag:
        parent = None
        if "/" in value:
            parent_value = value.rsplit("/", 1)[0]
            parent = next((t for t in self.tags.values() if t.value == parent_value), None) or self.add_tag(
                parent_value
            )
        tag = FakeTag(tag_id or str(uuid.uuid4()), value, parent.id if parent else None, set(asset_ids))
        self.tags[tag.id] = tag
        self.changed()
        return tag

    # --- edits as the real server makes them (FACTS.md, confirmed on v3.1.0): tagging and untagging
    # move the asset's updatedAt; album edits move the album's updatedAt and assetCount, not the
    # asset's; deleting a tag (and with it its children) moves nothing.
    def now_text(self) -> str:
        """A server clock that never repeats a millisecond."""
        moment = max(datetime.now(UTC), self._clock + timedelta(milliseconds=1))
        self._clock = moment
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def tag_asset(self, tag_id: str, asset_id: str) -> None:
        self.tags[tag_id].asset_ids.add(asset_id)
        self.touch(asset_id, self.now_text())

    def untag_asset(self, tag_id: str, asset_id: str) -> None:
        self.tags[tag_id].asset_ids.discard(asset_id)
        self.touch(asset_id, self.now_text())

    def delete_tag(self, tag_id: str) -> None:
        for child in [t.id for t in self.tags.values() if t.parent_id == tag_id]:
            self.delete_tag(child)
        self.tags.pop(tag_id, None)
        self.changed()

    def album_add(self, album_id: str, asset_ids: Iterable[str]) -> None:
        album = self.albums[album_id]
        album.asset_ids.extend(i for i in asset_ids if i not in album.asset_ids)
        album.updated_at = self.now_text()
        self.changed()

    def album_remove(self, album_id: str, asset_ids: Iterable[str]) -> None:
        album = self.albums[album_id]
        gone = set(asset_ids)
        album.asset_ids[:] = [i for i in album.asset_ids if i not in gone]
        album.updated_at = self.now_text()
        self.changed()

    def delete_album(self, album_id: str) -> None:
        self.albums.pop(album_id, None)
        self.changed()

    def touch(self, asset_id: str, updated_at: str) -> None:
        self.assets[asset_id] = {**self.assets[asset_id], "updatedAt": updated_at}
        self.changed()

    def update_assets(self, body: Any, *, single: bool = False) -> tuple[int, Any]:
        """`PUT /api/assets` (AssetBulkUpdateDto; v2.x+ takes `description`) and `PUT /api/assets/{id}`:
        the edit lands in exifInfo and moves the asset's updatedAt (FACTS.md: confirmed on v3.1.0)."""
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list) or not body["ids"]:
            return self.error(400, ["ids must be an array"], "Bad Request")
        if "description" in body and not isinstance(body["description"], str):
            return self.error(400, ["description must be a string"], "Bad Request")
        if not single and "description" in body and self.version < (2, 0, 0):
            return self.error(400, ["property description should not exist"], "Bad Request")
        ids = body["ids"]
        if any(not isinstance(i, str) or not UUID.match(i) for i in ids):
            return self.error(400, ["each value in ids must be a UUID"], "Bad Request")
        if any(i not in self.assets or self.assets[i].get("ownerId") != self.user_id for i in ids):
            return self.error(400, "Not found or no asset.update access", "Bad Request")
        moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for asset_id in ids:
            raw = self.assets[asset_id]
            exif = dict(raw.get("exifInfo") or {})
            if "description" in body:
                exif["description"] = body["description"]
            if "rating" in body:
                exif["rating"] = body["rating"]
            self.assets[asset_id] = {**raw, "exifInfo": exif, "updatedAt": moment}
        self.updates.append(body)
        self.changed()
        return (200, self.assets[ids[0]]) if single else (204, None)

    def trash(self, asset_id: str, when: str = "2026-12-01T00:00:00.000Z") -> None:
        """Move an asset to the trash, as the web UI does: `isTrashed`, and `updatedAt` moves."""
        self.assets[asset_id] = {**self.assets[asset_id], "isTrashed": True, "updatedAt": when}
        self.changed()

    def stored_updated_at(self, raw: dict[str, Any]) -> datetime:
        """The updatedAt the database keeps: the returned milliseconds plus some microseconds."""
        return _instant(raw["updatedAt"]) + timedelta(microseconds=self.extra_microseconds)

    def changed(self) -> None:
        """Call after changing `assets`, `albums` or `tags` in place (add_* and touch call it)."""
        self._changes += 1

    @classmethod
    def from_recorded(cls, folder: str | Path, **kwargs: Any) -> FakeImmich:
        """A fake holding exactly what a recorded real server held (bodies unchanged)."""
        folder = Path(folder)

        def load(name: str) -> Any:
            return json.loads((folder / name).read_text())

        version = tuple(load("server-version.json")[k] for k in ("major", "minor", "patch"))
        me = load("users-me.json")
        fake = cls(version, user_id=me["id"], **kwargs)
        fake.users_me = me
        for name in (
            "search-metadata_withDeleted.json",
            "search-metadata_visibility-timeline.json",
            "search-metadata_visibility-archive.json",
            "search-metadata_visibility-hidden.json",
        ):
            for raw in load(name)["assets"]["items"]:
                fake.assets.setdefault(raw["id"], raw)
        for raw in fake.assets.values():
            if raw["ownerId"] != me["id"]:
                fake.partner_in_timeline.add(raw["ownerId"])
        index = load("_index.json")
        for album in load("albums.json"):
            fake.albums[album["id"]] = FakeAlbum(
                album["id"], album["albumName"], album.get("ownerId") or me["id"], [], raw=album
            )
        for entry in index:
            body = entry.get("body") or {}
            if entry["status"] == 200 and body.get("albumIds") and entry["method"] == "POST":
                ids = [a["id"] for a in load(entry["file"])["assets"]["items"]]
                album = fake.albums.get(body["albumIds"][0])
                if album is not None:
                    album.asset_ids.extend(i for i in ids if i not in album.asset_ids)
        for tag in load("tags.json"):
            fake.tags[tag["id"]] = FakeTag(tag["id"], tag["value"], tag.get("parentId"), raw=tag)
        for entry in index:
            if entry["file"].startswith("asset_") and entry["status"] == 200:
                asset = load(entry["file"])
                for tag in asset.get("tags") or []:
                    fake.tags[tag["id"]].asset_ids.add(asset["id"])
            body = entry.get("body") or {}
            if entry["status"] == 200 and len(body.get("tagIds") or []) == 1:
                tag = fake.tags[body["tagIds"][0]]
                if not any(t.parent_id == tag.id for t in fake.tags.values()):  # leaf: direct members
                    tag.asset_ids.update(a["id"] for a in load(entry["file"])["assets"]["items"])
        return fake

    # --- server
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        address: Any = self._server.server_address
        host, port = address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> FakeImmich:
        """Serve on 127.0.0.1: on `port`, or on a free one (0)."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _QuietServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-immich")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeImmich:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def search_requests(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if path == "/api/search/metadata"]

    # --- behaviour
    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.path) and fault.count > 0:
                    fault.count -= 1
                    return fault
        return None

    def error(self, status: int, message: Any, error: str = "Bad Request") -> tuple[int, Any]:
        if self.version >= (3, 0, 0):
            return status, {"message": message}
        return status, {"message": message, "error": error, "statusCode": status, "correlationId": uuid.uuid4().hex[:8]}

    def visible(self, raw: dict[str, Any], body: dict[str, Any]) -> bool:
        """The owner rule: our own assets, and partners' timeline assets (not with albumIds)."""
        return raw["ownerId"] == self.user_id or (
            raw["ownerId"] in self.partner_in_timeline and raw.get("visibility", "timeline") == "timeline"
        )

    def _visibility_ok(self, raw: dict[str, Any], body: dict[str, Any]) -> bool:
        vis = _visibility(raw)
        if vis == "locked":
            return False
        if self.version < (1, 133, 0):
            return vis == "timeline" or (vis == "archive" and bool(body.get("withArchived")))
        wanted = body.get("visibility")
        if wanted is None:
            return vis == "timeline" if self.version < (3, 0, 0) else True
        return vis == wanted

    def search(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return self.error(400, ["body must be an object"])
        size = body.get("size", 250)
        if not isinstance(size, int) or not 1 <= size <= 1000:
            return self.error(
                400,
                "size must not be greater than 1000"
                if isinstance(size, int) and size > 1000
                else "size must be a number from 1 to 1000",
            )
        cursor_mode = self.version >= (3, 2, 0) and bool(CURSOR_KEYS & body.keys())
        refused = self._check_shape(body)
        if refused is not None:
            return refused
        if cursor_mode and FLAT_FILTERS & body.keys():
            return self.error(400, "Cannot mix cursor search fields with legacy filters")
        if body.get("visibility") == "locked":
            return self.error(401, "Elevated permission is required", "Unauthorized")
        for key in ("updatedAfter", "updatedBefore"):
            if key in body and (
                not isinstance(body[key], str) or (self.version >= (3, 0, 0) and not ISO_DATETIME.match(body[key]))
            ):
                return self.error(
                    400, "Validation failed" if self.version >= (3, 0, 0) else [f"{key} must be a Date instance"]
                )
        matches = self._matches(body, cursor_mode)
        with_exif = bool(body.get("withExif"))
        if cursor_mode:
            start = int(base64.b64decode(body["cursor"]).decode()) if body.get("cursor") else 0
            page = matches[start : start + size]
            more = start + size < len(matches)
            next_page, next_cursor = None, (base64.b64encode(str(start + size).encode()).decode() if more else None)
        elif self.albumids_page_loop and body.get("albumIds"):
            page, next_page, next_cursor = matches, "2", None  # v3.1.0: size ignored, nextPage forever
        else:
            number = int(body.get("page") or 1)
            page = matches[(number - 1) * size : number * size]
            next_page = str(number + 1) if number * size < len(matches) else None
            next_cursor = None
        items = [self._search_item(raw, with_exif) for raw in page]
        assets = {"total": len(items), "count": len(items), "items": items, "facets": [], "nextPage": next_page}
        if self.version >= (3, 2, 0):
            assets["nextCursor"] = next_cursor
        if self.search_without_items:
            assets = {"total": 0, "count": 0, "facets": []}
        with self._lock:
            self.searches_served += 1
            hook = self.after_search.pop(self.searches_served, None)
        if hook is not None:  # the library changes right after this page: later pages shift
            hook(self)
            self.changed()
        return 200, {"albums": {"total": 0, "count": 0, "items": [], "facets": []}, "assets": assets}

    def _check_shape(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        """v3.2 deprecates the flat fields (recorded, with a header); v4 refuses them."""
        if self.version >= (4, 0, 0) and self.refused_properties & body.keys():
            return 400, {
                "message": [
                    f"property {name} should not exist" for name in sorted(self.refused_properties & body.keys())
                ],
                "error": "Bad Request",
                "statusCode": 400,
            }
        flat = sorted(FLAT_FILTERS & body.keys())
        if not flat or self.version < (3, 2, 0):
            return None
        if self.version >= (4, 0, 0):
            return 400, {
                "message": [f"property {name} should not exist" for name in flat],
                "error": "Bad Request",
                "statusCode": 400,
            }
        with self._lock:
            self.deprecated_seen.extend(flat)
        return None

    def _matches(self, body: dict[str, Any], cursor_mode: bool) -> list[dict[str, Any]]:
        """The sorted matches of a query, memoised per query while the data is unchanged (so that a
        benchmark pays for paging, not for re-sorting 100,000 assets on every page)."""
        key = json.dumps({k: v for k, v in body.items() if k not in ("page", "cursor", "size")}, sort_keys=True) + str(
            cursor_mode
        )

        def matches() -> list[dict[str, Any]]:
            found = self._cursor_matches(body) if cursor_mode else self._flat_matches(body)
            found.sort(key=lambda a: (a.get("fileCreatedAt") or "", a["id"]), reverse=True)
            return found

        return self._memoised(key, matches)

    def _search_item(self, raw: dict[str, Any], with_exif: bool) -> dict[str, Any]:
        item = {k: v for k, v in raw.items() if k not in ("tags", "owner", "stack")}
        if not with_exif or raw["id"] in self.no_exif:
            item.pop("exifInfo", None)
        return item

    def _flat_matches(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        album_ids = body.get("albumIds") if self.version >= (1, 135, 0) else None
        tag_ids = body.get("tagIds") if self.version >= (1, 126, 0) else None
        wanted: set[str] = set()
        for tag_id in tag_ids or ():
            wanted |= self._tag_members(tag_id)
        if tag_ids and not album_ids:
            pool = [self.assets[i] for i in sorted(wanted) if i in self.assets and self.visible(self.assets[i], body)]
        else:
            pool = self._owned_or_in_albums(list(self.assets.values()), album_ids, body)
            if tag_ids:
                pool = [a for a in pool if a["id"] in wanted]
        if not body.get("withDeleted"):
            pool = [a for a in pool if not a.get("isTrashed")]
        pool = [a for a in pool if self._visibility_ok(a, body)]
        if body.get("withExif") and self.no_exif:  # the legacy builder's inner join on the EXIF table
            pool = [a for a in pool if a["id"] not in self.no_exif]
        after, before = body.get("updatedAfter"), body.get("updatedBefore")
        if after:
            pool = [a for a in pool if self.stored_updated_at(a) >= _instant(after)]
        if before:
            pool = [a for a in pool if self.stored_updated_at(a) <= _instant(before)]
        return pool

    def _cursor_matches(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        filters = body.get("filter") or {}
        pool = list(self.assets.values())
        album_ids = (filters.get("albumIds") or {}).get("all")
        tagged = (filters.get("tagIds") or {}).get("any")
        if tagged and not album_ids:  # a tag search: the owner rule, as the flat tagIds search
            pool = [a for a in pool if self.visible(a, body)]
        else:
            pool = self._owned_or_in_albums(pool, album_ids, body)
        trashed = filters.get("trashedAt")
        if trashed == {"eq": None} or not self.cursor_includes_trash:
            pool = [a for a in pool if not a.get("isTrashed")]
        visibility = (filters.get("visibility") or {}).get("in")
        pool = [
            a
            for a in pool
            if a.get("visibility") != "locked" and (visibility is None or a.get("visibility", "timeline") in visibility)
        ]
        tag_ids = (filters.get("tagIds") or {}).get("any")
        if tag_ids:
            wanted: set[str] = set()
            for tag_id in tag_ids:
                wanted |= self._tag_members(tag_id)
            pool = [a for a in pool if a["id"] in wanted]
        updated = filters.get("updatedAt") or {}
        checks = {"gte": datetime.__ge__, "gt": datetime.__gt__, "lte": datetime.__le__, "lt": datetime.__lt__}
        for op, check in checks.items():
            if op in updated:
                bound = _instant(updated[op])
                pool = [a for a in pool if check(self.stored_updated_at(a), bound)]
        return pool

    def _owned_or_in_albums(
        self, pool: list[dict[str, Any]], album_ids: list[str] | None, body: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """With albumIds: the assets in all those albums, whoever owns them; else the owner rule."""
        if not album_ids:
            return [a for a in pool if self.visible(a, body)]
        members = set.intersection(*(set(self.albums[a].asset_ids) if a in self.albums else set() for a in album_ids))
        return [self.assets[i] for i in sorted(members) if i in self.assets]

    def _tag_members(self, tag_id: str) -> set[str]:
        tag = self.tags.get(tag_id)
        if tag is None:
            return set()
        found = set(tag.asset_ids)
        for child in self.tags.values():
            if child.parent_id == tag_id:
                found |= self._tag_members(child.id)
        return found

    def statistics(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.version < (1, 135, 0):
            return self.error(404, "Cannot POST /api/search/statistics", "Not Found")
        refused = self._check_shape(body)
        if refused is not None:
            return refused
        if self.version >= (3, 2, 0) and "filter" in body:
            return 200, {"total": len(self._cursor_matches(body))}
        matches = self._matches({k: v for k, v in body.items() if k != "withDeleted"}, False)  # ignored, as on v3.1
        return 200, {"total": len(matches or [])}

    def timeline(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            self.timeline_requests.append(dict(query))
        if self.version < (2, 0, 0):  # v1.x wanted `size` and answered whole assets: not modelled
            return self.error(400, ["size must be one of the following values: DAY, MONTH"])
        for name in ("tagId", "albumId", "userId"):
            if name in query and not UUID.match(query[name]):
                return self.error(400, "Validation failed" if self.version >= (3, 0, 0) else [f"{name} must be a UUID"])
        visibility = query.get("visibility")
        if visibility == "locked":
            return self.error(401, "Elevated permission is required", "Unauthorized")
        if "albumId" in query and query["albumId"] not in self.albums:
            return self.error(400, "Not found or no album.read access")
        if "tagId" in query and query["tagId"] not in self.tags:
            return self.error(400, "Not found or no tag.read access")
        months = self._timeline_months({k: v for k, v in query.items() if k != "timeBucket"})
        if path.endswith("/buckets"):
            listed = [{"timeBucket": month, "count": len(months[month])} for month in sorted(months, reverse=True)]
            with self._lock:
                hook = self.after_buckets.pop(0) if self.after_buckets else None
            if hook is not None:  # the library changes between a bucket list and its buckets
                hook(self)
                self.changed()
            return 200, listed
        if "timeBucket" not in query:
            message = "Validation failed" if self.version >= (3, 0, 0) else ["timeBucket must be a string"]
            return self.error(400, message)
        rows = [raw for raw in months.get(query["timeBucket"][:10], []) if raw["id"] not in self.no_exif]
        return 200, self._bucket_columns(rows)

    def _timeline_months(self, query: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        """The assets a timeline query selects, by month ("YYYY-MM-01"), newest first; memoised
        per query while the data is unchanged."""

        def grouped() -> dict[str, list[dict[str, Any]]]:
            wanted = query.get("visibility")
            months: dict[str, list[dict[str, Any]]] = {}
            for raw in self._timeline_pool({k: v for k, v in query.items() if k != "visibility"}):
                vis = _visibility(raw)
                if vis == wanted or (wanted is None and vis in ("timeline", "archive")):
                    months.setdefault((raw.get("localDateTime") or "1970-01")[:7] + "-01", []).append(raw)
            return months

        return self._memoised("timeline " + json.dumps(query, sort_keys=True), grouped)

    def _timeline_pool(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """What a timeline query selects before its visibility, newest first (one pass for the
        three visibilities a client asks a tag's or an album's months for)."""

        def pool() -> list[dict[str, Any]]:
            if "albumId" in query:
                selected = [self.assets[i] for i in self.albums[query["albumId"]].asset_ids if i in self.assets]
                if "tagId" in query:
                    tagged = self._tag_members(query["tagId"])
                    selected = [a for a in selected if a["id"] in tagged]
            else:
                # from the tag's members, as the server's index on tag_asset does, not the whole library
                owner = query.get("userId") or self.user_id
                candidates = (
                    (self.assets[i] for i in self._tag_members(query["tagId"]) if i in self.assets)
                    if "tagId" in query
                    else self.assets.values()
                )
                selected = [a for a in candidates if a["ownerId"] == owner]
            trashed = query.get("isTrashed") == "true"
            selected = [a for a in selected if bool(a.get("isTrashed")) == trashed]
            if "isFavorite" in query:
                selected = [a for a in selected if bool(a.get("isFavorite")) == (query["isFavorite"] == "true")]
            # (the id decides between equal times: the members of a tag come in no particular order)
            selected.sort(
                key=lambda a: (a.get("localDateTime") or "", a.get("fileCreatedAt") or "", a["id"]), reverse=True
            )
            return selected

        return self._memoised("timeline pool " + json.dumps(query, sort_keys=True), pool)

    def _memoised(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()`, kept while the data is unchanged. One request computes it while the
        others asking for the same key wait (a client's first pages arrive together: each
        sorting the whole library would be the benchmark's server work, not the client's)."""
        with self._lock:
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:
                fingerprint = (len(self.assets), self._changes)
                if self._memo.get(key, (None,))[0] == fingerprint:
                    return self._memo[key][1]
            value = compute()
            with self._lock:
                if len(self._memo) > 4096:  # (a key's lock made again meanwhile: computed twice, the same)
                    self._memo.clear()
                    self._computing = {key: computing}
                self._memo[key] = (fingerprint, value)
        return value

    _BUCKET_FIELDS = (
        "city",
        "country",
        "duration",
        "fileCreatedAt",
        "id",
        "isFavorite",
        "isImage",
        "isTrashed",
        "livePhotoVideoId",
        "localOffsetHours",
        "ownerId",
        "projectionType",
        "ratio",
        "thumbhash",
        "visibility",
    )

    def _bucket_columns(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """A TimeBucketAssetResponseDto: one array per field (v3: `createdAt`, durations in ms)."""
        fields = self._BUCKET_FIELDS + (("createdAt",) if self.version >= (3, 0, 0) else ())
        # each asset's row, memoised while the data is unchanged (a tag's and an album's buckets
        # hold the same assets): the benchmark's server shares the client's two cores
        cells: dict[str, tuple[Any, ...]] = self._memoised("bucket rows", dict)
        table = [cells.get(raw["id"]) or cells.setdefault(raw["id"], self._bucket_row(raw)) for raw in rows]
        return {name: [row[i] for row in table] for i, name in enumerate(fields)}

    def _bucket_row(self, raw: dict[str, Any]) -> tuple[Any, ...]:
        exif = raw.get("exifInfo") or {}
        text = raw.get("duration") or "0:00:00.00000"
        if self.version < (3, 0, 0):
            duration: Any = text
        elif raw.get("type") == "IMAGE":
            duration = None
        else:
            hours, minutes, seconds = text.split(":")
            duration = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)
        local, utc = raw.get("localDateTime"), raw.get("fileCreatedAt")
        return (
            exif.get("city"),
            exif.get("country"),
            duration,
            raw.get("fileCreatedAt"),
            raw["id"],
            bool(raw.get("isFavorite")) and raw["ownerId"] == self.user_id,
            raw.get("type") == "IMAGE",
            bool(raw.get("isTrashed")),
            raw.get("livePhotoVideoId"),
            (_instant(local) - _instant(utc)).total_seconds() / 3600 if local and utc else 0.0,
            raw["ownerId"],
            exif.get("projectionType"),
            round((exif.get("exifImageWidth") or 1) / (exif.get("exifImageHeight") or 1), 3),
            raw.get("thumbhash"),
            _visibility(raw),
            raw.get("createdAt"),
        )

    def album_body(self, album: FakeAlbum, with_assets: bool) -> dict[str, Any]:
        body = (
            dict(album.raw)
            if album.raw
            else {
                "albumName": album.name,
                "description": "",
                "albumThumbnailAssetId": None,
                "createdAt": "2026-11-01T00:00:00.000Z",
                "updatedAt": album.updated_at,
                "id": album.id,
                "albumUsers": [],
                "shared": False,
                "hasSharedLink": False,
                "assetCount": len(album.asset_ids),
                "isActivityEnabled": True,
                "order": "desc",
            }
        )  # startDate, endDate and lastModifiedAssetTimestamp are absent for an album never filled
        if self.version < (3, 0, 0):
            body.setdefault("ownerId", album.owner_id)
            body["assets"] = [self.assets[i] for i in album.asset_ids if i in self.assets] if with_assets else []
        return body

    def tag_body(self, tag: FakeTag) -> dict[str, Any]:
        if tag.raw:
            return tag.raw
        body = {
            "id": tag.id,
            "name": tag.value.rsplit("/", 1)[-1],
            "value": tag.value,
            "createdAt": "2026-11-01T00:00:00.000Z",
            "updatedAt": "2026-11-01T00:00:00.000Z",
        }
        if tag.parent_id:
            body["parentId"] = tag.parent_id
        return body

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        if path == "/.well-known/immich":
            return 200, {"api": {"endpoint": "/api"}}
        if path == "/api/server/ping":
            return 200, {"res": "pong"}
        if path == "/api/server/version":
            major, minor, patch = self.version
            body_v: dict[str, Any] = {"major": major, "minor": minor, "patch": patch}
            if self.version >= (3, 0, 0):
                body_v["prerelease"] = None
            return 200, body_v
        key = headers.get("x-api-key")
        if key in self.extra_keys and path == "/api/users/me":
            return 200, {
                "id": self.extra_keys[key],
                "email": "other@example.com",
                "name": "Other User",
                "profileImagePath": "",
                "avatarColor": "blue",
                "profileChangedAt": "2026-11-01T00:00:00.000Z",
            }
        if key != self.api_key and key not in self.extra_keys:
            return self.error(401, "Invalid API key" if key else "Authentication required", "Unauthorized")
        needed = _permission(method, path)
        if self.permissions is not None and needed and needed not in self.permissions:
            return self.error(403, f"Missing required permission: {needed}", "Forbidden")
        if path == "/api/users/me":
            return 200, self.users_me or {
                "id": self.user_id,
                "email": self.user_email,
                "name": "Admin User",
                "profileImagePath": "",
                "avatarColor": "gray",
                "profileChangedAt": "2026-11-01T00:00:00.000Z",
            }
        if path == "/api/search/metadata" and method == "POST":
            return self.search(body)
        if path == "/api/search/statistics" and method == "POST":
            return self.statistics(body or {})
        if path == "/api/albums" and method == "GET":
            return 200, [self.album_body(a, with_assets=False) for a in self.albums.values()]
        if path.startswith("/api/albums/") and method == "GET":
            album_id = path.rsplit("/", 1)[-1]
            if not UUID.match(album_id):
                return self.error(400, ["id must be a UUID"] if self.version < (3, 0, 0) else "Validation failed")
            album = self.albums.get(album_id)
            if album is None:
                return self.error(400, "Not found or no album.read access")
            with_assets = query.get("withoutAssets", ["false" if self.version < (3, 0, 0) else "true"])[0] != "true"
            return 200, self.album_body(album, with_assets)
        if path == "/api/tags" and method == "GET":
            return 200, [self.tag_body(t) for t in self.tags.values()]
        if path in ("/api/timeline/buckets", "/api/timeline/bucket") and method == "GET":
            return self.timeline(path, {k: v[-1] for k, v in query.items()})
        if path == "/api/assets" and method == "PUT":
            return self.update_assets(body)
        if path.startswith("/api/assets/") and method == "PUT":
            return self.update_assets({**(body or {}), "ids": [path.rsplit("/", 1)[-1]]}, single=True)
        thumbnail = _THUMBNAIL.match(path)
        if thumbnail and method == "GET":
            new = path.startswith("/api/assets/")
            if new != (self.version >= (1, 106, 0)):
                return self.error(404, f"Cannot {method} {path}", "Not Found")
            asset_id = thumbnail.group("new") or thumbnail.group("old")
            raw = self.assets.get(asset_id)
            if raw is None or raw.get("visibility") == "locked":
                return self.error(400, "Not found or no asset.read access")
            return 200, Binary(self.thumbnails.get(asset_id) or tiny_jpeg(asset_id), "image/jpeg")
        if path.startswith("/api/assets/") and method == "GET":
            raw = self.assets.get(path.rsplit("/", 1)[-1])
            if raw is None or raw.get("visibility") == "locked":
                return self.error(400, "Not found or no asset.read access")
            tags = [self.tag_body(t) for t in self.tags.values() if raw["id"] in t.asset_ids]
            whole = {**raw, "tags": tags}
            if raw["id"] in self.no_exif:
                whole.pop("exifInfo", None)
            return 200, whole
        return self.error(404, f"Cannot {method} {path}", "Not Found")


MAX_BODY = 10 << 20
_THUMBNAIL = re.compile(r"^/api/(?:assets/(?P<new>[^/]+)/thumbnail|asset/thumbnail/(?P<old>[^/]+))$")


class Binary:
    """A response that is not JSON: the bytes and their content type (a thumbnail)."""

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data, self.content_type = data, content_type


def tiny_jpeg(seed: str) -> bytes:
    """A small JPEG whose colour follows `seed`, as Immich's preview of an asset (Pillow)."""
    import hashlib
    import io

    from PIL import Image

    r, g, b = hashlib.sha1(seed.encode()).digest()[:3]
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (r, g, b)).save(out, "JPEG")
    return out.getvalue()


def _permission(method: str, path: str) -> str | None:
    if path.startswith("/api/assets") and method == "PUT":
        return "asset.update"
    if path.startswith("/api/search") or path.startswith("/api/assets"):
        return "asset.read"
    if path.startswith("/api/albums"):
        return "album.read"
    if path.startswith("/api/tags"):
        return "tag.read"
    if path.startswith("/api/timeline"):
        return "timeline.read"
    if path.startswith("/api/users"):
        return "user.read"
    return None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeImmich
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one packet: written separately, on a kept-alive connection they
    # meet the client's delayed ACK and every response waits ~40 ms.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self, method: str) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:  # the real server's body limit (NestJS's json parser, 10 MB)
            self.send_response(413)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        raw_body = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        with fake._lock:
            fake.requests.append((method, split.path, body))
            fake.in_flight += 1
            fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
        try:
            self._answer(fake, method, split, body)
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _answer(self, fake: FakeImmich, method: str, split: Any, body: Any) -> None:
        fault = fake.take_fault(split.path)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None
        if fake.latency:
            time.sleep(fake.latency)
        headers = {"X-Correlation-ID": uuid.uuid4().hex[:8]}
        if fake.version >= (3, 2, 0) and isinstance(body, dict) and FLAT_FILTERS & body.keys():
            headers["Deprecation"] = "true"  # v3.2: the flat search fields are to be removed in v4
        if fault is not None:
            status, payload = fake.error(fault.status, fault.message, "Error")
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
        else:
            try:
                status, payload = fake.route(
                    method, split.path, parse_qs(split.query), body, {k.lower(): v for k, v in self.headers.items()}
                )
            except Exception as exc:
                status, payload = fake.error(500, f"fake server error: {exc!r}", "Internal Server Error")
        # Compact UTF-8, as the real server's JSON.stringify writes it (and ~5x cheaper than
        # json.dumps: the benchmark's server shares the client's machine, a real one does not)
        binary = isinstance(payload, Binary)
        data = payload.data if binary else orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        if status == 204:
            data = b""
        self.send_response(status)
        self.send_header("Content-Type", payload.content_type if binary else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


USAGE = """Start the fake Immich server by hand, to try immich-cache without an Immich server:
python -m immich_sync.testing.fake_immich [options]

Usage:
  fake_immich [--port=N] [--assets=N] [--library=DIR] [--server-version=V]

Options:
  --port=N            The port on 127.0.0.1 [default: 2283].
  --assets=N          Generated assets, each with a file in the photo folder [default: 300].
  --library=DIR       Where to write the photo folder [default: ./fake-immich-photos].
  --server-version=V  The Immich version to behave as [default: 3.1.0].

It prints the URL and the API key to use, then serves until Ctrl-C.
"""


def main(argv: list[str] | None = None, *, serve: bool = True) -> int:
    import os

    from docopt import docopt

    from ..demo import build

    args = docopt(USAGE, argv=argv)
    try:
        version = tuple(int(part) for part in args["--server-version"].split("."))
        port, count = int(args["--port"]), int(args["--assets"])
    except ValueError:
        print("fake_immich: error: --port, --assets and --server-version take numbers", file=sys.stderr)
        return 2
    if len(version) != 3:
        print("fake_immich: error: --server-version takes three numbers, as in 3.1.0", file=sys.stderr)
        return 2
    library = os.path.abspath(args["--library"])
    fake = FakeImmich((version[0], version[1], version[2]))
    build(fake, library, count)
    try:
        fake.start(port)
    except OSError as exc:
        print(f"fake_immich: error: cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"fake Immich v{args['--server-version']} at {fake.url} with {count} assets; photo folder {library}")
    print("Use it with:")
    print(f"  export IMMICH_INSTANCE_URL={fake.url}")
    print(f"  export IMMICH_API_KEY={fake.api_key}")
    print(f"  .venv/bin/immich-cache {library}")
    print("Ctrl-C stops the server.", flush=True)
    if not serve:
        fake.stop()
        return 0
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
