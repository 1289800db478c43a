"""Issue 17: the comparison of Immich's values with the file's, as Immich stores them."""

from __future__ import annotations

from datetime import datetime

import pytest

from immich_sync.domain.diff import differences

RAW = {
    "localDateTime": "2024-07-14T21:05:03.000Z",  # wall-clock time, written as if UTC
    "exifInfo": {
        "dateTimeOriginal": "2024-07-14T19:05:03.000+00:00",  # the instant
        "timeZone": "Europe/Paris",
        "latitude": 48.8584,
        "longitude": 2.2945,
        "description": "",
        "rating": 0,
    },
    "people": [{"name": "Ann"}, {"name": ""}],
}


def section(**fields):
    return {
        "file": {"path": "/lib/a.jpg", "size": 1, "mtime": "x"},
        **{k: {"value": v, "source": "exif"} for k, v in fields.items()},
    }


@pytest.mark.parametrize(
    "fields,expected",
    [
        pytest.param({"dateTimeOriginal": "2024-07-14T21:05:03+02:00"}, [], id="same-instant-with-offset"),
        pytest.param({"dateTimeOriginal": "2024-07-14T21:05:03"}, [], id="same-wall-clock-without-offset"),
        pytest.param(
            {"dateTimeOriginal": "2024-07-14T21:05:03+00:00"}, ["dateTimeOriginal"], id="same-wall-other-instant"
        ),
        pytest.param({"dateTimeOriginal": "2024-07-14T21:05:04"}, ["dateTimeOriginal"], id="a-second-off"),
        pytest.param({"latitude": 48.858405, "longitude": 2.294495}, [], id="within-1e-5"),
        pytest.param({"latitude": 48.8585, "longitude": 2.2945}, ["latitude"], id="beyond-1e-5"),
        pytest.param({"description": "  "}, [], id="empty-is-missing"),
        pytest.param({"description": "Tower"}, ["description"], id="immich-has-none"),
        pytest.param({"rating": 3}, ["rating"], id="rating-0-is-none"),
        pytest.param({"tags": ["B/C", "A"]}, [], id="tags-as-sets"),
        pytest.param({"tags": ["A"]}, ["tags"], id="a-tag-missing-in-the-file"),
        pytest.param({"people": ["Ann"]}, [], id="people-names"),
        pytest.param({"people": ["Ann", "Bob"]}, ["people"], id="a-person-more"),
    ],
)
def test_what_counts_as_a_difference(fields, expected):
    found = differences("id-1", RAW, section(**fields), ["A", "B/C"], fields=tuple(fields))
    assert [d.field for d in found] == expected
    for d in found:
        assert (d.asset, d.path, d.source) == ("id-1", "/lib/a.jpg", "exif")


def test_a_difference_carries_both_values_and_nothing_without_a_file_section():
    (found,) = differences("id-1", RAW, section(description="Tower"), [], fields=("description",))
    assert found.as_json() == {
        "asset": "id-1",
        "path": "/lib/a.jpg",
        "field": "description",
        "immich": None,
        "file": "Tower",
        "source": "exif",
    }
    assert differences("id-1", RAW, None, []) == []
    # a value Immich has and the file lacks is a difference too (the file misses it)
    missing = differences("id-1", RAW, section(), ["A"])
    assert [(d.field, d.file) for d in missing] == [
        ("dateTimeOriginal", None),
        ("latitude", None),
        ("longitude", None),
        ("tags", None),
        ("people", None),
    ]
    assert datetime.fromisoformat(RAW["exifInfo"]["dateTimeOriginal"])  # the fixture's dates are real ISO
