"""XMP packets: found in a file's bytes (JPEG, TIFF and raw, PNG, WebP, HEIC, MP4/MOV) or read from a
sidecar, and parsed as untrusted XML (defusedxml: no DTD, no entities, no external references).
A packet that is broken, hostile or huge gives a warning naming the file and no values."""

from __future__ import annotations

import re
import struct
import zlib
from typing import BinaryIO
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from .exif_reader import chunk, jpeg_segments

MAX_PACKET = 4 << 20  # bigger than any real packet (Lightroom's are tens of KB)
SCAN_LIMIT = 8 << 20  # how far into a file without a known XMP place a packet is looked for
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_PNG = b"XML:com.adobe.xmp\x00"
_XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_PACKET = re.compile(rb"<x:xmpmeta[\s>].*?</x:xmpmeta>|<rdf:RDF[\s>].*?</rdf:RDF>", re.DOTALL)

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "xml": "http://www.w3.org/XML/1998/namespace",
}


class XmpError(Exception):
    """The packet cannot be used; the message says why, for one warning."""


def packet_in_file(handle: BinaryIO, size: int) -> bytes | None:
    """The raw XMP packet embedded in an image or a movie, or None."""
    handle.seek(0)
    head = handle.read(min(size, 64))
    if head[:2] == b"\xff\xd8":
        return _jpeg(handle)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(handle)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _riff(handle)
    if head[4:8] in (b"ftyp", b"moov", b"wide", b"mdat", b"free", b"skip") and not head[8:12].startswith(b"hei"):
        found = _bmff(handle, 0, size)
        if found is not None:
            return found
    return _scan(handle)  # TIFF and raw (tag 700), HEIC (a mime item), anything else


def _scan(handle: BinaryIO) -> bytes | None:
    handle.seek(0)
    data = handle.read(SCAN_LIMIT)
    found = _PACKET.search(data)
    return found.group(0) if found else None


def _jpeg(handle: BinaryIO) -> bytes | None:
    """APP1 segments with the XMP signature (the standard packet; extended XMP is not merged)."""
    for marker, body in jpeg_segments(handle):
        if marker == 0xE1 and body.startswith(_XMP_JPEG):
            return body[len(_XMP_JPEG) :]
    return None


def _png(handle: BinaryIO) -> bytes | None:
    """The iTXt chunk with Adobe's XMP keyword (its text zlib-compressed when flagged)."""
    body = chunk(handle, 8, b"iTXt", ">I4s", trailer=4, pad=False, accept=lambda d: d.startswith(_XMP_PNG))
    if body is None:
        return None
    rest = body[len(_XMP_PNG) :]
    compressed = rest[:1] == b"\x01"
    text = rest[2:].split(b"\x00", 2)[-1]  # language and translated keyword, then the text
    return zlib.decompress(text) if compressed else text


def _riff(handle: BinaryIO) -> bytes | None:
    return chunk(handle, 12, b"XMP ", "<4sI", trailer=0, pad=True)


def _bmff(handle: BinaryIO, start: int, end: int) -> bytes | None:
    """A movie's XMP: a top-level `uuid` box (Adobe's XMP UUID) or `moov/udta/XMP_` (QuickTime)."""
    pos = start
    while pos + 8 <= end:
        handle.seek(pos)
        header = handle.read(16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I4s", header[:8])
        payload = pos + 8
        if size == 1 and len(header) == 16:
            size, payload = struct.unpack(">Q", header[8:])[0], pos + 16
        elif size == 0:
            size = end - pos
        if size < 8:
            return None
        if kind == b"uuid":
            handle.seek(payload)
            if handle.read(16) == _XMP_UUID:
                return handle.read(min(size - (payload - pos) - 16, MAX_PACKET))
        elif kind in (b"moov", b"udta", b"trak"):
            found = _bmff(handle, payload, pos + size)
            if found is not None:
                return found
        elif kind == b"XMP_":
            handle.seek(payload)
            return handle.read(min(size - 8, MAX_PACKET))
        pos += size
    return None


def parse(packet: bytes) -> Element:
    """The packet's rdf:RDF element, parsed defensively."""
    if len(packet) > MAX_PACKET:
        raise XmpError(f"XMP packet of {len(packet)} bytes, more than {MAX_PACKET}")
    text = packet.strip(b"\x00 \r\n\t")
    if text.startswith(b"<?xpacket"):
        text = text.split(b"?>", 1)[-1]
    end = text.rfind(b"<?xpacket")
    if end >= 0:
        text = text[:end]
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise XmpError(f"not usable XML ({type(exc).__name__}: {exc})") from None
    if root.tag == f"{{{NS['rdf']}}}RDF":
        return root
    rdf = root.find("rdf:RDF", NS)
    if rdf is None:
        raise XmpError("no rdf:RDF in the XMP packet")
    return rdf


def _q(name: str) -> str:
    prefix, local = name.split(":", 1)
    return f"{{{NS[prefix]}}}{local}"


def values(rdf: Element, name: str) -> list[str]:
    """A property's values wherever XMP allows it: an attribute of an rdf:Description, or an
    element holding text, an rdf:Alt / Bag / Seq of rdf:li (x-default first for an Alt)."""
    key = _q(name)
    found: list[str] = []
    for desc in rdf.iter(_q("rdf:Description")):
        if key in desc.attrib:
            found.append(desc.attrib[key])
        for element in desc.findall(key):
            container = next(iter(element), None)
            if container is None:
                if (element.text or "").strip():
                    found.append(element.text.strip())  # type: ignore[union-attr]
                continue
            items = container.findall("rdf:li", NS)
            items.sort(key=lambda li: li.get(_q("xml:lang")) != "x-default")
            found.extend((li.text or "").strip() for li in items if (li.text or "").strip())
    return found


def first(rdf: Element, *names: str) -> tuple[str, str] | None:
    """The first property among `names` that has a value: (name, value)."""
    for name in names:
        got = values(rdf, name)
        if got:
            return name, got[0]
    return None


def face_names(rdf: Element) -> list[str]:
    """People named in MWG face regions (mwg-rs:RegionList, Type Face)."""
    names = []
    for region in rdf.iter(_q("mwg-rs:RegionList")):
        for li in region.iter(_q("rdf:li")):
            for desc in [li, *li.findall("rdf:Description", NS)]:
                kind = desc.get(_q("mwg-rs:Type")) or _text(desc.find("mwg-rs:Type", NS))
                name = desc.get(_q("mwg-rs:Name")) or _text(desc.find("mwg-rs:Name", NS))
                if name and (kind or "Face") == "Face":
                    names.append(name)
    return list(dict.fromkeys(names))


def _text(element: Element | None) -> str | None:
    return (element.text or "").strip() or None if element is not None else None
