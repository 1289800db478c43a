"""Set Immich's description from the file, where Immich has none and the file has one.

    python examples/set_descriptions.py /photos            # dry run: prints what it would change
    python examples/set_descriptions.py /photos --apply    # sends it to Immich

Works on the cache (`immich-cache /photos`, then `immich-cache-files /photos`): only assets found
at confidence high or exact, whose file (or XMP sidecar) has a description and whose Immich
description is empty. `--apply` sends `PUT /api/assets` in chunks of ids that share a description,
then asks Immich for those assets again and saves them in the cache. Server URL and API key as
for immich-cache (environment, .env, the official CLI's login file); the key needs asset.update.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from datetime import UTC, datetime

from immich_sync import Confidence, file_metadata, open_cache
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import ImmichConnection
from immich_sync.errors import ImmichSyncError
from immich_sync.services.extract import default_cache_path

CHUNK = 500  # ids per request: a body of ~20 KB, far below the server's 10 MB limit


def wanted(cache) -> dict[str, list[str]]:
    """description -> the ids of the assets that should get it."""
    groups: dict[str, list[str]] = defaultdict(list)
    for node in cache:
        summary = node.match_summary()
        if summary is None or Confidence.from_label(summary.confidence) < Confidence.HIGH:
            continue
        section = file_metadata(node)
        text = ((section or {}).get("description") or {}).get("value")
        held = ((node.asset_raw.get("exifInfo") or {}).get("description") or "").strip()
        if text and text.strip() and not held:
            groups[text.strip()].append(node.id)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--cache")
    parser.add_argument("--apply", action="store_true", help="send the changes (default: only print them)")
    args = parser.parse_args(argv)
    path = args.cache or default_cache_path(os.path.abspath(args.target))
    try:
        with open_cache(path) as cache:  # locked: no immich-cache run changes it meanwhile
            groups = wanted(cache)
            count = sum(len(ids) for ids in groups.values())
            for text, ids in groups.items():
                for asset_id in ids:
                    node = cache.get(asset_id)
                    print(f"{'set' if args.apply else 'would set'} {node.match.path}: {text!r}")
            if not args.apply or not count:
                print(
                    f"{count} assets {'would get' if not args.apply else 'get'} a description"
                    + (" (dry run: --apply sends them)" if not args.apply else "")
                )
                return 0
            connection = ImmichConnection(ImmichConfig.from_env())
            try:
                for text, ids in groups.items():
                    for at in range(0, len(ids), CHUNK):
                        connection.update_assets(ids[at : at + CHUNK], description=text)
                changed = [i for ids in groups.values() for i in ids]
                for _asset_id, raw in connection.get_assets(changed):
                    if raw is not None:
                        cache.upsert(raw, datetime.now(UTC))  # the newer updatedAt replaces it
            finally:
                connection.close()
            print(f"{count} assets got a description; the cache has them as Immich returns them now")
    except ImmichSyncError as exc:
        print(f"set_descriptions: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
