from .entrypoints.cache_cli import run

run()
