"""immich-cache-files: read what each matched file says (EXIF, XMP, its sidecar) into the cache.

Usage:
  immich-cache-files [options] [TARGET]
  immich-cache-files (-h | --help)
  immich-cache-files --version

Options:
  --cache=FILE   The cache file; default ./log/cache_<TARGET folder name>.json.
  -q --quiet     Print only errors.
  -h --help      Show this help.
  --version      Show the version.

For every found asset, the file's capture date-time (with its offset), GPS, description, rating,
keywords and people's names, each with where it came from, go into the asset's node as its
`file` section (docs/cache-format.md). A later run reads again only files whose size or mtime
changed. Nothing but the cache is written. Then `immich-cache-diff` shows what differs from Immich.

Exit codes: 0 done; 2 bad arguments or cache file; 1 anything else (cache in use).
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..adapters.file_metadata import read_file_metadata, sidecar_of, stamp
from ..adapters.library_scan import default_readers
from ..errors import ImmichSyncError
from ..services.files import chunks, run_files
from .usage import arguments, existing_cache

PROG = "immich-cache-files"
CHUNK = 200  # files per task of a reader process


def _read_chunk(paths: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [read_file_metadata(path, now) for path in paths]


def read_many(paths: list[str]) -> Iterator[dict[str, Any]]:
    """The files' sections, in order: in reader processes (one per core, at most 4: this process
    only waits for them) when there are many."""
    readers = min(4, default_readers() + 1)
    if len(paths) < 2 * CHUNK or readers < 2:
        yield from _read_chunk(paths)
        return
    with ProcessPoolExecutor(readers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in pool.map(_read_chunk, chunks(paths, CHUNK)):
            yield from done


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__ or "", argv, PROG, __version__, positional="TARGET")
    if isinstance(args, int):
        return args
    try:
        repo = existing_cache(args)
        path = str(repo.path)
        started = time.monotonic()
        result = run_files(repo, now=lambda: datetime.now(UTC), read_many=read_many, stamp=stamp, sidecar_of=sidecar_of)
    except ImmichSyncError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; {path} is unchanged", file=sys.stderr)
        return 130
    if not args["--quiet"]:
        unreadable = f", {result.warnings} with metadata that could not all be read (see the warnings above)"
        print(
            f"{PROG}: {result.found} found assets in {time.monotonic() - started:.1f} s: {result.read} files read, "
            f"{result.kept} unchanged since last read, {result.missing} not there"
            + (unreadable if result.warnings else "")
        )
        print(f"  {'saved to:' if result.saved else 'unchanged:'} {path}")
    return 0


def run() -> None:
    sys.exit(main())
