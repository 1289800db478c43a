"""The AUDIT log level (between INFO and WARNING), its one line per asset, and the run's log:
a JSON-lines file under ./log (or --log-dir) that holds AUDIT and above, and stderr for warnings.

Every line of the file is one JSON object (README "The log"): `time` (local, ISO 8601 with
milliseconds and offset), `level`, then either an asset's AUDIT fields, a `message`, or the
run's `summary` object."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from json.encoder import encode_basestring  # the C encoder of a str

from .domain.match import MatchSummary, Status

AUDIT = 25
KEEP_LOGS = 30
audit_log = logging.getLogger("immich_sync.audit")


def register_level() -> None:
    logging.addLevelName(AUDIT, "AUDIT")


def log_audit(line: str) -> None:
    """Where AUDIT lines go unless the caller gives another writer: the `immich_sync.audit` logger."""
    if audit_log.isEnabledFor(AUDIT):
        audit_log.log(AUDIT, line, extra={"audit_fields": True})


def audit_line(asset_id: str, file_name: str, match: MatchSummary | None, outcome: str) -> str:
    """An asset's AUDIT fields as the inside of a JSON object (the writer adds `time` and `level`):
    `"asset":…,"name":…,"status":…,"path":…` (found) or `"candidates":N`, then `"method"`,
    `"confidence"`, `"outcome"`. Built by hand with the C string encoder: 100,000 lines a run."""
    q = encode_basestring
    head = f'"asset":{q(asset_id)},"name":{q(file_name)}'
    if match is None:
        return f'{head},"status":"unmatched","outcome":{q(outcome)}'
    where = f'"path":{q(match.path or "")}' if match.status == Status.FOUND else f'"candidates":{match.candidates}'
    return (
        f'{head},"status":"{match.status}",{where},"method":{q(match.method)},'
        f'"confidence":"{match.confidence}","outcome":{q(outcome)}'
    )


class SecondFormatter(logging.Formatter):
    """Each line one JSON object. The time is formatted once a second, and the milliseconds once a
    millisecond, not once a line (100,000 AUDIT lines in a run, several a millisecond)."""

    _second, _text, _offset = -1, "", ""
    _milli, _stamp = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """`2026-11-24T17:48:01.123+01:00`: local time, milliseconds as logging counts them."""
        second = int(created)
        milli = int((created - second) * 1000)
        if second != self._second:
            local = time.localtime(second)
            offset = time.strftime("%z", local)
            self._second, self._text = second, time.strftime("%Y-%m-%dT%H:%M:%S", local)
            self._offset = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else "+00:00"
            self._milli = -1
        if milli != self._milli:
            self._milli, self._stamp = milli, f"{self._text}.{milli:03d}{self._offset}"
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        head = f'{{"time":"{self.stamp(record.created)}","level":"{record.levelname}"'
        if getattr(record, "audit_fields", False):
            return f"{head},{record.getMessage()}}}"
        summary = getattr(record, "summary", None)
        if summary is not None:
            return (
                f'{head},"event":"summary","summary":{json.dumps(summary, ensure_ascii=False, separators=(",", ":"))}}}'
            )
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return f'{head},"message":{json.dumps(message, ensure_ascii=False, separators=(",", ":"))}}}'


class ConsoleFormatter(logging.Formatter):
    """stderr with -v: `immich-cache: AUDIT {…}` for an asset, the message otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "audit_fields", False):
            return f"{self._fmt_prog} AUDIT {{{record.getMessage()}}}"
        summary = getattr(record, "summary", None)
        if summary is not None:
            return f"{self._fmt_prog} AUDIT summary {json.dumps(summary, ensure_ascii=False)}"
        return f"{self._fmt_prog} {record.levelname} {record.getMessage()}"

    def __init__(self, prog: str) -> None:
        super().__init__()
        self._fmt_prog = f"{prog}:"


# The log file's buffer. Each write of a full buffer is a system call that gives up the GIL, and
# the run's thread then waits behind the listing's and the pages' threads to get it back: with the
# default 8 KiB, 100,000 AUDIT lines are ~1,800 such waits (beside two busy threads 1.2-4.0 s of
# the writer's wall against 0.3 s with 1 MiB: `benchmarks/bench_log_writes.py`).
LOG_BUFFER = 1 << 20
# ... but what a killed run leaves in its log stays at most this old (seconds).
LOG_FLUSH_SECONDS = 2.0


class BufferedFileHandler(logging.FileHandler):
    """One AUDIT line per asset: let a large buffer gather them (see LOG_BUFFER), written out when
    full or LOG_FLUSH_SECONDS after the last write out, but a warning or an error at once. Closing
    writes the rest."""

    _flushed_at = 0.0

    def _open(self) -> io.TextIOWrapper:
        self._flushed_at = time.time()
        stream = open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, buffering=LOG_BUFFER)  # noqa: SIM115 - the handler keeps it open
        assert isinstance(stream, io.TextIOWrapper)
        return stream

    def write_audit(self, line: str) -> None:
        """An AUDIT line as `emit` would write it, without a LogRecord, whose building, dispatching
        and formatting would be a large share of a first run's time per asset."""
        formatter = self.formatter
        assert isinstance(formatter, SecondFormatter)
        now = time.time()
        text = f'{{"time":"{formatter.stamp(now)}","level":"AUDIT",{line}}}\n'
        assert self.lock is not None  # made by Handler.__init__
        with self.lock:
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(text)
            if now - self._flushed_at > LOG_FLUSH_SECONDS:
                self.stream.flush()
                self._flushed_at = now

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            self.stream = self._open()
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
                self._flushed_at = record.created
        except Exception:
            self.handleError(record)


def _log_name(prog: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prog)}_(\d{{8}})-(\d{{6}})(?:-(\d+))?\.log$")


def new_log_file(log_dir: str, prog: str, now: datetime | None = None) -> str:
    """A log file of this run's own: `<prog>_<YYYYmmdd-HHMMSS>.log`, or `…-2.log`, `…-3.log` when a
    run of the same second has that name already (created exclusively, so two runs never share one)."""
    os.makedirs(log_dir, exist_ok=True)
    stem = os.path.join(log_dir, f"{prog}_{(now or datetime.now()):%Y%m%d-%H%M%S}")
    for n in range(1, 10_000):
        path = f"{stem}.log" if n == 1 else f"{stem}-{n}.log"
        try:
            with open(path, "x", encoding="utf-8"):
                return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{stem}.log: 10,000 logs of the same second")


def prune_logs(log_dir: str, prog: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` logs of `prog` in `log_dir` (0 keeps every one); only files
    named as this tool names them are touched. Returns the deleted paths."""
    if keep <= 0:
        return []
    pattern = _log_name(prog)
    logs = []
    with os.scandir(log_dir) as entries:
        for entry in entries:
            named = pattern.match(entry.name)
            if named and entry.is_file(follow_symlinks=False):
                day, second, n = named.groups()
                logs.append(((day, second, int(n or 1)), entry.path))
    logs.sort()
    deleted = []
    for _, path in logs[: max(0, len(logs) - keep)]:
        try:
            os.unlink(path)
            deleted.append(path)
        except OSError:
            pass  # another run's, or not ours to delete: left as it is
    return deleted


def setup_logging(
    verbose: bool, quiet: bool, log_dir: str, prog: str = "immich-cache", keep: int = KEEP_LOGS
) -> tuple[str, Callable[[str], None]]:
    """AUDIT and above to a new log file in `log_dir` (the oldest beyond `keep` are deleted);
    stderr gets warnings (-v: everything). Returns the file's path and the writer of AUDIT lines
    (the logger itself with -v, so that stderr shows them too; otherwise straight into the file)."""
    register_level()
    path = new_log_file(log_dir, prog)
    prune_logs(log_dir, prog, keep)
    root = logging.getLogger("immich_sync")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    close_logging()
    file_handler = BufferedFileHandler(path, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(SecondFormatter())
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(ConsoleFormatter(prog))
    root.addHandler(file_handler)
    root.addHandler(console)
    return path, (log_audit if verbose else file_handler.write_audit)


def close_logging() -> None:
    root = logging.getLogger("immich_sync")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
