"""Embedding in one line: `cache = load_cache("log/cache_Photos.json")`, then `cache.find_file(path)`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .adapters.json_repository import JsonCacheRepository
from .domain.cache import ImmichCache


def load_cache(path: str | os.PathLike[str]) -> ImmichCache:
    """Read a cache file (an empty cache if it does not exist). Raises CacheFileError on a bad file."""
    return JsonCacheRepository(path).load()


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
