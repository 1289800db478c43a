"""Video capture times as Immich computes them, on movies built atom by atom (factory.movie_bytes).

Confirmed on a real v3.1.0 server (FACTS.md): a MOV whose mvhd time is 06:38 UTC and whose
Keys:CreationDate is 2023:07:14 08:38:00+02:00 gets localDateTime 08:38. A reader taking mvhd
alone is two hours off for every iPhone video, and two IMG_0001.MOV cannot be told apart."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime

import pytest

from fakes import FakeLibrary
from immich_sync.adapters.exif_reader import read_capture_time
from immich_sync.domain.asset import Asset
from immich_sync.domain.match import DateEvidence, Status
from immich_sync.domain.matcher import MatchPolicy, compare_dates, match_asset
from immich_sync.testing.factory import movie_bytes, qt_keys_meta, qt_mvhd, qt_udta_day

MVHD_UTC = datetime(2023, 7, 14, 6, 38, 0)
IPHONE = "2023-07-14T08:38:00+0200"  # how iPhones write com.apple.quicktime.creationdate
LOCAL = datetime(2023, 7, 14, 8, 38, 0)
CREATION = "com.apple.quicktime.creationdate"


def read(tmp_path, data: bytes, name: str = "IMG_0001.MOV"):
    path = tmp_path / name
    path.write_bytes(data)
    return read_capture_time(str(path))


@pytest.mark.parametrize(
    "data,local,offset,source",
    [
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE})),
            LOCAL,
            120,
            "QuickTime:CreationDate",
            id="iphone-mov-keys-before-mvhd",
        ),
        pytest.param(
            movie_bytes(qt_keys_meta({"com.apple.quicktime.make": "Apple", CREATION: IPHONE}), qt_mvhd(MVHD_UTC)),
            LOCAL,
            120,
            "QuickTime:CreationDate",
            id="iphone-keys-second-of-several",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE}, full_box=True), brand=b"mp42"),
            LOCAL,
            120,
            "QuickTime:CreationDate",
            id="mp4-keys-in-an-iso-meta-box",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: "2023-07-14T01:38:00-05:00"})),
            datetime(2023, 7, 14, 1, 38),
            -300,
            "QuickTime:CreationDate",
            id="negative-offset-with-colon",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: "2023-07-14T08:38:00"})),
            LOCAL,
            None,
            "QuickTime:CreationDate",
            id="creationdate-without-offset",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC)),
            MVHD_UTC,
            0,
            "QuickTime:CreateDate",
            id="mvhd-only-is-utc",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({"com.apple.quicktime.make": "Apple"})),
            MVHD_UTC,
            0,
            "QuickTime:CreateDate",
            id="keys-without-a-date-fall-back-to-mvhd",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_udta_day(IPHONE)),
            LOCAL,
            120,
            "QuickTime:ContentCreateDate",
            id="udta-day-quicktime-text",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_udta_day("2023-07-14T06:38:00Z", itunes=True), brand=b"mp42"),
            MVHD_UTC,
            0,
            "QuickTime:ContentCreateDate",
            id="udta-meta-ilst-day-utc-android-mp4",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_udta_day("2020-01-01T00:00:00+0100"), qt_keys_meta({CREATION: IPHONE})),
            LOCAL,
            120,
            "QuickTime:CreationDate",
            id="creationdate-wins-over-day",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE}), mdat_first=True, padding=200_000),
            LOCAL,
            120,
            "QuickTime:CreationDate",
            id="moov-after-a-large-mdat",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE}), brand=b""),
            LOCAL,
            120,
            "QuickTime:CreationDate",
            id="old-quicktime-without-ftyp",
        ),
        pytest.param(
            movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: "not a date"})),
            MVHD_UTC,
            0,
            "QuickTime:CreateDate",
            id="unparseable-creationdate-falls-back",
        ),
    ],
)
def test_video_capture_time(tmp_path, data, local, offset, source):
    found = read(tmp_path, data)
    assert found is not None
    assert (found.local, found.offset_minutes, found.source) == (local, offset, source)


def test_a_truncated_keys_box_never_raises(tmp_path):
    data = movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE}))
    cut = data.index(b"keys") + 12
    broken = data[:cut] + b"\xff\xff\xff\xff" + data[cut + 4 :]  # an entry count far past the box
    found = read(tmp_path, broken)
    assert found is None or found.local in (LOCAL, MVHD_UTC)
    cut_short = read(tmp_path, data[: data.index(b"moov") + 40])  # the file ends inside moov
    assert cut_short is None or cut_short.local == MVHD_UTC


def video_asset(local: datetime, asset_id: str) -> Asset:
    return Asset.from_api(
        {
            "id": asset_id,
            "originalFileName": "IMG_0001.MOV",
            "originalPath": "/upload/IMG_0001.MOV",
            "localDateTime": local.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "checksum": f"sum-{asset_id}",
            "type": "VIDEO",
            "exifInfo": {"fileSizeInByte": 1000},
            "updatedAt": "2026-01-01T00:00:00.000Z",
        }
    )


def test_two_iphone_videos_with_one_name_are_told_apart_by_their_local_time(tmp_path):
    """IMG_0001.MOV returns every 10,000 shots: the date read as Immich reads it decides."""
    later = datetime(2024, 7, 14, 8, 38, 0)  # the same wall time a year on
    first = read(tmp_path, movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE})), "a.mov")
    second = read(
        tmp_path,
        movie_bytes(qt_mvhd(datetime(2024, 7, 14, 6, 38)), qt_keys_meta({CREATION: "2024-07-14T08:38:00+0200"})),
        "b.mov",
    )
    assert compare_dates(first, LOCAL, MatchPolicy()) is DateEvidence.EQUAL
    assert compare_dates(second, later, MatchPolicy()) is DateEvidence.EQUAL
    lib = FakeLibrary()
    lib.add("2023/IMG_0001.MOV", 1000, first.local)
    lib.add("2024/IMG_0001.MOV", 1000, second.local)
    for local, expected in ((LOCAL, "/lib/2023/IMG_0001.MOV"), (later, "/lib/2024/IMG_0001.MOV")):
        result = match_asset(video_asset(local, expected[5:9]), lib.index(), lib)
        assert (result.status, result.path, result.method) == (Status.FOUND, expected, "filename+exif_date")


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (.ci/run installs it)")
def test_exiftool_reads_the_built_movies_as_this_reader_does(tmp_path):
    """The atoms these tests build are what exiftool (the library Immich reads metadata with)
    decodes as Keys:CreationDate, ©day and mvhd CreateDate."""
    cases = {
        "keys.mov": movie_bytes(qt_mvhd(MVHD_UTC), qt_keys_meta({CREATION: IPHONE})),
        "day.mov": movie_bytes(qt_mvhd(MVHD_UTC), qt_udta_day(IPHONE)),
        "ilst.mp4": movie_bytes(qt_mvhd(MVHD_UTC), qt_udta_day("2023-07-14T06:38:00Z", itunes=True), brand=b"mp42"),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-CreationDate", "-ContentCreateDate", "-CreateDate", *sorted(cases)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = {entry["SourceFile"]: entry for entry in json.loads(out.stdout)}
    assert seen["keys.mov"]["Keys:CreationDate"] == "2023:07:14 08:38:00+02:00"
    assert seen["day.mov"]["UserData:ContentCreateDate"] == "2023:07:14 08:38:00+02:00"
    assert seen["ilst.mp4"]["ItemList:ContentCreateDate"] == "2023:07:14 06:38:00Z"
    for entry in seen.values():
        assert entry["QuickTime:CreateDate"] == "2023:07:14 06:38:00"  # mvhd, UTC
    ours = {name: read_capture_time(str(tmp_path / name)) for name in cases}
    assert ours["keys.mov"].local == ours["day.mov"].local == LOCAL and ours["ilst.mp4"].local == MVHD_UTC
