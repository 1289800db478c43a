"""Where Immich and a file disagree: the comparison every later metadata script needs.

Immich's side is the cached asset (`localDateTime`, `exifInfo.dateTimeOriginal` and `timeZone`,
`exifInfo.latitude/longitude/description/rating`, the asset's tags from the cache's membership,
`people`); the file's is the node's `file` section. Dates compare as Immich stores them: a file
date with an offset is an instant (against `dateTimeOriginal`), one without is wall-clock time
(against `localDateTime`), to the second; coordinates within 1e-5 degrees; tags and people as sets
of full paths and names; an empty value and a missing one are the same."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

FIELDS = ("dateTimeOriginal", "latitude", "longitude", "description", "rating", "tags", "people")
COORDINATE_TOLERANCE = 1e-5


@frozen
class Difference:
    asset: str
    path: str
    field: str
    immich: Any
    file: Any
    source: str

    def as_json(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "path": self.path,
            "field": self.field,
            "immich": self.immich,
            "file": self.file,
            "source": self.source,
        }


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def immich_side(raw: Mapping[str, Any], tag_values: Iterable[str]) -> dict[str, Any]:
    exif = raw.get("exifInfo") or {}
    rating = exif.get("rating")
    return {
        "dateTimeOriginal": exif.get("dateTimeOriginal") or raw.get("localDateTime"),
        "localDateTime": raw.get("localDateTime"),
        "timeZone": exif.get("timeZone"),
        "latitude": exif.get("latitude"),
        "longitude": exif.get("longitude"),
        "description": (exif.get("description") or "").strip() or None,
        "rating": rating if rating not in (0, None) else None,  # Immich stores no rating as 0 or null
        "tags": sorted(set(tag_values)),
        "people": sorted({p.get("name") for p in raw.get("people") or [] if isinstance(p, dict) and p.get("name")}),
    }


def dates_agree(immich: Mapping[str, Any], file_value: str) -> bool:
    moment = _parse(file_value)
    if moment is None:
        return False
    if moment.tzinfo is not None:
        held = _parse(immich.get("dateTimeOriginal") or "")
        if held is None:
            return False
        if held.tzinfo is None:
            held = held.replace(tzinfo=moment.tzinfo)
        return abs(held - moment) < timedelta(seconds=1)
    local = _parse(immich.get("localDateTime") or "")
    if local is None:
        return False
    return abs(local.replace(tzinfo=None) - moment) < timedelta(seconds=1)


def differences(
    asset_id: str,
    raw: Mapping[str, Any],
    section: Mapping[str, Any] | None,
    tag_values: Iterable[str],
    fields: Iterable[str] = FIELDS,
) -> list[Difference]:
    """The fields where Immich and the file disagree (none when the file was not read)."""
    if not section or not section.get("file"):
        return []
    path = section["file"]["path"]
    immich = immich_side(raw, tag_values)
    found = []
    for name in fields:
        held: Mapping[str, Any] = section.get(name) or {}
        value: Any = held.get("value")
        source = str(held.get("source", ""))
        theirs: Any = immich.get(name)
        if _empty(value) and _empty(theirs):
            continue
        if name == "dateTimeOriginal":
            same = not _empty(value) and not _empty(theirs) and dates_agree(immich, value)
        elif name in ("latitude", "longitude"):
            same = (
                not _empty(value) and not _empty(theirs) and abs(float(value) - float(theirs)) <= COORDINATE_TOLERANCE
            )
        elif name in ("tags", "people"):
            same = set(value or ()) == set(theirs or ())
        elif name == "description":
            same = (value or "").strip() == (theirs or "")
        else:
            same = value == theirs
        if not same:
            found.append(Difference(asset_id, path, name, theirs, value, source))
    return found
