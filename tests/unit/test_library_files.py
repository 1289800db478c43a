"""The TARGET scan and the EXIF reader on real files the tests create (and real camera samples)."""

from __future__ import annotations

import os
import struct
from datetime import datetime

import piexif
import pytest

from conftest import SAMPLES
from immich_sync.adapters.exif_reader import read_capture_time
from immich_sync.adapters.library_scan import LocalLibrary, scan_files, sha1_base64
from immich_sync.testing.factory import jpeg_bytes, sha1_b64

TAKEN = datetime(2024, 7, 14, 10, 30, 15)


def write(path, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def mp4(seconds_since_1904: int, moov_last: bool = True) -> bytes:
    ftyp = struct.pack(">I4s", 20, b"ftyp") + b"isom" + b"\x00\x00\x02\x00" + b"isom"
    mvhd_body = b"\x00\x00\x00\x00" + struct.pack(">II", seconds_since_1904, seconds_since_1904) + b"\x00" * 88
    mvhd = struct.pack(">I4s", 8 + len(mvhd_body), b"mvhd") + mvhd_body
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    mdat = struct.pack(">I4s", 8 + 4096, b"mdat") + b"\x00" * 4096
    return ftyp + (mdat + moov if moov_last else moov + mdat)


@pytest.mark.parametrize(
    "data,expected",
    [
        pytest.param(jpeg_bytes(TAKEN), (TAKEN, None), id="jpeg-datetimeoriginal"),
        pytest.param(jpeg_bytes(TAKEN, offset="+02:00"), (TAKEN, 120), id="jpeg-with-offsettimeoriginal"),
        pytest.param(jpeg_bytes(TAKEN, subsec="25"), (TAKEN.replace(microsecond=250000), None), id="jpeg-subsec"),
        pytest.param(jpeg_bytes(None), None, id="jpeg-without-exif"),
        pytest.param(jpeg_bytes(TAKEN)[:40], None, id="truncated-jpeg"),
        pytest.param(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00\xff\xff\xff\xff", None, id="corrupt-exif"),
        pytest.param(b"", None, id="empty-file"),
        pytest.param(b"not an image at all", None, id="text-file"),
        pytest.param(mp4(3_800_000_000), (datetime(2024, 5, 31, 11, 33, 20), 0), id="mp4-moov-at-end-utc"),
        pytest.param(mp4(3_800_000_000, moov_last=False), (datetime(2024, 5, 31, 11, 33, 20), 0), id="mp4-faststart"),
        pytest.param(mp4(0), None, id="mp4-without-date"),
    ],
)
def test_capture_time_of_generated_files(tmp_path, data, expected):
    path = write(tmp_path / "f.bin", data)
    got = read_capture_time(path)
    assert (None if got is None else (got.local, got.offset_minutes)) == expected


@pytest.mark.parametrize(
    "name,expected",
    [
        pytest.param("Canon_40D.jpg", datetime(2008, 5, 30, 15, 56, 1), id="jpeg-canon"),
        pytest.param("IMG_5195.HEIC", datetime(2021, 4, 11, 15, 47, 53, 54000), id="heic-iphone"),
        pytest.param("CanonRaw.cr2", datetime(2005, 8, 3, 18, 59, 18), id="cr2"),
        pytest.param("CanonRaw.cr3", datetime(2018, 2, 21, 12, 8, 56, 210000), id="cr3"),
        pytest.param("DNG.dng", datetime(2005, 8, 3, 18, 59, 18), id="dng"),
        pytest.param("Nikon.nef", datetime(2004, 6, 9, 16, 2, 35), id="nef"),
        pytest.param("Panasonic.rw2", datetime(2008, 8, 6, 15, 21, 56), id="rw2"),
        pytest.param("FujiFilm.raf", datetime(2007, 5, 22, 13, 58, 30), id="raf"),
        pytest.param("PNG.png", None, id="png-without-date"),
        pytest.param("RIFF.webp", None, id="webp-without-date"),
        pytest.param("flower.webp", datetime(2003, 12, 14, 12, 1, 44), id="webp-exif-chunk"),
    ],
)
def test_capture_time_of_real_camera_files(name, expected):
    got = read_capture_time(str(SAMPLES / name))
    assert (None if got is None else got.local.replace(microsecond=got.local.microsecond)) == expected


JPEGS = sorted((SAMPLES / "jpeg").glob("*.jpg"))


@pytest.mark.parametrize("path", JPEGS, ids=[p.stem for p in JPEGS])
def test_the_date_tags_are_what_piexif_reads_of_the_whole_ifd(path):
    """`_date_tags` converts only the tags a date needs: for each, the same value as piexif's
    `get_ifd_dict` gives (IFD0 and the Exif IFD of real cameras' files), and the capture time
    equals the one piexif's public `load` gives."""
    from piexif._load import _ExifReader

    from immich_sync.adapters.exif_reader import _WANTED, _date_tags, _jpeg_exif, _parse_date

    tiff = _jpeg_exif(path.read_bytes())
    assert tiff is not None
    reader = _ExifReader(b"Exif\x00\x00" + tiff)
    reader.endian_mark = "<" if tiff[:2] == b"II" else ">"
    ifd0_at = struct.unpack(reader.endian_mark + "L", tiff[4:8])[0]
    whole0 = reader.get_ifd_dict(ifd0_at, "0th")
    assert _date_tags(reader, ifd0_at, "0th", False) == {k: v for k, v in whole0.items() if k in _WANTED["0th"]}
    exif_at = whole0[piexif.ImageIFD.ExifTag]
    whole = reader.get_ifd_dict(exif_at, "Exif")
    lean = _date_tags(reader, exif_at, "Exif", False)
    assert lean == {k: v for k, v in whole.items() if k in _WANTED["Exif"]}
    loaded = piexif.load(str(path))["Exif"]
    stamp = loaded.get(piexif.ExifIFD.DateTimeOriginal) or loaded.get(piexif.ExifIFD.DateTimeDigitized)
    got = read_capture_time(str(path))
    # an editor's file carries no date; the Kodak's is "2005:08:13 09:47:2", not a date either
    assert (got.local if got else None) == _parse_date(stamp)
    assert (got is None) == (path.stem in ("PaintTool_sample", "Kodak_CX7530"))


def test_heic_offset_is_read():
    assert read_capture_time(str(SAMPLES / "IMG_5195.HEIC")).offset_minutes == -300


def test_reads_only_the_head_of_a_big_file(tmp_path, monkeypatch):
    path = write(tmp_path / "big.jpg", jpeg_bytes(TAKEN) + b"\x00" * (8 << 20))
    reads = []
    real_read = os.read

    def counting(fd, n):
        data = real_read(fd, n)
        reads.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    assert read_capture_time(path).local == TAKEN
    assert reads and sum(reads) <= 128 * 1024


def test_a_raw_file_is_read_past_its_head_only_for_the_date_tags(tmp_path, monkeypatch):
    """A TIFF-based raw whose Exif IFD lies past the first 128 KiB is read further to reach it;
    one whose date is in the head is not read further for values the date does not need (a strip
    offset array far into the file)."""
    order = "<"
    date = b"2019:06:29 10:57:52\x00"

    def tiff(exif_at: int, strips_at: int) -> bytes:
        # IFD0 at 8: StripOffsets (LONG x 4, far away) and ExifTag; the Exif IFD holds DateTimeOriginal
        ifd0 = struct.pack(order + "H", 2)
        ifd0 += struct.pack(order + "HHLL", 0x0111, 4, 4, strips_at)
        ifd0 += struct.pack(order + "HHLL", 0x8769, 4, 1, exif_at) + struct.pack(order + "L", 0)
        exif = struct.pack(order + "H", 1) + struct.pack(order + "HHLL", 0x9003, 2, len(date), exif_at + 18)
        exif += struct.pack(order + "L", 0) + date
        body = bytearray(b"II*\x00" + struct.pack(order + "L", 8) + ifd0)
        body += b"\x00" * (exif_at - len(body))
        body += exif
        body += b"\x00" * max(0, strips_at + 16 - len(body))
        return bytes(body)

    near = write(tmp_path / "near.dng", tiff(exif_at=64, strips_at=4 << 20))
    far = write(tmp_path / "far.dng", tiff(exif_at=300 * 1024, strips_at=64))
    reads: list[int] = []
    real_fdopen = os.fdopen

    class Counting:
        """The file object the reader seeks in, counting what is read through it."""

        def __init__(self, handle):
            self.handle = handle

        def read(self, n=-1):
            data = self.handle.read(n)
            reads.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Counting(real_fdopen(*a, **k)))
    assert read_capture_time(near).local == datetime(2019, 6, 29, 10, 57, 52)
    assert reads == []  # decided by the head
    assert read_capture_time(far).local == datetime(2019, 6, 29, 10, 57, 52)
    assert sum(reads) > 0  # read past the head to reach the Exif IFD


def test_scan_skips_litter_sidecars_and_folders_named_like_photos(tmp_path):
    root = tmp_path / "lib"
    write(root / "2024" / "IMG_0001.JPG", b"x" * 10)
    write(root / "2024" / "IMG_0001.JPG.xmp", b"x")
    write(root / "2024" / "IMG_0001.AAE", b"x")
    write(root / "2024" / "IMG_0001.json", b"{}")
    write(root / "2024" / "._IMG_0001.JPG", b"apple double")
    write(root / "2024" / ".DS_Store", b"x")
    write(root / "2024" / "Thumbs.db", b"x")
    write(root / "@eaDir" / "IMG_0001.JPG" / "SYNOFILE_THUMB_XL.jpg", b"x")
    write(root / "2024" / "@eaDir" / "IMG_0001.JPG" / "SYNOFILE_THUMB_XL.jpg", b"x")
    write(root / "#recycle" / "IMG_0001.JPG", b"x")
    write(root / ".Trash-1000" / "files" / "IMG_0001.JPG", b"x")
    os.mkfifo(root / "2024" / "pipe.jpg")
    files = list(scan_files(str(root)))
    assert [(f.relative, f.size) for f in files] == [("2024/IMG_0001.JPG", 10)]
    assert files[0].path == str(root / "2024" / "IMG_0001.JPG")


def test_scan_survives_a_symlink_loop_and_follows_a_linked_folder_once(tmp_path):
    root = tmp_path / "lib"
    write(root / "a" / "x.jpg", b"1")
    os.symlink(root, root / "a" / "loop")
    os.symlink(root / "a", root / "alias")
    names = sorted(f.relative for f in scan_files(str(root)))
    assert len(names) == 1 and names[0].endswith("x.jpg")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")  # CI runs as root: see next test
def test_unreadable_folder_is_skipped(tmp_path):
    root = tmp_path / "lib"
    write(root / "ok" / "a.jpg", b"1")
    write(root / "locked" / "b.jpg", b"1")
    os.chmod(root / "locked", 0)
    try:
        assert [f.relative for f in scan_files(str(root))] == ["ok/a.jpg"]
    finally:
        os.chmod(root / "locked", 0o755)


def test_unreadable_entries_are_logged_not_fatal(tmp_path, monkeypatch, caplog):
    root = tmp_path / "lib"
    write(root / "ok" / "a.jpg", b"1")
    write(root / "bad" / "b.jpg", b"1")
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("bad"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert [f.relative for f in scan_files(str(root))] == ["ok/a.jpg"]
    assert "skipped unreadable folder" in caplog.text


def test_a_walk_in_a_reader_process_gives_the_same_index_and_its_warnings_reach_this_log(tmp_path, caplog):
    root = tmp_path / "lib"
    write(root / "2024" / "IMG_0001.JPG", b"x" * 10)
    write(root / "2025" / "IMG_0001.JPG", b"x" * 11)
    write(root / "2025" / "Cre\u0301mieux.jpg", b"1")
    os.symlink(root / "nowhere.jpg", root / "2025" / "dangling.jpg")  # unreadable even for root
    here = LocalLibrary().scan(str(root))
    caplog.clear()
    with LocalLibrary(readers=1) as library:
        there = library.scan(str(root))
        assert library._pool is not None
    assert there == here and len(there) == 3
    assert sorted(f.path for f in there.named("img_0001.jpg")) == [
        str(root / "2024" / "IMG_0001.JPG"),
        str(root / "2025" / "IMG_0001.JPG"),
    ]
    assert "skipped unreadable" in caplog.text and "dangling.jpg" in caplog.text


def test_nfd_names_are_found_by_their_nfc_form(tmp_path):
    root = tmp_path / "lib"
    write(root / "Cre\u0301mieux.jpg", b"1")
    index = LocalLibrary().scan(str(root))
    assert [f.name for f in index.named("Crémieux.JPG")] == ["Cre\u0301mieux.jpg"]


def test_sha1_matches_immich_checksum_form(tmp_path):
    data = jpeg_bytes(TAKEN)
    path = write(tmp_path / "a.jpg", data)
    assert sha1_base64(path) == sha1_b64(data) and len(sha1_base64(path)) == 28
    assert sha1_base64(str(tmp_path / "missing.jpg")) is None


def test_a_broken_thumbnail_ifd_does_not_lose_the_date(tmp_path):
    """Some cameras and editors leave IFD1 pointing past the EXIF segment; piexif.load then fails
    as a whole, and the reader falls back to reading IFD0 and the Exif IFD one by one."""
    import piexif

    exif = bytearray(
        piexif.dump(
            {
                "0th": {piexif.ImageIFD.Make: b"cam"},
                "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:07:14 10:30:15"},
                "1st": {piexif.ImageIFD.Make: b"thumb"},
            }
        )
    )
    tiff = 6  # after "Exif\0\0"
    count = struct.unpack(">H", exif[tiff + 8 : tiff + 10])[0]
    next_ifd = tiff + 10 + 12 * count
    exif[next_ifd : next_ifd + 4] = struct.pack(">I", 0xFFFFFF00)
    with pytest.raises(Exception):  # noqa: B017 - whatever piexif raises: the point is that it fails
        piexif.load(bytes(exif))
    data = jpeg_bytes(None)
    jpeg = data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + bytes(exif) + data[2:]
    assert read_capture_time(write(tmp_path / "broken.jpg", jpeg)).local == TAKEN


def _dated_files(root, count: int) -> dict[str, datetime]:
    expected = {}
    for i in range(count):
        taken = TAKEN.replace(minute=i % 60, second=i % 7)
        expected[write(root / f"f{i % 3}" / f"IMG_{i:04d}.JPG", jpeg_bytes(taken, padding=i))] = taken
    return expected


def test_dates_read_by_reader_processes_equal_the_ones_read_here(tmp_path):
    expected = _dated_files(tmp_path, 30)
    broken = write(tmp_path / "broken.jpg", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00garbage")
    with LocalLibrary(readers=2, min_parallel=1) as library:
        library.prefetch([*expected, broken, *expected])  # repeats are read once
        assert library._pool is not None  # the reads went to other processes
        got = {path: library.capture_time(path) for path in expected}
        assert library.capture_time(broken) is None
    assert {path: t.local for path, t in got.items()} == expected
    assert library.reads == len(expected) + 1 and library._pool is None  # closed by the with block


def test_few_prefetched_reads_start_no_process_and_a_library_without_readers_reads_lazily(tmp_path):
    expected = _dated_files(tmp_path, 5)
    few = LocalLibrary(readers=1, min_parallel=10)
    few.prefetch(expected)
    lazy = LocalLibrary()
    lazy.prefetch(expected)
    assert few._pool is None and lazy._pool is None and few.reads == lazy.reads == 0
    assert {p: lazy.capture_time(p).local for p in expected} == expected and lazy.reads == 5


def test_a_failed_reader_falls_back_to_reading_here(tmp_path, monkeypatch, caplog):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    expected = _dated_files(tmp_path, 4)
    library = LocalLibrary(readers=1, min_parallel=1)

    class DeadPool:
        def submit(self, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("a reader was killed"))
            return future

        def shutdown(self, **kwargs):
            pass

    library._pool = DeadPool()
    library.prefetch(expected)
    assert {p: library.capture_time(p).local for p in expected} == expected
    assert "reading in this process" in caplog.text and library._readers == 0 and library._pool is None


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_readers_of_a_killed_command_end_too(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    paths = list(_dated_files(tmp_path, 3))
    script = (
        "import os, signal, sys\n"
        "from immich_sync.adapters.library_scan import LocalLibrary\n"
        "lib = LocalLibrary(readers=1, min_parallel=1)\n"
        "lib.prefetch(sys.argv[1:]); lib.capture_time(sys.argv[1])\n"
        "print(*lib._pool._processes, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    readers = [int(pid) for pid in proc.stdout.split()]
    assert readers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in readers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in readers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_close_waits_for_a_reader_being_started_and_starts_none_after(tmp_path):
    """The walk starts its reader from another thread: a run that fails at once closed the library
    while that reader was half-spawned, and the reader printed an EOFError traceback under the
    command's one-line error. close() now lets the start finish, and nothing starts afterwards."""
    import threading
    from concurrent.futures import Future

    library = LocalLibrary(readers=1)
    starting, release = threading.Event(), threading.Event()
    events: list[str] = []

    class SlowStartPool:
        def submit(self, function, *args):
            starting.set()
            release.wait(5)
            events.append("started")
            future = Future()
            future.set_result(function(*args))
            return future

        def shutdown(self, **kwargs):
            events.append("shut down")

    library._pool = SlowStartPool()
    (tmp_path / "a.jpg").write_bytes(b"x")
    walker = threading.Thread(target=library.scan, args=(str(tmp_path),))
    walker.start()
    assert starting.wait(5)
    closer = threading.Thread(target=library.close, kwargs={"wait": False})
    closer.start()
    closer.join(0.3)
    assert closer.is_alive() and events == []  # close() waits while the reader starts
    release.set()
    closer.join(5)
    walker.join(5)
    assert events == ["started", "shut down"]
    assert library._submit(len, "abc") is None and library._pool is None  # none after close
    assert [f.path for f in library.scan(str(tmp_path)).by_path.values()] == [str(tmp_path / "a.jpg")]


def test_a_failed_run_does_not_wait_for_a_reader_at_work():
    """close(wait=False) (a failed or interrupted run) stops the readers at once: shutdown alone
    still let the interpreter's exit wait for the task in hand, a walk of a large share."""
    import subprocess
    import sys
    import time

    script = (
        "import time\n"
        "from immich_sync.adapters.library_scan import LocalLibrary\n"
        "if __name__ == '__main__':\n"
        "    lib = LocalLibrary(readers=1)\n"
        "    task = lib._submit(time.sleep, 60)\n"
        "    while not task.running():\n"
        "        time.sleep(0.05)\n"
        "    thread = lib._pool._executor_manager_thread\n"
        "    lib.close(wait=False)\n"
        "    print('closed', flush=True)\n"
        "    print('pool thread', 'alive' if thread.is_alive() else 'ended', flush=True)\n"
    )
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    # the pool's thread has ended when close returns: Python 3.11's exit hook, which wakes it
    # through a pipe it may be closing, then has nothing to race (an EBADF traceback, seen in CI)
    assert run.returncode == 0 and run.stdout.split() == ["closed", "pool", "thread", "ended"], run.stderr
    assert "Traceback" not in run.stderr
    assert time.monotonic() - started < 30  # not the reader's 60 s
