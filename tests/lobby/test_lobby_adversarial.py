"""Adversarial, property-based tests: whatever a client sends, the lobby stays well-formed.

Arbitrary bytes, arbitrary JSON and arbitrary request-shaped objects are fed
to a `LobbyProtocol` (and so its `LobbyConnection`) in arbitrary chunks. The
protocol must never raise, every byte it writes must be complete
newline-terminated JSON objects of a known frame type, every error frame must
carry a known code, a message and an id, and the lobby's shared state must
stay consistent (counts, queues).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.support.doubles import FakeUDPReactor, PlaceholderGameHostFactory, PlaceholderTokenIssuer
from vinom.games.rules import GameCatalogue
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.lobby import errors
from vinom.lobby.backends import LobbyBackends
from vinom.lobby.config import LobbyConfig
from vinom.lobby.request_types import GAME_PROTOCOL
from vinom.lobby.server import LobbyFactory
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.store.memory import MemoryPlayerStore

SERVER_TYPES = {"welcome", "queued", "cancelled", "match_found", "error", "pong"}
GAMES = GameCatalogue.sized({"tictactoe": 2, "maze": 3})


def make_lobby(config: LobbyConfig) -> tuple[LobbyFactory, MemoryMatchmaker, Clock]:
    clock = Clock()
    matchmaker = MemoryMatchmaker(GAMES, clock)
    store = MemoryPlayerStore()
    hosting = GameHostingService(
        PortAllocator([7400]), PlaceholderGameHostFactory(FakeUDPReactor(), "", "127.0.0.1"),
        store=store, clock=clock,
    )
    factory = LobbyFactory(
        config=config,
        games=GAMES,
        backends=LobbyBackends(matchmaker, hosting, store, PlaceholderTokenIssuer()),
        clock=clock,
    )
    return factory, matchmaker, clock


def check_output(test: SynchronousTestCase, data: bytes) -> list[dict[str, Any]]:
    """Every frame well-formed; returns them."""
    if data:
        test.assertTrue(data.endswith(b"\n"), data[-100:])
    frames = []
    for line in data.splitlines():
        test.assertLessEqual(len(line), 4096)
        frame = json.loads(line)
        test.assertIsInstance(frame, dict)
        test.assertIn(frame.get("type"), SERVER_TYPES)
        if frame["type"] == "error":
            test.assertIn(frame["code"], errors.ALL_CODES)
            test.assertIsInstance(frame["message"], str)
            test.assertTrue(frame["message"])
            test.assertIn("id", frame)
            test.assertIsInstance(frame["id"], str | int | None)
        frames.append(frame)
    return frames


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

request_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "queue", "cancel", "ping", "reconnect", "x", ""])},
    optional={
        "id": json_values,
        "name": json_values,
        "game": st.sampled_from(["tictactoe", "maze", "chess", ""]) | json_values,
        "rating": json_values,
        "player_id": json_values,
        "secret": json_values,
    },
)


def _valid_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= 2**53 - 1
    return isinstance(value, str) and len(value) <= 64


class ArbitraryInputTests(SynchronousTestCase):
    def feed(self, chunks: list[bytes], config: LobbyConfig | None = None) -> list[dict[str, Any]]:
        factory, matchmaker, clock = make_lobby(config or LobbyConfig())
        factory.startService()
        peer = IPv4Address("TCP", "192.0.2.1", 5000)
        protocol = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        for chunk in chunks:
            protocol.dataReceived(chunk)
            clock.advance(0.01)
        frames = check_output(self, transport.value())
        protocol.connectionLost(Failure(ConnectionDone()))
        # Nothing is left behind by a connection that is gone.
        self.assertEqual(factory.connection_count, 0)
        self.assertEqual(matchmaker.queue_length("tictactoe"), 0)
        self.assertEqual(matchmaker.queue_length("maze"), 0)
        return frames

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.binary(max_size=300), max_size=20))
    def test_arbitrary_bytes(self, chunks: list[bytes]) -> None:
        self.feed(chunks)

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=120).map(lambda b: b + b"\n"), max_size=30))
    def test_arbitrary_lines_with_a_small_frame_limit(self, lines: list[bytes]) -> None:
        frames = self.feed(lines, LobbyConfig(max_frame_bytes=64, max_protocol_errors=5))
        errors_seen = [f for f in frames if f["type"] == "error"]
        counted = [f for f in errors_seen if f["code"] not in errors.NOT_COUNTED]
        # The connection closes at the limit: never more counted errors than allowed.
        self.assertLessEqual(len(counted), 5)

    @settings(max_examples=120, deadline=None)
    @given(st.lists(json_values, max_size=15))
    def test_arbitrary_json(self, values: list[Any]) -> None:
        self.feed([json.dumps(v).encode() + b"\n" for v in values])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(request_like, max_size=25), st.integers(1, 4))
    def test_arbitrary_request_shaped_objects(self, requests: list[Any], per_chunk: int) -> None:
        lines = [json.dumps(r).encode() + b"\n" for r in requests]
        chunks = [b"".join(lines[i : i + per_chunk]) for i in range(0, len(lines), per_chunk)]
        frames = self.feed(chunks)
        # Every request frame gets exactly one reply, in order, until the connection closes.
        replies = [f for f in frames if f.get("code") != errors.TOO_MANY_ERRORS]
        if len(replies) == len(frames):
            self.assertEqual(len(replies), len(requests))
        else:
            self.assertLess(len(replies), len(requests) + 1)
        for request, reply in zip(requests, replies, strict=False):
            if reply["type"] != "error" or reply["code"] != errors.INVALID_FIELD:
                expected_id = request.get("id") if _valid_id(request.get("id")) else None
                self.assertEqual(reply.get("id"), expected_id)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(request_like, max_size=25), st.lists(st.binary(max_size=80), max_size=5))
    def test_garbage_between_valid_frames(self, requests: list[Any], garbage: list[bytes]) -> None:
        lines = [json.dumps(r).encode() + b"\n" for r in requests]
        for index, junk in enumerate(garbage):
            lines.insert((index * 7) % (len(lines) + 1), junk + b"\n")
        self.feed([b"".join(lines)])


class OtherPlayersAreUnaffectedTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=200), max_size=15))
    def test_queued_players_keep_their_places(self, chunks: list[bytes]) -> None:
        factory, matchmaker, _ = make_lobby(LobbyConfig())
        queued = []
        for n in range(2):
            peer = IPv4Address("TCP", "198.51.100.1", 6000 + n)
            protocol = factory.buildProtocol(peer)
            transport = StringTransport(peerAddress=peer)
            protocol.makeConnection(transport)
            protocol.dataReceived(
                b'{"type":"hello","name":"P%d","protocol":%d}\n{"type":"queue","game":"maze"}\n'
                % (n, GAME_PROTOCOL)
            )
            welcome = json.loads(transport.value().splitlines()[0])
            queued.append(welcome["player_id"])
        peer = IPv4Address("TCP", "203.0.113.66", 6666)
        attacker = factory.buildProtocol(peer)
        attacker.makeConnection(StringTransport(peerAddress=peer))
        for chunk in chunks:
            attacker.dataReceived(chunk)
        attacker.connectionLost(Failure(ConnectionDone()))
        positions = [self.successResultOf(matchmaker.position(p or "")) for p in queued]
        self.assertEqual(positions, [1, 2])
