"""Tests for vinom.rooms.delta: delta snapshots, quantisation, checksums, the rings.

The test vectors are vectors/protocol.json's (docs/protocol.md, "Delta snapshots
(encoding)"), byte for byte.
"""

from __future__ import annotations

import contextlib
import math
import random
import struct
import timeit
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.vectors import unhex, vectors
from vinom.rooms.delta import (
    DEFAULT_HISTORY,
    DROP_CORRUPT,
    DROP_STALE,
    DROP_UNKNOWN_BASELINE,
    FLOAT32,
    NO_QUANTISATION,
    PATCH_RETRY,
    ChecksumMismatch,
    CorruptSnapshot,
    DeltaError,
    Quantisation,
    SnapshotHistory,
    SnapshotReceiver,
    UnknownBaseline,
    decode_snapshot,
    encode_body,
    encode_snapshot,
)
from vinom.rooms.delta_wire import round_half_even

# -- views ----------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=4)
)
keys = st.sampled_from(["a", "b", "c", "x", "y", "hp", "0", "é", ""]) | st.text(max_size=4)
views = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)
# Quantisation rules over the keys views use, so that some apply.
QUANT = Quantisation({"x": 0.01, "*.x": 0.01, "*.*.y": 0.5, "a.*": FLOAT32, "1": 0.1})


def same(a: Any, b: Any) -> bool:
    """Equal, types included (1, 1.0 and True differ); -0.0 equals 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def arena_view(rng: random.Random, ticks: int = 1234) -> dict[str, Any]:
    """Like vinom/games/arena.py's view: 8 players with [seat, x, y, vx, vy]."""
    players = [
        [
            i,
            rng.uniform(0, 600),
            rng.uniform(0, 600),
            rng.uniform(-120, 120),
            rng.uniform(-120, 120),
        ]
        for i in range(8)
    ]
    return {"me": 3, "ack": 517, "ticks": ticks, "players": players}


def moved(view: dict[str, Any], seats: tuple[int, ...]) -> dict[str, Any]:
    """One tick later: the players in `seats` moved by their velocity."""
    players = [list(p) for p in view["players"]]
    for i in seats:
        players[i][1] += players[i][3] / 20
        players[i][2] += players[i][4] / 20
    return {**view, "ticks": view["ticks"] + 1, "players": players}


ARENA = Quantisation(
    {"players.*.1": 0.01, "players.*.2": 0.01, "players.*.3": 0.1, "players.*.4": 0.1}
)


# -- round trips ----------------------------------------------------------------


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(views, views)
    def test_any_view_against_any_baseline(self, old: Any, new: Any) -> None:
        for quantisation in (NO_QUANTISATION, QUANT):
            base = quantisation.prepare(old)
            view = quantisation.prepare(new, checksum=True)
            baselines = {4: quantisation.quantise(old)}
            full = decode_snapshot(encode_snapshot(5, view), {}, quantisation)
            delta = decode_snapshot(encode_snapshot(5, view, 4, base), baselines, quantisation)
            expected = quantisation.quantise(new)
            self.assertTrue(same(full.view, expected), (full.view, expected))
            self.assertTrue(same(delta.view, expected), (delta.view, expected))
            self.assertEqual(delta.baseline_tick, 4)
            self.assertEqual(delta.checksum, quantisation.checksum(new))

    @settings(max_examples=100, deadline=None)
    @given(views)
    def test_an_unchanged_view_costs_a_few_bytes(self, value: Any) -> None:
        prepared = NO_QUANTISATION.prepare(value)
        again = NO_QUANTISATION.prepare(value)
        body = encode_body(prepared, again)
        self.assertLessEqual(len(body), max(len(msgpack.packb(value)), 3))
        if isinstance(value, dict | list):
            self.assertLessEqual(len(body), 3)  # {} or [length]

    def test_tuples_and_mappings_travel_as_lists_and_maps(self) -> None:
        from types import MappingProxyType

        view = MappingProxyType({"a": (1, (2.5, "x"))})
        snapshot = decode_snapshot(encode_snapshot(1, NO_QUANTISATION.prepare(view)), {})
        self.assertEqual(snapshot.view, {"a": [1, [2.5, "x"]]})

    def test_what_a_view_cannot_hold_is_a_type_error(self) -> None:
        for bad in ({1: "x"}, {"a": {1, 2}}, object()):
            self.assertRaises(TypeError, NO_QUANTISATION.prepare, bad)
        deep: Any = 0
        for _ in range(100):
            deep = [deep]
        self.assertRaises(TypeError, NO_QUANTISATION.prepare, deep)

    @settings(max_examples=40, deadline=None)
    @given(st.data())
    def test_lossy_reordering_duplicating_link(self, data: st.DataObject) -> None:
        """A room's ticks through a link that loses, reorders and duplicates both
        the snapshots and the acks: every snapshot the client applies is the
        server's view exactly, and none fails for want of a baseline."""
        quantisation = QUANT if data.draw(st.booleans()) else ARENA
        history = SnapshotHistory(quantisation, checksum=True)
        receiver = SnapshotReceiver(quantisation)
        rng = random.Random(data.draw(st.integers(0, 2**32)))
        ticks = data.draw(st.integers(1, 60))
        loss = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
        sent: dict[int, Any] = {}
        to_client: list[tuple[int, bytes]] = []  # (arrival tick, snapshot)
        to_server: list[tuple[int, int]] = []  # (arrival tick, acknowledged tick)
        view = arena_view(rng, 0) if quantisation is ARENA else {"x": 1.0, "a": [], "1": [1]}
        for tick in range(1, ticks + 1):
            if quantisation is ARENA:
                view = moved(view, tuple(rng.sample(range(8), rng.randint(0, 8))))
            else:
                view = data.draw(st.sampled_from([view, data.draw(views)]))
            acks = [a for at, a in to_server if at <= tick]
            to_server = [(at, a) for at, a in to_server if at > tick]
            rng.shuffle(acks)
            ack = max(acks, default=None) if rng.random() < 0.5 else (acks[0] if acks else None)
            packet = history.encode_for(tick, view, ack)
            sent[tick] = quantisation.quantise(view)
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # lost, or sent twice
                if rng.random() >= loss:
                    to_client.append((tick + rng.randint(0, 5), packet))
            arrived = [p for at, p in to_client if at <= tick]
            to_client = [(at, p) for at, p in to_client if at > tick]
            rng.shuffle(arrived)
            for packet in arrived:
                snapshot = receiver.receive(packet)
                if snapshot is not None:
                    self.assertTrue(same(snapshot.view, sent[snapshot.tick]))
                    if rng.random() >= loss:
                        to_server.append((tick + rng.randint(0, 5), snapshot.tick))
        self.assertEqual(set(receiver.drops) - {DROP_STALE}, set())
        self.assertEqual(history.full_sent + history.deltas_sent, ticks)


# -- quantisation -----------------------------------------------------------------


class QuantisationTests(SynchronousTestCase):
    def test_jitter_below_the_step_sends_nothing(self) -> None:
        base = ARENA.prepare({"players": [[0, 1.234, 2.0, 0.5, 0.0]]})
        jittered = ARENA.prepare({"players": [[0, 1.2341, 2.001, 0.51, 0.04]]})
        self.assertEqual(msgpack.unpackb(encode_body(base, jittered)), {})
        changed = ARENA.prepare({"players": [[0, 1.25, 2.0, 0.5, 0.0]]})
        self.assertEqual(
            msgpack.unpackb(encode_body(base, changed)), {"players": [1, 0, [5, 1, 125]]}
        )

    @settings(max_examples=200, deadline=None)
    @given(st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([0.01, 0.1, 0.5, 0.25, 3.0]))
    def test_a_step_keeps_within_half_a_step_and_is_idempotent(
        self, value: float, step: float
    ) -> None:
        rules = Quantisation({"v": step})
        once = rules.quantise({"v": value})["v"]
        self.assertIsInstance(once, float)
        self.assertLessEqual(abs(once - value), step / 2 * (1 + 1e-9) + 1e-9)
        self.assertEqual(rules.quantise({"v": once})["v"], once)
        # On the wire it is an integer: n, with n / (1 / step) the value.
        self.assertEqual(rules.prepare({"v": value}).wire["v"], round(value * (1 / step)))

    @settings(max_examples=500, deadline=None)
    @given(
        st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(2**60), 2**60).map(lambda n: n + 0.5)  # ties, where they exist
    )
    def test_the_hosts_round_is_pythons(self, value: float) -> None:
        # The quantisations' `round` (§16.3, §16.8) in doubles, as the compiled build
        # runs it: a tie goes to the even integer, as Python's does.
        self.assertEqual(round_half_even(value), round(value))

    @settings(max_examples=100, deadline=None)
    @given(st.floats(allow_nan=False, width=64))
    def test_float32_rounds_like_a_float32(self, value: float) -> None:
        rules = Quantisation({"v": FLOAT32})
        got = rules.quantise({"v": value})["v"]
        try:
            expected = struct.unpack("<f", struct.pack("<f", value))[0]
        except OverflowError:
            expected = value  # no float 32 holds it: it travels as a float 64
        self.assertEqual(got, expected)

    def test_float32_fields_travel_as_float32(self) -> None:
        rules = Quantisation({"p.*": FLOAT32})
        data = encode_snapshot(1, rules.prepare({"p": [0.1, 2.5], "n": 1}))
        self.assertEqual(data.count(b"\xca"), 2)
        self.assertNotIn(b"\xcb", data)
        # Another float in the view: every float goes as float 64 (lossless).
        data = encode_snapshot(1, rules.prepare({"p": [0.1, 2.5], "n": 1.5}))
        self.assertNotIn(b"\xca", data)
        self.assertEqual(decode_snapshot(data, {}, rules).view["p"][0], 0.10000000149011612)

    def test_literal_segment_beats_wildcard(self) -> None:
        rules = Quantisation({"p.*.x": 0.5, "p.bob.x": 0.01, "p.*.y": 1.0})
        view = {"p": {"ann": {"x": 1.234, "y": 2.4}, "bob": {"x": 1.234, "y": 2.4}}}
        self.assertEqual(
            rules.quantise(view),
            {"p": {"ann": {"x": 1.0, "y": 2.0}, "bob": {"x": 1.23, "y": 2.0}}},
        )

    def test_rules_apply_to_numbers_only(self) -> None:
        rules = Quantisation({"*": 0.1})
        self.assertTrue(
            same(
                rules.quantise({"a": 7, "b": True, "c": "s", "d": None, "e": math.inf}),
                {"a": 7.0, "b": True, "c": "s", "d": None, "e": math.inf},
            )
        )

    def test_bad_rules_are_refused(self) -> None:
        for rules in ({"a": 0}, {"a": -1.0}, {"a": "f16"}, {"a..b": 0.1}, {"a": True}):
            self.assertRaises(ValueError, Quantisation, rules)


# -- checksums ---------------------------------------------------------------------


class ChecksumTests(SynchronousTestCase):
    @settings(max_examples=100, deadline=None)
    @given(views)
    def test_server_and_client_agree(self, value: Any) -> None:
        prepared = QUANT.prepare(value, checksum=True)
        decoded = decode_snapshot(encode_snapshot(1, prepared), {}, QUANT).view
        self.assertEqual(prepared.checksum, QUANT.checksum_of_decoded(decoded))
        self.assertEqual(prepared.checksum, QUANT.checksum(value))

    def test_canonical_form_ignores_key_order_and_float_or_int(self) -> None:
        # JavaScript sees 1.0 as 1 and keeps its own key order: the checksum does too.
        a = NO_QUANTISATION.checksum({"b": 1.0, "a": [2, -0.0]})
        b = NO_QUANTISATION.checksum({"a": [2.0, 0], "b": 1})
        self.assertEqual(a, b)
        self.assertNotEqual(a, NO_QUANTISATION.checksum({"a": [2, 0], "b": True}))

    def test_a_wrong_baseline_is_caught(self) -> None:
        base = NO_QUANTISATION.prepare({"x": 1, "y": 2})
        view = NO_QUANTISATION.prepare({"x": 5, "y": 2}, checksum=True)
        data = encode_snapshot(2, view, 1, base)
        self.assertEqual(decode_snapshot(data, {1: {"x": 1, "y": 2}}).view, {"x": 5, "y": 2})
        self.assertRaises(ChecksumMismatch, decode_snapshot, data, {1: {"x": 1, "y": 3}})
        receiver = SnapshotReceiver(views={1: {"x": 1, "y": 3}})
        self.assertIsNone(receiver.receive(data))
        self.assertEqual(dict(receiver.drops), {"checksum": 1})


# -- bad bytes --------------------------------------------------------------------


class BadBytesTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=64))
    def test_random_bytes_raise_only_delta_error(self, data: bytes) -> None:
        for quantisation in (NO_QUANTISATION, QUANT):
            with contextlib.suppress(DeltaError):
                decode_snapshot(data, {0: {"a": [1, 2]}, 1: [0, {"x": 1}]}, quantisation)

    @settings(max_examples=200, deadline=None)
    @given(views, views, st.data())
    def test_damaged_snapshots_raise_only_delta_error(
        self, old: Any, new: Any, data: st.DataObject
    ) -> None:
        packet = bytearray(encode_snapshot(2, QUANT.prepare(new), 1, QUANT.prepare(old)))
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, len(packet) - 1))
            packet[at] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(packet)))
        receiver = SnapshotReceiver(QUANT, views={1: QUANT.quantise(old)})
        for damaged in (bytes(packet), bytes(packet[:cut])):
            with contextlib.suppress(DeltaError):
                decode_snapshot(damaged, {1: QUANT.quantise(old)}, QUANT, verify=False)
            receiver.receive(damaged)  # never raises

    def test_typed_errors(self) -> None:
        view = NO_QUANTISATION.prepare({"a": 1})
        data = encode_snapshot(9, view, 8, NO_QUANTISATION.prepare({"a": 0}))
        failure = self.assertRaises(UnknownBaseline, decode_snapshot, data, {7: {"a": 0}})
        self.assertEqual(failure.tick, 8)
        for bad in (
            b"",
            b"\x93\x01\xc0\xc0",  # three elements
            b"\x94\xff\xc0\xc0\xc0",  # negative tick
            b"\x94\x01\x02\xc0\xc0",  # a baseline before tick 0
            b"\x94\x01\xc0\xc0\x81\x01\x02",  # an int map key
            b"\x94\x01\xc0\xc0\xc7\x00\x00",  # a delete marker as a view
            b"\x94\x02\x01\xc0\x92\x03\x00",  # [length, index] without its patch
            b"\x94\x02\x01\xc0\x91\x03",  # a list grown to 3, element 2 left out
            b"\x94\x02\x01\xc0\x81\xa1b\xc7\x00\x00",  # deleting a key not there
            b"\x94\x01\xc0\xc0\xc0\x00",  # trailing bytes
            b"\x94\x01\xc0\xc0" + b"\x91" * 100 + b"\x00",  # nested deeper than MAX_DEPTH
        ):
            with self.subTest(bad=bad.hex()):
                self.assertRaises(CorruptSnapshot, decode_snapshot, bad, {1: [1, 2]})
        self.assertRaises(
            CorruptSnapshot,
            decode_snapshot,
            b"\x94\x02\x01\xc0\x81\xa1b\xc7\x00\x00",
            {1: {"a": 1}},
        )

    def test_the_receiver_counts_what_it_drops(self) -> None:
        history = SnapshotHistory()
        receiver = SnapshotReceiver()
        first = history.encode_for(1, {"a": 1, **KEPT})
        second = history.encode_for(2, {"a": 2, **KEPT}, 1)  # against tick 1, not yet received
        self.assertIsNone(receiver.receive(second))
        self.assertIsNotNone(receiver.receive(first))
        self.assertIsNone(receiver.receive(first))
        self.assertIsNone(receiver.receive(b"\xc1"))
        snapshot = receiver.receive(second)
        assert snapshot is not None
        self.assertEqual((snapshot.view, receiver.newest), ({"a": 2, **KEPT}, 2))
        self.assertEqual(
            dict(receiver.drops), {DROP_UNKNOWN_BASELINE: 1, DROP_STALE: 1, DROP_CORRUPT: 1}
        )


# -- the host's ring ------------------------------------------------------------------


# What a view keeps from tick to tick, so that a patch weighs less than the whole.
KEPT = {"name": "a name that does not change"}


class HistoryTests(SynchronousTestCase):
    def test_newest_ack_wins_and_too_old_is_full(self) -> None:
        history = SnapshotHistory()
        for tick in range(1, 40):
            history.encode_for(tick, {"t": tick, **KEPT})
        self.assertEqual(len(history.sent), DEFAULT_HISTORY)
        history.acknowledge(30)
        history.acknowledge(12)  # late: changes nothing
        self.assertEqual(history.acked, 30)
        data = history.encode_for(40, {"t": 40, **KEPT})
        self.assertEqual(decode_snapshot(data, {30: {"t": 30, **KEPT}}).baseline_tick, 30)
        old = SnapshotHistory()
        for tick in range(1, 40):
            old.encode_for(tick, {"t": tick, **KEPT}, 2 if tick == 39 else None)  # 2 left the ring
        data = old.encode_for(40, {"t": 40, **KEPT})
        self.assertEqual(decode_snapshot(data, {}).baseline_tick, None)
        self.assertEqual((old.full_sent, old.deltas_sent), (40, 0))
        self.assertRaises(ValueError, SnapshotHistory, capacity=8)

    def test_a_view_whose_every_value_moved_goes_whole_when_smaller(self) -> None:
        history = SnapshotHistory()
        receiver = SnapshotReceiver()
        for tick in range(1, 4):
            view = {"xs": [tick * 1000 + i for i in range(8)]}
            snapshot = receiver.receive(history.encode_for(tick, view, receiver.newest))
            assert snapshot is not None
            # Every element changed: the patch [8, 0, x0, 1, x1, ...] outweighs the list.
            self.assertIsNone(snapshot.baseline_tick)
            self.assertEqual(snapshot.view, view)
        self.assertEqual((history.full_sent, history.deltas_sent), (3, 0))
        # The patch of tick 2 lost: ticks 3 to 2 + PATCH_RETRY go whole without a
        # patch being weighed, even once the view calms down (one element moves).
        for tick in range(4, 3 + PATCH_RETRY):
            view = {"xs": [3000 + i for i in range(7)] + [tick]}
            snapshot = receiver.receive(history.encode_for(tick, view, receiver.newest))
            assert snapshot is not None
            self.assertEqual((snapshot.baseline_tick, snapshot.view), (None, view))
        # Then patches again, smaller than the whole.
        tick = 3 + PATCH_RETRY
        view = {"xs": [3000 + i for i in range(7)] + [1]}
        data = history.encode_for(tick, view, receiver.newest)
        snapshot = receiver.receive(data)
        assert snapshot is not None
        self.assertEqual((snapshot.baseline_tick, snapshot.view), (tick - 1, view))
        self.assertLess(len(data), len(SnapshotHistory().encode_for(tick, view)))

    def test_recipients_share_bodies(self) -> None:
        view = ARENA.prepare(arena_view(random.Random(3)))
        later = ARENA.prepare(moved(arena_view(random.Random(3)), (1, 2)))
        a, b = SnapshotHistory(ARENA), SnapshotHistory(ARENA)
        a.encode_for(1, view)
        b.encode_for(1, view)
        cache: dict[Any, bytes] = {}
        self.assertEqual(a.encode_for(2, later, 1, cache), b.encode_for(2, later, 1, cache))
        self.assertEqual(len(cache), 1)


# -- sizes and cost -------------------------------------------------------------------


class SizeTests(SynchronousTestCase):
    def test_arena_two_players_moved(self) -> None:
        rng = random.Random(35)
        before = arena_view(rng)
        after = moved(before, (2, 5))
        raw = len(msgpack.packb(after))  # what the host sends today, floats as float 64
        base, view = ARENA.prepare(before), ARENA.prepare(after, checksum=True)
        full = len(encode_snapshot(1235, view))
        delta = len(encode_snapshot(1235, view, 1234, base))
        # Quantised ints halve the full view (334 -> 151 bytes with the checksum);
        # the delta carries two players' x and y and the tick (52 bytes).
        self.assertLess(full, raw * 0.5)
        self.assertLess(delta, full * 0.4)
        self.assertEqual(
            decode_snapshot(
                encode_snapshot(1235, view, 1234, base), {1234: ARENA.quantise(before)}, ARENA
            ).view,
            ARENA.quantise(after),
        )

    def test_encode_cost(self) -> None:
        """Not a limit (the machine is shared): the figures for docs/protocol.md."""
        rng = random.Random(35)
        before = arena_view(rng)
        after = moved(before, (2, 5))
        history = SnapshotHistory(ARENA)
        history.encode_for(1, before)
        history.acknowledge(1)
        number = 2000
        per = timeit.timeit(lambda: history.encode_for(2, after), number=number) / number
        self.assertLess(per, 0.01)


# -- test vectors ---------------------------------------------------------------------

def body_of(snapshot: bytes) -> bytes:
    """The body of a snapshot `[k, base, checksum, body]`: its bytes after the third item."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(snapshot)
    unpacker.read_array_header()
    for _ in range(3):
        unpacker.skip()
    return snapshot[unpacker.tell() :]


def rules_of(vector: dict[str, Any]) -> Quantisation:
    """A vector's quantisation rules, as the welcome's `q` gives them."""
    return Quantisation({k: FLOAT32 if r == "f32" else r for k, r in vector["rules"].items()})


class VectorTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        found = vectors("delta")
        self.assertEqual(len(found), 5)
        for name, v in found.items():
            with self.subTest(name=name):
                rules = rules_of(v)
                base = None if v["baseline"] is None else found[v["baseline"]]
                data = encode_snapshot(
                    v["tick"], rules.prepare(v["view"], checksum=v["checksum"]),
                    None if base is None else base["tick"],
                    None if base is None else rules.prepare(base["view"]),
                )
                self.assertEqual(data.hex(), v["hex"])
                self.assertEqual(body_of(data).hex(), v["body"])
                baselines = {} if base is None else {base["tick"]: rules.quantise(base["view"])}
                decoded = decode_snapshot(unhex(v["hex"]), baselines, rules).view
                self.assertEqual(decoded, rules.quantise(v["view"]))
                self.assertEqual(decoded, v["decoded"])
