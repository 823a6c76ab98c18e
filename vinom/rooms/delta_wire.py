"""The delta snapshots' walks over wire values: quantise a view, diff two, apply
a patch, take a checksum (the format: vinom.rooms.delta and docs/protocol.md
section 16).

These are the per-recipient, per-tick loops of a ticking room (a host quantises
and weighs every player's view each snapshot), so they are compiled with mypyc
with the packet path (setup.py): plain typed functions and classes, no attrs,
since a compiled class cannot hold attrs' fields. The values that carry them
(`Quantisation`, `Prepared`, the histories) stay in vinom.rooms.delta, which is
the module to import; these names are its building blocks.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any, Final

import msgpack

#: A `Quantisation` rule that sends a float as a float 32 (4 bytes instead of 8).
FLOAT32: Final = "f32"
#: Deepest nesting the decoder accepts (the web client's codec.js: 256); views are shallow.
MAX_DEPTH: Final = 64

# Beyond this an integer is no longer exact in JavaScript (2^53 - 1), as a float
# (exactly: floats are what it bounds). The compiled loops below take an int's
# float before scaling it (in Python an int times or over a float is that too),
# so that they do their arithmetic on C doubles.
_MAX_SAFE: Final = 9007199254740991.0
_FLOAT32_MAX: Final = 3.4028234663852886e38
_f32 = struct.Struct("<f")

# The delete marker of a removed map key, and its ext type code.
_DELETE_CODE: Final = 0
_DELETE: Final = msgpack.ExtType(_DELETE_CODE, b"")


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


class Node:
    """One step of the compiled path patterns: what applies at this path and below."""

    __slots__ = ("by_index", "children", "f32", "scale", "wildcard")

    def __init__(self) -> None:
        self.children: dict[str, Node] = {}
        self.wildcard: Node | None = None
        self.scale = 0.0  # 1 / step for a stepped float here; 0.0: none
        self.f32 = False
        # The child of each list index up to the highest index named ("1" -> [w, c1]),
        # so a list is walked without str(i); None when an index is too high for it.
        self.by_index: list[Node | None] | None = []

    def child(self, key: str) -> Node | None:
        return self.children.get(key, self.wildcard)

    def at(self, index: int) -> Node | None:
        by_index = self.by_index
        if by_index is None:
            return self.children.get(str(index), self.wildcard)
        return by_index[index] if index < len(by_index) else self.wildcard


def _merge(literal: Node, wildcard: Node) -> Node:
    """A node matching what both match; the literal's own rule wins over the wildcard's."""
    merged = Node()
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


def _resolve(node: Node) -> None:
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


def compile_rules(rules: tuple[tuple[str, float | str], ...]) -> Node | None:
    if not rules:
        return None
    root = Node()
    for pattern, rule in rules:
        node = root
        for segment in pattern.split("."):
            if not segment:
                raise ValueError(f"empty segment in quantisation path {pattern!r}")
            if segment == "*":
                if node.wildcard is None:
                    node.wildcard = Node()
                node = node.wildcard
            else:
                node = node.children.setdefault(segment, Node())
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


def round_half_even(x: float) -> int:
    """Python's `round(x)` of a finite float: the nearest integer, a tie to the even
    one (the `round` of §16.3 and §16.8), in C doubles when compiled, where the
    builtin `round` is looked up and called on a new float object."""
    n = int(x)  # toward zero
    whole = float(n)
    if whole > x:  # x < 0: the floor is one below
        n -= 1
        whole -= 1.0
    rest = x - whole  # exact: the fraction of a double is a double
    if rest > 0.5 or (rest == 0.5 and n & 1):
        n += 1
    return n


def _as_float(number: Any, kind: type) -> float:
    """An int or float of type `kind` as a float: a float as it is (compiled, unboxed
    where `float(number)` would be a generic call)."""
    if kind is float:
        value: float = number
        return value
    return float(number)


class ToWire:
    """Walks a view into its wire form, noting whether a float needs 64 bits."""

    def __init__(self) -> None:
        self.wide = False

    def value(self, value: Any, node: Node | None, depth: int) -> Any:
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

    def _entries(self, value: Mapping[Any, Any], node: Node | None, deeper: int) -> Any:
        out: dict[str, Any] = {}
        child: Node | None = None
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
                scaled = _as_float(item, kind) * child.scale
                if -_MAX_SAFE <= scaled <= _MAX_SAFE:
                    out[key] = round_half_even(scaled)
                    continue
            out[key] = self.value(item, child, deeper)
        return out

    def _items(self, value: Any, node: Node | None, deeper: int) -> Any:
        items: list[Any] = []
        child: Node | None = None
        # The node of each index, looked up inline (`Node.at` without its call).
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
                    items.append(item)
                    continue
            elif child.scale and (kind is float or kind is int):
                scaled = _as_float(item, kind) * child.scale
                if -_MAX_SAFE <= scaled <= _MAX_SAFE:
                    items.append(round_half_even(scaled))
                    continue
            items.append(self.value(item, child, deeper))
        return items

    def _stepped(self, value: float, scale: float) -> Any:
        scaled = value * scale
        if math.isfinite(scaled) and -_MAX_SAFE <= scaled <= _MAX_SAFE:
            return round_half_even(scaled)
        self.wide = True  # out of the step's range: sent as it is
        return value

    def _float32(self, value: float) -> float:
        if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            self.wide = True  # no float 32 holds it: sent as float 64
            return value
        return float(_f32.unpack(_f32.pack(value))[0])


def from_wire(wire: Any, node: Node | None, depth: int) -> Any:
    """A wire value (already checked, or made by `ToWire`) as the client sees it."""
    kind = type(wire)
    if kind is int:
        return wire / node.scale if node is not None and node.scale else wire
    if kind is dict:
        if node is None:
            return {k: from_wire(v, None, depth + 1) for k, v in wire.items()}
        return {k: from_wire(v, node.child(k), depth + 1) for k, v in wire.items()}
    if kind is list:
        if node is None:
            return [from_wire(v, None, depth + 1) for v in wire]
        return [from_wire(v, node.at(i), depth + 1) for i, v in enumerate(wire)]
    return wire


def _canonical(value: Any, node: Node | None, decoded: bool) -> Any:
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
        child: Node | None = None
        for i, item in enumerate(value):
            if node is not None:
                child = node.at(i)
            kind = type(item)
            # Inline what most lists hold: a call per value is most of the cost.
            if kind is int:
                if decoded or child is None or not child.scale:
                    items.append(item)
                    continue
                number = float(item) / child.scale
                if number.is_integer() and -_MAX_SAFE <= number <= _MAX_SAFE:
                    items.append(int(number))
                else:
                    items.append(number)
            elif kind is str:
                items.append(item)
            else:
                items.append(_canonical(item, child, decoded))
        return items
    return value


def view_crc(value: Any, root: Node | None, *, decoded: bool = False) -> int:
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
        for i, (old, item) in enumerate(zip(base, new, strict=False)):
            kind = type(item)
            if type(old) is not kind:
                out.append(i)
                out.append(item)
            elif kind is dict or kind is list:
                sub = diff_wire(old, item)
                if sub is not SAME:
                    out.append(i)
                    out.append(sub)
            elif old != item:
                out.append(i)
                out.append(item)
        for i in range(len(base), length):
            out.append(i)
            out.append(new[i])
        return out if len(out) > 1 or length != len(base) else SAME
    return SAME if base == new else new


def pack_wire(value: Any, wide: bool) -> bytes:
    """A wire value in msgpack, its floats 64-bit when `wide`, else 32-bit."""
    return (_packer64 if wide else _packer32).pack(value)


# -- decoding -----------------------------------------------------------------


def _bad(why: str) -> CorruptSnapshot:
    return CorruptSnapshot(why)


def full_value(value: Any, node: Node | None, depth: int) -> Any:
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
            out[key] = full_value(item, None if node is None else node.child(key), depth + 1)
        return out
    if kind is list:
        if node is None:
            return [full_value(item, None, depth + 1) for item in value]
        return [full_value(item, node.at(i), depth + 1) for i, item in enumerate(value)]
    raise _bad(f"a value no view holds: {type(value).__name__}")


def apply_patch(base: Any, patch: Any, node: Node | None, depth: int) -> Any:
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
                apply_patch(base[key], sub, child, depth + 1)
                if key in base
                else full_value(sub, child, depth + 1)
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
                apply_patch(base[i], sub, child, depth + 1)
                if i < old
                else full_value(sub, child, depth + 1)
            )
        if length > old and any(item is SAME for item in items[old:]):
            raise _bad("a list patch leaves an added element out")
        return items
    if type(patch) is msgpack.ExtType:
        raise _bad("a delete marker outside a map patch")
    return full_value(patch, node, depth)


def parse_frame(data: bytes) -> tuple[int, int | None, int | None, Any]:
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
