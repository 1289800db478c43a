"""ImmichCache: the assets Immich returned, each with its match to a local file, plus indexes.

Pure: no file or network access. `immich_sync.load_cache` / `save_cache` read and write it through
the JSON repository; `immich_sync.open_cache` does both around a block.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, Protocol

from attrs import define, evolve, field

from .asset import Asset
from .index import CacheIndex, raw_day, raw_name_key
from .match import MatchResult, MatchSummary, Status
from .timestamps import parse_instant

FORMAT_VERSION = 1
MAX_RUNS_KEPT = 20


class Upsert(enum.StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class StoredNode(Protocol):
    """A node as the cache file holds it: the repository's own type, handed to the domain when it
    reads the file or packs a settled node. The asset and the match are read out of it on first
    use; while nothing changes, the node is written back as `data`, unchanged."""

    @property
    def data(self) -> bytes | None:
        """The node's bytes in the file (None when it was read from a file of another layout)."""

    def asset(self) -> dict[str, Any]: ...

    def match(self) -> MatchResult | None: ...

    def match_summary(self) -> MatchSummary | None:
        """What indexes and counts need, without decoding the match."""

    def found_path(self) -> str | None:
        """The matched file when the stored match is found, without decoding it."""


class _InStored:
    """The match is still in the stored form, not decoded yet."""


_IN_STORED: Any = _InStored()


@define(slots=True)
class CacheNode:
    """One asset in the cache: the server's dict untouched, its match and its memberships.

    A node read from a file holds it as the file had it (`stored`, the repository's
    `StoredNode`): the asset dict and the MatchResult are built from it on first use, so
    loading 100,000 nodes builds neither, and a node nothing changed is written back as it was
    read. `name_key`, `day` and `updated_text` (what indexes and the update rule need) are given
    by the repository then, or derived from the dict.
    """

    id: str
    _asset_raw: dict[str, Any] | None = field(default=None, alias="asset_raw")
    _match: MatchResult | None = field(default=_IN_STORED, alias="match")
    albums: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cached_at: datetime | None = None
    gone_since: datetime | None = None  # set when a full run no longer saw it on the server
    # what the matched file says about itself (`immich-cache-files`; docs/cache-format.md, `file`)
    file: dict[str, Any] | None = None
    _source: StoredNode | None = field(default=None, alias="stored", eq=False, repr=False)
    name_key: str = field(default="", eq=False, repr=False)
    day: str | None = field(default=None, eq=False, repr=False)
    updated_text: str | None = field(default=None, eq=False, repr=False)
    _intact: bool = field(default=False, init=False, eq=False, repr=False)
    _asset: Asset | None = field(default=None, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self._source is None:
            if self._match is _IN_STORED:
                self._match = None
        else:
            self._intact = self._source.data is not None
        if self._asset_raw is not None:
            self._derive(self._asset_raw)

    def _derive(self, raw: Mapping[str, Any]) -> None:
        self.name_key, self.day, self.updated_text = raw_name_key(raw), raw_day(raw), raw.get("updatedAt")

    @property
    def stored(self) -> StoredNode | None:
        """The node as the file holds it, while nothing has changed since it was read or packed."""
        return self._source if self._intact else None

    @property
    def asset_raw(self) -> dict[str, Any]:
        """The AssetResponseDto exactly as the server returned it."""
        if self._asset_raw is None and self._source is not None:
            self._asset_raw = self._source.asset()
        if self._asset_raw is None:
            raise ValueError(f"asset {self.id} has no stored data")  # a bug, never a silent loss
        return self._asset_raw

    def replace_raw(self, raw: dict[str, Any]) -> None:
        self._asset_raw, self._asset = raw, None
        self._derive(raw)
        self.changed()

    def keep_stored(self, stored: StoredNode) -> None:
        """Hold this node in its stored form from now on (it encodes the node as it is now),
        dropping the dicts that can be read back from it: a run over 1,000,000 assets then
        holds compact bytes, not Python objects, and saving reuses them."""
        self._source, self._intact = stored, stored.data is not None
        self._asset_raw, self._asset = None, None

    def untouched_asset_source(self) -> StoredNode | None:
        """The stored form, while the asset it holds is still this node's asset (never decoded
        nor replaced since), even if something else about the node changed."""
        return self._source if self._asset_raw is None else None

    def changed(self) -> None:
        """Something differs from what the file holds: it must be encoded again when saved."""
        self._intact = False

    def set_file(self, section: dict[str, Any] | None) -> None:
        """Record what the matched file says (`immich-cache-files`)."""
        if section != self.file:
            self.file = section
            self.changed()

    @property
    def asset(self) -> Asset:
        """The typed view, built on first use (loading 100,000 nodes builds none)."""
        if self._asset is None:
            self._asset = Asset.from_api(self.asset_raw)
        return self._asset

    @property
    def match(self) -> MatchResult | None:
        if self._match is _IN_STORED:
            assert self._source is not None
            self._match = self._source.match()
        return self._match

    @match.setter
    def match(self, value: MatchResult | None) -> None:
        self._match = value
        self.changed()

    def undecoded_match(self) -> StoredNode | None:
        """The stored form that still holds the match, while the match has not been decoded."""
        return self._source if self._match is _IN_STORED else None

    def found_path(self) -> str | None:
        """The matched file when the status is found (the path index's key), cheaply."""
        m = self._match
        if m is _IN_STORED:
            return self._source.found_path()  # type: ignore[union-attr]
        return m.path if m is not None and m.status is Status.FOUND else None

    def match_summary(self) -> MatchSummary | None:
        """What indexes and counts need, without building the MatchResult."""
        m = self._match
        if m is _IN_STORED:
            return self._source.match_summary()  # type: ignore[union-attr]
        return None if m is None else m.summary()


def is_newer(incoming: Mapping[str, Any], cached: Mapping[str, Any] | CacheNode) -> bool:
    """The update rule: replace a cached asset only when Immich's updatedAt is strictly newer."""
    old_text = cached.updated_text if isinstance(cached, CacheNode) else cached.get("updatedAt")
    new_text = incoming.get("updatedAt")
    if new_text == old_text and new_text is not None:
        return False  # the common case on a re-run: the same text is the same instant
    new, old = parse_instant(new_text), parse_instant(old_text)
    if new is not None and old is not None:
        return new > old
    if new is not None:
        return True  # the cached copy has no date: a dated answer is better
    cached_raw = cached.asset_raw if isinstance(cached, CacheNode) else cached
    return old is None and incoming != cached_raw


class ImmichCache:
    """Create, read, update and delete asset nodes; album and tag sections; lookups; stats."""

    def __init__(self) -> None:
        self._nodes: dict[str, CacheNode] = {}
        self.albums: dict[str, str] = {}  # album id -> album name
        # album id -> (updatedAt, assetCount) when its members were read: moved, they are read again
        self.album_stamps: dict[str, tuple[str | None, int]] = {}
        self.tags: dict[str, str] = {}  # tag id -> full value path such as "Travel/Paris"
        self.target: str | None = None
        self.server: dict[str, Any] = {}  # url, version, user id: never the API key
        self.runs: list[dict[str, Any]] = []
        self.index = CacheIndex()

    @classmethod
    def from_nodes(cls, nodes: Iterable[CacheNode]) -> ImmichCache:
        cache = cls()
        cache._nodes = {node.id: node for node in nodes}
        cache.index = CacheIndex.build(cache._nodes.values())
        return cache

    # --- read
    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._nodes

    def __iter__(self) -> Iterator[CacheNode]:
        return iter(self._nodes.values())

    def get(self, asset_id: str) -> CacheNode | None:
        return self._nodes.get(asset_id)

    def ids(self) -> list[str]:
        return list(self._nodes)

    def is_current(self, asset_id: str, updated_text: str | None) -> bool:
        """`upsert` would leave the asset listed with this updatedAt unchanged (held, not marked
        gone, and not newer by the update rule), so the caller need not fetch it whole."""
        node = self._nodes.get(asset_id)
        return (
            node is not None
            and node.gone_since is None
            and updated_text is not None
            and not is_newer({"updatedAt": updated_text}, node)
        )

    def all_as_stored(self) -> bool:
        """Every node is as the file it was read from holds it (none added, changed or decoded
        from a layout that must be written anew)."""
        return all(node.stored is not None for node in self._nodes.values())

    # --- write
    def upsert(self, raw: dict[str, Any], now: datetime) -> Upsert:
        """Add an asset, or replace it when the server's updatedAt is newer. Says which happened.

        A replaced asset keeps its match until the caller matches it again, and an asset seen
        again is no longer marked gone. The cache keeps `raw` itself (no copy): hand it a dict
        you will not change afterwards, such as one just parsed from the server's answer.
        """
        asset_id = str(raw["id"])
        node = self._nodes.get(asset_id)
        if node is None:
            node = CacheNode(id=asset_id, asset_raw=raw, cached_at=now)
            self._nodes[asset_id] = node
            self.index.add(node)
            return Upsert.ADDED
        if node.gone_since is not None:
            node.gone_since = None
            node.changed()
        if not is_newer(raw, node):
            return Upsert.UNCHANGED
        node.replace_raw(raw)
        node.cached_at = now
        self.index.refresh(node)
        return Upsert.UPDATED

    def remove(self, asset_id: str) -> bool:
        if self._nodes.pop(asset_id, None) is None:
            return False
        self.index.remove(asset_id)
        return True

    def set_match(self, asset_id: str, match: MatchResult | None) -> None:
        """Record a match. The same result reached again (a not-found asset still not found) is
        no change: the node keeps the match it had, with the time it was first reached."""
        node = self._nodes[asset_id]
        held = node.match
        if match is not None and held is not None and evolve(match, matched_at=held.matched_at) == held:
            return
        node.match = match
        self.index.refresh_match(node)

    def clear_match(self, asset_id: str) -> None:
        self.set_match(asset_id, None)

    def mark_gone(self, asset_id: str, now: datetime) -> bool:
        """Flag an asset the server no longer returns; keeps the node. True when newly flagged."""
        node = self._nodes[asset_id]
        if node.gone_since is not None:
            return False
        node.gone_since = now
        node.changed()
        return True

    def replace_albums(
        self,
        names: Mapping[str, str],
        members: Mapping[str, Iterable[str]],
        stamps: Mapping[str, tuple[str | None, int]] | None = None,
    ) -> None:
        """Set the album section and every asset's album membership (album id -> asset ids), and
        the albums' stamps as they were when their members were read."""
        self.albums = dict(names)
        self.album_stamps = {a: stamps[a] for a in names if a in stamps} if stamps else {}
        self._replace_membership("albums", members)

    def replace_tags(self, values: Mapping[str, str], members: Mapping[str, Iterable[str]]) -> None:
        """Set the tag section and every asset's tags (tag id -> asset ids)."""
        self.tags = dict(values)
        self._replace_membership("tags", members)

    def _replace_membership(self, attribute: str, members: Mapping[str, Iterable[str]]) -> None:
        per_asset: dict[str, list[str]] = {}
        for group_id, asset_ids in members.items():
            for asset_id in asset_ids:
                per_asset.setdefault(asset_id, []).append(group_id)
        none: tuple[str, ...] = ()
        refresh = self.index.refresh_groups
        for node in self._nodes.values():
            held = per_asset.get(node.id)
            new = tuple(sorted(held)) if held else none
            before = getattr(node, attribute)
            if before != new:
                setattr(node, attribute, new)
                node.changed()
                refresh(node, attribute, before)

    def clear(self) -> None:
        """Forget every asset, album and tag (the target and server stay)."""
        self._nodes.clear()
        self.albums.clear()
        self.album_stamps.clear()
        self.tags.clear()
        self.index.clear()

    def add_run(self, summary: Mapping[str, Any]) -> None:
        self.runs.append(dict(summary))
        del self.runs[:-MAX_RUNS_KEPT]

    # --- lookups, each returning nodes sorted by asset id
    def _nodes_for(self, ids: Iterable[str]) -> list[CacheNode]:
        return [self._nodes[i] for i in ids]

    def find_by_name(self, name: str) -> list[CacheNode]:
        """Assets whose original file name equals `name`, ignoring case and Unicode form."""
        return self._nodes_for(self.index.ids_by_name(name))

    def find_by_path(self, path: str) -> list[CacheNode]:
        """Assets matched (status found) to the file at this absolute path."""
        return self._nodes_for(self.index.ids_by_path(path))

    def find_file(self, path: str) -> list[CacheNode]:
        """The asset(s) for a local file: by matched path, else by its name (absolute path expected)."""
        found = self.find_by_path(path)
        if found:
            return found
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        return self.find_by_name(name)

    def find_by_day(self, day: date) -> list[CacheNode]:
        return self._nodes_for(self.index.ids_by_day(day))

    def find_by_day_range(self, first: date, last: date) -> list[CacheNode]:
        return self._nodes_for(self.index.ids_by_day_range(first, last))

    def tag_ids_for(self, tag: str) -> list[str]:
        """Tag ids for an id, a full path (`Travel/Paris`) or a last segment (`Paris`), any case.
        A tag includes its descendants, as in Immich."""
        if tag in self.tags:
            roots = [tag]
        else:
            wanted = tag.casefold().strip("/")
            roots = [
                tid
                for tid, value in self.tags.items()
                if value.casefold() == wanted or value.casefold().rsplit("/", 1)[-1] == wanted
            ]
        prefixes = [self.tags[t].casefold() + "/" for t in roots]
        return sorted(
            set(roots)
            | {tid for tid, value in self.tags.items() if any(value.casefold().startswith(p) for p in prefixes)}
        )

    def album_ids_for(self, album: str) -> list[str]:
        if album in self.albums:
            return [album]
        wanted = album.casefold()
        return sorted(aid for aid, name in self.albums.items() if name.casefold() == wanted)

    def find_by_tag(self, tag: str) -> list[CacheNode]:
        return self._nodes_for(self.index.ids_by_tag_ids(self.tag_ids_for(tag)))

    def find_by_album(self, album: str) -> list[CacheNode]:
        return self._nodes_for(self.index.ids_by_album_ids(self.album_ids_for(album)))

    def stats(self) -> dict[str, Any]:
        status: Counter[str] = Counter()
        method: Counter[str] = Counter()
        confidence: Counter[str] = Counter()
        gone = 0
        for node in self._nodes.values():
            gone += node.gone_since is not None
            summary = node.match_summary()
            if summary is None:
                status["unmatched"] += 1
                continue
            status[summary.status] += 1
            if summary.status == Status.FOUND:
                method[summary.method] += 1
                confidence[summary.confidence] += 1
        return {
            "assets": len(self._nodes),
            "goneFromServer": gone,
            "byStatus": dict(sorted(status.items())),
            "byMethod": dict(sorted(method.items())),  # of found assets, as byConfidence
            "byConfidence": dict(sorted(confidence.items())),
            "albums": len(self.albums),
            "tags": len(self.tags),
            "lastRun": self.runs[-1] if self.runs else None,
        }
