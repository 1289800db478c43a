"""Issue 16: pins a person made are kept by every run; a pinned file that vanishes or changes is
flagged, never silently replaced; the review lists what needs a person."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from fakes import FakeLibrary, FakeSource, InMemoryCacheRepository
from immich_sync.domain.match import Confidence, Status
from immich_sync.domain.pins import check_pin, pin_file, pin_none
from immich_sync.errors import BadInput
from immich_sync.ports import Groups
from immich_sync.services import review
from immich_sync.services.extract import ExtractRequest, run_extract
from immich_sync.testing.factory import make_asset

TAKEN = datetime(2024, 5, 1, 12, 0)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def asset(name, day=1, size=100):
    return make_asset(
        owner_id="me", name=name, taken=TAKEN, size=size, checksum="c", updated_at=datetime(2026, 1, day, tzinfo=UTC)
    )


@pytest.fixture
def world():
    lib = FakeLibrary()
    lib.add("2024/a.jpg", 100, TAKEN)
    lib.add("copies/a.jpg", 100, TAKEN)  # two same-named files that agree: ambiguous
    lib.add("2024/b.jpg", 100, TAKEN)
    assets = [asset("a.jpg"), asset("b.jpg")]
    return lib, FakeSource(assets, albums=Groups({}, {}), tags=Groups({}, {})), InMemoryCacheRepository(), assets


def run(lib, source, repo, **request):
    return run_extract(ExtractRequest(target="/lib", **request), source, repo, lib, now=lambda: NOW)


def pin(repo, asset_id, path, lib):
    sizes = {p: size for p, (_rel, size, _t, _s) in lib.files.items()}
    return review.apply_decisions(repo, [review.Decision(asset_id, "pin", path)], "ann", NOW, sizes.get)


def test_a_pin_is_kept_by_every_run_changed_asset_or_not(world):
    lib, source, repo, assets = world
    run(lib, source, repo)
    a = assets[0]["id"]
    assert repo.load().get(a).match.status == Status.AMBIGUOUS
    pin(repo, a, "copies/a.jpg", lib)
    for change in (None, 5):
        if change:
            source.assets[a] = {**assets[0], "updatedAt": f"2026-01-0{change}T00:00:00.000Z"}
        result = run(lib, source, repo)
        match = repo.load().get(a).match
        assert (match.status, match.path, match.method, match.pinned, match.pinned_by) == (
            Status.FOUND,
            "/lib/copies/a.jpg",
            "manual",
            True,
            "ann",
        )
        assert match.confidence is Confidence.HIGH
    assert result.updated == 1 and result.by_method["manual"] == 1


def test_a_vanished_pinned_file_is_flagged_not_replaced_and_found_again_when_back(world):
    lib, source, repo, assets = world
    run(lib, source, repo)
    a = assets[0]["id"]
    pin(repo, a, "copies/a.jpg", lib)
    held = lib.files.pop("/lib/copies/a.jpg")
    run(lib, source, repo)
    match = repo.load().get(a).match
    assert match.status == Status.NOT_FOUND and match.pinned and match.pin_problem == "the pinned file is gone"
    assert match.candidates == ("/lib/copies/a.jpg",)  # not re-matched to the other a.jpg
    items = review.review_items(repo.load())
    assert [(i.kind, i.asset_id) for i in items if i.asset_id == a] == [("pin-problem", a)]
    lib.files["/lib/copies/a.jpg"] = held
    run(lib, source, repo)
    match = repo.load().get(a).match
    assert (match.status, match.path, match.pin_problem) == (Status.FOUND, "/lib/copies/a.jpg", None)


def test_a_pinned_file_that_changed_size_is_flagged(world):
    lib, source, repo, assets = world
    run(lib, source, repo)
    b = assets[1]["id"]
    pin(repo, b, "/lib/2024/b.jpg", lib)
    lib.add("2024/b.jpg", 120, TAKEN)
    run(lib, source, repo)
    match = repo.load().get(b).match
    assert match.status == Status.NOT_FOUND and match.pin_problem == "the pinned file changed size (100 -> 120 bytes)"


def test_a_pinned_file_in_an_unreadable_part_is_kept():
    from immich_sync.domain.library import LibraryFile, LibraryIndex

    match = pin_file("/lib/nas/a.jpg", 100, "ann", NOW)
    index = LibraryIndex.from_files("/lib", [LibraryFile("/lib/2024/x.jpg", "2024/x.jpg", 1)], ["/lib/nas"])
    assert check_pin(match, index) is match


def test_none_of_these_is_kept_and_clear_keeps_pins(world):
    lib, source, repo, assets = world
    run(lib, source, repo)
    a, b = assets[0]["id"], assets[1]["id"]
    review.apply_decisions(repo, [review.Decision(a, "none")], "ann", NOW, lambda p: 100)
    pin(repo, b, "2024/b.jpg", lib)
    run(lib, source, repo, clear=True)
    cache = repo.load()
    assert cache.get(a).match == pin_none("ann", cache.get(a).match.matched_at)
    assert cache.get(b).match.pinned and cache.get(b).match.method == "manual"


def test_a_pin_outranks_an_automatic_claim_on_the_same_file(world):
    lib, source, repo, assets = world
    run(lib, source, repo)
    a, b = assets[0]["id"], assets[1]["id"]
    pin(repo, a, "2024/b.jpg", lib)  # a person says b.jpg is asset a
    run(lib, source, repo)
    cache = repo.load()
    assert cache.get(a).match.path == "/lib/2024/b.jpg" and cache.get(a).match.pinned
    assert cache.get(b).match.status != Status.FOUND or cache.get(b).match.path != "/lib/2024/b.jpg"


def test_unpin_lets_the_next_run_match_again(world):
    lib, source, repo, assets = world
    run(lib, source, repo)
    a = assets[0]["id"]
    pin(repo, a, "copies/a.jpg", lib)
    review.apply_decisions(repo, [review.Decision(a, "unpin")], "ann", NOW, lambda p: 100)
    assert repo.load().get(a).match is None
    run(lib, source, repo)
    assert repo.load().get(a).match.status == Status.AMBIGUOUS


@pytest.mark.parametrize(
    "decision,message",
    [
        pytest.param(review.Decision("nobody", "none"), "no asset nobody", id="unknown-asset"),
        pytest.param(review.Decision("A", "pin", "/etc/passwd"), "is not inside TARGET", id="outside"),
        pytest.param(review.Decision("A", "pin", "../x.jpg"), "is not inside TARGET", id="climbing-out"),
        pytest.param(review.Decision("A", "pin", "2024/missing.jpg"), "is not a file", id="missing-file"),
        pytest.param(review.Decision("A", "unpin"), "is not pinned", id="unpin-unpinned"),
    ],
)
def test_a_bad_decision_changes_nothing(world, decision, message):
    lib, source, repo, assets = world
    run(lib, source, repo)
    before = repo.doc
    decision = review.Decision(
        assets[0]["id"] if decision.asset_id == "A" else decision.asset_id, decision.action, decision.path
    )
    good = review.Decision(assets[1]["id"], "none")
    with pytest.raises(BadInput, match=message):
        review.apply_decisions(repo, [good, decision], "ann", NOW, lambda p: 100 if "2024/a" in p else None)
    assert repo.doc == before and repo.saves == 1  # all or none: the good one was not saved either


def test_the_review_lists_each_kind_and_nearby_proposes_the_same_folder():
    from immich_sync.domain.cache import ImmichCache
    from immich_sync.domain.match import Evidence, MatchResult, Rejection

    cache = ImmichCache()
    cache.target = "/lib"
    ids = {}
    for name in ("amb.jpg", "amb2.jpg", "rej.jpg", "low.jpg", "ok.jpg", "twin1.jpg", "twin2.jpg", "none.jpg"):
        raw = asset(name)
        cache.upsert(raw, NOW)
        ids[name] = raw["id"]
    found = MatchResult.found
    cache.set_match(ids["amb.jpg"], MatchResult.ambiguous(("/lib/t/amb.jpg", "/lib/u/amb.jpg"), "filename", Evidence()))
    cache.set_match(ids["amb2.jpg"], MatchResult.ambiguous(("/lib/t/amb2.jpg", "/lib/v/amb2.jpg"), "f", Evidence()))
    rejected = MatchResult.not_found("filename+rejected")
    cache.set_match(ids["rej.jpg"], attrs.evolve(rejected, rejected=(Rejection("/lib/t/rej.jpg", Evidence()),)))
    cache.set_match(ids["low.jpg"], found("/lib/low.jpg", "filename", Confidence.LOW, Evidence()))
    cache.set_match(ids["ok.jpg"], found("/lib/ok.jpg", "filename", Confidence.HIGH, Evidence()))
    cache.set_match(ids["twin1.jpg"], found("/lib/tw.jpg", "checksum", Confidence.EXACT, Evidence()))
    cache.set_match(ids["twin2.jpg"], found("/lib/tw.jpg", "checksum", Confidence.EXACT, Evidence()))
    cache.set_match(ids["none.jpg"], MatchResult.not_found())  # nothing to show a person
    items = review.review_items(cache)
    assert [(i.kind, i.name) for i in items] == [
        ("claimed", "twin1.jpg"),
        ("claimed", "twin2.jpg"),
        ("ambiguous", "amb.jpg"),
        ("ambiguous", "amb2.jpg"),
        ("rejected", "rej.jpg"),
        ("unsure", "low.jpg"),
    ]
    assert review.counts(items)["ambiguous"] == 2 and review.counts(items)["pin-problem"] == 0
    proposals = review.nearby(items, cache, ids["amb.jpg"], "/lib/t/amb.jpg")
    assert proposals == [
        review.Decision(ids["amb2.jpg"], "pin", "/lib/t/amb2.jpg"),
        review.Decision(ids["rej.jpg"], "pin", "/lib/t/rej.jpg"),
    ]


def test_pins_round_trip_through_the_file_and_validate_against_the_schema(tmp_path):
    import json
    from pathlib import Path

    import jsonschema

    from immich_sync import load_cache, save_cache
    from immich_sync.domain.cache import ImmichCache
    from immich_sync.domain.match import Evidence, MatchResult, Rejection

    cache = ImmichCache()
    cache.target = "/lib"
    raws = [asset(f"{n}.jpg") for n in range(4)]
    for raw in raws:
        cache.upsert(raw, NOW)
    flagged = attrs.evolve(
        pin_file("/lib/x.jpg", 5, "ann", NOW),
        status=Status.NOT_FOUND,
        path=None,
        confidence=Confidence.NONE,
        pin_problem="the pinned file is gone",
    )
    rejected = attrs.evolve(MatchResult.not_found(), rejected=(Rejection("/lib/r.jpg", Evidence()),), provisional=True)
    matches = [pin_file("/lib/a.jpg", 10, "ann", NOW), pin_none("bob", NOW), flagged, rejected]
    for raw, match in zip(raws, matches, strict=True):
        cache.set_match(raw["id"], match)
    save_cache(cache, tmp_path / "c.json")
    schema = json.loads((Path(__file__).parents[2] / "docs" / "cache.schema.json").read_text())
    jsonschema.validate(json.loads((tmp_path / "c.json").read_text()), schema)
    again = load_cache(tmp_path / "c.json")
    assert [again.get(raw["id"]).match for raw in raws] == matches
    assert [again.get(raw["id"]).match_summary().pinned for raw in raws] == [True, True, True, False]
