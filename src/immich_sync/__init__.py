"""immich-sync: a local JSON cache of an Immich server's assets, each mapped to its file in a folder.

from immich_sync import load_cache
cache = load_cache("log/cache_Photos.json")
for node in cache.find_file("/photos/2024/IMG_0001.JPG"):
    print(node.id, node.match.status, node.asset_raw["exifInfo"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .api import diff, file_metadata, load_cache, open_cache, save_cache
    from .domain.asset import Asset
    from .domain.cache import CacheNode, ImmichCache
    from .domain.index import CacheIndex
    from .domain.match import Confidence, MatchResult, Status

__all__ = [
    "Asset",
    "CacheIndex",
    "CacheNode",
    "Confidence",
    "ImmichCache",
    "MatchResult",
    "Status",
    "__version__",
    "diff",
    "file_metadata",
    "load_cache",
    "open_cache",
    "save_cache",
]

# Each name is imported when first asked for (PEP 562): a process that needs one module (the
# reader processes, the listing's process, each started by spawn) does not import them all,
# which cost each of them ~0.15 s of CPU beside the run's own.
_WHERE = {
    "diff": ".api",
    "file_metadata": ".api",
    "load_cache": ".api",
    "open_cache": ".api",
    "save_cache": ".api",
    "Asset": ".domain.asset",
    "CacheNode": ".domain.cache",
    "ImmichCache": ".domain.cache",
    "CacheIndex": ".domain.index",
    "Confidence": ".domain.match",
    "MatchResult": ".domain.match",
    "Status": ".domain.match",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
