"""immich-cache-find: look up cached assets, read-only, and print them as JSON.

Usage:
  immich-cache-find [options] --path=FILE
  immich-cache-find [options] --name=NAME
  immich-cache-find [options] --tag=TAG
  immich-cache-find [options] --album=ALBUM
  immich-cache-find [options] --date=DAY
  immich-cache-find [options] --dates=RANGE
  immich-cache-find [options] --id=ID
  immich-cache-find (-h | --help)
  immich-cache-find --version

Options:
  --cache=FILE     The cache file; or give --target to use ./log/cache_<TARGET folder name>.json.
  --target=TARGET  The library folder the cache was made for.
  --path=FILE      The asset(s) matched to this file, by path only (relative to TARGET, or absolute);
                   to look a name up, use --name.
  --name=NAME      Assets with this original file name (any case or Unicode form).
  --tag=TAG        Assets with this tag: an id, a path such as Travel/Paris, or a name; sub-tags included.
  --album=ALBUM    Assets in this album (id or name).
  --date=DAY       Assets captured on this day (local time), e.g. 2024-07-14.
  --dates=RANGE    Assets captured from one day to another, e.g. 2024-07-01..2024-07-31.
  --id=ID          The asset with this id.
  --min-confidence=LEVEL  Only found assets matched with at least this confidence: low, medium,
                   high or exact (high and exact are the levels safe to write metadata through).
  -h --help        Show this help.
  --version        Show the version.

Prints a JSON list of nodes as stored in the cache ({"id", "match", "albums", "tags", "cachedAt",
"goneSince", "asset"}) plus "albumNames" and "tagValues" (the albums' names, the tags' full paths).
Exit codes: 0 found something; 3 nothing found; 2 bad arguments or cache file.
"""

from __future__ import annotations

import os
import sys
from datetime import date

import orjson
from docopt import DocoptExit, docopt

from .. import __version__
from ..adapters.json_repository import encode_node
from ..api import load_cache
from ..domain.match import Confidence
from ..errors import BadInput, ImmichSyncError
from ..services.extract import default_cache_path
from .usage import exit_with

PROG = "immich-cache-find"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{text!r} is not a day such as 2024-07-14") from None


def _level(text: str) -> Confidence:
    try:
        return Confidence.from_label(text.strip())
    except KeyError:
        raise BadInput(f"--min-confidence takes low, medium, high or exact (got {text!r})") from None


def main(argv: list[str] | None = None) -> int:
    try:
        args = docopt(__doc__, argv=argv, version=f"immich-cache-find {__version__}")
    except DocoptExit as exc:
        print(f"{PROG}: error: bad arguments (see {PROG} --help)\n{str(exc).strip()}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if args["--cache"]:
            path = args["--cache"]
        elif args["--target"]:
            path = default_cache_path(args["--target"])
        else:
            raise BadInput("give --cache=FILE or --target=TARGET")
        if not os.path.exists(path):
            raise BadInput(f"no cache file at {path}")
        cache = load_cache(path)
        if args["--path"]:
            given = os.path.expanduser(args["--path"])
            if not os.path.isabs(given) and cache.target and not os.path.exists(given):
                given = os.path.join(cache.target, given)  # relative to TARGET
            nodes = cache.find_by_path(os.path.abspath(given))
        elif args["--name"]:
            nodes = cache.find_by_name(args["--name"])
        elif args["--tag"]:
            nodes = cache.find_by_tag(args["--tag"])
        elif args["--album"]:
            nodes = cache.find_by_album(args["--album"])
        elif args["--date"]:
            nodes = cache.find_by_day(_day(args["--date"]))
        elif args["--dates"]:
            first, sep, last = args["--dates"].partition("..")
            if not sep:
                raise BadInput(f"--dates needs FIRST..LAST such as 2024-07-01..2024-07-31 (got {args['--dates']!r})")
            nodes = cache.find_by_day_range(_day(first), _day(last))
        else:
            node = cache.get(args["--id"])
            nodes = [node] if node else []
        if args["--min-confidence"]:
            floor = _level(args["--min-confidence"])
            nodes = [n for n in nodes if (m := n.match) is not None and m.status == "found" and m.confidence >= floor]
    except ImmichSyncError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    out = [
        {
            "id": node.id,
            **{k: v for k, v in encode_node(node).items() if k != "keys"},
            "albumNames": [cache.albums.get(a, a) for a in node.albums],
            "tagValues": [cache.tags.get(t, t) for t in node.tags],
        }
        for node in nodes
    ]
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    if not nodes:
        print(f"{PROG}: nothing matched", file=sys.stderr)
    return 0 if nodes else 3


def run() -> None:
    exit_with(main)
