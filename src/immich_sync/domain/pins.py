"""Pins: matches a person decided (in `immich-cache-review`), which no run overrides.

A pin is a MatchResult with `pinned` set and method `manual`: either a file (found, confidence
high: a person looked at both pictures) or "none of these" (not_found). A run never matches a
pinned asset again; it only checks the pinned file (`check_pin`): gone or changed in size, the pin
is flagged (not_found, with `pin_problem` and the path kept as the candidate) instead of being
silently replaced; back at its pinned size, it is found again."""

from __future__ import annotations

from datetime import datetime

from attrs import evolve

from .library import LibraryIndex
from .match import Confidence, Evidence, MatchResult, Status

MANUAL = "manual"


def pin_file(path: str, size: int, who: str, at: datetime) -> MatchResult:
    return MatchResult(
        Status.FOUND,
        path,
        MANUAL,
        Confidence.HIGH,
        (path,),
        Evidence(name=False),
        at,
        size,
        pinned=True,
        pinned_by=who,
    )


def pin_none(who: str, at: datetime) -> MatchResult:
    """ "None of these": not found, and no run looks for it again."""
    return MatchResult(Status.NOT_FOUND, None, MANUAL, Confidence.NONE, (), Evidence(), at, pinned=True, pinned_by=who)


def pinned_path(match: MatchResult) -> str | None:
    """The file a pin names: its path when found, its kept candidate when flagged."""
    if match.status == Status.FOUND:
        return match.path
    return match.candidates[0] if match.pin_problem and match.candidates else None


def check_pin(match: MatchResult, library: LibraryIndex) -> MatchResult:
    """The pin as this walk of TARGET sees its file (the same object when nothing changed)."""
    path = pinned_path(match)
    if not match.pinned or path is None:
        return match  # "none of these" needs no file
    file = library.get(path)
    if file is None and library.in_unreadable(path):
        return match  # not gone: that part of TARGET could not be read this time
    if file is None:
        problem = "the pinned file is gone"
    elif match.file_size is not None and file.size != match.file_size:
        problem = f"the pinned file changed size ({match.file_size} -> {file.size} bytes)"
    else:
        problem = None
    if problem is None:
        if match.status == Status.FOUND:
            return match
        return evolve(match, status=Status.FOUND, path=path, confidence=Confidence.HIGH, pin_problem=None)
    if match.pin_problem == problem:
        return match
    return evolve(
        match, status=Status.NOT_FOUND, path=None, confidence=Confidence.NONE, candidates=(path,), pin_problem=problem
    )
