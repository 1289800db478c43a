"""What a photo or movie file says about itself, for the fields Immich also holds (the cache's
`file` section, docs/cache-format.md): the capture date-time with its offset, GPS, description,
rating, keywords as hierarchical tags and people's names, each with where it came from.

Read in Immich's order: the file's own EXIF (and IPTC, QuickTime), its embedded XMP (whose rating
and GPS win over EXIF's, as exiftool reads them), and an XMP sidecar over both (`IMG_0001.JPG.xmp`
before `IMG_0001.xmp`); a date in the sidecar replaces every date of the file, and EXIF's
ImageDescription wins over any XMP description (Immich reads `ImageDescription || Description`).
Keywords follow Immich's rule: digiKam's TagsList, else Lightroom's
hierarchicalSubject (`|` between levels), else IPTC Keywords; dc:subject (which Immich does not
import) only when none of them is there."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
from datetime import UTC, datetime
from typing import Any

import piexif

from ..domain import diff
from ..domain.timestamps import format_instant
from . import exif_reader, xmp

log = logging.getLogger(__name__)

EXIF, XMP, SIDECAR, QUICKTIME, IPTC = "exif", "xmp", "sidecar", "quicktime", "iptc"
_XMP_OVER_EXIF = frozenset({"rating", "latitude", "longitude"})
FIELDS = diff.FIELDS  # the fields a file section holds are those the diff compares
_XMP_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def sidecar_of(path: str) -> str | None:
    """The XMP sidecar Immich would read: `<file>.xmp`, else `<file without extension>.xmp` (either case)."""
    stem = os.path.splitext(path)[0]
    for candidate in (f"{path}.xmp", f"{path}.XMP", f"{stem}.xmp", f"{stem}.XMP"):
        if os.path.isfile(candidate):
            return candidate
    return None


def stamp(path: str) -> dict[str, Any] | None:
    """{"path", "size", "mtime"} of a file as read, or None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": path, "size": st.st_size, "mtime": format_instant(datetime.fromtimestamp(st.st_mtime, UTC))}


def read_file_metadata(path: str, now: datetime) -> dict[str, Any]:
    """The `file` section for `path`: each field as {"value", "source"} (absent when the file has
    none), `warnings` for what could not be read, and the stamps of the file and its sidecar."""
    warnings: list[str] = []
    fields: dict[str, dict[str, Any]] = {}
    own = stamp(path)
    if own is None:
        return {"readAt": format_instant(now), "file": None, "sidecar": None, "warnings": [f"{path}: not there"]}
    try:
        with open(path, "rb") as handle:
            tiff = exif_reader.exif_block(handle)
            _from_exif(tiff, fields)
            movie = _is_movie(handle)
            iptc = _jpeg_iptc_keywords(handle)
            packet = xmp.packet_in_file(handle, own["size"])
            taken = exif_reader.capture_time_of(handle)  # Immich's order of date tags, QuickTime's for a movie
    except OSError as exc:
        warnings.append(f"{path}: cannot be read ({exc.strerror or exc})")
        packet, iptc, movie, taken = None, [], False, None
    if taken is not None:
        fields["dateTimeOriginal"] = _date_field(taken, QUICKTIME if movie else EXIF)
    if packet is not None:
        try:
            _from_xmp(xmp.parse(packet), fields, XMP, iptc, override=False)
        except xmp.XmpError as exc:
            warnings.append(f"{path}: embedded XMP skipped: {exc}")
            _keywords(None, fields, XMP, iptc)
    else:
        _keywords(None, fields, XMP, iptc)
    sidecar = sidecar_of(path)
    if sidecar is not None:
        try:
            with open(sidecar, "rb") as handle:
                data = handle.read(xmp.MAX_PACKET + 1)
            _from_xmp(xmp.parse(data), fields, SIDECAR, [], override=True)
        except (OSError, xmp.XmpError) as exc:
            warnings.append(f"{sidecar}: XMP sidecar skipped: {exc}")
    for message in warnings:
        log.warning("%s", message)
    return {
        "readAt": format_instant(now),
        "file": own,
        "sidecar": stamp(sidecar) if sidecar else None,
        **{name: fields[name] for name in FIELDS if name in fields},
        "warnings": warnings,
    }


def _is_movie(handle: Any) -> bool:
    handle.seek(4)
    return handle.read(4) in (b"ftyp", b"moov", b"wide", b"mdat") and not _is_heif(handle)


def _is_heif(handle: Any) -> bool:
    handle.seek(8)
    return handle.read(4) in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"avif")


def _date_field(taken: Any, source: str) -> dict[str, Any]:
    local = taken.local.replace(microsecond=taken.local.microsecond // 1000 * 1000)
    text = local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")
    if taken.offset_minutes is not None:
        sign = "-" if taken.offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(taken.offset_minutes), 60)
        text += f"{sign}{hours:02d}:{minutes:02d}"
    return {"value": text, "source": source}


def _from_exif(tiff: bytes | None, fields: dict[str, dict[str, Any]]) -> None:
    if not tiff:
        return
    try:
        exif = piexif.load(b"Exif\x00\x00" + tiff)
    except Exception:  # piexif raises many kinds on a damaged block: the date reader has its own way
        return
    ifd0, gps = exif.get("0th") or {}, exif.get("GPS") or {}
    description = _text(ifd0.get(piexif.ImageIFD.ImageDescription))
    if description:
        fields["description"] = {"value": description, "source": EXIF}
    rating = ifd0.get(0x4746)
    if isinstance(rating, int):
        fields["rating"] = {"value": rating, "source": EXIF}
    lat = _dms(gps.get(piexif.GPSIFD.GPSLatitude), gps.get(piexif.GPSIFD.GPSLatitudeRef), b"S")
    lon = _dms(gps.get(piexif.GPSIFD.GPSLongitude), gps.get(piexif.GPSIFD.GPSLongitudeRef), b"W")
    if lat is not None and lon is not None:
        fields["latitude"] = {"value": lat, "source": EXIF}
        fields["longitude"] = {"value": lon, "source": EXIF}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.rstrip(b"\x00").decode("utf-8", "replace")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _dms(value: Any, ref: Any, negative: bytes) -> float | None:
    try:
        degrees, minutes, seconds = (n / d for n, d in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60 + seconds / 3600
    return round(-result if (ref or b"")[:1] == negative else result, 7)


def _xmp_date(text: str) -> str | None:
    found = _XMP_DATE.match(text.strip())
    if not found:
        return None
    year, month, day, hour, minute, second, zone = found.groups()
    value = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}"
    if zone:
        value += "+00:00" if zone == "Z" else zone
    return value


def _xmp_gps(text: str) -> float | None:
    """`48,51.3456N` or `48,51,20.7N` (XMP's form), or a plain decimal."""
    text = text.strip()
    try:
        return round(float(text), 7)
    except ValueError:
        pass
    if not text or text[-1].upper() not in "NSEW":
        return None
    try:
        parts = [float(p) for p in text[:-1].split(",")]
    except ValueError:
        return None
    value = sum(p / 60**n for n, p in enumerate(parts))
    return round(-value if text[-1].upper() in "SW" else value, 7)


def _from_xmp(rdf: Any, fields: dict[str, dict[str, Any]], source: str, iptc: list[str], *, override: bool) -> None:
    """XMP values, as Immich's exiftool reading merges them: the sidecar's (`override`) replace the
    file's; an embedded packet's replace EXIF's rating and GPS (XMP comes later in the file) and
    fill the rest. EXIF's ImageDescription is kept over any XMP description (Immich reads
    `ImageDescription || Description`)."""

    def put(name: str, value: Any) -> None:
        if value is None or value == "" or value == []:
            return
        held = fields.get(name)
        if name == "description" and held is not None and held["source"] == EXIF:
            return
        if override or held is None or name in _XMP_OVER_EXIF:
            fields[name] = {"value": value, "source": source}

    dated = xmp.first(rdf, "exif:DateTimeOriginal", "xmp:CreateDate", "photoshop:DateCreated")
    if dated is not None and (date := _xmp_date(dated[1])) is not None:
        put("dateTimeOriginal", date)  # a sidecar's date replaces every date of the file
    description = xmp.first(rdf, "dc:description")
    put("description", description[1] if description else None)
    rating = xmp.first(rdf, "xmp:Rating")
    if rating is not None:
        with contextlib.suppress(ValueError):
            put("rating", int(float(rating[1])))
    lat, lon = xmp.first(rdf, "exif:GPSLatitude"), xmp.first(rdf, "exif:GPSLongitude")
    la, lo = _xmp_gps(lat[1]) if lat else None, _xmp_gps(lon[1]) if lon else None
    if la is not None and lo is not None:
        put("latitude", la)
        put("longitude", lo)
    _keywords(rdf, fields, source, iptc, override=override)
    put("people", xmp.face_names(rdf))


def _keywords(
    rdf: Any, fields: dict[str, dict[str, Any]], source: str, iptc: list[str], *, override: bool = False
) -> None:
    """Immich's rule: TagsList, else hierarchicalSubject (`|` to `/`; a `/` inside a level to `|`),
    else IPTC Keywords; dc:subject last, as a hint of keywords Immich does not import."""
    found: tuple[list[str], str] | None = None
    if rdf is not None and (tags := xmp.values(rdf, "digiKam:TagsList")):
        found = (tags, f"{source}:digiKam:TagsList")
    elif rdf is not None and (tags := xmp.values(rdf, "lr:hierarchicalSubject")):
        found = (
            ["/".join(level.replace("/", "|") for level in t.split("|")) for t in tags],
            f"{source}:lr:hierarchicalSubject",
        )
    elif iptc and "tags" not in fields:
        found = (iptc, IPTC)
    elif rdf is not None and (tags := xmp.values(rdf, "dc:subject")):
        found = (tags, f"{source}:dc:subject")
    if found is not None and (override or "tags" not in fields):
        fields["tags"] = {"value": sorted(dict.fromkeys(found[0])), "source": found[1]}


def _jpeg_iptc_keywords(handle: Any) -> list[str]:
    """IPTC Keywords (2:25) of a JPEG's Photoshop APP13 segment."""
    handle.seek(0)
    if handle.read(2) != b"\xff\xd8":
        return []
    for marker, body in exif_reader.jpeg_segments(handle):
        if marker == 0xED and body.startswith(b"Photoshop 3.0\x00"):
            return _iptc_keywords(body[14:])
    return []


def _iptc_keywords(irb: bytes) -> list[str]:
    keywords: list[str] = []
    pos = 0
    while pos + 12 <= len(irb) and irb[pos : pos + 4] == b"8BIM":
        resource = struct.unpack(">H", irb[pos + 4 : pos + 6])[0]
        name_length = irb[pos + 6]
        pos += 7 + name_length + ((name_length + 1) & 1)  # the name, padded to an even length
        size = struct.unpack(">I", irb[pos : pos + 4])[0]
        data = irb[pos + 4 : pos + 4 + size]
        pos += 4 + size + (size & 1)
        if resource == 0x0404:
            at = 0
            while at + 5 <= len(data) and data[at] == 0x1C:
                record, dataset, count = data[at + 1], data[at + 2], struct.unpack(">H", data[at + 3 : at + 5])[0]
                if record == 2 and dataset == 25:
                    keywords.append(data[at + 5 : at + 5 + count].decode("utf-8", "replace"))
                at += 5 + count
    return keywords
