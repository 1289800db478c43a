"""Issue 14 end to end: the real `immich-cache` command against the fake server over HTTP, with
real files built here (JPEGs with EXIF dates, movies built atom by atom)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from conftest import command
from immich_sync.testing.factory import (
    jpeg_bytes,
    make_asset,
    movie_bytes,
    qt_keys_meta,
    qt_mvhd,
    sha1_b64,
)

UPDATED = datetime(2026, 1, 1, tzinfo=UTC)


def cli(tmp_path, env, *args):
    return command(tmp_path, env, *args)


def nodes(tmp_path) -> dict:
    return json.loads((tmp_path / "log" / "cache_Photos.json").read_text())["assets"]


def write(root, relative: str, data: bytes) -> bytes:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def env_for(fake_server):
    def make(version=(3, 1, 0)):
        fake = fake_server(version)
        env = {**os.environ, "IMMICH_INSTANCE_URL": fake.url, "IMMICH_API_KEY": fake.api_key}
        env.pop("IMMICH_URL", None)
        return fake, env

    return make


def uploaded(fake, name, taken, data, **extra):
    raw = make_asset(
        owner_id=fake.user_id,
        name=name,
        taken=taken,
        size=len(data),
        checksum=sha1_b64(data),
        updated_at=UPDATED,
        **extra,
    )
    return fake.add_asset(raw)["id"]


def test_an_outage_of_one_folder_never_leaves_a_wrong_match(env_for, tmp_path):
    fake, env = env_for()
    photos, away = tmp_path / "Photos", tmp_path / "nas-2024-07"
    d2023, d2024 = datetime(2023, 7, 14, 10, 30), datetime(2024, 7, 14, 10, 30)
    old = write(photos, "2023/07/IMG_0001.JPG", jpeg_bytes(d2023, padding=10))
    new = write(away, "IMG_0001.JPG", jpeg_bytes(d2024, padding=50))
    id2023, id2024 = uploaded(fake, "IMG_0001.JPG", d2023, old), uploaded(fake, "IMG_0001.JPG", d2024, new)
    (photos / "2024").mkdir()
    os.symlink(tmp_path / "gone-mount", photos / "2024" / "07")  # the share is down: a dangling mount link

    during = cli(tmp_path, env, "Photos", "-q")
    assert during.returncode == 0, during.stderr
    assert "parts of TARGET could not be read" in during.stderr and "2024/07" in during.stderr  # also with -q
    held = nodes(tmp_path)
    assert held[id2023]["match"]["path"].endswith("2023/07/IMG_0001.JPG")
    wrong = held[id2024]["match"]
    assert wrong["status"] == "not_found" and wrong["path"] is None and wrong["provisional"] is True
    assert [r["path"] for r in wrong["rejected"]] == [str(photos / "2023/07/IMG_0001.JPG")]

    os.unlink(photos / "2024" / "07")
    os.symlink(away, photos / "2024" / "07")  # the share is back
    after = cli(tmp_path, env, "Photos")
    assert after.returncode == 0, after.stderr
    assert "could not be read" not in after.stdout + after.stderr
    held = nodes(tmp_path)
    assert held[id2024]["match"]["path"] == str(photos / "2024/07/IMG_0001.JPG")
    assert held[id2024]["match"]["status"] == "found" and "provisional" not in held[id2024]["match"]
    assert held[id2023]["match"]["path"] == str(photos / "2023/07/IMG_0001.JPG")


def test_two_iphone_videos_of_one_name_go_to_their_own_files(env_for, tmp_path):
    fake, env = env_for()
    photos = tmp_path / "Photos"
    ids = {}
    for year in (2023, 2024):
        data = write(
            photos,
            f"{year}/IMG_0001.MOV",
            movie_bytes(
                qt_mvhd(datetime(year, 7, 14, 6, 38)),
                qt_keys_meta({"com.apple.quicktime.creationdate": f"{year}-07-14T08:38:00+0200"}),
                padding=year,
            ),
        )
        # Immich: localDateTime 08:38 (the CreationDate's wall time), not mvhd's 06:38 UTC
        ids[year] = uploaded(fake, "IMG_0001.MOV", datetime(year, 7, 14, 8, 38), data, asset_type="VIDEO")
        fake.assets[ids[year]]["exifInfo"]["fileSizeInByte"] = 999  # sizes do not decide: the date must
    run = cli(tmp_path, env, "Photos")
    assert run.returncode == 0, run.stderr
    held = nodes(tmp_path)
    for year, asset_id in ids.items():
        match = held[asset_id]["match"]
        assert (match["status"], match["path"], match["method"]) == (
            "found",
            str(photos / f"{year}/IMG_0001.MOV"),
            "filename+exif_date",
        )
        assert match["evidence"]["date"] == "equal"


def test_a_mirrored_external_library_and_a_file_at_its_import_root(env_for, tmp_path):
    fake, env = env_for()
    photos = tmp_path / "Photos"
    for rel in (
        "nas/mirror/trip/IMG_5195.HEIC",
        "nas/backup/IMG_5195.HEIC",
        "nas/mirror/2020/a.jpg",
        "nas/mirror/root.jpg",
        "old/root.jpg",
    ):
        write(photos, rel, jpeg_bytes(None, padding=len(rel)))
    ids = {}
    for original in ("/mnt/photos/trip/IMG_5195.HEIC", "/mnt/photos/2020/a.jpg", "/mnt/photos/root.jpg"):
        raw = make_asset(
            owner_id=fake.user_id,
            name=original.rsplit("/", 1)[-1],
            taken=datetime(2022, 1, 1),
            size=1,
            checksum=sha1_b64(b"path:" + original.encode()),
            updated_at=UPDATED,
            library_id="7a4b9b8e-0000-4000-8000-00000000e1b1",
            original_path=original,
        )
        ids[original] = fake.add_asset(raw)["id"]
    run = cli(tmp_path, env, "Photos")
    assert run.returncode == 0, run.stderr
    held = nodes(tmp_path)
    got = {original: (held[i]["match"]["path"], held[i]["match"]["method"]) for original, i in ids.items()}
    assert got == {
        "/mnt/photos/trip/IMG_5195.HEIC": (str(photos / "nas/mirror/trip/IMG_5195.HEIC"), "path"),
        "/mnt/photos/2020/a.jpg": (str(photos / "nas/mirror/2020/a.jpg"), "path"),
        "/mnt/photos/root.jpg": (str(photos / "nas/mirror/root.jpg"), "path+root"),
    }
    paths = [n["match"]["path"] for n in held.values() if n["match"]["status"] == "found"]
    assert len(paths) == len(set(paths))  # two external assets never claim one file


def test_verify_hashes_every_found_file_and_says_what_it_found(env_for, tmp_path):
    fake, env = env_for()
    photos = tmp_path / "Photos"
    taken = datetime(2024, 5, 1, 9, 0)
    same = write(photos, "a/IMG_1.JPG", jpeg_bytes(taken, padding=1))
    uploaded(fake, "IMG_1.JPG", taken, same)
    original = jpeg_bytes(taken, padding=2)
    write(photos, "a/IMG_2.JPG", jpeg_bytes(taken, padding=3))  # an edited copy: same date, other bytes
    edited_id = uploaded(fake, "IMG_2.JPG", taken, original)
    assert cli(tmp_path, env, "Photos").returncode == 0
    run = cli(tmp_path, env, "Photos", "--verify")  # nothing changed on the server: unchanged assets too
    assert run.returncode == 0, run.stderr
    assert "verified:   1 confirmed (same bytes, or an external asset's path), 1 demoted (other bytes)" in run.stdout
    held = nodes(tmp_path)
    assert held[edited_id]["match"]["confidence"] == "low"
    assert held[edited_id]["match"]["evidence"]["checksum"] == "different"
    assert sorted(n["match"]["confidence"] for n in held.values()) == ["exact", "low"]
    assert "Hash the file of every found uploaded asset" in cli(tmp_path, env, "--help").stdout


def find(tmp_path, env, *args):
    return command(tmp_path, env, *args, module="immich_sync.entrypoints.find_cli")


def test_find_filters_by_a_minimum_confidence(env_for, tmp_path):
    fake, env = env_for()
    photos, taken = tmp_path / "Photos", datetime(2024, 5, 1, 9, 0)
    exact_id = uploaded(fake, "IMG_1.JPG", taken, write(photos, "a/IMG_1.JPG", jpeg_bytes(taken, padding=1)))
    write(photos, "a/IMG_2.JPG", jpeg_bytes(taken, padding=3))
    uploaded(fake, "IMG_2.JPG", taken, jpeg_bytes(taken, padding=2))  # the file is an edited copy
    assert cli(tmp_path, env, "Photos", "--verify").returncode == 0
    high = find(tmp_path, env, "--target=Photos", f"--path={photos / 'a/IMG_1.JPG'}", "--min-confidence=high")
    assert high.returncode == 0 and [n["id"] for n in json.loads(high.stdout)] == [exact_id]
    low_one = ["--target=Photos", "--name=IMG_2.JPG"]
    assert find(tmp_path, env, *low_one, "--min-confidence=high").returncode == 3
    assert len(json.loads(find(tmp_path, env, *low_one, "--min-confidence=low").stdout)) == 1
    bad = find(tmp_path, env, *low_one, "--min-confidence=sure")
    assert bad.returncode == 2 and "takes low, medium, high or exact" in bad.stderr


def test_find_path_is_by_path_only_relative_to_target_and_says_when_nothing_matched(env_for, tmp_path):
    fake, env = env_for()
    photos, taken = tmp_path / "Photos", datetime(2024, 5, 1, 9, 0)
    asset_id = uploaded(fake, "IMG_1.JPG", taken, write(photos, "a/IMG_1.JPG", jpeg_bytes(taken, padding=1)))
    write(photos, "b/IMG_1.JPG", jpeg_bytes(datetime(2019, 1, 1), padding=9))  # same name, not the asset's file
    assert cli(tmp_path, env, "Photos").returncode == 0
    relative = find(tmp_path, env, "--target=Photos", "--path=a/IMG_1.JPG")
    assert relative.returncode == 0 and [n["id"] for n in json.loads(relative.stdout)] == [asset_id]
    other = find(tmp_path, env, "--target=Photos", f"--path={photos / 'b/IMG_1.JPG'}")
    assert other.returncode == 3 and json.loads(other.stdout) == [] and "nothing matched" in other.stderr
    version = find(tmp_path, env, "--version")
    assert version.returncode == 0 and version.stdout.startswith("immich-cache-find ")
