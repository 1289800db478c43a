"""Which search requests list every asset on a given server version (FACTS.md). Pure functions.

| server        | shape                                                                     |
|---------------|---------------------------------------------------------------------------|
| < 1.95        | no POST /search/metadata: too old                                         |
| 1.95 - 1.132  | flat, page/size, `withArchived: true`                                     |
| 1.133 - 2.x   | flat, one pass per visibility (timeline, archive, hidden), merged by id   |
| 3.0 - 3.1     | flat, visibility omitted (= all but locked)                               |
| 3.2 +         | cursor shape (`filter`/`orderBy`/`cursor`), trash filtered explicitly     |

A filter the server's version lacks is silently ignored by Immich (it returns everything), so it is
never sent: `albumIds` needs 1.135, `tagIds` 1.126, `visibility` 1.133.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..domain.timestamps import format_instant

Version = tuple[int, int, int]

PAGE_SIZE = 1000  # the server's maximum; 2000 is a 400
MIN_SEARCH = (1, 95, 0)
MIN_VISIBILITY = (1, 133, 0)
MIN_ALBUM_IDS = (1, 135, 0)
MIN_STATISTICS = (1, 135, 0)
MIN_TAG_IDS = (1, 126, 0)
V3 = (3, 0, 0)
MIN_CURSOR = (3, 2, 0)
VISIBILITIES = ("timeline", "archive", "hidden")  # locked is never visible to an API key
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def is_uuid(value: str) -> bool:
    return bool(UUID.match(value))


def parse_version(body: Any) -> Version:
    return (int(body.get("major", 0)), int(body.get("minor", 0)), int(body.get("patch", 0)))


def uses_cursor(version: Version) -> bool:
    return version >= MIN_CURSOR


def _instant(moment: datetime) -> str:
    return format_instant(moment)


def flat_passes(
    version: Version,
    *,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    album_id: str | None = None,
    tag_id: str | None = None,
) -> list[dict[str, Any]]:
    """Flat request bodies (without page, size, withExif), one per pass whose results are merged."""
    base: dict[str, Any] = {}
    if updated_after is not None:
        base["updatedAfter"] = _instant(updated_after)
    if updated_before is not None:
        base["updatedBefore"] = _instant(updated_before)
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


def cursor_body(
    *, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
) -> dict[str, Any]:
    """The v3.2 body. 3.2.0 returned trashed assets by default (#31511): filter them out explicitly."""
    filters: dict[str, Any] = {"visibility": {"in": list(VISIBILITIES)}, "trashedAt": {"eq": None}}
    updated: dict[str, str] = {}
    if updated_after is not None:
        updated["gte"] = _instant(updated_after)
    if updated_before is not None:
        updated["lte"] = _instant(updated_before)
    if updated:
        filters["updatedAt"] = updated
    if album_id is not None:
        filters["albumIds"] = {"all": [album_id]}
    return {"filter": filters, "orderBy": {"field": "fileCreatedAt", "direction": "desc"}}
