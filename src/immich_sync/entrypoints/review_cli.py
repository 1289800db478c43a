"""immich-cache-review: look at what a machine cannot settle, side by side, and pin the answer.

Usage:
  immich-cache-review [options] [TARGET]
  immich-cache-review [options] [TARGET] (--pin=ASSET_ID=PATH | --pin-none=ASSET_ID | --unpin=ASSET_ID)...
  immich-cache-review (-h | --help)
  immich-cache-review --version

Options:
  --cache=FILE        The cache file; default ./log/cache_<TARGET folder name>.json.
  --port=N            The port on 127.0.0.1 [default: 0] (0: a free one).
  --no-browser        Print the page's address without opening a browser.
  --pin=ASSET_ID=PATH Pin this asset to this file (absolute, or relative to TARGET): no run
                      matches it again. Repeat for more; with any of these three the command
                      applies them to the cache and exits, without serving a page.
  --pin-none=ASSET_ID Pin "none of these": the asset has no file in TARGET.
  --unpin=ASSET_ID    Drop the pin: the next immich-cache run matches the asset again.
  --env=FILE          Where IMMICH_INSTANCE_URL and IMMICH_API_KEY are (for Immich's thumbnails)
                      [default: ./.env].
  -h --help           Show this help.
  --version           Show the version.

The page lists ambiguous assets, not-found ones with rejected files, found ones below high,
files claimed by two assets, assets gone from the server but still matched, and pins whose file
is gone or changed. Each shows Immich's own picture beside each candidate's, with the evidence.
It is served on 127.0.0.1 only, with a random token in its address that every request needs.

Exit codes: 0 done; 2 bad arguments, cache file or decision; 1 anything else (cache in use).
"""

from __future__ import annotations

import logging
import secrets
import sys
import webbrowser
from datetime import UTC, datetime

from .. import __version__
from ..adapters.immich_config import ImmichConfig
from ..adapters.immich_http import ImmichConnection
from ..adapters.json_repository import JsonCacheRepository
from ..errors import BadInput, ImmichSyncError
from ..services import review
from .usage import arguments, existing_cache

PROG = "immich-cache-review"
log = logging.getLogger("immich_sync")


def _decisions(args: dict) -> list[review.Decision]:
    decisions = []
    for spec in args["--pin"]:
        asset_id, eq, path = spec.partition("=")
        if not eq or not asset_id or not path:
            raise BadInput(f"--pin takes ASSET_ID=PATH (got {spec!r})")
        decisions.append(review.Decision(asset_id, "pin", path))
    decisions += [review.Decision(a, "none") for a in args["--pin-none"]]
    decisions += [review.Decision(a, "unpin") for a in args["--unpin"]]
    return decisions


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__ or "", argv, PROG, __version__, positional="TARGET")
    if isinstance(args, int):
        return args
    try:
        repo = existing_cache(args)
        path = str(repo.path)
        decisions = _decisions(args)
        if decisions:
            from .review_web import _size_of, _user

            cache = review.apply_decisions(repo, decisions, _user(), datetime.now(UTC), _size_of)
            for d in decisions:
                node = cache.get(d.asset_id)
                match = node.match if node is not None else None
                said = {"pin": f"pinned to {match.path if match else ''}", "none": "pinned: none of these"}
                print(f"{d.asset_id}: {said.get(d.action, 'unpinned')}")
            print(f"saved to {path}")
            return 0
        try:
            port = int(args["--port"] or 0)
        except ValueError:
            raise BadInput(f"--port takes a number (got {args['--port']!r})") from None
        return serve(repo, port, open_browser=not args["--no-browser"], env_file=args["--env"])
    except ImmichSyncError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"{PROG}: error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1


def serve(repo: JsonCacheRepository, port: int, *, open_browser: bool, env_file: str | None) -> int:
    from waitress import create_server

    from .review_web import ReviewState, create_app

    thumbnail = None
    try:
        config = ImmichConfig.from_env(None if env_file in (None, "./.env") else env_file)
        connection = ImmichConnection(config)
        thumbnail = connection.thumbnail
    except ImmichSyncError as exc:
        print(f"{PROG}: warning: Immich's pictures are not shown ({exc})", file=sys.stderr)
    state = ReviewState(repo, secrets.token_urlsafe(24), thumbnail)
    server = create_server(create_app(state), host="127.0.0.1", port=port, threads=4, ident=None)
    bound = server.effective_port
    hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}"}
    server.application = create_app(state, allowed_hosts=hosts)
    url = f"http://127.0.0.1:{bound}/?token={state.token}"
    counts = review.counts(state.items)
    total = sum(counts[k] for k in review.TO_REVIEW)
    print(f"{PROG}: {total} asset{'s' if total != 1 else ''} to review in {repo.path}")
    print(f"{PROG}: open {url}  (Ctrl-C stops it)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def run() -> None:
    sys.exit(main())
