"""Issue 15 (in part): the words a user reads say what they count."""

from __future__ import annotations

from collections import Counter

import pytest

from immich_sync import load_cache
from immich_sync.domain.match import Confidence, Status
from immich_sync.entrypoints.cache_cli import summary_text
from immich_sync.errors import CacheFileError
from immich_sync.services.extract import ExtractResult


def test_the_summary_counts_decisions_and_lists_methods_of_found_assets_only():
    result = ExtractResult(
        fetched=10,
        added=10,
        matched=10,
        by_status=Counter({"found": 8, "ambiguous": 1, "not_found": 1}),
        by_method=Counter({"filename": 7, "filename+exif_date": 1}),
        by_confidence=Counter({"high": 8}),
        files_scanned=1,
        albums=1,
        tags=2,
        saved=True,
        server_version="3.1.0",
    )
    lines = summary_text(result, "/c.json").splitlines()
    assert lines[0].startswith("immich-cache: 10 assets from Immich v3.1.0 in ")
    assert (
        "  matches:    ambiguous 1, found 8, not found 1 (10 decided this run, 0 of them unchanged assets "
        "matched again; 0 kept)" in lines
    )
    assert "  methods:    filename 7, filename+exif_date 1 (found assets)" in lines
    assert "  library:    1 file scanned; 1 album, 2 tags" in lines
    assert "  saved to:   /c.json" in lines
    assert all(line[:14].rstrip().endswith(":") and line[14] != " " for line in lines[1:])  # aligned


def test_load_cache_of_a_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(CacheFileError, match=r"missing\.json: no cache file there"):
        load_cache(missing)
    assert len(load_cache(missing, missing_ok=True)) == 0 and not missing.exists()


def test_statuses_and_confidences_print_as_their_words():
    assert f"{Status.FOUND} {Confidence.HIGH}" == "found high" and str(Confidence.EXACT) == "exact"
    assert f"{Confidence.HIGH:d}" == "3" and Confidence.HIGH > Confidence.MEDIUM
