"""The review use case: what a person should look at (`review_items`), their decisions (pins, as
domain/pins.py makes them), applied to the cache file under its lock (`apply_decisions`), and
Lightroom's "nearby" idea (`nearby`): the other unsettled assets with a candidate in the folder a
person just chose."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from attrs import frozen

from ..domain.cache import CacheNode, ImmichCache
from ..domain.match import Confidence, MatchResult, Status
from ..domain.pins import pin_file, pin_none, pinned_path
from ..errors import BadInput
from ..ports import CacheRepository

# What the review lists, in the order it shows them: each asset under the first that applies.
KINDS = {
    "pin-problem": "pins whose file is gone or changed",
    "claimed": "files claimed by two assets",
    "gone": "gone from the server, still matched",
    "ambiguous": "ambiguous",
    "rejected": "not found, with rejected files",
    "unsure": "found below high",
    "pinned": "pinned (settled)",
}
TO_REVIEW = ("pin-problem", "claimed", "gone", "ambiguous", "rejected", "unsure")


@frozen
class ReviewItem:
    kind: str
    asset_id: str
    name: str
    candidates: tuple[str, ...]  # the files a person can choose from, best first


@frozen
class Decision:
    asset_id: str
    action: str  # "pin", "none", "unpin"
    path: str | None = None


def review_items(cache: ImmichCache) -> list[ReviewItem]:
    """Every asset a person should look at, and the pinned ones (kind "pinned"), in KINDS order."""
    found_paths = Counter(p for node in cache if (p := _found(node)) is not None)
    items: list[ReviewItem] = []
    for node in cache:
        item = _item(node, found_paths)
        if item is not None:
            items.append(item)
    order = {kind: n for n, kind in enumerate(KINDS)}
    items.sort(key=lambda i: (order[i.kind], i.name.casefold(), i.asset_id))
    return items


def _found(node: CacheNode) -> str | None:
    summary = node.match_summary()
    return summary.path if summary is not None and summary.status == Status.FOUND else None


def _item(node: CacheNode, found_paths: Counter[str]) -> ReviewItem | None:
    summary = node.match_summary()
    if summary is None:
        return None
    status, confidence = summary.status, Confidence.from_label(summary.confidence)
    worth = (
        summary.pinned
        or status != Status.FOUND
        or confidence < Confidence.HIGH
        or node.gone_since is not None
        or found_paths[summary.path or ""] > 1
    )
    if not worth:
        return None
    match = node.match
    assert match is not None
    name = node.asset.original_file_name
    rejected = tuple(r.path for r in match.rejected)
    if match.pinned:
        if match.pin_problem:
            return ReviewItem("pin-problem", node.id, name, match.candidates)
        if status == Status.FOUND and found_paths[match.path or ""] > 1:
            return ReviewItem("claimed", node.id, name, (match.path or "",))
        return ReviewItem("pinned", node.id, name, (match.path,) if match.path else ())
    if status == Status.FOUND and match.path is not None:
        if found_paths[match.path] > 1:
            return ReviewItem("claimed", node.id, name, (match.path,))
        if node.gone_since is not None:
            return ReviewItem("gone", node.id, name, (match.path,))
        if confidence < Confidence.HIGH:
            return ReviewItem("unsure", node.id, name, _unique((match.path, *match.candidates, *rejected)))
        return None
    if status == Status.AMBIGUOUS:
        return ReviewItem("ambiguous", node.id, name, _unique((*match.candidates, *rejected)))
    if rejected:
        return ReviewItem("rejected", node.id, name, rejected)
    return None


def _unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in paths if p))


def counts(items: Sequence[ReviewItem]) -> dict[str, int]:
    found = Counter(i.kind for i in items)
    return {kind: found.get(kind, 0) for kind in KINDS}


def under_target(target: str | None, path: str) -> str:
    """`path` (absolute, or relative to TARGET) as an absolute path inside TARGET, or BadInput.
    Symlinks are resolved first: a link out of TARGET is outside it."""
    if not target:
        raise BadInput("the cache has no TARGET: run immich-cache first")
    absolute = path if os.path.isabs(path) else os.path.join(target, path)
    real, root = os.path.realpath(absolute), os.path.realpath(target)
    if not (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
        raise BadInput(f"{path} is not inside TARGET {target}")
    return os.path.normpath(absolute)


def decide(
    cache: ImmichCache, decision: Decision, who: str, now: datetime, size_of: Callable[[str], int | None]
) -> MatchResult | None:
    """Apply one decision to the cache in memory; BadInput when it cannot be (an unknown asset, a
    file that is not in TARGET or not there). Returns the asset's new match."""
    node = cache.get(decision.asset_id)
    if node is None:
        raise BadInput(f"no asset {decision.asset_id} in the cache")
    if decision.action == "pin":
        if not decision.path:
            raise BadInput(f"--pin needs ASSET_ID=PATH (got {decision.asset_id!r} without a path)")
        path = under_target(cache.target, decision.path)
        size = size_of(path)
        if size is None:
            raise BadInput(f"{path} is not a file")
        match: MatchResult | None = pin_file(path, size, who, now)
    elif decision.action == "none":
        match = pin_none(who, now)
    elif decision.action == "unpin":
        held = node.match
        if held is None or not held.pinned:
            raise BadInput(f"asset {decision.asset_id} is not pinned")
        match = None  # the next immich-cache run matches it again
    else:
        raise BadInput(f"unknown decision {decision.action!r}")
    cache.set_match(node.id, match)
    return match


def apply_decisions(
    repo: CacheRepository,
    decisions: Sequence[Decision],
    who: str,
    now: datetime,
    size_of: Callable[[str], int | None],
) -> ImmichCache:
    """Load the cache under its lock, apply every decision (all or none: a bad one raises before the
    file is touched), save it atomically. Returns the cache as saved."""
    with repo.lock():
        cache = repo.load()
        for decision in decisions:
            decide(cache, decision, who, now, size_of)
        repo.save(cache)
    return cache


def nearby(items: Sequence[ReviewItem], cache: ImmichCache, asset_id: str, path: str) -> list[Decision]:
    """After `asset_id` was pinned to `path`: for every other unsettled asset (ambiguous, rejected,
    found below high) with exactly one candidate in the same folder, the pin it would get."""
    folder = os.path.dirname(path)
    taken = {p for node in cache if (p := _found(node)) is not None}
    proposals = []
    for item in items:
        if item.asset_id == asset_id or item.kind not in ("ambiguous", "rejected", "unsure"):
            continue
        here = [c for c in item.candidates if os.path.dirname(c) == folder]
        if len(here) == 1 and (here[0] not in taken or _found_of(cache, item.asset_id) == here[0]):
            proposals.append(Decision(item.asset_id, "pin", here[0]))
    return proposals


def _found_of(cache: ImmichCache, asset_id: str) -> str | None:
    node = cache.get(asset_id)
    return None if node is None else _found(node)


def pin_file_of(match: MatchResult | None) -> str | None:
    return None if match is None else pinned_path(match)
