"""The AUDIT log level (between INFO and WARNING), its one line per asset, and the run's log:
a dated file under ./log that holds AUDIT and above, and stderr for warnings."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime

from .domain.match import MatchSummary, Status

AUDIT = 25
audit_log = logging.getLogger("immich_sync.audit")


def register_level() -> None:
    logging.addLevelName(AUDIT, "AUDIT")


def log_audit(line: str) -> None:
    """Where AUDIT lines go unless the caller gives another writer: the `immich_sync.audit` logger."""
    if audit_log.isEnabledFor(AUDIT):
        audit_log.log(AUDIT, line)


def audit_line(asset_id: str, file_name: str, match: MatchSummary | None, outcome: str) -> str:
    """`asset=<id> name=<file> status=<s> path=<p>|candidates=<n> method=<m> confidence=<c> (<outcome>)`."""
    if match is None:
        return f"asset={asset_id} name={file_name!r} status=unmatched ({outcome})"
    where = f"path={match.path!r}" if match.status == Status.FOUND else f"candidates={match.candidates}"
    return (
        f"asset={asset_id} name={file_name!r} status={match.status} {where} "
        f"method={match.method} confidence={match.confidence} ({outcome})"
    )


class SecondFormatter(logging.Formatter):
    """Formats the time once a second, and the milliseconds once a millisecond, not once a line
    (100,000 AUDIT lines in a run, several a millisecond)."""

    _second, _text = -1, ""
    _milli, _stamp = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """`2026-11-24 17:48:01,123`, as logging's default asctime writes it."""
        second = int(created)
        milli = int((created - second) * 1000)  # as logging counts them
        if second != self._second:
            self._second, self._text = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._milli = -1
        if milli != self._milli:
            self._milli, self._stamp = milli, f"{self._text},{milli:03d}"
        return self._stamp


class BufferedFileHandler(logging.FileHandler):
    """One AUDIT line per asset: let the file's buffer gather them (a flush per line is a system
    call per asset) but write a warning or an error through at once. Closing writes the rest."""

    def write_audit(self, line: str) -> None:
        """An AUDIT line as `emit` would write it, without a LogRecord, whose building, dispatching
        and formatting would be a large share of a first run's time per asset."""
        formatter = self.formatter
        assert isinstance(formatter, SecondFormatter)
        text = f"{formatter.stamp(time.time())} AUDIT {line}\n"
        assert self.lock is not None  # made by Handler.__init__
        with self.lock:
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(text)

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            self.stream = self._open()
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)


def setup_logging(
    verbose: bool, quiet: bool, log_dir: str, prog: str = "immich-cache"
) -> tuple[str, Callable[[str], None]]:
    """AUDIT and above to a dated log file under ./log; stderr gets warnings (-v: everything).
    Returns the file's path and the writer of AUDIT lines (the logger itself with -v, so that
    stderr shows them too; otherwise straight into the file)."""
    register_level()
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, f"{prog}_{datetime.now():%Y%m%d-%H%M%S}.log")
    root = logging.getLogger("immich_sync")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    close_logging()
    file_handler = BufferedFileHandler(path, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(SecondFormatter("%(asctime)s %(levelname)s %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter(f"{prog}: %(levelname)s %(message)s"))
    root.addHandler(file_handler)
    root.addHandler(console)
    return path, (log_audit if verbose else file_handler.write_audit)


def close_logging() -> None:
    root = logging.getLogger("immich_sync")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
