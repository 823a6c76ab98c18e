"""A game port reused for match after match: nothing of one match reaches the next.

The hosting service parks the host of an ended match and the next match on
its port reuses it (vinom.hosting.inline, "Reuse"). Real UDP sockets on
127.0.0.1, players driven by the sans-I/O client every game client runs
(`ClientConnection`): the players of the first match replay every datagram
they ever sent, and a token of theirs, at the reused port; each is dropped
and counted, none is answered, and the second match plays on.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support.ports import free_udp_port
from tests.support.waiting import until
from vinom.games.duel import DuelGame
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.interfaces import IStreamPeer, StreamRefused
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.match import Match, MatchEnded, Ticket
from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import IssuerConfig, ProtocolConfig, generate_token_key
from vinom.protocol.events import RELIABLE, MessageReceived
from vinom.protocol.tokens import PublicToken, TokenIssuer
from vinom.protocol.wire import PAYLOAD
from vinom.rooms.client_messages import encode_leave
from vinom.rooms.message_reading import decode_server_message

# The drops a datagram of an ended match can earn at the host that served it
# (`already_connected`: its player has a session of the next match).
OLD_MATCH_DROPS = ("drop:no_session", "drop:token_reused", "drop:not_admitted",
                   "drop:already_connected", "drop:cookie_invalid")  # fmt: skip


def duel(match_id: str, *players: str) -> Match:
    return Match(match_id, "duel", tuple(Ticket(p, p, "duel", None, 0.0) for p in players), 0.0)


class UdpPlayer:
    """A game client on its own UDP socket, remembering every datagram it sent."""

    def __init__(self, token: dict[str, Any], address: HostAddress) -> None:
        self.token = PublicToken.from_json(token)
        self.server = (address.host, address.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.sock.connect(self.server)
        self.conn = ClientConnection(self.token, time.monotonic(), addresses=[self.server])
        self.sent: list[bytes] = []
        self.received = 0
        self.phases: list[str] = []

    def close(self) -> None:
        self.sock.close()

    @property
    def in_full_room(self) -> bool:
        return "playing" in self.phases or "countdown" in self.phases

    def pump(self) -> None:
        """Read what came, run the client's timers, send what it owes."""
        now = time.monotonic()
        while True:
            try:
                data = self.sock.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                break
            self.received += 1
            self.conn.receive_datagram(data, self.server, now)
        self.conn.handle_timer(now)
        event = self.conn.next_event()
        while event is not None:
            if isinstance(event, MessageReceived):
                message = decode_server_message(event.data)
                if message is not None and message.get("p"):
                    self.phases.append(str(message["p"]))
            event = self.conn.next_event()
        self.send_owed(now)

    def send_owed(self, now: float) -> None:
        for datagram, _ in self.conn.datagrams_to_send(now):
            self.sock.send(datagram)
            self.sent.append(datagram)

    def leave(self) -> None:
        """`leave`, then the redundant `disconnect`s, as the benchmark's players do."""
        self.conn.send_message(RELIABLE, encode_leave())
        self.send_owed(time.monotonic())
        self.conn.disconnect()
        self.send_owed(time.monotonic())

    def replay(self) -> int:
        """Send every datagram sent so far again, in order; returns how many."""
        for datagram in self.sent:
            self.sock.send(datagram)
        return len(self.sent)


@implementer(IStreamPeer)
class NoPeer:
    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        raise AssertionError("a refused stream is sent nothing")

    def stream_ended(self) -> None:
        raise AssertionError("a refused stream has nothing to end")


class ReusedPortTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.port = free_udp_port()
        protocol = ProtocolConfig(token_key=generate_token_key())
        self.issuer = TokenIssuer(IssuerConfig(protocol))
        self.factory = InlineGameHostFactory(
            reactor=reactor, find_game=GameRegistry([DuelGame()]).get,
            protocol_config=protocol, public_host="127.0.0.1", interface="127.0.0.1",
        )  # fmt: skip
        # One port: every match is hosted on it, one after the other.
        self.hosting = GameHostingService(PortAllocator([self.port]), self.factory)
        self.hosting.startService()
        self.addCleanup(self.hosting.stopService)
        self.players: list[UdpPlayer] = []

    def player(self, player_id: str, match_id: str, address: HostAddress) -> UdpPlayer:
        token = dict(self.issuer.issue(player_id, match_id, address, time.time()))
        player = UdpPlayer(token, address)
        self.addCleanup(player.close)
        self.players.append(player)
        return player

    def pump(self) -> bool:
        for player in self.players:
            player.pump()
        return True

    def drops(self) -> Counter[str]:
        totals = self.factory.totals()
        return Counter({key: totals[key] for key in OLD_MATCH_DROPS})

    def port_is_bound(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            try:
                other.bind(("127.0.0.1", self.port))
            except OSError:
                return True
            return False

    async def test_the_last_match_s_players_replaying_everything_reach_nothing(self) -> None:
        ended: list[MatchEnded | None] = []
        address = await self.hosting.host_match(duel("m-1", "a", "b"), on_ended=ended.append)
        a1, b1 = self.player("a", "m-1", address), self.player("b", "m-1", address)
        await until(lambda: self.pump() and a1.in_full_room and b1.in_full_room,
                    "the first match's room full")  # fmt: skip
        first_host = self.hosting.host_of("m-1")
        # The next match waits for the one port.
        second: Deferred[HostAddress] = self.hosting.host_match(duel("m-2", "a", "d"))
        self.assertNoResult(second)

        a1.leave()
        await until(lambda: self.pump() and ended, "the first match's end")
        outcome = ended[0]
        assert outcome is not None
        self.assertEqual((outcome.match_id, outcome.phase), ("m-1", "finished"),
                         "the ended match's own outcome, though its port went on at once")
        # The port went straight to the waiting match, on the same host, bound throughout.
        self.assertEqual(self.successResultOf(second), address)
        self.assertIs(self.hosting.host_of("m-2"), first_host)
        self.assertTrue(self.port_is_bound())

        # Player a is in the second match too: its new token is the way in, not the old.
        a2, d2 = self.player("a", "m-2", address), self.player("d", "m-2", address)
        await until(lambda: self.pump() and a2.in_full_room and d2.in_full_room,
                    "the second match's room full")  # fmt: skip
        self.players = [a2, d2]
        before = self.drops()
        heard_a1, heard_b1 = a1.received, b1.received
        replayed = a1.replay() + b1.replay()
        # A token of the first match that never opened a session, from a new address:
        # its request, once.
        stray = self.player("b", "m-1", address)
        self.players.remove(stray)
        stray.send_owed(time.monotonic())
        await until(lambda: self.pump() and sum((self.drops() - before).values())
                    >= replayed + len(stray.sent), lambda: f"the drops ({self.drops() - before})")
        dropped = self.drops() - before
        self.assertEqual(sum(dropped.values()), replayed + len(stray.sent))
        # Session packets find no session; handshakes, a player connected already (a's
        # new session), a spent token (b's) or no such match (the stray).
        session_packets = sum(1 for p in a1.sent + b1.sent if p[0] >= PAYLOAD)
        self.assertEqual(dropped["drop:no_session"], session_packets)
        self.assertEqual(dropped["drop:not_admitted"], len(stray.sent))
        self.assertGreater(dropped["drop:already_connected"], 0)
        self.assertGreater(dropped["drop:token_reused"], 0)
        for player in (a1, b1, stray):
            player.pump()
        self.assertEqual(len(stray.sent), 1)
        self.assertEqual((a1.received, b1.received, stray.received), (heard_a1, heard_b1, 0),
                         "nothing is answered")  # fmt: skip

        # Over a `/game` stream, the old token opens nothing either.
        host = self.hosting.host_of("m-2")
        assert host is not None
        for token, reason in ((a1.token, "already_connected"), (b1.token, "token_reused"),
                              (stray.token, "not_admitted")):
            refused = self.successResultOf(host.open_stream(token.request_packet(), NoPeer()))
            self.assertEqual(refused, StreamRefused(reason))
        # The second match played on, undisturbed: its seats are a's and d's.
        totals = self.factory.totals()
        self.assertEqual([k for k in totals if k.startswith("message_drop:")], [])
        self.assertTrue(a2.conn.is_connected and d2.conn.is_connected)
        self.assertNotIn("aborted", a2.phases + d2.phases)

    async def test_a_parked_port_stays_bound_until_the_service_stops(self) -> None:
        address = await self.hosting.host_match(duel("m-1", "a", "b"))
        a1, b1 = self.player("a", "m-1", address), self.player("b", "m-1", address)
        await until(lambda: self.pump() and a1.in_full_room and b1.in_full_room, "a full room")
        a1.leave()
        await until(lambda: self.pump() and self.hosting.free_ports == 1, "the port back")
        self.assertEqual(self.hosting.running_games, 0)
        self.assertEqual(self.factory.parked, 1)
        self.assertTrue(self.port_is_bound(), "a parked port is still ours")
        await self.hosting.stopService()
        self.assertEqual(self.factory.parked, 0)
        await until(lambda: not self.port_is_bound(), "the port closed")

    async def test_only_a_vacant_host_of_the_factory_is_parked(self) -> None:
        address = await self.hosting.host_match(duel("m-1", "a", "b"))
        host = self.hosting.host_of("m-1")
        assert host is not None
        self.assertFalse(self.factory.park(host), "its match still runs")
        other = InlineGameHostFactory(
            reactor=reactor, find_game=GameRegistry([DuelGame()]).get,
            protocol_config=self.factory.protocol_config, public_host="127.0.0.1",
            interface="127.0.0.1",
        )  # fmt: skip
        self.assertFalse(other.park(host), "not one of its hosts")
        self.assertEqual(self.factory.parked, 0)
        self.assertEqual(address.port, self.port)
