"""Command-line parsing for the entrypoints: docopt, with every usage error said in one line a user
can act on (`unknown option --bogus`, `TARGET is missing`), never docopt's internals."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from docopt import DocoptExit, docopt

_OPTION = re.compile(r"^\s*(?:(-\w)[ ,]+)?(--[\w-]+)(=\S+)?", re.MULTILINE)


class UsageError(Exception):
    pass


def _options(doc: str) -> tuple[dict[str, bool], dict[str, str]]:
    """Each long option of the doc's Options section -> whether it takes a value; short -> long."""
    section = doc.split("Options:", 1)[1] if "Options:" in doc else doc
    section = re.split(r"\n\s*\n(?=\S)", section, maxsplit=1)[0]
    longs: dict[str, bool] = {}
    shorts: dict[str, str] = {}
    for short, long, value in _OPTION.findall(section):
        longs[long] = bool(value)
        if short:
            shorts[short] = long
    return longs, shorts


def check_usage(
    doc: str, argv: list[str], positional: str | None, alternative: str | None = None, missing: str | None = None
) -> None:
    """UsageError for what docopt would refuse with a message of its internals: an unknown option,
    a value missing or given to a flag, too many or no positional argument."""
    longs, shorts = _options(doc)
    given: list[str] = []
    seen_alternative = False
    args = iter(argv)
    for arg in args:
        if arg == "--":
            given.extend(args)
            break
        if arg.startswith("--"):
            name, eq, _ = arg.partition("=")
            matches = [n for n in longs if n == name] or [n for n in longs if n.startswith(name)]
            if len(matches) != 1:
                near = f" (did you mean {', '.join(matches)}?)" if matches else ""
                raise UsageError(f"unknown option {name}{near}")
            option = matches[0]
            if longs[option] and not eq:
                if next(args, None) is None:
                    raise UsageError(f"{option} needs a value, as in {option}=...")
            elif not longs[option] and eq:
                raise UsageError(f"{option} takes no value")
            seen_alternative |= option == alternative
        elif arg.startswith("-") and len(arg) > 1:
            for letter in arg[1:]:
                if f"-{letter}" not in shorts:
                    raise UsageError(f"unknown option -{letter}")
        else:
            given.append(arg)
    if positional is None:
        if given:
            raise UsageError(f"unexpected argument {given[0]!r}")
        return
    if len(given) > 1:
        raise UsageError(f"one {positional} only (got {', '.join(map(repr, given))})")
    if given and seen_alternative:
        raise UsageError(f"give {positional} or {alternative}, not both")
    if not given and not seen_alternative and missing:
        raise UsageError(missing)


def parse(doc: str, argv: list[str] | None, prog: str, version: str, **check: Any) -> dict[str, Any]:
    """docopt's arguments, or UsageError. --help and --version print and raise SystemExit(0)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not any(a in ("-h", "--help", "--version") for a in argv):
        check_usage(doc, argv, **check)
    try:
        return docopt(doc, argv=argv, version=f"{prog} {version}")
    except DocoptExit as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        if not first or first.startswith("Usage") or "Option(" in first or "Argument(" in first:
            raise UsageError("bad arguments") from None
        raise UsageError(first) from None


def arguments(doc: str, argv: list[str] | None, prog: str, version: str, **check: Any) -> dict[str, Any] | int:
    """`parse`, or the exit code when there is nothing to run: 2 after a usage error (said in one
    line), 0 after --help or --version."""
    try:
        return parse(doc, argv, prog, version, **check)
    except UsageError as exc:
        print(f"{prog}: error: {exc} (see {prog} --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)


def cache_file(args: dict[str, Any]) -> str:
    """The cache a command works on: `--cache`, else TARGET's default cache. BadInput otherwise."""
    from ..errors import BadInput
    from ..services.extract import default_cache_path

    if args["--cache"]:
        return os.path.abspath(os.path.expanduser(args["--cache"]))
    if not args["TARGET"]:
        raise BadInput("give TARGET or --cache=FILE")
    target = os.path.abspath(args["TARGET"])
    if not os.path.isdir(target):
        raise BadInput(f"TARGET {target} is not a folder")
    return default_cache_path(target)


def existing_cache(args: dict[str, Any]) -> Any:
    """The repository of `cache_file(args)`, or BadInput when there is no cache there yet."""
    from ..adapters.json_repository import JsonCacheRepository
    from ..errors import BadInput

    path = cache_file(args)
    repo = JsonCacheRepository(path)
    if not repo.exists():
        raise BadInput(f"{path}: no cache file there (run immich-cache first)")
    return repo


M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc's malloc keep at most `arenas` heaps, unless MALLOC_ARENA_MAX says otherwise.

    By default each thread that allocates may get a heap of its own (up to 8 per core), and the
    memory freed in one is not reused by another: a first run's listing, album and tag threads
    left a heavy 100,000-asset run at 947-965 MB of peak RSS against 830 MB with two heaps, at the
    same speed (benchmarks/README.md). True when the limit was set. A process-wide setting, so
    only the installed commands call it (`run`), never a library import."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl has no arenas to limit)
        return False


def exit_with(main: Any) -> None:
    """`sys.exit(main())`, quietly when the reader of the output went away (`| head`): the rest of
    the output is dropped instead of ending in a BrokenPipeError traceback."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's last flush is quiet too
        code = 1
    sys.exit(code)
