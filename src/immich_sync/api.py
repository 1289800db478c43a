"""Embedding in one line: `cache = load_cache("log/cache_Photos.json")`, then `cache.find_file(path)`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .adapters.json_repository import JsonCacheRepository
from .domain.cache import CacheNode, ImmichCache
from .domain.diff import FIELDS, Difference, differences
from .domain.match import Status
from .errors import CacheFileError


def load_cache(path: str | os.PathLike[str], *, missing_ok: bool = False) -> ImmichCache:
    """Read a cache file. Raises CacheFileError naming the path when there is none (an empty cache
    instead with `missing_ok=True`) or when the file is not one this version reads."""
    repo = JsonCacheRepository(path)
    if not missing_ok and not repo.exists():
        raise CacheFileError(
            f"{os.fspath(path)}: no cache file there (run immich-cache first; "
            "load_cache(path, missing_ok=True) gives an empty cache instead)"
        )
    return repo.load()


def save_cache(cache: ImmichCache, path: str | os.PathLike[str]) -> None:
    """Write atomically: the old file or the new one, never a mix."""
    JsonCacheRepository(path).save(cache)


@contextmanager
def open_cache(path: str | os.PathLike[str]) -> Iterator[ImmichCache]:
    """Lock, load, yield, save on success: for scripts that change the cache."""
    repo = JsonCacheRepository(path)
    with repo.lock():
        cache = repo.load()
        yield cache
        repo.save(cache)


def file_metadata(node: CacheNode) -> dict[str, Any] | None:
    """What the asset's matched file says (its `file` section, from `immich-cache-files`), or
    None when it was not read, or was read from another file than the one matched now."""
    summary = node.match_summary()
    section = node.file
    if summary is None or summary.status != Status.FOUND or not section or not section.get("file"):
        return None
    return section if section["file"].get("path") == summary.path else None


def diff(node: CacheNode, cache: ImmichCache, fields: tuple[str, ...] = FIELDS) -> list[Difference]:
    """The fields where Immich and the asset's file disagree (see domain/diff.py for the rules)."""
    tag_values = [cache.tags.get(t, t) for t in node.tags]
    return differences(node.id, node.asset_raw, file_metadata(node), tag_values, fields)
