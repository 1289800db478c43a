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

import enum
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from attrs import evolve, frozen

from .asset import Asset, is_external_raw
from .library import CaptureTime, LibraryFile, LibraryIndex
from .match import Check, Confidence, DateEvidence, Evidence, MatchResult, MatchSummary, Rejection, Status
from .names import asset_file_name, normalise_name

QUARTER_HOUR = 15 * 60
_DATE_SCORE = {DateEvidence.EQUAL: 2, DateEvidence.NEAR: 1}


@frozen
class MatchPolicy:
    """Tolerances, passed in (never read from global configuration)."""

    near_seconds: int = 5  # peers (immich-go) treat +-5 s as the same moment
    max_zone_slip_hours: int = 14  # time-zone offsets run from -12 to +14 h, in quarter hours
    min_path_components: int = 2  # a path tail must hold a folder as well as the name
    verify: bool = False  # hash every found file (`verify_match`): confirm (EXACT) or demote it


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

    def contradicted(self, f: LibraryFile) -> bool:
        """For a file whose date disagrees: its bytes differ too (an uploaded asset), or, without a
        content checksum, its size differs too. Hashes the file for an uploaded asset."""
        if has_content_checksum(self.asset):
            return self.checksum(f) is Check.DIFFERENT
        return compare_sizes(f, self.asset) is Check.DIFFERENT

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


def _parts(path: str) -> list[str]:
    return [p for p in normalise_name(path.replace("\\", "/")).split("/") if p]


def common_tail(original_path: str, relative: str) -> int:
    """How many trailing path components (the name included) two paths share, compared as names are."""
    a, b = _parts(original_path), _parts(relative)
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


@frozen
class LibraryRoots:
    """Where TARGET holds each external library's import path, learned from the assets whose path
    tail alone decided their file: server prefix -> prefix under TARGET (normalised components).
    A server prefix seen with two different local prefixes is not learned: a rule that once said
    two things says nothing."""

    pairs: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()  # longest server prefix first

    @classmethod
    def learn(cls, decided: Iterable[tuple[str, str]]) -> LibraryRoots:
        """From (originalPath, path under TARGET) of the assets matched by their path tail."""
        seen: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for original_path, relative in decided:
            a, b = _parts(original_path), _parts(relative)
            n = common_tail(original_path, relative)
            if n < 1:
                continue
            seen.setdefault(tuple(a[: len(a) - n]), set()).add(tuple(b[: len(b) - n]))
        pairs = [(server, next(iter(local))) for server, local in seen.items() if len(local) == 1 and server]
        pairs.sort(key=lambda pair: -len(pair[0]))
        return cls(tuple(pairs))

    def local_paths(self, original_path: str) -> list[str]:
        """The paths under TARGET (normalised) this asset's file would have under each learned root."""
        parts = _parts(original_path)
        found = []
        for server, local in self.pairs:
            if len(parts) > len(server) and tuple(parts[: len(server)]) == server:
                found.append("/".join((*local, *parts[len(server) :])))
        return found


def path_tail_hit(
    asset: Asset, candidates: Sequence[LibraryFile], policy: MatchPolicy, roots: LibraryRoots | None = None
) -> tuple[LibraryFile, str] | None:
    """An external asset's file by its path: where a learned root puts it, else the candidate whose
    path shares the longest tail with originalPath (a folder and the name at least; a tie decides
    nothing). Returns the file and how it was found (`path` or `path+root`)."""
    if not asset.original_path or not candidates:
        return None
    if roots is not None and roots.pairs:
        wanted = set(roots.local_paths(asset.original_path))
        hits = [f for f in candidates if normalise_name(f.relative) in wanted]
        if len(hits) == 1:
            return hits[0], "path+root"
    best: list[LibraryFile] = []
    best_len = policy.min_path_components - 1
    for f in candidates:
        n = common_tail(asset.original_path, f.relative)
        if n > best_len:
            best, best_len = [f], n
        elif n == best_len and best:
            best.append(f)
    return (best[0], "path") if len(best) == 1 else None


def match_asset(
    asset: Asset,
    library: LibraryIndex,
    facts: FileFacts,
    policy: MatchPolicy = MatchPolicy(),
    now: datetime | None = None,
    *,
    roots: LibraryRoots | None = None,
    exclude: Collection[str] = (),
) -> MatchResult:
    """Decide which file under TARGET is this asset. Never depends on the order files were listed in.

    `exclude`: files another asset holds with better evidence (see `settle_claims`). A result made
    while part of TARGET could not be read is marked provisional: the next run decides again."""
    result = _decide(asset, library, facts, policy, now, roots, exclude)
    return evolve(result, provisional=True) if library.unreadable else result


def _decide(
    asset: Asset,
    library: LibraryIndex,
    facts: FileFacts,
    policy: MatchPolicy,
    now: datetime | None,
    roots: LibraryRoots | None,
    exclude: Collection[str],
) -> MatchResult:
    judge = _Judge(asset, facts, policy)
    candidates = library.named(asset.file_name) if asset.file_name else ()
    if exclude:
        candidates = tuple(f for f in candidates if f.path not in exclude)

    if asset.is_external:
        hit = path_tail_hit(asset, candidates, policy, roots)
        if hit is not None:
            file, method = hit
            return MatchResult.found(
                file.path,
                method,
                Confidence.EXACT,
                judge.evidence(file, path=True),
                matched_at=now,
                file_size=file.size,
            )

    if not candidates:
        return _renamed_copy(asset, library, judge, now, exclude)

    if len(candidates) == 1:  # most assets: the same screen as `_screen`, without its lists
        only = candidates[0]
        if judge.date(only) is not DateEvidence.DIFFERENT or not judge.contradicted(only):
            evidence = judge.evidence(only)
            method = "filename+checksum" if evidence.checksum is Check.EQUAL else "filename"
            return MatchResult.found(
                only.path, method, confidence_for(evidence), evidence, matched_at=now, file_size=only.size
            )
        possible: list[LibraryFile] = []
        set_aside: list[LibraryFile] = []
        rejected = [only]
    else:
        possible, set_aside, rejected = _screen(candidates, judge)
    rejections = tuple(Rejection(f.path, judge.evidence(f)) for f in rejected) if rejected else ()
    if not possible:
        # every same-named file is contradicted: this asset's own file is not among them
        result = _renamed_copy(asset, library, judge, now, exclude)
        return evolve(result, rejected=rejections, method=f"{result.method}+rejected")

    remaining = list(possible)
    steps: list[str] = ["exif_date"] if set_aside else []
    if rejected:
        steps.append("checksum" if has_content_checksum(asset) else "size")
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
            if step not in steps:
                steps.append(step)
    remaining.sort(key=judge.rank)
    method = "+".join(["filename", *steps])
    if len(remaining) == 1:
        chosen = remaining[0]
        evidence = judge.evidence(chosen)
        return MatchResult.found(
            chosen.path,
            method,
            confidence_for(evidence),
            evidence,
            matched_at=now,
            file_size=chosen.size,
            rejected=rejections,
        )
    return evolve(
        MatchResult.ambiguous(tuple(f.path for f in remaining), method, judge.evidence(remaining[0]), matched_at=now),
        rejected=rejections,
    )


def _screen(
    candidates: Sequence[LibraryFile], judge: _Judge
) -> tuple[list[LibraryFile], list[LibraryFile], list[LibraryFile]]:
    """Split the same-named files into (possible, set aside, rejected).

    While some file's date agrees with the asset's (or cannot be compared), the files whose date
    disagrees are set aside, unhashed: they are not chosen. When every file's date disagrees, only
    the bytes can still speak for one: each is hashed (an uploaded asset) and is rejected when its
    SHA1 differs too; without a content checksum (external assets), a size that differs too rejects
    it. A file whose SHA1 equals the checksum is this asset whatever its date says."""
    dates = [judge.date(f) for f in candidates]
    if any(d is not DateEvidence.DIFFERENT for d in dates):
        agree = [f for f, d in zip(candidates, dates, strict=True) if d is not DateEvidence.DIFFERENT]
        return agree, [f for f in candidates if f not in agree], []
    possible: list[LibraryFile] = []
    rejected: list[LibraryFile] = []
    for f in candidates:
        (rejected if judge.contradicted(f) else possible).append(f)
    return possible, [], rejected


def _renamed_copy(
    asset: Asset, library: LibraryIndex, judge: _Judge, now: datetime | None, exclude: Collection[str] = ()
) -> MatchResult:
    """No file has the name: a copy renamed on disk is still found when its bytes hash to the checksum."""
    if asset.file_size is None or not has_content_checksum(asset):
        return MatchResult.not_found("filename", matched_at=now)
    same = [f for f in library.sized(asset.file_size) if f.path not in exclude and judge.checksum(f) is Check.EQUAL]
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


class VerifyOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"  # the file's SHA1 equals the checksum (or an external asset's path decided it)
    DEMOTED = "demoted"  # different bytes: an edited copy (low), or not this asset (not found)
    UNCHECKED = "unchecked"  # not found, no content checksum, or the file could not be read


def verify_match(
    match: MatchResult, asset: Asset, facts: FileFacts, now: datetime | None = None
) -> tuple[MatchResult, VerifyOutcome]:
    """`--verify`: hash a found file of an uploaded asset. Equal bytes make the match exact;
    different bytes demote it to low, or, when its date disagrees too, make it not found (the file
    kept as a rejected candidate). An external asset is verified by its path: its checksum hashes
    the path, not the bytes."""
    if match.status is not Status.FOUND or match.path is None:
        return match, VerifyOutcome.UNCHECKED
    if asset.is_external:
        return match, (VerifyOutcome.CONFIRMED if match.evidence.path else VerifyOutcome.UNCHECKED)
    if not has_content_checksum(asset):
        return match, VerifyOutcome.UNCHECKED
    digest = facts.sha1(match.path)
    if digest is None:
        return match, VerifyOutcome.UNCHECKED
    if digest == asset.checksum:
        evidence = evolve(match.evidence, checksum=Check.EQUAL)
        return evolve(match, confidence=Confidence.EXACT, evidence=evidence), VerifyOutcome.CONFIRMED
    evidence = evolve(match.evidence, checksum=Check.DIFFERENT)
    if evidence.date is DateEvidence.DIFFERENT:
        rejected = (*match.rejected, Rejection(match.path, evidence))
        result = MatchResult.not_found("filename+checksum+rejected", matched_at=now or match.matched_at)
        return evolve(result, rejected=rejected, provisional=match.provisional), VerifyOutcome.DEMOTED
    return evolve(match, confidence=Confidence.LOW, evidence=evidence), VerifyOutcome.DEMOTED


def claim_rank(match: MatchResult, asset: Asset) -> tuple[int, int, int, int]:
    """How strongly a match holds its file, to settle a file claimed by two assets: confidence, then
    (external assets) how much of originalPath the file's path repeats, then date, then size."""
    evidence = match.evidence
    tail = common_tail(asset.original_path or "", match.path or "") if asset.is_external else 0
    return (
        int(match.confidence) + (10 if match.pinned else 0),  # a person's pin outranks any evidence
        tail,
        -_DATE_RANK[evidence.date],
        -_CHECK_RANK[evidence.size],
    )


def files_to_date(raw: Mapping[str, Any], library: LibraryIndex) -> tuple[LibraryFile, ...]:
    """The files whose capture time `match_asset` will ask for, so that a reader can fetch them
    ahead: every name candidate (one is dated for its confidence, several to narrow them down).
    External-library assets are left out: their path usually decides without a date. Read from the
    server's dict (building an Asset costs more than this look-ahead is meant to save)."""
    if is_external_raw(raw):
        return ()
    name = asset_file_name(raw.get("originalFileName"), raw.get("originalPath"))
    return library.named(name) if name else ()


def needs_rematch(match: MatchSummary | None, library: LibraryIndex) -> bool:
    """Match again, even when the asset did not change, when the cached match is not found,
    ambiguous or provisional (made while part of TARGET could not be read), or its file is gone
    or changed size since it was matched. A file missing from a folder that could not be read this
    time is not gone: its match is kept. A pinned match is never matched again (domain/pins.py:
    a run only checks its file)."""
    if match is not None and match.pinned:
        return False
    if match is None or match.status != Status.FOUND or match.path is None or match.provisional:
        return True
    file = library.get(match.path)
    if file is None:
        return not library.in_unreadable(match.path)
    return match.file_size is not None and file.size != match.file_size
