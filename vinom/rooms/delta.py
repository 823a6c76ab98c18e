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

import math
import struct
import zlib
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import msgpack
from attrs import Factory, define, field, frozen

#: A `Quantisation` rule that sends a float as a float 32 (4 bytes instead of 8).
FLOAT32: Final = "f32"
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
#: Deepest nesting the decoder accepts (the web client's codec.js: 256); views are shallow.
MAX_DEPTH: Final = 64

# Beyond this an integer is no longer exact in JavaScript (2^53 - 1).
_MAX_SAFE: Final = 9007199254740991
_FLOAT32_MAX: Final = 3.4028234663852886e38
_f32 = struct.Struct("<f")

# The delete marker of a removed map key, and its ext type code.
_DELETE_CODE: Final = 0
_DELETE: Final = msgpack.ExtType(_DELETE_CODE, b"")

# Drop reasons of a SnapshotReceiver.
DROP_CORRUPT = "corrupt"  # not a snapshot: bad msgpack, wrong shape, a patch that does not fit
DROP_UNKNOWN_BASELINE = "unknown_baseline"  # encoded against a view this client does not hold
DROP_CHECKSUM = "checksum"  # rebuilt, but not the server's view: a bug, never the network
DROP_STALE = "stale"  # not newer than the newest applied (late, reordered or duplicated)
DROP_REASONS = (DROP_CORRUPT, DROP_UNKNOWN_BASELINE, DROP_CHECKSUM, DROP_STALE)


class DeltaError(ValueError):
    """A snapshot that cannot be decoded (the only error decoding raises)."""


class CorruptSnapshot(DeltaError):
    """The bytes are not a snapshot, or the patch does not fit its baseline."""


class UnknownBaseline(DeltaError):
    """The snapshot was encoded against a tick whose view the decoder does not hold."""

    def __init__(self, tick: int) -> None:
        super().__init__(f"no view of tick {tick} to decode against")
        self.tick = tick


class ChecksumMismatch(DeltaError):
    """The rebuilt view's checksum is not the one the server sent with it."""


# -- quantisation -------------------------------------------------------------


class _Node:
    """One step of the compiled path patterns: what applies at this path and below."""

    __slots__ = ("by_index", "children", "f32", "scale", "wildcard")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.wildcard: _Node | None = None
        self.scale = 0.0  # 1 / step for a stepped float here; 0.0: none
        self.f32 = False
        # The child of each list index up to the highest index named ("1" -> [w, c1]),
        # so a list is walked without str(i); None when an index is too high for it.
        self.by_index: list[_Node | None] | None = []

    def child(self, key: str) -> _Node | None:
        return self.children.get(key, self.wildcard)

    def at(self, index: int) -> _Node | None:
        by_index = self.by_index
        if by_index is None:
            return self.children.get(str(index), self.wildcard)
        return by_index[index] if index < len(by_index) else self.wildcard


def _merge(literal: _Node, wildcard: _Node) -> _Node:
    """A node matching what both match; the literal's own rule wins over the wildcard's."""
    merged = _Node()
    if literal.scale or literal.f32:
        merged.scale, merged.f32 = literal.scale, literal.f32
    else:
        merged.scale, merged.f32 = wildcard.scale, wildcard.f32
    for key in literal.children.keys() | wildcard.children.keys():
        a, b = literal.children.get(key), wildcard.children.get(key)
        if a is None or b is None:
            found = a if b is None else b
            if found is not None:
                merged.children[key] = found
        else:
            merged.children[key] = _merge(a, b)
    if literal.wildcard is None or wildcard.wildcard is None:
        merged.wildcard = literal.wildcard or wildcard.wildcard
    else:
        merged.wildcard = _merge(literal.wildcard, wildcard.wildcard)
    return merged


_MAX_INDEXED = 1024  # a rule naming a higher list index is looked up by str(index)


def _resolve(node: _Node) -> None:
    """Fold each wildcard into its literal siblings, so a walk follows one node only."""
    if node.wildcard is not None:
        for key, child in list(node.children.items()):
            node.children[key] = _merge(child, node.wildcard)
        _resolve(node.wildcard)
    for child in node.children.values():
        _resolve(child)
    # Only a key list indices print as ("7", not "07") can name one.
    indices = [int(k) for k in node.children if k.isdigit() and k == str(int(k))]
    if indices and max(indices) >= _MAX_INDEXED:
        node.by_index = None
    elif indices:
        node.by_index = [node.children.get(str(i), node.wildcard) for i in range(max(indices) + 1)]


def _compile(rules: tuple[tuple[str, float | str], ...]) -> _Node | None:
    if not rules:
        return None
    root = _Node()
    for pattern, rule in rules:
        node = root
        for segment in pattern.split("."):
            if not segment:
                raise ValueError(f"empty segment in quantisation path {pattern!r}")
            if segment == "*":
                if node.wildcard is None:
                    node.wildcard = _Node()
                node = node.wildcard
            else:
                node = node.children.setdefault(segment, _Node())
        if rule == FLOAT32:
            node.f32 = True
        elif isinstance(rule, (int, float)) and not isinstance(rule, bool) and rule > 0:
            scale = 1.0 / rule
            if not math.isfinite(scale):
                raise ValueError(f"quantisation step {rule!r} is too small")
            node.scale = scale
        else:
            raise ValueError(f"quantisation rule {rule!r}: a positive step or FLOAT32")
    _resolve(root)
    return root


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
    compiled: _Node | None = field(
        init=False,
        eq=False,
        repr=False,
        default=Factory(lambda self: _compile(self.rules), takes_self=True),
    )

    def prepare(self, view: Any, *, checksum: bool = False) -> Prepared:
        """The view in wire form, once per distinct view (share it between recipients).

        Raises TypeError for what a view cannot hold (a non-str map key, a set...)."""
        walk = _ToWire()
        wire = walk.value(view, self.compiled, 0)
        crc = view_crc(wire, self.compiled) if checksum else None
        return Prepared(wire, walk.wide, crc)

    def quantise(self, view: Any) -> Any:
        """The view a client rebuilds from this one: what `decode` returns for it."""
        return _from_wire(_ToWire().value(view, self.compiled, 0), self.compiled, 0)

    def checksum(self, view: Any) -> int:
        """The checksum of `quantise(view)` (module docstring)."""
        return view_crc(_ToWire().value(view, self.compiled, 0), self.compiled)

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


class _ToWire:
    """Walks a view into its wire form, noting whether a float needs 64 bits."""

    def __init__(self) -> None:
        self.wide = False

    def value(self, value: Any, node: _Node | None, depth: int) -> Any:
        kind = type(value)
        if kind is str or value is None or kind is bool or kind is bytes:
            return value
        if kind is float:
            if node is not None:
                if node.scale:
                    return self._stepped(value, node.scale)
                if node.f32:
                    return self._float32(value)
            self.wide = True
            return value
        if kind is int:
            if node is not None:
                if node.scale:
                    return self._stepped(float(value), node.scale)
                if node.f32:
                    return self._float32(float(value))
            return value
        if depth >= MAX_DEPTH:
            raise TypeError(f"a view nested deeper than {MAX_DEPTH}")
        # The loops below handle the common scalars inline: a call per value is
        # most of the cost of a walk in Python. Plain dicts and lists are told
        # by their type first: `isinstance(x, Mapping)` is an ABC check, slow.
        if kind is list or kind is tuple:
            return self._items(value, node, depth + 1)
        if kind is dict or isinstance(value, Mapping):
            return self._entries(value, node, depth + 1)
        raise TypeError(f"a view cannot hold {value!r}")

    def _entries(self, value: Mapping[Any, Any], node: _Node | None, deeper: int) -> Any:
        out: dict[str, Any] = {}
        child: _Node | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"a view's map key must be a str, not {key!r}")
            kind = type(item)
            if node is not None:
                child = node.children.get(key, node.wildcard)
            if child is None:
                if kind is int or kind is str or kind is bool or item is None:
                    out[key] = item
                    continue
            elif child.scale and (kind is float or kind is int):
                scaled = item * child.scale
                if -_MAX_SAFE <= scaled <= _MAX_SAFE:
                    out[key] = round(scaled)
                    continue
            out[key] = self.value(item, child, deeper)
        return out

    def _items(self, value: Any, node: _Node | None, deeper: int) -> Any:
        items: list[Any] = []
        append = items.append
        child: _Node | None = None
        # The node of each index, looked up inline (`_Node.at` without its call).
        wildcard = None if node is None else node.wildcard
        by_index = None if node is None else node.by_index
        named = 0 if by_index is None else len(by_index)
        for i, item in enumerate(value):
            kind = type(item)
            if node is not None:
                if by_index is None:
                    child = node.children.get(str(i), wildcard)
                else:
                    child = by_index[i] if i < named else wildcard
            if child is None:
                if kind is int or kind is str or kind is bool or item is None:
                    append(item)
                    continue
            elif child.scale and (kind is float or kind is int):
                scaled = item * child.scale
                if -_MAX_SAFE <= scaled <= _MAX_SAFE:
                    append(round(scaled))
                    continue
            append(self.value(item, child, deeper))
        return items

    def _stepped(self, value: float, scale: float) -> Any:
        scaled = value * scale
        if math.isfinite(scaled) and -_MAX_SAFE <= scaled <= _MAX_SAFE:
            return round(scaled)
        self.wide = True  # out of the step's range: sent as it is
        return value

    def _float32(self, value: float) -> float:
        if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            self.wide = True  # no float 32 holds it: sent as float 64
            return value
        return float(_f32.unpack(_f32.pack(value))[0])


def _from_wire(wire: Any, node: _Node | None, depth: int) -> Any:
    """A wire value (already checked, or made by `_ToWire`) as the client sees it."""
    kind = type(wire)
    if kind is int:
        return wire / node.scale if node is not None and node.scale else wire
    if kind is dict:
        if node is None:
            return {k: _from_wire(v, None, depth + 1) for k, v in wire.items()}
        return {k: _from_wire(v, node.child(k), depth + 1) for k, v in wire.items()}
    if kind is list:
        if node is None:
            return [_from_wire(v, None, depth + 1) for v in wire]
        return [_from_wire(v, node.at(i), depth + 1) for i, v in enumerate(wire)]
    return wire


def _canonical(value: Any, node: _Node | None, decoded: bool) -> Any:
    """The checksum's form of a quantised view: maps sorted by key (code point
    order), integral floats within 2^53 as ints (JavaScript has one number
    type), -0.0 as 0. `decoded`: `value` is a decoded view, not a wire one."""
    kind = type(value)
    if kind is int:
        if not decoded and node is not None and node.scale:
            return _canonical(value / node.scale, None, True)
        return value
    if kind is float:
        if value.is_integer() and -_MAX_SAFE <= value <= _MAX_SAFE:
            return int(value)
        return value
    if kind is dict:
        if node is None:
            return {k: _canonical(value[k], None, decoded) for k in sorted(value)}
        return {k: _canonical(value[k], node.child(k), decoded) for k in sorted(value)}
    if kind is list:
        items: list[Any] = []
        append = items.append
        child: _Node | None = None
        for i, item in enumerate(value):
            if node is not None:
                child = node.at(i)
            kind = type(item)
            # Inline what most lists hold: a call per value is most of the cost.
            if kind is int:
                if decoded or child is None or not child.scale:
                    append(item)
                    continue
                number = item / child.scale
                if number.is_integer() and -_MAX_SAFE <= number <= _MAX_SAFE:
                    append(int(number))
                else:
                    append(number)
            elif kind is str:
                append(item)
            else:
                append(_canonical(item, child, decoded))
        return items
    return value


def view_crc(value: Any, root: _Node | None, *, decoded: bool = False) -> int:
    """The CRC-32 of a view's canonical form (a `snap`'s checksum, section 16)."""
    return zlib.crc32(_packer64.pack(_canonical(value, root, decoded)))


# -- encoding -----------------------------------------------------------------

_packer64 = msgpack.Packer()
_packer32 = msgpack.Packer(use_single_float=True)
SAME: Final = object()  # "unchanged": nothing to send for this subtree


def diff_wire(base: Any, new: Any) -> Any:
    """The patch turning wire value `base` into wire value `new`, or SAME.

    Scalars are compared inline in the loops (a call per value is most of the
    cost), by type and value: 1, 1.0 and True differ."""
    kind = type(new)
    if type(base) is not kind:
        return new
    if kind is dict:
        patch: dict[str, Any] = {}
        kept = 0
        for key, item in new.items():
            old = base.get(key, SAME)
            if old is SAME:
                patch[key] = item
                continue
            kept += 1
            kind = type(item)
            if type(old) is not kind:
                patch[key] = item
            elif kind is dict or kind is list:
                sub = diff_wire(old, item)
                if sub is not SAME:
                    patch[key] = sub
            elif old != item:
                patch[key] = item
        if kept < len(base):
            for key in base:
                if key not in new:
                    patch[key] = _DELETE
        return patch if patch else SAME
    if kind is list:
        length = len(new)
        out: list[Any] = [length]
        append = out.append
        for i, (old, item) in enumerate(zip(base, new, strict=False)):
            kind = type(item)
            if type(old) is not kind:
                append(i)
                append(item)
            elif kind is dict or kind is list:
                sub = diff_wire(old, item)
                if sub is not SAME:
                    append(i)
                    append(sub)
            elif old != item:
                append(i)
                append(item)
        for i in range(len(base), length):
            append(i)
            append(new[i])
        return out if len(out) > 1 or length != len(base) else SAME
    return SAME if base == new else new


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


def pack_wire(value: Any, wide: bool) -> bytes:
    """A wire value in msgpack, its floats 64-bit when `wide`, else 32-bit."""
    return (_packer64 if wide else _packer32).pack(value)


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
    header = _packer64.pack([tick, distance, view.checksum])
    return b"\x94" + header[1:] + body


# -- decoding -----------------------------------------------------------------


@frozen
class Snapshot:
    """A decoded snapshot: the view of `tick`, rebuilt on the view of `baseline_tick`."""

    tick: int
    baseline_tick: int | None
    checksum: int | None
    view: Any


def _bad(why: str) -> CorruptSnapshot:
    return CorruptSnapshot(why)


def _full(value: Any, node: _Node | None, depth: int) -> Any:
    """A value sent whole, checked: what msgpack can give that no view holds is corrupt."""
    kind = type(value)
    if kind is int:
        return value / node.scale if node is not None and node.scale else value
    if kind is str or kind is float or value is None or kind is bool or kind is bytes:
        return value
    if depth >= MAX_DEPTH:
        raise _bad("nested too deep")
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _bad("a map key that is not a str")
            out[key] = _full(item, None if node is None else node.child(key), depth + 1)
        return out
    if kind is list:
        if node is None:
            return [_full(item, None, depth + 1) for item in value]
        return [_full(item, node.at(i), depth + 1) for i, item in enumerate(value)]
    raise _bad(f"a value no view holds: {type(value).__name__}")


def _apply(base: Any, patch: Any, node: _Node | None, depth: int) -> Any:
    """`base` (a decoded view) with `patch` applied. Unchanged subtrees are shared."""
    kind = type(base)
    if kind is dict and type(patch) is dict:
        if depth >= MAX_DEPTH:
            raise _bad("nested too deep")
        out = dict(base)
        for key, sub in patch.items():
            if type(key) is not str:
                raise _bad("a map key that is not a str")
            if type(sub) is msgpack.ExtType:
                if sub.code != _DELETE_CODE or sub.data or key not in out:
                    raise _bad("an ext that is not the delete marker of a present key")
                del out[key]
                continue
            child = None if node is None else node.child(key)
            out[key] = (
                _apply(base[key], sub, child, depth + 1)
                if key in base
                else _full(sub, child, depth + 1)
            )
        return out
    if kind is list and type(patch) is list:
        if depth >= MAX_DEPTH:
            raise _bad("nested too deep")
        if not patch or len(patch) % 2 != 1:
            raise _bad("a list patch is [length, index, patch, ...]")
        length = patch[0]
        old = len(base)
        if type(length) is not int or not 0 <= length <= old + len(patch) // 2:
            raise _bad("a list patch's length does not fit")
        items: list[Any] = base[:length]
        if length > old:
            items.extend([SAME] * (length - old))
        for at in range(1, len(patch), 2):
            i = patch[at]
            if type(i) is not int or not 0 <= i < length:
                raise _bad("a list patch's index out of range")
            child = None if node is None else node.at(i)
            sub = patch[at + 1]
            items[i] = (
                _apply(base[i], sub, child, depth + 1) if i < old else _full(sub, child, depth + 1)
            )
        if length > old and any(item is SAME for item in items[old:]):
            raise _bad("a list patch leaves an added element out")
        return items
    if type(patch) is msgpack.ExtType:
        raise _bad("a delete marker outside a map patch")
    return _full(patch, node, depth)


def _parse(data: bytes) -> tuple[int, int | None, int | None, Any]:
    """A snapshot's frame: (tick, baseline tick or None, checksum or None, body)."""
    try:
        frame = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as failure:  # msgpack has several (ExtraData, FormatError, ValueError...)
        raise _bad(f"not msgpack: {failure}") from None
    if type(frame) is not list or len(frame) != 4:
        raise _bad("a snapshot is [tick, distance, checksum, body]")
    tick, distance, checksum, body = frame
    if type(tick) is not int or tick < 0:
        raise _bad("a tick is a non-negative integer")
    if distance is not None and (type(distance) is not int or not 0 < distance <= tick):
        raise _bad("a baseline distance is a positive integer, at most the tick")
    if checksum is not None and (type(checksum) is not int or not 0 <= checksum <= 0xFFFFFFFF):
        raise _bad("a checksum is an unsigned 32-bit integer")
    return tick, None if distance is None else tick - distance, checksum, body


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
            view = _full(body, root, 0)
        else:
            if baseline_tick not in baselines:
                raise UnknownBaseline(baseline_tick)
            view = _apply(baselines[baseline_tick], body, root, 0)
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops well before
        raise _bad("nested too deep") from None
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
    return _rebuild(_parse(data), baselines, quantisation, verify)


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
        weigh: bool = False,
    ) -> bytes:
        """The snapshot of `tick` for this client, recorded as sent.

        `view` is the game's view or a `Prepared` one (prepared once and
        shared when several recipients see the same view); `client_ack_tick`
        the client's newest acknowledgement, if one came since the last call.
        `cache`, kept by the caller for one tick, shares bodies between
        recipients with the same baseline and view. `weigh`: try the patch even
        after one that weighed as much as its view (a view cut to a byte budget
        counts on it)."""
        if client_ack_tick is not None:
            self.acknowledge(client_ack_tick)
        prepared = (
            view
            if isinstance(view, Prepared)
            else self.quantisation.prepare(view, checksum=self.checksum)
        )
        found = self.baseline(tick)
        data = b""
        if found is not None and self.patch_pause and not weigh:
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
            else:
                self.patch_pause = PATCH_RETRY
        if not data:
            self.full_sent += 1
            data = encode_snapshot(tick, prepared, body=prepared.full_body)
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

    def receive(self, data: bytes) -> Snapshot | None:
        try:
            frame = _parse(data)
            if self.newest is not None and frame[0] <= self.newest:
                self.drops[DROP_STALE] += 1
                return None
            snapshot = _rebuild(frame, self.views, self.quantisation, True)
        except UnknownBaseline:
            self.drops[DROP_UNKNOWN_BASELINE] += 1
            return None
        except ChecksumMismatch:
            self.drops[DROP_CHECKSUM] += 1
            return None
        except DeltaError:
            self.drops[DROP_CORRUPT] += 1
            return None
        self.newest = snapshot.tick
        self.applied += 1
        views = self.views
        views[snapshot.tick] = snapshot.view
        while len(views) > self.capacity:
            del views[next(iter(views))]
        return snapshot
