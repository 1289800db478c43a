"""immich-cache-diff: where Immich and your files disagree, field by field (read-only).

Usage:
  immich-cache-diff [options] [--field=F]... [TARGET]
  immich-cache-diff (-h | --help)
  immich-cache-diff --version

Options:
  --cache=FILE            The cache file; default ./log/cache_<TARGET folder name>.json.
  --field=F               Only this field (repeat for more): dateTimeOriginal, latitude, longitude,
                          description, rating, tags, people.
  --min-confidence=LEVEL  Only found assets matched with at least this confidence: low, medium,
                          high or exact (high and exact are the levels safe to write through).
  --json                  One JSON object per line: asset, path, field, immich, file, source.
  -h --help               Show this help.
  --version               Show the version.

Needs the files read first (`immich-cache-files`). Dates compare as Immich stores them (with an
offset: the instant; without: the wall-clock time), coordinates within 1e-5 degrees, tags and
people as sets; an empty value and a missing one are the same.

Exit codes: 0 no difference; 1 differences found; 2 bad arguments or cache file.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any

import orjson

from .. import __version__
from ..api import diff, file_metadata
from ..domain.diff import FIELDS
from ..domain.match import Confidence, Status
from ..errors import BadInput, ImmichSyncError
from .usage import arguments, existing_cache, exit_with

PROG = "immich-cache-diff"


def _show(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__ or "", argv, PROG, __version__, positional="TARGET")
    if isinstance(args, int):
        return args
    try:
        fields = tuple(args["--field"]) or FIELDS
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise BadInput(f"unknown field {unknown[0]!r}: one of {', '.join(FIELDS)}")
        level = Confidence.NONE
        if args["--min-confidence"]:
            try:
                level = Confidence.from_label(args["--min-confidence"])
            except KeyError:
                raise BadInput("--min-confidence takes low, medium, high or exact") from None
        cache = existing_cache(args).load()
    except ImmichSyncError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    per_field: Counter[str] = Counter()
    compared = unread = 0
    out = sys.stdout
    for node in cache:
        summary = node.match_summary()
        if summary is None or summary.status != Status.FOUND or Confidence.from_label(summary.confidence) < level:
            continue
        if file_metadata(node) is None:
            unread += 1
            continue
        compared += 1
        for found in diff(node, cache, fields):
            per_field[found.field] += 1
            if args["--json"]:
                out.write(orjson.dumps(found.as_json()).decode() + "\n")
            else:
                where = os.path.relpath(found.path, cache.target) if cache.target else found.path
                immich, theirs, source = _show(found.immich), _show(found.file), found.source or "not in the file"
                out.write(f"{where}  {found.field}: Immich {immich} | file {theirs} ({source})\n")
    if not args["--json"]:
        counts = ", ".join(f"{name} {per_field[name]}" for name in fields if per_field[name]) or "none"
        print(f"{PROG}: {compared} found assets compared; differences: {counts}")
        if unread:
            print(f"  {unread} found assets have no file metadata yet: run immich-cache-files first")
    elif unread:
        print(f"{PROG}: {unread} found assets have no file metadata yet: run immich-cache-files", file=sys.stderr)
    return 1 if per_field else 0


def run() -> None:
    exit_with(main)
