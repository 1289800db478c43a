"""The three ways the core reaches the world, as Protocols: fakes satisfy them without inheriting.

- `ImmichSource` (adapters/immich_http.py): the server.
- `CacheRepository` (adapters/json_repository.py): where the cache lives.
- `LibraryReader` (adapters/library_scan.py, exif_reader.py, hashing): the TARGET folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from attrs import frozen

from ..domain.cache import CacheNode, ImmichCache
from ..domain.library import CaptureTime, LibraryIndex


@frozen
class ServerInfo:
    url: str
    version: tuple[int, int, int]
    user_id: str

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


@frozen
class Groups:
    """Albums or tags: names (id -> name or value path) and members (id -> asset ids); for albums
    also each one's stamp (updatedAt, assetCount), which moves when its assets change."""

    names: Mapping[str, str]
    members: Mapping[str, frozenset[str]]
    stamps: Mapping[str, tuple[str | None, int]] = {}


class ImmichSource(Protocol):
    def check(self) -> ServerInfo: ...

    def iter_assets(
        self, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
    ) -> Iterator[dict[str, Any]]: ...

    def iter_versions(
        self, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
    ) -> Iterator[tuple[str, str | None, str]]:
        """(id, updatedAt, originalFileName) of the assets `iter_assets` lists, read more cheaply;
        it may hold a few more (assets whose metadata the server never extracted)."""

    def count_assets(
        self, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
    ) -> int | None: ...

    def get_assets(self, ids: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """Each asset by id, as the server returns it; None where the server no longer has it for
        this user (deleted, trashed, locked, another user's)."""

    def albums(self) -> Groups: ...

    def album_list(self) -> list[tuple[str, str, int]]:
        """(id, name, asset count) of each album the user can see, without its members."""

    def tags(self) -> Groups: ...

    def album_stamps(self) -> Groups:
        """Every album's name and stamp, without members (one request)."""

    def album_members(self, album_ids: Iterable[str]) -> Mapping[str, frozenset[str]]:
        """The members of these albums only."""

    def tag_values(self) -> Mapping[str, str]:
        """Every tag (id -> full value path), without members (one request)."""

    def asset_tags(self, ids: Iterable[str]) -> Iterator[tuple[str, frozenset[str] | None]]:
        """The tags set on each asset itself (not its tags' ancestors); None when it is gone."""

    def stamps_are_exact(self) -> bool:
        """Whether this server is known to move an asset's updatedAt when it is tagged or untagged,
        and an album's stamp when its assets change (then membership can be refreshed by what moved)."""

    def cancel(self) -> None:
        """Make calls in progress in other threads stop at their next request."""


class CacheRepository(Protocol):
    def lock(self) -> AbstractContextManager[None]: ...

    def exists(self) -> bool:
        """Whether there is a cache to load (before loading it)."""

    def load(self) -> ImmichCache: ...

    def save(self, cache: ImmichCache) -> None: ...

    def load_checkpoint(self) -> ImmichCache | None: ...

    def save_checkpoint(self, cache: ImmichCache) -> None: ...

    def drop_checkpoint(self) -> None: ...

    def pack(self, node: CacheNode) -> None:
        """The node is settled for this run: keep it in the stored form (may do nothing)."""


class LibraryReader(Protocol):
    """TARGET: listed once, then read lazily (a date or a hash only when the matcher asks)."""

    def scan(self, root: str) -> LibraryIndex: ...

    def walked(self) -> int:
        """How many files the walk in progress has listed so far (for progress; may lag)."""

    def prefetch(self, paths: Iterable[str]) -> None:
        """These files' capture times will be asked for soon: start reading them (may do nothing)."""

    def capture_time(self, path: str) -> CaptureTime | None: ...

    def sha1(self, path: str) -> str | None: ...
