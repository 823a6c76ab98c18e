"""The UDP relay's sans-I/O core (vinom.gateway.relay_core), driven by a Clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase

from vinom.gateway.relay_core import (
    Action,
    CloseRoute,
    OpenRoute,
    RelayCore,
    ToHost,
    ToPlayer,
)
from vinom.protocol.route_token import ROUTE_TOKEN_SIZE, RouteTokenIssuer

KEY = bytes(range(32))
WALL = 1_700_000_000.0
HOST = ("10.0.0.7", 7400)
ALICE = ("198.51.100.1", 50000)
MALLORY = ("203.0.113.9", 40000)


class RelayCoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.wall = WALL
        self.core = RelayCore(KEY, wall_clock=lambda: self.wall, idle_timeout=30.0,
                              max_routes=3)  # fmt: skip
        self.issuer = RouteTokenIssuer(KEY, lifetime=60.0)

    def token(self, host: tuple[str, int] = HOST) -> bytes:
        return self.issuer.issue(host[0], host[1], self.wall)

    def player(self, data: bytes, address: tuple[str, int], listener: int = 0) -> list[Action]:
        return self.core.player_datagram(data, address, listener, self.clock.seconds())

    def advance(self, seconds: float) -> list[Action]:
        """Move the clock, running the core's timer as the adapter would."""
        actions: list[Action] = []
        end = self.clock.seconds() + seconds
        while (when := self.core.get_timer()) is not None and when <= end:
            self.clock.advance(max(0.0, when - self.clock.seconds()))
            actions += self.core.handle_timer(self.clock.seconds())
        self.clock.advance(end - self.clock.seconds())
        return actions

    def open_route(self, token: bytes, address: tuple[str, int] = ALICE) -> int:
        actions = self.player(token + b"hello", address)
        self.assertEqual(len(actions), 2, actions)
        opened, forwarded = actions
        assert isinstance(opened, OpenRoute)
        self.assertEqual(opened.host, HOST)
        self.assertEqual(forwarded, ToHost(opened.route_id, b"hello", HOST))
        return opened.route_id

    def test_a_valid_token_opens_a_route_and_the_host_answers_its_owner(self) -> None:
        token = self.token()
        route = self.open_route(token)
        self.assertEqual(self.player(token + b"again", ALICE), [ToHost(route, b"again", HOST)])
        self.assertEqual(self.core.host_datagram(route, b"reply", HOST),
                         [ToPlayer(0, b"reply", ALICE)])  # fmt: skip
        self.assertEqual((self.core.to_host, self.core.to_player), (2, 1))
        self.assertEqual(self.core.route_count, 1)

    def test_the_reply_leaves_by_the_public_port_the_player_used(self) -> None:
        token = self.token()
        actions = self.player(token + b"x", ALICE, listener=2)
        route = actions[0].route_id  # type: ignore[union-attr]
        self.assertEqual(self.core.host_datagram(route, b"r", HOST), [ToPlayer(2, b"r", ALICE)])

    def test_two_players_get_two_routes(self) -> None:
        first = self.open_route(self.token(), ALICE)
        second = self.open_route(self.token(), ("198.51.100.2", 50000))
        self.assertNotEqual(first, second)

    def test_the_same_token_from_another_address_is_dropped_and_counted(self) -> None:
        token = self.token()
        route = self.open_route(token)
        self.assertEqual(self.player(token + b"take over", MALLORY), [])
        # Another port of the same machine is another address too (a NAT rebinding).
        self.assertEqual(self.player(token + b"rebound", (ALICE[0], ALICE[1] + 1)), [])
        self.assertEqual(self.core.drops["address_mismatch"], 2)
        # The owner's route is untouched, and the host's replies still go to it only.
        self.assertEqual(self.core.host_datagram(route, b"r", HOST), [ToPlayer(0, b"r", ALICE)])

    def test_a_forged_token_is_dropped_and_counted(self) -> None:
        token = bytearray(self.token())
        token[20] ^= 1
        self.assertEqual(self.player(bytes(token) + b"x", MALLORY), [])
        other_key = RouteTokenIssuer(bytes(32)).issue(*HOST, self.wall)
        self.assertEqual(self.player(other_key + b"x", MALLORY), [])
        self.assertEqual(self.core.drops["bad_token"], 2)
        self.assertEqual(self.core.route_count, 0)

    def test_an_expired_token_opens_nothing(self) -> None:
        token = self.token()
        self.wall += 60.0
        self.assertEqual(self.player(token + b"x", ALICE), [])
        self.assertEqual(self.core.drops["expired"], 1)

    def test_an_open_route_outlives_its_tokens_expiry_while_in_use(self) -> None:
        token = self.token()
        route = self.open_route(token)
        for _ in range(10):
            self.wall += 20.0
            self.advance(20.0)
            self.assertEqual(self.player(token + b"x", ALICE), [ToHost(route, b"x", HOST)])

    def test_short_or_unknown_datagrams_are_malformed(self) -> None:
        token = self.token()
        for data in (b"", b"\x01", token, b"\x02" + token[1:] + b"x"):
            self.assertEqual(self.player(data, MALLORY), [])
        self.assertEqual(self.core.drops["malformed"], 4)
        route = self.open_route(token)
        self.assertEqual(self.player(token, ALICE), [])  # a token with nothing after it
        self.assertEqual(self.core.drops["malformed"], 5)
        self.assertEqual(self.core.host_datagram(route, b"r", HOST), [ToPlayer(0, b"r", ALICE)])

    def test_only_the_routes_host_is_heard_on_its_socket(self) -> None:
        route = self.open_route(self.token())
        self.assertEqual(self.core.host_datagram(route, b"spoof", ("10.0.0.7", 7401)), [])
        self.assertEqual(self.core.host_datagram(route, b"spoof", MALLORY), [])
        self.assertEqual(self.core.host_datagram(route + 1, b"late", HOST), [])
        self.assertEqual(self.core.drops["host_mismatch"], 2)
        self.assertEqual(self.core.drops["no_route"], 1)

    def test_routes_beyond_the_limit_are_refused(self) -> None:
        for i in range(3):
            self.open_route(self.token(), ("198.51.100.1", 50000 + i))
        self.assertEqual(self.player(self.token() + b"x", MALLORY), [])
        self.assertEqual(self.core.drops["full"], 1)

    def test_an_idle_route_is_forgotten_and_its_socket_closed(self) -> None:
        token = self.token()
        route = self.open_route(token)
        self.assertEqual(self.advance(29.0), [])
        # The host's datagrams alone do not keep a route open.
        self.core.host_datagram(route, b"r", HOST)
        closed = self.advance(30.0 * 1.25)
        self.assertEqual(closed, [CloseRoute(route)])
        self.assertEqual(self.core.route_count, 0)
        self.assertIsNone(self.core.get_timer())
        self.assertEqual(self.core.host_datagram(route, b"r", HOST), [])
        # Forgotten: the token, while still valid, opens a route anew, for whoever
        # sends it first (docs/gateway.md, "Binding").
        self.assertNotEqual(self.open_route(token, MALLORY), route)

    def test_a_route_in_use_is_kept(self) -> None:
        token = self.token()
        route = self.open_route(token)
        for _ in range(20):
            self.assertEqual(self.advance(10.0), [])
            self.player(token + b"x", ALICE)
        self.assertEqual(self.core.route_count, 1)
        self.assertEqual(self.core.close(), [CloseRoute(route)])

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(max_size=ROUTE_TOKEN_SIZE + 20), max_size=50))
    def test_random_datagrams_get_nothing_sent_anywhere(self, datagrams: list[bytes]) -> None:
        core = RelayCore(KEY, wall_clock=lambda: WALL)
        for i, data in enumerate(datagrams):
            self.assertEqual(core.player_datagram(data, ("203.0.113.1", 1000 + i), 0, 0.0), [])
        self.assertEqual(sum(core.drops.values()), len(datagrams))
        self.assertEqual(core.route_count, 0)
