"""immich-sync: a local JSON cache of an Immich server's assets, each mapped to its file in a folder.

from immich_sync import load_cache
cache = load_cache("log/cache_Photos.json")
for node in cache.find_file("/photos/2024/IMG_0001.JPG"):
    print(node.id, node.match.status, node.asset_raw["exifInfo"])
"""

__version__ = "0.2.0"

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
