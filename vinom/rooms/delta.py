"""Delta snapshots: a game's view encoded against one the client already holds.

Sans-I/O: values in, bytes out; no reactor, no sockets, no clock. The wire
format is specified byte for byte in docs/protocol.md ("Delta snapshots
(encoding)"); this module is its reference. The host sends it in the rooms'
``snap`` messages (docs/protocol.md §14).

The model is Quake 3's (each snapshot is encoded against the newest one the
client acknowledged, from a ring of the last 32 the server sent it) with
Glenn Fiedler's snapshot compression (quantise, then send only what
changed) and Colyseus's schema patches (changed fields by name, removals
marked). Unlike Quake 3 and Colyseus there is no schema: a view is any value
a game returns (maps with str keys, lists, ints, floats, str, bytes, bools,
None, nested), so the patch follows the view's own shape:

- a scalar is sent as itself when it differs (type included: 1, 1.0 and True
  are three different values);
- a map against a map is always a patch: a msgpack map of the changed or added
  keys (each with its sub-patch, or its full value when the key is new), and
  each removed key with the *delete* marker, msgpack ext 0 of no bytes;
- a list against a list is always a patch: an array `[length, i, patch_i, ...]`
  of the new length and each changed index with its sub-patch (its full value
  from the old length on);
- anything else (a kind changed, e.g. a list became null) is the new value.

So the decoder reads a patch against the baseline at the same place: a map
there and a map here is a patch, a list there and an array here is a patch,
anything else is the value. Unchanged subtrees cost no byte. Lists are patched
by index, as Quake 3's entity slots are: a game whose entities come and go in
the middle of a list sends every later element again, and should key them in
a map instead.

Quantisation (`Quantisation`) is declared by the game per field path
(`players.*.x`); both ends must know it (the host sends it in the
welcome's ``q``). A float at a path with a step `s` travels as the integer
`round(v * (1 / s))` and decodes to `n / (1 / s)`, the same IEEE operations
in Python and JavaScript; a `FLOAT32` path travels as a float 32. The
encoder compares the *wire* values, so jitter below the step sends nothing,
and the view a client rebuilds equals `quantise(view)` exactly.

The checksum (optional, per snapshot) is CRC-32 (zlib's, the one of
PNG and gzip) of a canonical msgpack encoding of the quantised view (maps
sorted by key, integral floats as integers because JavaScript cannot tell
1.0 from 1). CRC-32 because it is in every standard library (zlib, Java,
Go) and ten lines of JavaScript, runs at C speed in Python, and a divergence
is an accident, not an attack: 32 bits make an undetected one one in four
billion snapshots. xxhash is faster but is another dependency on both ends.

Failures are typed: decoding raises only `DeltaError` (`CorruptSnapshot`,
`UnknownBaseline`, `ChecksumMismatch`); the client-side `SnapshotReceiver`
counts them by reason instead, and never raises on what the network brings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from attrs import Factory, define, field, frozen

from vinom.rooms.carrying import carry_waiting

# The walks over wire values, compiled (their module says why); their names are
# this module's too.
from vinom.rooms.delta_wire import (
    FLOAT32,
    MAX_DEPTH,
    SAME,
    ChecksumMismatch,
    CorruptSnapshot,
    DeltaError,
    Node,
    ToWire,
    UnknownBaseline,
    apply_patch,
    compile_rules,
    diff_wire,
    from_wire,
    full_value,
    pack_wire,
    parse_frame,
    view_crc,
)
from vinom.rooms.schema import ViewSchema
from vinom.rooms.schema_frames import SCHEMA_FORMAT, decode_parsed
from vinom.rooms.schema_frames import parse_frame as parse_schema_frame

# The first byte of a schema snapshot (vinom.rooms.schema_frames).
SCHEMA_FRAME: Final = bytes((SCHEMA_FORMAT,))

__all__ = [
    "DEFAULT_HISTORY", "DEFAULT_RECEIVER_HISTORY", "DROP_CHECKSUM", "DROP_CORRUPT",
    "DROP_REASONS", "DROP_STALE", "DROP_UNKNOWN_BASELINE", "FLOAT32", "MAX_DEPTH",
    "NO_QUANTISATION", "PATCH_RETRY", "SAME", "ChecksumMismatch", "CorruptSnapshot",
    "DeltaError", "Prepared", "Quantisation", "Snapshot", "SnapshotHistory",
    "SnapshotReceiver", "UnknownBaseline", "decode_snapshot", "diff_wire", "encode_body",
    "encode_snapshot", "pack_wire", "quantisation_of", "view_crc",
]  # fmt: skip

#: The fewest snapshots a `SnapshotHistory` keeps (Quake 3's ring).
DEFAULT_HISTORY = 32
#: After a patch that weighed as much as its view whole, the next this many
#: snapshots go whole without a patch being tried: a view whose values all move
#: each tick (a real-time game's positions) would cost a diff per snapshot for
#: nothing. Any snapshot may be full (docs/protocol.md §16.1), so this changes
#: no byte a client must read, only how soon a view that calms down patches again.
PATCH_RETRY: Final = 7
#: A client keeps more decoded views than the host keeps sent ones, so any
#: baseline the host picks (one the client acknowledged) is still held.
DEFAULT_RECEIVER_HISTORY = 64

# Drop reasons of a SnapshotReceiver.
DROP_CORRUPT = "corrupt"  # not a snapshot: bad msgpack, wrong shape, a patch that does not fit
DROP_UNKNOWN_BASELINE = "unknown_baseline"  # encoded against a view this client does not hold
DROP_CHECKSUM = "checksum"  # rebuilt, but not the server's view: a bug, never the network
DROP_STALE = "stale"  # not newer than the newest applied (late, reordered or duplicated)
DROP_REASONS = (DROP_CORRUPT, DROP_UNKNOWN_BASELINE, DROP_CHECKSUM, DROP_STALE)


def _rules(
    value: Mapping[str, float | str] | tuple[tuple[str, float | str], ...],
) -> tuple[tuple[str, float | str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), v) for k, v in items)


@frozen
class Quantisation:
    """Which fields of a game's views are quantised, and how.

    `rules` maps a path pattern to a step (a positive float: 0.01 keeps two
    decimals) or `FLOAT32`. A pattern is dot-separated segments, each a map key,
    a list index in decimal, or `*` for any key or index: `players.*.x` in
    `{"players": {"ann": {"x": 1.234}}}`, `players.*.1` in
    `{"players": [[7, 1.234, 5.6]]}`. A literal segment's rule wins over a
    wildcard's at the same path. A rule applies to the numbers (int or float,
    never bool) found exactly at a matching path; other values pass unchanged.
    Map keys holding a dot cannot be named. Both ends need the same rules.
    """

    rules: tuple[tuple[str, float | str], ...] = field(default=(), converter=_rules)
    # The rules compiled to a tree the walks follow (read by this module's decoder too).
    compiled: Node | None = field(
        init=False,
        eq=False,
        repr=False,
        default=Factory(lambda self: compile_rules(self.rules), takes_self=True),
    )

    def prepare(self, view: Any, *, checksum: bool = False) -> Prepared:
        """The view in wire form, once per distinct view (share it between recipients).

        Raises TypeError for what a view cannot hold (a non-str map key, a set...)."""
        walk = ToWire()
        wire = walk.value(view, self.compiled, 0)
        crc = view_crc(wire, self.compiled) if checksum else None
        return Prepared(wire, walk.wide, crc)

    def quantise(self, view: Any) -> Any:
        """The view a client rebuilds from this one: what `decode` returns for it."""
        return from_wire(ToWire().value(view, self.compiled, 0), self.compiled, 0)

    def checksum(self, view: Any) -> int:
        """The checksum of `quantise(view)` (module docstring)."""
        return view_crc(ToWire().value(view, self.compiled, 0), self.compiled)

    def checksum_of_decoded(self, view: Any) -> int:
        """The checksum of a view already quantised (one `decode` returned)."""
        return view_crc(view, None, decoded=True)


NO_QUANTISATION: Final = Quantisation()


def quantisation_of(game: object) -> Quantisation:
    """A game's `quantisation` attribute (a mapping of path pattern to step or
    `FLOAT32`; docs/games.md) compiled, or `NO_QUANTISATION` when it has none.

    Raises ValueError for a rule that is not a positive step or `FLOAT32`."""
    rules = getattr(game, "quantisation", None)
    if not rules:
        return NO_QUANTISATION
    if not isinstance(rules, Mapping):
        raise ValueError(f"a game's quantisation maps path patterns to steps, not {rules!r}")
    return Quantisation(rules)


@frozen(eq=False)
class Prepared:
    """A view in wire form: quantised numbers as they travel, containers as dicts and lists.

    Compared by identity, so a cache may key on (baseline, view) pairs of these
    and hold them alive as it does."""

    wire: Any
    wide: bool  # a float not from a FLOAT32 rule: the body packs floats as float 64
    checksum: int | None  # CRC-32 of the quantised view, when asked for
    # The view packed whole (a full snapshot's body): packed once, as each
    # recipient's patch is weighed against it (`SnapshotHistory.encode_for`).
    full_body: bytes = field(
        init=False, default=Factory(lambda self: pack_wire(self.wire, self.wide), takes_self=True)
    )


def encode_body(baseline: Prepared | None, view: Prepared) -> bytes:
    """The body of a snapshot: `view` in full, or patched against `baseline`.

    A pure function of the pair (docs/protocol.md), so recipients with the same
    baseline and the same view may share the bytes."""
    if baseline is None:
        return view.full_body
    else:
        body = diff_wire(baseline.wire, view.wire)
        if body is SAME:
            kind = type(view.wire)
            body = {} if kind is dict else [len(view.wire)] if kind is list else view.wire
    return pack_wire(body, view.wide)


def encode_snapshot(
    tick: int,
    view: Prepared,
    baseline_tick: int | None = None,
    baseline: Prepared | None = None,
    body: bytes | None = None,
) -> bytes:
    """A snapshot of `tick`: `[tick, tick - baseline_tick or nil, checksum or nil, body]`.

    `body` may be given when a cache holds `encode_body(baseline, view)`."""
    if (baseline is None) != (baseline_tick is None):
        raise ValueError("a baseline needs its tick, and a tick its baseline")
    if baseline_tick is not None and not 0 <= baseline_tick < tick:
        raise ValueError(f"baseline tick {baseline_tick} is not before tick {tick}")
    if body is None:
        body = encode_body(baseline, view)
    distance = None if baseline_tick is None else tick - baseline_tick
    # The header packs as a 3-array; one more element (the body, already packed) makes 4.
    header = pack_wire([tick, distance, view.checksum], True)
    return b"\x94" + header[1:] + body


# -- decoding -----------------------------------------------------------------


@frozen
class Snapshot:
    """A decoded snapshot: the view of `tick`, rebuilt on the view of `baseline_tick`."""

    tick: int
    baseline_tick: int | None
    checksum: int | None
    view: Any


def _rebuild(
    frame: tuple[int, int | None, int | None, Any],
    baselines: Mapping[int, Any],
    quantisation: Quantisation,
    verify: bool,
) -> Snapshot:
    tick, baseline_tick, checksum, body = frame
    root = quantisation.compiled
    try:
        if baseline_tick is None:
            view = full_value(body, root, 0)
        else:
            if baseline_tick not in baselines:
                raise UnknownBaseline(baseline_tick)
            view = apply_patch(baselines[baseline_tick], body, root, 0)
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops well before
        raise CorruptSnapshot("nested too deep") from None
    if verify and checksum is not None and checksum != view_crc(view, None, decoded=True):
        raise ChecksumMismatch(f"tick {tick}: the rebuilt view is not the server's")
    return Snapshot(tick, baseline_tick, checksum, view)


def decode_snapshot(
    data: bytes,
    baselines: Mapping[int, Any],
    quantisation: Quantisation = NO_QUANTISATION,
    *,
    verify: bool = True,
) -> Snapshot:
    """Decode a snapshot against the decoded views `baselines` holds by tick.

    Raises `UnknownBaseline` when its baseline is not there, `CorruptSnapshot`
    for anything that is not a snapshot, `ChecksumMismatch` (when `verify` and
    the snapshot carries a checksum) when the view rebuilt is not the server's;
    nothing else, whatever the bytes."""
    return _rebuild(parse_frame(data), baselines, quantisation, verify)


# -- the rings on each side -----------------------------------------------------


@define
class SnapshotHistory:
    """The host's side, one per client: the views it sent by tick, the newest ack.

    `encode_for` encodes each snapshot against the newest view the client
    acknowledged, while this history still holds it (the last `capacity`
    sent); a full one otherwise. Acknowledgements may come late, twice or out
    of order: the newest one counts."""

    quantisation: Quantisation = NO_QUANTISATION
    capacity: int = DEFAULT_HISTORY
    checksum: bool = False
    acked: int | None = None
    sent: dict[int, Prepared] = field(factory=dict)
    full_sent: int = 0
    deltas_sent: int = 0
    # Snapshots still to send whole, without weighing a patch, after a patch
    # weighed as much as the view (`PATCH_RETRY`).
    patch_pause: int = 0
    # The tick the last snapshot `encode_for` made is a delta against (None: full):
    # its snap's numbers are written against that tick's (docs/protocol.md §14).
    base_tick: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.capacity < DEFAULT_HISTORY:
            raise ValueError(f"a history keeps at least {DEFAULT_HISTORY} snapshots")

    def acknowledge(self, tick: int) -> None:
        """The client applied the snapshot of `tick` (an older ack changes nothing)."""
        if self.acked is None or tick > self.acked:
            self.acked = tick

    def baseline(self, tick: int) -> tuple[int, Prepared] | None:
        """The baseline a snapshot of `tick` would use now, if any."""
        acked = self.acked
        if acked is None or acked >= tick:
            return None
        found = self.sent.get(acked)
        return None if found is None else (acked, found)

    def encode_for(
        self,
        tick: int,
        view: Any,
        client_ack_tick: int | None = None,
        cache: dict[tuple[Prepared, Prepared], bytes] | None = None,
    ) -> bytes:
        """The snapshot of `tick` for this client, recorded as sent.

        `view` is the game's view or a `Prepared` one (prepared once and
        shared when several recipients see the same view); `client_ack_tick`
        the client's newest acknowledgement, if one came since the last call.
        `cache`, kept by the caller for one tick, shares bodies between
        recipients with the same baseline and view."""
        if client_ack_tick is not None:
            self.acknowledge(client_ack_tick)
        prepared = (
            view
            if isinstance(view, Prepared)
            else self.quantisation.prepare(view, checksum=self.checksum)
        )
        found = self.baseline(tick)
        data = b""
        if found is not None and self.patch_pause:
            self.patch_pause -= 1
        elif found is not None:
            base_tick, base = found
            cached = None if cache is None else cache.get((base, prepared))
            if cached is None:
                body = encode_body(base, prepared)
                if cache is not None:
                    cache[(base, prepared)] = body
            else:
                body = cached
            # A view whose every value moved (a real-time game's positions) patches
            # to more than it weighs whole: then it goes whole, which any client reads.
            if len(body) < len(prepared.full_body):
                self.deltas_sent += 1
                data = encode_snapshot(tick, prepared, base_tick, base, body)
                self.base_tick = base_tick
            else:
                self.patch_pause = PATCH_RETRY
        if not data:
            self.full_sent += 1
            data = encode_snapshot(tick, prepared, body=prepared.full_body)
            self.base_tick = None
        self._record(tick, prepared)
        return data

    def _record(self, tick: int, prepared: Prepared) -> None:
        sent = self.sent
        sent.pop(tick, None)  # a tick encoded again is the newest entry
        sent[tick] = prepared
        while len(sent) > self.capacity:
            del sent[next(iter(sent))]


@define
class SnapshotReceiver:
    """The client's side: the views it rebuilt by tick, and the tick to acknowledge.

    `receive` applies a snapshot newer than the newest applied one and returns
    it; anything else is dropped, counted by reason (`drops`), and returns
    None. It never raises on bytes."""

    quantisation: Quantisation = NO_QUANTISATION
    capacity: int = DEFAULT_RECEIVER_HISTORY
    views: dict[int, Any] = field(factory=dict)
    newest: int | None = None
    drops: Counter[str] = field(factory=Counter)
    applied: int = 0
    # The game's view schema (the welcome's ``vs``): with it, schema snapshots
    # (vinom.rooms.schema) are read too, their wire views kept by tick in `wires`.
    schema: ViewSchema | None = None
    wires: dict[int, tuple[Any, ...]] = field(factory=dict)
    # The rows that waited in those of `wires` that had any (§16.8's wait bits), by tick;
    # None for a full one, which lists none (a row it lacks may be waiting).
    waited: dict[int, dict[int, list[int]] | None] = field(factory=dict)

    def receive(self, data: bytes) -> Snapshot | None:
        wire = None
        try:
            if self.schema is not None and data[:1] == SCHEMA_FRAME:
                snapshot, wire = self._rebuild_schema(self.schema, data)
            else:
                frame = parse_frame(data)
                snapshot = None if self._stale(frame[0]) else _rebuild(
                    frame, self.views, self.quantisation, True)  # fmt: skip
        except UnknownBaseline:
            self.drops[DROP_UNKNOWN_BASELINE] += 1
            return None
        except ChecksumMismatch:
            self.drops[DROP_CHECKSUM] += 1
            return None
        except DeltaError:
            self.drops[DROP_CORRUPT] += 1
            return None
        if snapshot is None:
            self.drops[DROP_STALE] += 1
            return None
        self.newest = snapshot.tick
        self.applied += 1
        for kept, value in ((self.views, snapshot.view), (self.wires, wire)):
            if value is not None:
                kept[snapshot.tick] = value
                while len(kept) > self.capacity:
                    del kept[next(iter(kept))]
        # The waits of the ticks `wires` let go, the oldest (both are in tick order).
        waited, wires = self.waited, self.wires
        while waited and next(iter(waited)) not in wires:
            del waited[next(iter(waited))]
        return snapshot

    def _stale(self, tick: int) -> bool:
        return self.newest is not None and tick <= self.newest

    def _rebuild_schema(
        self, schema: ViewSchema, data: bytes
    ) -> tuple[Snapshot | None, tuple[Any, ...] | None]:
        """A schema snapshot rebuilt on the wire views of those applied (None: stale)."""
        frame = parse_schema_frame(data)
        if self._stale(frame[0]):
            return None, None
        tick, baseline_tick, checksum, wire, waiting = decode_parsed(schema, frame, self.wires)
        view = schema.rebuild(wire)
        if checksum is not None and checksum != view_crc(view, None, decoded=True):
            raise ChecksumMismatch(f"tick {tick}: the rebuilt view is not the server's")
        waited = self.waited
        if waiting:
            # Rows a byte budget held back: the baseline's values, older than what the
            # snaps since showed; shown carried on instead (vinom.rooms.carrying).
            kept = {t: (w, waited.get(t, {})) for t, w in self.wires.items()}
            view = schema.rebuild(carry_waiting(schema, tick, wire, waiting, kept))
            waited[tick] = waiting
        elif baseline_tick is None:
            waited[tick] = None
        return Snapshot(tick, baseline_tick, checksum, view), wire
