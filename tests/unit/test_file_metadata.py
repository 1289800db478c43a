"""Issue 17: what a file says about itself, from each metadata source, read as Immich reads it and
checked against exiftool's reading of the same files; hostile XMP is skipped with one warning."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime

import pytest

from conftest import SAMPLES
from immich_sync.adapters.file_metadata import read_file_metadata, sidecar_of
from immich_sync.testing.factory import jpeg_with_metadata, movie_bytes, qt_box, qt_mvhd, xmp_packet

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TAKEN = datetime(2024, 7, 14, 21, 5, 3)
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")


def read(path):
    return read_file_metadata(str(path), NOW)


def value(section, name):
    return (section.get(name) or {}).get("value"), (section.get(name) or {}).get("source")


def png_with_xmp(packet: bytes, *, compressed: bool = False) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    text = zlib.compress(packet) if compressed else packet
    itxt = b"XML:com.adobe.xmp\x00" + (b"\x01\x00" if compressed else b"\x00\x00") + b"\x00\x00" + text
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"iTXt", itxt) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def webp_with_xmp(packet: bytes) -> bytes:
    """The sample WebP with its own XMP chunk replaced by `packet`."""
    sample = (SAMPLES / "RIFF.webp").read_bytes()
    body, at = b"", 12
    while at + 8 <= len(sample):
        kind, length = struct.unpack("<4sI", sample[at : at + 8])
        end = at + 8 + length + (length & 1)
        if kind != b"XMP ":
            body += sample[at:end]
        at = end
    body += b"XMP " + struct.pack("<I", len(packet)) + packet + (b"\x00" if len(packet) & 1 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def test_exif_fields_of_a_jpeg(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(TAKEN, description="At the tower", rating=3, gps=(48.8584, -2.2945)))
    section = read(path)
    assert value(section, "dateTimeOriginal") == ("2024-07-14T21:05:03", "exif")
    assert value(section, "description") == ("At the tower", "exif")
    assert value(section, "rating") == (3, "exif")
    assert section["latitude"]["value"] == pytest.approx(48.8584, abs=1e-6)
    assert section["longitude"]["value"] == pytest.approx(-2.2945, abs=1e-6)
    assert section["file"] == {"path": str(path), "size": path.stat().st_size, "mtime": section["file"]["mtime"]}
    assert section["sidecar"] is None and section["warnings"] == []


def test_embedded_xmp_lightroom_hierarchy_faces_and_iptc(tmp_path):
    packet = xmp_packet(
        description="Paris at night",
        rating=4,
        hierarchical=["Travel|France|Paris", "Places|A/B"],
        faces=["Ann", "Bob"],
        subject=["paris"],
    )
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(TAKEN, rating=2, xmp=packet, iptc_keywords=["kw1"]))
    section = read(path)
    assert value(section, "description") == ("Paris at night", "xmp")
    assert value(section, "rating") == (4, "xmp")  # XMP comes after EXIF in the file: exiftool reads it
    assert value(section, "tags") == (["Places/A|B", "Travel/France/Paris"], "xmp:lr:hierarchicalSubject")
    assert value(section, "people") == (["Ann", "Bob"], "xmp")


@pytest.mark.parametrize(
    "packet,expected",
    [
        pytest.param(
            xmp_packet(tags_list=["A/B", "C"], hierarchical=["X|Y"]),
            (["A/B", "C"], "xmp:digiKam:TagsList"),
            id="digikam-first",
        ),
        pytest.param(xmp_packet(subject=["only-subject"]), (["only-subject"], "xmp:dc:subject"), id="subject-last"),
    ],
)
def test_keywords_follow_immichs_order(tmp_path, packet, expected):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(TAKEN, xmp=packet))
    assert value(read(path), "tags") == expected


def test_iptc_keywords_when_no_xmp_list(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(TAKEN, iptc_keywords=["Zoo", "Lion"]))
    assert value(read(path), "tags") == (["Lion", "Zoo"], "iptc")


def test_sidecar_spellings_in_immichs_order_and_the_sidecar_date_wins(tmp_path):
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(jpeg_with_metadata(TAKEN, description="in the file", rating=1))
    (tmp_path / "IMG_0001.xmp").write_bytes(xmp_packet(rating=2))
    assert sidecar_of(str(path)) == str(tmp_path / "IMG_0001.xmp")
    assert value(read(path), "rating") == (2, "sidecar")
    (tmp_path / "IMG_0001.JPG.xmp").write_bytes(xmp_packet(rating=5, date="2024-07-15T08:00:00+02:00"))
    section = read(path)
    assert sidecar_of(str(path)) == str(tmp_path / "IMG_0001.JPG.xmp")
    assert value(section, "rating") == (5, "sidecar")
    assert value(section, "dateTimeOriginal") == ("2024-07-15T08:00:00+02:00", "sidecar")
    assert value(section, "description") == ("in the file", "exif")  # Immich: ImageDescription first
    assert section["sidecar"]["path"] == str(tmp_path / "IMG_0001.JPG.xmp")


@pytest.mark.parametrize("compressed", [False, True], ids=["itxt", "itxt-compressed"])
def test_png_xmp(tmp_path, compressed):
    path = tmp_path / "a.png"
    path.write_bytes(png_with_xmp(xmp_packet(description="png", rating=2), compressed=compressed))
    section = read(path)
    assert value(section, "description") == ("png", "xmp") and value(section, "rating") == (2, "xmp")


def test_webp_xmp(tmp_path):
    path = tmp_path / "a.webp"
    path.write_bytes(webp_with_xmp(xmp_packet(description="webp", faces=["Cy"])))
    section = read(path)
    assert value(section, "description") == ("webp", "xmp") and value(section, "people") == (["Cy"], "xmp")


@pytest.mark.parametrize("where", ["uuid", "udta-XMP_"])
def test_a_movie_with_xmp_and_its_quicktime_date(tmp_path, where):
    packet = xmp_packet(description="clip", hierarchical=["Trips|Rome"])
    if where == "uuid":
        data = movie_bytes(qt_mvhd(datetime(2024, 7, 14, 19, 5, 3))) + qt_box(b"uuid", XMP_UUID + packet)
    else:
        data = movie_bytes(qt_mvhd(datetime(2024, 7, 14, 19, 5, 3)), qt_box(b"udta", qt_box(b"XMP_", packet)))
    path = tmp_path / "clip.mov"
    path.write_bytes(data)
    section = read(path)
    assert value(section, "description") == ("clip", "xmp")
    assert value(section, "tags") == (["Trips/Rome"], "xmp:lr:hierarchicalSubject")
    assert section["dateTimeOriginal"]["source"] == "quicktime"


def test_tiff_and_heic_samples_are_read_without_harm():
    for name in ("Nikon.nef", "DNG.dng", "IMG_5195.HEIC", "Canon_40D.jpg"):
        section = read(SAMPLES / name)
        assert section["file"]["size"] == (SAMPLES / name).stat().st_size and section["warnings"] == [], name
    assert read(SAMPLES / "IMG_5195.HEIC")["dateTimeOriginal"]["source"] == "exif"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&lol3;</x:xmpmeta>'
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>'
)


@pytest.mark.parametrize(
    "sidecar",
    [
        pytest.param(BILLION_LAUGHS, id="entity-expansion"),
        pytest.param(EXTERNAL, id="external-entity"),
        pytest.param(b"\x00\x01 not xml at all", id="not-xml"),
        pytest.param(b"<x:xmpmeta>" + b"a" * (5 << 20) + b"</x:xmpmeta>", id="huge"),
        pytest.param(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>", id="broken"),
    ],
)
def test_a_hostile_or_broken_sidecar_is_skipped_with_one_warning_naming_it(tmp_path, caplog, sidecar):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(TAKEN, rating=3))
    (tmp_path / "a.jpg.xmp").write_bytes(sidecar)
    section = read(path)
    assert value(section, "rating") == (3, "exif")  # the file's own values are kept
    assert len(section["warnings"]) == 1 and str(tmp_path / "a.jpg.xmp") in section["warnings"][0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == section["warnings"]


def test_a_hostile_embedded_packet_is_skipped_too(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(TAKEN, description="kept", xmp=BILLION_LAUGHS[21:]))
    section = read(path)
    assert value(section, "description") == ("kept", "exif")
    assert len(section["warnings"]) == 1 and "embedded XMP skipped" in section["warnings"][0]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (.ci/run installs it)")
def test_exiftool_reads_the_same_values(tmp_path):
    """Field by field, what exiftool (the library Immich reads metadata with) makes of the same files."""
    packet = xmp_packet(description="Paris", rating=4, hierarchical=["Travel|Paris"], faces=["Ann"])
    files = {
        "exif.jpg": jpeg_with_metadata(TAKEN, description="Tower", rating=2, gps=(48.8584, 2.2945)),
        "xmp.jpg": jpeg_with_metadata(TAKEN, xmp=packet),
        "iptc.jpg": jpeg_with_metadata(TAKEN, iptc_keywords=["Zoo", "Lion"]),
        "a.png": png_with_xmp(packet),
        "a.webp": webp_with_xmp(packet),
        "clip.mov": movie_bytes(qt_mvhd(datetime(2024, 7, 14, 19, 5, 3))) + qt_box(b"uuid", XMP_UUID + packet),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    args = ["-j", "-n", "-Rating", "-ImageDescription", "-Description", "-GPSLatitude", "-GPSLongitude"]
    args += ["-HierarchicalSubject", "-Keywords", "-RegionName", "-DateTimeOriginal"]
    theirs = {
        d["SourceFile"].rsplit("/", 1)[1]: d
        for d in json.loads(
            subprocess.run(
                ["exiftool", *args, *sorted(str(tmp_path / n) for n in files)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    }
    for name in files:
        ours, their = read(tmp_path / name), theirs[name]
        assert value(ours, "rating")[0] == their.get("Rating"), name
        assert value(ours, "description")[0] == (their.get("ImageDescription") or their.get("Description")), name
        if "GPSLatitude" in their:
            assert ours["latitude"]["value"] == pytest.approx(their["GPSLatitude"], abs=1e-6), name
            assert ours["longitude"]["value"] == pytest.approx(their["GPSLongitude"], abs=1e-6), name
        hierarchy = their.get("HierarchicalSubject")
        keywords = their.get("Keywords")
        expected = [hierarchy.replace("|", "/")] if isinstance(hierarchy, str) else None
        expected = expected or (sorted(keywords) if isinstance(keywords, list) else [keywords] if keywords else None)
        assert value(ours, "tags")[0] == expected, name
        names = their.get("RegionName")
        assert value(ours, "people")[0] == ([names] if isinstance(names, str) else names), name
        if "DateTimeOriginal" in their and name.endswith(".jpg"):
            assert value(ours, "dateTimeOriginal")[0] == their["DateTimeOriginal"].replace(":", "-", 2).replace(
                " ", "T"
            ), name


def test_tiff_and_heic_with_embedded_xmp(tmp_path):
    """A TIFF (XMP in tag 700) written by Pillow and a HEIC (XMP as a mime item) by pillow-heif."""
    import pillow_heif
    from PIL import Image
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    packet = xmp_packet(description="tiff or heic", hierarchical=["Trips|Oslo"])
    image = Image.new("RGB", (16, 16), (200, 40, 40))
    tags = ImageFileDirectory_v2()
    tags[700] = packet
    tags.tagtype[700] = 1  # BYTE, as XMP in TIFF is stored
    image.save(tmp_path / "a.tif", tiffinfo=tags)
    pillow_heif.register_heif_opener()
    image.save(tmp_path / "a.heic", format="HEIF", xmp=packet)
    for name in ("a.tif", "a.heic"):
        section = read(tmp_path / name)
        assert value(section, "description") == ("tiff or heic", "xmp"), name
        assert value(section, "tags") == (["Trips/Oslo"], "xmp:lr:hierarchicalSubject"), name
