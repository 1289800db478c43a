"""MatchResult: which local file an asset is, how sure we are, and the evidence that decided it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from attrs import field, frozen


class Status(enum.StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"


class Confidence(enum.IntEnum):
    """An ordered scale; what earns each level is decided in `matcher.confidence_for`.

    EXACT  the file's SHA1 equals Immich's checksum, or an external-library asset's originalPath
           ends in the file's path under TARGET.
    HIGH   unique by name (or decided among same-named files) and both the EXIF date and the size agree.
    MEDIUM one of date or size agrees (a date off by a time-zone slip or a few seconds counts
           as half), the other disagrees or is unknown.
    LOW    only the name agrees: date and size disagree or cannot be checked.
    NONE   not found or ambiguous.
    """

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    EXACT = 4

    def __str__(self) -> str:
        return self.label  # `high`, not `3` or `Confidence.HIGH`

    def __format__(self, spec: str) -> str:
        return self.label if not spec else format(int(self), spec)  # a number spec formats the rank

    @property
    def label(self) -> str:
        return self._name_.lower()  # not `.name`: an enum property, slow in the per-asset path

    @classmethod
    def from_label(cls, label: str) -> Confidence:
        return cls[label.upper()]


class DateEvidence(enum.StrEnum):
    EQUAL = "equal"  # same wall-clock second
    NEAR = "near"  # within a few seconds, or whole hours apart (a time-zone slip)
    DIFFERENT = "different"
    UNKNOWN = "unknown"  # the file or the asset has no date


class Check(enum.StrEnum):
    """Outcome of a yes/no comparison that may not have been made."""

    EQUAL = "equal"
    DIFFERENT = "different"
    UNKNOWN = "unknown"  # not checked, or nothing to compare with


@frozen
class Evidence:
    """What was compared for the chosen file (or for the best candidate)."""

    name: bool = False
    path: bool = False
    date: DateEvidence = DateEvidence.UNKNOWN
    size: Check = Check.UNKNOWN
    checksum: Check = Check.UNKNOWN


class MatchSummary(NamedTuple):
    """The few facts indexes, counts, the AUDIT line and the re-match rule need, readable from a
    stored match without decoding it (see CacheNode)."""

    status: str  # a Status value
    path: str | None
    method: str
    confidence: str  # a Confidence label
    file_size: int | None
    candidates: int
    provisional: bool = False
    pinned: bool = False


@frozen
class Rejection:
    """A same-named file the evidence says is not this asset (its date and its bytes, or for an
    asset without a content checksum its date and its size, disagree), kept for a human to see."""

    path: str
    evidence: Evidence


def _paths(paths: Iterable[str]) -> tuple[str, ...]:
    return paths if isinstance(paths, tuple) else tuple(paths)


@frozen
class MatchResult:
    status: Status
    path: str | None
    method: str
    confidence: Confidence
    candidates: tuple[str, ...] = field(converter=_paths, default=())
    evidence: Evidence = Evidence()
    matched_at: datetime | None = None
    file_size: int | None = None  # the found file's size when matched: a change means match again
    rejected: tuple[Rejection, ...] = ()  # same-named files ruled out, with their evidence
    # made while part of TARGET could not be read: the next run matches it again
    provisional: bool = False
    # decided by a person (domain/pins.py): no run matches it again; `pin_problem` says what a run
    # found wrong with the pinned file (gone, changed size), which makes the status not_found
    pinned: bool = False
    pinned_by: str | None = None
    pin_problem: str | None = None

    @classmethod
    def found(
        cls,
        path: str,
        method: str,
        confidence: Confidence,
        evidence: Evidence,
        candidates: tuple[str, ...] = (),
        matched_at: datetime | None = None,
        file_size: int | None = None,
        rejected: tuple[Rejection, ...] = (),
    ) -> MatchResult:
        return cls(
            Status.FOUND, path, method, confidence, candidates or (path,), evidence, matched_at, file_size, rejected
        )

    def summary(self) -> MatchSummary:
        return MatchSummary(
            self.status._value_,
            self.path,
            self.method,
            self.confidence.label,
            self.file_size,
            len(self.candidates),
            self.provisional,
            self.pinned,
        )

    @classmethod
    def not_found(cls, method: str = "none", matched_at: datetime | None = None) -> MatchResult:
        return cls(Status.NOT_FOUND, None, method, Confidence.NONE, (), Evidence(), matched_at)

    @classmethod
    def ambiguous(
        cls, candidates: tuple[str, ...], method: str, evidence: Evidence, matched_at: datetime | None = None
    ) -> MatchResult:
        return cls(Status.AMBIGUOUS, None, method, Confidence.NONE, candidates, evidence, matched_at)
