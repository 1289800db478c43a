"""The `immich-cache` use case: gather (page the server, scan TARGET once), decide (the update rule
and the matcher), apply (cache changes, checkpoints, one save at the end)."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from itertools import islice
from typing import Any, Protocol, TypeVar

from attrs import define, evolve, field, frozen

from ..audit import audit_line, log_audit
from ..domain.cache import CacheNode, ImmichCache, Upsert, is_newer
from ..domain.library import LibraryIndex
from ..domain.match import MatchResult, MatchSummary, Status
from ..domain.matcher import (
    LibraryRoots,
    MatchPolicy,
    VerifyOutcome,
    claim_rank,
    files_to_date,
    match_asset,
    needs_rematch,
    verify_match,
)
from ..domain.names import normalise_name as name_key
from ..domain.pins import check_pin
from ..domain.timestamps import format_instant, parse_instant
from ..errors import BadInput, CacheFileError, OtherAccount
from ..ports import CacheRepository, Groups, ImmichSource, LibraryReader

log = logging.getLogger(__name__)
T = TypeVar("T")
WAIT_POLL = 5.0  # seconds between two checkpoint checks while the album and tag passes finish


@frozen
class ExtractRequest:
    target: str  # absolute path of the library folder
    clear: bool = False
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    album_id: str | None = None
    verify: bool = False
    # read every album's and every tag's members, as a first run does, instead of what moved
    full_membership: bool = False
    # A checkpoint rewrites the whole cache (about 2 s for 100,000 assets), so it is taken by time:
    # an interruption loses at most two minutes of work. `checkpoint_every` (assets) is for tests.
    checkpoint_every: int = 0
    checkpoint_seconds: float = 120.0
    # Assets are matched in batches (about a page), each announced to the library a batch ahead
    # so that reader processes read its file dates meanwhile. A listing of whole assets runs up
    # to `pages_ahead` batches ahead of the matching (~5 MB of dicts each: 32 of them were a
    # sixth of a 100,000-asset first run's peak memory, for no time it measurably saved); a
    # re-run's listing of versions (~250 bytes an asset) up to `versions_ahead`, so that it goes
    # on while the cache loads: with 32, a 100,000-asset unchanged re-run's listing stopped
    # half-way through the load and the matching then waited 0.8 s for it; with 128 (~32 MB at
    # most) it is done when the load is (benchmarks/README.md, "the sixth pass").
    read_ahead: int = 1000
    pages_ahead: int = 8
    versions_ahead: int = 128

    @property
    def filters(self) -> dict[str, Any]:
        """The listing's filters, as the ImmichSource port takes them."""
        return {"updated_after": self.updated_after, "updated_before": self.updated_before, "album_id": self.album_id}

    @property
    def is_full(self) -> bool:
        """Only a run over everything may say that an asset is gone from the server."""
        return self.updated_after is None and self.updated_before is None and self.album_id is None


class Progress(Protocol):
    """Stage by stage: `total` when known (`estimate`: it may be a little off), and either
    `advance` calls or a `poll` that says how far the stage is (the walk of TARGET)."""

    def stage(
        self,
        name: str,
        total: int | None,
        *,
        estimate: bool = False,
        unit: str = "assets",
        poll: Callable[[], int] | None = None,
    ) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def stage(
        self,
        name: str,
        total: int | None,
        *,
        estimate: bool = False,
        unit: str = "assets",
        poll: Callable[[], int] | None = None,
    ) -> None:
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
    unreadable: tuple[str, ...] = ()  # parts of TARGET the walk could not read
    confirmed: int = 0  # --verify: found files whose SHA1 equals the checksum (or whose path decided)
    demoted: int = 0  # --verify: found files with other bytes (low, or not found)
    reassigned: int = 0  # matches changed after the listing: files claimed twice, learned library roots
    verified: bool = False  # the run was asked to --verify
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
            "unreadable": list(self.unreadable),
            "verifiedConfirmed": self.confirmed,
            "verifiedDemoted": self.demoted,
            "reassigned": self.reassigned,
            "resumed": self.resumed,
            "durationSeconds": round(self.duration, 3),
        }


def album_by_name(source: ImmichSource, name: str) -> str:
    """The id of the one album called `name` (exactly; else in any case or Unicode form), or
    BadInput naming the albums that share it, or the nearest names when none has it."""
    albums = source.album_list()
    exact = [a for a in albums if a[1] == name]
    loose = exact or [a for a in albums if name_key(a[1]) == name_key(name)]
    if len(loose) == 1:
        return loose[0][0]
    if loose:
        shared = "; ".join(f"{aid} ({plural_assets(count)})" for aid, _, count in loose)
        raise BadInput(f"{len(loose)} albums are named {name!r}: {shared}; give --album=ID")
    near = sorted({a[1] for a in albums if name_key(name) in name_key(a[1])})[:5]
    hint = f" (albums with similar names: {', '.join(map(repr, near))})" if near else ""
    raise BadInput(f"no album named {name!r} among the {len(albums)} albums this key can see{hint}")


def plural_assets(count: int) -> str:
    return f"{count} asset" if count == 1 else f"{count} assets"


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
    """The run, as its four stages: open the cache (`_open`), gather what the server and TARGET
    hold (`_Background`, started first so that the server works while the cache loads), decide
    each asset (`_Decide`), apply the membership and gone marks and save (`_apply`, `_save`).

    `audit` receives each asset's AUDIT line (by default the `immich_sync.audit` logger; the
    command line writes them straight into its log file)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    result = ExtractResult(verified=request.verify)
    try:
        with repo.lock():
            with _Background(request, source, library, rerun=not request.clear and repo.exists()) as background:
                cache, as_loaded, carried_pins = _open(request, repo, source, result, progress)
                progress.stage("walking TARGET", None, unit="files", poll=library.walked)
                index = background.scan.result()
                result.files_scanned, result.unreadable = len(index), index.unreadable
                log.info("scanned %s: %d candidate files", request.target, len(index))
                if index.unreadable:
                    log.warning(
                        "%d parts of %s could not be read (%s): matches made now are provisional and "
                        "the next run matches them again",
                        len(index.unreadable),
                        request.target,
                        ", ".join(index.unreadable[:3]) + (", ..." if len(index.unreadable) > 3 else ""),
                    )
                # the server's count includes partners' timeline assets: a bar's total is an estimate
                progress.stage(
                    "listing and matching",
                    source.count_assets(**request.filters),
                    estimate=request.album_id is None,
                )
                checkpoints = _Checkpoints(repo, cache, request, progress)
                policy = MatchPolicy(verify=request.verify)
                decide = _Decide(cache, index, library, policy, now, result, audit, checkpoints.settle)
                decide.carried_pins = carried_pins
                seen = decide.rerun(background) if background.rerun else decide.first_run(background.first)
                log.info("fetched and matched %d assets", result.fetched)
                checkpoints.keep_if_due()
                progress.stage("checking and settling the matches", None, unit="")
                decide.resolve(full=request.is_full, source=source)
                checkpoints.keep_if_due()
                progress.stage("albums and tags", None, unit="")
                albums, tags = background.groups(waiting=checkpoints.keep_if_due)
                if background.incremental:
                    albums, tags = refresh_membership(cache, albums, tags, seen, decide.changed, source)
                log.info("album and tag membership fetched")
            _apply(cache, albums, tags, seen, request, now, result)
            result.duration = time.monotonic() - started
            progress.stage("saving the cache", None, unit="")
            _save(cache, as_loaded, repo, request, now, result)
    finally:
        progress.close()
    result.cache = cache
    return result


def _open(
    request: ExtractRequest, repo: CacheRepository, source: ImmichSource, result: ExtractResult, progress: Progress
) -> tuple[ImmichCache, tuple[Any, ...], dict[str, MatchResult]]:
    """The cache to work on: the file's (a foreign, corrupt or newer file stops the run here,
    untouched), or an interrupted run's checkpoint, or an empty one with --clear; bound to TARGET
    and to the server the key reaches. Also returns what the file held, to tell at the end whether
    anything changed, and (--clear) the pins to carry into the new cache."""
    if repo.exists():
        progress.stage("loading the cache", None, unit="")
    try:
        cache = repo.load()
    except CacheFileError as exc:
        if "newer immich-sync" in str(exc):  # it says what to do already
            raise
        raise CacheFileError(
            f"{exc}; it is left as it is: move it away to start a new cache there, or give --cache=FILE "
            "for another file"
        ) from None
    as_loaded = _file_state(cache)
    log.info("cache loaded: %d assets", len(cache))
    carried: dict[str, Any] = {}
    checkpoint = repo.load_checkpoint()
    if checkpoint is not None and checkpoint.target == request.target:
        log.info("resuming from the checkpoint of an interrupted run")
        cache, result.resumed = checkpoint, True
    elif request.clear:
        carried = {n.id: n.match for n in cache if (held := n.match_summary()) is not None and held.pinned}
        cache.clear()
    if cache.target and cache.target != request.target:
        log.warning("the cache was made for %s, not %s: every asset is matched again", cache.target, request.target)
        for node in cache:
            cache.clear_match(node.id)
    progress.stage("connecting to the server", None, unit="")
    info = source.check()
    held_user = cache.server.get("userId")
    if held_user and held_user != info.user_id and not request.clear:
        raise OtherAccount(
            f"{repo_name(repo)} was made for user {held_user} on {cache.server.get('url')}, but the API key "
            f"belongs to user {info.user_id} on {info.url}: nothing was changed. Use --clear to start this "
            "cache again for this account, or --cache=FILE for a cache of its own"
        )
    cache.target = request.target
    result.server_version = info.version_text
    if held_user == info.user_id:  # the same account, however its URL was spelled this time
        cache.server = {**cache.server, "version": info.version_text}
    else:
        cache.server = {"url": info.url, "version": info.version_text, "userId": info.user_id}
    return cache, as_loaded, carried


def repo_name(repo: CacheRepository) -> str:
    return str(getattr(repo, "path", "the cache"))


class _Background:
    """Everything that runs beside the run's own thread, started together and stopped in one
    place: the walk of TARGET (a thread; the walk itself runs in a reader process when the
    library has readers), the listings (each a thread a few batches ahead of the matching) and
    the album and tag passes (two threads). Leaving the block on an error or Ctrl-C stops them
    all at their next step; leaving it normally waits for the passes."""

    def __init__(self, request: ExtractRequest, source: ImmichSource, library: LibraryReader, *, rerun: bool) -> None:
        self.request, self.source, self.rerun = request, source, rerun
        self._size = max(1, request.read_ahead)
        self._listings: list[_ListingAhead] = []
        self.scan = _in_background(library.scan, request.target)
        # A re-run lists versions first (ids and updatedAt, without EXIF: half the bytes), then
        # fetches whole only the assets that are new or changed (`_Decide.rerun`).
        self.first = (
            self.listing(source.iter_versions, ahead=request.versions_ahead)
            if rerun
            else self.listing(source.iter_assets)
        )
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="membership")
        # A full re-run asks first only for the albums' stamps and the tag list (two requests);
        # `refresh_membership` then reads what moved. Other runs read every album and tag.
        self.incremental = rerun and request.is_full and not request.full_membership
        self._albums: Future[Any] = self._pool.submit(source.album_stamps if self.incremental else source.albums)
        self._tags: Future[Any] = self._pool.submit(source.tag_values if self.incremental else source.tags)

    def listing(
        self, lister: Callable[..., Iterable[Any]], *, ahead: int | None = None, **overrides: Any
    ) -> _ListingAhead:
        """Start another listing with the request's filters (and these overrides), `ahead`
        batches ahead of the matching at most (`pages_ahead` unless given)."""
        filters = {**self.request.filters, **overrides}
        listing = _ListingAhead(lambda: lister(**filters), self._size, ahead or self.request.pages_ahead)
        self._listings.append(listing)
        return listing

    def groups(self, waiting: Callable[[], None] = lambda: None) -> tuple[Any, Any]:
        """The album and tag passes' results (with `incremental`: the album stamps and the tag
        values); `waiting` is called every WAIT_POLL s until then."""
        for future in (self._albums, self._tags):
            while True:
                try:
                    future.result(timeout=WAIT_POLL)
                    break
                except TimeoutError:
                    waiting()
        return self._albums.result(), self._tags.result()

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self._pool.shutdown()
            return
        for listing in self._listings:
            listing.stop()
        self.source.cancel()  # the listings and membership passes stop at their next request
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Checkpoints:
    """Each settled node is handed to the repository's stored form, and the cache is written to
    the checkpoint file now and then while there is new work to keep: by time (a checkpoint
    rewrites the whole cache), or every `checkpoint_every` assets (tests)."""

    def __init__(self, repo: CacheRepository, cache: ImmichCache, request: ExtractRequest, progress: Progress) -> None:
        self._repo, self._cache, self._progress = repo, cache, progress
        self._every, self._seconds = request.checkpoint_every, request.checkpoint_seconds
        self._last, self._since = time.monotonic(), 0

    def settle(self, node: CacheNode) -> None:
        self._progress.advance()
        if node.stored is not None:
            return  # as the file holds it: nothing to pack, and no work a checkpoint would keep
        self._repo.pack(node)
        self._since += 1
        if self._every and self._since >= self._every:
            self._keep()
        else:
            self.keep_if_due()

    def keep_if_due(self) -> None:
        """A checkpoint when there is work to keep and the last one (or the start of the matching)
        is `checkpoint_seconds` old: also called between the stages after the matching, which can
        take minutes of their own (the album and tag passes of a large library)."""
        if self._since and time.monotonic() - self._last > self._seconds:
            self._keep()

    def _keep(self) -> None:
        self._repo.save_checkpoint(self._cache)
        self._last, self._since = time.monotonic(), 0


class _Decide:
    """The update rule and the matcher for each listed asset, its counts and its AUDIT line; each
    node, once settled, goes to `settle`. A first run matches every asset of the listing; a re-run
    walks the versions and fetches whole only what is new or changed."""

    def __init__(
        self,
        cache: ImmichCache,
        index: LibraryIndex,
        library: LibraryReader,
        policy: MatchPolicy,
        now: Callable[[], datetime],
        result: ExtractResult,
        audit: Callable[[str], None],
        settle: Callable[[CacheNode], None],
    ) -> None:
        self.cache, self.index, self.library, self.policy = cache, index, library, policy
        self.now, self.result, self.audit, self.settle = now, result, audit, settle
        self.seen: set[str] = set()
        self.deferred: list[str] = []  # external assets not found by their path alone: see `resolve`
        self.carried_pins: dict[str, MatchResult] = {}  # --clear: pins of the cache it replaces
        self.changed: set[str] = set()  # assets added or updated this run: their tags may have moved

    def first_run(self, listing: _ListingAhead) -> set[str]:
        for raw in _announced_ahead(listing.batches(), self._announce):
            self.settle(self._process(raw))
        return self.seen

    def rerun(self, background: _Background) -> set[str]:
        wanted: dict[str, str | None] = {}  # new or changed: id -> updatedAt
        held_batches = (_held(batch, self.cache) for batch in background.first.batches())
        for asset_id, updated, name, node in _announced_ahead(held_batches, self._announce_held):
            self.seen.add(asset_id)
            if node is not None:
                self.settle(self._match(node, Upsert.UNCHANGED, name, self.now))
            else:
                wanted[asset_id] = updated
        if not wanted:
            return self.seen
        for raw in _announced_ahead(_fetch_changed(wanted, background).batches(), self._announce):
            if wanted.pop(str(raw.get("id")), _NOT_WANTED) is _NOT_WANTED:
                continue  # held already (listed since it changed), or not listed then
            self.settle(self._process(raw))
        if wanted:
            # listed without EXIF but not with it: metadata never extracted (before v3.2 a listing
            # with EXIF is an inner join), or changed meanwhile. Fetched one by one, so that the
            # next run holds them and does not list the library again from their updatedAt.
            log.info(
                "%d assets new or changed are missing from the listing with EXIF: fetching them by id", len(wanted)
            )
            for asset_id, raw in background.source.get_assets(list(wanted)):
                if raw is not None:
                    self.settle(self._process(raw))
                else:
                    self.seen.discard(asset_id)  # gone meanwhile: `resolve` confirms it
        return self.seen

    def _verify(self, node: CacheNode, now: Callable[[], datetime]) -> MatchSummary | None:
        """--verify: hash the found file (`verify_match`) and count what it showed."""
        assert node.match is not None
        checked, outcome = verify_match(node.match, node.asset, self.library, now())
        if outcome is VerifyOutcome.CONFIRMED:
            self.result.confirmed += 1
        elif outcome is VerifyOutcome.DEMOTED:
            self.result.demoted += 1
        self.cache.set_match(node.id, checked)
        return node.match_summary()

    def resolve(self, *, full: bool, source: ImmichSource) -> None:
        """After the listing, what one asset at a time cannot decide: external assets whose path
        tail did not decide, matched again with the library roots the others taught (`LibraryRoots`),
        the assets a full run did not see (`_confirm_missing`), then the files claimed by two assets
        (`_settle_claims`)."""
        if full:
            self._confirm_missing(source)
        if self.deferred:
            roots = self._learn_roots()
            if roots.pairs:
                log.info("learned %d external library roots under TARGET", len(roots.pairs))
                for asset_id in self.deferred:
                    node = self.cache.get(asset_id)
                    assert node is not None
                    self._rematch(
                        node,
                        match_asset(node.asset, self.index, self.library, self.policy, self.now(), roots=roots),
                        "matched again by a learned library root",
                    )
        self._settle_claims(full)

    # More assets missing than this are confirmed by a second listing of ids, not one by one.
    CONFIRM_ONE_BY_ONE = 500

    def _confirm_missing(self, source: ImmichSource) -> None:
        """A full run marks as gone only what the server really no longer has: a cached asset the
        listing did not bring (a shifted page skips one) is asked for by id, or, when many are
        missing, looked for in a second listing of ids. One the server still has is caught up
        here (fetched and matched); the rest stay unseen and `_apply` marks them gone."""
        missing = [n.id for n in self.cache if n.id not in self.seen and n.gone_since is None]
        if not missing:
            return
        if len(missing) > self.CONFIRM_ONE_BY_ONE:
            listed = {asset_id for asset_id, _, _ in source.iter_versions()}
            still = [asset_id for asset_id in missing if asset_id in listed]
            log.warning(
                "%d cached assets were missing from the listing; %d are on the server after all "
                "(a second listing of ids): fetching them",
                len(missing),
                len(still),
            )
        else:
            still = missing
        caught = 0
        for _asset_id, raw in source.get_assets(still):
            if raw is not None:
                caught += 1
                self.settle(self._process(raw))
        if caught:
            log.warning("%d assets the listing missed are still on the server: kept, not marked gone", caught)

    def _learn_roots(self) -> LibraryRoots:
        decided = []
        for node in self.cache:
            summary = node.match_summary()
            if summary is None or summary.method != "path" or summary.path is None or node.gone_since is not None:
                continue
            file = self.index.get(summary.path)
            if file is not None and node.asset.original_path and node.asset.is_external:
                decided.append((node.asset.original_path, file.relative))
        return LibraryRoots.learn(decided)

    def _settle_claims(self, full: bool) -> None:
        """A file claimed by two live assets stays with the one whose evidence is strictly the
        strongest (`claim_rank`); the others are matched again without it. When the strongest are
        equal, none keeps it: each is ambiguous, with the file as its candidate, until an asset
        with stronger evidence takes the file in a later round (one matched again by its checksum,
        say): then they lose it as the others did. Rounds until no file is claimed twice, as an
        asset matched again may land on another claimed file; the files an asset lost are never
        offered to it again, so the rounds end."""
        lost: dict[str, set[str]] = {}  # asset id -> the files it lost: never offered to it again
        # file -> the assets that tied on it, with the rank they tied with
        tied: dict[str, dict[str, tuple[int, int, int, int]]] = {}
        for _ in range(10):
            claimed = {path: list(ids) for path, ids in self.cache.index.claimed_paths().items()}
            for path, ties in tied.items():
                holders = [i for i in self.cache.index.ids_by_path(path) if i not in ties]
                if holders:  # a file the tied assets share, taken since by another one
                    claimed[path] = list(dict.fromkeys([*claimed.get(path, ()), *holders, *ties]))
            if not claimed:
                return
            for path, ids in claimed.items():
                ties = tied.get(path, {})
                # live claimants only: a full run is about to mark the assets it did not see as gone
                nodes = [
                    n
                    for n in map(self.cache.get, ids)
                    if n is not None
                    and n.match is not None
                    and n.gone_since is None
                    and (not full or n.id in self.seen)
                    and (n.match.status == Status.FOUND or _still_tied(n.match, path, n.id in ties))
                ]
                if len(nodes) < 2:
                    continue
                ranks = {n.id: ties.get(n.id) or claim_rank(_match_of(n), n.asset) for n in nodes}
                best = max(ranks.values())
                leaders = [n for n in nodes if ranks[n.id] == best]
                for node in nodes:
                    match = node.match
                    assert match is not None
                    if (len(leaders) == 1 and node is leaders[0]) or match.pinned:
                        continue  # (two pins on one file: a person's decisions, both kept)
                    if node in leaders:
                        if node.id in ties:
                            continue  # ambiguous on this file already
                        tied.setdefault(path, {})[node.id] = ranks[node.id]
                        shared = MatchResult.ambiguous((path,), f"{match.method}+shared", match.evidence, self.now())
                        self._rematch(
                            node,
                            evolve(shared, provisional=match.provisional),
                            f"its file is claimed as strongly by {len(leaders) - 1} other asset(s)",
                        )
                    else:
                        ties.pop(node.id, None)
                        excluded = lost.setdefault(node.id, set())
                        excluded.add(path)
                        again = match_asset(
                            node.asset, self.index, self.library, self.policy, self.now(), exclude=excluded
                        )
                        self._rematch(node, again, "its file went to an asset with stronger evidence")

    def _rematch(self, node: CacheNode, match: MatchResult, why: str) -> None:
        """Replace a match decided earlier in this run (or kept from an earlier one), keeping the
        counts true and saying so in the AUDIT log."""
        before = node.match_summary()
        self.cache.set_match(node.id, match)
        after = node.match_summary()
        if after == before:
            return
        result = self.result
        result.reassigned += 1
        if node.id in self.seen:  # counted by `_match` already: the count moves with the match
            if before is not None:
                self._tally(before, -1)
            if after is not None:
                self._tally(after, 1)
        for counter in (result.by_status, result.by_method, result.by_confidence):
            for key in [k for k, v in counter.items() if v <= 0]:
                del counter[key]
        self.audit(audit_line(node.id, node.asset.original_file_name, after, why))

    def _announce(self, batch: list[dict[str, Any]]) -> None:
        self.library.prefetch(_dates_wanted(batch, self.cache, self.index))

    def _announce_held(self, batch: list[_Version]) -> None:
        self.library.prefetch(_dates_wanted_held(batch, self.index))

    def _process(self, raw: dict[str, Any]) -> CacheNode:
        """One asset as the server lists it: the update rule, then `_match`."""
        moment = self.now()
        outcome = self.cache.upsert(raw, moment)
        asset_id = str(raw["id"])
        self.seen.add(asset_id)
        node = self.cache.get(asset_id)
        assert node is not None
        return self._match(node, outcome, raw.get("originalFileName") or "", lambda: moment)

    def _match(self, node: CacheNode, outcome: Upsert, file_name: str, now: Callable[[], datetime]) -> CacheNode:
        """The re-match rule, the matcher when it says so (`now` is asked then only), the counts
        and the AUDIT line."""
        result = self.result
        result.fetched += 1
        if outcome is Upsert.ADDED:
            result.added += 1
        elif outcome is Upsert.UPDATED:
            result.updated += 1
        else:
            result.unchanged += 1
        note = outcome._value_
        if outcome is not Upsert.UNCHANGED:
            self.changed.add(node.id)
        if outcome is Upsert.ADDED and node.id in self.carried_pins:  # --clear keeps what a person decided
            self.cache.set_match(node.id, self.carried_pins.pop(node.id))
        match = node.match_summary()
        if match is not None and match.pinned:
            held = node.match
            assert held is not None
            checked = check_pin(held, self.index)
            if checked is not held:
                self.cache.set_match(node.id, checked)
                match = node.match_summary()
            note = f"{note}, pin flagged: {checked.pin_problem}" if checked.pin_problem else f"{note}, pin kept"
        elif outcome is not Upsert.UNCHANGED or needs_rematch(match, self.index):
            if outcome is Upsert.UNCHANGED:
                result.rematched += 1
                note = "unchanged, matched again"
            self.cache.set_match(node.id, match_asset(node.asset, self.index, self.library, self.policy, now()))
            result.matched += 1
            match = node.match_summary()
            if match is not None and match.status != Status.FOUND and node.asset.is_external:
                self.deferred.append(node.id)
        else:
            note = "unchanged, match kept"
        if self.policy.verify and match is not None and match.status == Status.FOUND and not match.pinned:
            match = self._verify(node, now)
        if match is not None:
            self._tally(match, 1)
        self.audit(audit_line(node.id, file_name, match, note))
        return node

    def _tally(self, match: MatchSummary, step: int) -> None:
        """Count a match in the summary: its status; for a found one, its method and confidence."""
        result = self.result
        result.by_status[match.status] += step
        if match.status == Status.FOUND:  # a str enum: compares as its text, no `.value` lookup
            result.by_method[match.method] += step
            result.by_confidence[match.confidence] += step


TAGS_BY_ASSET_LIMIT = 2000  # more changed assets than this: one full tag pass costs less than a request each


def _match_of(node: CacheNode) -> MatchResult:
    assert node.match is not None
    return node.match


def _still_tied(match: MatchResult, path: str, was_tied: bool) -> bool:
    """An asset `_settle_claims` made ambiguous on this file, and left so since."""
    return was_tied and match.status == Status.AMBIGUOUS and match.candidates == (path,)


def refresh_membership(
    cache: ImmichCache,
    stamped: Groups,
    values: Mapping[str, str],
    seen: set[str],
    changed: set[str],
    source: ImmichSource,
) -> tuple[Groups | None, Groups | None]:
    """Album and tag membership from what moved since the cache was saved, the same as full passes
    would give (FACTS.md, confirmed on v3.1.0): tagging or untagging an asset moves its updatedAt
    (so only added and updated assets are asked for their tags, and those that had a deleted tag);
    adding or removing album assets moves the album's stamp (so only those albums are read again).
    Where that is not known of the server, or the cache has no stamps yet, or a tag was renamed or
    moved, or too many assets changed, the full passes are read instead.

    None for the albums or the tags: nothing about them moved (the same albums or tags, no stamp
    moved, no asset asked for its tags, every cached asset listed): the cache holds them as they
    are, and a run that changed nothing does not rebuild 100,000s of memberships to find so."""
    if not source.stamps_are_exact():
        log.info("full album and tag passes: this Immich version is not known to move updatedAt on every edit")
        return source.albums(), source.tags()
    live = [n for n in cache if n.id in seen]
    every_listed = len(live) == len(cache)
    albums: Groups | None
    if any(a not in cache.album_stamps for a in cache.albums):
        log.info("full album pass: the cache has no album stamps yet")
        albums = source.albums()
    elif every_listed and dict(stamped.names) == cache.albums and dict(stamped.stamps) == cache.album_stamps:
        log.info("albums: none of %d moved", len(stamped.names))
        albums = None
    else:
        moved = [a for a, stamp in stamped.stamps.items() if cache.album_stamps.get(a) != stamp]
        fetched = source.album_members(moved)
        kept: dict[str, set[str]] = {a: set() for a in stamped.names if a not in fetched}
        for node in live:
            for album_id in node.albums:
                if album_id in kept:
                    kept[album_id].add(node.id)
        log.info("albums: %d of %d read again (their stamp moved)", len(moved), len(stamped.names))
        members = {**{a: frozenset(ids) for a, ids in kept.items()}, **fetched}
        albums = Groups(stamped.names, members, stamped.stamps)
    renamed = [t for t, value in values.items() if t in cache.tags and cache.tags[t] != value]
    deleted = set(cache.tags) - set(values)
    ask = {n.id for n in live if n.id in changed or deleted.intersection(n.tags)}
    if renamed or len(ask) > TAGS_BY_ASSET_LIMIT:
        log.info("full tag pass: %s", "a tag was renamed or moved" if renamed else f"{len(ask)} assets changed")
        return albums, source.tags()
    if every_listed and not ask and dict(values) == cache.tags:
        log.info("tags: none of %d moved, no asset to ask for its tags", len(values))
        return albums, None
    direct = dict(source.asset_tags(sorted(ask)))
    per_tag: dict[str, set[str]] = {t: set() for t in values}
    for node in live:
        held = most_specific(direct.get(node.id) or (), values) if node.id in ask else node.tags
        for tag_id in held:
            if tag_id in per_tag:
                per_tag[tag_id].add(node.id)
    log.info("tags: %d assets asked for their tags (added, updated, or holding a deleted tag)", len(ask))
    return albums, Groups(dict(values), {t: frozenset(ids) for t, ids in per_tag.items()})


def most_specific(tag_ids: Iterable[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """An asset's own tags as a tag search records them: each one no other of them lies under."""
    known = [t for t in tag_ids if t in values]
    return tuple(t for t in known if not any(o != t and values[o].startswith(values[t] + "/") for o in known))


def _apply(
    cache: ImmichCache,
    albums: Groups | None,
    tags: Groups | None,
    seen: set[str],
    request: ExtractRequest,
    now: Callable[[], datetime],
    result: ExtractResult,
) -> None:
    """Membership (refreshed on every run: album and tag edits do not move an asset's updatedAt;
    None: as the cache holds it, see `refresh_membership`), gone marks (a full run only), and the
    files claimed by two assets."""
    if albums is not None:
        cache.replace_albums(albums.names, albums.members, albums.stamps)
    if tags is not None:
        cache.replace_tags(tags.names, tags.members)
    result.albums, result.tags = len(cache.albums), len(cache.tags)
    if request.is_full:
        moment = now()
        for asset_id in cache.ids():
            if asset_id not in seen and cache.mark_gone(asset_id, moment):
                log.warning("asset %s is no longer on the server (kept, marked gone)", asset_id)
        result.gone = sum(1 for node in cache if node.gone_since is not None)
    result.claimed_twice = cache.index.claimed_paths()
    for path, ids in result.claimed_twice.items():
        log.warning("%s is matched by %d assets: %s", path, len(ids), ", ".join(ids))


def _save(
    cache: ImmichCache,
    as_loaded: tuple[Any, ...],
    repo: CacheRepository,
    request: ExtractRequest,
    now: Callable[[], datetime],
    result: ExtractResult,
) -> None:
    """Write the cache once, atomically, unless nothing changed; then the checkpoint is done with."""
    if _left_as_loaded(cache, as_loaded, result):
        # Rewriting the file to say nothing happened would cost seconds and the disk's wear on
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


def _file_state(cache: ImmichCache) -> tuple[Any, ...]:
    """What the file holds besides its nodes' own data and its runs."""
    return (len(cache), cache.target, dict(cache.server), dict(cache.albums), dict(cache.tags))


def _left_as_loaded(cache: ImmichCache, as_loaded: tuple[Any, ...], result: ExtractResult) -> bool:
    """Nothing to write: every node as the file holds it and the rest of the file the same. A
    resumed run's cache came from its checkpoint, and an empty cache may have no file yet."""
    return not result.resumed and len(cache) > 0 and _file_state(cache) == as_loaded and cache.all_as_stored()


_NOT_WANTED = object()

_Version = tuple[str, str | None, str, CacheNode | None]  # id, updatedAt, name, the node holding it


def _fetch_changed(wanted: dict[str, str | None], background: _Background) -> _ListingAhead:
    """The listing, with EXIF, of the assets updated since the oldest of those wanted (all of them
    when one has no readable date): on a re-run, the few recent changes."""
    dates = [parse_instant(updated) for updated in wanted.values()]
    since = None if None in dates else min(d for d in dates if d is not None)
    after = background.request.updated_after
    if after is not None:
        since = after if since is None else max(since, after)
    log.info(
        "%d assets new or changed: fetching them whole (updated since %s)",
        len(wanted),
        "ever" if since is None else format_instant(since),
    )
    return background.listing(background.source.iter_assets, updated_after=since)


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

    def batches(self) -> Iterator[list[Any]]:
        while (item := self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stopped.set()


def _announced_ahead(batches: Iterator[list[T]], announce: Callable[[list[T]], None]) -> Iterator[T]:
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


def _opt(moment: datetime | None) -> str | None:
    return None if moment is None else format_instant(moment)


def default_cache_path(target: str, cwd: str | None = None) -> str:
    """`./log/cache_<TARGET folder name>.json`."""
    name = os.path.basename(os.path.normpath(os.path.abspath(target))) or "root"
    return os.path.join(cwd or os.getcwd(), "log", f"cache_{name}.json")
