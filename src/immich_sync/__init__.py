"""immich-sync: a local JSON cache of an Immich server's assets, each mapped to its file in a folder.

    from immich_sync import load_cache
    cache = load_cache("log/cache_Photos.json")
    for node in cache.find_file("/photos/2024/IMG_0001.JPG"):
        print(node.id, node.match.status, node.asset_raw["exifInfo"])
"""

__version__ = "0.1.0"

from .api import load_cache, open_cache, save_cache  # noqa: E402
from .domain.asset import Asset  # noqa: E402
from .domain.cache import CacheNode, ImmichCache  # noqa: E402
from .domain.index import CacheIndex  # noqa: E402
from .domain.match import Confidence, MatchResult, Status  # noqa: E402

__all__ = ["Asset", "CacheIndex", "CacheNode", "Confidence", "ImmichCache", "MatchResult", "Status",
           "load_cache", "open_cache", "save_cache", "__version__"]
