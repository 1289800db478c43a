"""ImmichConnection: the ImmichSource port over HTTP with requests, version-aware and fault-tolerant."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util.retry import Retry

from .. import __version__
from ..domain.timestamps import parse_instant
from ..errors import AlbumNotFound, ApiKeyRejected, BadInput, ImmichError, ServerTooNew, ServerUnreachable
from ..ports import Groups, ServerInfo
from . import immich_search as plan
from .immich_config import ImmichConfig

log = logging.getLogger(__name__)

# Concurrent album/tag passes: 4 requests in flight hide the latency of a remote server without
# loading a home server (often a NAS with 2-4 cores) with more parallel searches than it has cores.
MEMBERSHIP_WORKERS = 4
# Listing pages asked for at once: with two, the server builds the next page while this client
# reads the last one, and a remote server's latency is not paid once a page; more would only
# queue on a server whose own work per page is then the limit, and load a NAS's few cores for
# nothing.
PAGES_IN_FLIGHT = 2
# A re-run's listing of versions parses ~1 MB of JSON a page to keep three fields of each asset.
# In the command's process that parsing holds the GIL against the cache load and the matching
# (an unchanged 100,000-asset re-run: 7.75 s, and 7.09 s with the listing in a process of its own;
# benchmarks/README.md, "the sixth pass"): the command lists at least this many assets in a
# process of its own, which sends the versions back. A script opts in as it does for the library's
# readers (`versions_in_process=`, under the `if __name__ == "__main__":` guard spawning needs).
VERSIONS_IN_PROCESS = 20_000
VERSIONS_BATCH = 1000  # versions a message from that process (~100 KB pickled)
_insecure_warned = threading.Event()


class _BoundedRetry(Retry):
    """urllib3's Retry, with a server's Retry-After capped so that a run never sleeps for an hour."""

    RETRY_AFTER_CAP = 30.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.RETRY_AFTER_CAP)


def default_retry() -> Retry:
    """6 tries with exponential backoff (0.5 s doubling, capped at 20 s) and jitter: at most ~1 min."""
    return _BoundedRetry(
        total=6,
        connect=4,
        read=4,
        status=6,
        other=2,
        backoff_factor=0.5,
        backoff_max=20,
        backoff_jitter=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),  # POST /search/* only reads: safe to repeat
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def error_text(response: requests.Response) -> str:
    """The server's message (a string or a list) and correlation id, read defensively."""
    message: Any = None
    correlation = response.headers.get("X-Correlation-ID")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message")
        correlation = correlation or body.get("correlationId")
        if isinstance(body.get("errors"), list) and body["errors"]:
            details = [e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in body["errors"]]
            message = f"{message}: {'; '.join(details)}" if message else "; ".join(details)
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    if not message:
        message = (response.text or response.reason or "").strip()[:200]
    text = f"HTTP {response.status_code}"
    if message:
        text += f" {message}"
    if correlation:
        text += f" (correlation id {correlation})"
    return text


class ImmichConnection:
    """One server, one API key, one requests.Session (connection reuse, gzip, retries)."""

    def __init__(
        self,
        config: ImmichConfig,
        *,
        include_partners: bool = False,
        timeout: tuple[float, float] = (10.0, 120.0),
        retry: Retry | None = None,
        page_size: int = plan.PAGE_SIZE,
        workers: int = MEMBERSHIP_WORKERS,
        pages_in_flight: int = PAGES_IN_FLIGHT,
        timeline: bool = True,
        versions_in_process: int | None = None,
    ) -> None:
        self._config = config
        self._retry = retry  # (for the listing's process: `_settings`)
        self.versions_in_process = versions_in_process  # None (a script's default): always in this process
        self.versions_batch = VERSIONS_BATCH
        self.include_partners = include_partners
        self.timeout = timeout
        self.page_size = page_size
        self.workers = workers
        self.pages_in_flight = pages_in_flight
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._counts: dict[tuple[Any, ...], int | None] = {}
        self._counts_lock = threading.Lock()  # one statistics request at a time per filters
        self._check_lock = threading.Lock()
        self._check_failed: ImmichError | None = None
        self._cancelled = threading.Event()
        # large tags and albums read from the timeline where the server has it (False: searches only);
        # set once the server refuses it (a key without timeline.read)
        self._timeline_refused = threading.Event()
        if not timeline:
            self._timeline_refused.set()
        self._album_sizes: dict[str, int] = {}  # album id -> assetCount, from the album list
        self.session = requests.Session()
        # a kept-alive connection for each request that can be in flight at once: the album and
        # the tag passes (`workers` each) beside the listing's pages, and one more
        connections = 2 * workers + pages_in_flight + 1
        adapter = HTTPAdapter(
            max_retries=retry or default_retry(), pool_connections=connections, pool_maxsize=connections
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {"x-api-key": config.api_key, "Accept": "application/json", "User-Agent": f"immich-sync/{__version__}"}
        )
        self.session.verify = config.verify
        _settle_environment(self.session, config.url)
        if config.insecure_tls and not _insecure_warned.is_set():
            _insecure_warned.set()
            log.warning("IMMICH_INSECURE_TLS is set: the server's TLS certificate is NOT checked")
        if config.insecure_tls:
            from urllib3.exceptions import InsecureRequestWarning

            warnings.simplefilter("ignore", InsecureRequestWarning)
        self.api_url = ""
        self.info: ServerInfo | None = None

    def __repr__(self) -> str:
        return f"ImmichConnection(url={self._config.url!r})"

    def close(self) -> None:
        self.session.close()

    # --- plumbing
    def _scrub(self, text: str) -> str:
        return text.replace(self._config.api_key, "***") if self._config.api_key else text

    def cancel(self) -> None:
        self._cancelled.set()

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self._cancelled.is_set():
            raise ImmichError("cancelled")
        with self._count_lock:
            self.requests_made += 1
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.RetryError as exc:
            raise ImmichError(self._scrub(f"{method} {url} kept failing after retries: {exc}")) from None
        except requests.exceptions.SSLError as exc:
            raise ServerUnreachable(self._scrub(tls_problem(url, _cause(exc)))) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise ServerUnreachable(self._scrub(f"cannot reach {url}: {_cause(exc)}")) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        response = self._send(method, url, stream=True, **kwargs)
        if response.status_code in (401, 403):
            detail = error_text(response)
            hint = " (the key lacks a permission)" if response.status_code == 403 else ""
            raise ApiKeyRejected(self._scrub(f"the API key was rejected by {self._config.url}{hint}: {detail}"))
        if response.status_code == 400 and self.info is not None and plan.is_newer_than_known(self.info.version):
            raise ServerTooNew(
                self._scrub(
                    f"the server at {self._config.url} runs Immich v{self.info.version_text}, newer than this "
                    f"immich-sync supports (newest known: v{'.'.join(map(str, plan.NEWEST_KNOWN))}): it refused "
                    f"{method} /{path.lstrip('/')} ({error_text(response)}); upgrade immich-sync"
                )
            )
        if response.status_code >= 400:
            kind = "failed after retries" if response.status_code >= 429 else "failed"
            raise _HttpError(
                response.status_code, self._scrub(f"{method} /{path.lstrip('/')} {kind}: {error_text(response)}")
            )
        try:
            return orjson.loads(_body(response))
        except orjson.JSONDecodeError:
            raise ImmichError(
                f"{method} /{path.lstrip('/')} returned something that is not JSON "
                f"(is {self._config.url} an Immich server?)"
            ) from None

    def _discover_api_url(self) -> str:
        """The API root: `/.well-known/immich`'s api.endpoint when offered, else `<url>/api`."""
        root = self._config.url.rstrip("/")
        if root.endswith("/api"):
            root = root[: -len("/api")]
        try:
            response = self.session.get(f"{root}/.well-known/immich", timeout=self.timeout)
            if response.ok:
                endpoint = response.json().get("api", {}).get("endpoint")
                if isinstance(endpoint, str) and endpoint:
                    return urljoin(root + "/", endpoint).rstrip("/")
        except (requests.exceptions.RequestException, ValueError, AttributeError):
            pass  # the ping below says what is wrong, with the cause
        return f"{root}/api"

    # --- the port
    def check(self) -> ServerInfo:
        """Reach the server, learn its version and who the key belongs to (once: the listing and
        the album and tag passes start together and all ask)."""
        with self._check_lock:
            if self._check_failed is not None:  # said once, after the retries: not tried again
                raise self._check_failed
            if self.info is None:
                try:
                    self.info = self._check()
                except ImmichError as exc:
                    self._check_failed = exc
                    raise
            return self.info

    def _check(self) -> ServerInfo:
        self.api_url = self._discover_api_url()
        try:
            self._call("GET", "server/ping")
        except _HttpError as exc:
            raise ServerUnreachable(f"{self._config.url} does not answer as an Immich server: {exc}") from None
        try:
            version = plan.parse_version(self._call("GET", "server/version"))
        except _HttpError:
            raise ImmichError(
                f"the server at {self._config.url} is too old: immich-sync needs "
                "POST /api/search/metadata (Immich v1.95 or newer)"
            ) from None
        if version < plan.MIN_SEARCH:
            raise ImmichError(
                f"the server at {self._config.url} runs Immich v{'.'.join(map(str, version))}, "
                "too old: immich-sync needs POST /api/search/metadata (v1.95 or newer)"
            )
        me = self._call("GET", "users/me")
        info = ServerInfo(url=self._config.url, version=version, user_id=str(me["id"]))
        log.info("connected to Immich v%s at %s", info.version_text, self._config.url)
        return info

    def thumbnail(self, asset_id: str) -> tuple[bytes, str]:
        """The asset's preview-size picture as Immich made it, and its content type:
        `GET /api/assets/{id}/thumbnail?size=preview` (v1.106 and newer), before that
        `GET /api/asset/thumbnail/{id}?format=JPEG`."""
        if not plan.is_uuid(asset_id):
            raise BadInput(f"{asset_id!r} is not an asset id")
        info = self.check()
        if info.version >= plan.MIN_ASSETS_PATHS:
            path, params = f"assets/{asset_id}/thumbnail", {"size": "preview"}
        else:
            path, params = f"asset/thumbnail/{asset_id}", {"format": "JPEG"}
        response = self._send("GET", f"{self.api_url}/{path}", params=params)
        if response.status_code in (401, 403):
            raise ApiKeyRejected(self._scrub(f"the API key was rejected by {self._config.url}: {error_text(response)}"))
        if response.status_code >= 400:
            raise _HttpError(response.status_code, self._scrub(f"GET /{path} failed: {error_text(response)}"))
        return response.content, response.headers.get("Content-Type", "application/octet-stream")

    def update_assets(self, ids: list[str], **changes: Any) -> None:
        """`PUT /api/assets` with these ids and changes (AssetBulkUpdateDto, e.g. `description`,
        which Immich v2.0 and newer take in bulk); one `PUT /api/assets/{id}` each before. The
        caller keeps the bodies small (chunks of ids)."""
        info = self.check()
        if info.version >= (2, 0, 0):
            self._call_empty("PUT", "assets", {"ids": ids, **changes})
            return
        if info.version < plan.MIN_ASSETS_PATHS:
            raise ImmichError(f"Immich v{info.version_text} is too old to edit assets this way (v1.106 or newer)")
        for asset_id in ids:
            self._call_empty("PUT", f"assets/{asset_id}", changes)

    def _call_empty(self, method: str, path: str, body: Any) -> None:
        response = self._send(method, f"{self.api_url}/{path}", json=body)
        if response.status_code in (401, 403):
            raise ApiKeyRejected(
                self._scrub(
                    f"the API key was rejected by {self._config.url} (it needs asset.update): {error_text(response)}"
                )
            )
        if response.status_code >= 400:
            raise _HttpError(response.status_code, self._scrub(f"{method} /{path} failed: {error_text(response)}"))

    def album_list(self) -> list[tuple[str, str, int]]:
        """(id, name, asset count) of every album the user can see: owned and shared with them."""
        self.check()
        return [
            (str(a["id"]), str(a.get("albumName") or ""), int(a.get("assetCount") or 0))
            for a in self._call("GET", "albums")
        ]

    def check_album(self, album_id: str) -> dict[str, Any]:
        """The album, or AlbumNotFound; a non-UUID id is refused before any request."""
        if not plan.is_uuid(album_id):
            raise BadInput(
                f"album id {album_id!r} is not a UUID (Immich album ids look like 0d6d4b2b-e00f-4148-9cea-c34b8c1011e1)"
            )
        self.check()
        try:
            return self._call("GET", f"albums/{album_id}", params={"withoutAssets": "true"})
        except _HttpError as exc:
            if exc.status in (400, 404):
                raise AlbumNotFound(f"album {album_id} not found on {self._config.url}") from None
            raise

    def iter_assets(
        self, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every asset the user owns (or, with `album_id`, every asset in that album), each once."""
        return self._assets(updated_after, updated_before, album_id, with_exif=True)

    def iter_versions(
        self, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
    ) -> Iterator[tuple[str, str | None, str]]:
        """(id, updatedAt, originalFileName) of the same assets, from a listing without EXIF:
        about half the bytes, and no EXIF join for the server. It may also hold assets whose
        metadata was never extracted, which `iter_assets` leaves out (FACTS.md)."""
        filters = (updated_after, updated_before, album_id)
        if self._listing_is_large(filters):
            listing = self._versions_in_process(filters)
            if listing is not None:
                yield from listing
                return
        for raw in self._assets(*filters, with_exif=False):
            yield str(raw["id"]), raw.get("updatedAt"), raw.get("originalFileName") or ""

    def _listing_is_large(self, filters: tuple[datetime | None, datetime | None, str | None]) -> bool:
        """The server counts at least `versions_in_process` assets for these filters."""
        if self.versions_in_process is None or filters[2] is not None:
            return False  # an album's listing is read in this process, with its own checks
        count = self._count(self.check(), *filters)
        return count is not None and count >= self.versions_in_process

    def _versions_in_process(
        self, filters: tuple[datetime | None, datetime | None, str | None]
    ) -> Iterator[tuple[str, str | None, str]] | None:
        """`iter_versions` run by a spawned process (`_list_versions`), or None where no process
        can be started (a sandbox, a limit): the listing is then read in this one."""
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        with self._counts_lock:
            counts = dict(self._counts)  # the count asked already: not asked again there
        process = context.Process(
            target=_list_versions,
            args=(self._config, self._settings(), self.api_url, self.info, counts, filters, self.versions_batch, send),
            daemon=True,
            name="immich-versions",
        )
        try:
            process.start()
        except (OSError, RuntimeError) as exc:
            log.warning("listing the assets in this process (cannot start a process for it: %s)", exc)
            receive.close()
            send.close()
            return None
        send.close()
        return self._received(process, receive)

    def _settings(self) -> dict[str, Any]:
        """How the listing's process makes the same connection as this one."""
        return {
            "include_partners": self.include_partners,
            "timeout": self.timeout,
            "retry": self._retry,
            "page_size": self.page_size,
            "workers": self.workers,
            "pages_in_flight": self.pages_in_flight,
            "timeline": not self._timeline_refused.is_set(),
        }

    def _received(self, process: Any, receive: Any) -> Iterator[tuple[str, str | None, str]]:
        """What the listing's process sends: the same requests, the same checks and the same
        versions in the same order as a listing here; its log lines are logged here, its error
        raised here. Leaving early, failing or a `cancel` stops it."""
        try:
            while True:
                if self._cancelled.is_set():
                    raise ImmichError("cancelled")
                if not receive.poll(0.2):
                    continue
                try:
                    kind, payload = receive.recv()
                except EOFError:  # ended without a word: killed (out of memory, a signal)
                    process.join(1)
                    raise ImmichError(
                        f"the process listing the assets ended before the listing did (exit code {process.exitcode})"
                    ) from None
                if kind == "versions":
                    yield from payload
                elif kind == "log":
                    logging.getLogger(payload[0]).log(payload[1], "%s", payload[2])
                elif kind == "error":
                    raise payload
                else:  # "end": the number of requests it made
                    with self._count_lock:
                        self.requests_made += payload
                    return
        finally:
            receive.close()
            if process.is_alive():
                process.terminate()
            process.join(10)

    def _assets(
        self, updated_after: datetime | None, updated_before: datetime | None, album_id: str | None, *, with_exif: bool
    ) -> Iterator[dict[str, Any]]:
        """The listing, then a check that it was a snapshot: Immich pages by offset, so an asset
        trashed, edited or uploaded meanwhile shifts the pages and one can be skipped; before v3.2,
        `withExif` also drops the assets whose metadata was never extracted (an inner join). When
        what was listed differs from the server's own count (`/search/statistics`, the same filters,
        asked before and after), the ids are listed again without EXIF and each one missed is
        fetched by id. When nothing moved this costs one statistics request."""
        if album_id is not None:
            self.check_album(album_id)  # a bad id is refused before any request
        info = self.check()
        filters = (updated_after, updated_before, album_id)
        # counted before the first page is asked for: a count taken after a change made during
        # the listing would agree with a listing that skipped an asset
        expected = self._count(info, *filters)
        seen: set[str] = set()
        listed = 0
        for raw in self._raw_assets(info, *filters, with_exif):
            asset_id = raw.get("id")
            if not asset_id or asset_id in seen:
                continue
            seen.add(asset_id)
            if raw.get("isTrashed") or raw.get("visibility") == "locked":
                continue
            listed += 1
            if self._ours(raw, info, *filters):
                yield raw
        if expected is None:
            return  # no statistics before v1.135: a re-run's version listing catches up instead
        now = self._count(info, *filters, fresh=True)
        if listed == expected == now:
            return
        log.warning(
            "the server counted %d assets before the listing and %d after it, and %d were listed: assets "
            "changed while it ran%s; listing their ids again to catch up",
            expected,
            now,
            listed,
            " (or have no metadata yet)" if with_exif and not plan.uses_cursor(info.version) else "",
        )
        missed = [
            raw
            for raw in self._raw_assets(info, *filters, False)
            if raw.get("id")
            and raw["id"] not in seen
            and not raw.get("isTrashed")
            and raw.get("visibility") != "locked"
            and self._ours(raw, info, *filters)
        ]
        caught = 0
        fetched: Iterable[tuple[str, dict[str, Any] | None]] = (
            self.get_assets([r["id"] for r in missed]) if with_exif else ((r["id"], r) for r in missed)
        )
        for asset_id, whole in fetched:
            if whole is not None and asset_id not in seen and self._ours(whole, info, *filters):
                seen.add(asset_id)
                caught += 1
                yield whole
        log.warning("caught up %d assets the listing had missed", caught)

    def _ours(
        self,
        raw: dict[str, Any],
        info: ServerInfo,
        after: datetime | None,
        before: datetime | None,
        album_id: str | None,
    ) -> bool:
        if album_id is None and not self.include_partners and raw.get("ownerId") != info.user_id:
            return False  # a partner's asset shared into the timeline
        return _within(raw.get("updatedAt"), after, before)

    def get_assets(self, ids: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """Each asset as `GET /api/assets/{id}` returns it, in order; None when the server no longer
        has it for this user: unknown (a 400 on v3), trashed, locked, or a partner's (unless
        `include_partners`). A few requests at a time."""
        info = self.check()

        def one(asset_id: str) -> tuple[str, dict[str, Any] | None]:
            try:
                raw = self._call("GET", f"assets/{asset_id}")
            except _HttpError as exc:
                if exc.status in (400, 404):
                    return asset_id, None
                raise
            if not isinstance(raw, dict) or raw.get("isTrashed") or raw.get("visibility") == "locked":
                return asset_id, None
            if not self.include_partners and raw.get("ownerId") not in (None, info.user_id):
                return asset_id, None
            return asset_id, raw

        ids = list(ids)
        if len(ids) <= 1 or self.workers <= 1:
            yield from map(one, ids)
            return
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="immich") as pool:
            yield from pool.map(one, ids)

    def _raw_assets(
        self, info: ServerInfo, after: datetime | None, before: datetime | None, album_id: str | None, with_exif: bool
    ) -> Iterator[dict[str, Any]]:
        if album_id is not None and info.version < plan.MIN_ALBUM_IDS:
            album = self._call("GET", f"albums/{album_id}", params={"withoutAssets": "false"})
            yield from album.get("assets") or []
            return
        if plan.uses_cursor(info.version):
            yield from self._cursor_pages(
                plan.cursor_body(updated_after=after, updated_before=before, album_id=album_id), with_exif=with_exif
            )
            return
        for body in plan.flat_passes(info.version, updated_after=after, updated_before=before, album_id=album_id):
            yield from self._flat_pages(body, with_exif=with_exif, listing=True)

    def _flat_pages(self, body: dict[str, Any], *, with_exif: bool, listing: bool = False) -> Iterator[dict[str, Any]]:
        """Page through one flat search (`page`/`nextPage`). For the listing, page k+1 follows
        page k, so the following pages are asked for before this one has been read (see `_pages`)."""

        def follow(result: dict[str, Any], page: int | None) -> int | None:
            try:
                following = int(result.get("nextPage") or 0)
            except (TypeError, ValueError):
                return None
            return following if following > (page or 1) else None

        # v3.1.0 with albumIds returned the same page forever (#31311): only there does a page that
        # brings no new id end the search. Anywhere else it is a listing shifted by uploads that
        # sort first, and the pages that follow still hold assets.
        info = self.info
        stale = "albumIds" in body and info is not None and (3, 1, 0) <= info.version < plan.MIN_CURSOR
        # Only the listing reads ahead: the album and tag passes already run several searches at
        # once, each usually a single page, and a guess would double their requests.
        if not listing:
            return self._pages_in_turn(body, "page", 1, follow, with_exif=with_exif, stale_stops=stale)
        return self._pages(
            body, "page", 1, follow, guess=lambda page: (page or 1) + 1, with_exif=with_exif, stale_stops=stale
        )

    def _cursor_pages(
        self, body: dict[str, Any], *, with_exif: bool, in_turn: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Page through one v3.2 cursor search (`cursor`/`nextCursor`): one page at a time, as the
        next cursor is known only from this page (in the caller's thread with `in_turn`)."""

        def follow(result: dict[str, Any], cursor: str | None) -> str | None:
            following = result.get("nextCursor")
            return following if following and following != cursor else None

        if in_turn:
            return self._pages_in_turn(body, "cursor", None, follow, with_exif=with_exif)
        return self._pages(body, "cursor", None, follow, guess=None, with_exif=with_exif)

    def _fetch_page(
        self, body: dict[str, Any], token_key: str, token: Any, *, with_exif: bool, size: int | None = None
    ) -> dict[str, Any]:
        request = {**body, "size": size or self.page_size}
        if token is not None:
            request[token_key] = token
        if with_exif:
            request["withExif"] = True
        answer = self._call("POST", "search/metadata", json=request)
        assets = answer.get("assets") if isinstance(answer, dict) else None
        if not isinstance(assets, dict) or not isinstance(assets.get("items"), list):
            raise ImmichError(
                f"POST /search/metadata on {self._config.url} answered without assets.items: not a search result "
                "this version of immich-sync knows (never taken as an empty library)"
            )
        return assets

    def _pages_in_turn(
        self, body: dict[str, Any], token_key: str, token: Any, follow, *, with_exif: bool, stale_stops: bool = False
    ) -> Iterator[dict[str, Any]]:
        """`_pages` without reading ahead: each page asked for in the caller's thread once the
        one before has been read. For the album and tag passes, which run in a pool already: a
        thread of its own for each of hundreds of one-page searches only makes more threads wait
        for the GIL."""
        seen: set[str] = set()
        while token is not _END:
            result = self._fetch_page(body, token_key, token, with_exif=with_exif)
            fresh, following = _fresh(result, token, seen, follow, stale_stops)
            yield from fresh
            token = _END if following is None else following

    def _pages(
        self,
        body: dict[str, Any],
        token_key: str,
        token: Any,
        follow,
        *,
        guess,
        with_exif: bool,
        stale_stops: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield each page's items; stop on the last page, or, with `stale_stops`, on a page that
        brings no new id (v3.1.0 with albumIds returned the same page forever, #31311).

        The server works while this client reads: with `guess` (the token that usually follows),
        `pages_in_flight` pages are asked for before the current one has been read, so a remote
        server's latency is not paid once a page; a wrong guess (past the last page, or a server
        that jumps) is dropped and the right page asked for. Without it (cursor paging), the next
        page is asked for as soon as this one is read.
        """

        def fetch(page_token: Any) -> dict[str, Any]:
            return self._fetch_page(body, token_key, page_token, with_exif=with_exif)

        seen: set[str] = set()
        depth = max(1, self.pages_in_flight) if guess is not None else 1
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="immich-page") as ahead:
            pending: deque[tuple[Any, Future]] = deque([(token, ahead.submit(fetch, token))])
            try:
                while pending:
                    token, future = pending.popleft()
                    while len(pending) < depth - 1:  # guessed pages in flight behind this one
                        last = guess(pending[-1][0] if pending else token)
                        pending.append((last, ahead.submit(fetch, last)))
                    fresh, following = _fresh(future.result(), token, seen, follow, stale_stops)
                    if following is None or not pending or pending[0][0] != following:
                        _drop(pending)  # past the last page, or a guess the server did not follow
                        if following is not None:
                            pending.append((following, ahead.submit(fetch, following)))
                    yield from fresh
            finally:
                _drop(pending)  # the last page, a wrong guess, a failure or the caller stopping

    def count_assets(
        self, updated_after: datetime | None = None, updated_before: datetime | None = None, album_id: str | None = None
    ) -> int | None:
        """The server's count of what the listing lists (POST /search/statistics, v1.135+), or
        None. It counts partners' timeline assets too: a progress bar shows it as an estimate."""
        return self._count(self.check(), updated_after, updated_before, album_id)

    def _count(
        self,
        info: ServerInfo,
        after: datetime | None,
        before: datetime | None,
        album_id: str | None,
        *,
        fresh: bool = False,
    ) -> int | None:
        """`count_assets`, asked once per filters unless `fresh` (the listing and the progress bar
        share the first answer)."""
        if info.version < plan.MIN_STATISTICS:
            return None
        key = (after, before, album_id)
        with self._counts_lock:
            if not fresh and key in self._counts:
                return self._counts[key]
            try:
                bodies = plan.statistics_bodies(
                    info.version, updated_after=after, updated_before=before, album_id=album_id
                )
                total: int | None = self._statistics_total(bodies)
            except (_HttpError, ValueError, TypeError, AttributeError):
                total = None
            self._counts.setdefault(key, total)
            return total

    def _statistics_total(self, bodies: Iterable[dict[str, Any]]) -> int:
        return sum(int(self._call("POST", "search/statistics", json=body).get("total", 0)) for body in bodies)

    def albums(self) -> Groups:
        """Every album the user can see, with its member asset ids and its stamp."""
        stamped = self.album_stamps()
        return Groups(names=stamped.names, members=self.album_members(stamped.names), stamps=stamped.stamps)

    def album_stamps(self) -> Groups:
        self.check()
        listed = self._call("GET", "albums")
        names = {a["id"]: a.get("albumName", "") for a in listed}
        stamps = {a["id"]: (a.get("updatedAt"), int(a.get("assetCount") or 0)) for a in listed}
        self._album_sizes = {album_id: count for album_id, (_, count) in stamps.items()}
        return Groups(names=names, members={}, stamps=stamps)

    def album_members(self, album_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        info = self.check()
        return self._parallel(album_ids, lambda album_id: self._album_members(info, album_id))

    def tag_values(self) -> dict[str, str]:
        info = self.check()
        if info.version < plan.MIN_TAG_IDS:
            return {}
        return {t["id"]: t.get("value") or t.get("name") or "" for t in self._call("GET", "tags")}

    def asset_tags(self, ids: Iterable[str]) -> Iterator[tuple[str, frozenset[str] | None]]:
        for asset_id, raw in self.get_assets(ids):
            if raw is None:
                yield asset_id, None
            else:
                yield asset_id, frozenset(str(t["id"]) for t in raw.get("tags") or [] if isinstance(t, dict))

    def stamps_are_exact(self) -> bool:
        first, end = plan.EXACT_STAMPS
        return first <= self.check().version < end

    def _album_members(self, info: ServerInfo, album_id: str) -> frozenset[str]:
        if info.version < plan.V3:  # the album itself lists its assets before v3
            album = self._call("GET", f"albums/{album_id}", params={"withoutAssets": "false"})
            return frozenset(a["id"] for a in album.get("assets") or [])
        if self._album_sizes.get(album_id, 0) > self.page_size:  # more than one search page
            found = self._timeline_ids(info, {"albumId": album_id})
            if found is not None:
                return found
        return self._search_ids(info, album_id=album_id)

    def _tag_members(self, info: ServerInfo, tag_id: str, below: frozenset[str] = frozenset()) -> frozenset[str]:
        """A tag's assets (its descendants' too). A parent whose count is the number of assets its
        descendants hold (`below`) holds nothing of its own, and is not read again: a tag search
        selects its descendants' assets, so the same count means the same assets. Otherwise a tag
        that fits one search page is searched; a larger one is read from the timeline where that
        costs less (`plan.timeline_is_cheaper`)."""
        if below and info.version >= plan.MIN_STATISTICS:
            try:
                total = self._statistics_total(plan.statistics_bodies(info.version, tag_id=tag_id))
            except (_HttpError, ValueError, TypeError, AttributeError):
                total = -1
            if total == len(below):
                return below
        if not self._timeline_usable(info):
            return self._search_ids(info, tag_id=tag_id)
        passes: list[dict[str, Any]] = []  # the searches after the first (one per visibility on v2)
        if plan.uses_cursor(info.version):
            body, token_key = plan.cursor_body(tag_id=tag_id), "cursor"
        else:
            body, *passes = plan.flat_passes(info.version, tag_id=tag_id)
            token_key = "page"
        # a probe smaller than a page: most tags fit in it, and a larger one is not paid for in
        # whole assets twice (its probe, then its timeline)
        first = self._fetch_page(body, token_key, None, with_exif=False, size=min(self.page_size, plan.PROBE_SIZE))
        if not first.get("nextPage") and not first.get("nextCursor"):
            ids = {a["id"] for a in first["items"]}
            for rest in passes:
                ids.update(a["id"] for a in self._flat_pages(rest, with_exif=False))
            return frozenset(ids)
        found = self._timeline_ids(info, {"tagId": tag_id})
        return found if found is not None else self._search_ids(info, tag_id=tag_id)

    def _timeline_usable(self, info: ServerInfo) -> bool:
        return plan.uses_timeline(info.version) and not self._timeline_refused.is_set()

    def _timeline_ids(self, info: ServerInfo, group: dict[str, str]) -> frozenset[str] | None:
        """A tag's or an album's assets read from the timeline, or None where a search must give them.

        The timeline selects what a search does (server asset.repository.ts): not trashed, the
        user's own assets (an album's whoever owns them), a tag with its descendants. It leaves
        out hidden assets unless asked for them, so the counts per month are asked for each
        visibility, and each month's timeline and archive assets come in one bucket (its column
        arrays name each asset's visibility). A bucket comes from an inner join on the EXIF table,
        so an asset whose metadata was never extracted is counted but not listed: every bucket is
        checked against its counts, and any difference (that, or an edit meanwhile) means None."""
        if not self._timeline_usable(info):
            return None
        try:
            counts: dict[str, dict[str, int]] = {}
            for kind in plan.VISIBILITIES:
                listed = self._call("GET", "timeline/buckets", params={**group, "visibility": kind})
                counts[kind] = {str(b["timeBucket"]): int(b["count"]) for b in listed if b.get("count")}
            shown = sorted(set(counts["timeline"]) | set(counts["archive"]))
            asks: list[tuple[str, str | None]] = [(month, None) for month in shown]
            asks += [(month, "hidden") for month in sorted(counts["hidden"])]
            total = sum(sum(per_month.values()) for per_month in counts.values())
            passes = 1 if plan.uses_cursor(info.version) else len(plan.flat_passes(info.version))
            if not plan.timeline_is_cheaper(total, len(asks), passes, self.page_size):
                return None
            ids: set[str] = set()
            for month, only in asks:
                params = {**group, "timeBucket": month, **({"visibility": only} if only else {})}
                columns = self._call("GET", "timeline/bucket", params=params)
                got = columns.get("id") if isinstance(columns, dict) else None
                kinds = columns.get("visibility") if isinstance(columns, dict) else None
                if not isinstance(got, list) or not isinstance(kinds, list) or len(got) != len(kinds):
                    log.info("the timeline answered %s without its id and visibility columns: searched instead", group)
                    return None
                wanted = (only,) if only else ("timeline", "archive")
                if Counter(kinds) != Counter({v: counts[v][month] for v in wanted if month in counts[v]}):
                    log.info(
                        "the timeline's bucket %s of %s disagrees with its count (assets without metadata, or an "
                        "edit meanwhile): searched instead",
                        month,
                        group,
                    )
                    return None
                ids.update(got)
            return frozenset(ids)
        except (ApiKeyRejected, ServerTooNew, _HttpError) as exc:
            if not self._timeline_refused.is_set():
                self._timeline_refused.set()
                log.info("the timeline is not open to this client (%s): tags and albums are searched", exc)
            return None

    def tags(self) -> Groups:
        """Every tag (id -> full value path such as Travel/Paris) with the assets that carry it.

        Search results carry no tags (#16273), so each tag costs a paged `tagIds` search, or for a
        large tag its timeline buckets; either returns its descendants' assets too, which are kept
        only on the most specific tag.
        """
        info = self.check()
        if info.version < plan.MIN_TAG_IDS:
            log.warning("Immich v%s cannot search by tag: tags are not recorded", info.version_text)
            return Groups(names={}, members={})
        listed = self._call("GET", "tags")
        values = {t["id"]: t.get("value") or t.get("name") or "" for t in listed}
        found: dict[str, frozenset[str]] = {}
        below: dict[str, frozenset[str]] = {}  # what each tag's descendants hold, read before it
        for depth in sorted({value.count("/") for value in values.values()}, reverse=True):  # children first
            level = [tag_id for tag_id, value in values.items() if value.count("/") == depth]
            below.update((tag_id, _below(tag_id, values, found)) for tag_id in level)
            found.update(self._parallel(level, lambda tag_id: self._tag_members(info, tag_id, below[tag_id])))
        return Groups(names=values, members=most_specific_tags(values, found, below))

    def _search_ids(
        self, info: ServerInfo, *, album_id: str | None = None, tag_id: str | None = None
    ) -> frozenset[str]:
        ids: set[str] = set()
        if plan.uses_cursor(info.version):
            body = plan.cursor_body(album_id=album_id, tag_id=tag_id)
            ids.update(a["id"] for a in self._cursor_pages(body, with_exif=False, in_turn=True))
            return frozenset(ids)
        for body in plan.flat_passes(info.version, album_id=album_id, tag_id=tag_id):
            ids.update(a["id"] for a in self._flat_pages(body, with_exif=False))
        return frozenset(ids)

    def _parallel(self, keys: Iterable[str], fetch) -> dict[str, frozenset[str]]:
        keys = list(keys)
        if len(keys) <= 1 or self.workers <= 1:
            return {key: fetch(key) for key in keys}
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="immich") as pool:
            return dict(zip(keys, pool.map(fetch, keys), strict=False))


_END = object()  # no page follows


def _below(tag_id: str, values: dict[str, str], found: dict[str, frozenset[str]]) -> frozenset[str]:
    """The assets the tag's descendants (already read) hold."""
    prefix = values[tag_id] + "/"
    held: set[str] = set()
    for other_id, other_value in values.items():
        if other_value.startswith(prefix):
            held |= found.get(other_id, frozenset())
    return frozenset(held)


def _fresh(
    result: dict[str, Any], token: Any, seen: set[str], follow, stale_stops: bool
) -> tuple[list[dict[str, Any]], Any]:
    """A page's items not seen on an earlier page, and the token of the page that follows (None
    after the last page, or, with `stale_stops`, after a page that brought nothing new)."""
    items = result["items"]
    fresh = [item for item in items if item.get("id") not in seen]
    seen.update(item.get("id") for item in items)
    return fresh, (follow(result, token) if fresh or not stale_stops else None)


def _drop(pending: deque[tuple[Any, Future]]) -> None:
    """Forget the guessed pages: those not yet asked for are cancelled, one on its way finishes."""
    while pending:
        pending.popleft()[1].cancel()


def _settle_environment(session: requests.Session, url: str) -> None:
    """Read once what requests otherwise reads from the environment on every request (about a
    third of its own cost per request, which a first run makes over a thousand of): the proxies
    for this server (HTTPS_PROXY, NO_PROXY, ...), a CA bundle in REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE (IMMICH_CA_BUNDLE, when set, wins), and ~/.netrc credentials."""
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    if session.verify is True:
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(url)


def _body(response: requests.Response) -> bytes:
    """The whole body, read in as few socket reads as the data allows. requests' `.content` reads
    10 KB at a time, and each read gives up the GIL and waits to get it back behind the matcher's
    thread: a listing read that way is many times slower while the matcher runs."""
    try:
        data = response.raw.read(decode_content=True)
    except (urllib3_exceptions.HTTPError, OSError) as exc:
        raise ServerUnreachable(f"the answer to {response.request.method} {response.url} broke off: {exc}") from None
    response.raw.release_conn()
    return data


class _HttpError(ImmichError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:  # raised in the listing's process, re-raised here
        return (_HttpError, (self.status, str(self)))


def most_specific_tags(
    values: dict[str, str], found: dict[str, frozenset[str]], below: dict[str, frozenset[str]] | None = None
) -> dict[str, frozenset[str]]:
    """Drop an asset from a tag when a descendant tag (`Travel/Paris` under `Travel`) also lists it.
    `below`: what each tag's descendants hold, when the caller has it already (`_below`)."""
    held = below if below is not None else {tag_id: _below(tag_id, values, found) for tag_id in found}
    return {tag_id: frozenset(asset_ids - held[tag_id]) for tag_id, asset_ids in found.items()}


def _within(updated_at: Any, after: datetime | None, before: datetime | None) -> bool:
    """The date bounds, checked again on the client (both inclusive, compared as instants)."""
    if after is None and before is None:
        return True
    moment = parse_instant(updated_at)
    if moment is None:
        return True
    return (after is None or moment >= after.replace(microsecond=after.microsecond // 1000 * 1000)) and (
        before is None or moment <= before
    )


# What OpenSSL says when the other end does not speak TLS at all (a plain-HTTP server), by version
_NOT_TLS = (
    "wrong version number",
    "record layer failure",
    "packet length too long",
    "unknown protocol",
    "http request",
)
_CERTIFICATE = ("certificate", "self signed", "self-signed", "hostname", "unable to get local issuer")


def tls_problem(url: str, cause: str) -> str:
    """A TLS failure's message, with the hint that fits its cause."""
    lowered = cause.lower()
    if any(words in lowered for words in _NOT_TLS):
        plain = "http://" + url.split("://", 1)[-1]
        return (
            f"cannot reach {url}: the server does not speak TLS there ({cause}); it may serve plain HTTP: "
            f"try {plain.split('/api', 1)[0]} in IMMICH_INSTANCE_URL or --url"
        )
    if any(words in lowered for words in _CERTIFICATE):
        return (
            f"cannot reach {url}: TLS certificate problem ({cause}); for a self-signed certificate set "
            "IMMICH_CA_BUNDLE to its CA file (or, on a trusted network only, --insecure)"
        )
    return f"cannot reach {url}: TLS failed ({cause})"


def _cause(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, in a few words."""
    inner: BaseException | None = exc
    while inner is not None and inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    text = str(reason or inner or exc)
    return text.split(": ", 1)[-1] if "Max retries exceeded" in text else text


class _Forward(logging.Handler):
    """In the listing's process: each log line goes to the command, which logs it."""

    def __init__(self, post: Callable[[tuple[str, Any]], None]) -> None:
        super().__init__(logging.INFO)
        self._post = post

    def emit(self, record: logging.LogRecord) -> None:
        self._post(("log", (record.name, record.levelno, record.getMessage())))


def _list_versions(
    config: ImmichConfig,
    settings: dict[str, Any],
    api_url: str,
    info: ServerInfo | None,
    counts: dict[tuple[Any, ...], int | None],
    filters: tuple[datetime | None, datetime | None, str | None],
    batch_size: int,
    send: Any,
) -> None:
    """The process of `ImmichConnection._versions_in_process`: the listing with the command's
    connection settings and what it learnt of the server, its versions sent in batches."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle: it stops this one
    parent = os.getppid()

    def watch() -> None:  # a command killed outright cannot stop it: it stops itself
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    _insecure_warned.set()  # said by the command already
    connection = ImmichConnection(config, **settings, versions_in_process=None)
    connection.api_url, connection.info = api_url, info
    connection._counts.update(counts)
    sending = threading.Lock()  # a pipe's messages must not interleave: the page threads log too

    def post(message: tuple[str, Any]) -> None:
        with sending:
            send.send(message)

    logger = logging.getLogger("immich_sync")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(_Forward(post))
    try:
        batch: list[tuple[str, str | None, str]] = []
        for version in connection.iter_versions(*filters):
            batch.append(version)
            if len(batch) >= batch_size:
                post(("versions", batch))
                batch = []
        if batch:
            post(("versions", batch))
        post(("end", connection.requests_made))
    except Exception as exc:  # every failure is the command's to report
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # an error that does not travel: its text does
            exc = ImmichError(f"{type(exc).__name__}: {exc}")
        post(("error", exc))
    finally:
        connection.close()
        send.close()
