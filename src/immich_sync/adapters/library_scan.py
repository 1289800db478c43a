"""TARGET on disk: one walk that lists candidate files, plus the lazy reads the matcher asks for."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import threading

from ..domain.library import CaptureTime, LibraryFile, LibraryIndex
from . import exif_reader

log = logging.getLogger(__name__)

# NAS and desktop litter: never a photo, and never walked into.
SKIPPED_DIRS = frozenset({"@eadir", "#recycle", "#snapshot", ".@__thumb", "@recycle", ".ds_store",
                          "$recycle.bin", "system volume information", ".thumbnails", ".git"})
SKIPPED_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".picasa.ini", "picasa.ini"})
# Sidecars describe a photo; they are never candidates for one.
SIDECAR_EXTENSIONS = frozenset({".xmp", ".aae", ".json"})


def _skip_dir(name: str) -> bool:
    lowered = name.casefold()
    return lowered in SKIPPED_DIRS or lowered.startswith(".trash-") or lowered == ".trash"


def _skip_file(name: str) -> bool:
    lowered = name.casefold()
    return (lowered in SKIPPED_FILES or name.startswith("._")
            or os.path.splitext(lowered)[1] in SIDECAR_EXTENSIONS)


def scan_files(root: str):
    """Yield every candidate regular file under `root` (absolute), walking each real folder once.

    Directory symlinks are followed, but a folder already visited (same device and inode) is not
    entered again, so a symlink loop ends. Unreadable folders and files are logged and skipped.
    """
    root = os.path.abspath(root)
    seen: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
    except OSError as exc:
        log.warning("cannot read %s: %s", root, exc.strerror or exc)
        return
    seen.add((st.st_dev, st.st_ino))
    stack = [(root, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("skipped unreadable folder %s: %s", folder, exc.strerror or exc)
            continue
        for entry in entries:
            name = entry.name
            entry_rel = f"{rel}/{name}" if rel else name
            try:
                if entry.is_dir(follow_symlinks=True):
                    if _skip_dir(name):
                        continue
                    st = entry.stat(follow_symlinks=True)
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        log.debug("not entering %s again (symlink loop or repeat)", entry.path)
                        continue
                    seen.add(key)
                    stack.append((entry.path, entry_rel))
                    continue
                if _skip_file(name):
                    continue
                st = entry.stat(follow_symlinks=True)
                if not stat.S_ISREG(st.st_mode):
                    continue
                yield LibraryFile(path=entry.path, relative=entry_rel, size=st.st_size)
            except OSError as exc:
                log.warning("skipped unreadable %s: %s", entry.path, exc.strerror or exc)


def sha1_base64(path: str, chunk: int = 1 << 20) -> str | None:
    """SHA1 of a file's bytes in Immich's `checksum` form (base64), or None if it cannot be read."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as exc:
        log.warning("cannot hash %s: %s", path, exc.strerror or exc)
        return None
    return base64.b64encode(digest.digest()).decode("ascii")


class LocalLibrary:
    """The LibraryReader port on the real file system. Each file's date and hash is read once."""

    def __init__(self) -> None:
        self._times: dict[str, CaptureTime | None] = {}
        self._sums: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.reads = 0
        self.hashes = 0

    def scan(self, root: str) -> LibraryIndex:
        return LibraryIndex.from_files(os.path.abspath(root), scan_files(root))

    def capture_time(self, path: str) -> CaptureTime | None:
        if path not in self._times:
            value = exif_reader.read_capture_time(path)
            with self._lock:
                self._times[path] = value
                self.reads += 1
        return self._times[path]

    def sha1(self, path: str) -> str | None:
        if path not in self._sums:
            value = sha1_base64(path)
            with self._lock:
                self._sums[path] = value
                self.hashes += 1
        return self._sums[path]
