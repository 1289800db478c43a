"""The matching rules: which local file is this asset? Pure; file reads go through a port, lazily.

Order of evidence (README, "How matching decides"):
1. external-library asset: the longest tail of `originalPath` that exists under TARGET -> `path`;
2. files with the same name (case and Unicode form ignored); none -> a renamed copy found by size
   and SHA1 (`checksum`), else not_found;
3. one name candidate -> found, its date and size set the confidence;
4. several -> keep those whose EXIF date equals the asset's localDateTime, then those whose size
   equals fileSizeInByte, then those whose SHA1 equals the checksum; a step that would keep none
   is skipped; one left -> found, method naming the steps that decided; else ambiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from attrs import frozen

from .asset import Asset
from .library import CaptureTime, LibraryFile, LibraryIndex
from .match import Check, Confidence, DateEvidence, Evidence, MatchResult, MatchSummary, Status
from .names import asset_file_name, normalise_name

QUARTER_HOUR = 15 * 60
_DATE_SCORE = {DateEvidence.EQUAL: 2, DateEvidence.NEAR: 1}


@frozen
class MatchPolicy:
    """Tolerances, passed in (never read from global configuration)."""

    near_seconds: int = 5  # peers (immich-go) treat +-5 s as the same moment
    max_zone_slip_hours: int = 14  # time-zone offsets run from -12 to +14 h, in quarter hours
    min_path_components: int = 2  # a path tail must hold a folder as well as the name
    verify: bool = False  # hash a unique candidate to confirm (EXACT) or demote (LOW) it


class FileFacts(Protocol):
    """What the matcher may ask about a file: its capture time and its SHA1 (part of the LibraryReader port)."""

    def capture_time(self, path: str) -> CaptureTime | None: ...

    def sha1(self, path: str) -> str | None: ...


def compare_dates(file_time: CaptureTime | None, asset_time: datetime | None, policy: MatchPolicy) -> DateEvidence:
    """Equal to the second; near when a few seconds or whole quarter hours apart (a zone slip)."""
    if file_time is None or asset_time is None or asset_time.year >= 9999:
        return DateEvidence.UNKNOWN
    delta = abs((file_time.local.replace(microsecond=0) - asset_time.replace(microsecond=0)).total_seconds())
    if delta == 0:
        return DateEvidence.EQUAL
    if delta <= policy.near_seconds:
        return DateEvidence.NEAR
    off_grid = min(delta % QUARTER_HOUR, QUARTER_HOUR - delta % QUARTER_HOUR)
    if delta <= policy.max_zone_slip_hours * 3600 + policy.near_seconds and off_grid <= policy.near_seconds:
        return DateEvidence.NEAR
    return DateEvidence.DIFFERENT


def compare_sizes(file: LibraryFile, asset: Asset) -> Check:
    if asset.file_size is None:
        return Check.UNKNOWN
    return Check.EQUAL if file.size == asset.file_size else Check.DIFFERENT


def confidence_for(evidence: Evidence) -> Confidence:
    """A content hash or an unambiguous path is exact; otherwise date and size earn the level."""
    if evidence.checksum is Check.EQUAL or evidence.path:
        return Confidence.EXACT
    if evidence.checksum is Check.DIFFERENT:
        return Confidence.LOW
    score = _DATE_SCORE.get(evidence.date, 0)
    score += 2 if evidence.size is Check.EQUAL else 0
    if score >= 4:
        return Confidence.HIGH
    if score >= 2:
        return Confidence.MEDIUM
    return Confidence.LOW


def has_content_checksum(asset: Asset) -> bool:
    """Uploaded assets only: an external-library checksum hashes the path, not the bytes."""
    return bool(asset.checksum) and not asset.is_external


_DATE_RANK = {DateEvidence.EQUAL: 0, DateEvidence.NEAR: 1, DateEvidence.UNKNOWN: 2, DateEvidence.DIFFERENT: 3}
_CHECK_RANK = {Check.EQUAL: 0, Check.UNKNOWN: 1, Check.DIFFERENT: 2}


class _Judge:
    """Evidence about one asset's candidates, each fact read at most once."""

    def __init__(self, asset: Asset, facts: FileFacts, policy: MatchPolicy) -> None:
        self.asset, self.facts, self.policy = asset, facts, policy
        self._dates: dict[str, DateEvidence] = {}
        self._sums: dict[str, Check] = {}

    def date(self, f: LibraryFile) -> DateEvidence:
        if f.path not in self._dates:
            self._dates[f.path] = compare_dates(
                self.facts.capture_time(f.path), self.asset.local_date_time, self.policy
            )
        return self._dates[f.path]

    def checksum(self, f: LibraryFile) -> Check:
        if f.path not in self._sums:
            if not has_content_checksum(self.asset):
                self._sums[f.path] = Check.UNKNOWN
            else:
                digest = self.facts.sha1(f.path)
                self._sums[f.path] = (
                    Check.UNKNOWN
                    if digest is None
                    else Check.EQUAL
                    if digest == self.asset.checksum
                    else Check.DIFFERENT
                )
        return self._sums[f.path]

    def evidence(self, f: LibraryFile, *, name: bool = True, path: bool = False) -> Evidence:
        return Evidence(
            name=name,
            path=path,
            date=self._dates.get(f.path, DateEvidence.UNKNOWN),
            size=compare_sizes(f, self.asset),
            checksum=self._sums.get(f.path, Check.UNKNOWN),
        )

    def rank(self, f: LibraryFile) -> tuple[int, int, int, str]:
        return (
            _CHECK_RANK[self._sums.get(f.path, Check.UNKNOWN)],
            _DATE_RANK[self._dates.get(f.path, DateEvidence.UNKNOWN)],
            _CHECK_RANK[compare_sizes(f, self.asset)],
            f.path,
        )


def path_tail_hit(asset: Asset, candidates: Sequence[LibraryFile], policy: MatchPolicy) -> LibraryFile | None:
    """The candidate whose whole path under TARGET is the longest tail of the asset's originalPath."""
    if not asset.original_path:
        return None
    original = normalise_name(asset.original_path.replace("\\", "/")).split("/")
    best: LibraryFile | None = None
    best_len = policy.min_path_components - 1
    for f in candidates:
        parts = normalise_name(f.relative).split("/")
        if len(parts) > best_len and len(parts) <= len(original) and original[-len(parts) :] == parts:
            best, best_len = f, len(parts)
    return best


def match_asset(
    asset: Asset,
    library: LibraryIndex,
    facts: FileFacts,
    policy: MatchPolicy = MatchPolicy(),
    now: datetime | None = None,
) -> MatchResult:
    """Decide which file under TARGET is this asset. Never depends on the order files were listed in."""
    judge = _Judge(asset, facts, policy)
    candidates = library.named(asset.file_name) if asset.file_name else ()

    if asset.is_external:
        hit = path_tail_hit(asset, candidates, policy)
        if hit is not None:
            return MatchResult.found(
                hit.path, "path", Confidence.EXACT, judge.evidence(hit, path=True), matched_at=now, file_size=hit.size
            )

    if not candidates:
        return _renamed_copy(asset, library, judge, now)

    if len(candidates) == 1:
        only = candidates[0]
        judge.date(only)
        if policy.verify:
            judge.checksum(only)
        evidence = judge.evidence(only)
        return MatchResult.found(
            only.path, "filename", confidence_for(evidence), evidence, matched_at=now, file_size=only.size
        )

    remaining = list(candidates)
    steps: list[str] = []
    narrowing: list[tuple[str, Callable[[LibraryFile], bool]]] = [
        ("exif_date", lambda f: judge.date(f) is DateEvidence.EQUAL),
        ("size", lambda f: compare_sizes(f, asset) is Check.EQUAL),
    ]
    if has_content_checksum(asset):
        narrowing.append(("checksum", lambda f: judge.checksum(f) is Check.EQUAL))
    for step, keep in narrowing:
        if len(remaining) == 1:
            break
        kept = [f for f in remaining if keep(f)]
        if kept and len(kept) < len(remaining):
            remaining = kept
            steps.append(step)
    remaining.sort(key=judge.rank)
    method = "+".join(["filename", *steps])
    if len(remaining) == 1:
        chosen = remaining[0]
        evidence = judge.evidence(chosen)
        return MatchResult.found(
            chosen.path, method, confidence_for(evidence), evidence, matched_at=now, file_size=chosen.size
        )
    return MatchResult.ambiguous(tuple(f.path for f in remaining), method, judge.evidence(remaining[0]), matched_at=now)


def _renamed_copy(asset: Asset, library: LibraryIndex, judge: _Judge, now: datetime | None) -> MatchResult:
    """No file has the name: a copy renamed on disk is still found when its bytes hash to the checksum."""
    if asset.file_size is None or not has_content_checksum(asset):
        return MatchResult.not_found("filename", matched_at=now)
    same = [f for f in library.sized(asset.file_size) if judge.checksum(f) is Check.EQUAL]
    if len(same) == 1:
        evidence = judge.evidence(same[0], name=False)
        return MatchResult.found(
            same[0].path, "checksum", Confidence.EXACT, evidence, matched_at=now, file_size=same[0].size
        )
    if same:
        return MatchResult.ambiguous(
            tuple(f.path for f in same), "checksum", judge.evidence(same[0], name=False), matched_at=now
        )
    return MatchResult.not_found("filename+checksum", matched_at=now)


def files_to_date(raw: Mapping[str, Any], library: LibraryIndex) -> tuple[LibraryFile, ...]:
    """The files whose capture time `match_asset` will ask for, so that a reader can fetch them
    ahead: every name candidate (one is dated for its confidence, several to narrow them down).
    External-library assets are left out: their path usually decides without a date. Read from the
    server's dict (building an Asset costs more than this look-ahead is meant to save)."""
    if raw.get("libraryId"):
        return ()
    name = asset_file_name(raw.get("originalFileName"), raw.get("originalPath"))
    return library.named(name) if name else ()


def needs_rematch(match: MatchSummary | None, library: LibraryIndex) -> bool:
    """Match again, even when the asset did not change, when the cached match is not found or
    ambiguous, or its file is gone or changed size since it was matched."""
    if match is None or match.status != Status.FOUND or match.path is None:
        return True
    file = library.get(match.path)
    return file is None or (match.file_size is not None and file.size != match.file_size)
