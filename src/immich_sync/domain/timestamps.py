"""Reading Immich's timestamps leniently.

Servers write `Z` or `+00:00` with 0 to 6 fraction digits (FACTS.md); compare instants, never strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


def parse_instant(value: object) -> datetime | None:
    """An aware datetime (UTC when the text has no offset), or None for anything unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_wall_clock(value: object) -> datetime | None:
    """Immich's `localDateTime`: wall-clock time written as if it were UTC. Returned naive."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        return None


@lru_cache(maxsize=64)  # a run writes the same moment twice an asset (cachedAt, matchedAt)
def format_instant(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, the way Immich writes it."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"
