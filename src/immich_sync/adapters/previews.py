"""Local previews for the review page: a JPEG of at most PREVIEW_PX on its long side, uncropped,
turned upright, made on first request and kept in a folder beside the cache file (never in it).

JPEG, PNG, WebP, TIFF and GIF through Pillow, HEIC/HEIF through pillow-heif, raw files through the
largest JPEG preview they embed (cameras store one for their own screen); anything else gets
None (the page shows a placeholder)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

PREVIEW_PX = 1024
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".rw2", ".orf", ".raf", ".pef", ".srw"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
RAW_READ_LIMIT = 64 << 20  # the embedded previews sit in a raw file's first megabytes
_heif_lock = threading.Lock()
_heif_ready = False


def _open_heif() -> bool:
    global _heif_ready
    with _heif_lock:
        if not _heif_ready:
            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
                _heif_ready = True
            except ImportError:
                return False
    return True


def embedded_jpeg(data: bytes):
    """The largest JPEG inside a raw file's bytes, opened, or None."""
    from PIL import Image, UnidentifiedImageError

    best, best_area = None, 0
    start = 0
    for _ in range(64):  # a raw holds a few: a thumbnail, a screen preview, a full-size one
        at = data.find(b"\xff\xd8\xff", start)
        if at < 0:
            break
        start = at + 3
        try:
            image = Image.open(io.BytesIO(data[at:]))
            if image.format != "JPEG":
                continue
            area = image.size[0] * image.size[1]
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            continue
        if area > best_area:
            best, best_area = image, area
    return best


def open_image(path: str):
    """The picture in the file, opened with Pillow, or None when it cannot show it."""
    from PIL import Image, UnidentifiedImageError

    extension = os.path.splitext(path)[1].lower()
    try:
        if extension in RAW_EXTENSIONS:
            with open(path, "rb") as handle:
                found = embedded_jpeg(handle.read(RAW_READ_LIMIT))
            if found is not None:
                return found
            image = Image.open(path)  # a TIFF-based raw's first image (often its thumbnail)
            image.load()
            return image
        if extension in HEIF_EXTENSIONS and not _open_heif():
            return None
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        log.info("no preview of %s: %s", path, exc)
        return None


class PreviewStore:
    """Previews in `folder`, one per file version (path, size and mtime name it)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def key(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()

    def get(self, path: str) -> bytes | None:
        """The preview's JPEG bytes (made now if needed), or None when there can be none."""
        key = self.key(path)
        if key is None:
            return None
        kept = self.folder / f"{key}.jpg"
        try:
            return kept.read_bytes()
        except OSError:
            pass
        data = render(path)
        if data is None:
            return None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = kept.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, kept)
        except OSError as exc:  # a read-only folder: serve it anyway, made again next time
            log.info("preview of %s not kept: %s", path, exc)
        return data


def render(path: str, size: int = PREVIEW_PX) -> bytes | None:
    from PIL import ImageOps

    image = open_image(path)
    if image is None:
        return None
    try:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((size, size))  # keeps the aspect ratio: nothing is cropped
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return out.getvalue()
    except (OSError, ValueError, SyntaxError) as exc:
        log.info("no preview of %s: %s", path, exc)
        return None
