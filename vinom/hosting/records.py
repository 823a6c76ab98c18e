"""Where a game host keeps its match records: files in the data directory.

`RecordSettings` is what an operator chose (docs/operations.md, "Match
records"): on or off, the games not recorded, the hash interval, the
directory, how often records are flushed, and how long and how much of them
are kept. The game host core (vinom.hosting.core) writes the records
(vinom.rooms.record) and hands out their bytes; `RecordFiles` appends them to
one file per match, ``<UTC start>-<match id>.vrec.gz`` in the directory, and
`prune` deletes the files older than ``max_age`` and then the oldest beyond
``max_bytes`` in all (never the file of a match still recording).

Each flush opens the match's file, appends and closes it: no file descriptor
is held per match (a host may run thousands), and what was flushed is on disk
(in the page cache; the kernel writes it out) if the host process crashes
right after. A record is a gzip stream with a sync flush after each take, so a
crashed match's file replays up to its last flush; `zcat` reads whole ones.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attrs import frozen
from twisted.logger import Logger

from vinom.rooms.record import DEFAULT_HASH_EVERY

_log = Logger()

#: The file name suffix of a match record (a gzip stream).
RECORD_SUFFIX = ".vrec.gz"
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_MAX_AGE_DAYS = 7.0
DEFAULT_MAX_MEGABYTES = 1024.0
# Characters a match id keeps in a file name; the others become '_'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@frozen
class RecordSettings:
    """How a game host records its matches (see the module docstring)."""

    directory: str
    enabled: bool = True
    # Games whose matches are not recorded (registry names).
    games_off: frozenset[str] = frozenset()
    hash_every: int = DEFAULT_HASH_EVERY
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    max_age: float = DEFAULT_MAX_AGE_DAYS * 86400.0
    max_bytes: int = int(DEFAULT_MAX_MEGABYTES * 1024 * 1024)

    def records(self, game: str) -> bool:
        """Whether a match of `game` is recorded."""
        return self.enabled and game not in self.games_off

    def to_json(self) -> dict[str, object]:
        """For a worker process's configuration (vinom.hosting.workers)."""
        return {
            "directory": self.directory, "enabled": self.enabled,
            "games_off": sorted(self.games_off), "hash_every": self.hash_every,
            "flush_interval": self.flush_interval, "max_age": self.max_age,
            "max_bytes": self.max_bytes,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordSettings:
        return cls(
            directory=str(data["directory"]), enabled=bool(data["enabled"]),
            games_off=frozenset(str(g) for g in data.get("games_off") or ()),
            hash_every=int(data["hash_every"]),
            flush_interval=float(data["flush_interval"]),
            max_age=float(data["max_age"]),
            max_bytes=int(data["max_bytes"]),
        )  # fmt: skip


def record_file_name(match_id: str, started: float) -> str:
    """``<UTC start>-<match id>.vrec.gz`` (the match id made safe for a file name)."""
    return f"{_stamp(started)}-{_UNSAFE.sub('_', match_id)[:80]}{RECORD_SUFFIX}"


# The last second stamped and its stamp: the matches a host starts within a second
# share it (strftime is a few microseconds, and a host names a file per match).
_last_stamp: tuple[int, str] = (-1, "")


def _stamp(started: float) -> str:
    global _last_stamp
    second = int(started)
    if _last_stamp[0] != second:
        _last_stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return _last_stamp[1]


def _append(path: str, data: bytes) -> None:
    """Append `data` to the file at `path` (made, with its directory, if missing).

    With the bare system calls: a host appends every running match's record once
    a flush interval, and a buffered file object per append cost more than the
    append (the directory is made only when the file cannot be)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class RecordFiles:
    """Appends records' bytes to their files and prunes old ones (blocking file I/O,
    small appends; see the module docstring)."""

    def __init__(self, settings: RecordSettings) -> None:
        self.settings = settings
        self.directory = Path(settings.directory)
        # The files of the matches recording now, by match id: strings, not Paths
        # (a Path joined per match cost more than the rest of naming its file).
        self._directory = str(self.directory)
        self._paths: dict[str, str] = {}
        #: Bytes written, files pruned, and writes that failed (the disk full, the
        #: directory gone): the record of that match is lost, the match goes on.
        self.bytes_written = 0
        self.pruned = 0
        self.write_errors = 0

    def path_of(self, match_id: str) -> Path | None:
        """The file of a match recording now (or whose last bytes were written)."""
        path = self._paths.get(match_id)
        return None if path is None else Path(path)

    def write(self, match_id: str, started: float, data: bytes, closed: bool) -> None:
        """Append `data` to the match's record; `closed`: its last bytes."""
        path = self._paths.get(match_id)
        if path is None:
            path = self._paths[match_id] = os.path.join(
                self._directory, record_file_name(match_id, started)
            )
        try:
            if data:
                _append(path, data)
                self.bytes_written += len(data)
        except OSError as e:
            self.write_errors += 1
            if self.write_errors <= 3:
                _log.warn("cannot write the match record {path}: {error}", path=str(path), error=e)
        if closed:
            del self._paths[match_id]

    def prune(self, now: float) -> int:
        """Delete the files older than `max_age`, then the oldest beyond `max_bytes`;
        returns how many went. Files of matches still recording stay."""
        live = {Path(path) for path in self._paths.values()}
        found: list[tuple[float, int, Path]] = []
        try:
            entries: Iterable[os.DirEntry[str]] = list(os.scandir(self.directory))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.endswith(RECORD_SUFFIX):
                continue
            try:
                stat = entry.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        found.sort()
        total = sum(size for _, size, _ in found)
        removed = 0
        for mtime, size, path in found:
            if path in live:
                continue
            if now - mtime > self.settings.max_age or total > self.settings.max_bytes:
                try:
                    path.unlink()
                except OSError:
                    continue
                total -= size
                removed += 1
        self.pruned += removed
        return removed
