"""Which search requests list every asset on a given server version (FACTS.md). Pure functions.

| server        | shape                                                                     |
|---------------|---------------------------------------------------------------------------|
| < 1.95        | no POST /search/metadata: too old                                         |
| 1.95 - 1.132  | flat, page/size, `withArchived: true`                                     |
| 1.133 - 2.x   | flat, one pass per visibility (timeline, archive, hidden), merged by id   |
| 3.0 - 3.1     | flat, visibility omitted (= all but locked)                               |
| 3.2 +         | cursor shape (`filter`/`orderBy`/`cursor`), trash filtered explicitly     |

A filter the server's version lacks is silently ignored by Immich (it returns everything), so it is
never sent: `albumIds` needs 1.135, `tagIds` 1.126, `visibility` 1.133. From 3.2 the flat fields
are deprecated (removal planned for v4): every request to 3.2 or newer, the listing, the album and
tag passes and the statistics count, uses the `filter` shape only.

Dates: the server keeps microseconds and returns milliseconds, so `updatedBefore = <a returned
updatedAt>` would leave that asset out. The upper bound sent is the next millisecond (`lt` in the
filter shape; in the flat shape, which is inclusive, the client drops what lies past the user's bound).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from ..domain.timestamps import format_instant

Version = tuple[int, int, int]

PAGE_SIZE = 1000  # the server's maximum; 2000 is a 400
NEWEST_KNOWN = (3, 3, 5)  # the newest version whose request shapes this module was checked against
MIN_SEARCH = (1, 95, 0)
MIN_ASSETS_PATHS = (1, 106, 0)  # /asset/... became /assets/... (thumbnail: /assets/{id}/thumbnail)
MIN_VISIBILITY = (1, 133, 0)
MIN_ALBUM_IDS = (1, 135, 0)
MIN_STATISTICS = (1, 135, 0)
MIN_TAG_IDS = (1, 126, 0)
V3 = (3, 0, 0)
MIN_CURSOR = (3, 2, 0)
# Versions on which tagging moves an asset's updatedAt and album edits move the album's stamp,
# confirmed on a real server (FACTS.md): membership is refreshed by what moved. Others: full passes.
EXACT_STAMPS = ((3, 1, 0), (3, 2, 0))  # from, to (excluded)
VISIBILITIES = ("timeline", "archive", "hidden")  # locked is never visible to an API key
# GET /timeline/buckets and /timeline/bucket with `tagId`, `albumId` and `visibility`, answering
# column arrays (TimeBucketAssetResponseDto): checked against the v2.7.5 and v3.1.0 OpenAPI specs,
# the 3.2.2 SDK and the server's asset.repository.ts. Older servers: searches only.
MIN_TIMELINE = (2, 0, 0)
# What a request costs beside what it carries, and what an asset costs in a bucket's column arrays
# (id, owner, visibility and a dozen short fields: ~230 bytes, built by one SQL aggregate) against a
# search item (~860 bytes of whole asset built object by object), all in search items.
# Measured on the fake server with this client (benchmarks/README.md): a request costs the client
# ~1.3 ms of CPU beside what it carries, a search item ~7 us, an asset in a bucket under 1 us.
REQUEST_COST = 150.0
BUCKET_ITEM_COST = 0.25
# A tag's first search page, before its size is known: most tags fit in it, and a larger one then
# costs this many whole assets, not a page's, beside its timeline reads.
PROBE_SIZE = 250
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def is_uuid(value: str) -> bool:
    return bool(UUID.match(value))


def parse_version(body: Any) -> Version:
    return (int(body.get("major", 0)), int(body.get("minor", 0)), int(body.get("patch", 0)))


def uses_cursor(version: Version) -> bool:
    return version >= MIN_CURSOR


def _instant(moment: datetime) -> str:
    return format_instant(moment)


def before_bound(moment: datetime) -> datetime:
    """The upper bound to send for `--before=moment`: the millisecond after it, so that an asset
    whose returned (millisecond) updatedAt equals the bound, stored with more microseconds, is in."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000) + timedelta(milliseconds=1)


def after_bound(moment: datetime) -> datetime:
    """The lower bound to send for `--after=moment`: its millisecond (a returned updatedAt equal to
    it is stored with as many microseconds or more, so it is in)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def flat_passes(
    version: Version,
    *,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    album_id: str | None = None,
    tag_id: str | None = None,
) -> list[dict[str, Any]]:
    """Flat request bodies (without page, size, withExif), one per pass whose results are merged."""
    if uses_cursor(version):
        raise ValueError("Immich 3.2 and newer take the filter shape only (the flat fields are deprecated)")
    base: dict[str, Any] = {}
    if updated_after is not None:
        base["updatedAfter"] = _instant(after_bound(updated_after))
    if updated_before is not None:
        base["updatedBefore"] = _instant(before_bound(updated_before))
    if album_id is not None:
        if version < MIN_ALBUM_IDS:
            raise ValueError("albumIds needs Immich 1.135 or newer")
        base["albumIds"] = [album_id]
    if tag_id is not None:
        if version < MIN_TAG_IDS:
            raise ValueError("tagIds needs Immich 1.126 or newer")
        base["tagIds"] = [tag_id]
    if version < MIN_VISIBILITY:
        return [{**base, "withArchived": True}]
    if version < V3:
        return [{**base, "visibility": v} for v in VISIBILITIES]
    return [base]


def uses_timeline(version: Version) -> bool:
    return version >= MIN_TIMELINE


def timeline_is_cheaper(assets: int, bucket_requests: int, search_passes: int, page_size: int = PAGE_SIZE) -> bool:
    """Whether reading a group's `assets` from `bucket_requests` timeline buckets costs the server
    and this client less than paging its searches (`search_passes` of them, 1,000 a page). A tag on
    a quarter of a ten-year library is ~25 search pages or ~120 buckets of ~200: buckets; a tag of a
    few hundred assets spread over a hundred months is one search page: search. A real server
    spends more on a search item than on a request, so this leans towards searching."""
    pages = -(-assets // page_size) + search_passes - 1
    search = pages * REQUEST_COST + assets
    timeline = bucket_requests * REQUEST_COST + assets * BUCKET_ITEM_COST
    return timeline < search


def search_filter(
    *,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    album_id: str | None = None,
    tag_id: str | None = None,
) -> dict[str, Any]:
    """The v3.2 `filter`. 3.2.0 returned trashed assets by default (#31511): trash is filtered out
    explicitly. A tag matches its descendants, as `tagIds` did."""
    filters: dict[str, Any] = {"visibility": {"in": list(VISIBILITIES)}, "trashedAt": {"eq": None}}
    updated: dict[str, str] = {}
    if updated_after is not None:
        updated["gte"] = _instant(after_bound(updated_after))
    if updated_before is not None:
        updated["lt"] = _instant(before_bound(updated_before))
    if updated:
        filters["updatedAt"] = updated
    if album_id is not None:
        filters["albumIds"] = {"all": [album_id]}
    if tag_id is not None:
        filters["tagIds"] = {"any": [tag_id]}
    return filters


def cursor_body(
    *,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    album_id: str | None = None,
    tag_id: str | None = None,
) -> dict[str, Any]:
    """The v3.2 search body (`filter`, `orderBy`; `cursor` is added page by page)."""
    filters = search_filter(
        updated_after=updated_after, updated_before=updated_before, album_id=album_id, tag_id=tag_id
    )
    return {"filter": filters, "orderBy": {"field": "fileCreatedAt", "direction": "desc"}}


def statistics_bodies(
    version: Version,
    *,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    album_id: str | None = None,
    tag_id: str | None = None,
) -> list[dict[str, Any]]:
    """`POST /search/statistics` bodies whose totals add up to what the listing (or a tag's search)
    lists (partners' timeline assets included, as in the listing before the owner is checked)."""
    if uses_cursor(version):
        filters = search_filter(
            updated_after=updated_after, updated_before=updated_before, album_id=album_id, tag_id=tag_id
        )
        return [{"filter": filters}]
    return flat_passes(
        version, updated_after=updated_after, updated_before=updated_before, album_id=album_id, tag_id=tag_id
    )


def is_newer_than_known(version: Version) -> bool:
    return version[:2] > NEWEST_KNOWN[:2]
