"""A file's capture date-time, read inside this project with piexif.

piexif parses a raw EXIF (TIFF) block; this module only has to find that block in each container:
JPEG (APP1), TIFF and TIFF-based raw (DNG, CR2, NEF, ARW, RW2, ORF, PEF), WebP (the RIFF `EXIF`
chunk), PNG (eXIf chunk), HEIC/HEIF/AVIF (the `Exif` item of the ISO-BMFF `meta` box), Canon
CR3 (the CMT2 box) and Fujifilm RAF (its embedded JPEG). QuickTime/MP4 video has no EXIF: its
dates are read as Immich reads them (`_quicktime_date`: Keys:CreationDate with its offset, then
`©day`, then the `mvhd` time as UTC). Only the needed bytes
are read: the first 128 KiB, more only when an EXIF offset points further. Anything unreadable
or corrupt gives None, never an exception.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import piexif
from piexif._exif import TAGS as _PIEXIF_TAGS  # piexif 1.1.x, pinned in pyproject.toml
from piexif._load import _ExifReader

from ..domain.library import CaptureTime

log = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)  # binary on Windows
HEAD = 128 * 1024  # a JPEG's EXIF segment is at most 64 KiB and comes first; TIFF IFDs are near the start
MAX_TIFF_READ = 64 * 1024 * 1024  # a raw file whose EXIF reaches further than this is not worth reading
_QT_EPOCH = datetime(1904, 1, 1)
_QT_FIRST_BOXES = {b"moov", b"wide", b"mdat", b"free", b"skip", b"pnot"}
_CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_DATE = re.compile(rb"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(rb"([+\-])(\d{2}):?(\d{2})")
# Tiff-based raw formats with a maker's own magic: same structure after the first 4 bytes.
_TIFF_MAGICS = {b"II*\x00", b"MM\x00*"}
_RAW_MAGICS = {b"IIU\x00": b"II*\x00", b"IIRO": b"II*\x00", b"IIRS": b"II*\x00", b"MMOR": b"MM\x00*"}

# (date tag, sub-second tag, offset tag, name), in Immich's priority: SubSecDateTimeOriginal,
# SubSecCreateDate, DateTimeOriginal, CreateDate (= DateTimeDigitized), then GPSDateTime.
_DATE_TAGS = (
    (piexif.ExifIFD.DateTimeOriginal, piexif.ExifIFD.SubSecTimeOriginal, 0x9011, "DateTimeOriginal"),
    (piexif.ExifIFD.DateTimeDigitized, piexif.ExifIFD.SubSecTimeDigitized, 0x9012, "CreateDate"),
)


def read_capture_time(path: str) -> CaptureTime | None:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        log.debug("no capture time in %s: %s: %s", path, type(exc).__name__, exc)
        return None
    try:
        # A JPEG, most of a library, is decided by its first bytes: read them with the file
        # descriptor, and make a file object (a few microseconds a file) only for the formats
        # that seek.
        head = os.read(fd, min(HEAD, os.fstat(fd).st_size))
        if head[:2] == b"\xff\xd8":
            return _from_tiff(_jpeg_exif(head))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            handle.seek(len(head))
            return _read_rest(head, handle)
    except Exception as exc:
        log.debug("no capture time in %s: %s: %s", path, type(exc).__name__, exc)
        return None
    finally:
        os.close(fd)


def read_capture_times(paths: list[str]) -> list[CaptureTime | None]:
    """Several files' capture times, in order: the unit of work of a reader process."""
    return [read_capture_time(path) for path in paths]


def capture_time_of(handle: BinaryIO) -> CaptureTime | None:
    """`read_capture_time` of a file already open."""
    try:
        handle.seek(0)
        return _read(handle)
    except Exception as exc:
        log.debug("no capture time: %s: %s", type(exc).__name__, exc)
        return None


def exif_block(handle: BinaryIO) -> bytes | None:
    """The TIFF block of a file's EXIF (JPEG, TIFF and TIFF-based raw, WebP, PNG, HEIC), or None."""
    handle.seek(0)
    size = os.fstat(handle.fileno()).st_size
    head = handle.read(min(HEAD, size))
    if head[:2] == b"\xff\xd8":
        return _jpeg_exif(head)
    if head[:4] in _TIFF_MAGICS or head[:4] in _RAW_MAGICS:
        handle.seek(0)
        data = handle.read(min(size, MAX_TIFF_READ))
        return _RAW_MAGICS.get(data[:4], data[:4]) + data[4:]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_exif(handle)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_exif(head, handle)
    if head[4:8] == b"ftyp" and head[8:12] != b"crx ":
        for kind, payload, end in _boxes(handle, 0, None):
            if kind == b"meta":
                return _heif_exif(handle, payload + 4, end)
    return None


def _read(handle: BinaryIO) -> CaptureTime | None:
    # Ask for no more than the file holds: read(n) allocates n bytes first, and most files of a
    # test library (and all sidecar-sized ones) are far smaller than HEAD.
    return _read_rest(handle.read(min(HEAD, os.fstat(handle.fileno()).st_size)), handle)


def _read_rest(head: bytes, handle: BinaryIO) -> CaptureTime | None:
    """The capture time of a file whose first bytes are `head`, `handle` standing just after them."""
    if head[:2] == b"\xff\xd8":
        return _from_tiff(_jpeg_exif(head))
    if head[:4] in _TIFF_MAGICS or head[:4] in _RAW_MAGICS:
        return _from_tiff_file(head, handle)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _from_tiff(_webp_exif(handle))
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return _from_tiff(_png_exif(head, handle))
    if head[4:8] == b"ftyp":
        return _from_bmff(head, handle)
    if head[4:8] in _QT_FIRST_BOXES:  # an older QuickTime movie, without ftyp
        return _from_bmff(head, handle)
    if head[:16] == b"FUJIFILMCCD-RAW ":
        return _raf(handle)
    return None


def _from_tiff_file(head: bytes, handle: BinaryIO) -> CaptureTime | None:
    """Raw and TIFF files: try the first 128 KiB; read more only when an IFD points beyond it."""
    data = head
    while True:
        tiff = _RAW_MAGICS.get(data[:4], data[:4]) + data[4:]
        try:
            return _date_from_tiff(tiff, strict=True)
        except _IFD_ERRORS:
            if len(data) < len(head) or len(data) >= MAX_TIFF_READ or len(head) < HEAD:
                return _date_from_tiff(tiff)
            more = handle.read(min(len(data) * 8, MAX_TIFF_READ) - len(data))
            if not more:
                return _date_from_tiff(tiff)
            data += more


def _from_tiff(tiff: bytes | None) -> CaptureTime | None:
    if not tiff or tiff[:4] not in _TIFF_MAGICS:
        return None
    return _date_from_tiff(tiff)


_IFD_ERRORS = (struct.error, ValueError, IndexError, KeyError, TypeError)


def _date_from_tiff(tiff: bytes, strict: bool = False) -> CaptureTime | None:
    """The capture time in a TIFF block, reading only the IFDs that can hold it with piexif's IFD
    reader: IFD0, then the Exif IFD, and the GPS IFD only when neither has a date. The thumbnail
    IFD is never read, so a broken one (as some Kodak cameras and editors write) loses nothing.
    `strict` raises on an IFD that cannot be read, so that the caller can read more of the file."""
    reader = _ExifReader.__new__(_ExifReader)  # its __init__ only copies the block out of a container
    reader.tiftag = tiff
    reader.endian_mark = "<" if tiff[:2] == b"II" else ">"

    def ifd(pointer: object, name: str) -> dict:
        if not isinstance(pointer, int):
            return {}
        try:
            return _date_tags(reader, pointer, name, strict) if name in _WANTED else reader.get_ifd_dict(pointer, name)
        except _IFD_ERRORS:
            if strict:
                raise
            return {}

    ifd0 = ifd(struct.unpack(reader.endian_mark + "L", tiff[4:8])[0] if len(tiff) >= 8 else None, "0th")
    exif = ifd(ifd0.get(piexif.ImageIFD.ExifTag), "Exif")
    found = _date_in(exif) or _date_in(ifd0)  # CR3 and some TIFFs put Exif tags in IFD0
    if found is not None:
        return found
    return _gps_time(ifd(ifd0.get(piexif.ImageIFD.GPSTag), "GPS"))


# The tags `_date_from_tiff` reads of IFD0 and of the Exif IFD: the IFD pointers and the date,
# sub-second and offset tags, as far as piexif knows them in that IFD (`get_ifd_dict` converts
# only the tags it knows).
_DATE_TAG_IDS = frozenset(tag for row in _DATE_TAGS for tag in row[:3])
_WANTED = {
    "0th": frozenset({piexif.ImageIFD.ExifTag, piexif.ImageIFD.GPSTag} | _DATE_TAG_IDS)
    & frozenset(_PIEXIF_TAGS["Image"]),
    "Exif": _DATE_TAG_IDS & frozenset(_PIEXIF_TAGS["Exif"]),
}
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def _date_tags(reader: _ExifReader, pointer: int, name: str, strict: bool) -> dict:
    """What piexif's `get_ifd_dict(pointer, name)` gives for the tags in `_WANTED[name]`: the same
    walk of the IFD's 12-byte entries, each value converted by piexif, but only for those few
    tags. A camera's Exif IFD holds 30-60 tags (a maker note among them); converting all of them
    took four fifths of a JPEG's read (~210 against ~45 microseconds a file on the camera
    samples). `strict` also refuses a wanted value that lies past the bytes read, so that the
    caller reads more of the file."""
    tiff, order = reader.tiftag, reader.endian_mark
    wanted = _WANTED[name]
    (count,) = struct.unpack(order + "H", tiff[pointer : pointer + 2])
    table = tiff[pointer + 2 : pointer + 2 + 12 * count]
    if len(table) != 12 * count:
        raise struct.error("the IFD runs past the bytes read")
    found: dict = {}
    for tag, kind, number, value in struct.iter_unpack(order + "HHL4s", table):
        if tag in wanted:
            size = _TYPE_SIZES.get(kind, 1) * number
            if strict and size > 4 and struct.unpack(order + "L", value)[0] + size > len(tiff):
                raise struct.error("a value lies past the bytes read")
            found[tag] = reader.convert_value((kind, number, value, tag))
    return found


def jpeg_segments(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(marker, body) of each segment of a JPEG before its image data, in order. Fill bytes and
    standalone markers are skipped; the walk ends at the start of scan, the end of the image, or
    where the file ends (a truncated last body is given as it is)."""
    handle.seek(2)
    while True:
        head = handle.read(2)
        if len(head) < 2 or head[0] != 0xFF:
            return
        marker = head[1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata
            return
        if marker == 0xFF:  # a fill byte: the next one may start the marker
            handle.seek(-1, 1)
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers carry no length
            continue
        size = handle.read(2)
        if len(size) < 2:
            return
        yield marker, handle.read(max(0, struct.unpack(">H", size)[0] - 2))


def _jpeg_exif(data: bytes) -> bytes | None:
    """The TIFF block of the first `Exif` APP1 segment. The same walk as `jpeg_segments`, over the
    bytes already read: it runs once per asset while matching, where the generator over a stream
    costs four times as much (2.5 against 0.6 microseconds a file)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata
            return None
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
            return segment[6:]
        pos += 2 + length
    return None


def chunk(
    handle: BinaryIO,
    pos: int,
    wanted: bytes,
    header: str,
    trailer: int,
    pad: bool,
    accept: Callable[[bytes], bool] | None = None,
) -> bytes | None:
    """Walk a chunked file (RIFF, PNG) by seeking from `pos` to the chunk `wanted` (the first whose
    data `accept` takes, when given); its data, or None. `header` unpacks (kind, length) or
    (length, kind); `trailer` bytes (PNG's CRC) follow the data."""
    while True:
        handle.seek(pos)
        raw = handle.read(8)
        if len(raw) < 8:
            return None
        first, second = struct.unpack(header, raw)
        kind, length = (first, second) if isinstance(first, bytes) else (second, first)
        if kind == wanted:
            data = handle.read(min(length, MAX_TIFF_READ))
            if accept is None or accept(data):
                return data
        if kind == b"IEND":
            return None
        pos += 8 + length + trailer + (length & 1 if pad else 0)


def _webp_exif(handle: BinaryIO) -> bytes | None:
    """WebP's EXIF chunk (it follows the image data; some writers keep an "Exif" header before the TIFF block)."""
    data = chunk(handle, 12, b"EXIF", "<4sI", trailer=0, pad=True)
    return data[6:] if data and data[:6] == b"Exif\x00\x00" else data


def _png_exif(head: bytes, handle: BinaryIO) -> bytes | None:
    """PNG 1.5's eXIf chunk (it may follow the image data)."""
    return chunk(handle, 8, b"eXIf", ">I4s", trailer=4, pad=False)


def _boxes(handle: BinaryIO, start: int, end: int | None):
    """ISO-BMFF boxes between two offsets: (type, payload offset, end offset)."""
    pos = start
    while end is None or pos + 8 <= end:
        handle.seek(pos)
        header = handle.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header[:8])
        payload = pos + 8
        if size == 1:
            if len(header) < 16:
                return
            size = struct.unpack(">Q", header[8:16])[0]
            payload = pos + 16
        elif size == 0:
            handle.seek(0, 2)
            size = handle.tell() - pos
        if size < payload - pos:
            return
        yield kind, payload, pos + size
        pos += size


def _child(handle: BinaryIO, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in _boxes(handle, start, end):
        if found == kind:
            return payload, box_end
    return None


def _from_bmff(head: bytes, handle: BinaryIO) -> CaptureTime | None:
    brand = head[8:12]
    if brand == b"crx ":
        return _cr3(handle)
    meta = moov = None
    for kind, payload, end in _boxes(handle, 0, None):
        if kind == b"meta":
            meta = (payload + 4, end)  # full box: skip version and flags
        elif kind == b"moov":
            moov = (payload, end)
    if meta is not None:
        found = _from_tiff(_heif_exif(handle, *meta))
        if found is not None:
            return found
    if moov is not None:
        return _quicktime_date(handle, *moov)
    return None


def _heif_exif(handle: BinaryIO, start: int, end: int) -> bytes | None:
    exif_ids: set[int] = set()
    locations: dict[int, list[tuple[int, int]]] = {}
    for kind, payload, box_end in _boxes(handle, start, end):
        handle.seek(payload)
        body = handle.read(min(box_end - payload, 1 << 20))
        if kind == b"iinf":
            exif_ids = _heif_exif_item_ids(body)
        elif kind == b"iloc":
            locations = _heif_locations(body)
    for item in sorted(exif_ids):
        extents = locations.get(item)
        if not extents:
            continue
        data = b""
        for offset, length in extents:
            handle.seek(offset)
            data += handle.read(min(length, MAX_TIFF_READ))
        if len(data) < 4:
            continue
        skip = struct.unpack(">I", data[:4])[0]
        tiff = data[4 + skip :]
        if tiff[:4] not in _TIFF_MAGICS:  # some writers count the offset differently
            at = data.find(b"Exif\x00\x00")
            tiff = data[at + 6 :] if at >= 0 else b""
        return tiff or None
    return None


def _heif_exif_item_ids(body: bytes) -> set[int]:
    version = body[0]
    count_size = 2 if version == 0 else 4
    pos = 4 + count_size
    ids: set[int] = set()
    while pos + 8 <= len(body):
        size, kind = struct.unpack(">I4s", body[pos : pos + 8])
        if size < 8:
            break
        if kind == b"infe":
            entry = body[pos + 8 : pos + size]
            entry_version = entry[0]
            if entry_version >= 2:
                id_size = 2 if entry_version == 2 else 4
                item_id = int.from_bytes(entry[4 : 4 + id_size], "big")
                item_type = entry[4 + id_size + 2 : 4 + id_size + 6]
                if item_type == b"Exif":
                    ids.add(item_id)
        pos += size
    return ids


def _heif_locations(body: bytes) -> dict[int, list[tuple[int, int]]]:
    version = body[0]
    offset_size, length_size = body[4] >> 4, body[4] & 15
    base_size, index_size = body[5] >> 4, (body[5] & 15) if version in (1, 2) else 0
    pos = 6

    def take(n: int) -> int:
        nonlocal pos
        value = int.from_bytes(body[pos : pos + n], "big") if n else 0
        pos += n
        return value

    count = take(2 if version < 2 else 4)
    out: dict[int, list[tuple[int, int]]] = {}
    for _ in range(count):
        item_id = take(2 if version < 2 else 4)
        method = take(2) & 15 if version in (1, 2) else 0
        take(2)  # data reference index
        base = take(base_size)
        extents = []
        for _ in range(take(2)):
            take(index_size)
            extents.append((base + take(offset_size), take(length_size)))
        if method == 0:
            out[item_id] = extents
    return out


def _cr3(handle: BinaryIO) -> CaptureTime | None:
    """Canon CR3: moov/uuid(85c0b687...)/CMT2 holds the Exif IFD as a TIFF block."""
    moov = None
    for kind, payload, end in _boxes(handle, 0, None):
        if kind == b"moov":
            moov = (payload, end)
            break
    if moov is None:
        return None
    for kind, payload, end in _boxes(handle, *moov):
        handle.seek(payload)
        if kind == b"uuid" and handle.read(16) == _CR3_UUID:
            for sub, sub_payload, sub_end in _boxes(handle, payload + 16, end):
                if sub == b"CMT2":
                    handle.seek(sub_payload)
                    return _from_tiff(_exif_ifd_as_tiff(handle.read(min(sub_end - sub_payload, MAX_TIFF_READ))))
    return None


def _exif_ifd_as_tiff(tiff: bytes) -> bytes:
    """CR3's CMT2 is a TIFF whose first IFD *is* the Exif IFD; piexif keeps only IFD0's own tags,
    so append a one-entry IFD0 that points (tag 34665, ExifIFD) at it."""
    if tiff[:4] not in _TIFF_MAGICS:
        return b""
    order = "<" if tiff[:2] == b"II" else ">"
    first_ifd = struct.unpack(order + "I", tiff[4:8])[0]
    new_ifd = len(tiff) + (len(tiff) & 1)
    ifd0 = struct.pack(order + "HHHII", 1, piexif.ImageIFD.ExifTag, 4, 1, first_ifd) + struct.pack(order + "I", 0)
    return tiff[:4] + struct.pack(order + "I", new_ifd) + tiff[8:] + b"\x00" * (new_ifd - len(tiff)) + ifd0


def _raf(handle: BinaryIO) -> CaptureTime | None:
    """Fujifilm RAF: a big-endian pointer at byte 84 to an embedded JPEG that carries the EXIF."""
    handle.seek(84)
    offset = struct.unpack(">I", handle.read(4))[0]
    handle.seek(offset)
    return _from_tiff(_jpeg_exif(handle.read(HEAD)))


_QT_DATE = re.compile(
    rb"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?\s*(Z|[+\-]\d{2}:?\d{2})?"
)
_APPLE_CREATION_DATE = b"com.apple.quicktime.creationdate"
_DAY = b"\xa9day"
_MAX_META = 1 << 20  # a metadata box larger than this is not read


def _quicktime_date(handle: BinaryIO, start: int, end: int) -> CaptureTime | None:
    """A QuickTime/MP4 video's capture time as Immich reads it:

    1. `Keys:CreationDate` (`com.apple.quicktime.creationdate` in moov/meta: a `keys` box naming
       the keys and an `ilst` holding their values), local time with its offset, as every iPhone
       writes it (live-photo video parts too);
    2. `©day` in moov/udta (QuickTime user data: a text with a 16-bit length and language, or an
       iTunes-style `data` atom; also inside udta/meta/ilst), which some Android phones and
       cameras write, with its offset when it has one;
    3. the `mvhd` creation time, a UTC instant, taken as UTC (Immich's `CreateDate`), only when
       neither says more.
    """
    created = day = None
    mvhd: CaptureTime | None = None
    for kind, payload, box_end in _boxes(handle, start, end):
        if kind == b"mvhd":
            mvhd = _mvhd_time(handle, payload)
        elif kind == b"meta" and created is None:
            created = _keys_value(handle, payload, box_end, _APPLE_CREATION_DATE)
        elif kind == b"udta" and day is None:
            day = _udta_day(handle, payload, box_end)
    for text, source in ((created, "QuickTime:CreationDate"), (day, "QuickTime:ContentCreateDate")):
        found = _qt_text_date(text, source)
        if found is not None:
            return found
    return mvhd


def _mvhd_time(handle: BinaryIO, payload: int) -> CaptureTime | None:
    handle.seek(payload)
    body = handle.read(12)
    if len(body) < 8:
        return None
    seconds = struct.unpack(">Q", body[4:12])[0] if body[0] == 1 else struct.unpack(">I", body[4:8])[0]
    if seconds == 0:
        return None
    return CaptureTime(local=_QT_EPOCH + timedelta(seconds=seconds), offset_minutes=0, source="QuickTime:CreateDate")


def _qt_text_date(text: bytes | None, source: str) -> CaptureTime | None:
    """`2023-07-14T08:38:00+0200` (or `:`-separated, or with `Z`): the wall-clock time and its offset."""
    if not text:
        return None
    found = _QT_DATE.match(text)
    if not found:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in found.groups()[:6])
        local = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    zone = found.group(7)
    offset = 0 if zone == b"Z" else _parse_offset(zone)
    return CaptureTime(local=local, offset_minutes=offset, source=source)


def _meta_children_start(handle: BinaryIO, payload: int) -> int:
    """QuickTime's `meta` is a plain box, ISO/iTunes' a full box (4 bytes of version and flags)."""
    handle.seek(payload)
    head = handle.read(8)
    return payload if head[4:8] in (b"hdlr", b"keys", b"ilst") else payload + 4


def _keys_value(handle: BinaryIO, payload: int, end: int, wanted: bytes) -> bytes | None:
    """The value of one key (`mdta` namespace) in a QuickTime `meta` box: `keys` lists the key
    names, and `ilst` holds an item per key, typed by the key's 1-based index."""
    start = _meta_children_start(handle, payload)
    keys: dict[int, bytes] = {}
    ilst: tuple[int, int] | None = None
    for kind, body, box_end in _boxes(handle, start, end):
        if kind == b"keys":
            handle.seek(body)
            data = handle.read(min(box_end - body, _MAX_META))
            count = struct.unpack(">I", data[4:8])[0] if len(data) >= 8 else 0
            pos = 8
            for index in range(1, count + 1):
                if pos + 8 > len(data):
                    break
                size = struct.unpack(">I", data[pos : pos + 4])[0]
                if size < 8:
                    break
                keys[index] = data[pos + 8 : pos + size]
                pos += size
        elif kind == b"ilst":
            ilst = (body, box_end)
    wanted_index = next((index for index, name in keys.items() if name == wanted), None)
    if wanted_index is None or ilst is None:
        return None
    for kind, body, box_end in _boxes(handle, *ilst):
        if int.from_bytes(kind, "big") == wanted_index:
            return _data_atom(handle, body, box_end)
    return None


def _data_atom(handle: BinaryIO, start: int, end: int) -> bytes | None:
    """The value of an item's `data` atom (type indicator and locale, then the value)."""
    for kind, body, box_end in _boxes(handle, start, end):
        if kind == b"data":
            handle.seek(body)
            data = handle.read(min(box_end - body, _MAX_META))
            return data[8:] if len(data) > 8 else None
    return None


def _udta_day(handle: BinaryIO, start: int, end: int) -> bytes | None:
    for kind, body, box_end in _boxes(handle, start, end):
        if kind == _DAY:
            handle.seek(body)
            data = handle.read(min(box_end - body, _MAX_META))
            if data[4:8] == b"data":  # iTunes style
                return _data_atom(handle, body, box_end)
            if len(data) >= 4:  # QuickTime user-data text: length, language, text
                length = struct.unpack(">H", data[:2])[0]
                return data[4 : 4 + length]
        elif kind == b"meta":
            for sub, sub_body, sub_end in _boxes(handle, _meta_children_start(handle, body), box_end):
                if sub == b"ilst":
                    for item, item_body, item_end in _boxes(handle, sub_body, sub_end):
                        if item == _DAY:
                            return _data_atom(handle, item_body, item_end)
    return None


def _date_in(ifd: dict) -> CaptureTime | None:
    for date_tag, subsec_tag, offset_tag, name in _DATE_TAGS:
        moment = _parse_date(ifd.get(date_tag))
        if moment is None:
            continue
        subsec = ifd.get(subsec_tag)
        if isinstance(subsec, bytes):
            digits = subsec.strip(b"\x00 ").decode("ascii", "ignore")
            if digits.isdigit():
                moment = moment.replace(microsecond=int((digits + "000000")[:6]))
                name = "SubSec" + name
        return CaptureTime(local=moment, offset_minutes=_parse_offset(ifd.get(offset_tag)), source=name)
    return None


def _parse_date(value: object) -> datetime | None:
    if not isinstance(value, bytes):
        return None
    found = _DATE.search(value)
    if not found:
        return None
    try:
        year, month, day, hour, minute, second = map(int, found.groups())
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # 0000:00:00 00:00:00 and other placeholders
        return None


def _parse_offset(value: object) -> int | None:
    if not isinstance(value, bytes):
        return None
    found = _OFFSET.search(value)
    if not found:
        return None
    sign = -1 if found.group(1) == b"-" else 1
    return sign * (int(found.group(2)) * 60 + int(found.group(3)))


def _gps_time(gps: dict) -> CaptureTime | None:
    """GPSDateStamp + GPSTimeStamp, a UTC instant."""
    day = gps.get(piexif.GPSIFD.GPSDateStamp)
    hms = gps.get(piexif.GPSIFD.GPSTimeStamp)
    if not isinstance(day, bytes) or not hms or len(hms) != 3:
        return None
    try:
        numbers = [n / d for n, d in hms]
        base = datetime.strptime(day.strip(b"\x00 ").decode("ascii"), "%Y:%m:%d")
    except (ValueError, ZeroDivisionError, TypeError):
        return None
    moment = base + timedelta(hours=numbers[0], minutes=numbers[1], seconds=int(numbers[2]))
    return CaptureTime(local=moment.replace(tzinfo=UTC).replace(tzinfo=None), offset_minutes=0, source="GPSDateTime")
