"""Synthetic but realistic assets (AssetResponseDto as v3.1 returns them) and matching JPEG files."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import piexif

# A valid 1x1 grey baseline JPEG; EXIF and padding are added per file.
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f"
    "141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b08000100010101"
    "1100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b51000020103030204030505"
    "04040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a16171819"
    "1a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485"
    "868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9"
    "dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00d2cf20ffd9"
)


def jpeg_bytes(
    taken: datetime | None, *, offset: str | None = None, padding: int = 0, subsec: str | None = None
) -> bytes:
    """A JPEG whose EXIF DateTimeOriginal is `taken` (naive wall-clock), padded to vary its size."""
    data = TINY_JPEG
    if taken is not None:
        exif_ifd: dict[int, Any] = {piexif.ExifIFD.DateTimeOriginal: taken.strftime("%Y:%m:%d %H:%M:%S").encode()}
        if offset:
            exif_ifd[0x9011] = offset.encode()
        if subsec:
            exif_ifd[piexif.ExifIFD.SubSecTimeOriginal] = subsec.encode()
        exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"immich-sync"}, "Exif": exif_ifd})
        out = bytearray()
        # insert APP1 after SOI
        app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
        out += data[:2] + app1 + data[2:]
        data = bytes(out)
    if padding:
        chunks = []
        while padding > 0:
            n = min(padding, 65000)
            chunks.append(b"\xff\xfe" + (n + 2).to_bytes(2, "big") + b"\x00" * n)
            padding -= n
        data = data[:2] + b"".join(chunks) + data[2:]
    return data


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def make_asset(
    *,
    owner_id: str,
    name: str,
    taken: datetime,
    size: int,
    checksum: str,
    asset_id: str | None = None,
    updated_at: datetime | None = None,
    visibility: str = "timeline",
    is_trashed: bool = False,
    library_id: str | None = None,
    original_path: str | None = None,
    zone_hours: int = 2,
    asset_type: str = "IMAGE",
) -> dict[str, Any]:
    """An AssetResponseDto shaped like v3.1's search results (about 2 KB of JSON with exifInfo)."""
    asset_id = asset_id or str(uuid.uuid4())
    instant = (taken - timedelta(hours=zone_hours)).replace(tzinfo=UTC)
    updated_at = updated_at or datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    path = original_path or f"/data/library/{owner_id}/{taken:%Y}/{taken:%m}/{name}"
    return {
        "id": asset_id,
        "createdAt": iso(updated_at),
        "ownerId": owner_id,
        "libraryId": library_id,
        "type": asset_type,
        "originalPath": path,
        "originalFileName": name,
        "originalMimeType": "image/jpeg",
        "thumbhash": "1QcSHQRnh493V4dIh4eXh1h4kJUI",
        "fileCreatedAt": iso(instant),
        "fileModifiedAt": iso(instant),
        "localDateTime": taken.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "updatedAt": iso(updated_at),
        "isFavorite": False,
        "isArchived": visibility == "archive",
        "isTrashed": is_trashed,
        "visibility": visibility,
        "duration": None,
        "exifInfo": {
            "make": "Canon",
            "model": "Canon EOS 40D",
            "exifImageWidth": 4000,
            "exifImageHeight": 3000,
            "fileSizeInByte": size,
            "orientation": "1",
            "dateTimeOriginal": instant.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
            "modifyDate": instant.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
            "timeZone": f"UTC+{zone_hours}" if zone_hours else None,
            "lensModel": "EF-S 17-85mm f/4-5.6 IS USM",
            "fNumber": 8,
            "focalLength": 35,
            "iso": 100,
            "exposureTime": "1/250",
            "latitude": 43.46715,
            "longitude": 11.88539,
            "city": "Arezzo",
            "state": "Tuscany",
            "country": "Italy",
            "description": "",
            "projectionType": None,
            "rating": None,
        },
        "livePhotoVideoId": None,
        "people": [],
        "checksum": checksum,
        "isOffline": False,
        "hasMetadata": True,
        "duplicateId": None,
        "resized": True,
        "width": 4000,
        "height": 3000,
        "isEdited": False,
    }


def write_library(root: str, specs: list[tuple[str, datetime | None, int]]) -> list[tuple[str, bytes]]:
    """Write JPEGs: each spec is (relative path, EXIF date or None, padding). Returns (path, bytes)."""
    written = []
    for relative, taken, padding in specs:
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = jpeg_bytes(taken, padding=padding)
        with open(path, "wb") as handle:
            handle.write(data)
        written.append((path, data))
    return written


# --- QuickTime / MP4 movies built atom by atom (Apple's QuickTime File Format: moov/mvhd,
# moov/meta with hdlr `mdta`, `keys` and `ilst`, and moov/udta user data), for the video-date tests


def qt_box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def qt_full_box(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return qt_box(kind, bytes([version, 0, 0, 0]) + payload)


def qt_mvhd(created_utc: datetime | None) -> bytes:
    """A version-0 movie header whose creation time is `created_utc` (seconds since 1904, UTC)."""
    seconds = 0 if created_utc is None else int((created_utc - datetime(1904, 1, 1)).total_seconds())
    return qt_full_box(b"mvhd", struct.pack(">IIII", seconds, seconds, 600, 600) + b"\x00" * 80)


def qt_keys_meta(items: dict[str, str], *, full_box: bool = False) -> bytes:
    """moov/meta as iPhones write it: `keys` names each item (namespace `mdta`), `ilst` holds the
    values, item N for key N, each in a `data` atom of type 1 (UTF-8). `full_box` writes the
    ISO/iTunes form of `meta` (with version and flags), as some MP4 writers do."""
    hdlr = qt_full_box(b"hdlr", b"\x00\x00\x00\x00mdta" + b"\x00" * 12 + b"\x00")
    names = list(items)
    keys = qt_full_box(
        b"keys",
        struct.pack(">I", len(names))
        + b"".join(struct.pack(">I", 8 + len(n.encode())) + b"mdta" + n.encode() for n in names),
    )
    ilst = qt_box(
        b"ilst",
        b"".join(
            qt_box(struct.pack(">I", i), qt_box(b"data", struct.pack(">II", 1, 0) + items[n].encode()))
            for i, n in enumerate(names, start=1)
        ),
    )
    body = hdlr + keys + ilst
    return qt_box(b"meta", (b"\x00\x00\x00\x00" + body) if full_box else body)


def qt_udta_day(text: str, *, itunes: bool = False) -> bytes:
    """moov/udta with a `©day`: QuickTime user-data text (16-bit length, language, text), or the
    iTunes form udta/meta/hdlr+ilst/©day/data that Android's and ffmpeg's MP4 writers use."""
    if itunes:
        day = qt_box(b"\xa9day", qt_box(b"data", struct.pack(">II", 1, 0) + text.encode()))
        hdlr = qt_full_box(b"hdlr", b"\x00\x00\x00\x00mdirappl" + b"\x00" * 9)
        return qt_box(b"udta", qt_full_box(b"meta", hdlr + qt_box(b"ilst", day)))
    return qt_box(b"udta", qt_box(b"\xa9day", struct.pack(">HH", len(text.encode()), 0x55C4) + text.encode()))


def movie_bytes(*moov_children: bytes, brand: bytes = b"qt  ", mdat_first: bool = False, padding: int = 0) -> bytes:
    """A movie: ftyp (none when `brand` is empty, as in old QuickTime files), moov, and an mdat of
    `padding` bytes (before moov when `mdat_first`, as cameras that write the index last do)."""
    ftyp = qt_box(b"ftyp", brand + b"\x00\x00\x02\x00" + brand) if brand else b""
    moov = qt_box(b"moov", b"".join(moov_children))
    mdat = qt_box(b"mdat", b"\x00" * padding)
    return ftyp + (mdat + moov if mdat_first else moov + mdat)


# --- files with metadata for the `file` section's tests (issue 17)
def xmp_packet(
    *,
    description: str | None = None,
    rating: int | None = None,
    date: str | None = None,
    tags_list: list[str] | None = None,
    hierarchical: list[str] | None = None,
    subject: list[str] | None = None,
    faces: list[str] | None = None,
    gps: tuple[str, str] | None = None,
) -> bytes:
    """An XMP packet as Lightroom, digiKam and phones write one (attributes and element forms)."""
    from xml.sax.saxutils import escape, quoteattr

    def bag(kind: str, items: list[str]) -> str:
        return f"<rdf:{kind}>" + "".join(f"<rdf:li>{escape(i)}</rdf:li>" for i in items) + f"</rdf:{kind}>"

    attrs = []
    if rating is not None:
        attrs.append(f"xmp:Rating={quoteattr(str(rating))}")
    if date is not None:
        attrs.append(f"exif:DateTimeOriginal={quoteattr(date)}")
    if gps is not None:
        attrs.append(f"exif:GPSLatitude={quoteattr(gps[0])} exif:GPSLongitude={quoteattr(gps[1])}")
    body = []
    if description is not None:
        alt = f'<rdf:Alt><rdf:li xml:lang="x-default">{escape(description)}</rdf:li></rdf:Alt>'
        body.append(f"<dc:description>{alt}</dc:description>")
    if tags_list:
        body.append(f"<digiKam:TagsList>{bag('Seq', tags_list)}</digiKam:TagsList>")
    if hierarchical:
        body.append(f"<lr:hierarchicalSubject>{bag('Bag', hierarchical)}</lr:hierarchicalSubject>")
    if subject:
        body.append(f"<dc:subject>{bag('Bag', subject)}</dc:subject>")
    if faces:
        regions = "".join(
            f'<rdf:li><rdf:Description mwg-rs:Name={quoteattr(name)} mwg-rs:Type="Face"><mwg-rs:Area stArea:x="0.5"'
            ' stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/></rdf:Description></rdf:li>'
            for name in faces
        )
        body.append(
            '<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>'
            f"{regions}</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>"
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        ' xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"'
        ' xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" '
        + " ".join(attrs)
        + ">"
        + "".join(body)
        + '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def jpeg_with_metadata(
    taken: datetime | None = None,
    *,
    description: str | None = None,
    rating: int | None = None,
    gps: tuple[float, float] | None = None,
    xmp: bytes | None = None,
    iptc_keywords: list[str] | None = None,
) -> bytes:
    """A JPEG with EXIF (date, ImageDescription, Rating, GPS), an XMP APP1 and an IPTC APP13, as asked."""

    def rational(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        seconds = round(((value - degrees) * 60 - minutes) * 60 * 10000)
        return ((degrees, 1), (minutes, 1), (seconds, 10000))

    zeroth: dict[int, Any] = {}
    exif: dict[int, Any] = {}
    gps_ifd: dict[int, Any] = {}
    if description is not None:
        zeroth[piexif.ImageIFD.ImageDescription] = description.encode()
    if rating is not None:
        zeroth[0x4746] = rating
    if taken is not None:
        exif[piexif.ExifIFD.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S").encode()
    if gps is not None:
        gps_ifd[piexif.GPSIFD.GPSLatitudeRef] = b"S" if gps[0] < 0 else b"N"
        gps_ifd[piexif.GPSIFD.GPSLatitude] = rational(abs(gps[0]))
        gps_ifd[piexif.GPSIFD.GPSLongitudeRef] = b"W" if gps[1] < 0 else b"E"
        gps_ifd[piexif.GPSIFD.GPSLongitude] = rational(abs(gps[1]))
    exif_bytes = piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps_ifd})
    data = TINY_JPEG
    segments = b"\xff\xe1" + struct.pack(">H", len(exif_bytes) + 2) + exif_bytes
    if xmp is not None:
        body = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
        segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    if iptc_keywords:
        records = b"".join(b"\x1c\x02\x19" + struct.pack(">H", len(k.encode())) + k.encode() for k in iptc_keywords)
        irb = (
            b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(records)) + records + (b"\x00" if len(records) & 1 else b"")
        )
        body = b"Photoshop 3.0\x00" + irb
        segments += b"\xff\xed" + struct.pack(">H", len(body) + 2) + body
    return data[:2] + segments + data[2:]
