"""Schema snapshot frames (docs/protocol.md §16.8): the header around a body
(vinom.rooms.schema), the host's ring of the wire views each client may
acknowledge (`SchemaHistory`, compiled with the packet path), and the client's
decoding against the baselines it holds (`decode_frame`). Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from vinom.rooms.delta_wire import CorruptSnapshot, UnknownBaseline
from vinom.rooms.schema import SharedChanges, ViewSchema, Waiting

#: The first byte of a schema snapshot (a §16.1 snapshot starts with 0x94).
SCHEMA_FORMAT: Final = 0x01
#: A parsed frame: tick, distance (0: full), checksum or None, body, whether it has waits.
Frame = tuple[int, int, int | None, bytes, bool]
#: The frame's flags: a checksum follows; the body's rows carry wait bits.
CHECKSUM: Final = 0x01
WAITS: Final = 0x02


def frame_header_bytes(tick: int, base_tick: int | None, checksum: bool) -> int:
    """The bytes of a schema snapshot before its body (docs/protocol.md §16.8)."""
    distance = 0 if base_tick is None else tick - base_tick
    return 2 + len(write_uvar(tick)) + len(write_uvar(distance)) + (4 if checksum else 0)


def encode_frame(tick: int, distance: int, checksum: int | None, body: bytes,
                 waits: bool = False) -> bytes:  # fmt: skip
    """A schema snapshot: format byte, tick and distance (0: full) as LEB128, a flags
    byte (`CHECKSUM`: a CRC-32 follows, little-endian; `WAITS`: the body's rows carry
    wait bits), then the body. Whole bytes, as `parse_frame` reads them."""
    head = b"".join((bytes((SCHEMA_FORMAT,)), write_uvar(tick), write_uvar(distance)))
    flags = WAITS if waits else 0
    if checksum is None:
        return head + bytes((flags,)) + body
    return head + bytes((flags | CHECKSUM,)) + checksum.to_bytes(4, "little") + body


def write_uvar(value: int) -> bytes:
    """`value` (at least 0) as unsigned LEB128 bytes (`BitWriter.uvar` writes it into bits)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvars(data: bytes, at: int, count: int, longest: int) -> tuple[list[int], int] | None:
    """`count` unsigned LEB128 numbers of bytes from `data[at:]`, each at most `longest`
    bytes, and where they end; None when one is cut short or longer."""
    numbers = []
    size = len(data)
    for _ in range(count):
        value = shift = 0
        end = at + longest
        while True:
            if at >= size or at == end:
                return None
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        numbers.append(value)
    return numbers, at


def parse_frame(data: bytes) -> Frame:
    """(tick, distance, checksum, body, waits) of a schema snapshot; CorruptSnapshot if
    not one."""
    if not data or data[0] != SCHEMA_FORMAT:
        raise CorruptSnapshot("not a schema snapshot")
    read = read_uvars(data, 1, 2, 9)
    if read is None:
        raise CorruptSnapshot("a schema snapshot's header is cut short")
    (tick, distance), at = read
    if at >= len(data) or distance > tick:
        raise CorruptSnapshot("a schema snapshot's header is malformed")
    flags = data[at]
    # Unknown flags, and waits in a full snapshot (nothing to wait against), are corrupt.
    if flags & ~(CHECKSUM | WAITS) or (flags & WAITS and not distance):
        raise CorruptSnapshot("a schema snapshot's flags are malformed")
    checksum = None
    if flags & CHECKSUM:
        if at + 5 > len(data):
            raise CorruptSnapshot("a schema snapshot's checksum is cut short")
        checksum = int.from_bytes(data[at + 1 : at + 5], "little")
        at += 4
    return tick, distance, checksum, data[at + 1 :], bool(flags & WAITS)


# -- the host's ring ----------------------------------------------------------------


class SchemaHistory:
    """The host's side for a client that reads schema snapshots: the wire views it
    sent by tick (the last `capacity`) and the newest tick the client acknowledged;
    each snapshot is encoded against that one while it is held, else in full."""

    def __init__(self, schema: ViewSchema, capacity: int = 32) -> None:
        self.schema = schema
        self.capacity = capacity
        self.acked: int | None = None
        # The tick the last snapshot `encode_for` made is a delta against (None: full).
        self.base_tick: int | None = None
        self.sent: dict[int, tuple[Any, ...]] = {}
        self.full_sent = 0
        self.deltas_sent = 0

    def acknowledge(self, tick: int) -> None:
        if self.acked is None or tick > self.acked:
            self.acked = tick

    def baseline(self, tick: int) -> tuple[int, tuple[Any, ...]] | None:
        """The baseline (its tick, its wire view) a snapshot of `tick` would use now."""
        acked = self.acked
        if acked is None or acked >= tick:
            return None
        found = self.sent.get(acked)
        return None if found is None else (acked, found)

    def encode_for(self, tick: int, wire: tuple[Any, ...], crc: int | None = None,
                   cache: dict[tuple[int, int], tuple[Any, Any, bytes]] | None = None,
                   waiting: Waiting | None = None,
                   changes: SharedChanges | None = None) -> bytes:  # fmt: skip
        """The snapshot of `tick` for this client, recorded as sent. `wire` is
        `schema.wire(view)`, `crc` its checksum when snaps carry one (else None); `cache`,
        kept by the caller for one tick, shares bodies between recipients of the same
        wire view with the same baseline (keyed by the two views' ids; the entry holds
        both, so neither id is reused while it lives), and `changes` the changed rows
        written in them (`ViewSchema.encode_body`). `waiting`: the rows a byte budget
        held back (sent as the baseline has them), said in the delta (`WAITS`)."""
        acked = self.acked
        base = None if acked is None or acked >= tick else self.sent.get(acked)
        waits = waiting is not None and base is not None
        key = (id(base), id(wire))
        hit = None if cache is None or waits else cache.get(key)
        if waits:
            body = self.schema.encode_body(base, wire, waiting, changes)
        elif hit is not None and hit[0] is base and hit[1] is wire:
            body = hit[2]
        else:
            body = self.schema.encode_body(base, wire, None, changes)
            if cache is not None:
                cache[key] = (base, wire, body)
        if base is None:
            self.full_sent += 1
            distance = 0
            self.base_tick = None
        else:
            self.deltas_sent += 1
            distance = tick - acked  # type: ignore[operator]
            self.base_tick = acked
        sent = self.sent
        sent.pop(tick, None)
        sent[tick] = wire
        while len(sent) > self.capacity:
            del sent[next(iter(sent))]
        return encode_frame(tick, distance, crc, body, waits)


#: A decoded schema snapshot: tick, baseline tick or None, checksum or None, wire view,
#: and the rows that wait ({field position: [id, ...]}).
Decoded = tuple[int, int | None, int | None, tuple[Any, ...], dict[int, list[int]]]


def decode_frame(schema: ViewSchema, data: bytes,
                 baselines: Mapping[int, tuple[Any, ...]]) -> Decoded:  # fmt: skip
    """(tick, baseline tick or None, checksum, wire view, waiting rows) of a schema
    snapshot.

    Raises `UnknownBaseline` or `CorruptSnapshot` (never anything else)."""
    return decode_parsed(schema, parse_frame(data), baselines)


def decode_parsed(schema: ViewSchema, frame: Frame,
                  baselines: Mapping[int, tuple[Any, ...]]) -> Decoded:  # fmt: skip
    """`decode_frame` of a frame `parse_frame` read already (a receiver reads its tick
    first, to drop a stale one unread)."""
    tick, distance, checksum, body, waits = frame
    base = None
    if distance:
        base = baselines.get(tick - distance)
        if base is None:
            raise UnknownBaseline(tick - distance)
    try:
        wire, waiting = schema.decode_body(base, body, waits)
    except CorruptSnapshot:
        raise
    except (ValueError, TypeError, RecursionError):
        raise CorruptSnapshot("not a snapshot of this schema") from None
    return tick, tick - distance if distance else None, checksum, wire, waiting
