"""The `immich-cache` use case: gather (page the server, scan TARGET once), decide (the update rule
and the matcher), apply (cache changes, checkpoints, one save at the end)."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

from attrs import define, field, frozen

from ..audit import audit_line, log_audit
from ..domain.cache import CacheNode, ImmichCache, Upsert, is_newer
from ..domain.match import Status
from ..domain.matcher import MatchPolicy, files_to_date, match_asset, needs_rematch
from ..domain.timestamps import format_instant, parse_instant
from ..ports import CacheRepository, Groups, ImmichSource, LibraryReader

log = logging.getLogger(__name__)


@frozen
class ExtractRequest:
    target: str  # absolute path of the library folder
    clear: bool = False
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    album_id: str | None = None
    verify: bool = False
    # A checkpoint rewrites the whole cache (about 2 s for 100,000 assets), so it is taken by time:
    # an interruption loses at most two minutes of work. `checkpoint_every` (assets) is for tests.
    checkpoint_every: int = 0
    checkpoint_seconds: float = 120.0
    # Assets are matched in batches (about a page), each announced to the library a batch ahead
    # so that reader processes read its file dates meanwhile; the listing runs up to
    # `pages_ahead` batches ahead of the matching (~5 MB each), from the start of the run.
    read_ahead: int = 1000
    pages_ahead: int = 32

    @property
    def is_full(self) -> bool:
        """Only a run over everything may say that an asset is gone from the server."""
        return self.updated_after is None and self.updated_before is None and self.album_id is None


class Progress(Protocol):
    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@define
class ExtractResult:
    fetched: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    matched: int = 0  # matched this run (new, updated, or re-matched)
    rematched: int = 0  # of those, unchanged assets matched again (not found, ambiguous, file changed)
    by_status: Counter = field(factory=Counter)
    by_method: Counter = field(factory=Counter)
    by_confidence: Counter = field(factory=Counter)
    gone: int = 0  # cached assets the server no longer returns (full runs only)
    albums: int = 0
    tags: int = 0
    files_scanned: int = 0
    claimed_twice: dict[str, list[str]] = field(factory=dict)
    resumed: bool = False
    saved: bool = False  # the cache file was written (a run that changed nothing leaves it as it was)
    server_version: str = ""
    duration: float = 0.0
    # the cache as the run left it (as saved, or as the file holds it): look assets up at once
    cache: ImmichCache | None = field(default=None, repr=False, eq=False)

    def summary(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "matched": self.matched,
            "rematched": self.rematched,
            "byStatus": dict(sorted(self.by_status.items())),
            "byMethod": dict(sorted(self.by_method.items())),
            "byConfidence": dict(sorted(self.by_confidence.items())),
            "goneFromServer": self.gone,
            "albums": self.albums,
            "tags": self.tags,
            "filesScanned": self.files_scanned,
            "claimedTwice": len(self.claimed_twice),
            "resumed": self.resumed,
            "durationSeconds": round(self.duration, 3),
        }


def run_extract(
    request: ExtractRequest,
    source: ImmichSource,
    repo: CacheRepository,
    library: LibraryReader,
    *,
    now: Callable[[], datetime],
    progress: Progress | None = None,
    audit: Callable[[str], None] = log_audit,
) -> ExtractResult:
    """`audit` receives each asset's AUDIT line (by default the `immich_sync.audit` logger; the
    command line writes them straight into its log file, at a tenth of a LogRecord's cost)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    result = ExtractResult()
    with repo.lock():
        filters = {
            "updated_after": request.updated_after,
            "updated_before": request.updated_before,
            "album_id": request.album_id,
        }
        # Three things start at once, as none needs another: the folder walk, the listing of the
        # server's assets (a thread a few pages ahead) with the album and tag passes, and the cache
        # load here. The server then works while the cache loads and the folder is walked.
        # A re-run lists versions first (ids and updatedAt, without EXIF: half the bytes), and
        # then fetches whole only the assets that are new or changed (see `_fetch_changed`).
        progress.stage("scanning", None)
        scan = _in_background(library.scan, request.target)
        rerun = not request.clear and repo.exists()
        ahead = (max(1, request.read_ahead), request.pages_ahead)
        listings = [_ListingAhead(lambda: (source.iter_versions if rerun else source.iter_assets)(**filters), *ahead)]
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="membership")
        try:
            albums_future = pool.submit(source.albums)
            tags_future = pool.submit(source.tags)
            cache = repo.load()  # a foreign, corrupt or newer file stops the run here, untouched
            as_loaded = _file_state(cache)
            log.info("cache loaded: %d assets", len(cache))
            checkpoint = repo.load_checkpoint()
            if checkpoint is not None and checkpoint.target == request.target:
                log.info("resuming from the checkpoint of an interrupted run")
                cache, result.resumed = checkpoint, True
            elif request.clear:
                cache.clear()
            if cache.target and cache.target != request.target:
                log.warning(
                    "the cache was made for %s, not %s: every asset is matched again", cache.target, request.target
                )
                for node in cache:
                    cache.clear_match(node.id)
            cache.target = request.target

            info = source.check()
            result.server_version = info.version_text
            cache.server = {"url": info.url, "version": info.version_text, "userId": info.user_id}

            index = scan.result()
            result.files_scanned = len(index)
            progress.advance(len(index))
            log.info("scanned %s: %d candidate files", request.target, len(index))

            policy = MatchPolicy(verify=request.verify)
            seen: set[str] = set()
            progress.stage("fetching and matching", source.count_assets(**filters))
            last_checkpoint, since_checkpoint = time.monotonic(), 0

            def settle(node: CacheNode) -> None:
                nonlocal last_checkpoint, since_checkpoint
                progress.advance()
                if node.stored is not None:
                    return  # as the file holds it: nothing to pack, and no work a checkpoint would keep
                repo.pack(node)  # settled: held compactly from here on
                since_checkpoint += 1
                if (request.checkpoint_every and since_checkpoint >= request.checkpoint_every) or (
                    time.monotonic() - last_checkpoint > request.checkpoint_seconds and since_checkpoint
                ):
                    repo.save_checkpoint(cache)
                    last_checkpoint, since_checkpoint = time.monotonic(), 0

            announce = lambda batch: library.prefetch(_dates_wanted(batch, cache, index))
            whole = listings[0]
            if rerun:
                wanted: dict[str, str | None] = {}  # new or changed: id -> updatedAt
                held_batches = (_held(batch, cache) for batch in listings[0].batches())
                announce_held = lambda batch: library.prefetch(_dates_wanted_held(batch, index))
                for asset_id, updated, name, node in _announced_ahead(held_batches, announce_held):
                    seen.add(asset_id)
                    if node is not None:
                        settle(_process_held(node, name, cache, index, library, policy, now, result, audit))
                    else:
                        wanted[asset_id] = updated
                whole = _fetch_changed(wanted, request, source, filters, ahead, listings) if wanted else None
            if whole is not None:
                for raw in _announced_ahead(whole.batches(), announce):
                    if rerun and wanted.pop(str(raw.get("id")), _NOT_WANTED) is _NOT_WANTED:
                        continue  # held already (listed since it changed), or not listed then
                    settle(_process(raw, cache, index, library, policy, now(), result, seen, audit))
                if rerun and wanted:
                    log.info(
                        "%d assets listed without their metadata (never extracted, or changed meanwhile) "
                        "are left as cached",
                        len(wanted),
                    )
            log.info("fetched and matched %d assets", result.fetched)
            albums, tags = albums_future.result(), tags_future.result()
            log.info("album and tag membership fetched")
        except BaseException:
            for listing in listings:
                listing.stop()
            source.cancel()  # Ctrl-C or a failure: the listing and membership passes stop at their next request
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        _apply_groups(cache, albums, tags, result)

        if request.is_full:
            moment = now()
            for asset_id in cache.ids():
                if asset_id not in seen and cache.mark_gone(asset_id, moment):
                    log.warning("asset %s is no longer on the server (kept, marked gone)", asset_id)
            result.gone = sum(1 for node in cache if node.gone_since is not None)
        result.claimed_twice = cache.index.claimed_paths()
        for path, ids in result.claimed_twice.items():
            log.warning("%s is matched by %d assets: %s", path, len(ids), ", ".join(ids))
        result.duration = time.monotonic() - started
        if _left_as_loaded(cache, as_loaded, result):
            # Rewriting 200 MB to say nothing happened would cost a second and the disk's wear on
            # every cron run: the file stays as it was, and the run's summary is in its log.
            log.info("nothing changed: the cache file is left as it was")
        else:
            cache.add_run(
                {
                    "at": format_instant(now()),
                    "full": request.is_full,
                    "clear": request.clear,
                    "after": _opt(request.updated_after),
                    "before": _opt(request.updated_before),
                    "album": request.album_id,
                    **result.summary(),
                }
            )
            repo.save(cache)
            result.saved = True
            log.info("cache saved")
        repo.drop_checkpoint()
    progress.close()
    result.cache = cache
    return result


def _file_state(cache: ImmichCache) -> tuple[Any, ...]:
    """What the file holds besides its nodes' own data and its runs."""
    return (len(cache), cache.target, dict(cache.server), dict(cache.albums), dict(cache.tags))


def _left_as_loaded(cache: ImmichCache, as_loaded: tuple[Any, ...], result: ExtractResult) -> bool:
    """Nothing to write: every node as the file holds it and the rest of the file the same. A
    resumed run's cache came from its checkpoint, and an empty cache may have no file yet."""
    return not result.resumed and len(cache) > 0 and _file_state(cache) == as_loaded and cache.all_as_stored()


_NOT_WANTED = object()

_Version = tuple[str, str | None, str, CacheNode | None]  # id, updatedAt, name, the node holding it


def _fetch_changed(
    wanted: dict[str, str | None],
    request: ExtractRequest,
    source: ImmichSource,
    filters: dict[str, Any],
    ahead: tuple[int, int],
    listings: list[_ListingAhead],
) -> _ListingAhead:
    """The listing, with EXIF, of the assets updated since the oldest of those wanted (all of them
    when one has no readable date): on a re-run, the few recent changes."""
    dates = [parse_instant(updated) for updated in wanted.values()]
    since = None if None in dates else min(dates)  # type: ignore[type-var]
    if request.updated_after is not None:
        since = request.updated_after if since is None else max(since, request.updated_after)
    log.info(
        "%d assets new or changed: fetching them whole (updated since %s)",
        len(wanted),
        "ever" if since is None else format_instant(since),
    )
    listing = _ListingAhead(lambda: source.iter_assets(**{**filters, "updated_after": since}), *ahead)
    listings.append(listing)
    return listing


def _in_background(function: Callable[..., Any], *args: Any) -> Future:
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=work, daemon=True, name="scan").start()
    return future


class _ListingAhead:
    """The server's assets in batches, fetched by a thread up to `ahead` batches ahead of the
    matching (a bounded queue: ~5 MB of dicts a batch of 1,000). A failure in the listing reaches
    the caller when it takes the batch that would have followed."""

    _END = object()

    def __init__(self, listing: Callable[[], Iterable[dict[str, Any]]], size: int, ahead: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._stopped = threading.Event()
        threading.Thread(target=self._pump, args=(listing, size), daemon=True, name="listing").start()

    def _pump(self, listing: Callable[[], Iterable[dict[str, Any]]], size: int) -> None:
        try:
            it = iter(listing())
            while batch := list(islice(it, size)):
                if not self._put(batch):
                    return
            self._put(self._END)
        except BaseException as exc:
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        while (item := self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stopped.set()


def _announced_ahead(
    batches: Iterator[list[dict[str, Any]]], announce: Callable[[list[dict[str, Any]]], None]
) -> Iterator[dict[str, Any]]:
    """Yield the batches' assets in order; each batch is announced before the one before it is
    yielded, so that the reader processes read its file dates while that one is matched."""
    batch = next(batches, None)
    if batch:
        announce(batch)
    while batch:
        following = next(batches, None)
        if following:
            announce(following)
        yield from batch
        batch = following


def _dates_wanted(batch: list[dict[str, Any]], cache: ImmichCache, index) -> list[str]:
    """The files whose dates the matcher will read for this batch: those of the new and updated
    assets and of those not found or ambiguous last time. A hint only (`_process` decides): an
    asset whose matched file changed size is matched again too, and its file read when asked."""
    paths: list[str] = []
    for raw in batch:
        node = cache.get(str(raw.get("id")))
        if node is None or node.found_path() is None or is_newer(raw, node):
            paths.extend(f.path for f in files_to_date(raw, index))
    return paths


def _held(batch: list[tuple[str, str | None, str]], cache: ImmichCache) -> list[_Version]:
    """A re-run's listed versions, each with the node that holds it in that version (None when
    it is new or changed): the update rule is asked once per asset."""
    node_of, is_current = cache.get, cache.is_current
    return [
        (asset_id, updated, name, node_of(asset_id) if is_current(asset_id, updated) else None)
        for asset_id, updated, name in batch
    ]


def _dates_wanted_held(batch: list[_Version], index) -> list[str]:
    """`_dates_wanted` for a re-run's versions: the held assets not found or ambiguous last time
    (new and changed ones are announced when they are fetched whole)."""
    paths: list[str] = []
    for _, _, _, node in batch:
        if node is not None and node.found_path() is None:
            paths.extend(f.path for f in files_to_date(node.asset_raw, index))
    return paths


def _process(
    raw: dict[str, Any],
    cache: ImmichCache,
    index,
    library: LibraryReader,
    policy: MatchPolicy,
    moment: datetime,
    result: ExtractResult,
    seen: set[str],
    audit: Callable[[str], None],
) -> CacheNode:
    """One asset: the update rule, then the matcher when the rules say so, then its AUDIT line."""
    result.fetched += 1
    outcome = cache.upsert(raw, moment)
    asset_id = str(raw["id"])
    seen.add(asset_id)
    node = cache.get(asset_id)
    assert node is not None
    return _match(
        node, outcome, raw.get("originalFileName") or "", cache, index, library, policy, lambda: moment, result, audit
    )


def _process_held(
    node: CacheNode,
    file_name: str,
    cache: ImmichCache,
    index,
    library: LibraryReader,
    policy: MatchPolicy,
    now: Callable[[], datetime],
    result: ExtractResult,
    audit: Callable[[str], None],
) -> CacheNode:
    """An asset the cache holds in the version the server lists: only its match may need redoing."""
    result.fetched += 1
    return _match(node, Upsert.UNCHANGED, file_name, cache, index, library, policy, now, result, audit)


def _match(
    node: CacheNode,
    outcome: Upsert,
    file_name: str,
    cache: ImmichCache,
    index,
    library: LibraryReader,
    policy: MatchPolicy,
    now: Callable[[], datetime],
    result: ExtractResult,
    audit: Callable[[str], None],
) -> CacheNode:
    """The re-match rule, the matcher when it says so (`now` is asked then only), the counts and
    the AUDIT line."""
    asset_id = node.id
    if outcome is Upsert.ADDED:
        result.added += 1
    elif outcome is Upsert.UPDATED:
        result.updated += 1
    else:
        result.unchanged += 1
    note = outcome._value_
    match = node.match_summary()
    if outcome is not Upsert.UNCHANGED or needs_rematch(match, index):
        if outcome is Upsert.UNCHANGED:
            result.rematched += 1
            note = "unchanged, matched again"
        cache.set_match(asset_id, match_asset(node.asset, index, library, policy, now()))
        result.matched += 1
        match = node.match_summary()
    else:
        note = "unchanged, match kept"
    if match is not None:
        result.by_status[match.status] += 1
        result.by_method[match.method] += 1
        if match.status == Status.FOUND:  # a str enum: compares as its text, no `.value` lookup
            result.by_confidence[match.confidence] += 1
    audit(audit_line(asset_id, file_name, match, note))
    return node


def _apply_groups(cache: ImmichCache, albums: Groups, tags: Groups, result: ExtractResult) -> None:
    """Membership is refreshed on every run: album and tag edits do not move an asset's updatedAt."""
    cache.replace_albums(albums.names, albums.members)
    cache.replace_tags(tags.names, tags.members)
    result.albums, result.tags = len(albums.names), len(tags.names)


def _opt(moment: datetime | None) -> str | None:
    return None if moment is None else format_instant(moment)


def default_cache_path(target: str, cwd: str | None = None) -> str:
    """`./log/cache_<TARGET folder name>.json`."""
    name = os.path.basename(os.path.normpath(os.path.abspath(target))) or "root"
    return os.path.join(cwd or os.getcwd(), "log", f"cache_{name}.json")
