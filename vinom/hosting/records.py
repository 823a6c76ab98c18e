"""Where a game host keeps its match records: record files in the data directory.

`RecordSettings` is what an operator chose (docs/operations.md, "Match
records"): on or off, the games not recorded, the hash interval, the
directory, how often records are flushed, how large and how old a record file
grows before the next is started, and how long and how much of them are kept.
The game host core (vinom.hosting.core) writes the records
(vinom.rooms.record) and hands out their bytes; `RecordFiles` appends them, as
frames naming their match, to the process's open record file,
``<UTC start>-<pid>-<n>.vrec`` in the directory (docs/protocol.md, "Match
records": format version 2), and `prune` deletes the files older than
``max_age`` and then the oldest beyond ``max_bytes`` in all (never a file
still open: the one written now, or an older one a match still recording
writes to).

One open file per process, not a file per match: creating, writing and closing
a file for each match cost more than the rest of its record (about 50 us of a
short match's 100, most of it in the kernel making the file), and a directory of a
file per match grows to hundreds of thousands of files that `prune` lists.
A match's frames all go to the file that was open when its first frame was
written, so its record is in one file; that file is closed once it is neither
the one written now nor written by a match still recording. Each flush is one
`os.write` (unbuffered): what was flushed is in the page cache (the kernel
writes it out) if the host process crashes right after, and a crashed match's
frames replay up to its last flush (a file cut inside a frame reads up to the
frame before). `RecordIndex` finds a match's record in the files again (the
Redis copy, `/replays/`). Version 1 files (a gzip record per match,
``*.vrec.gz``) are still read and pruned.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgpack
from attrs import frozen
from twisted.logger import Logger

from vinom.rooms.record import (
    DEFAULT_HASH_EVERY,
    GZIP_WBITS,
    RECORD_FILE_FORMAT,
    RECORD_FILE_VERSION,
    frame_parts,
    record_file_header,
    record_frame,
)

_log = Logger()

#: The file name suffix of a record file (format version 2: many matches' records).
RECORD_FILE_SUFFIX = ".vrec"
#: The file name suffix of a version 1 record file (one match's gzip record).
RECORD_SUFFIX = ".vrec.gz"
#: The modes of the record files and of a record directory this process makes (the
#: umask may take more away): the owner's only (docs/operations.md, "Match records").
RECORD_FILE_MODE = 0o600
RECORD_DIRECTORY_MODE = 0o700
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_FILE_MEGABYTES = 64.0
DEFAULT_FILE_MINUTES = 60.0
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
    # A record file is closed and the next started once it holds this many bytes,
    # or once it is this many seconds old (what prune deletes at once).
    file_bytes: int = int(DEFAULT_FILE_MEGABYTES * 1024 * 1024)
    file_age: float = DEFAULT_FILE_MINUTES * 60.0

    def records(self, game: str) -> bool:
        """Whether a match of `game` is recorded."""
        return self.enabled and game not in self.games_off

    def to_json(self) -> dict[str, object]:
        """For a worker process's configuration (vinom.hosting.workers)."""
        return {
            "directory": self.directory, "enabled": self.enabled,
            "games_off": sorted(self.games_off), "hash_every": self.hash_every,
            "flush_interval": self.flush_interval, "max_age": self.max_age,
            "max_bytes": self.max_bytes, "file_bytes": self.file_bytes,
            "file_age": self.file_age,
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
            file_bytes=int(data.get("file_bytes", DEFAULT_FILE_MEGABYTES * 1024 * 1024)),
            file_age=float(data.get("file_age", DEFAULT_FILE_MINUTES * 60.0)),
        )  # fmt: skip


def record_file_name(match_id: str, started: float) -> str:
    """``<UTC start>-<match id>.vrec.gz``: a version 1 record file's name (the match
    id made safe for a file name)."""
    return f"{_stamp(started)}-{_UNSAFE.sub('_', match_id)[:80]}{RECORD_SUFFIX}"


def _named_in_header(data: bytes) -> str | None:
    """The match id a version 1 record's header names (None: no header reads)."""
    try:
        head = zlib.decompressobj(GZIP_WBITS).decompress(data, 64 * 1024)
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(head)
        header = unpacker.unpack()
    except Exception:
        return None
    named = header.get("match_id") if isinstance(header, Mapping) else None
    return named if isinstance(named, str) else None


def records_file_name(pid: int, number: int, started: float) -> str:
    """``<UTC start>-<pid>-<n>.vrec``: the name of a process's `number`th record file."""
    return f"{_stamp(started)}-{pid}-{number}{RECORD_FILE_SUFFIX}"


# The last second stamped and its stamp: the matches a host starts within a second
# share it (strftime is a few microseconds).
_last_stamp: tuple[int, str] = (-1, "")


def _stamp(started: float) -> str:
    global _last_stamp
    second = int(started)
    if _last_stamp[0] != second:
        _last_stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return _last_stamp[1]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _OpenFile:
    """A record file this process writes: its descriptor, size, start, and how many
    matches still recording write to it."""

    __slots__ = ("fd", "live", "path", "size", "started")

    def __init__(self, path: str, fd: int, size: int, started: float) -> None:
        self.path = path
        self.fd = fd
        self.size = size
        self.started = started
        self.live = 0


class RecordFiles:
    """Appends records' frames to this process's record file and prunes old files
    (blocking file I/O, small appends; see the module docstring)."""

    def __init__(
        self, settings: RecordSettings, clock: Callable[[], float] = time.time,
        pid: int | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.directory = Path(settings.directory)
        self._directory = str(self.directory)
        self._clock = clock
        self._pid = os.getpid() if pid is None else pid
        self._numbers = itertools.count(1)
        # The file written now (None: none yet, or it was closed or failed), and the
        # file of each match recording now, by match id.
        self._current: _OpenFile | None = None
        self._files: dict[str, _OpenFile | None] = {}
        #: Bytes written, files pruned, and writes that failed (the disk full, the
        #: directory gone): the rest of that match's record is lost, the match goes on.
        self.bytes_written = 0
        self.pruned = 0
        self.write_errors = 0

    def path_of(self, match_id: str) -> Path | None:
        """The file a match recording now writes to (None once its last bytes are written)."""
        file = self._files.get(match_id)
        return None if file is None else Path(file.path)

    def open_paths(self) -> set[str]:
        """The record files this process still writes to."""
        paths = {f.path for f in self._files.values() if f is not None}
        if self._current is not None:
            paths.add(self._current.path)
        return paths

    def write(self, match_id: str, started: float, data: bytes, closed: bool) -> None:
        """Append `data`, a piece of the match's record, as a frame; `closed`: its last
        bytes. `started` is unused (a version 1 file's name took it)."""
        files = self._files
        file = files.get(match_id, _NEW)
        if file is _NEW:
            file = files[match_id] = self._file_for_new_match()
            if file is not None:
                file.live += 1
        if file is not None and data:
            frame = record_frame(match_id, data)
            try:
                _write_all(file.fd, frame)
            except OSError as e:
                self._failed(file.path, e)
                self._abandon(file)
                file = None
            else:
                file.size += len(frame)
                self.bytes_written += len(frame)
        if closed:
            del files[match_id]
            if file is not None:
                file.live -= 1
                if file.live == 0 and file is not self._current:
                    os.close(file.fd)

    def close(self) -> None:
        """Close the files still open (the process is stopping; nothing more is written)."""
        seen = set()
        for file in [self._current, *self._files.values()]:
            if file is not None and file.fd not in seen:
                seen.add(file.fd)
                os.close(file.fd)
        self._current = None
        self._files = dict.fromkeys(self._files)

    def _file_for_new_match(self) -> _OpenFile | None:
        """The file written now, or a new one if it is full or old (or there is none)."""
        current = self._current
        now = self._clock()
        settings = self.settings
        if current is not None and (
            current.size >= settings.file_bytes or now - current.started >= settings.file_age
        ):
            self._current = None
            if current.live == 0:
                os.close(current.fd)
            current = None
        if current is None:
            try:
                current = self._current = self._open(now)
            except OSError as e:
                self._failed(self._directory, e)
                return None
        return current

    def _open(self, now: float) -> _OpenFile:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        while True:
            path = os.path.join(
                self._directory, records_file_name(self._pid, next(self._numbers), now)
            )
            # Owner only: a record holds its match's seed (the room's whole random
            # draw, future ones included) and every player's input.
            try:
                fd = os.open(path, flags, RECORD_FILE_MODE)
            except FileNotFoundError:
                os.makedirs(self._directory, mode=RECORD_DIRECTORY_MODE, exist_ok=True)
                fd = os.open(path, flags, RECORD_FILE_MODE)
            except FileExistsError:  # a process of the same pid before this one
                continue
            break
        header = record_file_header(pid=self._pid, started=now)
        try:
            _write_all(fd, header)
        except OSError:
            # A full disk takes the file but not its header: no empty file is left
            # (the next match tries again, a new file each, until there is room).
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        self.bytes_written += len(header)
        return _OpenFile(path, fd, len(header), now)

    def _abandon(self, file: _OpenFile) -> None:
        # A write that failed may have left part of a frame: nothing more is appended
        # after it (a reader stops there), and its matches' records end at what it has.
        if file is self._current:
            self._current = None
        for match_id, other in self._files.items():
            if other is file:
                self._files[match_id] = None
        os.close(file.fd)

    def _failed(self, path: str, error: OSError) -> None:
        self.write_errors += 1
        if self.write_errors <= 3:
            _log.warn("cannot write the match records {path}: {error}", path=path, error=error)

    def prune(self, now: float) -> int:
        """Delete the record files older than `max_age`, then the oldest beyond
        `max_bytes`; returns how many went, and says so in one line when any did. Files
        still open stay."""
        live = self.open_paths()
        found: list[tuple[float, int, str]] = []
        try:
            entries: Iterable[os.DirEntry[str]] = list(os.scandir(self.directory))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.endswith((RECORD_FILE_SUFFIX, RECORD_SUFFIX)):
                continue
            try:
                stat = entry.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, entry.path))
        found.sort()
        total = sum(size for _, size, _ in found)
        removed = removed_bytes = 0
        for mtime, size, path in found:
            if path in live:
                continue
            if now - mtime > self.settings.max_age or total > self.settings.max_bytes:
                try:
                    os.unlink(path)
                except OSError:
                    continue
                total -= size
                removed += 1
                removed_bytes += size
        self.pruned += removed
        if removed:
            settings = self.settings
            _log.info(
                "pruned {removed} match record files ({removed_bytes} bytes) from {directory}: "
                "older than {days:g} days or beyond {megabytes:g} MB; {kept} files "
                "({kept_bytes} bytes) kept",
                removed=removed, removed_bytes=removed_bytes, directory=self._directory,
                days=settings.max_age / 86400, megabytes=settings.max_bytes / (1024 * 1024),
                kept=len(found) - removed, kept_bytes=total,
            )  # fmt: skip
        return removed


def records_on_disk(directory: str) -> tuple[int, int]:
    """How many record files (either version) `directory` holds, and their bytes; (0, 0)
    when it cannot be read (not made yet: no match recorded)."""
    files = size = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0, 0
    for entry in entries:
        if entry.name.endswith((RECORD_FILE_SUFFIX, RECORD_SUFFIX)):
            with contextlib.suppress(OSError):
                size += entry.stat().st_size
                files += 1
    return files, size


# `RecordFiles._files`'s "no entry" (None is a match whose file failed).
_NEW: Any = object()


class RecordIndex:
    """Finds a match's record in a directory's record files (the Redis copy of a
    finished match, `/replays/`), reading each file once, as it grows.

    It remembers how far it read each version 2 file and where each match's pieces
    are in it (a few hundred bytes a match, dropped with the file), so that a
    lookup reads only what was appended since the last, newest file first and no
    further than the file holding the match (a match id in no file reads them all
    once, and then opens only the files that grew: a `stat` each); `take` also
    forgets the match. Version 1 files are found by their name
    (unless `skip_existing`: then only what is written after it was made is found)."""

    def __init__(self, directory: str, *, skip_existing: bool = False) -> None:
        self.directory = directory
        # How far each file was read, and each match's pieces: (path, start, end).
        self._read: dict[str, int] = {}
        self._pieces: dict[str, list[tuple[str, int, int]]] = {}
        # Version 1 files are looked for only among the files there already.
        self._old_files = not skip_existing
        if skip_existing:
            # Only what is written from now on (a host's Redis copy: its own new matches).
            for path in self._files():
                try:
                    self._read[path] = os.path.getsize(path)
                except OSError:
                    continue

    def find(self, match_id: str) -> bytes | None:
        """The record of `match_id` as far as it is written, or None."""
        return self._find(match_id, forget=False)

    def take(self, match_id: str) -> bytes | None:
        """`find`, and forget the match (its record is complete: it will not be asked again)."""
        return self._find(match_id, forget=True)

    def _find(self, match_id: str, forget: bool) -> bytes | None:
        # One listing of the directory a lookup (its sizes from it, no file opened
        # that did not grow): a match id in no file, which anyone reaching
        # `/replays/` can ask for, costs a `scandir` and a `stat` a file.
        entries = self._entries()
        old = self._version_1(match_id, entries) if self._old_files else None
        if old is not None:
            return old
        self._scan(match_id, entries)
        pieces = self._pieces.pop(match_id, None) if forget else self._pieces.get(match_id)
        if not pieces:
            return None
        parts = []
        try:
            handles: dict[str, Any] = {}
            try:
                for path, start, end in pieces:
                    f = handles.get(path)
                    if f is None:
                        f = handles[path] = open(path, "rb")  # noqa: SIM115
                    f.seek(start)
                    parts.append(f.read(end - start))
            finally:
                for f in handles.values():
                    f.close()
        except OSError:
            return None
        return b"".join(parts)

    def _entries(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.directory) as listing:
                return list(listing)
        except OSError:
            return []

    def _version_1(self, match_id: str, entries: list[os.DirEntry[str]]) -> bytes | None:
        # `<stamp>-<safe id>.vrec.gz`, the stamp without a '-': the whole id after the
        # first '-' (not any name ending the same: m-1 is not om-1).
        # Ids that differ only in what a file name cannot hold (m/1, m_1) share a
        # name: the newest file whose header names the match, else the newest whose
        # header does not read (a record cut short, which a replay reports as such).
        name = record_file_name(match_id, 0.0).split("-", 1)[1]
        names = sorted((e.name for e in entries if e.name.partition("-")[2] == name),
                       reverse=True)  # fmt: skip
        unread = None
        for found in names:
            try:
                data = Path(self.directory, found).read_bytes()
            except OSError:
                continue
            named = _named_in_header(data)
            if named == match_id:
                return data
            if named is None and unread is None:
                unread = data
        return unread

    def _files(self, entries: list[os.DirEntry[str]] | None = None) -> list[str]:
        if entries is None:
            entries = self._entries()
        return sorted(e.path for e in entries if e.name.endswith(RECORD_FILE_SUFFIX))

    def _scan(self, match_id: str, entries: list[os.DirEntry[str]]) -> None:
        """Read what the files gained since they were last read, newest first, until
        `match_id` is found (all its frames are in one file: once found, only that
        file is read again); forget the files gone. A file no larger than what was
        read of it is not opened."""
        ours = sorted(
            ((e.path, e) for e in entries if e.name.endswith(RECORD_FILE_SUFFIX)),
            key=lambda pair: pair[0],
        )
        paths = [path for path, _ in ours]
        gone = set(self._read) - set(paths)
        if gone:
            for path in gone:
                del self._read[path]
            for other, pieces in list(self._pieces.items()):
                kept = [p for p in pieces if p[0] not in gone]
                if kept:
                    self._pieces[other] = kept
                else:
                    del self._pieces[other]
        known = self._pieces.get(match_id)
        if known:
            self._scan_file(known[0][0])
            return
        read = self._read
        for path, entry in reversed(ours):
            try:
                grew = entry.stat().st_size > read.get(path, 0)
            except OSError:
                continue
            if grew:
                self._scan_file(path)
                if match_id in self._pieces:
                    return

    def _scan_file(self, path: str) -> None:
        at = self._read.get(path, 0)
        try:
            with open(path, "rb") as f:
                f.seek(at)
                data = f.read()
        except OSError:
            return
        if not data:
            return
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, max_buffer_size=max(1, len(data)),
            max_bin_len=len(data),
        )
        unpacker.feed(data)
        pieces = self._pieces
        done = 0
        try:
            if at == 0:
                header = unpacker.unpack()
                if (not isinstance(header, dict) or header.get("format") != RECORD_FILE_FORMAT
                        or header.get("v") != RECORD_FILE_VERSION):  # fmt: skip
                    self._read[path] = len(data)  # not ours: never read again
                    return
                done = unpacker.tell()
            while True:
                frame = unpacker.unpack()
                end = unpacker.tell()
                parts = frame_parts(frame)
                if parts is not None:
                    pieces.setdefault(parts[0], []).append(
                        (path, at + end - len(parts[1]), at + end)
                    )
                done = end
        except msgpack.OutOfData:
            pass  # a frame still being written: read again from its start next time
        except Exception:
            done = len(data)  # damaged: the rest is not read
        self._read[path] = at + done
