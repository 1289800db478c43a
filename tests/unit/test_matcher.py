"""The matcher on plain values (FakeLibrary): every trap, and properties against a reference."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import FakeLibrary
from immich_sync.domain.asset import Asset
from immich_sync.domain.library import CaptureTime, LibraryFile, LibraryIndex
from immich_sync.domain.match import Check, Confidence, DateEvidence, Evidence, MatchResult, Status
from immich_sync.domain.matcher import (
    LibraryRoots,
    MatchPolicy,
    VerifyOutcome,
    compare_dates,
    match_asset,
    needs_rematch,
    verify_match,
)

TAKEN = datetime(2024, 7, 14, 10, 30, 15)


def asset(
    name="IMG_0001.JPG", *, taken=TAKEN, size=1000, checksum="sum-a", library_id=None, original_path=None
) -> Asset:
    return Asset.from_api(
        {
            "id": "a1",
            "originalFileName": name,
            "originalPath": original_path or f"/data/upload/{name}",
            "localDateTime": taken.strftime("%Y-%m-%dT%H:%M:%S.000Z") if taken else None,
            "checksum": checksum,
            "libraryId": library_id,
            "updatedAt": "2026-01-01T00:00:00Z",
            "exifInfo": {"fileSizeInByte": size} if size is not None else {},
        }
    )


def run(a: Asset, lib: FakeLibrary, **policy):
    """What a run decides: the matcher, then with verify=True the hash check `--verify` adds."""
    chosen = MatchPolicy(**policy)
    result = match_asset(a, lib.index(), lib, chosen)
    return verify_match(result, a, lib)[0] if chosen.verify else result


CASES = [
    pytest.param(
        asset(),
        [("2024/IMG_0001.JPG", 1000, TAKEN, "sum-a")],
        Status.FOUND,
        "/lib/2024/IMG_0001.JPG",
        "filename",
        Confidence.HIGH,
        id="unique-name-date-size",
    ),
    pytest.param(
        asset(),
        [("2024/img_0001.jpg", 1000, TAKEN, None)],
        Status.FOUND,
        "/lib/2024/img_0001.jpg",
        "filename",
        Confidence.HIGH,
        id="case-differs",
    ),
    pytest.param(
        asset("Cre\u0301mieux.jpg"),
        [("a/Crémieux.JPG", 1000, TAKEN, None)],
        Status.FOUND,
        "/lib/a/Crémieux.JPG",
        "filename",
        Confidence.HIGH,
        id="nfd-name-from-macos",
    ),
    pytest.param(
        asset(),
        [("2019/IMG_0001.JPG", 5, datetime(2019, 1, 1), None)],
        Status.FOUND,
        "/lib/2019/IMG_0001.JPG",
        "filename",
        Confidence.LOW,
        id="unique-name-date-size-disagree",
    ),
    pytest.param(
        asset(),
        [("x/IMG_0001.JPG", 1000, TAKEN + timedelta(hours=2), None)],
        Status.FOUND,
        "/lib/x/IMG_0001.JPG",
        "filename",
        Confidence.MEDIUM,
        id="zone-slip-is-weaker-not-different",
    ),
    pytest.param(
        asset(),
        [("x/IMG_0001.JPG", 1200, TAKEN, None)],
        Status.FOUND,
        "/lib/x/IMG_0001.JPG",
        "filename",
        Confidence.MEDIUM,
        id="edited-copy-size-differs",
    ),
    pytest.param(
        asset(),
        [
            ("2019/IMG_0001.JPG", 1000, datetime(2019, 1, 1), None),
            ("2024/IMG_0001.JPG", 1001, TAKEN, None),
            ("2023/IMG_0001.JPG", 1002, datetime(2023, 1, 1), None),
        ],
        Status.FOUND,
        "/lib/2024/IMG_0001.JPG",
        "filename+exif_date",
        Confidence.MEDIUM,
        id="same-name-three-folders-decided-by-date",
    ),
    pytest.param(
        asset(),
        [("a/IMG_0001.JPG", 1000, TAKEN, None), ("b/IMG_0001.JPG", 999, TAKEN, None)],
        Status.FOUND,
        "/lib/a/IMG_0001.JPG",
        "filename+size",
        Confidence.HIGH,
        id="same-date-decided-by-size",
    ),
    pytest.param(
        asset(),
        [("a/IMG_0001.JPG", 1000, TAKEN, "other"), ("b/IMG_0001.JPG", 1000, TAKEN, "sum-a")],
        Status.FOUND,
        "/lib/b/IMG_0001.JPG",
        "filename+checksum",
        Confidence.EXACT,
        id="decided-by-sha1",
    ),
    pytest.param(
        asset(),
        [("a/IMG_0001.JPG", 1000, TAKEN, "x"), ("b/IMG_0001.JPG", 1000, TAKEN, "y")],
        Status.AMBIGUOUS,
        None,
        "filename",
        Confidence.NONE,
        id="nothing-decides-ambiguous",
    ),
    pytest.param(
        asset(),
        [("a/IMG_0001.JPG", 1000, TAKEN, "sum-a"), ("b/IMG_0001.JPG", 1000, TAKEN, "sum-a")],
        Status.AMBIGUOUS,
        None,
        "filename",
        Confidence.NONE,
        id="identical-copies-ambiguous",
    ),
    pytest.param(
        asset(),
        [("renamed/holiday.jpg", 1000, TAKEN, "sum-a"), ("other.jpg", 1000, TAKEN, "zz")],
        Status.FOUND,
        "/lib/renamed/holiday.jpg",
        "checksum",
        Confidence.EXACT,
        id="renamed-copy-by-checksum",
    ),
    pytest.param(
        asset(),
        [("other.jpg", 5, TAKEN, "zz")],
        Status.NOT_FOUND,
        None,
        "filename+checksum",
        Confidence.NONE,
        id="not-found",
    ),
    pytest.param(
        asset("../IMG_0001.JPG"),
        [("IMG_0001.JPG", 1000, TAKEN, "x")],
        Status.NOT_FOUND,
        None,
        "filename+checksum",
        Confidence.NONE,
        id="server-name-with-dotdot",
    ),
    pytest.param(
        asset("a/IMG_0001.JPG"),
        [("a/IMG_0001.JPG", 1000, TAKEN, "x")],
        Status.NOT_FOUND,
        None,
        "filename+checksum",
        Confidence.NONE,
        id="server-name-with-slash",
    ),
    pytest.param(
        asset("PXL_20231006_063851485", original_path="/up/PXL_20231006_063851485.jpg"),
        [("p/PXL_20231006_063851485.jpg", 1000, TAKEN, None)],
        Status.FOUND,
        "/lib/p/PXL_20231006_063851485.jpg",
        "filename",
        Confidence.HIGH,
        id="old-server-name-no-ext",
    ),
    pytest.param(
        asset("RIFF.webp", library_id="lib1", original_path="/mnt/photos/trip/RIFF.webp", checksum="pathhash"),
        [("trip/RIFF.webp", 1, None, None), ("other/RIFF.webp", 1000, TAKEN, None)],
        Status.FOUND,
        "/lib/trip/RIFF.webp",
        "path",
        Confidence.EXACT,
        id="external-library-path-tail",
    ),
    pytest.param(
        asset("RIFF.webp", library_id="lib1", original_path="/mnt/photos/trip/RIFF.webp", checksum="pathhash"),
        [("zzz/RIFF.webp", 1000, TAKEN, "pathhash")],
        Status.FOUND,
        "/lib/zzz/RIFF.webp",
        "filename",
        Confidence.HIGH,
        id="external-checksum-never-trusted",
    ),
    pytest.param(
        asset(taken=None, size=None),
        [("IMG_0001.JPG", 1000, None, None)],
        Status.FOUND,
        "/lib/IMG_0001.JPG",
        "filename",
        Confidence.LOW,
        id="nothing-to-compare",
    ),
]


@pytest.mark.parametrize("the_asset,files,status,path,method,confidence", CASES)
def test_match_table(the_asset, files, status, path, method, confidence):
    lib = FakeLibrary()
    for rel, size, taken, digest in files:
        lib.add(rel, size, taken, digest)
    result = run(the_asset, lib)
    assert (result.status, result.path, result.method, result.confidence) == (status, path, method, confidence)
    if status is Status.AMBIGUOUS:
        assert len(result.candidates) == len(files) and all(c.startswith("/lib/") for c in result.candidates)


def test_a_unique_candidate_is_not_hashed_unless_verify():
    lib = FakeLibrary()
    lib.add("IMG_0001.JPG", 1000, TAKEN, "sum-a")
    assert run(asset(), lib).confidence is Confidence.HIGH and lib.hash_reads == []
    verified = run(asset(), lib, verify=True)
    assert verified.confidence is Confidence.EXACT and verified.evidence.checksum is Check.EQUAL
    lib2 = FakeLibrary()
    lib2.add("IMG_0001.JPG", 1000, TAKEN, "edited")
    assert run(asset(), lib2, verify=True).confidence is Confidence.LOW  # demoted


def test_files_are_read_lazily():
    lib = FakeLibrary()
    lib.add("a/IMG_0001.JPG", 1000, TAKEN, "sum-a")
    lib.add("a/IMG_0002.JPG", 1000, TAKEN, "sum-a")
    run(asset(), lib)
    assert lib.date_reads == ["/lib/a/IMG_0001.JPG"]  # only the candidate, once


@pytest.mark.parametrize(
    "delta,expected",
    [
        pytest.param(timedelta(0), DateEvidence.EQUAL, id="equal"),
        pytest.param(timedelta(microseconds=900_000), DateEvidence.EQUAL, id="same-second"),
        pytest.param(timedelta(seconds=3), DateEvidence.NEAR, id="three-seconds"),
        pytest.param(timedelta(hours=-5), DateEvidence.NEAR, id="zone-slip-minus-5h"),
        pytest.param(timedelta(hours=5, minutes=45), DateEvidence.NEAR, id="nepal-offset"),
        pytest.param(timedelta(minutes=7), DateEvidence.DIFFERENT, id="seven-minutes"),
        pytest.param(timedelta(days=2), DateEvidence.DIFFERENT, id="two-days"),
    ],
)
def test_compare_dates(delta, expected):
    base = TAKEN.replace(microsecond=0)
    assert compare_dates(CaptureTime(base + delta), base, MatchPolicy()) is expected


def test_placeholder_date_9999_is_unknown():
    assert compare_dates(CaptureTime(TAKEN), datetime(9999, 12, 31), MatchPolicy()) is DateEvidence.UNKNOWN


def test_rematch_rules():
    lib = FakeLibrary()
    lib.add("IMG_0001.JPG", 1000, TAKEN)
    index = lib.index()
    result = run(asset(), lib)
    assert not needs_rematch(result.summary(), index)
    assert needs_rematch(None, index)
    changed = FakeLibrary()
    changed.add("IMG_0001.JPG", 2000, TAKEN)
    assert needs_rematch(result.summary(), changed.index())  # size changed
    assert needs_rematch(result.summary(), FakeLibrary().index())  # file gone
    ambiguous = FakeLibrary()
    ambiguous.add("a/IMG_0001.JPG", 1000, TAKEN)
    ambiguous.add("b/IMG_0001.JPG", 1000, TAKEN)
    assert needs_rematch(run(asset(), ambiguous).summary(), ambiguous.index())


# --- properties
FILE = st.tuples(
    st.sampled_from(["a", "b", "c", "d/e"]),
    st.sampled_from(["IMG_0001.JPG", "img_0001.jpg", "DSC_1.NEF"]),
    st.integers(900, 1002),
    st.sampled_from([TAKEN, TAKEN + timedelta(hours=1), None]),
    st.sampled_from(["sum-a", "sum-b", None]),
)


def library_from(files) -> FakeLibrary:
    lib = FakeLibrary()
    seen = set()
    for folder, name, size, taken, digest in files:
        rel = f"{folder}/{name}"
        if rel not in seen:
            seen.add(rel)
            lib.add(rel, size, taken, digest)
    return lib


def reference(a: Asset, lib: FakeLibrary):
    """Slow and obvious: filter step by step over a brute-force list."""
    from immich_sync.domain.names import normalise_name

    files = sorted(
        p
        for p, (rel, *_rest) in lib.files.items()
        if normalise_name(rel.rsplit("/", 1)[-1]) == normalise_name(a.file_name)
    )
    if not files:
        same = [p for p, (_, size, _, digest) in lib.files.items() if size == a.file_size and digest == a.checksum]
        return (Status.FOUND, same[0]) if len(same) == 1 else (Status.AMBIGUOUS if same else Status.NOT_FOUND, None)
    if len(files) == 1:
        return Status.FOUND, files[0]
    for keep in (
        lambda p: lib.files[p][2] == a.local_date_time,
        lambda p: lib.files[p][1] == a.file_size,
        lambda p: lib.files[p][3] == a.checksum,
    ):
        kept = [p for p in files if keep(p)]
        if len(files) > 1 and kept:
            files = kept
    return (Status.FOUND, files[0]) if len(files) == 1 else (Status.AMBIGUOUS, None)


@settings(max_examples=300, deadline=None)
@given(st.lists(FILE, max_size=8))
def test_agrees_with_the_reference(files):
    lib = library_from(files)
    a = asset()
    result = run(a, lib)
    assert (result.status, result.path) == reference(a, lib)


@settings(max_examples=200, deadline=None)
@given(st.lists(FILE, max_size=8), st.randoms())
def test_result_does_not_depend_on_file_order(files, rnd):
    lib = library_from(files)
    items = list(lib.files.items())
    rnd.shuffle(items)
    shuffled = FakeLibrary(files=dict(items))
    assert run(asset(), lib) == run(asset(), shuffled)


@settings(max_examples=200, deadline=None)
@given(st.lists(FILE, max_size=6), st.sampled_from(["x", "y/z"]))
def test_an_identical_copy_is_always_found_with_top_confidence(files, folder):
    lib = library_from([f for f in files if f[1].lower() != "img_0001.jpg"])
    lib.add(f"{folder}/IMG_0001.JPG", 1000, TAKEN, "sum-a")
    result = run(asset(), lib, verify=True)
    assert result.status is Status.FOUND and result.path == f"/lib/{folder}/IMG_0001.JPG"
    assert result.confidence is Confidence.EXACT
    assert run(asset(), lib).confidence >= Confidence.HIGH


@settings(max_examples=200, deadline=None)
@given(
    st.lists(FILE, max_size=6),
    st.lists(st.tuples(st.text("xyz", min_size=1, max_size=4), st.integers(1, 2000)), max_size=5),
)
def test_unrelated_files_never_change_a_found_match(files, extra):
    lib = library_from(files)
    before = run(asset(), lib)
    for n, (stem, size) in enumerate(extra):
        lib.add(f"extra{n}/{stem}.png", size, TAKEN, "other")
    after = run(asset(), lib)
    if before.status is Status.FOUND and before.method != "checksum":
        assert (after.status, after.path) == (before.status, before.path)


def test_library_index_is_sorted_by_path():
    index = LibraryIndex.from_files(
        "/lib", [LibraryFile("/lib/b/x.jpg", "b/x.jpg", 1), LibraryFile("/lib/a/X.JPG", "a/X.JPG", 2)]
    )
    assert [f.path for f in index.named("x.jpg")] == ["/lib/a/X.JPG", "/lib/b/x.jpg"]


# --- issue 14: right, or honestly unsure
OTHER_YEAR = datetime(2023, 7, 14, 10, 30, 15)


@pytest.mark.parametrize(
    "files,status,path,method,confidence,rejected",
    [
        pytest.param(
            [("2023/07/IMG_0001.JPG", 1200, OTHER_YEAR, "sum-2023")],
            Status.NOT_FOUND,
            None,
            "filename+checksum+rejected",
            Confidence.NONE,
            ["/lib/2023/07/IMG_0001.JPG"],
            id="outage-the-only-same-named-file-has-another-date-and-other-bytes",
        ),
        pytest.param(
            [("2023/07/IMG_0001.JPG", 1000, OTHER_YEAR, "sum-a")],
            Status.FOUND,
            "/lib/2023/07/IMG_0001.JPG",
            "filename+checksum",
            Confidence.EXACT,
            [],
            id="date-edited-in-immich-same-bytes-found-exact",
        ),
        pytest.param(
            [("2023/07/IMG_0001.JPG", 1200, OTHER_YEAR, None)],
            Status.FOUND,
            "/lib/2023/07/IMG_0001.JPG",
            "filename",
            Confidence.LOW,
            [],
            id="date-differs-bytes-unreadable-stays-low",
        ),
        pytest.param(
            [("2022/IMG_0001.JPG", 1100, datetime(2022, 1, 1), "x"), ("2023/IMG_0001.JPG", 1200, OTHER_YEAR, "y")],
            Status.NOT_FOUND,
            None,
            "filename+checksum+rejected",
            Confidence.NONE,
            ["/lib/2022/IMG_0001.JPG", "/lib/2023/IMG_0001.JPG"],
            id="every-candidate-contradicted-is-not-found-not-ambiguous",
        ),
        pytest.param(
            [("2022/IMG_0001.JPG", 1100, datetime(2022, 1, 1), "x"), ("2023/IMG_0001.JPG", 1000, OTHER_YEAR, "sum-a")],
            Status.FOUND,
            "/lib/2023/IMG_0001.JPG",
            "filename+checksum",
            Confidence.EXACT,
            ["/lib/2022/IMG_0001.JPG"],
            id="dates-all-differ-the-bytes-pick-one",
        ),
        pytest.param(
            [("2022/IMG_0001.JPG", 1100, datetime(2022, 1, 1), "x"), ("renamed/holiday.jpg", 1000, None, "sum-a")],
            Status.FOUND,
            "/lib/renamed/holiday.jpg",
            "checksum+rejected",
            Confidence.EXACT,
            ["/lib/2022/IMG_0001.JPG"],
            id="contradicted-name-then-the-renamed-copy",
        ),
        pytest.param(
            [
                ("a/IMG_0001.JPG", 1000, TAKEN, "x"),
                ("b/IMG_0001.JPG", 1000, TAKEN, "y"),
                ("c/IMG_0001.JPG", 1300, OTHER_YEAR, "z"),
            ],
            Status.AMBIGUOUS,
            None,
            "filename+exif_date",
            Confidence.NONE,
            [],
            id="ambiguous-means-two-still-possible",
        ),
    ],
)
def test_contradicted_candidates(files, status, path, method, confidence, rejected):
    lib = FakeLibrary()
    for rel, size, taken, digest in files:
        lib.add(rel, size, taken, digest)
    result = run(asset(), lib)
    assert (result.status, result.path, result.method, result.confidence) == (status, path, method, confidence)
    assert [r.path for r in result.rejected] == rejected
    for r in result.rejected:
        assert r.evidence.date is DateEvidence.DIFFERENT and r.evidence.checksum is Check.DIFFERENT
    if status is Status.AMBIGUOUS:
        assert len(result.candidates) >= 2


def test_a_file_whose_date_agrees_is_never_hashed():
    lib = FakeLibrary()
    lib.add("2024/IMG_0001.JPG", 1000, TAKEN, "sum-a")
    lib.add("2023/IMG_0001.JPG", 1200, OTHER_YEAR, "sum-b")
    assert run(asset(), lib).path == "/lib/2024/IMG_0001.JPG" and lib.hash_reads == []


def test_external_asset_contradicted_by_date_and_size_is_rejected():
    ext = asset("IMG_7.JPG", library_id="lib1", original_path="/mnt/x/IMG_7.JPG", checksum="pathhash")
    lib = FakeLibrary()
    lib.add("elsewhere/IMG_7.JPG", 5000, OTHER_YEAR, "zz")
    result = run(ext, lib)
    assert result.status is Status.NOT_FOUND and [r.path for r in result.rejected] == ["/lib/elsewhere/IMG_7.JPG"]
    assert lib.hash_reads == []  # a path checksum is never compared with a file's bytes


def test_is_external_follows_the_servers_flag_where_it_is_sent():
    """v1.9x upload libraries: an uploaded asset carries a libraryId with isExternal false."""
    raw = {"id": "u", "originalFileName": "a.jpg", "libraryId": "upload-lib", "isExternal": False, "checksum": "c"}
    assert not Asset.from_api(raw).is_external
    assert Asset.from_api({**raw, "isExternal": True}).is_external
    assert Asset.from_api({k: v for k, v in raw.items() if k != "isExternal"}).is_external


# --- external libraries mirrored under another root
def external(path: str) -> Asset:
    return asset(path.rsplit("/", 1)[-1], library_id="lib1", original_path=path, checksum="pathhash")


def test_mirrored_external_library_is_matched_by_the_longest_common_tail():
    lib = FakeLibrary()
    lib.add("nas/photos/trip/IMG_5195.HEIC", 1000, TAKEN)
    lib.add("nas/backup/IMG_5195.HEIC", 1000, TAKEN)
    result = run(external("/mnt/photos/trip/IMG_5195.HEIC"), lib)
    assert (result.status, result.path, result.method, result.confidence) == (
        Status.FOUND,
        "/lib/nas/photos/trip/IMG_5195.HEIC",
        "path",
        Confidence.EXACT,
    )


def test_a_tie_of_tails_decides_nothing_by_path():
    lib = FakeLibrary()
    lib.add("nas/trip/x.jpg", 1000, TAKEN)
    lib.add("old/trip/x.jpg", 1000, TAKEN)
    result = run(external("/mnt/photos/trip/x.jpg"), lib)
    assert result.status is Status.AMBIGUOUS and result.method != "path"


def test_learned_roots_resolve_files_at_the_import_root_and_colliding_tails():
    roots = LibraryRoots.learn(
        [("/mnt/photos/trip/a.jpg", "nas/mirror/trip/a.jpg"), ("/mnt/photos/2020/b.jpg", "nas/mirror/2020/b.jpg")]
    )
    assert roots.pairs == ((("mnt", "photos"), ("nas", "mirror")),)
    lib = FakeLibrary()
    lib.add("nas/mirror/root.jpg", 1000, TAKEN)
    lib.add("old/root.jpg", 1000, TAKEN)
    lib.add("nas/mirror/trip/x.jpg", 1000, TAKEN)
    lib.add("old/trip/x.jpg", 1000, TAKEN)
    for path, expected in (
        ("/mnt/photos/root.jpg", "/lib/nas/mirror/root.jpg"),
        ("/mnt/photos/trip/x.jpg", "/lib/nas/mirror/trip/x.jpg"),
    ):
        without = run(external(path), lib)
        assert without.status is not Status.FOUND or without.method != "path"
        result = match_asset(external(path), lib.index(), lib, roots=roots)
        assert (result.status, result.path, result.method) == (Status.FOUND, expected, "path+root")


def test_a_root_seen_with_two_local_prefixes_is_not_learned():
    roots = LibraryRoots.learn([("/mnt/p/a/1.jpg", "x/a/1.jpg"), ("/mnt/p/b/2.jpg", "y/b/2.jpg")])
    assert roots.pairs == ()


# --- --verify
def test_verify_confirms_demotes_or_rejects():
    lib = FakeLibrary()
    lib.add("2024/IMG_0001.JPG", 1000, TAKEN, "sum-a")
    found = run(asset(), lib)
    checked, outcome = verify_match(found, asset(), lib)
    assert outcome is VerifyOutcome.CONFIRMED and checked.confidence is Confidence.EXACT
    lib.files["/lib/2024/IMG_0001.JPG"] = ("2024/IMG_0001.JPG", 1000, TAKEN, "edited")
    checked, outcome = verify_match(found, asset(), lib)
    assert outcome is VerifyOutcome.DEMOTED and checked.confidence is Confidence.LOW
    wrong_date = MatchResult.found(
        "/lib/2024/IMG_0001.JPG",
        "filename",
        Confidence.MEDIUM,
        Evidence(name=True, date=DateEvidence.DIFFERENT, size=Check.EQUAL),
    )
    checked, outcome = verify_match(wrong_date, asset(), lib)
    assert outcome is VerifyOutcome.DEMOTED and checked.status is Status.NOT_FOUND
    assert [r.path for r in checked.rejected] == ["/lib/2024/IMG_0001.JPG"]
    ext = external("/mnt/photos/trip/RIFF.webp")
    by_path = MatchResult.found("/lib/trip/RIFF.webp", "path", Confidence.EXACT, Evidence(path=True))
    assert verify_match(by_path, ext, lib)[1] is VerifyOutcome.CONFIRMED


# --- the outage: a match made while part of TARGET was unreadable
def test_matches_made_with_part_of_target_unreadable_are_provisional_and_kept_files_are_not_gone():
    lib = FakeLibrary()
    lib.add("2023/07/IMG_0001.JPG", 1200, OTHER_YEAR, "sum-2023")
    index = LibraryIndex.from_files("/lib", lib.index().by_path.values(), ["/lib/2024/07"])
    result = match_asset(asset(), index, lib)
    assert result.provisional and result.status is Status.NOT_FOUND
    assert needs_rematch(result.summary(), index)
    kept = MatchResult.found(
        "/lib/2024/07/IMG_0001.JPG", "filename", Confidence.HIGH, Evidence(name=True), file_size=1000
    )
    assert not needs_rematch(kept.summary(), index)  # its folder could not be read: not gone
    assert needs_rematch(kept.summary(), lib.index())  # read, and the file is not there: gone


# --- properties
CONTRADICTED = st.tuples(st.sampled_from(["p", "q/r"]), st.integers(1, 3000))


@settings(max_examples=200, deadline=None)
@given(st.lists(FILE, max_size=6), st.lists(CONTRADICTED, min_size=1, max_size=3))
def test_a_contradicted_candidate_never_turns_not_found_into_found(files, extra):
    lib = library_from(files)
    before = run(asset(), lib)
    for n, (folder, size) in enumerate(extra):
        lib.add(f"{folder}{n}/IMG_0001.JPG", size, OTHER_YEAR, f"other-{n}")
    after = run(asset(), lib)
    if before.status is Status.NOT_FOUND:
        assert after.status is Status.NOT_FOUND
    if before.status is Status.FOUND:
        assert after.path == before.path
