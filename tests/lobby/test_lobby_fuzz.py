"""Hostile field values in every lobby frame: `invalid_field` (or another frame error),
never an exception, never a value the lobby cannot store, log or send back.

`CodecFuzzTests` drives the sans-I/O codec with hypothesis: every request
type, each of its fields (and `id`) set to values of every JSON type, among
them lone surrogates (`"\\ud800"`), integers of hundreds of digits, `1e400`,
deep nesting and long strings, written as the JSON text a client sends.
`RedisLobbyFuzzTests` sends the cases the issue found (a lone surrogate in
`party_join`'s code, in `reconnect`'s `player_id`, a 400-digit rating) to a
whole server backed by a real Redis (tests/support/redis_server.py) over real TLS:
each is answered `invalid_field`, counted in `/metrics`'s source, nothing is
logged as a failure, and the connection keeps working.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.store.test_store import raw_connection
from tests.support.lobby_players import connect_player, connect_raw
from tests.support.redis_server import start_redis
from tests.support.servers import start_server
from tests.support.waiting import until
from vinom.lobby import errors
from vinom.lobby.codec import FrameError, encode_frame, error_frame, parse_frame, request_id_of
from vinom.lobby.request_types import MAX_RATING, REQUEST_TYPES

# The fields each request type reads (docs/lobby.md), and `id`.
FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("name",),
    "queue": ("game", "rating", "queue"),
    "cancel": (),
    "ping": (),
    "reconnect": ("player_id", "secret"),
    "spectate": ("match_id", "code"),
    "get_room_list": ("game", "offset"),
    "create_room": ("game", "private", "size", "spectators"),
    "join_room": ("room_id", "code"),
    "leave_room": (),
    "add_bot": (),
    "party_create": (),
    "party_join": ("code",),
    "party_leave": (),
    "leaderboard": ("game", "queue", "limit", "around"),
    "history": ("limit",),
}
# A valid value of each field, for the fields not being fuzzed.
VALID: dict[str, Any] = {
    "name": "Ann", "game": "maze", "rating": 1500, "queue": "ranked", "player_id": "p-1",
    "secret": "s" * 20, "offset": 0, "private": False, "size": 2, "room_id": "r-1",
    "code": "ABC234", "id": 7, "limit": 10, "around": False,
}  # fmt: skip

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d", "Ann\ud800"])
HUGE_INTS = st.one_of(
    st.integers(min_value=10**18, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(10**18)),
    st.just(10**399),
)
# JSON text of numbers Python's json.dumps will not write (1e400 reads as inf).
ODD_NUMBERS = st.sampled_from(
    ["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "1" * 400, "-0", "1.5e308"]
)
DEEP = st.integers(min_value=50, max_value=5000).map(lambda n: "[" * n + "]" * n)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), SURROGATES, HUGE_INTS, st.text(min_size=1000, max_size=5000),
)  # fmt: skip
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# A field's value as JSON text: any JSON value, or one of the raw texts above.
RAW_VALUES = st.one_of(JSON_VALUES.map(json.dumps), ODD_NUMBERS, DEEP)


def frame_text(kind: str, fields: dict[str, str]) -> bytes:
    """A frame's JSON text, with each value already JSON text (ASCII: json.dumps)."""
    members = [f'"type":{json.dumps(kind)}'] + [
        f"{json.dumps(name)}:{value}" for name, value in fields.items()
    ]
    return ("{" + ",".join(members) + "}").encode("ascii")


def assert_safe(case: SynchronousTestCase, line: bytes) -> None:
    """`line` parses to a request the lobby can use, or to a frame error it can send."""
    result = parse_frame(line)
    request_id_of(line)  # never raises either
    if isinstance(result, FrameError):
        case.assertIn(result.code, errors.ALL_CODES)
        encode_frame(error_frame(result.code, result.message, result.request_id))
        return
    for name in getattr(type(result), "__attrs_attrs__", ()):
        check_value(case, name.name, getattr(result, name.name))


def check_value(case: SynchronousTestCase, name: str, value: object) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # no lone surrogate reaches the lobby (Redis, logs, peers)
        case.assertLessEqual(len(value), 1000, name)
    elif isinstance(value, float):
        case.assertTrue(math.isfinite(value), name)
        case.assertLessEqual(abs(value), MAX_RATING, name)
    elif isinstance(value, int) and not isinstance(value, bool):
        case.assertLessEqual(abs(value), 2**53, name)
    else:
        case.assertIsInstance(value, (bool, type(None)), name)


class CodecFuzzTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(
        kind=st.sampled_from(sorted(REQUEST_TYPES)),
        data=st.data(),
    )
    def test_every_frame_type_with_hostile_values_of_every_json_type(
        self, kind: str, data: st.DataObject
    ) -> None:
        names = (*FIELDS[kind], "id")
        fuzzed = data.draw(st.sets(st.sampled_from(names), min_size=1))
        fields = {}
        for name in names:
            if name in fuzzed:
                fields[name] = data.draw(RAW_VALUES, label=name)
            elif name in VALID and not (kind == "join_room" and name == "code"):
                fields[name] = json.dumps(VALID[name])
        assert_safe(self, frame_text(kind, fields))

    def test_the_issues_cases_are_invalid_field(self) -> None:
        cases = [
            ("party_join", {"code": json.dumps("\ud800")}),
            ("reconnect", {"player_id": json.dumps("\ud800"), "secret": '"x"'}),
            ("reconnect", {"player_id": '"p-1"', "secret": json.dumps("s\udfff")}),
            ("queue", {"game": '"maze"', "rating": "9" * 400}),
            ("queue", {"game": '"maze"', "rating": "-" + "9" * 400}),
            ("queue", {"game": '"maze"', "rating": "1e400"}),
            ("queue", {"game": json.dumps("ma\ud800ze")}),
            ("queue", {"game": '"maze"', "queue": json.dumps("\ud800")}),
            ("hello", {"name": json.dumps("Ann\ud800")}),
            ("join_room", {"room_id": json.dumps("\udc00")}),
            ("join_room", {"code": json.dumps("\udc00")}),
            ("create_room", {"game": json.dumps("\udc00")}),
            ("create_room", {"game": '"maze"', "size": "9" * 400}),
            ("get_room_list", {"game": json.dumps("\udc00")}),
            ("get_room_list", {"offset": "9" * 400}),
            ("ping", {"id": json.dumps("\ud800")}),
        ]
        for kind, fields in cases:
            result = parse_frame(frame_text(kind, fields))
            self.assertIsInstance(result, FrameError, (kind, fields))
            assert isinstance(result, FrameError)
            self.assertEqual(result.code, errors.INVALID_FIELD, (kind, fields))




class RedisLobbyFuzzTests(TestCase):
    timeout = 60

    async def test_hostile_strings_are_invalid_field_and_the_connection_goes_on(self) -> None:
        redis = await start_redis(self)
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        server = await start_server(
            self, "--redis", redis.url, "--token-key-file", key_file,
            # More errors than the default 10 before the connection is closed.
            "--limit", "max-protocol-errors=100", ports=1,
        )  # fmt: skip
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        player = await connect_player(self, server.lobby, "Ann")
        hostile = [
            {"type": "party_join", "code": "\ud800"},
            {"type": "party_join", "code": "AB\udfffC"},
            {"type": "queue", "game": "maze", "rating": 10**400},
            {"type": "queue", "game": "maze\ud800"},
            {"type": "join_room", "code": "\ud800"},
            {"type": "get_room_list", "game": "\ud800"},
        ]
        for _ in range(3):
            for frame in hostile:
                reply = await player.request(frame)
                self.assertEqual((reply["type"], reply["code"]), ("error", "invalid_field"), frame)
        # The connection keeps working: a real request is served.
        party = await player.request({"type": "party_create"})
        self.assertEqual(party["type"], "party", party)
        self.assertEqual((await player.request({"type": "party_leave"}))["type"], "party_left")
        # A reconnect with a surrogate player id, as a new connection's first request;
        # then the same connection says hello.
        newcomer = await connect_raw(self, server.lobby)
        for player_id, secret in (("\ud800", "x" * 20), ("p-1", "\udfff" * 3)):
            reply = await newcomer.request(
                {"type": "reconnect", "player_id": player_id, "secret": secret}
            )
            self.assertEqual((reply["type"], reply["code"]), ("error", "invalid_field"))
        self.assertEqual(
            (await newcomer.request({"type": "hello", "name": "Cy"}))["type"], "welcome"
        )
        lobby = server.service("lobby")
        self.assertEqual(lobby.errors_sent["invalid_field"], 3 * len(hostile) + 2)
        self.assertEqual(lobby.errors_sent["internal_error"], 0)
        loud = [e for e in logged if "log_failure" in e or e.get("log_level") in
                (LogLevel.warn, LogLevel.error, LogLevel.critical)]  # fmt: skip
        self.assertEqual(loud, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        # The players leave, and the lobby forgets them, while Redis is still there.
        keys = await raw_connection(self, redis)
        for client in (player, newcomer):
            assert client.transport is not None
            client.transport.loseConnection()
            await client.closed
        async def forgotten() -> bool:
            return not await keys.keys("vinom:player:*")

        await until(forgotten, "the players forgotten in Redis")
