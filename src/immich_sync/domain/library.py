"""The local library as plain data: what a scan of TARGET found, indexed by normalised name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from attrs import field, frozen

from .names import normalise_name


@frozen
class LibraryFile:
    path: str  # absolute path under TARGET
    relative: str  # path below TARGET with "/" separators
    size: int

    @property
    def name(self) -> str:
        return self.relative.rsplit("/", 1)[-1]


@frozen
class CaptureTime:
    """A file's capture date-time as read from its metadata: naive wall-clock time plus offset."""

    local: datetime  # naive
    offset_minutes: int | None = None  # from OffsetTimeOriginal & co, when the file has one
    source: str = "DateTimeOriginal"


@frozen
class LibraryIndex:
    """Every candidate file of TARGET, by normalised name and by size."""

    root: str
    by_name: Mapping[str, tuple[LibraryFile, ...]] = field(repr=False)
    by_size: Mapping[int, tuple[LibraryFile, ...]] = field(repr=False)
    by_path: Mapping[str, LibraryFile] = field(repr=False)
    # folders and files the scan could not read (absolute paths): matches made with this index are
    # provisional, and a matched file missing from one of them is not taken as gone
    unreadable: tuple[str, ...] = ()

    @classmethod
    def from_files(cls, root: str, files: Iterable[LibraryFile], unreadable: Iterable[str] = ()) -> LibraryIndex:
        by_name: dict[str, list[LibraryFile]] = {}
        by_size: dict[int, list[LibraryFile]] = {}
        by_path: dict[str, LibraryFile] = {}
        for f in files:
            by_name.setdefault(normalise_name(f.name), []).append(f)
            by_size.setdefault(f.size, []).append(f)
            by_path[f.path] = f
        # sorted by path: nothing downstream may depend on the order the disk listed files in
        return cls(
            root=root,
            by_name={k: _by_path(v) for k, v in by_name.items()},
            by_size={k: _by_path(v) for k, v in by_size.items()},
            by_path=by_path,
            unreadable=tuple(sorted(set(unreadable))),
        )

    def __len__(self) -> int:
        return len(self.by_path)

    def named(self, name: str) -> tuple[LibraryFile, ...]:
        return self.by_name.get(normalise_name(name), ())

    def sized(self, size: int) -> tuple[LibraryFile, ...]:
        return self.by_size.get(size, ())

    def get(self, path: str) -> LibraryFile | None:
        return self.by_path.get(path)

    def in_unreadable(self, path: str) -> bool:
        """The path is, or is under, a folder or file the scan could not read."""
        return any(path == u or path.startswith(u.rstrip("/") + "/") for u in self.unreadable)


def _path(f: LibraryFile) -> str:
    return f.path


def _by_path(files: list[LibraryFile]) -> tuple[LibraryFile, ...]:
    return (files[0],) if len(files) == 1 else tuple(sorted(files, key=_path))  # most names are unique
