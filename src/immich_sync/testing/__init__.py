"""Test tooling shipped with the package so that the demo and the benchmarks can use it:
a fake Immich server on 127.0.0.1 (`fake_immich`) and generators of assets and photo files
(`factory`). Nothing here is used by the command itself."""
