"""immich-cache: cache every Immich asset's metadata and match each asset to its file in TARGET.

Usage:
  immich-cache [options] TARGET
  immich-cache [options] --target=TARGET
  immich-cache (-h | --help)
  immich-cache --version

Options:
  --target=TARGET   The library folder (the same as the positional TARGET).
  --cache=FILE      The cache file [default: ./log/cache_<TARGET folder name>.json].
  --clear           Start from an empty cache; the old file is replaced only when the run succeeds.
  --after=ISO       Only assets Immich modified at or after this instant.
  --before=ISO      Only assets Immich modified at or before this instant.
  --album=ALBUM     Only the assets of this album, other users' shared assets included: its id (a
                    UUID) or its name, when exactly one album the key can see has that name.
  --url=URL         The Immich server (default: IMMICH_INSTANCE_URL from the environment, then
                    .env, then the official CLI's login file). The API key is never an option:
                    see README "Configuration".
  --env=FILE        Read IMMICH_INSTANCE_URL and IMMICH_API_KEY from FILE [default: ./.env];
                    variables already in the environment win.
  --insecure        Do not check the server's TLS certificate (the same as IMMICH_INSECURE_TLS=1).
  --log-dir=DIR     Where the run's log goes [default: ./log].
  --keep-logs=N     Keep the newest N logs of immich-cache in the log folder, deleting older
                    ones; 0 keeps all [default: 30].
  --verify          Hash the file of every found uploaded asset, unchanged ones included: equal bytes
                    make the match exact, other bytes demote it (low, or not found when its date
                    disagrees too); external assets are verified by their path.
  --partners        Also cache partners' assets shared into your timeline.
  --full-membership
                    Read every album's and every tag's members, as a first run does, instead of
                    only what moved since the last run (the result is the same).
  -v --verbose      Show each asset's AUDIT line and details on stderr; tracebacks on errors.
  -q --quiet        Print only errors (the AUDIT log file is still written).
  -h --help         Show this help.
  --version         Show the version.

Dates: --after and --before take a full ISO 8601 date-time: 2025-06-30T00:00:00Z, 2025-06-30T02:00:00+02:00,
or 2025-06-30T00:00:00 (no offset = UTC). They filter on when Immich last modified the asset
(updatedAt), both inclusive, and combine with each other and with --album.

Examples:
  immich-cache /photos
  immich-cache --target=/photos --cache=~/immich/photos.json --verify
  immich-cache /photos --after=2025-06-30T00:00:00Z
  immich-cache /photos --album=0d6d4b2b-e00f-4148-9cea-c34b8c1011e1 --before=2026-01-01T00:00:00+01:00
  immich-cache /photos --album="Italy Trip" --url=https://photos.example.org
  immich-cache /photos --clear

Exit codes: 0 done; 2 bad arguments or input; 1 anything else (server, key, lock);
130 interrupted (Ctrl-C), 143 terminated (SIGTERM). A failed or interrupted run leaves the
cache file as it was; what it had done is kept in a checkpoint once it has matched for two
minutes, and the next run continues from there.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import sys
import traceback
from datetime import UTC, datetime

from .. import __version__
from ..adapters.immich_config import ImmichConfig
from ..adapters.immich_http import VERSIONS_IN_PROCESS, ImmichConnection
from ..adapters.immich_search import is_uuid
from ..adapters.json_repository import JsonCacheRepository
from ..adapters.library_scan import LocalLibrary, default_readers
from ..audit import AUDIT, close_logging, setup_logging
from ..errors import BadInput, ImmichSyncError
from ..services.extract import ExtractRequest, ExtractResult, album_by_name, default_cache_path, run_extract
from .progress import for_stream
from .usage import UsageError, limit_malloc_arenas, parse

PROG = "immich-cache"
log = logging.getLogger("immich_sync")
_FULL_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")


PAGE_SIZE_VAR = "IMMICH_SYNC_PAGE_SIZE"


def page_size(text: str | None) -> int:
    """Assets per search request: the server's maximum (1000) unless IMMICH_SYNC_PAGE_SIZE says less
    (a slow server that times out on large pages)."""
    if not text:
        return 1000
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        raise BadInput(f"{PAGE_SIZE_VAR} must be a whole number from 1 to 1000 (got {text!r})")
    return size


def parse_iso_datetime(option: str, text: str) -> datetime:
    """A full ISO 8601 date-time; no offset means UTC. Anything else is refused with an example."""
    value = text.strip()
    if _FULL_ISO.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise BadInput(
        f"{option} needs a full ISO 8601 date-time such as 2025-06-30T00:00:00Z or "
        f"2025-06-30T02:00:00+02:00 (got {text!r})"
    )


def unreadable_text(result: ExtractResult) -> str:
    shown = ", ".join(result.unreadable[:3]) + (", ..." if len(result.unreadable) > 3 else "")
    return (
        f"{len(result.unreadable)} parts of TARGET could not be read ({shown}); matches made without "
        "them are provisional and the next run matches them again"
    )


def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 album`, `2 albums`."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


_STATUS_WORDS = {"found": "found", "ambiguous": "ambiguous", "not_found": "not found"}


def summary_text(result: ExtractResult, cache_path: str) -> str:
    """The run's summary: every line names what it counts (statuses of every listed asset,
    methods and confidence of the found ones only), with labels aligned."""
    by_status = ", ".join(f"{_STATUS_WORDS.get(k, k)} {v}" for k, v in sorted(result.by_status.items()) if v) or "none"
    by_conf = ", ".join(f"{k} {v}" for k, v in sorted(result.by_confidence.items()) if v) or "none"
    by_method = ", ".join(f"{k} {v}" for k, v in sorted(result.by_method.items()) if v) or "none"
    decided = (
        f"{plural(result.matched, 'decided', 'decided')} this run, {result.rematched} of them unchanged "
        f"assets matched again; {result.fetched - result.matched} kept"
    )
    rows = [
        (
            "cache",
            f"{result.added} added, {result.updated} updated, {result.unchanged} unchanged; "
            f"{result.gone} gone from the server",
        ),
        ("matches", f"{by_status} ({decided})"),
        ("confidence", f"{by_conf} (found assets)"),
        ("methods", f"{by_method} (found assets)"),
        (
            "library",
            f"{plural(result.files_scanned, 'file')} scanned; {plural(result.albums, 'album')}, "
            f"{plural(result.tags, 'tag')}",
        ),
    ]
    if result.verified:
        rows.append(
            (
                "verified",
                f"{result.confirmed} confirmed (same bytes, or an external asset's path), "
                f"{result.demoted} demoted (other bytes)",
            )
        )
    if result.reassigned:
        rows.append(
            (
                "settled",
                f"{plural(result.reassigned, 'match', 'matches')} changed after the listing "
                "(files claimed twice, learned library roots)",
            )
        )
    if result.claimed_twice:
        rows.append(("warning", f"{plural(len(result.claimed_twice), 'file')} matched by more than one asset"))
    if result.unreadable:
        rows.append(("warning", unreadable_text(result)))
    if result.saved:
        rows.append(("saved to", cache_path))
    else:
        rows.append(("unchanged", f"{cache_path} (nothing changed: the file is left as it was)"))
    head = (
        f"immich-cache: {plural(result.fetched, 'asset')} from Immich v{result.server_version} in "
        f"{result.duration:.1f} s" + (" (resumed from a checkpoint)" if result.resumed else "")
    )
    return "\n".join([head, *(f"  {label + ':':11s} {text}" for label, text in rows)])


class Terminated(KeyboardInterrupt):
    """SIGTERM, ended as cleanly as Ctrl-C: the readers stopped, the cache as it was."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def keep_logs(text: str) -> int:
    try:
        keep = int(text)
    except ValueError:
        keep = -1
    if keep < 0:
        raise BadInput(f"--keep-logs must be a whole number, 0 to keep every log (got {text!r})")
    return keep


def checkpoint_note(repo: JsonCacheRepository | None) -> str:
    """What an interrupted or failed run leaves for the next one, said truly."""
    if repo is None:
        return ""
    if repo.checkpoint_path.exists():
        return (
            f"; the work done so far is kept in the checkpoint {repo.checkpoint_path} and the next run "
            "continues from it"
        )
    return "; no checkpoint was kept (a run keeps one after two minutes of matching), so the next run starts over"


def main(argv: list[str] | None = None, *, exit_when_done: bool = False) -> int:
    """The command; `exit_when_done` (the installed script) ends the process on success as soon
    as its output is written (see `_exit_now`)."""
    try:
        args = parse(
            __doc__ or "",
            argv,
            PROG,
            __version__,
            positional="TARGET",
            alternative="--target",
            missing=f"TARGET is missing: the library folder to match, as in {PROG} /photos",
        )
    except UsageError as exc:
        print(f"{PROG}: error: {exc} (see {PROG} --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    verbose, quiet = bool(args["--verbose"]), bool(args["--quiet"])
    cache_path: str | None = None
    repo: JsonCacheRepository | None = None
    previous_term = None
    if threading_main():
        previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        target = args["TARGET"] or args["--target"]
        if not os.path.isdir(target):
            raise BadInput(
                f"TARGET {target} is not a folder" if os.path.exists(target) else f"TARGET {target} does not exist"
            )
        target = os.path.abspath(target)
        after = parse_iso_datetime("--after", args["--after"]) if args["--after"] else None
        before = parse_iso_datetime("--before", args["--before"]) if args["--before"] else None
        if after and before and after > before:
            raise BadInput(f"--after ({args['--after']}) is later than --before ({args['--before']})")
        album = args["--album"]
        if album is not None and not album.strip():
            raise BadInput("--album needs an album id or name")
        given_cache = args["--cache"]
        if given_cache in (None, "./log/cache_<TARGET folder name>.json"):
            cache_path = default_cache_path(target)
        else:
            cache_path = os.path.abspath(os.path.expanduser(given_cache))
        keep = keep_logs(args["--keep-logs"] or "30")
        log_dir = os.path.abspath(os.path.expanduser(args["--log-dir"] or "./log"))
        env_file = None if args["--env"] in (None, "./.env") else args["--env"]
        config = ImmichConfig.from_env(env_file, url=args["--url"], insecure=bool(args["--insecure"]))
        repo = JsonCacheRepository(cache_path)
        repo.check_writable()  # before any work: a read-only folder is said now, not after the run
        log_path, audit = setup_logging(verbose, quiet, log_dir, prog=PROG, keep=keep)
        log.info("immich-cache %s: target %s, cache %s", __version__, target, cache_path)
        log.info("server URL from %s; API key from %s", config.url_source, config.key_source)
        connection = ImmichConnection(
            config,
            include_partners=bool(args["--partners"]),
            page_size=page_size(os.environ.get(PAGE_SIZE_VAR)),
            versions_in_process=VERSIONS_IN_PROCESS,
        )
        if album is not None and not is_uuid(album):
            album = album_by_name(connection, album)
            log.info("album %r is %s", args["--album"], album)
        request = ExtractRequest(
            target=target,
            clear=bool(args["--clear"]),
            updated_after=after,
            updated_before=before,
            album_id=album,
            verify=bool(args["--verify"]),
            full_membership=bool(args["--full-membership"]),
        )
        # The run holds 100,000s of small dicts for its whole life and makes almost no cycles: the
        # cyclic collector would only rescan them again and again (benchmarks/README.md).
        gc.disable()
        try:
            with LocalLibrary(readers=default_readers()) as library:
                result = run_extract(
                    request,
                    connection,
                    repo,
                    library,
                    now=lambda: datetime.now(UTC),
                    progress=for_stream(sys.stderr, quiet),
                    audit=audit,
                )
        finally:
            connection.close()
            if not exit_when_done:  # re-enabled, the collector would first walk the whole cache
                gc.enable()  # of a process that is about to end
        text = summary_text(result, cache_path)
        log.log(AUDIT, "summary", extra={"summary": result.summary()})
        if quiet and result.unreadable:  # said even with -q: the run saw only part of TARGET
            print(f"{PROG}: warning: {unreadable_text(result)}", file=sys.stderr)
        if not quiet:
            print(text)
            print(f"  {'log:':11s} {log_path}")
        if exit_when_done:
            _exit_now(0)  # `result` still holds the cache here: it is never freed node by node
        return 0
    except ImmichSyncError as exc:
        if verbose:
            traceback.print_exc()
        kept = checkpoint_note(repo) if repo is not None and repo.checkpoint_path.exists() else ""
        print(f"{PROG}: error: {exc}{kept}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a disk full, a folder not writable: say which file
        if verbose:
            traceback.print_exc()
        print(
            f"{PROG}: error: {exc.strerror or exc}: {exc.filename or ''} ({cache_path or 'the cache'} is unchanged"
            f"{checkpoint_note(repo)})",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (run with --verbose for the "
            f"traceback; {cache_path or 'the cache'} is unchanged{checkpoint_note(repo)})",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        where = f"{cache_path} is unchanged" if cache_path else "nothing was changed"
        word = "terminated" if terminated else "interrupted"
        print(f"\n{PROG}: {word}; {where}{checkpoint_note(repo)}", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        close_logging()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_now(code: int) -> None:
    """End the process without freeing the run's objects one by one (the cache's 100,000s of
    nodes), which would only delay the end of a run whose work is done. Everything
    the run wrote is closed before this is called (the cache file, fsynced when saved; the lock,
    the readers, the connection) or here (the log); then the standard streams are flushed."""
    close_logging()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run() -> None:
    limit_malloc_arenas()
    sys.exit(main(exit_when_done=True))
