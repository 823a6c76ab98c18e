"""Tests for vinom.rooms.schema: schema snapshots (docs/protocol.md §16.8).

Byte for byte against vectors/protocol.json's group ``schema``; against a second
reading of the bits written here from the document alone (`read_frame`: strings of
'0' and '1', nothing shared with the module); round trips over a lossy link; bad
bytes; and in a ticking room, where a session that asks gets them and one that does
not keeps the schema-less snapshots.
"""

from __future__ import annotations

import contextlib
import math
import random
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rooms.test_rooms_snapshots import SA, SB, A, B, SnapshotGame, SnapshotTestCase
from tests.support.vectors import ROOT, group, unhex
from vinom.games.rules import SnapshotBudget
from vinom.rooms.delta import (
    DROP_CORRUPT,
    DROP_STALE,
    DROP_UNKNOWN_BASELINE,
    CorruptSnapshot,
    DeltaError,
    Quantisation,
    SnapshotHistory,
    SnapshotReceiver,
    UnknownBaseline,
)
from vinom.rooms.message_reading import decode_server_message
from vinom.rooms.messages import SNAP_MARKER
from vinom.rooms.schema import (
    MAX_BITS,
    MAX_COLUMNS,
    MAX_FIELDS,
    MAX_ROWS,
    MEDIUM_BITS,
    SMALL_BITS,
    SharedChanges,
    SharedRows,
    ViewSchema,
    schema_of,
)
from vinom.rooms.schema_frames import SCHEMA_FORMAT, SchemaHistory, decode_frame, encode_frame

VECTORS = group("schema")
DECLARATION = VECTORS["schema"]
SCHEMA = ViewSchema(DECLARATION)

# Views of the vectors' schema, some beyond its ranges (clamped).
rows = st.lists(
    st.tuples(
        st.floats(-600, 600, allow_nan=False) | st.integers(-600, 600),
        st.floats(-1, 11, allow_nan=False),
    ),
    max_size=12,
)
views = st.builds(
    lambda hp, score, alive, name, ids, cells: {
        "hp": hp,
        "score": score,
        "alive": alive,
        "name": name,
        "units": [[i, x, y] for i, (x, y) in zip(ids, cells, strict=False)],
    },
    st.integers(-50, 150),
    st.integers(-2000, 200_000) | st.sampled_from([10, 11, 12, 600, 5000]),
    st.booleans(),
    st.none() | st.text(max_size=5) | st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3),
    st.lists(st.integers(0, 255), unique=True, max_size=12),
    rows,
)


# -- a second reading, from the document --------------------------------------------


class Bits:
    """The body's bits as a string of '0' and '1' (docs/protocol.md §16.8)."""

    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{byte:08b}" for byte in data)
        self.at = 0

    def take(self, n: int) -> int:
        assert self.at + n <= len(self.bits), "past the end"
        text = self.bits[self.at : self.at + n]
        self.at += n
        return int(text, 2) if text else 0

    def uvar(self) -> int:
        value, shift = 0, 0
        while True:
            group = self.take(8)
            value += (group % 128) * 2**shift
            if group < 128:
                return value
            shift += 7


def _range(kind: list[Any]) -> tuple[int, int]:
    if kind[0] == "int":
        return kind[1], kind[2]
    s = 1 / kind[3]
    return math.ceil(kind[1] * s), math.floor(kind[2] * s)


def _whole(bits: Bits, kind: list[Any]) -> Any:
    if kind[0] == "bool":
        return bits.take(1) == 1
    if kind[0] == "any":
        return bytes(bits.take(8) for _ in range(bits.uvar()))
    if kind[0] == "rows":
        return {r[0]: r[1:] for r in (_row(bits, kind[1]) for _ in range(bits.uvar()))}
    lo, hi = _range(kind)
    return lo + bits.take(len(bin(hi - lo)) - 2 if hi > lo else 0)


def _row(bits: Bits, columns: list[Any]) -> tuple[Any, ...]:
    return tuple(_whole(bits, column) for column in columns)


def _change(bits: Bits, kind: list[Any], base: Any, waits: list[int] | None = None) -> Any:
    """A field's change; rows with `waits` (a list: the frame's flag 02) read their wait
    bits and trailing ids into it."""
    if kind[0] == "rows":
        rows = {}
        for key in sorted(base):
            if bits.take(1) == 0:
                continue
            if bits.take(1) == 0:
                rows[key] = base[key]
                if waits is not None and bits.take(1):
                    waits.append(key)
                continue
            rows[key] = tuple(
                _change(bits, column, was) if bits.take(1) else was
                for column, was in zip(kind[1][1:], base[key], strict=True)
            )
        for _ in range(bits.uvar()):
            row = _row(bits, kind[1])
            rows[row[0]] = row[1:]
        if waits is not None:
            waits += [_whole(bits, kind[1][0]) for _ in range(bits.uvar())]
        return rows
    if kind[0] in ("int", "fixed"):
        lo, hi = _range(kind)
        width = len(bin(hi - lo)) - 2 if hi > lo else 0
        if width > 7:
            z = None
            if bits.take(1) == 0:
                z = bits.take(7)
            elif width > 12 and bits.take(1) == 0:
                z = bits.take(12)
            if z is not None:
                return base + (z // 2 if z % 2 == 0 else -(z + 1) // 2)
    return _whole(bits, kind)


def read_frame(declaration: list[Any], data: bytes, base: dict[str, Any] | None) -> Any:
    """(tick, distance, checksum, {name: wire value}, {name: waiting ids}) of a frame;
    rows as {id: columns}."""
    assert data[0] == 1
    at, numbers = 1, []
    for _ in range(2):
        value, shift = 0, 0
        while True:
            byte = data[at]
            at += 1
            value += (byte % 128) * 2**shift
            shift += 7
            if byte < 128:
                break
        numbers.append(value)
    checksum = None
    flags = data[at]
    if flags & 1:
        checksum = int.from_bytes(data[at + 1 : at + 5], "little")
        at += 4
    bits = Bits(data[at + 1 :])
    view, waiting = {}, {}
    for name, kind in declaration:
        if base is None:
            view[name] = _whole(bits, kind)
        elif bits.take(1):
            waits: list[int] | None = [] if flags & 2 else None
            view[name] = _change(bits, kind, base[name], waits)
            if waits:
                waiting[name] = waits
        else:
            view[name] = base[name]
    rest = bits.bits[bits.at :]
    assert len(rest) < 8 and set(rest) <= {"0"}, "bits after the body"
    return numbers[0], numbers[1], checksum, view, waiting


def as_read(wire: tuple[Any, ...]) -> dict[str, Any]:
    """The module's wire view in `read_frame`'s form."""
    return {name: value for (name, _), value in zip(DECLARATION, wire, strict=True)}


# -- tests ------------------------------------------------------------------------------


class VectorTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        wires: dict[str, tuple[int, Any]] = {}
        for v in VECTORS["vectors"]:
            with self.subTest(v["name"]):
                wire = SCHEMA.wire(v["view"])
                base = None if v["baseline"] is None else wires[v["baseline"]]
                # {field name: [id, ...]} as {field position: [id, ...]}.
                names = [name for name, _ in DECLARATION]
                waits = {names.index(k): ids for k, ids in v.get("waiting", {}).items()}
                waiting = next(((i, set(ids)) for i, ids in waits.items()), None)
                body = SCHEMA.encode_body(None if base is None else base[1], wire, waiting)
                crc = SCHEMA.checksum(wire) if v["checksum"] else None
                frame = encode_frame(v["tick"], 0 if base is None else v["tick"] - base[0],
                                     crc, body, waiting is not None)  # fmt: skip
                self.assertEqual(frame.hex(), v["hex"])
                baselines = {} if base is None else {base[0]: base[1]}
                tick, baseline_tick, checksum, decoded, waited = decode_frame(
                    SCHEMA, unhex(v["hex"]), baselines
                )
                self.assertEqual((tick, checksum, waited), (v["tick"], crc, waits))
                self.assertEqual(baseline_tick, None if base is None else base[0])
                self.assertEqual(SCHEMA.rebuild(decoded), v["decoded"])
                read = read_frame(DECLARATION, unhex(v["hex"]),
                                  None if base is None else as_read(base[1]))  # fmt: skip
                self.assertEqual(read[4], v.get("waiting", {}))
                wires[v["name"]] = (tick, decoded)
        self.assertIn("schema_waits", wires)

    def test_the_declaration_travels_as_declared(self) -> None:
        self.assertEqual(SCHEMA.describe(), DECLARATION)
        self.assertEqual(ViewSchema(SCHEMA.describe()).describe(), DECLARATION)


class DocumentTests(SynchronousTestCase):
    def test_the_document_states_the_limits_the_module_keeps(self) -> None:
        text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
        section = text.split("### 16.8 Schema snapshots", 1)[1].split("\n## ", 1)[0]
        section = " ".join(section.split())
        for said in (f"1 to {MAX_FIELDS} distinct names", f"at most {MAX_BITS})",
                     f"at most {MAX_ROWS:,} rows", f"1 to {MAX_COLUMNS} columns",
                     f"in {SMALL_BITS} bits if `z < {1 << SMALL_BITS}`",
                     f"`z` in {MEDIUM_BITS} bits if `z < {1 << MEDIUM_BITS}`",
                     f"`{SCHEMA_FORMAT:02x}`, `tick`"):  # fmt: skip
            self.assertIn(said, section)


class IndependentReadingTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(views, views, st.integers(1, 10**6), st.integers(1, 300), st.booleans())
    def test_the_document_reads_what_the_module_writes(
        self, old: dict[str, Any], new: dict[str, Any], tick: int, back: int, full: bool
    ) -> None:
        base = None if full else SCHEMA.wire(old)
        wire = SCHEMA.wire(new)
        distance = 0 if full else min(back, tick)
        frame = encode_frame(tick, distance, SCHEMA.checksum(wire),
                             SCHEMA.encode_body(base, wire))  # fmt: skip
        read = read_frame(DECLARATION, frame, None if base is None else as_read(base))
        self.assertEqual(read, (tick, distance, SCHEMA.checksum(wire), as_read(wire), {}))


class WaitsReadingTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(views, views, st.sets(st.integers(0, 255)), st.integers(1, 1000))
    def test_the_document_reads_the_rows_that_wait(
        self, old: dict[str, Any], new: dict[str, Any], picks: set[int], tick: int
    ) -> None:
        """A delta with waits (flag 02): rows unchanged since the baseline, some of them
        waiting, and ids outside both views waiting too; the module and the document's
        reader agree, and the module reads back what it wrote."""
        base, wire = SCHEMA.wire(old), SCHEMA.wire(new)
        at = [name for name, _ in DECLARATION].index("units")
        rows = {k: base[at][k] for k in base[at] if k in picks}
        rows.update({k: v for k, v in wire[at].items() if k not in base[at]})
        sent = (*wire[:at], dict(sorted(rows.items())), *wire[at + 1 :])
        waiting = {k for k in picks if k in base[at] or k not in rows}
        frame = encode_frame(tick + 1, 1, None, SCHEMA.encode_body(base, sent, (at, waiting)),
                             True)  # fmt: skip
        decoded = decode_frame(SCHEMA, frame, {tick: base})
        self.assertEqual(decoded[3], sent)
        self.assertEqual(sorted(decoded[4].get(at, [])), sorted(waiting))
        read = read_frame(DECLARATION, frame, as_read(base))
        self.assertEqual(read[3], as_read(sent))
        self.assertEqual(sorted(read[4].get("units", [])), sorted(waiting))


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(views, views)
    def test_any_view_against_any_baseline(self, old: Any, new: Any) -> None:
        base, wire = SCHEMA.wire(old), SCHEMA.wire(new)
        self.assertEqual(SCHEMA.decode_body(base, SCHEMA.encode_body(base, wire)), (wire, {}))
        self.assertEqual(SCHEMA.decode_body(None, SCHEMA.encode_body(None, wire)), (wire, {}))

    @settings(max_examples=100, deadline=None)
    @given(views)
    def test_an_unchanged_view_costs_a_bit_a_field(self, view: Any) -> None:
        wire = SCHEMA.wire(view)
        self.assertEqual(SCHEMA.encode_body(wire, wire), b"\x00")

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_lossy_reordering_duplicating_link(self, data: st.DataObject) -> None:
        """Snapshots lost, duplicated and reordered, acks late: every one applied is
        the view the host rebuilt, and none is applied out of order."""
        history = SchemaHistory(SCHEMA)
        receiver = SnapshotReceiver(schema=SCHEMA)
        sent: dict[int, Any] = {}
        in_flight: list[bytes] = []
        for tick in range(1, 40):
            wire = SCHEMA.wire(data.draw(views))
            sent[tick] = SCHEMA.rebuild(wire)
            in_flight.append(history.encode_for(tick, wire, SCHEMA.checksum(wire)))
            for frame in data.draw(st.permutations(in_flight)):
                if data.draw(st.booleans()):
                    continue  # lost, or later
                newest = receiver.newest
                snapshot = receiver.receive(frame)
                if snapshot is not None:
                    self.assertGreater(snapshot.tick, -1 if newest is None else newest)
                    self.assertEqual(snapshot.view, sent[snapshot.tick])
                    if data.draw(st.booleans()):
                        history.acknowledge(snapshot.tick)
            in_flight = in_flight[-3:]
        self.assertEqual(receiver.drops.get("checksum", 0) + receiver.drops.get("corrupt", 0), 0)

    def test_rows_come_back_in_id_order_and_beyond_a_range_clamped(self) -> None:
        view = {"hp": 1e300, "score": -math.inf, "alive": True, "name": b"\x00",
                "units": [[9, math.nan, 20], [2, -1e9, 0.26]]}  # fmt: skip
        wire = SCHEMA.wire(view)
        self.assertEqual(SCHEMA.rebuild(wire), {
            "hp": 100, "score": -1000, "alive": True, "name": b"\x00",
            "units": [[2, -500.0, 0.5], [9, -500.0, 10.0]],
        })  # fmt: skip


# Rows of every column kind, for the work views share.
MIXED = ViewSchema([["n", ["int", 0, 9]], ["things", ["rows", [
    ["int", 0, 99], ["fixed", -1000, 1000, 0.01], ["bool"], ["any"], ["int", 0, 7]]]]])  # fmt: skip
things = st.tuples(
    st.integers(0, 99),
    st.floats(-1000, 1000, allow_nan=False),
    st.booleans(),
    # (Some long: a changed row wider than a machine word, written in bytes.)
    st.none() | st.integers(-5, 5) | st.text(max_size=3) | st.binary(min_size=9, max_size=600),
    st.integers(0, 7),
)


class SharedWorkTests(SynchronousTestCase):
    """One tick's views share the game's row tuples: each is made wire once, and its
    change since a baseline written once for every body that has both."""

    @settings(max_examples=120, deadline=None)
    @given(st.data())
    def test_shared_work_writes_the_bytes_each_view_alone_would(self, data: st.DataObject) -> None:
        # Two ticks of one world; each client sees some of its rows at each.
        before = {row[0]: row for row in data.draw(st.lists(things, max_size=10))}
        after = {row[0]: row for row in data.draw(st.lists(things, max_size=10))}
        # Some rows stay the same objects from one tick to the next.
        after.update({k: v for k, v in before.items() if data.draw(st.booleans())})
        clients = data.draw(st.integers(1, 5))
        # Two baselines' wire rows: clients that acknowledged different ticks hold
        # different objects for the same row, and must not share its change.
        old_shared: list[SharedRows] = [{}, {}]
        new_shared: SharedRows = {}
        changes: SharedChanges = {}
        for _ in range(clients):
            seen_before = [r for r in before.values() if data.draw(st.booleans())]
            seen_after = [r for r in after.values() if data.draw(st.booleans())]
            base = MIXED.wire({"n": 1, "things": seen_before},
                              old_shared[data.draw(st.integers(0, 1))])  # fmt: skip
            wire = MIXED.wire({"n": 2, "things": seen_after}, new_shared)
            alone = MIXED.wire({"n": 2, "things": [list(r) for r in seen_after]})
            self.assertEqual(wire, alone)
            expected = MIXED.encode_body(MIXED.wire({"n": 1, "things": seen_before}), alone)
            self.assertEqual(MIXED.encode_body(base, wire, None, changes), expected)
            waiting = (1, frozenset(k for k in base[1] if data.draw(st.booleans())))
            self.assertEqual(MIXED.encode_body(base, wire, waiting, changes),
                             MIXED.encode_body(base, alone, waiting))  # fmt: skip
            self.assertEqual(MIXED.decode_body(base, expected)[0], wire)

    def test_a_tuple_row_is_made_wire_once_and_a_list_each_time(self) -> None:
        shared: SharedRows = {}
        row = (3, 1.5, True, "x", 2)
        first = MIXED.wire({"n": 0, "things": [row, [4, 0.0, False, None, 1]]}, shared)
        second = MIXED.wire({"n": 0, "things": [[4, 0.0, False, None, 1], row]}, shared)
        self.assertIs(first[1][3], second[1][3])
        self.assertIsNot(first[1][4], second[1][4])
        self.assertEqual(first, second)
        self.assertEqual(len(shared), 1)

    def test_a_change_two_bodies_share_is_written_once(self) -> None:
        shared: SharedRows = {}
        a, b = (1, 0.0, False, None, 0), (1, 2.5, True, [1], 7)
        base = MIXED.wire({"n": 0, "things": [a]}, shared)
        wires = [MIXED.wire({"n": 0, "things": [b]}, shared) for _ in range(3)]
        changes: SharedChanges = {}
        bodies = {MIXED.encode_body(base, wire, None, changes) for wire in wires}
        alone = MIXED.encode_body(MIXED.wire({"n": 0, "things": [a]}),
                                  MIXED.wire({"n": 0, "things": [b]}))  # fmt: skip
        self.assertEqual(bodies, {alone})
        # Written for the first body, then found: the entry is the first one's.
        [entry] = changes.values()
        MIXED.encode_body(base, wires[0], None, changes)
        self.assertIs(changes[id(wires[0][1][1])], entry)

    def test_a_long_changed_row_is_written_in_one_pass(self) -> None:
        """A changed row whose `any` column packs to 6 KB: its bits written a byte at a
        time (not a call per 32 bits, one inside the other), read back as sent."""
        old, new = (1, 0.0, False, b"", 0), (1, 1.0, True, bytes(range(256)) * 24, 3)
        base = MIXED.wire({"n": 0, "things": [old]})
        wire = MIXED.wire({"n": 0, "things": [new]})
        body = MIXED.encode_body(base, wire, None, {})
        self.assertGreater(len(body), 6144)
        self.assertEqual(MIXED.decode_body(base, body)[0], wire)

    def test_a_row_two_rows_fields_read_is_made_wire_by_each(self) -> None:
        """The wire form is the field's: one tuple in two rows fields of different
        kinds is read by each (its id clamped to each field's range)."""
        two = ViewSchema([["near", ["rows", [["int", 0, 7], ["fixed", 0, 10, 0.5]]]],
                          ["far", ["rows", [["int", 0, 63], ["fixed", 0, 10, 0.01]]]]])  # fmt: skip
        row = (20, 1.26)
        shared: SharedRows = {}
        wire = two.wire({"near": [row], "far": [row]}, shared)
        self.assertEqual(wire, two.wire({"near": [list(row)], "far": [list(row)]}))
        self.assertEqual(wire, ({7: (3,)}, {20: (126,)}))
        # A row the first field took is still refused by a field it does not fit.
        widths = ViewSchema([["a", ["rows", [["int", 0, 7], ["fixed", 0, 10, 0.5]]]],
                             ["b", ["rows", [["int", 0, 7], ["bool"], ["bool"]]]]])  # fmt: skip
        with self.assertRaises(TypeError):
            widths.wire({"a": [row], "b": [row]}, {})


class QuantisationTests(SynchronousTestCase):
    """A fixed field's integer is §16.8's `n = round(v * (1 / step))` clamped, with
    Python's `round` (a tie to the even integer), for any number a view holds."""

    def field(self, lo: float, hi: float, step: float) -> ViewSchema:
        return ViewSchema([["v", ["fixed", lo, hi, step]]])

    DECLARED = [
        (-500.0, 500.0, 0.01),
        (0.0, 1697.06, 0.01),
        (-120.0, 120.0, 0.1),
        (-3.0, 7.0, 0.5),
        (-(2.0**40), 2.0**40, 1.0),
    ]

    @given(
        st.floats(allow_nan=False, allow_infinity=False, width=64)
        | st.integers(-(2**60), 2**60)
        | st.floats(-1e6, 1e6).map(lambda v: round(v, 2)),
        st.sampled_from(DECLARED),
    )
    @settings(max_examples=300, deadline=None)
    def test_as_the_document_defines_it(self, value: float, declared: tuple[float, ...]) -> None:
        lo, hi, step = declared
        scale = 1 / step
        low, high = math.ceil(lo * scale), math.floor(hi * scale)
        (n,) = self.field(lo, hi, step).wire({"v": value})
        scaled = value * scale  # beyond the range, it may be infinite: no round then
        rounded = high if scaled > high else low if scaled < low else round(scaled)
        self.assertEqual(n, max(low, min(high, rounded)))
        self.assertIs(type(n), int)

    def test_a_tie_goes_to_the_even_integer_and_infinities_to_the_ends(self) -> None:
        schema = self.field(-10, 10, 1)
        values = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, math.inf, -math.inf,
                  math.nan, 1e308, -1e308, 3, 4]  # fmt: skip
        self.assertEqual([schema.wire({"v": v})[0] for v in values],
                         [0, 2, 2, 0, -2, -2, 0, 10, -10, -10, 10, -10, 3, 4])  # fmt: skip
        # Beside 2^52, the last doubles with a fraction.
        self.assertEqual(self.field(0, 2.0**52, 1).wire({"v": 2.0**52 - 0.5})[0], 2**52)
        self.assertEqual(self.field(-(2.0**52), 0, 1).wire({"v": 0.5 - 2.0**52})[0], -(2**52))
        self.assertEqual(self.field(0, 2.0**52, 1).wire({"v": 2.0**52 - 1.5})[0], 2**52 - 2)


class DeclarationTests(SynchronousTestCase):
    def test_what_is_not_a_declaration_is_refused(self) -> None:
        for bad in (
            [],
            [["a"]],
            [["a", ["int", 0]]],
            [["a", ["int", 5, 1]]],
            [["a", ["int", 0, 2**60]]],
            [["a", ["int", 0.5, 3]]],
            [["a", ["fixed", 0, 1, 0]]],
            [["a", ["fixed", 0, 1, -1]]],
            [["a", ["fixed", 0, math.inf, 1]]],
            [["a", ["fixed", 0.1, 0.2, 1]]],
            [["a", ["fixed", 0, 1e300, 1e-300]]],
            [["a", ["fixed", 0, 1, 1e-320]]],
            [["a", ["float"]]],
            [["a", ["bool", 1]]],
            [["a", ["rows", []]]],
            [["a", ["rows", [["bool"]]]]],
            [["a", ["rows", [["int", 0, 9], ["rows", [["int", 0, 1]]]]]]],
            [["a", ["rows", [["int", 0, 9], ["rows", [["rows", [["int", 0, 1]]]]]]]]],
            [["a", ["bool"]], ["a", ["bool"]]],
            [[1, ["bool"]]],
            [[f"f{i}", ["bool"]] for i in range(65)],
        ):
            with self.subTest(bad):
                self.assertRaises(ValueError, ViewSchema, bad)

    def test_a_game_declares_one_or_none(self) -> None:
        class Declares:
            view_schema = {"hp": ["int", 0, 9]}

        self.assertEqual(schema_of(Declares()).describe(), [["hp", ["int", 0, 9]]])  # type: ignore[union-attr]
        self.assertIsNone(schema_of(object()))

    def test_a_view_that_does_not_fit_is_the_games_bug(self) -> None:
        good = {"hp": 1, "score": 1, "alive": True, "name": None, "units": []}
        for change in ({"hp": "1"}, {"alive": 1}, {"units": [[1, 2]]}, {"units": {}},
                       {"units": [[1, 0, 0], [1, 0, 0]]}, {"extra": 1}):  # fmt: skip
            with self.subTest(change):
                self.assertRaises((TypeError, ValueError), SCHEMA.wire, {**good, **change})
        missing = dict(good)
        del missing["hp"]
        self.assertRaises(TypeError, SCHEMA.wire, {**missing, "other": 1})
        self.assertRaises(TypeError, SCHEMA.wire, list(good.items()))  # not a map

    def test_any_mapping_is_a_view(self) -> None:
        view = {"hp": 1, "score": 1, "alive": True, "name": None, "units": [[2, 0, 1]]}
        self.assertEqual(SCHEMA.wire(MappingProxyType(view)), SCHEMA.wire(view))


class BadBytesTests(SynchronousTestCase):
    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=60))
    def test_random_bytes_raise_only_delta_error(self, data: bytes) -> None:
        base = SCHEMA.wire({"hp": 1, "score": 2, "alive": False, "name": "x",
                            "units": [[1, 0, 0], [4, 1, 1]]})  # fmt: skip
        for frame in (data, b"\x01" + data):
            with contextlib.suppress(DeltaError):
                decode_frame(SCHEMA, frame, {t: base for t in range(300)})

    def test_malformed_frames_are_refused(self) -> None:
        full = unhex(VECTORS["vectors"][0]["hex"])
        base = decode_frame(SCHEMA, full, {})[3]
        delta = unhex(VECTORS["vectors"][1]["hex"])
        # Rows added out of id order: unit 9 added, then unit 8 (a full body by hand).
        bits = "1011010" + format(1010, "017b") + "1" + "00000000" + "00000010"
        bits += "00001001" + "0" * 17 + "00000" + "00001000" + "0" * 17 + "00000"
        unordered = encode_frame(3, 0, None, int(bits.ljust(-(-len(bits) // 8) * 8, "0"), 2)
                                 .to_bytes(-(-len(bits) // 8), "big"))  # fmt: skip
        for name, frame, baselines in (
            ("cut short", full[:-1], {}),
            ("a byte after", full + b"\x00", {}),
            ("padding not zero", full[:-1] + bytes([full[-1] | 1]), {}),
            ("hp beyond its range", encode_frame(1, 0, None, b"\xff" * 20), {}),
            ("rows out of order", unordered, {}),
            ("a distance beyond the tick", b"\x01\x01\x02\x00\x00", {}),
            ("a flags byte of 4", b"\x01\x01\x00\x04\x00", {}),
            ("waits in a full snapshot", b"\x01\x01\x00\x02\x00", {}),
            ("a checksum cut short", b"\x01\x01\x00\x01\x00", {}),
            ("not this format", b"\x94\x01\xc0\xc0\x80", {}),
            ("a delta cut short", delta[:-2], {1: base}),
        ):
            with self.subTest(name):
                self.assertRaises(CorruptSnapshot, decode_frame, SCHEMA, frame, baselines)
        self.assertRaises(UnknownBaseline, decode_frame, SCHEMA, delta, {})

    def test_the_receiver_counts_what_it_drops(self) -> None:
        receiver = SnapshotReceiver(schema=SCHEMA)
        full, delta = (unhex(v["hex"]) for v in VECTORS["vectors"][:2])
        self.assertIsNone(receiver.receive(delta))
        self.assertIsNotNone(receiver.receive(full))
        self.assertIsNone(receiver.receive(full))
        self.assertIsNone(receiver.receive(b"\x01\x09\x00\x00" + b"\xff" * 20))  # hp 127
        self.assertIsNotNone(receiver.receive(delta))
        self.assertEqual(
            dict(receiver.drops), {DROP_UNKNOWN_BASELINE: 1, DROP_STALE: 1, DROP_CORRUPT: 1}
        )
        # A client that reads no schema takes a schema snapshot for a corrupt one.
        plain = SnapshotReceiver()
        self.assertIsNone(plain.receive(full))
        self.assertEqual(dict(plain.drops), {DROP_CORRUPT: 1})


ARENA = [
    ["me", ["int", -1, 7]],
    ["ack", ["int", 0, 2**32 - 1]],
    ["ticks", ["int", 0, 2**32 - 1]],
    ["players", ["rows", [["int", 0, 7], ["fixed", 0, 600, 0.01], ["fixed", 0, 600, 0.01],
                          ["fixed", -120, 120, 0.1], ["fixed", -120, 120, 0.1]]]],
]  # fmt: skip
ARENA_RULES = {f"players.*.{i}": step for i, step in ((1, 0.01), (2, 0.01), (3, 0.1), (4, 0.1))}


class SizeTests(SynchronousTestCase):
    def test_the_arena_in_under_half_the_schema_less_bytes(self) -> None:
        """Eight players all moving at 100 units a second: a schema delta weighs under
        half the schema-less one (docs/protocol.md §16.6)."""
        rng = random.Random(5)
        players = [[i, rng.uniform(0, 600), rng.uniform(0, 600), 70.7, -70.7] for i in range(8)]

        def view(tick: int) -> dict[str, Any]:
            seen = [[i, round((x + vx * tick / 20) % 600, 2), round((y + vy * tick / 20) % 600, 2),
                     vx, vy] for i, x, y, vx, vy in players]  # fmt: skip
            return {"me": 0, "ack": 100 + tick, "ticks": tick, "players": seen}

        schema, quantisation = ViewSchema(ARENA), Quantisation(ARENA_RULES)
        packed, plain = SchemaHistory(schema), SnapshotHistory(quantisation)
        for tick in (1, 2):
            with_schema = packed.encode_for(tick, schema.wire(view(tick)))
            without = plain.encode_for(tick, view(tick))
            packed.acknowledge(tick)
            plain.acknowledge(tick)
        self.assertLess(len(with_schema), len(without) / 2)
        self.assertLessEqual(len(with_schema), 45)


class SchemaGame(SnapshotGame):
    view_schema = [["seqs", ["any"]], ["ticks", ["int", 0, 2**31]], ["mine", ["any"]]]


class RoomTests(SnapshotTestCase):
    def frames(self, session: int) -> list[bytes]:
        return [m["d"] for s, m in self.sender.snaps if s == session]

    def test_the_welcome_offers_the_declaration(self) -> None:
        self.playing(SchemaGame(tick_rate=20))
        self.room.player_disconnected(A, SA, self.now)
        self.room.player_connected(A, SA, self.now)
        self.assertEqual(self.sender.to(SA, "welcome")[0]["vs"], SchemaGame.view_schema)

    def test_every_session_gets_schema_snapshots_from_the_first(self) -> None:
        room = self.playing(SchemaGame(tick_rate=20), snapshot_checksums=True)
        self.host.advance(0.05)
        self.assertEqual(self.frames(SA)[0][2], 0)  # the first: full
        room.handle_inputs(A, None, ((2, {"seq": 1}),), self.now)
        self.host.advance(0.05)
        self.assertEqual({d[0] for d in self.frames(SA) + self.frames(SB)}, {0x01})
        # The first is full; against an acknowledged one the next is a delta.
        first = self.frames(SA)[-1]
        self.assertEqual(first[2], 0)
        room.handle_inputs(A, first[1], ((3, {"seq": 2}),), self.now)
        self.host.advance(0.05)
        self.assertEqual(self.frames(SA)[-1][2], 1)  # a distance of one tick
        # Both clients rebuilt the same views (the outbox decodes as a client does).
        self.assertEqual(self.states(SA)[-1]["s"]["seqs"], [2, 0])
        self.assertEqual(self.states(SB)[-1]["s"]["seqs"], [2, 0])

    def test_a_snaps_numbers_are_written_against_its_baselines_snap(self) -> None:
        """Every snap is the one form (docs/protocol.md §14): byte c1, its numbers against
        the snap of its baseline tick; read as a client does, each stands for its
        state, and a delta's numbers take 5 to 7 bytes."""
        self.playing(SchemaGame(tick_rate=20))
        self.act(A, 1, -3)
        self.act(B, 1, 5)
        self.host.advance(0.05)
        for n in range(2, 30):
            # Each sends an input for the next tick and acknowledges the newest snap
            # it has: the next is a delta.
            for player, session in ((A, SA), (B, SB)):
                tick = self.states(session)[-1]["k"]
                self.room.handle_inputs(player, tick, ((tick + 1, {"seq": n}),), self.now)
            self.host.advance(0.05)
        for session, action_id in ((SA, -3), (SB, 5)):
            states = self.states(session)
            self.assertEqual(states[-1]["s"]["seqs"], [29, 29])
            versions = [s["v"] for s in states]
            self.assertEqual(versions, sorted(set(versions)))
            for state in states:
                self.assertEqual(state["snap"][0], SNAP_MARKER)
                self.assertEqual(state["i"], action_id)
                self.assertEqual(state["ts"], round(state["k"] * 50))
            sent = [m for s, m in self.sender.snaps if s == session]
            self.assertEqual(sent[-1]["ik"], states[-1]["k"])
            numbers = []  # the bytes of each delta's numbers (ticks below 128: d[2])
            for state in states:
                message = decode_server_message(state["snap"])
                assert message is not None
                if message["d"][2]:
                    numbers.append(len(state["snap"]) - len(message["d"]))
            self.assertGreater(len(numbers), 20)
            self.assertLessEqual(max(numbers), 7)

    def test_a_view_that_does_not_fit_is_a_fault_of_the_game(self) -> None:
        class Misfit(SchemaGame):
            def view(self, state: Any, player_id: str | None) -> Any:
                return {"seqs": [], "ticks": "many", "mine": None}

        room = self.playing(Misfit(tick_rate=20))
        before = len(self.sender.snaps)
        self.host.advance(0.05)
        self.assertGreater(room.game_errors, 0)
        self.assertEqual(self.sender.snaps[before:], [])  # no snap that tick
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), room.game_errors)

    def test_a_game_without_a_schema_sends_msgpack_snapshots(self) -> None:
        self.playing(SnapshotGame(tick_rate=20))
        self.host.advance(0.1)
        self.assertEqual({d[0] for d in self.frames(SA)}, {0x94})
        self.assertEqual({m["snap"][0] for m in self.states(SA) if "snap" in m}, {SNAP_MARKER})
        self.assertNotIn("vs", self.sender.to(SA, "welcome") or [{}][0])

    def test_with_a_byte_budget_its_entities_are_rows_of_the_schema(self) -> None:
        """A budget's entities must name a rows field of the schema (they are what
        waits): anything else fails the room at creation, naming both."""

        class Budgeted(SchemaGame):
            snapshot_budget = SnapshotBudget(bytes=400, entities="seqs")

        e = self.assertRaises(ValueError, self.playing, Budgeted(tick_rate=20))
        self.assertEqual(str(e), "game 'seq': its snapshot_budget's entities ('seqs') "
                                 "must name a rows field of its view_schema")  # fmt: skip

        class Rows(SchemaGame):
            view_schema = [["seqs", ["rows", [["int", 0, 9], ["int", 0, 2**31]]]],
                           ["ticks", ["int", 0, 2**31]], ["mine", ["any"]]]  # fmt: skip
            snapshot_budget = SnapshotBudget(bytes=64, entities="seqs")

            def view(self, state: Any, player_id: str | None) -> Any:
                return {"seqs": [[n, s] for n, s in enumerate(state.seqs)],
                        "ticks": state.ticks, "mine": None}  # fmt: skip

        self.playing(Rows(tick_rate=20))
        self.host.advance(0.1)
        self.assertEqual(self.frames(SA)[-1][0], 0x01)
        self.assertEqual(self.states(SA)[-1]["s"]["seqs"], [[0, 0], [1, 0]])

    def test_the_bodies_of_a_shared_view_are_shared(self) -> None:
        class Shared(SchemaGame):
            shared_view = True

            def view(self, state: Any, player_id: str | None) -> Any:
                return {"seqs": list(state.seqs), "ticks": state.ticks, "mine": None}

        self.playing(Shared(tick_rate=20))
        self.host.advance(0.05)
        self.assertEqual(self.frames(SA)[-1], self.frames(SB)[-1])
