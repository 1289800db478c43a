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

    `raw` is the server's dict, unchanged; it is what the cache stores.
    """

    id: str
    original_file_name: str
    original_path: str | None
    file_name: str  # originalFileName with the extension restored on old servers
    checksum: str | None
    local_date_time: datetime | None  # naive wall-clock time (Immich's localDateTime)
    file_created_at: datetime | None
    updated_at: datetime | None
    owner_id: str | None
    library_id: str | None
    type: str | None
    visibility: str | None
    is_trashed: bool
    is_archived: bool
    file_size: int | None  # exifInfo.fileSizeInByte
    live_photo_video_id: str | None
    raw: Mapping[str, Any] = field(eq=False, repr=False)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> "Asset":
        exif = raw.get("exifInfo") or {}
        size = exif.get("fileSizeInByte") if isinstance(exif, Mapping) else None
        return cls(
            id=str(raw["id"]),
            original_file_name=raw.get("originalFileName") or "",
            original_path=raw.get("originalPath"),
            file_name=asset_file_name(raw.get("originalFileName"), raw.get("originalPath")),
            checksum=raw.get("checksum"),
            local_date_time=parse_wall_clock(raw.get("localDateTime")),
            file_created_at=parse_instant(raw.get("fileCreatedAt")),
            updated_at=parse_instant(raw.get("updatedAt")),
            owner_id=raw.get("ownerId"),
            library_id=raw.get("libraryId"),
            type=raw.get("type"),
            visibility=raw.get("visibility"),
            is_trashed=bool(raw.get("isTrashed", False)),
            is_archived=bool(raw.get("isArchived", False)),
            file_size=int(size) if isinstance(size, (int, float)) and size >= 0 else None,
            live_photo_video_id=raw.get("livePhotoVideoId"),
            raw=raw,
        )

    @property
    def is_external(self) -> bool:
        """External-library asset: its checksum hashes the path, not the bytes (FACTS.md)."""
        return bool(self.library_id)
