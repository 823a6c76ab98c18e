"""Schema snapshots: a view a game declared field by field, bit-packed against a baseline.

Sans-I/O: values in, bytes out. The wire format is docs/protocol.md §16.8, byte
for byte; this module is its reference. A game that declares a `view_schema`
(docs/games.md, "View schema") has its snaps sent this way to every client that
says it reads them (the `input`'s ``"vs"``); a client that does not, and a game
that declares nothing, keep the schema-less msgpack delta (vinom.rooms.delta).

The model is Quake 3's and Glenn Fiedler's snapshot compression, and Colyseus's
schema: a view is a map of named fields, each a bounded integer, a quantised
number, a boolean, any msgpack value, or rows (a list of entities, each a list
whose first column is its unique integer id). Against the client's acknowledged
baseline, a field costs one bit when unchanged; a changed number costs its
difference in 8 bits when small, else its full width; rows are matched by id, so
entities coming and going cost only themselves. Numbers outside their declared
range are clamped, as a bounded quantisation does; the client rebuilds exactly
what `SchemaCodec.rebuild` gives on the host.

The declaration is plain data, the same in Python, in the welcome (``"vs"``)
and in every client: ``[[name, kind], ...]`` where a kind is
``["int", lo, hi]``, ``["fixed", lo, hi, step]``, ``["bool"]``, ``["any"]`` or
``["rows", [kind, ...]]`` (the first column an ``int``, no rows inside rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgpack

from vinom.rooms.delta_wire import CorruptSnapshot, UnknownBaseline, round_half_even, view_crc

#: The first byte of a schema snapshot (a §16.1 snapshot starts with 0x94).
SCHEMA_FORMAT: Final = 0x01
#: The widest integer field (bits); rows at most this many, columns at most 32.
MAX_BITS: Final = 53
MAX_ROWS: Final = 65535
MAX_COLUMNS: Final = 32
MAX_FIELDS: Final = 64
#: A changed number whose zig-zag difference is below 2^SMALL_BITS costs 1 + SMALL_BITS
#: bits, one below 2^MEDIUM_BITS 2 + MEDIUM_BITS (in a field wider than MEDIUM_BITS),
#: else its whole width and the flag bits (a field no wider than SMALL_BITS: its width).
SMALL_BITS: Final = 7
MEDIUM_BITS: Final = 12

# Field kinds, as the declaration names them.
INT, FIXED, BOOL, ANY, ROWS = "int", "fixed", "bool", "any", "rows"
# How a field's value is written (`Field.code`): the encoder's loops dispatch on it.
_NUMBER, _BOOL, _ANY, _ROWS = 0, 1, 2, 3


class Field:
    """One declared field: its value as it travels (`wire`), as the client sees it
    (`rebuild`). Wire values: int for int and fixed, bool, bytes for any, and
    {id: columns} in id order for rows. (Plain classes, no attrs: the module is
    compiled with mypyc with the packet path, setup.py.)"""

    def __init__(self, code: int, bits: int = 0, lo: int = 0, hi: int = 0) -> None:
        self.code = code
        # The width of a whole value, and the range of an int or fixed field's integers.
        self.bits = bits
        self.lo = lo
        self.hi = hi
        # A number whose changes may be sent as differences (wider than SMALL_BITS).
        self.wide = code == _NUMBER and bits > SMALL_BITS

    def wire(self, value: Any) -> Any:
        raise NotImplementedError

    def rebuild(self, wire: Any) -> Any:
        return wire

    def describe(self) -> list[Any]:
        raise NotImplementedError


class IntField(Field):
    # (The declaration's values are checked here, so typed Any: compiled, a typed
    # parameter would refuse a wrong type with a TypeError of its own.)
    def __init__(self, lo: Any, hi: Any) -> None:
        if type(lo) is not int or type(hi) is not int or lo > hi:
            raise ValueError(f"an int field is [\"int\", lo, hi] with integers lo <= hi, "
                             f"not {[INT, lo, hi]!r}")  # fmt: skip
        super().__init__(_NUMBER, (hi - lo).bit_length(), lo, hi)
        if self.bits > MAX_BITS:
            raise ValueError(f"an int field spans at most 2^{MAX_BITS} values: {[INT, lo, hi]!r}")

    def wire(self, value: Any) -> int:
        if type(value) is int:
            return self.lo if value < self.lo else self.hi if value > self.hi else value
        if type(value) is bool or not isinstance(value, (int, float)) or value != value:  # NaN
            raise TypeError(f"an int field holds a number, not {value!r}")
        if isinstance(value, float):
            if not math.isfinite(value):
                return self.hi if value > 0 else self.lo
            value = round(value)
        return self.lo if value < self.lo else self.hi if value > self.hi else value

    def describe(self) -> list[Any]:
        return [INT, self.lo, self.hi]


class FixedField(Field):
    """A number sent as an integer count of `step`s: the client reads `n / (1 / step)`,
    one IEEE division, the same double in every language (as §16.3)."""

    def __init__(self, lo: Any, hi: Any, step: Any) -> None:
        if not all(type(v) in (int, float) and math.isfinite(v) for v in (lo, hi, step)) or (
            step <= 0 or lo > hi
        ):
            raise ValueError(f"a fixed field is [\"fixed\", lo, hi, step] with lo <= hi and "
                             f"step > 0, not {[FIXED, lo, hi, step]!r}")  # fmt: skip
        self.lo_value, self.hi_value, self.step = lo, hi, step
        # Typed floats: compiled, `wire` then multiplies and compares C doubles.
        self.scale: float = 1 / float(step)
        if not (math.isfinite(self.scale) and math.isfinite(lo * self.scale)
                and math.isfinite(hi * self.scale)):  # fmt: skip
            raise ValueError(f"a fixed field spans 1 to 2^{MAX_BITS} steps: "
                             f"{[FIXED, lo, hi, step]!r}")  # fmt: skip
        wire_lo, wire_hi = math.ceil(lo * self.scale), math.floor(hi * self.scale)
        super().__init__(_NUMBER, (wire_hi - wire_lo).bit_length(), wire_lo, wire_hi)
        self.hi_float: float = float(wire_hi)
        self.lo_float: float = float(wire_lo)
        if self.hi < self.lo or self.bits > MAX_BITS:
            raise ValueError(f"a fixed field spans 1 to 2^{MAX_BITS} steps: "
                             f"{[FIXED, lo, hi, step]!r}")  # fmt: skip

    def wire(self, value: Any) -> int:
        # (Compiled, a float taken as it is and `round_half_even` stay C doubles;
        # `float(value)` and the builtin `round` would each make a Python object.)
        if type(value) is float:
            number: float = value
        elif type(value) is bool or not isinstance(value, (int, float)):
            raise TypeError(f"a fixed field holds a number, not {value!r}")
        else:
            number = float(value)
        scaled = number * self.scale
        if not scaled < self.hi_float:  # (NaN and +inf too)
            return self.hi if scaled == scaled else self.lo
        if not scaled > self.lo_float:  # (-inf too)
            return self.lo
        return round_half_even(scaled)

    def rebuild(self, wire: Any) -> float:
        return wire / self.scale

    def describe(self) -> list[Any]:
        return [FIXED, self.lo_value, self.hi_value, self.step]


class BoolField(Field):
    def __init__(self) -> None:
        super().__init__(_BOOL, 1)

    def wire(self, value: Any) -> bool:
        if type(value) is not bool:
            raise TypeError(f"a bool field holds True or False, not {value!r}")
        return value

    def describe(self) -> list[Any]:
        return [BOOL]


class AnyField(Field):
    """Any msgpack value, sent whole when its encoding changed."""

    def __init__(self) -> None:
        super().__init__(_ANY)

    def wire(self, value: Any) -> bytes:
        try:
            return msgpack.packb(value, use_bin_type=True)
        except (OverflowError, TypeError, ValueError) as error:
            raise TypeError(f"an any field holds a msgpack value, not {value!r}: {error}") from None

    def rebuild(self, wire: Any) -> Any:
        return msgpack.unpackb(wire, raw=False, strict_map_key=True)

    def describe(self) -> list[Any]:
        return [ANY]


class RowsField(Field):
    """Entities: a list of rows, each ``[id, column, ...]``, ids unique; the client
    rebuilds them in ascending id order."""

    def __init__(self, columns: Sequence[Field]) -> None:
        super().__init__(_ROWS)
        if not columns or not isinstance(columns[0], IntField):
            raise ValueError('rows are ["rows", [kind, ...]], the first column an int (the id)')
        if len(columns) > MAX_COLUMNS or any(isinstance(c, RowsField) for c in columns):
            raise ValueError(f"rows have 1 to {MAX_COLUMNS} columns, none of them rows")
        self.key = columns[0]
        self.columns = tuple(columns[1:])

    def wire(self, value: Any) -> dict[int, tuple[Any, ...]]:
        if not isinstance(value, (list, tuple)) or len(value) > MAX_ROWS:
            raise TypeError(f"rows are a list of at most {MAX_ROWS} rows, not {value!r}")
        columns = self.columns
        width = len(columns) + 1
        key_field = self.key
        rows: dict[int, tuple[Any, ...]] = {}
        ordered = True
        previous = -1 << 60
        for row in value:
            if not isinstance(row, (list, tuple)) or len(row) != width:
                raise TypeError(f"a row is a list of {width} values, not {row!r}")
            key = key_field.wire(row[0])
            if key in rows:
                raise ValueError(f"two rows have the id {key}")
            if key < previous:
                ordered = False
            previous = key
            rows[key] = tuple([columns[i].wire(row[i + 1]) for i in range(width - 1)])
        return rows if ordered else dict(sorted(rows.items()))

    def rebuild(self, wire: Any) -> list[list[Any]]:
        columns = self.columns
        return [[key, *(c.rebuild(v) for c, v in zip(columns, row, strict=True))]
                for key, row in wire.items()]  # fmt: skip

    def describe(self) -> list[Any]:
        return [ROWS, [self.key.describe(), *(c.describe() for c in self.columns)]]


def _field(kind: Any) -> Field:
    if not isinstance(kind, list | tuple) or not kind or not isinstance(kind[0], str):
        raise ValueError(f"a field's kind is a list such as [\"int\", 0, 9], not {kind!r}")
    name, args = kind[0], list(kind[1:])
    if name == INT and len(args) == 2:
        return IntField(args[0], args[1])
    if name == FIXED and len(args) == 3:
        return FixedField(args[0], args[1], args[2])
    if name == BOOL and not args:
        return BoolField()
    if name == ANY and not args:
        return AnyField()
    if name == ROWS and len(args) == 1 and isinstance(args[0], (list, tuple)):
        # (Rows inside rows are refused before their columns are read: no depth.)
        if any(isinstance(c, (list, tuple)) and c and c[0] == ROWS for c in args[0]):
            raise ValueError(f"rows have 1 to {MAX_COLUMNS} columns, none of them rows")
        return RowsField([_field(column) for column in args[0]])
    raise ValueError(f"not a field kind: {kind!r}")


# -- bits ---------------------------------------------------------------------------


class BitWriter:
    """Bits written most significant first, each byte filled from its high bit.

    (Compiled, the bytes gather in a list, whose append is a C call where a
    bytearray's is a method lookup, and `acc` stays below 2^56, a machine integer.)"""

    def __init__(self) -> None:
        self.out: list[int] = []
        # The bits not yet in a whole byte: fewer than 8.
        self.acc = 0
        self.count = 0

    def put(self, value: int, bits: int) -> None:
        if bits > 48:
            self.put(value >> 32, bits - 32)
            value &= 0xFFFFFFFF
            bits = 32
        acc = (self.acc << bits) | value
        count = self.count + bits
        out = self.out
        while count >= 8:
            count -= 8
            out.append((acc >> count) & 0xFF)
        self.acc = acc & ((1 << count) - 1)
        self.count = count

    def uvar(self, value: int) -> None:
        """An unsigned integer in groups of 8 bits, low 7 bits first, the high bit set
        on every group but the last (LEB128, in the bit stream)."""
        while value > 0x7F:
            self.put(0x80 | (value & 0x7F), 8)
            value >>= 7
        self.put(value, 8)

    def finish(self) -> bytes:
        if self.count:
            self.out.append((self.acc << (8 - self.count)) & 0xFF)
            self.acc = self.count = 0
        return bytes(self.out)


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def take(self, bits: int) -> int:
        if bits > self.left:
            raise CorruptSnapshot("the bits run past the end of the snapshot")
        self.left -= bits
        return (self.value >> self.left) & ((1 << bits) - 1)

    def uvar(self) -> int:
        value = shift = 0
        while True:
            group = self.take(8)
            value |= (group & 0x7F) << shift
            if group < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise CorruptSnapshot("a variable-length integer is longer than 9 groups")

    def done(self) -> None:
        # Only the zero padding of the last byte may be left.
        if self.left >= 8 or self.value & ((1 << self.left) - 1):
            raise CorruptSnapshot("bytes or bits after the snapshot's body")


def zigzag(d: int) -> int:
    """A signed integer as an unsigned one: 0, -1, 1, -2 ... as 0, 1, 2, 3 ..."""
    return d << 1 if d >= 0 else ((-d) << 1) - 1


def unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


# -- values -------------------------------------------------------------------------


def _put_whole(out: BitWriter, kind: Field, value: Any) -> None:
    code = kind.code
    if code == _NUMBER:
        out.put(value - kind.lo, kind.bits)
    elif code == _BOOL:
        out.put(1 if value else 0, 1)
    elif code == _ANY:
        out.uvar(len(value))
        for byte in value:
            out.put(byte, 8)
    else:
        assert isinstance(kind, RowsField)
        out.uvar(len(value))
        for key, row in value.items():
            _put_row(out, kind, key, row)


def _put_row(out: BitWriter, kind: RowsField, key: int, row: tuple[Any, ...]) -> None:
    _put_whole(out, kind.key, key)
    columns = kind.columns
    for i in range(len(columns)):
        _put_whole(out, columns[i], row[i])


def row_bits(kind: RowsField, key: int, old: tuple[Any, ...] | None,
             new: tuple[Any, ...]) -> int:  # fmt: skip
    """What row `key` adds to a body when sent as `new`: the bits of it added (no
    `old`: not in the baseline), or those of its change beyond the ``10`` it costs
    unchanged (against `old`). A snapshot budget's cost of one entity."""
    out = BitWriter()
    if old is None:
        _put_row(out, kind, key, new)
        return len(out.out) * 8 + out.count
    _put_rows(out, kind, {key: old}, {key: new})
    # Less the added rows' count (a uvar of 0: 8 bits) and the unchanged row's 2.
    return len(out.out) * 8 + out.count - 10


def _number_change(kind: Field, base: int, value: int) -> tuple[int, int]:
    """The bits of a number's change (after its field's change bit), and their width:
    a small difference, a medium one, or the whole value behind its flag bits."""
    if not kind.wide:
        return value - kind.lo, kind.bits
    z = zigzag(value - base)
    if z < 1 << SMALL_BITS:
        return z, 1 + SMALL_BITS  # flag 0, then the difference
    bits = kind.bits
    if bits <= MEDIUM_BITS:
        return (1 << bits) | (value - kind.lo), 1 + bits
    if z < 1 << MEDIUM_BITS:
        return (0b10 << MEDIUM_BITS) | z, 2 + MEDIUM_BITS
    return (0b11 << bits) | (value - kind.lo), 2 + bits


def _put_changed(out: BitWriter, kind: Field, base: Any, value: Any) -> None:
    """`value` against a different `base`: a small difference or the whole value."""
    code = kind.code
    if code == _NUMBER:
        bits, width = _number_change(kind, base, value)
        out.put(bits, width)
    elif code == _ROWS:
        assert isinstance(kind, RowsField)
        _put_rows(out, kind, base, value)
    else:
        _put_whole(out, kind, value)


def _put_rows(out: BitWriter, kind: RowsField, base: dict[int, tuple[Any, ...]],
              rows: dict[int, tuple[Any, ...]]) -> None:  # fmt: skip
    # The rows' flags and the numbers' changes are gathered in `acc` (`count` bits,
    # kept below 64 so that compiled it stays a machine integer) and written together:
    # a put per few fields rather than per bit.
    columns = kind.columns
    acc = count = 0
    for key, old in base.items():
        new = rows.get(key)
        if new is None:
            acc, count = acc << 1, count + 1
        elif new == old:
            acc, count = (acc << 2) | 0b10, count + 2
        else:
            acc, count = (acc << 2) | 0b11, count + 2
            for i in range(len(columns)):
                was, now = old[i], new[i]
                column = columns[i]
                if was == now:
                    acc, count = acc << 1, count + 1
                elif column.code == _NUMBER:
                    bits, width = _number_change(column, was, now)
                    if count + 1 + width > 62:
                        out.put(acc, count)
                        acc = count = 0
                    acc, count = (((acc << 1) | 1) << width) | bits, count + 1 + width
                else:
                    out.put((acc << 1) | 1, count + 1)
                    acc = count = 0
                    _put_changed(out, column, was, now)
        if count >= 40:
            out.put(acc, count)
            acc = count = 0
    out.put(acc, count)
    added = [key for key in rows if key not in base]
    out.uvar(len(added))
    for key in added:
        _put_row(out, kind, key, rows[key])


def _take_whole(bits: BitReader, kind: Field) -> Any:
    if isinstance(kind, BoolField):
        return bits.take(1) == 1
    if isinstance(kind, AnyField):
        size = bits.uvar()
        if size * 8 > bits.left:
            raise CorruptSnapshot("a value runs past the end of the snapshot")
        data = bytes(bits.take(8) for _ in range(size))
        try:
            kind.rebuild(data)
        except Exception:
            raise CorruptSnapshot("a value that is not one msgpack value") from None
        return data
    if isinstance(kind, RowsField):
        return _take_added(bits, kind, {}, {})
    n = bits.take(kind.bits) + kind.lo
    if n > kind.hi:
        raise CorruptSnapshot("a number beyond its field's range")
    return n


def _take_added(bits: BitReader, kind: RowsField, base: Mapping[int, Any],
                rows: dict[int, tuple[Any, ...]]) -> dict[int, tuple[Any, ...]]:  # fmt: skip
    count = bits.uvar()
    if count + len(rows) > MAX_ROWS:
        raise CorruptSnapshot("more rows than a snapshot holds")
    previous = -1 << 64
    for _ in range(count):
        key = _take_whole(bits, kind.key)
        if key <= previous or key in base:
            raise CorruptSnapshot("added rows out of id order, or an id already there")
        previous = key
        rows[key] = tuple(_take_whole(bits, column) for column in kind.columns)
    return dict(sorted(rows.items())) if base else rows


def _take_changed(bits: BitReader, kind: Field, base: Any) -> Any:
    if isinstance(kind, RowsField):
        rows: dict[int, tuple[Any, ...]] = {}
        for key, old in base.items():
            if not bits.take(1):
                continue
            if not bits.take(1):
                rows[key] = old
                continue
            rows[key] = tuple(_take_changed(bits, column, was) if bits.take(1) else was
                              for column, was in zip(kind.columns, old, strict=True))  # fmt: skip
        return _take_added(bits, kind, base, rows)
    if kind.wide:
        if not bits.take(1):
            difference = bits.take(SMALL_BITS)
        elif kind.bits > MEDIUM_BITS and not bits.take(1):
            difference = bits.take(MEDIUM_BITS)
        else:
            return _take_whole(bits, kind)
        n = base + unzigzag(difference)
        if not kind.lo <= n <= kind.hi:
            raise CorruptSnapshot("a number beyond its field's range")
        return n
    return _take_whole(bits, kind)


# -- the schema ---------------------------------------------------------------------


class ViewSchema:
    """A game's declared view (module docstring), ready to encode and decode.

    Raises ValueError for a declaration that is not one."""

    def __init__(self, declaration: Iterable[Any] | Mapping[str, Any]) -> None:
        items = declaration.items() if isinstance(declaration, Mapping) else declaration
        fields: list[tuple[str, Field]] = []
        for item in items:
            if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(f"a view schema is [[name, kind], ...], not {item!r}")
            fields.append((item[0], _field(item[1])))
        if not fields or len(fields) > MAX_FIELDS or len({n for n, _ in fields}) != len(fields):
            raise ValueError(f"a view schema names 1 to {MAX_FIELDS} distinct fields")
        self.fields = tuple(fields)

    def describe(self) -> list[list[Any]]:
        """The declaration as the welcome carries it (``"vs"``)."""
        return [[name, kind.describe()] for name, kind in self.fields]

    def wire(self, view: Any) -> tuple[Any, ...]:
        """The view as it travels (clamped, quantised, rows by id). Raises TypeError or
        ValueError for a view that does not fit the schema: a game's bug."""
        # (A dict is known by its type first: `isinstance(x, Mapping)` is an ABC check,
        # slow on every snapshot.)
        mapping = type(view) is dict or isinstance(view, Mapping)
        if not mapping or len(view) != len(self.fields):
            raise TypeError(f"a view of this schema is a map of exactly "
                            f"{[n for n, _ in self.fields]}")  # fmt: skip
        try:
            return tuple(kind.wire(view[name]) for name, kind in self.fields)
        except KeyError as missing:
            raise TypeError(f"the view lacks its field {missing}") from None

    def rows(self, name: str) -> tuple[int, RowsField] | None:
        """The position and kind of the rows field `name`; None if it is not one."""
        for index, (field_name, kind) in enumerate(self.fields):
            if field_name == name:
                return (index, kind) if isinstance(kind, RowsField) else None
        return None

    def rebuild(self, wire: tuple[Any, ...]) -> dict[str, Any]:
        """The view a client rebuilds from wire values."""
        return {name: kind.rebuild(value) for (name, kind), value in zip(self.fields, wire,
                                                                          strict=True)}  # fmt: skip

    def encode_body(self, base: tuple[Any, ...] | None, wire: tuple[Any, ...]) -> bytes:
        out = BitWriter()
        if base is None:
            for (_, kind), value in zip(self.fields, wire, strict=True):
                _put_whole(out, kind, value)
        else:
            for (_, kind), was, now in zip(self.fields, base, wire, strict=True):
                if was == now:
                    out.put(0, 1)
                else:
                    out.put(1, 1)
                    _put_changed(out, kind, was, now)
        return out.finish()

    def decode_body(self, base: tuple[Any, ...] | None, data: bytes) -> tuple[Any, ...]:
        bits = BitReader(data)
        if base is None:
            wire = tuple(_take_whole(bits, kind) for _, kind in self.fields)
        else:
            wire = tuple(_take_changed(bits, kind, was) if bits.take(1) else was
                         for (_, kind), was in zip(self.fields, base, strict=True))  # fmt: skip
        bits.done()
        return wire

    def checksum(self, wire: tuple[Any, ...]) -> int:
        """§16.4's CRC-32 of the view a client rebuilds from `wire`."""
        return view_crc(self.rebuild(wire), None, decoded=True)


def schema_of(game: object) -> ViewSchema | None:
    """A game's `view_schema` attribute compiled, or None when it declares none.

    Raises ValueError for a declaration that is not one."""
    declared = getattr(game, "view_schema", None)
    return None if not declared else ViewSchema(declared)


# -- frames -------------------------------------------------------------------------


def frame_header_bytes(tick: int, base_tick: int | None, checksum: bool) -> int:
    """The bytes of a schema snapshot before its body (docs/protocol.md §16.8)."""
    distance = 0 if base_tick is None else tick - base_tick
    return 2 + len(write_uvar(tick)) + len(write_uvar(distance)) + (4 if checksum else 0)


def encode_frame(tick: int, distance: int, checksum: int | None, body: bytes) -> bytes:
    """A schema snapshot: format byte, tick and distance (0: full) as LEB128, a flags
    byte (bit 0: a CRC-32 follows, little-endian), then the body. Whole bytes, as
    `parse_frame` reads them."""
    head = b"".join((bytes((SCHEMA_FORMAT,)), write_uvar(tick), write_uvar(distance)))
    if checksum is None:
        return head + b"\x00" + body
    return head + b"\x01" + checksum.to_bytes(4, "little") + body


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


def parse_frame(data: bytes) -> tuple[int, int, int | None, bytes]:
    """(tick, distance, checksum, body) of a schema snapshot; CorruptSnapshot if not one."""
    if not data or data[0] != SCHEMA_FORMAT:
        raise CorruptSnapshot("not a schema snapshot")
    read = read_uvars(data, 1, 2, 9)
    if read is None:
        raise CorruptSnapshot("a schema snapshot's header is cut short")
    (tick, distance), at = read
    if at >= len(data) or data[at] > 1 or distance > tick:
        raise CorruptSnapshot("a schema snapshot's header is malformed")
    checksum = None
    if data[at]:
        if at + 5 > len(data):
            raise CorruptSnapshot("a schema snapshot's checksum is cut short")
        checksum = int.from_bytes(data[at + 1 : at + 5], "little")
        at += 4
    return tick, distance, checksum, data[at + 1 :]


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
                   ) -> bytes:  # fmt: skip
        """The snapshot of `tick` for this client, recorded as sent. `wire` is
        `schema.wire(view)`, `crc` its checksum when snaps carry one (else None); `cache`,
        kept by the caller for one tick, shares bodies between recipients of the same
        wire view with the same baseline (keyed by the two views' ids; the entry holds
        both, so neither id is reused while it lives)."""
        acked = self.acked
        base = None if acked is None or acked >= tick else self.sent.get(acked)
        key = (id(base), id(wire))
        hit = None if cache is None else cache.get(key)
        if hit is not None and hit[0] is base and hit[1] is wire:
            body = hit[2]
        else:
            body = self.schema.encode_body(base, wire)
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
        return encode_frame(tick, distance, crc, body)


def decode_frame(schema: ViewSchema, data: bytes,
                 baselines: Mapping[int, tuple[Any, ...]]) -> tuple[int, int | None, int | None,
                                                                    tuple[Any, ...]]:  # fmt: skip
    """(tick, baseline tick or None, checksum, wire view) of a schema snapshot.

    Raises `UnknownBaseline` or `CorruptSnapshot` (never anything else)."""
    return decode_parsed(schema, parse_frame(data), baselines)


def decode_parsed(schema: ViewSchema, frame: tuple[int, int, int | None, bytes],
                  baselines: Mapping[int, tuple[Any, ...]]) -> tuple[int, int | None, int | None,
                                                                     tuple[Any, ...]]:  # fmt: skip
    """`decode_frame` of a frame `parse_frame` read already (a receiver reads its tick
    first, to drop a stale one unread)."""
    tick, distance, checksum, body = frame
    base = None
    if distance:
        base = baselines.get(tick - distance)
        if base is None:
            raise UnknownBaseline(tick - distance)
    try:
        wire = schema.decode_body(base, body)
    except CorruptSnapshot:
        raise
    except (ValueError, TypeError, RecursionError):
        raise CorruptSnapshot("not a snapshot of this schema") from None
    return tick, tick - distance if distance else None, checksum, wire
