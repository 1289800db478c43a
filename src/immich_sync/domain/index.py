"""CacheIndex: the lookups other scripts need, built when the cache loads and never stored."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from .names import asset_file_name, normalise_name

if TYPE_CHECKING:
    from .cache import CacheNode

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def path_key(path: str) -> str:
    """Paths compare in NFC (macOS writes NFD) but keep their case (most file systems are case-sensitive)."""
    return unicodedata.normalize("NFC", path)


def raw_name_key(raw: Mapping[str, Any]) -> str:
    """The name index's key for an asset dict."""
    return normalise_name(asset_file_name(raw.get("originalFileName"), raw.get("originalPath")))


def raw_day(raw: Mapping[str, Any]) -> str | None:
    """The capture day as the photographer saw it: the date part of Immich's `localDateTime`."""
    value = raw.get("localDateTime")
    if isinstance(value, str) and _DAY.match(value):
        return value[:10]
    return None


def node_found_path(node: CacheNode) -> str | None:
    path = node.found_path()
    return path_key(path) if path else None


# A key held by one asset maps to that asset's id, a key held by several to the set of their ids:
# most names and matched paths belong to one asset, and a set for each cost 216 bytes (~430 MB at
# 1,000,000 assets) and a third of the index build.
_Ids = str | set[str]  # a set holds two ids or more


class CacheIndex:
    """Maps from name, matched path, capture day, tag id and album id to asset ids.

    Kept in step by ImmichCache: every change to a node removes the node's old keys and adds its
    new ones, so a lookup never needs a scan.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, _Ids] = {}
        self._by_path: dict[str, _Ids] = {}
        self._by_day: dict[str, _Ids] = {}
        self._by_tag: dict[str, _Ids] = {}
        self._by_album: dict[str, _Ids] = {}
        self._keys: dict[str, tuple[Any, ...]] = {}

    @classmethod
    def build(cls, nodes: Iterable[CacheNode]) -> CacheIndex:
        index = cls()
        for node in nodes:
            index.add(node)
        return index

    def add(self, node: CacheNode) -> None:
        node_id = node.id
        name, path, day = node.name_key, node_found_path(node), node.day
        self._keys[node_id] = (name, path, day, node.tags, node.albums)
        _put(self._by_name, name, node_id)
        if path is not None:
            _put(self._by_path, path, node_id)
        if day is not None:
            _put(self._by_day, day, node_id)
        for tag in node.tags:
            _put(self._by_tag, tag, node_id)
        for album in node.albums:
            _put(self._by_album, album, node_id)

    def remove(self, asset_id: str) -> None:
        keys = self._keys.pop(asset_id, None)
        if keys is None:
            return
        name, path, day, tags, albums = keys
        _discard(self._by_name, name, asset_id)
        _discard(self._by_path, path, asset_id)
        _discard(self._by_day, day, asset_id)
        for tag in tags:
            _discard(self._by_tag, tag, asset_id)
        for album in albums:
            _discard(self._by_album, album, asset_id)

    def refresh(self, node: CacheNode) -> None:
        self.remove(node.id)
        self.add(node)

    def refresh_match(self, node: CacheNode) -> None:
        """Only the match changed: move the node's matched-path key, nothing else."""
        keys = self._keys.get(node.id)
        if keys is None:
            self.add(node)
            return
        path = node_found_path(node)
        if path != keys[1]:
            _discard(self._by_path, keys[1], node.id)
            if path is not None:
                _put(self._by_path, path, node.id)
            self._keys[node.id] = (keys[0], path, *keys[2:])

    def refresh_groups(self, node: CacheNode, attribute: str, before: tuple[str, ...]) -> None:
        """Only the node's tags or albums (`attribute`) changed from `before`: move those keys."""
        keys = self._keys.get(node.id)
        if keys is None:
            self.add(node)
            return
        after: tuple[str, ...] = getattr(node, attribute)
        slot, mapping = (3, self._by_tag) if attribute == "tags" else (4, self._by_album)
        for group in before:
            if group not in after:
                _discard(mapping, group, node.id)
        for group in after:
            if group not in before:
                _put(mapping, group, node.id)
        self._keys[node.id] = (*keys[:slot], after, *keys[slot + 1 :])

    def clear(self) -> None:
        for mapping in (self._by_name, self._by_path, self._by_day, self._by_tag, self._by_album):
            mapping.clear()
        self._keys.clear()

    # Lookups: each returns a sorted list of asset ids (stable output for scripts and tests).
    def ids_by_name(self, name: str) -> list[str]:
        return sorted(_ids(self._by_name.get(normalise_name(name))))

    def ids_by_path(self, path: str) -> list[str]:
        return sorted(_ids(self._by_path.get(path_key(path))))

    def ids_by_day(self, day: date) -> list[str]:
        return sorted(_ids(self._by_day.get(day.isoformat())))

    def ids_by_day_range(self, first: date, last: date) -> list[str]:
        """Every asset captured on a day from `first` to `last`, both included."""
        low, high = first.isoformat(), last.isoformat()
        found: set[str] = set()
        for day, ids in self._by_day.items():
            if low <= day <= high:
                found.update(_ids(ids))
        return sorted(found)

    def ids_by_tag_ids(self, tag_ids: Iterable[str]) -> list[str]:
        found: set[str] = set()
        for tag_id in tag_ids:
            found.update(_ids(self._by_tag.get(tag_id)))
        return sorted(found)

    def ids_by_album_ids(self, album_ids: Iterable[str]) -> list[str]:
        found: set[str] = set()
        for album_id in album_ids:
            found.update(_ids(self._by_album.get(album_id)))
        return sorted(found)

    def claimed_paths(self) -> dict[str, list[str]]:
        """Files that more than one asset is matched to (a duplicate upload, or a wrong match)."""
        return {path: sorted(ids) for path, ids in self._by_path.items() if ids.__class__ is not str}


def _ids(held: _Ids | None) -> Collection[str]:
    if held is None:
        return ()
    return (held,) if held.__class__ is str else held


def _put(mapping: dict[str, _Ids], key: str, asset_id: str) -> None:
    held = mapping.get(key)
    if held is None:
        mapping[key] = asset_id
    elif held.__class__ is str:
        if held != asset_id:
            mapping[key] = {held, asset_id}
    else:
        held.add(asset_id)  # type: ignore[union-attr]


def _discard(mapping: dict[str, _Ids], key: str | None, asset_id: str) -> None:
    if key is None:
        return
    held = mapping.get(key)
    if held is None:
        return
    if held.__class__ is str:
        if held == asset_id:
            del mapping[key]
        return
    held.discard(asset_id)  # type: ignore[union-attr]
    if len(held) == 1:
        mapping[key] = next(iter(held))  # one asset again: back to its id
