"""The cache file: JSON (docs/cache-format.md), written atomically, read defensively, locked per run."""

from __future__ import annotations

import functools
import gc
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from filelock import FileLock, Timeout

from .. import __version__
from ..domain.cache import FORMAT_VERSION, CacheNode, ImmichCache
from ..domain.index import raw_day, raw_name_key
from ..domain.match import Confidence, Evidence, MatchResult, MatchSummary, Status
from ..domain.timestamps import format_instant, parse_instant
from ..errors import CacheFileError, CacheLocked, OtherAccount

if TYPE_CHECKING:
    import cattrs


@functools.cache
def _converter() -> cattrs.Converter:
    """Reading the cache file's matches: camelCase keys, confidence as its label, times as ISO text.
    Built on the first match decoded: a run that decodes none (a first run, an unchanged run, a
    script's lookups) does not pay for importing cattrs."""
    import cattrs
    from cattrs.gen import make_dict_structure_fn, override

    conv = cattrs.Converter()
    conv.register_structure_hook(datetime, lambda v, _: parse_instant(v))
    conv.register_structure_hook(Confidence, lambda v, _: Confidence.from_label(v))
    conv.register_structure_hook(
        MatchResult,
        make_dict_structure_fn(
            MatchResult,
            conv,
            matched_at=override(rename="matchedAt"),
            file_size=override(rename="fileSize"),
            pinned_by=override(rename="pinnedBy"),
            pin_problem=override(rename="pinProblem"),
        ),
    )
    conv.register_structure_hook(Evidence, make_dict_structure_fn(Evidence, conv))
    return conv


_LABEL_OF = {c: c.label for c in Confidence}


def encode_match(match: MatchResult | None) -> dict[str, Any] | None:
    """Written by hand, as it runs once per matched asset (several times faster than the
    converter's generated code): tests check that `_decode_stored` (the converter) reads back
    exactly what this writes."""
    if match is None:
        return None
    e = match.evidence
    doc: dict[str, Any] = {
        "status": match.status._value_,
        "path": match.path,
        "method": match.method,
        "confidence": _LABEL_OF[match.confidence],
        "candidates": list(match.candidates),
        "evidence": {
            "name": e.name,
            "path": e.path,
            "date": e.date._value_,
            "size": e.size._value_,
            "checksum": e.checksum._value_,
        },
        "matchedAt": _time(match.matched_at),
        "fileSize": match.file_size,
    }
    # written only when they say something: most matches have neither
    if match.rejected:
        doc["rejected"] = [{"path": r.path, "evidence": _evidence(r.evidence)} for r in match.rejected]
    if match.provisional:
        doc["provisional"] = True
    if match.pinned:
        doc["pinned"] = True
        if match.pinned_by:
            doc["pinnedBy"] = match.pinned_by
        if match.pin_problem:
            doc["pinProblem"] = match.pin_problem
    return doc


def _evidence(e: Evidence) -> dict[str, Any]:
    return {
        "name": e.name,
        "path": e.path,
        "date": e.date._value_,
        "size": e.size._value_,
        "checksum": e.checksum._value_,
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def encode_cache(cache: ImmichCache, saved_at: datetime) -> dict[str, Any]:
    """The file's document as plain data ("assets" last, as the node-per-line layout needs)."""
    return {**_header(cache, saved_at), "assets": {node.id: encode_node(node) for node in cache}}


def encode_cache_bytes(cache: ImmichCache, saved_at: datetime) -> bytes:
    """The file's bytes (see `write_cache`)."""
    buffer = io.BytesIO()
    write_cache(buffer, cache, saved_at)
    return buffer.getvalue()


def write_cache(handle: BinaryIO, cache: ImmichCache, saved_at: datetime) -> None:
    """Write the file, indented as orjson's OPT_INDENT_2 writes it, so that each asset node is one
    line; node by node, so that 1,000,000 assets are never one 2 GB bytes object. A node nothing
    changed since it was read is written back as the bytes it was read from."""
    head = orjson.dumps({**_header(cache, saved_at), "assets": {}}, option=orjson.OPT_INDENT_2)
    if not len(cache):
        handle.write(head)
        return
    handle.write(head[: -len(b"{}\n}")] + b"{\n")
    last = len(cache) - 1
    for n, node in enumerate(cache):
        handle.write(b"    " + orjson.dumps(node.id) + b": " + node_bytes(node) + (b",\n" if n < last else b"\n"))
    handle.write(b"  }\n}")


def _header(cache: ImmichCache, saved_at: datetime) -> dict[str, Any]:
    stats = cache.stats()
    stats.pop("lastRun")
    return {
        "version": FORMAT_VERSION,
        "generator": f"immich-sync {__version__}",
        "savedAt": format_instant(saved_at),
        "target": cache.target,
        "server": cache.server,
        "counts": stats,
        "runs": cache.runs,
        "albums": {aid: _album_entry(cache, aid, name) for aid, name in cache.albums.items()},
        "tags": {tid: {"value": value} for tid, value in cache.tags.items()},
    }


def _album_entry(cache: ImmichCache, album_id: str, name: str) -> dict[str, Any]:
    stamp = cache.album_stamps.get(album_id)
    if stamp is None:
        return {"albumName": name}
    return {"albumName": name, "updatedAt": stamp[0], "assetCount": stamp[1]}


def node_bytes(node: CacheNode) -> bytes:
    """A node's line as the file holds it. Unchanged: the bytes it was read or packed as. Changed
    where the asset is not (its match, albums, tags or file section): the new head before the
    asset's stored bytes, so that a first run may pack its nodes before the album and tag
    membership arrives and still not encode each asset twice."""
    held = node.stored
    if held is not None and held.data is not None:
        return held.data
    kept = node.untouched_asset_source()
    if isinstance(kept, StoredJson) and kept.data is not None and (cut := _asset_at(kept.data)) > 0:
        return orjson.dumps(encode_node(node, with_asset=False))[:-1] + kept.data[cut:]
    return orjson.dumps(encode_node(node))


def encode_node(node: CacheNode, *, with_asset: bool = True) -> dict[str, Any]:
    """A node as the file holds it: `keys` first (the index keys, derived from the asset), the
    asset last, so that a reader parses only the few hundred bytes before it (`_node_head`)."""
    undecoded = node.undecoded_match()
    doc = {
        "keys": {"name": node.name_key, "day": node.day, "updatedAt": node.updated_text},
        "match": undecoded.match_doc if isinstance(undecoded, StoredJson) else encode_match(node.match),
        "albums": list(node.albums),
        "tags": list(node.tags),
        "cachedAt": _time(node.cached_at),
        "goneSince": _time(node.gone_since),
    }
    if node.file is not None:  # before the asset: read with the node's head
        doc["file"] = node.file
    if with_asset:
        doc["asset"] = node.asset_raw
    return doc


def _decode_stored(doc: Mapping[str, Any]) -> MatchResult:
    import cattrs  # on first use (see `_converter`)

    try:
        return _converter().structure(doc, MatchResult)
    except (KeyError, TypeError, ValueError, cattrs.BaseValidationError) as exc:
        raise CacheFileError(f"a match in the cache file is damaged ({type(exc).__name__}: {exc})") from None


class StoredJson:
    """A node as the file holds it (the domain's `StoredNode`): its bytes in the file, and what
    indexes and counts need of its match (`MatchSummary`), read from the match as parsed and
    checked (`_checked_match`) but not decoded.

    With the bytes, the parsed match is not kept: it is read again from them when asked (a few
    microseconds, for the nodes a run matches again or re-encodes). Its two dicts, list and
    strings were ~1 KB a node, a tenth of a loaded 100,000-asset cache; the summary's texts
    (status, method, confidence) are shared between nodes."""

    __slots__ = ("_doc", "_summary", "data")

    def __init__(self, data: bytes | None, match_doc: dict[str, Any] | None) -> None:
        self.data = data
        self._summary = None if match_doc is None else _summary_of(match_doc)
        self._doc = match_doc if data is None else None

    @property
    def match_doc(self) -> dict[str, Any] | None:
        """The stored match as the file holds it (None: no match)."""
        if self._doc is not None or self._summary is None:
            return self._doc
        assert self.data is not None
        return _node_head(self.data)["match"]

    def asset(self) -> dict[str, Any]:
        if self.data is None:
            raise ValueError("a node read whole keeps its asset itself")  # a bug, never a silent loss
        return _asset_of(self.data)

    def match(self) -> MatchResult | None:
        doc = self.match_doc
        return None if doc is None else _decode_stored(doc)

    def match_summary(self) -> MatchSummary | None:
        return self._summary

    def found_path(self) -> str | None:
        summary = self._summary
        return summary.path if summary is not None and summary.status == "found" else None


def _summary_of(doc: dict[str, Any]) -> MatchSummary:
    return MatchSummary(  # the few texts of status, method and confidence: one object each
        sys.intern(doc["status"]),
        doc.get("path"),
        sys.intern(doc.get("method", "")),
        sys.intern(doc.get("confidence", "none")),
        doc.get("fileSize"),
        len(doc.get("candidates") or ()),
        doc.get("provisional") is True,
        doc.get("pinned") is True,
    )


_STATUSES = frozenset(s.value for s in Status)
_LABELS = frozenset(c.label for c in Confidence)


def _checked_match(doc: Any, asset_id: str) -> dict[str, Any] | None:
    """The stored match, checked enough that indexes and counts can trust it before it is decoded."""
    if doc is None:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("status") not in _STATUSES
        or doc.get("confidence") not in _LABELS
        or not isinstance(doc.get("path"), (str, type(None)))
    ):
        raise ValueError(f"asset {asset_id} has a malformed match")
    return doc


def _check_header(doc: Any, source: str) -> None:
    if not isinstance(doc, dict) or "version" not in doc or not isinstance(doc.get("assets"), dict):
        raise CacheFileError(f'{source}: not an immich-sync cache file (no "version" and "assets")')
    version = doc["version"]
    if not isinstance(version, int) or version < 1:
        raise CacheFileError(f'{source}: not an immich-sync cache file (bad "version": {version!r})')
    if version > FORMAT_VERSION:
        raise CacheFileError(
            f"{source}: written by a newer immich-sync (cache format {version}; this version reads "
            f"{FORMAT_VERSION}); upgrade immich-sync or use another --cache file"
        )


def _finish(cache: ImmichCache, doc: dict[str, Any]) -> ImmichCache:
    albums = doc.get("albums") or {}
    cache.albums = {aid: a["albumName"] for aid, a in albums.items()}
    cache.album_stamps = {
        aid: (a.get("updatedAt"), int(a["assetCount"]))
        for aid, a in albums.items()
        if isinstance(a.get("assetCount"), int) and isinstance(a.get("updatedAt"), (str, type(None)))
    }
    cache.tags = {tid: t["value"] for tid, t in (doc.get("tags") or {}).items()}
    cache.target = doc.get("target")
    cache.server = dict(doc.get("server") or {})
    cache.runs = list(doc.get("runs") or [])
    return cache


# (a match is decoded later, on first use: `_decode_stored` names its own damage)
_DAMAGE = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def decode_cache(doc: Any, source: str) -> ImmichCache:
    """Build an ImmichCache from a parsed file, or raise CacheFileError naming `source`."""
    _check_header(doc, source)
    try:
        nodes = [_decode_node(asset_id, node) for asset_id, node in doc["assets"].items()]
        return _finish(ImmichCache.from_nodes(nodes), doc)
    except _DAMAGE as exc:
        raise CacheFileError(f"{source}: damaged cache file ({type(exc).__name__}: {exc})") from None


def _decode_node(asset_id: str, node: dict[str, Any], stored: bytes | None = None) -> CacheNode:
    """One node of the file. With `stored` (its bytes), the asset dict is not kept: only the keys
    the indexes and the update rule need (from `keys`, or else from the asset), and the bytes to
    parse it again from when asked; `node` may then lack its asset (see `_node_head`)."""
    match = _checked_match(node.get("match"), asset_id)
    albums, tags = node.get("albums"), node.get("tags")
    albums, tags = tuple(albums) if albums else (), tuple(tags) if tags else ()
    cached_at, gone = parse_instant(node.get("cachedAt")), node.get("goneSince")
    gone_since = None if gone is None else parse_instant(gone)
    if stored is None:
        return CacheNode(
            id=asset_id,
            asset_raw=node["asset"],
            albums=albums,
            tags=tags,
            cached_at=cached_at,
            gone_since=gone_since,
            file=_checked_file(node.get("file"), asset_id),
            stored=StoredJson(None, match),
        )
    keys = _checked_keys(node.get("keys"))
    if keys is None:  # written without keys (another tool): derive them from the asset
        raw = node["asset"] if "asset" in node else _asset_of(stored)
        keys = (raw_name_key(raw), raw_day(raw), raw.get("updatedAt"))
    return CacheNode(
        id=asset_id,
        albums=albums,
        tags=tags,
        cached_at=cached_at,
        gone_since=gone_since,
        file=_checked_file(node.get("file"), asset_id),
        stored=StoredJson(stored, match),
        name_key=keys[0],
        day=keys[1],
        updated_text=keys[2],
    )


def _checked_file(section: Any, asset_id: str) -> dict[str, Any] | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ValueError(f"asset {asset_id} has a malformed file section")
    return section


def _checked_keys(keys: Any) -> tuple[str, str | None, str | None] | None:
    if not isinstance(keys, dict):
        return None
    name, day, updated = keys.get("name"), keys.get("day"), keys.get("updatedAt")
    if (
        not isinstance(name, str)
        or not isinstance(day, (str, type(None)))
        or not isinstance(updated, (str, type(None)))
    ):
        return None
    return name, day, updated


_ASSETS_LINE = b'  "assets": {\n'
_ASSETS_END = b"  }\n"
_KEYS_FIRST = b'{"keys":'
# Where the asset starts in a node written keys first. Never found inside a string: a quote in a
# JSON string is always escaped, so `,"asset":{` there reads `,\"asset\":{`.
_ASSET_AT = b',"asset":{'
# A packed node (`JsonCacheRepository.pack`): its asset's bytes behind an empty head, never saved
# as they are (the node is marked changed), only cut at `_ASSET_AT` by `node_bytes`.
_PACKED_HEAD = b'{"keys":null,"asset":'


def _asset_at(stored: bytes) -> int:
    """Where `,"asset":{` starts in a node written keys first and asset last, else -1."""
    if stored.startswith(_KEYS_FIRST) and stored.endswith(b"}}"):
        return stored.find(_ASSET_AT)
    return -1


def _node_head(stored: bytes) -> dict[str, Any]:
    """The node without its asset when it was written keys first and asset last (~300 bytes to
    parse instead of ~2 KB); otherwise the whole node."""
    cut = _asset_at(stored)
    return orjson.loads(stored[:cut] + b"}") if cut > 0 else orjson.loads(stored)


def _asset_of(stored: bytes) -> dict[str, Any]:
    cut = _asset_at(stored)
    return orjson.loads(stored[cut + len(_ASSET_AT) - 1 : -1]) if cut > 0 else orjson.loads(stored)["asset"]


def read_node_lines(handle: BinaryIO, source: str) -> ImmichCache:
    """Read a file this module wrote (node per line) line by line: each node is parsed once for
    the fields the indexes need and kept as its bytes, and the file is never held whole in memory.
    Any other layout of the same JSON is parsed whole."""
    header_lines = []
    for line in handle:
        if line == _ASSETS_LINE:
            break
        header_lines.append(line)
    else:
        handle.seek(0)
        return decode_cache(orjson.loads(handle.read()), source)
    header = orjson.loads(b"".join(header_lines) + b'  "assets": {}\n}')
    _check_header(header, source)
    nodes = []
    try:
        for line in handle:
            if line == _ASSETS_END:
                break
            colon = line.index(b'": ')
            value_end = len(line) - (2 if line.endswith(b",\n") else 1 if line.endswith(b"\n") else 0)
            stored = line[colon + 3 : value_end]
            nodes.append(_decode_node(orjson.loads(line[: colon + 1]), _node_head(stored), stored))
        else:
            raise ValueError("the file ends inside the assets")
        if handle.read().strip() != b"}":
            raise ValueError("unexpected text after the assets")
        return _finish(ImmichCache.from_nodes(nodes), header)
    except _DAMAGE as exc:
        raise CacheFileError(f"{source}: damaged cache file ({type(exc).__name__}: {exc})") from None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building 100,000 nodes makes millions of objects; the cyclic collector would rescan them all."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Each read of the file gives up the GIL and waits to get it back behind the listing thread's page
# parsing: large reads make few such waits (benchmarks/README.md has the measurement).
_READ_BUFFER = 4 << 20


def read_cache_file(path: Path) -> ImmichCache:
    try:
        with open(path, "rb", buffering=_READ_BUFFER) as handle, _gc_paused():
            try:
                return read_node_lines(handle, str(path))
            except orjson.JSONDecodeError as exc:
                raise CacheFileError(f"{path}: not a valid JSON cache file (corrupt or truncated: {exc})") from None
    except OSError as exc:
        raise CacheFileError(f"{path}: cannot read the cache file ({exc.strerror or exc})") from None


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Temporary file in the same folder, flush + fsync, then os.replace: old file or new, never a mix.
    `data` is the bytes, or a function that writes them to the open file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class JsonCacheRepository:
    """The cache at `path`, its lock at `path.lock` and its checkpoint at `path.checkpoint`.

    The lock is an OS-level lock (flock through `filelock`): it dies with its process, so a killed
    run never blocks the next one, while a live second run is refused at once.
    """

    def __init__(self, path: str | os.PathLike[str], now=None) -> None:
        self.path = Path(path)
        self.checkpoint_path = self.path.with_name(self.path.name + ".checkpoint")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._now = now or (lambda: datetime.now().astimezone())

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the cache for one run. The folder must take new files (the lock, the checkpoint,
        the saved cache): a read-only one is refused here, before any work. A run that refuses the
        file it found (not a cache, damaged, another account's) leaves no lock file of its own
        beside it."""
        self.check_writable()
        existed = self.lock_path.exists()
        lock = FileLock(str(self.lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise CacheLocked(f"{self.path} is in use by another immich-cache run (lock {self.lock_path})") from None
        try:
            yield
        except (CacheFileError, OtherAccount):
            if not existed:
                self.lock_path.unlink(missing_ok=True)
            raise
        finally:
            lock.release()

    def check_writable(self) -> None:
        """CacheFileError unless a file can be made in the cache's folder (made if missing)."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise CacheFileError(
                f"cannot write in {folder} ({exc.strerror or exc}): the cache, its lock and its checkpoint are "
                "written there; give --cache=FILE in a folder you can write"
            ) from None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> ImmichCache:
        """The cache in the file, or an empty one when there is no file yet."""
        if not self.path.exists():
            return ImmichCache()
        return read_cache_file(self.path)

    def save(self, cache: ImmichCache) -> None:
        write_atomically(self.path, self._writer(cache))

    def load_checkpoint(self) -> ImmichCache | None:
        if not self.checkpoint_path.exists():
            return None
        return read_cache_file(self.checkpoint_path)

    def save_checkpoint(self, cache: ImmichCache) -> None:
        write_atomically(self.checkpoint_path, self._writer(cache))

    def drop_checkpoint(self) -> None:
        self.checkpoint_path.unlink(missing_ok=True)

    def pack(self, node: CacheNode) -> None:
        """Hold a settled node's asset as its encoded bytes from now on, not as dicts (~2 KB
        against ~5 KB an asset). Only the asset is encoded: the rest of the node is small, stays
        as it is, and most of it changes before the save (a first run's album and tag membership
        arrives after the matching), when `node_bytes` encodes it before these bytes. Measured
        at 100,000 assets (benchmarks/README.md): a first run's peak memory 830 -> 590 MB, at
        the same time within the noise; keeping the first 150,000 as dicts, as before, only
        saved the encoding that the save does anyway."""
        if node.stored is None and node.untouched_asset_source() is None:
            # one exact-size copy: orjson's own result keeps its ~16 KiB write buffer
            node.keep_stored(StoredJson(b"".join((_PACKED_HEAD, orjson.dumps(node.asset_raw), b"}")), None))
            node.changed()

    def _writer(self, cache: ImmichCache) -> Callable[[BinaryIO], None]:
        saved_at = self._now()

        def write(handle: BinaryIO) -> None:
            with _gc_paused():
                write_cache(handle, cache, saved_at)

        return write
