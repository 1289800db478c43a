"""The `immich-cache-files` use case: read what each found asset's file (and its XMP sidecar) says
and keep it in the asset's node (`file`), reading again only files whose size or mtime changed
(or whose sidecar appeared, vanished or changed)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from attrs import define

from ..domain.cache import CacheNode
from ..domain.match import Status
from ..ports import CacheRepository

log = logging.getLogger(__name__)

Stamp = Callable[[str], dict[str, Any] | None]  # path -> {"path", "size", "mtime"} or None
Sidecar = Callable[[str], str | None]  # path -> its sidecar's path


@define
class FilesResult:
    found: int = 0  # found assets looked at
    read: int = 0  # files read this run
    kept: int = 0  # unchanged since their last reading
    missing: int = 0  # matched files that are not there
    warnings: int = 0  # files or sidecars whose metadata could not all be read
    saved: bool = False


def up_to_date(node: CacheNode, path: str, stamp: Stamp, sidecar_of: Sidecar) -> bool:
    section = node.file
    if not section or not section.get("file") or section["file"].get("path") != path:
        return False
    if stamp(path) != section["file"]:
        return False
    sidecar = sidecar_of(path)
    held = section.get("sidecar")
    return (sidecar is None and held is None) or (sidecar is not None and stamp(sidecar) == held)


def run_files(
    repo: CacheRepository,
    *,
    now: Callable[[], datetime],
    read_many: Callable[[list[str]], Iterable[dict[str, Any]]],
    stamp: Stamp,
    sidecar_of: Sidecar,
    progress: Callable[[int], None] = lambda n: None,
) -> FilesResult:
    """Under the cache's lock: every found asset's file section brought up to date, then one save
    (only when something changed)."""
    result = FilesResult()
    with repo.lock():
        cache = repo.load()
        todo: list[tuple[CacheNode, str]] = []
        for node in cache:
            summary = node.match_summary()
            if summary is None or summary.status != Status.FOUND or summary.path is None:
                continue
            result.found += 1
            if up_to_date(node, summary.path, stamp, sidecar_of):
                result.kept += 1
            else:
                todo.append((node, summary.path))
        changed = False
        for (node, _path), section in zip(todo, read_many([p for _, p in todo]), strict=True):
            result.read += 1
            if section.get("file") is None:
                result.missing += 1
            result.warnings += bool(section.get("warnings"))
            before = node.file
            node.set_file(section)
            changed |= node.file is not before
            progress(result.read)
        if changed:
            repo.save(cache)
            result.saved = True
    return result


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for at in range(0, len(items), size):
        yield items[at : at + size]
