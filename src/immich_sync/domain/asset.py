"""Asset: a typed, read-only view of one Immich AssetResponseDto, with the raw JSON kept beside it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen

from .names import asset_file_name
from .timestamps import parse_instant, parse_wall_clock


@frozen
class Asset:
    """What the matcher and the cache need from an asset. Every field a server may omit is optional.

    `raw` is the server's dict, unchanged; it is what the cache stores. The fields are what the
    matcher reads, converted once; the rest of the typed view is read from `raw` when asked for
    (an asset is built for every one a first run matches: 100,000s of them).
    """

    id: str
    file_name: str  # originalFileName with the extension restored on old servers
    original_path: str | None
    checksum: str | None
    local_date_time: datetime | None  # naive wall-clock time (Immich's localDateTime)
    library_id: str | None
    file_size: int | None  # exifInfo.fileSizeInByte
    raw: Mapping[str, Any] = field(eq=False, repr=False)
    # an external-library asset: `isExternal` where the server sends it (v1.9x upload libraries
    # give uploaded assets a libraryId too), else a libraryId
    external: bool = False

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Asset:
        exif = raw.get("exifInfo") or {}
        size = exif.get("fileSizeInByte") if isinstance(exif, Mapping) else None
        original_path = raw.get("originalPath")
        return cls(
            id=str(raw["id"]),
            file_name=asset_file_name(raw.get("originalFileName"), original_path),
            original_path=original_path,
            checksum=raw.get("checksum"),
            local_date_time=parse_wall_clock(raw.get("localDateTime")),
            library_id=raw.get("libraryId"),
            file_size=int(size) if isinstance(size, (int, float)) and size >= 0 else None,
            raw=raw,
            external=is_external_raw(raw),
        )

    @property
    def is_external(self) -> bool:
        """External-library asset: its checksum hashes the path, not the bytes (FACTS.md)."""
        return self.external

    @property
    def original_file_name(self) -> str:
        return self.raw.get("originalFileName") or ""

    @property
    def file_created_at(self) -> datetime | None:
        return parse_instant(self.raw.get("fileCreatedAt"))

    @property
    def updated_at(self) -> datetime | None:
        return parse_instant(self.raw.get("updatedAt"))

    @property
    def owner_id(self) -> str | None:
        return self.raw.get("ownerId")

    @property
    def type(self) -> str | None:
        return self.raw.get("type")

    @property
    def visibility(self) -> str | None:
        return self.raw.get("visibility")

    @property
    def is_trashed(self) -> bool:
        return bool(self.raw.get("isTrashed", False))

    @property
    def is_archived(self) -> bool:
        return bool(self.raw.get("isArchived", False))

    @property
    def live_photo_video_id(self) -> str | None:
        return self.raw.get("livePhotoVideoId")


def is_external_raw(raw: Mapping[str, Any]) -> bool:
    """The rule `Asset.is_external` follows, read from the server's dict."""
    flag = raw.get("isExternal")
    return flag if isinstance(flag, bool) else bool(raw.get("libraryId"))
