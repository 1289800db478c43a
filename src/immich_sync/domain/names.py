"""How file names are compared: one rule, used by the scan, the matcher and the cache index."""

from __future__ import annotations

import posixpath
import unicodedata
from functools import lru_cache


@lru_cache(maxsize=4096)  # a run normalises each asset's name three times (index, look-ahead, matcher)
def normalise_name(name: str) -> str:
    """Unicode NFC and case-folded, so `IMG_0001.JPG`, `img_0001.jpg` and a macOS NFD name agree.

    Idempotent: normalising twice changes nothing (case folding can leave a string that is not
    NFC, hence the second NFC).
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def asset_file_name(original_file_name: str | None, original_path: str | None) -> str:
    """The file name an asset had on disk.

    Older servers (v1.82, v1.95) sent `originalFileName` without its extension
    (`PXL_20231006_063851485`): the extension is then taken from `originalPath`.
    """
    name = original_file_name or ""
    if "." in name.lstrip("."):  # the common case: the name has its extension
        return name
    path_name = posixpath.basename((original_path or "").replace("\\", "/"))
    if not name:
        return path_name
    _, path_ext = posixpath.splitext(path_name)
    if path_ext and not posixpath.splitext(name)[1]:
        return name + path_ext
    return name
