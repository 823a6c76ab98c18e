"""Tests for vinom.rooms.messages: the application message schema on the UDP channels."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.vectors import group, unhex, vectors
from vinom.games.interfaces import Seat
from vinom.rooms.client_messages import (
    DRAWN_STEPS,
    MAX_ACTION_ID,
    MAX_CLIENT_MESSAGE,
    MAX_DRAWN_BACK,
    ClientMessage,
    ClientMessageKind,
    decode_client_message,
    drawn_fields,
    encode_action,
    encode_input,
    encode_leave,
    encode_sync,
)
from vinom.rooms.delta import Quantisation, encode_body, encode_snapshot
from vinom.rooms.message_reading import decode_server_message, resolve_relative_snap
from vinom.rooms.messages import (
    SNAP_MARKER,
    Phase,
    encode_error,
    encode_event,
    encode_phase,
    encode_presence,
    encode_shared_state,
    encode_snap,
    encode_state,
    encode_state_for,
    encode_state_header,
    encode_welcome,
    pack_action_id,
    state_with_action_id,
)

# Values msgpack can carry, nested a little.
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=8,
)
# The machine is shared: do not fail a property on slow generation or timing.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class ClientMessageTests(SynchronousTestCase):
    def test_action_round_trip(self) -> None:
        data = encode_action({"move": "N", "from": [1, 2]}, 7)
        self.assertEqual(
            decode_client_message(data),
            ClientMessage(ClientMessageKind.ACTION, {"move": "N", "from": [1, 2]}, 7),
        )

    def test_action_without_id(self) -> None:
        data = msgpack.packb({"t": "action", "a": {"seq": 1}})
        message = decode_client_message(data)
        assert message is not None
        self.assertEqual(message.kind, ClientMessageKind.ACTION)
        self.assertIsNone(message.action_id)

    def test_sync_and_leave(self) -> None:
        sync = decode_client_message(encode_sync())
        leave = decode_client_message(encode_leave())
        assert sync is not None and leave is not None
        self.assertEqual(sync.kind, ClientMessageKind.SYNC)
        self.assertEqual(leave.kind, ClientMessageKind.LEAVE)

    def test_unknown_keys_are_ignored(self) -> None:
        data = msgpack.packb({"t": "action", "a": {}, "i": 1, "future": [1, 2]})
        message = decode_client_message(data)
        assert message is not None
        self.assertEqual(message.action_id, 1)

    def assertDropped(self, data: bytes, reason: str) -> None:
        drops: Counter[str] = Counter()
        self.assertIsNone(decode_client_message(data, drops))
        self.assertEqual(drops, Counter({reason: 1}))

    def test_garbage_is_dropped_by_reason(self) -> None:
        self.assertDropped(b"", "not_msgpack")
        self.assertDropped(b"\xc1", "not_msgpack")  # a reserved msgpack byte
        self.assertDropped(msgpack.packb({"t": "sync"}) + b"\x00", "not_msgpack")
        self.assertDropped(b"\x91" * 2000, "not_msgpack")  # nested too deep
        self.assertDropped(msgpack.packb({1: 2}), "not_msgpack")  # int map key
        self.assertDropped(b"\xa2\xff\xfe", "not_msgpack")  # invalid UTF-8
        self.assertDropped(msgpack.packb([1, 2]), "not_a_map")
        self.assertDropped(msgpack.packb("action"), "not_a_map")
        self.assertDropped(msgpack.packb({"t": "hello"}), "unknown_type")
        self.assertDropped(msgpack.packb({"t": ["action"]}), "unknown_type")
        self.assertDropped(msgpack.packb({"a": {}}), "unknown_type")
        self.assertDropped(msgpack.packb({"t": "action"}), "bad_action")
        self.assertDropped(msgpack.packb({"t": "action", "a": [1]}), "bad_action")
        self.assertDropped(msgpack.packb({"t": "action", "a": {}, "i": "1"}), "bad_action")
        self.assertDropped(msgpack.packb({"t": "action", "a": {}, "i": 1.0}), "bad_action")
        self.assertDropped(msgpack.packb({"t": "action", "a": {}, "i": True}), "bad_action")

    def test_too_large(self) -> None:
        data = encode_action({"pad": "x" * MAX_CLIENT_MESSAGE})
        self.assertDropped(data, "too_large")

    def test_largest_accepted(self) -> None:
        base = len(encode_action({"pad": ""}))
        # A str of 32..255 bytes has a 2-byte header, so adjust for it.
        data = encode_action({"pad": "x" * (MAX_CLIENT_MESSAGE - base - 2)})
        self.assertEqual(len(data), MAX_CLIENT_MESSAGE)
        self.assertIsNotNone(decode_client_message(data))

    @settings(relaxed, max_examples=500)
    @given(st.binary(max_size=300))
    def test_random_bytes_never_raise(self, data: bytes) -> None:
        drops: Counter[str] = Counter()
        message = decode_client_message(data, drops)
        # Either a well-formed message or one counted drop.
        self.assertEqual(sum(drops.values()), 0 if message is not None else 1)

    @settings(relaxed, max_examples=300)
    @given(st.dictionaries(st.sampled_from(["t", "a", "i", "x"]), msgpack_values, max_size=4))
    def test_random_maps_never_raise(self, obj: dict[str, Any]) -> None:
        message = decode_client_message(msgpack.packb(obj))
        if message is not None:
            self.assertIn(obj["t"], ("action", "sync", "leave"))
            if message.kind is ClientMessageKind.ACTION:
                self.assertIs(type(message.action), dict)
                self.assertIn(type(message.action_id), (int, type(None)))


class ServerMessageTests(SynchronousTestCase):
    def test_state_parts_equal_whole(self) -> None:
        view = {"seqs": [1, 2], "mine": "x"}
        header = encode_state_header(5, Phase.PLAYING, 12.5, 40, 2051)
        whole = encode_state_for(header, view, 3)
        self.assertEqual(whole, encode_state(5, Phase.PLAYING, 12.5, view, 3, 40, 2051))
        self.assertEqual(
            msgpack.unpackb(whole),
            {
                "t": "state",
                "v": 5,
                "p": "playing",
                "r": 12.5,
                "k": 40,
                "ts": 2051,
                "s": view,
                "i": 3,
            },
        )

    def test_one_state_for_many_action_ids(self) -> None:
        view = {"seq": {"p-a": 3, "p-b": 9}}
        ids = (None, 0, 7, 200, 2**31, -1, -(2**40))
        for phase in Phase:
            for first in ids:
                message = encode_state(2**40, phase, 0.25, view, first)
                self.assertEqual(
                    message,
                    encode_state_for(encode_state_header(2**40, phase, 0.25), view, first),
                )
                for other in ids:
                    self.assertEqual(
                        state_with_action_id(message, first, other),
                        encode_state(2**40, phase, 0.25, view, other),
                    )
        # A phase given as its plain string packs the same as the enum.
        self.assertEqual(
            encode_state_header(1, "playing", 0.5), encode_state_header(1, Phase.PLAYING, 0.5)
        )
        self.assertEqual(
            encode_state(1, "playing", 0.5, {}), encode_state(1, Phase.PLAYING, 0.5, {})
        )

    def test_a_shared_state_plus_an_action_id_is_that_recipients_state(self) -> None:
        views: list[dict[str, Any]] = [{}, {"seq": {"p-a": 3, "p-b": 9}}, {"x": [1.5, None, "é"]}]
        ids = (None, 0, 7, 200, 2**31, -1, -(2**40))
        for phase in (*Phase, "playing", "a-phase-of-its-own"):
            for version in (0, 1, 2**40):
                for remaining in (None, 0.0, 0.25, 7):
                    for view in views:
                        shared = encode_shared_state(version, phase, remaining, view)
                        for action_id in ids:
                            self.assertEqual(
                                shared + pack_action_id(action_id),
                                encode_state(version, phase, remaining, view, action_id),
                            )
        self.assertRaises(TypeError, encode_shared_state, 1, Phase.PLAYING, None, {"x": object()})

    def test_state_round_trip_with_nils(self) -> None:
        message = decode_server_message(encode_state(0, Phase.WAITING, None, {}))
        self.assertEqual(
            message,
            {"t": "state", "v": 0, "p": "waiting", "r": None, "k": 0, "ts": 0, "s": {}, "i": None},
        )

    def test_state_without_tick_and_time_still_decodes(self) -> None:
        # A state from a server that sends no "k" and "ts" (they came later).
        old = msgpack.packb({"t": "state", "v": 1, "p": "playing", "r": None, "s": {}, "i": None})
        self.assertEqual(decode_server_message(old)["v"], 1)  # type: ignore[index]
        for bad in ({"k": "1"}, {"ts": 1.5}, {"k": True}):
            data = msgpack.packb({"t": "state", "v": 1, "p": "playing", "s": {}, **bad})
            self.assertIsNone(decode_server_message(data), bad)

    def test_state_size_for_a_small_view(self) -> None:
        # The play benchmark's state (two counters and a version) stays near 50
        # bytes, with 12 for the tick number and the server time of a long match.
        data = encode_state(
            123456, Phase.PLAYING, 9.75, {"a": 1000, "b": 1001}, 1000, 60_000, 3_600_000
        )
        self.assertLessEqual(len(data), 68)

    def test_welcome(self) -> None:
        seats = [Seat("p-a", "Ann", 0), Seat("p-b", "Bob", 1)]
        message = decode_server_message(encode_welcome("m-1", "maze", 1, seats, False))
        self.assertEqual(
            message,
            {
                "t": "welcome",
                "match": "m-1",
                "game": "maze",
                "seat": 1,
                "players": [
                    {"id": "p-a", "name": "Ann", "seat": 0},
                    {"id": "p-b", "name": "Bob", "seat": 1},
                ],
                "reconnected": False,
            },
        )
        titled = decode_server_message(
            encode_welcome("m-1", "owedrahn", 0, seats, False, "Owe Drahn")
        )
        assert titled is not None
        self.assertEqual(titled["title"], "Owe Drahn")

    def test_phase(self) -> None:
        self.assertEqual(
            decode_server_message(encode_phase(Phase.COUNTDOWN, 3, 5.0)),
            {"t": "phase", "p": "countdown", "v": 3, "r": 5.0},
        )
        finished = decode_server_message(
            encode_phase(Phase.FINISHED, 9, None, result={"winners": ["p-a"], "reason": "won"})
        )
        assert finished is not None
        self.assertEqual(finished["result"], {"winners": ["p-a"], "reason": "won"})
        self.assertNotIn("reason", finished)
        aborted = decode_server_message(
            encode_phase(Phase.ABORTED, 2, None, reason="players_missing")
        )
        assert aborted is not None
        self.assertEqual(aborted["reason"], "players_missing")
        self.assertNotIn("result", aborted)

    def test_event_error_presence(self) -> None:
        self.assertEqual(
            decode_server_message(encode_event(4, "collected", {"value": 5})),
            {"t": "event", "v": 4, "e": "collected", "d": {"value": 5}},
        )
        self.assertEqual(
            decode_server_message(encode_error("stale", "moved already", 17)),
            {"t": "error", "code": "stale", "message": "moved already", "i": 17},
        )
        self.assertEqual(
            decode_server_message(encode_presence("p-b", "disconnected")),
            {"t": "presence", "id": "p-b", "status": "disconnected"},
        )

    def test_client_decoder_rejects_wrong_shapes(self) -> None:
        bad: list[Any] = [
            {"t": "state", "v": "1", "p": "playing", "r": None, "s": {}, "i": None},
            {"t": "state", "v": True, "p": "playing", "r": None, "s": {}, "i": None},
            {"t": "state", "v": 1, "p": "playing", "r": None, "s": [], "i": None},
            {"t": "state", "v": 1, "p": "playing", "s": {}, "i": None, "r": "soon"},
            {"t": "welcome", "match": "m", "game": "g", "seat": 0, "players": [], "reconnected": 1},
            {"t": "error", "code": "x"},
            {"t": "mystery"},
            {"t": {}},
            [1, 2],
        ]
        for obj in bad:
            self.assertIsNone(decode_server_message(msgpack.packb(obj)), obj)
        self.assertIsNone(decode_server_message(b"\xc1"))

    @settings(relaxed, max_examples=300)
    @given(st.binary(max_size=200))
    def test_client_decoder_never_raises(self, data: bytes) -> None:
        message = decode_server_message(data)
        if message is not None:
            self.assertIn(
                message["t"], ("state", "snap", "welcome", "phase", "event", "error", "presence")
            )


class RealTimeMessageTests(SynchronousTestCase):
    """The ``input`` and ``snap`` messages, byte for byte as vectors/protocol.json (docs/protocol.md
    §14.1) has them."""

    def test_snap_vectors(self) -> None:
        """The one ``snap`` form (docs/protocol.md §14), with a §16.1 body and a schema
        one: the vectors' bytes from their fields, and their fields again from the
        bytes and the baseline's fields."""
        snaps = [v for v in vectors("messages").values() if v["kind"] == "relative_snap"]
        self.assertEqual([v["base"] is None for v in snaps], [True, False, True, False])
        schema = group("schema")["vectors"]
        self.assertEqual([v["snap"]["d"] for v in snaps[2:]], [schema[0]["hex"], schema[1]["hex"]])
        # The §16.1 bodies: the views of their vectors, the delta against the full one.
        full, delta = snaps[:2]
        base = Quantisation().prepare(full["d_view"])
        self.assertEqual(encode_snapshot(full["d_tick"], base).hex(), full["snap"]["d"])
        view = Quantisation().prepare(delta["d_view"])
        body = encode_body(base, view)
        self.assertEqual(encode_snapshot(delta["d_tick"], view, full["d_tick"], base, body).hex(),
                         delta["snap"]["d"])  # fmt: skip
        for v in snaps:
            fields, base_fields = v["snap"], v["base"]
            own = (fields["v"], fields["ts"], fields["r"])
            against = None if base_fields is None else (
                base_fields["v"], base_fields["ts"], base_fields["r"])  # fmt: skip
            data = encode_snap(own, fields["i"], fields["ik"], v["d_tick"], against,
                               unhex(fields["d"]))  # fmt: skip
            self.assertEqual(data.hex(), v["hex"], v["name"])
            read = decode_server_message(data)
            assert read is not None
            self.assertEqual(resolve_relative_snap(read, v["d_tick"], against), own)
            self.assertEqual(read, {"t": "snap", "v": fields["v"], "ts": fields["ts"],
                                    "r": None if fields["r"] is None else fields["r"] / 1000,
                                    "i": fields["i"], "ik": fields["ik"],
                                    "d": unhex(fields["d"])})  # fmt: skip
        # A delta's numbers take 6 bytes.
        self.assertEqual(len(unhex(snaps[3]["hex"])) - len(unhex(snaps[3]["snap"]["d"])), 6)

    @settings(deadline=None)
    @given(
        st.integers(0, 2**40), st.integers(0, 2**40), st.none() | st.integers(0, 2**40),
        st.integers(0, 2**40), st.integers(0, 2**40), st.none() | st.integers(0, 2**40),
        st.booleans(), st.none() | st.integers(-(2**40), 2**40),
        st.none() | st.integers(0, 2**40), st.integers(0, 2**40),
    )  # fmt: skip
    def test_relative_snaps_give_back_their_fields(
        self, version: int, server_time: int, left: int | None, dv: int, dts: int,
        left_b: int | None, delta: bool, action_id: int | None, input_tick: int | None,
        tick: int,
    ) -> None:  # fmt: skip
        """Whatever the fields, read against the same baseline's, a relative snap gives
        them back (a baseline's numbers are never above its successors')."""
        own = (version + dv, server_time + dts, left)
        base = (version, server_time, left_b) if delta else None
        data = encode_snap(own, action_id, input_tick, tick, base, b"\x01")
        read = decode_server_message(data)
        assert read is not None
        self.assertEqual(resolve_relative_snap(read, tick, base), own)
        self.assertEqual((read["i"], read["ik"], read["d"]), (action_id, input_tick, b"\x01"))

    def test_numbers_a_room_never_makes_are_refused(self) -> None:
        """A version or a time before the baseline's, a negative time left in a full
        one, a number of 2^53: a bug of the caller (a room's never go back, and an
        action id beyond `MAX_ACTION_ID` is dropped as it comes in)."""
        base = (10, 1000, 5000)
        for own, against in (((9, 1000, 5000), base), ((10, 999, 5000), base),
                             ((10, 1000, -1), None), ((2**53, 0, None), None)):  # fmt: skip
            self.assertRaises(ValueError, encode_snap, own, None, None, 3, against, b"")
        encode_snap((10, 1000, -1), None, None, 3, base, b"")
        self.assertRaises(ValueError, encode_snap, (1, 0, None), -(2**52), None, 3, None, b"")
        self.assertEqual(encode_snap((1, 0, None), 1 - 2**52, None, 3, None, b"")[0], SNAP_MARKER)
        for action_id in (2**52, -(2**52), 2**60):
            drops: dict[str, int] = {}
            data = msgpack.packb({"t": "action", "a": {}, "i": action_id})
            self.assertIsNone(decode_client_message(data, drops))
            self.assertEqual(drops, {"bad_action": 1})
        self.assertIsNotNone(decode_client_message(msgpack.packb(
            {"t": "action", "a": {}, "i": -MAX_ACTION_ID})))  # fmt: skip

    def test_malformed_snaps_are_not_messages(self) -> None:
        vector = vectors("messages")["relative_snap_msgpack_delta"]
        good = unhex(vector["hex"])
        self.assertIsNotNone(decode_server_message(good))
        numbers_end = len(good) - len(unhex(vector["snap"]["d"]))  # where d begins
        for cut in range(1, numbers_end):
            self.assertIsNone(decode_server_message(good[:cut]), cut)
        nine = b"\xc1" + b"\x80" * 8 + b"\x00" + b"\x00" * 4
        self.assertIsNone(decode_server_message(nine))
        eight = b"\xc1" + b"\x80" * 7 + b"\x00" + b"\x00" * 4
        self.assertEqual(decode_server_message(eight)["relative"][0], 0)  # type: ignore[index]
        too_big = b"\xc1" + b"\x80" * 7 + b"\x10" + b"\x00" * 4  # 2^53
        self.assertIsNone(decode_server_message(too_big))
        below = b"\xc1" + b"\xff" * 7 + b"\x0f" + b"\x00" * 4  # 2^53 - 1
        self.assertEqual(decode_server_message(below)["relative"][0],  # type: ignore[index]
                         2**53 - 1)  # fmt: skip
        # The array a host of game protocol 3 sent: not a message.
        self.assertIsNone(decode_server_message(msgpack.packb(
            [5, 300, None, None, None, b"\x94\x03\xc0\xc0\x80"])))  # fmt: skip

    def test_an_input_asks_for_nothing(self) -> None:
        """The keys a client of game protocol 3 asked with (``"vs"``, ``"pk"``) are
        ignored: every snap is the one form."""
        plain = decode_client_message(encode_input(3, [(5, {"m": 1})]))
        for asked in ({"vs": 1}, {"vs": 1, "pk": 1}, {"vs": 1, "pk": 2}):
            data = msgpack.packb({"t": "input", "a": 3, "x": [[5, {"m": 1}]], **asked})
            self.assertEqual(decode_client_message(data), plain, asked)
        self.assertEqual(list(msgpack.unpackb(encode_input(None, []))), ["t", "a", "x"])

    def test_input_vectors_and_decoding(self) -> None:
        found = [v for v in vectors("messages").values() if v["kind"] == "input"]
        self.assertEqual([v["name"] for v in found], ["input", "input_drawn"])
        for v in found:
            message = v["message"]
            inputs = [(pair[0], pair[1]) for pair in message["x"]]
            seen = {int(k): t for k, t in v.get("seen", {}).items()}
            self.assertEqual(encode_input(message["a"], inputs, seen).hex(), v["hex"])
            decoded = decode_client_message(unhex(v["hex"]))
            assert decoded is not None
            self.assertEqual(decoded.kind, ClientMessageKind.INPUT)
            self.assertEqual((decoded.snap_ack, decoded.inputs, decoded.action_id),
                             (message["a"], tuple(inputs), None))  # fmt: skip
            self.assertEqual(decoded.drawn, seen or None, v["name"])

    def test_drawn_fields(self) -> None:
        """An input's drawn moment as b and f: 256ths of a tick rounded down, never
        in a tick after the input's nor more than 255 ticks before it, nor before tick 0."""
        self.assertEqual(drawn_fields(9, 5.375), (4, 96))
        self.assertEqual(drawn_fields(9, 9.0), (0, 0))
        self.assertEqual(drawn_fields(9, 4.999999), (5, 255))
        self.assertEqual(drawn_fields(300, 45.5), (255, 128))
        for tick, seen in ((9, 10.0), (300, 44.9), (9, None), (9, math.nan), (9, math.inf)):
            self.assertIsNone(drawn_fields(tick, seen), (tick, seen))
        doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
        self.assertIn(f"(`b` 0 to min(k, {MAX_DRAWN_BACK}), `f` 0 to {DRAWN_STEPS - 1}; "
                      "`drawn_fields`)", doc)  # fmt: skip
        # An input without one goes as a pair of 2, as before.
        data = encode_input(None, [(9, {}), (10, {})], {10: 8.5})
        self.assertEqual(msgpack.unpackb(data)["x"], [[9, {}], [10, {}, 2, 128]])

    def test_malformed_inputs_are_counted_drops(self) -> None:
        for x in (
            [[1, {}]] * 9,  # more than 8
            [[1.0, {}]],  # a non-int tick
            [[-1, {}]],
            [[1, [1]]],  # a non-map input
            [[1]],
            [[1, {}, 0]],  # 3 or 5 elements
            [[1, {}, 0, 0, 0]],
            [[5, {}, 6, 0]],  # drawn before tick 0
            [[300, {}, 256, 0]],  # more than 255 ticks back
            [[5, {}, -1, 0]],  # after the input's tick
            [[5, {}, 1, 256]],  # a fraction of 256/256
            [[5, {}, 1, 0.5]],
            [[5, {}, None, 1]],
            "x",
        ):
            drops: dict[str, int] = {}
            data = msgpack.packb({"t": "input", "a": None, "x": x})
            self.assertIsNone(decode_client_message(data, drops))
            self.assertEqual(drops, {"bad_input": 1}, x)
        drops = {}
        data = msgpack.packb({"t": "input", "a": "1", "x": []})
        self.assertIsNone(decode_client_message(data, drops))
        self.assertEqual(drops, {"bad_input": 1})

    def test_the_welcome_sends_quantisation_only_when_there_is_some(self) -> None:
        seats = [Seat("a", "A", 0)]
        plain = decode_server_message(encode_welcome("m", "g", 0, seats, False))
        self.assertNotIn("q", plain or {})
        rules = decode_server_message(
            encode_welcome("m", "g", 0, seats, False, quantisation=(("p.*", 0.01), ("v", "f32")))
        )
        self.assertEqual((rules or {})["q"], [["p.*", 0.01], ["v", "f32"]])
