"""Match records: what a room fed its game, written as it happens, to replay it exactly.

A game is a set of pure functions over immutable state with the room's seeded
random generator, so a match is fully determined by its start (game, rules
version, options, seats, the generator's seed) and the calls the room made
into the game, in order: the hooks (join, reconnect, leave, idle, time up),
every action and real-time input it applied (rejected ones too: a game may
draw from the generator before it refuses), every tick, and the start of play
(where the tick history starts). `MatchRecorder` is the room's hook: the room
tells it each call just before making it (`Room.recorder`), and it writes a
*record* (docs/protocol.md, "Match records"): a gzip stream of MessagePack
values, a header map then one array per entry. Besides the calls it writes a
hash of the game state (`state_hash`): before every `hash_every`-th call of a
game without a tick, after every `hash_every`-th tick of a game with one, and at
the end,
so a replay (`vinom.rooms.replay`) proves it rebuilt the very states, and a
game that is not deterministic is caught at the tick where it first differs.

The recorder is sans-I/O: it keeps what it encoded until `take()`, which
returns the bytes to append to the record so far, ending on a deflate flush
point (so whatever was taken is readable even if the process dies before the
next take: a crashed host's record replays up to its last flush). After
`end()` the next `take()` also ends the gzip stream. A record's first take
is compressed by the process's one deflate stream (`_Deflate`), or stored
uncompressed if it is short (`STORE_BELOW`), and so is a second that is its
last; the takes after it by a stream of the record's own.
It never raises into the room: an
entry it cannot encode (an action no MessagePack encoder takes; the wire
decoded it, so it should not happen) marks the record ``broken`` and it
records nothing more; the entries since the last `take` are lost with it
(they share one buffer, which the encoder empties as it fails), so the
record ends at the flush before. A state it cannot hash (an integer past 64
bits, say) marks it ``broken`` too, keeping the entries before it.

Cost: per move, an entry packed into that buffer (no bytes object of its
own) and, for a game without a tick, a hash every `hash_every` calls; per
tick, an entry and a hash every `hash_every` ticks. A hash walks the state
with one function per type, chosen once per type (`_plan_of`).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import operator
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import msgpack

from vinom.games.interfaces import Seat

#: The first header field of every record, and the version of its layout.
RECORD_FORMAT = "vinom-record"
RECORD_VERSION = 1
#: The first header field of a record file holding many matches' records (version 2
#: of the files a host writes; version 1 was one gzip record per file), and its version.
RECORD_FILE_FORMAT = "vinom-records"
RECORD_FILE_VERSION = 2
#: A state hash after every this many ticks (1 s at 20 Hz), or before every this many
#: calls into a game without a tick.
DEFAULT_HASH_EVERY = 20

# Entry kinds: the first element of each entry array (docs/protocol.md).
HOOK = 0  # [0, name, seat index or -1]
ACT = 1  # [1, seat index, action(, seen)]: an action or real-time input
TICK = 2  # [2, tick number]
PLAY = 3  # [3]: play started (tick 0 of the tick history)
HASH = 4  # [4, tick number, version, hash]: the state as it is here
END = 5  # [5, phase, result or None, tick number, version, hash]

# wbits for a gzip container around the deflate stream (zlib's convention).
GZIP_WBITS = 31
# How a record is compressed (see `_Deflate`): raw deflate in an 8 KiB window at
# zlib's memLevel 6, inside a gzip header and trailer written here; any gzip reader
# takes it (GZIP_WBITS reads every window size).
RECORD_WBITS = -13
MEM_LEVEL = 6
# The gzip member's header (RFC 1952) as zlib writes it for level 1: deflate, no
# flags, no time, "fastest" (4), Unix (3).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03"
# An empty final deflate block (fixed codes, just the end code): what ends a record's
# blocks, before the gzip trailer.
FINAL_BLOCK = b"\x03\x00"
# The packer's first buffer: a flush interval's entries of most matches fit, and it
# grows when they do not. msgpack's default (256 KiB to 1 MiB) is a fresh mapping of
# the process per recorder, whose pages fault in as the entries land and go back
# at its end: about 60 us a match, more than the rest of the record.
PACKER_BUFFER = 4096
# A record's first take shorter than this is stored in the stream, not compressed: the
# whole record of a short match (players who join and leave; about 250 bytes) compressed
# to as many bytes (251 of 256), and compressing it, the full flush clearing the
# stream's tables, cost about 5 us, a third of its recorder.
STORE_BELOW = 512
#: The most MessagePack bytes a record holds, and a reader inflates
#: (vinom.rooms.replay; docs/protocol.md, "Match records"): a compression bomb
#: (a few kilobytes inflating to gigabytes, in a file from elsewhere) is refused
#: once this much is inflated, and a recorder ends its record before a take that
#: would pass it (about 3.5 hours of an 8-player arena match played by bots), so
#: that every record a host writes reads.
MAX_RECORD_RAW_BYTES = 64 * 1024 * 1024


_SCALARS = (bool, int, float, str, bytes)
# Exactly these types (not subclasses, not enums) pack as they are.
_PLAIN = frozenset({bool, int, float, str, bytes})


def _new_packer() -> msgpack.Packer:
    try:
        return msgpack.Packer(use_bin_type=True, autoreset=False, buf_size=PACKER_BUFFER)
    except TypeError:  # msgpack before 1.1 takes no buf_size
        return msgpack.Packer(use_bin_type=True, autoreset=False)


class _Deflate:
    """The process's one deflate stream, which compresses every record's takes.

    Each take is compressed and then ends on a *full* flush (Z_FULL_FLUSH): its
    blocks end on a byte boundary and refer to nothing before them, so they are
    a valid run of deflate blocks wherever they are put, and the blocks of one
    record's takes, between its gzip header and an empty final block with the
    gzip trailer (`MatchRecorder.take`), are the record's deflate stream. Nothing
    of one match reaches another's record (a full flush forgets the window).

    A record's first take goes through it (`MatchRecorder.take`), and so does
    the whole record of a match that ends before the host's first flush, the
    most common record (players who connect and leave): a stream's state is
    about 64 KiB, which a stream per record allocated for each match, its
    pages faulting in again when the allocator had handed them back (about 12
    us a match with 200 matches live, a third of a short match's recorder). A
    match that goes on gets a stream of its own from its second take, so that
    each take is compressed against the ones before it: the full flush forgets,
    and a sparse match's takes each compressed alone were up to 45% larger.
    """

    def __init__(self) -> None:
        self._stream = zlib.compressobj(1, zlib.DEFLATED, RECORD_WBITS, MEM_LEVEL)

    def blocks(self, data: bytes) -> bytes:
        """`data` compressed, ending on a full flush."""
        stream = self._stream
        return stream.compress(data) + stream.flush(zlib.Z_FULL_FLUSH)


_deflate = _Deflate()


def _stored(data: bytes) -> bytes:
    """`data` as one stored (uncompressed) deflate block, not the last (RFC 1951
    3.2.4: a header byte, its length and the length's complement, little-endian,
    then the bytes): a valid run of deflate blocks wherever it is put after blocks
    that end on a byte boundary, as a full flush leaves them. For under
    `STORE_BELOW` bytes."""
    size = len(data)
    return struct.pack("<BHH", 0, size, size ^ 0xFFFF) + data


def _ignore(entry: Any) -> None:
    """Packs nothing: a recorder's `_entry` once it records nothing more."""


# One packer for the values packed whole (a state's canonical form, a sort key, a
# record file's frame): `msgpack.packb` makes a packer per call, most of the cost
# of packing a small value (a duel state's canonical form: 1.05 us, 0.3 with this).
# It empties its buffer when a value fails to pack, so a failure leaves nothing behind.
_packed: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


def _canonical(value: Any) -> Any:
    """`value` as plain MessagePack data, the same in every process: attrs and
    dataclass instances become [class name, fields...] (an attrs class's fields
    that take part in equality), mappings their items
    sorted by their encoding, sets their members sorted (a set's order depends on
    the process's hash seed), enums their value.

    How a type is turned is decided once per type (`_plan_of`), not per value:
    a state hash walks the same few classes every time."""
    cls = type(value)
    if cls in _PLAIN or value is None:
        return value
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _plan_of(cls)
    return plan(value)


def _same(value: Any) -> Any:
    return value


def _enum(value: Any) -> Any:
    return _canonical(value.value)


def _sequence(value: Any) -> Any:
    # A tuple of plain values (most of a state) packs as it is.
    for v in value:
        if v is not None and type(v) not in _PLAIN:
            return [_canonical(v) for v in value]
    return value


def _mapping(value: Any) -> Any:
    items = [(_canonical(k), _canonical(v)) for k, v in value.items()]
    items.sort(key=lambda kv: _packed(kv[0]))
    return [1, items]


def _set(value: Any) -> Any:
    members = [_canonical(v) for v in value]
    members.sort(key=_packed)
    return [2, members]


def _fields(name: str, names: Sequence[str]) -> Any:
    """[name, the fields `names` of a value, each canonical]."""
    if not names:
        return lambda value: [name]
    get = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda value: [name, _canonical(get(value))]
    return lambda value: [name, *map(_canonical, get(value))]


def _other(value: Any) -> Any:
    cls = type(value)
    slots = getattr(value, "__dict__", None)
    if slots is not None:
        return [cls.__qualname__, _canonical(dict(slots))]
    return [cls.__qualname__, repr(value)]


def _plan_of(cls: type) -> Any:
    """The function turning a value of `cls` (not None, not a plain scalar) into
    its canonical form: the rules of `_canonical`, in their order."""
    if issubclass(cls, _SCALARS):
        return _same
    if issubclass(cls, enum.Enum):
        return _enum
    if issubclass(cls, tuple | list):
        return _sequence
    if issubclass(cls, Mapping):
        return _mapping
    if issubclass(cls, set | frozenset):
        return _set
    if attrs.has(cls):
        # Fields left out of equality (a cache derived from the others) are left out.
        return _fields(cls.__qualname__, [a.name for a in attrs.fields(cls) if a.eq])
    if dataclasses.is_dataclass(cls):
        return _fields(cls.__qualname__, [f.name for f in dataclasses.fields(cls)])
    return _other


# Type -> the function turning its values (`_plan_of`); a game's states use a few.
_PLANS: dict[type, Any] = {}


def state_hash(state: Any) -> int:
    """A 64-bit hash of a game state, the same for equal states in any process
    (BLAKE2b of its canonical MessagePack form; see `_canonical`)."""
    packed = _packed(_canonical(state))
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big")


def record_header(
    *,
    match_id: str,
    game: str,
    game_version: str,
    options: Mapping[str, Any],
    seats: Sequence[Seat],
    bots: Sequence[bool],
    seed: int,
    tick_rate: float,
    hash_every: int,
    started: float,
    vinom_version: str,
    spectators: bool = True,
) -> dict[str, Any]:
    """The header map a record starts with (docs/protocol.md, "Match records");
    `spectators` False (the match of a private room that lets nobody watch) adds
    `"spectators": false`, which `/replays/` honours (vinom.match.watch_refusal)."""
    header: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "v": RECORD_VERSION,
        "match_id": match_id,
        "game": game,
        "game_version": str(game_version),
        "options": dict(options),
        "seats": [[s.player_id, s.name, bool(b)] for s, b in zip(seats, bots, strict=True)],
        "seed": seed,
        "tick_rate": float(tick_rate),
        "hash_every": hash_every,
        "started": float(started),
        "vinom": vinom_version,
    }
    if not spectators:
        header["spectators"] = False
    return header


def record_file_header(*, pid: int, started: float) -> bytes:
    """The first bytes of a record file (docs/protocol.md, "Match records"): a
    MessagePack map naming the format, its version, the writing process and when
    it started the file."""
    return _packed(
        {"format": RECORD_FILE_FORMAT, "v": RECORD_FILE_VERSION, "pid": int(pid),
         "started": float(started)}
    )  # fmt: skip


def record_frame(match_id: str, data: bytes) -> bytes:
    """One frame of a record file: the MessagePack array [match id, bytes], the
    bytes a piece of that match's record (what `MatchRecorder.take` gave). A
    match's pieces in the order of the file, joined, are its record."""
    return _packed((match_id, data))


def frame_parts(value: Any) -> tuple[str, bytes] | None:
    """The match id and bytes of a record file's frame as a reader decoded it (the
    array of `record_frame`), or None if `value` is not a frame."""
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], bytes)):  # fmt: skip
        return value[0], value[1]
    return None


class MatchRecorder:
    """The record of one match as the room plays it (see the module docstring).

    `header` is `record_header(...)`; the room calls `hook`, `act`, `play`,
    `tick` and `end`, each before the call into the game it names; the host
    calls `take()` at its flush interval and once the room ended.
    """

    def __init__(self, header: Mapping[str, Any], *, hash_every: int = DEFAULT_HASH_EVERY) -> None:
        self.header = dict(header)
        self.hash_every = max(1, int(hash_every))
        self._ticking = float(self.header.get("tick_rate", 0.0) or 0.0) > 0
        # Compressed at level 1, the fastest (a record is mostly small repeated
        # maps, which it still shrinks about fivefold): its first take by the
        # process's one deflate stream (`_Deflate`), and so is the whole record of
        # a match that ends before the host's first flush; a match that goes on
        # gets a stream of its own at its second take (`take`). This record's
        # CRC-32 and length so far, for the gzip trailer.
        self._stream: Any = None
        self._crc = 0
        self._size = 0
        # Entries are packed into the packer's one buffer as they come (no bytes
        # object per entry); `take` compresses the buffer and empties it.
        self._packer = _new_packer()
        self._pack = self._packer.pack
        self._pack(self.header)
        # What packs an entry: `_pack`, or `_ignore` once nothing more is recorded
        # (`ended` or `broken`), so that the calls test neither.
        self._entry: Any = self._pack
        #: The room ended (`end` was called); `take` closes the stream after it.
        self.ended = False
        #: The stream is complete: `end` and the `take` after it ran.
        self.closed = False
        #: An entry could not be encoded: nothing more is recorded.
        self.broken = False
        # Calls into a game without a tick so far (its hashes come every `hash_every`).
        self._calls = 0
        #: Bytes handed out by `take` so far.
        self.bytes_taken = 0

    # -- the room's calls -------------------------------------------------------

    def hook(self, name: str, seat: Seat | None, state: Any, tick: int, version: int) -> None:
        """Before the game's hook `name` (join, reconnect, leave, idle, time_up)."""
        if not self._ticking:
            self._hash_turn(state, tick, version)
        self._add((HOOK, name, -1 if seat is None else seat.index))

    def act(
        self,
        seat: Seat,
        action: Mapping[str, Any],
        state: Any,
        tick: int,
        version: int,
        seen: float | None = None,
    ) -> None:
        """Before the game applies this player's action or real-time input (`seen`:
        the moment the player saw when giving it, if the input says)."""
        # The room's hottest call (every move), kept to the least: the hash countdown
        # and the packing inline; no test of `ended` or `broken` (`_entry` packs
        # nothing once either is set); no count of entries (`take` counts them).
        if not self._ticking:
            self._calls += 1
            if self._calls % self.hash_every == 0:
                self._add_hash(tick, version, state)
        try:
            self._entry((ACT, seat.index, action) if seen is None
                        else (ACT, seat.index, action, seen))  # fmt: skip
        except Exception:
            self._break()

    def play(self, state: Any, version: int) -> None:
        """Play started: the room records tick 0 in its tick history now."""
        self._add_hash(0, version, state)
        self._add((PLAY,))

    def tick(self, tick: int) -> None:
        """Before the game's tick number `tick` (its inputs applied already)."""
        self._add((TICK, tick))

    def ticked(self, tick: int, state: Any, version: int) -> None:
        """After tick `tick`, in the state it left (the one its snapshot shows)."""
        if tick % self.hash_every == 0:
            self._add_hash(tick, version, state)

    def end(
        self, phase: str, result: Mapping[str, Any] | None, state: Any, tick: int, version: int
    ) -> None:
        """The room finished or was aborted, in this final state."""
        if self.ended:
            return
        final = None if result is None else dict(result)
        digest = self._hash(state)
        if digest is not None:
            self._add((END, phase, final, tick, version, digest))
        self.ended = True
        self._entry = _ignore

    # -- the host's ---------------------------------------------------------------

    def take(self) -> bytes:
        """The record's bytes since the last `take`, readable up to here."""
        if self.closed:
            return b""
        pending = self._packer.bytes()
        if not pending and not (self.ended or self.broken):
            # Nothing since the last take. A sync flush would still give the four
            # bytes of an empty block, and the host would open and append to the
            # file of every match whose players left and whose seats wait for
            # them, once a flush interval, for nothing.
            return b""
        if self._size + len(pending) > MAX_RECORD_RAW_BYTES:
            # Past what a reader inflates: the record ends before these entries
            # (`broken`: it stops short, and replays up to there).
            pending = b""
            self.broken = True
            self._entry = _ignore
        last = self.ended or self.broken
        stream = self._stream
        if stream is None and self.bytes_taken and not last:
            # A match that outlived its first take: a stream of its own from here,
            # which compresses each take against the ones before it.
            stream = self._stream = zlib.compressobj(1, zlib.DEFLATED, RECORD_WBITS, MEM_LEVEL)
        if not pending:
            data = b""
        elif stream is None:
            data = (
                _stored(pending) if len(pending) < STORE_BELOW else _deflate.blocks(pending)
            )
        else:
            data = stream.compress(pending) + stream.flush(zlib.Z_SYNC_FLUSH)
        self._crc = zlib.crc32(pending, self._crc)
        self._size += len(pending)
        self._packer.reset()
        if not self.bytes_taken:
            data = GZIP_HEADER + data
        if last:
            data += FINAL_BLOCK + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
            self.closed = True
            self._stream = None
        self.bytes_taken += len(data)
        return data

    # -- internals ------------------------------------------------------------------

    def _hash_turn(self, state: Any, tick: int, version: int) -> None:
        # A game without a tick changes only on calls: a hash before every
        # `hash_every`-th (a hash costs a maze tens of microseconds, more than a move).
        self._calls += 1
        if self._calls % self.hash_every == 0:
            self._add_hash(tick, version, state)

    def _hash(self, state: Any) -> int | None:
        # A state no MessagePack encoder takes (an integer past 64 bits, a cycle)
        # cannot be hashed: the record ends before it (`broken`; the entries packed
        # so far are kept), and the room plays on.
        if self.broken or self.ended:
            return None
        try:
            return state_hash(state)
        except Exception:
            self.broken = True
            self._entry = _ignore
            return None

    def _add_hash(self, tick: int, version: int, state: Any) -> None:
        digest = self._hash(state)
        if digest is not None:
            self._add((HASH, tick, version, digest))

    def _add(self, entry: tuple[Any, ...]) -> None:
        try:
            self._entry(entry)
        except Exception:
            self._break()

    def _break(self) -> None:
        # The packer emptied its buffer as it failed: the entries since the last
        # `take` are lost with it (the header too, if nothing was taken yet: put back,
        # so that the record still says what it is).
        self.broken = True
        self._entry = _ignore
        if self.bytes_taken == 0:
            self._pack(self.header)
