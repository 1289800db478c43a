"""The AUDIT log level (between INFO and WARNING) and its one line per asset."""

from __future__ import annotations

import logging

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
