"""Schema snapshots: a view a game declared field by field, bit-packed against a baseline.

Sans-I/O: values in, bytes out. The wire format is docs/protocol.md §16.8, byte
for byte; this module is its reference. A game that declares a `view_schema`
(docs/games.md, "View schema") has its snaps sent this way to every client; a
game that declares nothing has the schema-less msgpack delta (vinom.rooms.delta).
Under a byte budget (vinom.rooms.budget) a delta also says which rows wait, and
a client shows them carried on (vinom.rooms.carrying).

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
from collections.abc import Set as AbstractSet
from typing import Any, Final

import msgpack

from vinom.rooms.delta_wire import CorruptSnapshot, round_half_even, view_crc

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

#: A rows field's position in the schema and the ids of its rows that wait.
Waiting = tuple[int, AbstractSet[int]]

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

    def wire(self, value: Any, shared: SharedRows | None = None) -> dict[int, tuple[Any, ...]]:
        """`shared`: the wire form of each tuple row already met (`SharedRows`), so a
        row object given to many views is quantised once and travels as one object."""
        if not isinstance(value, (list, tuple)) or len(value) > MAX_ROWS:
            raise TypeError(f"rows are a list of at most {MAX_ROWS} rows, not {value!r}")
        columns = self.columns
        width = len(columns) + 1
        key_field = self.key
        rows: dict[int, tuple[Any, ...]] = {}
        ordered = True
        previous = -1 << 60
        for row in value:
            # (Only a tuple is shared: a list could change between two views.)
            hit = None if shared is None or type(row) is not tuple else shared.get(id(row))
            if hit is not None and hit[0] is row and hit[1] is self:
                key, wired = hit[2], hit[3]
            else:
                if not isinstance(row, (list, tuple)) or len(row) != width:
                    raise TypeError(f"a row is a list of {width} values, not {row!r}")
                key = key_field.wire(row[0])
                wired = tuple([columns[i].wire(row[i + 1]) for i in range(width - 1)])
                if shared is not None and type(row) is tuple:
                    shared[id(row)] = (row, self, key, wired)
            if key in rows:
                raise ValueError(f"two rows have the id {key}")
            if key < previous:
                ordered = False
            previous = key
            rows[key] = wired
        return rows if ordered else dict(sorted(rows.items()))

    def rebuild(self, wire: Any) -> list[list[Any]]:
        columns = self.columns
        return [[key, *(c.rebuild(v) for c, v in zip(columns, row, strict=True))]
                for key, row in wire.items()]  # fmt: skip

    def describe(self) -> list[Any]:
        return [ROWS, [self.key.describe(), *(c.describe() for c in self.columns)]]


#: One tick's rows met in the views, by the id of the game's row tuple: the tuple
#: (held, so that no other object takes its id while the map lives), the rows field
#: that read it, its id column and its other columns in wire form.
SharedRows = dict[int, tuple[tuple[Any, ...], RowsField, int, tuple[Any, ...]]]
#: One tick's row changes written, by the id of the new wire row: the baseline's row
#: and the new one (held, as above), the change's bits and their width.
SharedChanges = dict[int, tuple[tuple[Any, ...], tuple[Any, ...], int, int]]


def _field(kind: Any) -> Field:
    if not isinstance(kind, list | tuple) or not kind or not isinstance(kind[0], str):
        raise ValueError(f'a field\'s kind is a list such as ["int", 0, 9], not {kind!r}')
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
            if bits > 62:
                self._put_wide(value, bits)
                return
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

    def _put_wide(self, value: int, bits: int) -> None:
        """A value wider than 62 bits (a changed row with a long `any` column): its
        leading bits, then whole bytes, in one pass over it."""
        lead = bits % 8
        if lead:
            self.put(value >> (bits - lead), lead)
        rest = bits - lead
        for byte in (value & ((1 << rest) - 1)).to_bytes(rest // 8, "big"):
            self.put(byte, 8)

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


def _put_changed(out: BitWriter, kind: Field, base: Any, value: Any,
                 waiting: AbstractSet[int] | None = None,
                 changes: SharedChanges | None = None) -> None:  # fmt: skip
    """`value` against a different `base`: a small difference or the whole value.
    `waiting`: for rows, the frame carries wait bits (§16.8) and these rows wait;
    `changes`: as `_put_rows`."""
    code = kind.code
    if code == _NUMBER:
        bits, width = _number_change(kind, base, value)
        out.put(bits, width)
    elif code == _ROWS:
        assert isinstance(kind, RowsField)
        _put_rows(out, kind, base, value, waiting, changes)
    else:
        _put_whole(out, kind, value)


def _row_change(kind: RowsField, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[int, int]:
    """The bits of a changed row in a delta (``11``, then each column's change bit and
    change), and their width."""
    columns = kind.columns
    acc, count = 0b11, 2
    for i in range(len(columns)):
        was, now = old[i], new[i]
        column = columns[i]
        if was == now:
            acc, count = acc << 1, count + 1
            continue
        if column.code == _NUMBER:
            bits, width = _number_change(column, was, now)
        else:
            whole = BitWriter()
            _put_whole(whole, column, now)
            bits = (int.from_bytes(bytes(whole.out), "big") << whole.count) | whole.acc
            width = len(whole.out) * 8 + whole.count
        acc, count = (((acc << 1) | 1) << width) | bits, count + 1 + width
    return acc, count


def _put_rows(out: BitWriter, kind: RowsField, base: dict[int, tuple[Any, ...]],
              rows: dict[int, tuple[Any, ...]], waiting: AbstractSet[int] | None = None,
              changes: SharedChanges | None = None) -> None:  # fmt: skip
    # The rows' flags and changes are gathered in `acc` (`count` bits, kept below 64
    # so that compiled it stays a machine integer) and written together: a put per
    # few rows rather than per bit. `changes`: the changes written for other clients
    # this tick, by the new wire row's id, so that a row shared between views
    # (`SharedRows`) is written once while the bodies share its baseline row.
    acc = count = 0
    for key, old in base.items():
        new = rows.get(key)
        if new is None:
            acc, count = acc << 1, count + 1
        elif new is old or new == old:
            if waiting is None:
                acc, count = (acc << 2) | 0b10, count + 2
            else:
                # The wait bit: 1, the host holds a newer row it did not send.
                acc, count = (acc << 3) | (0b101 if key in waiting else 0b100), count + 3
        else:
            hit = None if changes is None else changes.get(id(new))
            if hit is not None and hit[0] is old and hit[1] is new:
                bits, width = hit[2], hit[3]
            else:
                bits, width = _row_change(kind, old, new)
                if changes is not None:
                    # By the new row alone: most bodies of a tick share one baseline.
                    changes[id(new)] = (old, new, bits, width)
            if count + width > 62:
                out.put(acc, count)
                acc = count = 0
            if width > 62:
                out.put(bits, width)
            else:
                acc, count = (acc << width) | bits, count + width
        if count >= 40:
            out.put(acc, count)
            acc = count = 0
    out.put(acc, count)
    added = [key for key in rows if key not in base]
    out.uvar(len(added))
    for key in added:
        _put_row(out, kind, key, rows[key])
    if waiting is not None:
        # The rows that wait and are not in the baseline: the client may hold them
        # from a snap since (ascending ids).
        unknown = sorted(key for key in waiting if key not in base)
        out.uvar(len(unknown))
        for key in unknown:
            _put_whole(out, kind.key, key)


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


def _take_rows(bits: BitReader, kind: RowsField, base: Mapping[int, tuple[Any, ...]],
               waiting: list[int] | None = None) -> dict[int, tuple[Any, ...]]:  # fmt: skip
    """Rows against `base`; with `waiting`, each unchanged row has its wait bit and
    the rows end with the ids that wait outside the baseline, all appended to it."""
    rows: dict[int, tuple[Any, ...]] = {}
    for key, old in base.items():
        if not bits.take(1):
            continue
        if not bits.take(1):
            rows[key] = old
            if waiting is not None and bits.take(1):
                waiting.append(key)
            continue
        rows[key] = tuple(_take_changed(bits, column, was) if bits.take(1) else was
                          for column, was in zip(kind.columns, old, strict=True))  # fmt: skip
    rows = _take_added(bits, kind, base, rows)
    if waiting is not None:
        count = bits.uvar()
        if count > MAX_ROWS:
            raise CorruptSnapshot("more rows than a snapshot holds")
        previous = -1 << 64
        for _ in range(count):
            key = _take_whole(bits, kind.key)
            if key <= previous or key in base or key in rows:
                raise CorruptSnapshot("waiting rows out of id order, or an id in the rows")
            previous = key
            waiting.append(key)
    return rows


def _take_changed(bits: BitReader, kind: Field, base: Any) -> Any:
    if isinstance(kind, RowsField):
        return _take_rows(bits, kind, base)
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

    def wire(self, view: Any, shared: SharedRows | None = None) -> tuple[Any, ...]:
        """The view as it travels (clamped, quantised, rows by id). Raises TypeError or
        ValueError for a view that does not fit the schema: a game's bug. `shared`:
        kept by the caller for one tick, the rows met in other views of it, so that a
        row tuple the game gives many views is made wire once (`RowsField.wire`)."""
        # (A dict is known by its type first: `isinstance(x, Mapping)` is an ABC check,
        # slow on every snapshot.)
        mapping = type(view) is dict or isinstance(view, Mapping)
        if not mapping or len(view) != len(self.fields):
            raise TypeError(f"a view of this schema is a map of exactly "
                            f"{[n for n, _ in self.fields]}")  # fmt: skip
        try:
            return tuple(kind.wire(view[name], shared) if isinstance(kind, RowsField)
                         else kind.wire(view[name]) for name, kind in self.fields)  # fmt: skip
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

    def encode_body(self, base: tuple[Any, ...] | None, wire: tuple[Any, ...],
                    waiting: Waiting | None = None,
                    changes: SharedChanges | None = None) -> bytes:  # fmt: skip
        """The body of `wire` against `base` (None: full). `waiting`: a rows field's
        position and the ids of its rows that wait (sent as `base` has them while the
        host holds newer ones); then every unchanged row of every rows field carries
        its wait bit, and the frame says so (`WAITS`). Only a delta has waits.
        `changes`: kept by the caller for one tick, the row changes written for other
        bodies, shared where the rows are the same objects (`SharedRows`)."""
        out = BitWriter()
        if base is None:
            for (_, kind), value in zip(self.fields, wire, strict=True):
                _put_whole(out, kind, value)
            return out.finish()
        at, ids = (-1, None) if waiting is None else waiting
        no_waits: AbstractSet[int] | None = None if waiting is None else frozenset()
        for index, ((_, kind), was, now) in enumerate(zip(self.fields, base, wire, strict=True)):
            if index == at:
                # Written even when unchanged: its wait bits are the news.
                out.put(1, 1)
                assert isinstance(kind, RowsField)
                _put_rows(out, kind, was, now, ids, changes)
            elif was == now:
                out.put(0, 1)
            else:
                out.put(1, 1)
                _put_changed(out, kind, was, now, no_waits, changes)
        return out.finish()

    def decode_body(
        self, base: tuple[Any, ...] | None, data: bytes, waits: bool = False
    ) -> tuple[tuple[Any, ...], dict[int, list[int]]]:
        """The wire view of a body against `base` (None: full), and the rows that wait:
        {field position: [id, ...]}, only when the frame has `waits`."""
        bits = BitReader(data)
        waiting: dict[int, list[int]] = {}
        if base is None:
            wire = tuple(_take_whole(bits, kind) for _, kind in self.fields)
        else:
            values = []
            for index, ((_, kind), was) in enumerate(zip(self.fields, base, strict=True)):
                if not bits.take(1):
                    values.append(was)
                elif waits and isinstance(kind, RowsField):
                    ids: list[int] = []
                    values.append(_take_rows(bits, kind, was, ids))
                    if ids:
                        waiting[index] = ids
                else:
                    values.append(_take_changed(bits, kind, was))
            wire = tuple(values)
        bits.done()
        return wire, waiting

    def checksum(self, wire: tuple[Any, ...]) -> int:
        """§16.4's CRC-32 of the view a client rebuilds from `wire`."""
        return view_crc(self.rebuild(wire), None, decoded=True)


def schema_of(game: object) -> ViewSchema | None:
    """A game's `view_schema` attribute compiled, or None when it declares none.

    Raises ValueError for a declaration that is not one."""
    declared = getattr(game, "view_schema", None)
    return None if not declared else ViewSchema(declared)
