"""TARGET on disk: one walk that lists candidate files, plus the lazy reads the matcher asks for."""

from __future__ import annotations

import base64
import hashlib
import logging
import multiprocessing
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from ..domain.library import CaptureTime, LibraryFile, LibraryIndex
from . import exif_reader

log = logging.getLogger(__name__)

# NAS and desktop litter: never a photo, and never walked into.
SKIPPED_DIRS = frozenset(
    {
        "@eadir",
        "#recycle",
        "#snapshot",
        ".@__thumb",
        "@recycle",
        ".ds_store",
        "$recycle.bin",
        "system volume information",
        ".thumbnails",
        ".git",
    }
)
SKIPPED_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".picasa.ini", "picasa.ini"})
# Sidecars describe a photo; they are never candidates for one.
SIDECAR_EXTENSIONS = frozenset({".xmp", ".aae", ".json"})


def _skip_dir(name: str) -> bool:
    lowered = name.casefold()
    return lowered in SKIPPED_DIRS or lowered.startswith(".trash-") or lowered == ".trash"


def _skip_file(name: str) -> bool:
    lowered = name.casefold()
    return lowered in SKIPPED_FILES or name.startswith("._") or os.path.splitext(lowered)[1] in SIDECAR_EXTENSIONS


def scan_files(root: str, unreadable: list[str] | None = None) -> Iterator[LibraryFile]:
    """Yield every candidate regular file under `root` (absolute), walking each real folder once.

    Directory symlinks are followed, but a folder already visited (same device and inode) is not
    entered again, so a symlink loop ends. Unreadable folders and files are logged, skipped and
    appended to `unreadable`: the run must know that it saw only part of TARGET.
    """
    holes = unreadable if unreadable is not None else []
    root = os.path.abspath(root)
    seen: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
    except OSError as exc:
        log.warning("cannot read %s: %s", root, exc.strerror or exc)
        holes.append(root)
        return
    seen.add((st.st_dev, st.st_ino))
    stack = [(root, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("skipped unreadable folder %s: %s", folder, exc.strerror or exc)
            holes.append(folder)
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
                holes.append(entry.path)


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


WALK_COUNT_EVERY = 256  # files between two updates of the walk's shared count
_walk_count: Any = None  # in a reader process: the count shared with the command (see _reader_init)


def counted(files: Iterable[LibraryFile], count: Callable[[int], None]) -> Iterator[LibraryFile]:
    """The files, telling `count` how many have gone by every WALK_COUNT_EVERY files and at the end."""
    n = 0
    for n, file in enumerate(files, 1):
        if n % WALK_COUNT_EVERY == 0:
            count(n)
        yield file
    count(n)


def _walk_in_reader(root: str) -> tuple[list[str], list[str], list[int], list[str], list[str]]:
    """`scan_files` in a reader process: paths, relative paths and sizes as plain lists (they cross
    the pipe far faster than LibraryFile objects), the walk's warnings for the command to log, and
    what it could not read. The count of files walked so far is shared with the command."""
    collected = _Collected()
    log.addHandler(collected)
    log.propagate = False
    unreadable: list[str] = []

    def count(n: int) -> None:
        if _walk_count is not None:
            _walk_count.value = n

    try:
        files = list(counted(scan_files(root, unreadable), count))
    finally:
        log.removeHandler(collected)
    paths, relatives, sizes = [f.path for f in files], [f.relative for f in files], [f.size for f in files]
    return paths, relatives, sizes, collected.messages, unreadable


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


# A file's EXIF date costs tens of microseconds of Python work, and a first run reads one per asset: reads asked
# for ahead (`prefetch`) go to worker processes while this process pages the server and matches.
READ_CHUNK = 250  # paths per task: a task's pickling is then a small share of its work
MIN_PARALLEL = 500  # fewer reads than this at once are not worth starting a process


def default_readers() -> int:
    """Reader processes: the cores but one (the one that runs the command), between 1 and 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, min(4, cores - 1))


def _reader_init(parent: int, walk_count: Any = None) -> None:
    global _walk_count
    _walk_count = walk_count
    # Ctrl-C reaches the whole process group: the command handles it, its readers must not print
    # a traceback each (and SIGTERM to the group likewise: the command stops them itself). A
    # reader whose command was killed (SIGKILL, out of memory) would wait for work forever, since
    # it holds its own queue's both ends: it watches its parent instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _terminate_readers(pool: ProcessPoolExecutor) -> None:
    """Stop the readers now, whatever they are doing: `shutdown(wait=False)` alone still let the
    interpreter's exit wait for the task in hand. Python 3.14 has `terminate_workers`; before it,
    the executor's own process table is the only way in."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _await_pool_thread(thread: object, timeout: float = 10.0) -> None:
    """Let a reader pool's own thread finish closing its pipes (its readers are terminated: it
    ends at once). Python 3.11's exit hook wakes each pool's thread through one of those pipes
    without the pool's lock: a command that failed while that thread was still closing it
    printed an EBADF traceback under its one-line error (seen in CI)."""
    if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
        thread.join(timeout)


def _walk_here(root: str, count: Callable[[int], None] = lambda n: None) -> LibraryIndex:
    unreadable: list[str] = []  # filled by the walk, which from_files runs before reading it
    return LibraryIndex.from_files(root, counted(scan_files(root, unreadable), count), unreadable)


class LocalLibrary:
    """The LibraryReader port on the real file system. Each file's date and hash is read once.

    `readers` > 0 reads the dates that `prefetch` announces in that many worker processes (spawned
    fresh: they inherit no lock, thread or open file of this one). The command line turns them on;
    a script embedding the library opts in, as spawning needs the usual `if __name__ == "__main__"`
    guard. Close the library (or use it in a `with` block) to stop them.
    """

    def __init__(self, readers: int = 0, *, min_parallel: int = MIN_PARALLEL) -> None:
        self._times: dict[str, CaptureTime | None] = {}
        self._sums: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._readers = readers
        self._min_parallel = min_parallel
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()  # a reader is started whole before close() goes on
        self._closed = False
        self._pending: dict[str, Future] = {}  # path -> the task reading it
        self._tasks: dict[Future, list[str]] = {}  # task -> its paths, in order
        self.reads = 0
        self.hashes = 0
        self._walked = 0  # files walked here, or the readers' shared count below
        self._walk_count: Any = None

    def __enter__(self) -> LocalLibrary:
        self._closed = False
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(wait=exc_type is None)

    def close(self, wait: bool = True) -> None:
        """Stop the reader processes: after the task in hand, or, unless `wait`, at once (a failed
        or interrupted run does not wait for a walk of a large share, which can take minutes).
        Reads still wanted are then done here.

        A reader being started by another thread (the walk's) is let finish starting first, and
        none is started afterwards: one left half-spawned when the command exits on an error
        printed a traceback of its own (EOFError) under the command's one-line message."""
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            thread = getattr(pool, "_executor_manager_thread", None)  # (shutdown forgets it)
            if not wait:
                _terminate_readers(pool)
            pool.shutdown(wait=wait, cancel_futures=True)
            if not wait:
                _await_pool_thread(thread)
        self._pending.clear()
        self._tasks.clear()

    def scan(self, root: str) -> LibraryIndex:
        """The walk of `root`; in a reader process when there are readers. A walk makes two system
        calls a file, each giving up the GIL and waiting to get it back behind the cache load and
        the listing of this process. There, only its result (plain lists) crosses back, and the
        index is built here."""
        root = os.path.abspath(root)
        if self._readers:
            try:
                walk = self._submit(_walk_in_reader, root)
                found = walk.result() if walk is not None else None
            except Exception as exc:
                if not self._closed:  # (closed, its readers were stopped on purpose)
                    log.warning("walking %s in this process (the reader failed: %s: %s)", root, type(exc).__name__, exc)
            else:
                if found is None:  # closed before the walk began
                    return _walk_here(root, self._count_walk)
                paths, relatives, sizes, warnings, unreadable = found
                for message in warnings:
                    log.warning("%s", message)
                self._walked = len(paths)
                return LibraryIndex.from_files(root, map(LibraryFile, paths, relatives, sizes), unreadable)
        return _walk_here(root, self._count_walk)

    def _count_walk(self, n: int) -> None:
        self._walked = n

    def walked(self) -> int:
        shared = self._walk_count
        return max(self._walked, int(shared.value) if shared is not None else 0)

    def prefetch(self, paths: Iterable[str]) -> None:
        """Start reading these files' capture times in the reader processes, if there are enough."""
        if not self._readers:
            return
        todo = [p for p in dict.fromkeys(paths) if p not in self._times and p not in self._pending]
        if not todo or (self._pool is None and len(todo) < self._min_parallel):
            return
        try:
            for i in range(0, len(todo), READ_CHUNK):
                chunk = todo[i : i + READ_CHUNK]
                task = self._submit(exif_reader.read_capture_times, chunk)
                if task is None:  # closed: read here when asked
                    return
                self._tasks[task] = chunk
                for path in chunk:
                    self._pending[path] = task
        except (OSError, RuntimeError) as exc:  # no processes here (a sandbox, a limit): read in this one
            log.warning("reading file dates in this process only (cannot start readers: %s)", exc)
            self._readers = 0
            self.close(wait=False)

    def _submit(self, function: Callable[..., Any], *args: Any) -> Future | None:
        """The task in a reader process (started on first use), or None once the library is closed."""
        with self._pool_lock:
            if self._closed:
                return None
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                # no lock: one process writes it, and a count a moment old is good enough
                self._walk_count = context.Value("q", 0, lock=False)
                self._pool = ProcessPoolExecutor(
                    self._readers,
                    mp_context=context,
                    initializer=_reader_init,
                    initargs=(os.getpid(), self._walk_count),
                )
            return self._pool.submit(function, *args)

    def capture_time(self, path: str) -> CaptureTime | None:
        if path not in self._times:
            task = self._pending.get(path)
            if task is not None:
                self._collect(task)
            if path not in self._times:
                value = exif_reader.read_capture_time(path)
                with self._lock:
                    self._times[path] = value
                    self.reads += 1
        return self._times[path]

    def _collect(self, task: Future) -> None:
        paths = self._tasks.pop(task, [])
        try:
            values = task.result()
        except Exception as exc:
            log.warning("a file-date reader failed (%s: %s); reading in this process", type(exc).__name__, exc)
            self._readers = 0
            self.close(wait=False)
            return
        with self._lock:
            for path, value in zip(paths, values, strict=False):
                self._times[path] = value
                self._pending.pop(path, None)
            self.reads += len(paths)

    def sha1(self, path: str) -> str | None:
        if path not in self._sums:
            value = sha1_base64(path)
            with self._lock:
                self._sums[path] = value
                self.hashes += 1
        return self._sums[path]
