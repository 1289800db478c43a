"""In-memory fakes of the three ports: they hold state the tests assert on, and record calls."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from datetime import datetime

from immich_sync.adapters.json_repository import decode_cache, encode_cache
from immich_sync.domain.cache import ImmichCache
from immich_sync.domain.library import CaptureTime, LibraryFile, LibraryIndex
from immich_sync.errors import CacheLocked
from immich_sync.ports import Groups, ServerInfo

NOW = datetime(2026, 11, 24, 12, 0)


class InMemoryCacheRepository:
    """Stores the encoded document (not the object), so what a test loads went through the codec."""

    def __init__(self, doc: dict | None = None) -> None:
        self.doc = doc
        self.checkpoint: dict | None = None
        self.saves = 0
        self.checkpoints = 0
        self.locked = False

    @contextmanager
    def lock(self):
        if self.locked:
            raise CacheLocked("in use")
        self.locked = True
        try:
            yield
        finally:
            self.locked = False

    def exists(self) -> bool:
        return self.doc is not None

    def load(self) -> ImmichCache:
        return ImmichCache() if self.doc is None else decode_cache(copy.deepcopy(self.doc), "memory")

    def save(self, cache: ImmichCache) -> None:
        self.doc = copy.deepcopy(encode_cache(cache, NOW))
        self.saves += 1

    def load_checkpoint(self) -> ImmichCache | None:
        return None if self.checkpoint is None else decode_cache(copy.deepcopy(self.checkpoint), "checkpoint")

    def save_checkpoint(self, cache: ImmichCache) -> None:
        self.checkpoint = copy.deepcopy(encode_cache(cache, NOW))
        self.checkpoints += 1

    def drop_checkpoint(self) -> None:
        self.checkpoint = None

    def pack(self, node) -> None:
        self.packed = getattr(self, "packed", 0) + 1


def _stamp(members) -> tuple[str, int]:
    import hashlib

    return hashlib.sha1("|".join(sorted(members)).encode()).hexdigest()[:12], len(members)


class FakeSource:
    """The ImmichSource port: a list of raw assets, filtered the way the real client filters."""

    def __init__(self, assets=(), *, albums=None, tags=None, version=(3, 1, 0)) -> None:
        self.assets = {a["id"]: a for a in assets}
        self.album_groups = albums or Groups({}, {})
        self.tag_groups = tags or Groups({}, {})
        self.version = version
        self.calls: list[tuple] = []
        self.fail_after: int | None = None
        self.exact_stamps = True
        self.membership_calls: list[tuple] = []  # albums, tags, album_members, asset_tags: what was read

    def check(self) -> ServerInfo:
        return ServerInfo("http://fake", self.version, "me")

    def album_stamps(self):
        groups = self.album_groups
        # as the real server's: the stamp moves whenever the album's assets change
        stamps = groups.stamps or {aid: _stamp(groups.members.get(aid, frozenset())) for aid in groups.names}
        return Groups(groups.names, {}, stamps)

    def album_members(self, album_ids):
        album_ids = list(album_ids)
        self.membership_calls.append(("album_members", tuple(album_ids)))
        return {aid: self.album_groups.members.get(aid, frozenset()) for aid in album_ids}

    def tag_values(self):
        return dict(self.tag_groups.names)

    def asset_tags(self, ids):
        ids = list(ids)
        self.membership_calls.append(("asset_tags", tuple(ids)))
        for asset_id in ids:
            if asset_id not in self.assets:
                yield asset_id, None
            else:
                yield asset_id, frozenset(t for t, m in self.tag_groups.members.items() if asset_id in m)

    def stamps_are_exact(self):
        return self.exact_stamps

    def album_list(self):
        groups = self.album_groups
        return [(aid, name, len(groups.members.get(aid, ()))) for aid, name in groups.names.items()]

    def iter_assets(self, updated_after=None, updated_before=None, album_id=None):
        self.calls.append(("iter_assets", updated_after, updated_before, album_id))
        for n, raw in enumerate(self._listed(album_id)):
            if self.fail_after is not None and n >= self.fail_after:
                raise KeyboardInterrupt
            yield raw

    def iter_versions(self, updated_after=None, updated_before=None, album_id=None):
        self.calls.append(("iter_versions", updated_after, updated_before, album_id))
        for raw in self._listed(album_id):
            yield raw["id"], raw.get("updatedAt"), raw.get("originalFileName") or ""

    def _listed(self, album_id):
        for raw in list(self.assets.values()):
            if album_id is not None and album_id not in self.album_groups.members:
                continue
            if album_id is not None and raw["id"] not in self.album_groups.members[album_id]:
                continue
            yield raw

    def count_assets(self, **_):
        return len(self.assets)

    def get_assets(self, ids):
        self.calls.append(("get_assets", tuple(ids)))
        for asset_id in ids:
            raw = self.assets.get(asset_id)
            yield asset_id, (None if raw is None or raw.get("isTrashed") else raw)

    def albums(self) -> Groups:
        self.membership_calls.append(("albums",))
        return Groups(self.album_groups.names, self.album_groups.members, self.album_stamps().stamps)

    def tags(self) -> Groups:
        self.membership_calls.append(("tags",))
        return self.tag_groups

    def cancel(self) -> None:
        self.calls.append(("cancel",))


class FakeLibrary:
    """The LibraryReader port over a dict of files: path -> (size, capture time, sha1)."""

    def __init__(self, root: str = "/lib", files: dict | None = None) -> None:
        self.root = root
        self.files = files or {}
        self.date_reads: list[str] = []
        self.hash_reads: list[str] = []
        self.prefetched: list[str] = []
        self.unreadable: list[str] = []  # folders (absolute) an outage hides from the next scan
        self.walked_files = 0

    def add(self, relative: str, size: int, taken: datetime | None = None, sha1: str | None = None) -> str:
        path = f"{self.root}/{relative}"
        self.files[path] = (relative, size, taken, sha1)
        return path

    def scan(self, root: str) -> LibraryIndex:
        hidden = [u.rstrip("/") + "/" for u in self.unreadable]
        files = [
            LibraryFile(p, rel, size)
            for p, (rel, size, _, _) in self.files.items()
            if not any(p.startswith(h) for h in hidden)
        ]
        self.walked_files = len(files)
        return LibraryIndex.from_files(root, files, self.unreadable)

    def index(self) -> LibraryIndex:
        return self.scan(self.root)

    def walked(self) -> int:
        return self.walked_files

    def prefetch(self, paths) -> None:
        self.prefetched.extend(paths)

    def capture_time(self, path: str):
        self.date_reads.append(path)
        taken = self.files[path][2]
        return None if taken is None else CaptureTime(taken)

    def sha1(self, path: str):
        self.hash_reads.append(path)
        return self.files[path][3]
