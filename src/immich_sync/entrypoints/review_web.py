"""The review page (Flask, served by waitress on 127.0.0.1): server-rendered HTML and a little
JavaScript, no build step. Every request carries the run's random token; only files inside
TARGET are ever read; every change goes through the cache lock and the atomic save."""

from __future__ import annotations

import getpass
import hmac
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from attrs import define, field
from filelock import FileLock, Timeout
from flask import Flask, Response, abort, redirect, render_template, request, url_for

from ..adapters import exif_reader
from ..adapters.json_repository import JsonCacheRepository
from ..adapters.library_scan import sha1_base64
from ..adapters.previews import PreviewStore
from ..domain.cache import ImmichCache
from ..errors import ImmichSyncError
from ..services import review

log = logging.getLogger(__name__)
PAGE_SIZE = 20
PLACEHOLDER = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200" viewBox="0 0 320 200">'
    '<rect width="320" height="200" fill="#eee" stroke="#999"/>'
    '<text x="160" y="105" font-family="sans-serif" font-size="16" text-anchor="middle" fill="#555">{text}</text></svg>'
)


@define
class ReviewState:
    """What the page works on: the cache as last read from its file (read again when the file
    changed), and how to reach Immich for its thumbnails (None: no server configured)."""

    repo: JsonCacheRepository
    token: str
    thumbnail: Callable[[str], tuple[bytes, str]] | None = None
    who: str = field(factory=lambda: _user())
    cache: ImmichCache = field(init=False)
    items: list[review.ReviewItem] = field(init=False, factory=list)
    _stamp: tuple[int, int] | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, factory=threading.Lock)
    previews: PreviewStore = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.previews = PreviewStore(str(self.repo.path) + ".previews")  # beside the cache, never in it
        self.refresh()

    def refresh(self) -> None:
        """Read the cache again if its file changed (an immich-cache run saved it meanwhile)."""
        with self._lock:
            try:
                st = os.stat(self.repo.path)
                stamp = (st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
            if stamp is not None and stamp == self._stamp:
                return
            self.cache = self.repo.load()
            self.items = review.review_items(self.cache)
            self._stamp = stamp

    def busy(self) -> bool:
        """Whether another process (an immich-cache run) holds the cache's lock now."""
        lock = FileLock(str(self.repo.lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        except OSError:
            return True
        lock.release()
        return False

    def apply(self, decisions: list[review.Decision]) -> None:
        with self._lock:
            self.cache = review.apply_decisions(self.repo, decisions, self.who, datetime.now(UTC), _size_of)
            self.items = review.review_items(self.cache)
            st = os.stat(self.repo.path)
            self._stamp = (st.st_mtime_ns, st.st_size)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _size_of(path: str) -> int | None:
    try:
        return os.stat(path).st_size if os.path.isfile(path) else None
    except OSError:
        return None


def create_app(state: ReviewState, *, allowed_hosts: set[str] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20

    @app.before_request
    def guard() -> None:
        # another local process or web page cannot drive it: the token is in every link and form
        given = request.args.get("token") or request.form.get("token") or ""
        if not hmac.compare_digest(given.encode(), state.token.encode()):
            abort(403)
        if allowed_hosts is not None and request.host not in allowed_hosts:
            abort(403)  # a DNS-rebinding page that reached 127.0.0.1 under another name

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store" if response.mimetype == "text/html" else "private, max-age=300"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token stays on this page
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"
        )
        return response

    @app.get("/")
    def index() -> str:
        state.refresh()
        kind = request.args.get("kind") or next(
            (k for k in review.TO_REVIEW if any(i.kind == k for i in state.items)), "ambiguous"
        )
        if kind not in review.KINDS:
            abort(400)
        chosen = [i for i in state.items if i.kind == kind]
        pages = max(1, -(-len(chosen) // PAGE_SIZE))
        page = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
        shown = chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        nearby_for = request.args.get("nearby")
        proposals: list[review.Decision] = []
        if nearby_for:
            node = state.cache.get(nearby_for)
            pinned = review.pin_file_of(node.match) if node is not None else None
            if pinned:
                proposals = review.nearby(state.items, state.cache, nearby_for, pinned)
        return render_template(
            "review.html",
            token=state.token,
            kind=kind,
            kinds=review.KINDS,
            counts=review.counts(state.items),
            to_review=sum(review.counts(state.items)[k] for k in review.TO_REVIEW),
            page=page,
            pages=pages,
            cards=[_card(state, item) for item in shown],
            busy=state.busy(),
            target=state.cache.target or "",
            message=request.args.get("message", ""),
            failed=request.args.get("failed", ""),
            proposals=[
                (d, _name_of(state.cache, d.asset_id), _relative(state.cache.target, d.path)) for d in proposals
            ],
            folder=_relative(state.cache.target, os.path.dirname(proposals[0].path or "")) if proposals else "",
            server=state.thumbnail is not None,
        )

    @app.get("/thumbnail/<asset_id>")
    def thumbnail(asset_id: str) -> Response:
        if state.cache.get(asset_id) is None:
            abort(404)
        if state.thumbnail is None:
            return _placeholder("no Immich server configured")
        try:
            data, content_type = state.thumbnail(asset_id)
        except ImmichSyncError as exc:
            log.warning("thumbnail of %s: %s", asset_id, exc)
            return _placeholder("Immich has no thumbnail")
        return Response(data, mimetype=content_type.split(";")[0])

    @app.get("/preview")
    def preview() -> Response:
        path = _inside(state, request.args.get("path", ""))
        data = state.previews.get(path)
        if data is None:
            return _placeholder("no preview for this file type" if os.path.isfile(path) else "file not there")
        return Response(data, mimetype="image/jpeg")

    @app.post("/sha1")
    def sha1() -> dict[str, Any]:
        path = _inside(state, request.form.get("path", ""))
        node = state.cache.get(request.form.get("asset", ""))
        checksum = node.asset_raw.get("checksum") if node is not None else None
        digest = sha1_base64(path)
        return {"sha1": digest, "checksum": checksum, "equal": digest is not None and digest == checksum}

    @app.post("/decide")
    def decide() -> Any:
        back: dict[str, Any] = {
            "token": state.token,
            "kind": request.form.get("kind", ""),
            "page": request.form.get("page", "1"),
        }
        if state.busy():
            return redirect(url_for("index", **back, failed="an immich-cache run holds the cache: nothing was changed"))
        asset_ids = request.form.getlist("asset")
        actions = request.form.getlist("action")
        paths = request.form.getlist("path")
        if not asset_ids or len(actions) not in (1, len(asset_ids)):
            abort(400)
        decisions = [
            review.Decision(a, actions[n if len(actions) > 1 else 0], paths[n] if n < len(paths) and paths[n] else None)
            for n, a in enumerate(asset_ids)
        ]
        try:
            state.apply(decisions)
        except (ImmichSyncError, OSError) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return redirect(url_for("index", **back, failed=f"not saved, the cache is as it was: {text}"))
        said = {"pin": "pinned", "none": "set to none of these", "unpin": "unpinned"}[decisions[0].action]
        message = f"{len(decisions)} asset{'s' if len(decisions) != 1 else ''} {said}"
        nearby = decisions[0].asset_id if len(decisions) == 1 and decisions[0].action == "pin" else None
        if nearby:
            back["nearby"] = nearby  # offer the same folder to the others (Lightroom's "nearby")
        return redirect(url_for("index", **back, message=message))

    return app


def _inside(state: ReviewState, path: str) -> str:
    try:
        return review.under_target(state.cache.target, path)
    except ImmichSyncError:
        abort(403)


def _placeholder(text: str) -> Response:
    return Response(PLACEHOLDER.format(text=text), mimetype="image/svg+xml")


def _relative(target: str | None, path: str | None) -> str:
    if not path:
        return ""
    if target and (path == target or path.startswith(target.rstrip("/") + "/")):
        return os.path.relpath(path, target)
    return path


def _name_of(cache: ImmichCache, asset_id: str) -> str:
    node = cache.get(asset_id)
    return node.asset.original_file_name if node is not None else asset_id


def _card(state: ReviewState, item: review.ReviewItem) -> dict[str, Any]:
    node = state.cache.get(item.asset_id)
    assert node is not None
    raw, match = node.asset_raw, node.match
    exif = raw.get("exifInfo") or {}
    local = raw.get("localDateTime") or ""
    wanted_size = exif.get("fileSizeInByte")
    candidates = []
    for n, path in enumerate(item.candidates[:9]):
        size = _size_of(path)
        taken = exif_reader.read_capture_time(path) if size is not None else None
        taken_text = taken.local.isoformat(sep=" ") if taken is not None else ""
        candidates.append(
            {
                "n": n + 1,
                "path": path,
                "relative": _relative(state.cache.target, path),
                "exists": size is not None,
                "size": size,
                "size_equal": size is not None and wanted_size is not None and size == wanted_size,
                "date": taken_text,
                "date_equal": bool(taken_text) and taken_text[:19] == local[:19].replace("T", " "),
                "name_equal": os.path.basename(path).casefold() == node.asset.original_file_name.casefold(),
                "chosen": match is not None and match.path == path,
            }
        )
    return {
        "item": item,
        "kind_text": review.KINDS[item.kind],
        "id": node.id,
        "name": node.asset.original_file_name,
        "local": local,
        "size": wanted_size,
        "checksum": raw.get("checksum"),
        "original_path": raw.get("originalPath"),
        "status": match.status.value if match is not None else "unmatched",
        "method": match.method if match is not None else "",
        "confidence": match.confidence.label if match is not None else "",
        "pinned": bool(match and match.pinned),
        "pin_problem": match.pin_problem if match is not None else None,
        "gone": node.gone_since is not None,
        "candidates": candidates,
        "more": max(0, len(item.candidates) - 9),
    }
