"""Tests for the lobby's abuse limits: timeouts, connection caps, per-address queue limits,
withdrawal of abandoned matches, the parsing budget of a read, and log rate limiting.

They use the `LobbyHarness` of tests.lobby.test_lobby (StringTransport, Clock, placeholder hosts).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from tests.lobby import reconnect
from tests.lobby.test_lobby import LobbyHarness
from vinom.lobby import connection, errors
from vinom.lobby.codec import FrameDecoder, parse_frame, request_id_of
from vinom.lobby.config import LobbyConfig
from vinom.lobby.connection import PlayerState
from vinom.lobby.limits import REFUSAL_LOG_BURST
from vinom.match import Ticket


def keep_alive(clients: list[Any], case: LobbyHarness, seconds: float) -> int:
    """Let `seconds` pass, each client answering the lobby's liveness pings; the pings."""
    pings = 0
    for _ in range(int(seconds)):
        case.clock.advance(1)
        for client in clients:
            for frame in client.frames():
                if frame == {"type": "ping"}:
                    pings += 1
                    client.send({"type": "ping"})
    for client in clients:
        client.frames()  # the pongs of the last answers
    return pings // max(1, len(clients))


class WithdrawalTests(LobbyHarness):
    """A match a player left while it waited for a port is withdrawn: the others go
    back to the head of the queue at once, not to a game host that would wait its
    connect deadline for the player who left."""

    def fill_the_ports(self) -> None:
        for client in [self.queued_player(name) for name in "ABCD"]:
            client.drop()
        self.assertEqual(self.allocator.available, 0)

    def test_a_match_a_player_left_while_waiting_is_withdrawn(self) -> None:
        self.fill_the_ports()
        first, second = self.queued_player("E"), self.queued_player("F")
        gone = first.player_id or ""
        self.assertEqual((self.factory.waiting_matches, self.allocator.waiting), (1, 1))
        second.frames()
        first.drop()
        self.assertEqual((self.factory.waiting_matches, self.allocator.waiting), (0, 0))
        self.assertEqual(self.factory.matches_withdrawn, 1)
        self.assertIsNone(self.successResultOf(self.store.get_player(gone)))
        self.assertEqual(self.flushLoggedErrors(), [])
        # The one still here is back at the head of the queue, told so at once.
        self.assertEqual(second.frames(), [{
            "type": "queued", "game": "tictactoe", "queue": "normal", "position": 1,
            "status": "searching", "requeued": True, "reason": "no_host"}])  # fmt: skip
        # The next player is matched with them, and gets the next free port.
        third = self.queued_player("G")
        self.assertEqual(third.frames()[-1], _waiting(position=1))
        self.hosts.end_match(self.matches[0].match_id)
        found = second.frames()[-1]
        self.assertEqual(
            (found["type"], found["game_id"]), ("match_found", self.matches[3].match_id)
        )
        # The player who left has nothing to reconnect to.
        reply = self.connect().request(reconnect(gone, "whatever"))
        self.assert_error(reply, errors.BAD_SECRET)

    def test_a_match_of_players_this_lobby_does_not_hold_is_not_withdrawn_here(
        self,
    ) -> None:
        # (Another lobby's players, with a matchmaker shared through Redis: theirs to
        # withdraw if one of them leaves.)
        self.fill_the_ports()
        for player_id in ("p-theirs1", "p-theirs2"):
            self.matchmaker.enqueue(Ticket(player_id, player_id, "tictactoe", None, 0.0))
        self.assertEqual(self.matches[-1].player_ids, ("p-theirs1", "p-theirs2"))
        self.assertEqual((self.factory.waiting_matches, self.allocator.waiting), (1, 1))
        self.assertEqual(self.factory.matches_withdrawn, 0)

    def test_a_match_being_placed_is_not_withdrawn(self) -> None:
        first, second = self.queued_player("A"), self.queued_player("B")
        first.drop()
        second.drop()
        self.assertEqual(self.factory.matches_withdrawn, 0)
        self.assertEqual(self.hosting.running_games, 1)


class MatchesPerAddressTests(LobbyHarness):
    config = LobbyConfig(max_matches_per_ip=2)
    ports = (7400, 7401, 7402)

    def test_an_address_holds_at_most_so_many_matches(self) -> None:
        factory = self.factory
        home = []
        for name in "ABC":
            client = self.connect()
            client.hello(name)
            home.append(client)
        a, b, c = home
        # Each queued player may make a match of its own: two queued use up two matches.
        # (The lobby's games here: tictactoe for two, maze for three.)
        self.assertEqual(a.request({"type": "queue", "game": "maze"})["type"], "queued")
        self.assertEqual(b.request({"type": "queue", "game": "tictactoe"})["type"], "queued")
        self.assert_error(c.request({"type": "queue", "game": "maze"}), errors.RATE_LIMITED)
        self.assert_uncounted(c)
        # Players from elsewhere join them: two matches hold two ports for this address.
        for n, game in enumerate(("maze", "maze", "tictactoe")):
            other = self.connect(f"198.51.100.{n}")
            other.hello()
            other.send({"type": "queue", "game": game})
        self.assertEqual(factory.matches_from("192.0.2.1"), 2)
        self.assert_error(c.request({"type": "queue", "game": "maze"}), errors.RATE_LIMITED)
        # One ends: the address may queue again.
        self.hosts.end_match(self.matches[-2].match_id)
        self.assertEqual(factory.matches_from("192.0.2.1"), 1)
        self.assertEqual(c.request({"type": "queue", "game": "maze"})["type"], "queued")


class PendingPerAddressTests(LobbyHarness):
    config = LobbyConfig(max_pending_per_ip=4)
    ports = (7400, 7401, 7402)

    def test_an_address_has_at_most_so_many_players_queued_or_starting(self) -> None:
        for name in "ABCD":
            self.queued_player(name)
        self.assertEqual(self.hosting.running_games, 2)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 4)
        late = self.connect()
        late.hello("E")
        reply = late.request({"type": "queue", "game": "tictactoe", "id": 1})
        self.assert_error(reply, errors.RATE_LIMITED, 1)
        # Not the player's fault (others share the address): not counted, still connected.
        self.assert_uncounted(late)
        self.assertIs(self.factory.state_of(late.player_id or ""), PlayerState.IDLE)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        # Other addresses are not affected.
        other = self.connect("192.0.2.2")
        other.hello("F")
        self.assertEqual(other.request({"type": "queue", "game": "maze"})["type"], "queued")
        # A match counts until it ends, long past its connect deadline (30 s).
        for _ in range(3):
            self.clock.advance(40)
            self.assert_error(
                late.request({"type": "queue", "game": "tictactoe"}), errors.RATE_LIMITED
            )
        self.hosts.end_match(self.matches[0].match_id)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 2)
        self.assertEqual(late.request({"type": "queue", "game": "tictactoe"})["type"], "queued")

    def test_a_match_that_ends_no_longer_counts(self) -> None:
        self.queued_player("A")
        self.queued_player("B")
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 2)
        self.hosts.end_match(self.matches[0].match_id)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)

    def test_cancelling_or_leaving_the_queue_no_longer_counts(self) -> None:
        client = self.queued_player("A", "maze")
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 1)
        client.request({"type": "cancel"})
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)
        client.request({"type": "queue", "game": "maze"})
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 1)
        client.drop()
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)

    def test_a_withdrawn_match_no_longer_counts(self) -> None:
        for n in range(6):
            other = self.connect(f"198.51.100.{n}")
            other.hello()
            other.send({"type": "queue", "game": "tictactoe"})
        self.assertEqual(self.allocator.available, 0)
        first, second = self.queued_player("E"), self.queued_player("F")
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 2)
        first.drop()
        second.drop()
        self.assertEqual(self.factory.matches_withdrawn, 1)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)

    def test_an_ipv6_64_is_one_address(self) -> None:
        for n in range(4):
            client = self.connect(f"2001:db8:7:7::{n + 1}")
            client.hello()
            client.send({"type": "queue", "game": "maze"})
        late = self.connect("2001:db8:7:7:ffff::1")
        late.hello()
        self.assert_error(late.request({"type": "queue", "game": "maze"}), errors.RATE_LIMITED)
        self.assertEqual(self.factory.pending_from("2001:db8:7:7::99"), 4)


class QueueRateTests(LobbyHarness):
    config = LobbyConfig(queue_rate=1.0, queue_burst=2)

    def test_queue_requests_of_an_address_are_rate_limited(self) -> None:
        client = self.connect()
        client.hello()
        for _ in range(2):
            self.assertEqual(client.request({"type": "queue", "game": "maze"})["type"], "queued")
            client.request({"type": "cancel"})
        reply = client.request({"type": "queue", "game": "maze", "id": "q"})
        self.assert_error(reply, errors.RATE_LIMITED, "q")
        self.assert_uncounted(client)
        # A new connection from the same address shares the bucket; another address does not.
        again = self.connect()
        again.hello()
        self.assert_error(again.request({"type": "queue", "game": "maze"}), errors.RATE_LIMITED)
        other = self.connect("192.0.2.2")
        other.hello()
        self.assertEqual(other.request({"type": "queue", "game": "maze"})["type"], "queued")
        self.clock.advance(1)
        self.assertEqual(client.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_refused_requests_do_not_take_tokens(self) -> None:
        client = self.connect()
        client.hello()
        for _ in range(5):
            self.assert_error(
                client.request({"type": "queue", "game": "chess"}), errors.UNKNOWN_GAME
            )
        self.assertEqual(client.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_party_join_guesses_get_a_token_back_after_a_second(self) -> None:
        ann = self.connect("192.0.2.9")
        ann.hello()
        code = ann.request({"type": "party_create"})["party"]["code"]
        guesser = self.connect()
        guesser.hello()
        for guess in ("GUESSA", "GUESSB"):
            reply = guesser.request({"type": "party_join", "code": guess})
            self.assert_error(reply, errors.UNKNOWN_PARTY)
        # Past the burst the right code is refused too, until a token comes back.
        self.assert_error(
            guesser.request({"type": "party_join", "code": code}), errors.RATE_LIMITED
        )
        self.clock.advance(0.9)
        self.assert_error(
            guesser.request({"type": "party_join", "code": code}), errors.RATE_LIMITED
        )
        self.clock.advance(0.1)
        self.assertEqual(guesser.request({"type": "party_join", "code": code})["type"], "party")


class KeepAliveTransport(StringTransport):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keepalive: list[bool] = []

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepalive.append(enabled)


class TimeoutTests(LobbyHarness):
    def test_a_connection_that_sends_nothing_is_dropped_after_the_hello_timeout(self) -> None:
        client = self.connect()
        self.clock.advance(9.9)
        self.assertFalse(client.closed)
        self.clock.advance(0.1)
        # Aborted without a word: it may not even have finished its TLS handshake.
        self.assertTrue(client.transport.disconnected)
        self.assertEqual(client.frames(), [])
        client.drop()
        self.assertEqual(self.factory.connection_count, 0)

    def test_a_first_frame_that_never_ends_is_answered_timeout(self) -> None:
        client = self.connect()
        client.send(b'{"type":"hel')
        self.clock.advance(10)
        [frame] = client.frames()
        self.assert_error(frame, errors.TIMEOUT)
        self.assertTrue(client.closed)
        self.assertFalse(client.transport.disconnected)

    def test_an_idle_connection_is_closed_and_a_ping_keeps_it(self) -> None:
        client = self.connect()
        client.hello()
        self.clock.advance(59)
        self.assertEqual(client.request({"type": "ping"})["type"], "pong")
        self.clock.advance(59)
        self.assertFalse(client.closed)
        self.clock.advance(1)
        [frame] = client.frames()
        self.assert_error(frame, errors.TIMEOUT)
        self.assertIn("60", frame["message"])
        self.assertTrue(client.closed)
        client.drop()
        self.assertEqual(self.store.player_count, 0)

    def test_blank_lines_do_not_keep_a_connection(self) -> None:
        client = self.connect()
        client.hello()
        for _ in range(6):
            self.clock.advance(10)
            client.send(b"\n")
        self.assertTrue(client.closed)
        self.assert_error(client.frames()[-1], errors.TIMEOUT)

    def test_a_queued_player_is_kept_however_long_the_wait(self) -> None:
        client = self.queued_player("A", "maze")
        client.frames()
        # The lobby pings it whenever it has been quiet for 5 s; it answers.
        pings = keep_alive([client], self, 3600)
        self.assertFalse(client.closed)
        self.assertEqual(pings, 3600 // 5)
        # Back out of the queue, the idle timeout applies again.
        client.request({"type": "cancel"})
        self.clock.advance(60)
        self.assertTrue(client.closed)

    def test_a_dead_queued_player_is_found_within_ten_seconds(self) -> None:
        dead = self.queued_player("A", "maze")
        dead.frames()
        self.clock.advance(5)
        self.assertEqual(dead.frames(), [{"type": "ping"}])
        self.clock.advance(4.9)
        self.assertFalse(dead.closed)
        self.clock.advance(0.1)
        [frame] = dead.frames()
        self.assertEqual(frame["code"], errors.TIMEOUT)
        self.assertTrue(dead.transport.disconnecting)
        # Its ticket is gone at once, before the close completes.
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        # A dead peer never completes the TLS close: dropped after the close timeout.
        self.clock.advance(LobbyConfig().close_timeout)
        self.assertTrue(dead.transport.disconnected)
        dead.drop()

    def test_a_player_whose_match_waits_for_a_server_is_kept(self) -> None:
        players = [self.queued_player(name) for name in "ABCDEF"]
        keep_alive(players[4:], self, 3600)
        for client in players[4:]:
            self.assertFalse(client.closed)
            self.assertIs(self.factory.state_of(client.player_id or ""), PlayerState.MATCHED)

    def test_a_close_that_does_not_complete_is_aborted(self) -> None:
        client = self.connect()
        client.send(b"x\n" * 10)
        self.assertTrue(client.closed)
        self.assertFalse(client.transport.disconnected)
        self.clock.advance(9.9)
        self.assertFalse(client.transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(client.transport.disconnected)

    def test_a_refused_connection_is_aborted_if_its_close_does_not_complete(self) -> None:
        factory = self.make_factory(config=LobbyConfig(max_connections_per_ip=1))
        self.connect(factory=factory)
        refused = self.connect(factory=factory)
        self.assertTrue(refused.closed)
        self.clock.advance(10)
        self.assertTrue(refused.transport.disconnected)

    def test_a_lost_connection_leaves_no_timer(self) -> None:
        clients = [self.connect(), self.connect(), self.queued_player("A", "maze")]
        clients[1].hello("B")
        clients.append(self.connect())
        clients[-1].send(b"x\n" * 10)
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        for client in clients:
            client.drop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tcp_keepalive_is_turned_on(self) -> None:
        protocol = self.factory.buildProtocol(None)
        transport = KeepAliveTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.keepalive, [True])


class ConnectionCapTests(LobbyHarness):
    def test_overall_cap(self) -> None:
        factory = self.make_factory(config=LobbyConfig(max_connections=3))
        clients = [self.connect(f"192.0.2.{n}", factory) for n in range(1, 5)]
        self.assertEqual([c.closed for c in clients], [False, False, False, True])
        [frame] = clients[3].frames()
        self.assert_error(frame, errors.TOO_MANY_CONNECTIONS)
        clients[3].drop()
        self.assertEqual(factory.connection_count, 3)
        clients[0].drop()
        self.assertFalse(self.connect("192.0.2.9", factory).closed)
        self.assertEqual(factory.connection_count, 3)

    def test_ipv6_addresses_of_one_64_share_the_per_address_cap(self) -> None:
        factory = self.make_factory(config=LobbyConfig(max_connections_per_ip=2))
        self.assertFalse(self.connect("2001:db8:1:2::1", factory).closed)
        self.assertFalse(self.connect("2001:db8:1:2::2", factory).closed)
        refused = self.connect("2001:db8:1:2:ffff:ffff:ffff:ffff", factory)
        self.assertTrue(refused.closed)
        self.assert_error(refused.frames()[0], errors.TOO_MANY_CONNECTIONS)
        refused.drop()
        self.assertFalse(self.connect("2001:db8:1:3::1", factory).closed)
        self.assertEqual(factory.connections_from("2001:db8:1:2::abcd"), 2)
        self.assertEqual(factory.connections_from("2001:db8:1:3::1"), 1)

    def test_refusals_are_logged_at_a_limited_rate(self) -> None:
        factory = self.make_factory(config=LobbyConfig(max_connections_per_ip=1))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def refusals() -> list[dict[str, Any]]:
            return [e for e in events if (e.get("log_format") or "").startswith("refused")]

        self.connect(factory=factory)
        for _ in range(100):
            self.connect(factory=factory)
        self.assertEqual(len(refusals()), REFUSAL_LOG_BURST)
        self.clock.advance(1)
        self.connect(factory=factory)
        last = refusals()[-1]
        self.assertEqual(len(refusals()), REFUSAL_LOG_BURST + 1)
        self.assertEqual(last["suppressed"], 100 - REFUSAL_LOG_BURST)
        self.assertEqual(last["peer"], "192.0.2.1")


class FrameBudgetTests(LobbyHarness):
    """One read full of tiny frames costs no more parsing than the limits allow."""

    def setUp(self) -> None:
        super().setUp()
        self.parsed = 0
        self.ids_read = 0

        def counting_parse(line: bytes) -> Any:
            self.parsed += 1
            return parse_frame(line)

        def counting_id(line: bytes) -> Any:
            self.ids_read += 1
            return request_id_of(line)

        self.decoders: list[FrameDecoder] = []
        decoders = self.decoders

        class Recording(FrameDecoder):
            def __init__(self, max_frame_bytes: int) -> None:
                super().__init__(max_frame_bytes)
                decoders.append(self)

        self.patch(connection, "parse_frame", counting_parse)
        self.patch(connection, "request_id_of", counting_id)
        self.patch(connection, "FrameDecoder", Recording)

    def test_a_read_of_bad_frames_is_parsed_only_up_to_the_error_limit(self) -> None:
        client = self.connect()
        client.send(b"1\n" * 16384)
        self.assertEqual(self.parsed, 10)
        self.assertTrue(client.closed)
        self.assertEqual(len(client.frames()), 11)
        # The rest of the read is dropped with the connection, not kept.
        [decoder] = self.decoders
        self.assertEqual(decoder.buffered, 0)

    def test_a_read_of_pings_is_parsed_only_up_to_the_burst(self) -> None:
        client = self.connect()
        client.send(b'{"type":"ping","id":1}\n' * 2048)
        frames = client.frames()
        self.assertEqual([f["type"] for f in frames[:40]], ["pong"] * 40)
        # Rate-limited frames are read for their id only: at most the error limit of them.
        self.assertEqual(
            [(f.get("code"), f["id"]) for f in frames[40:50]], [("rate_limited", 1)] * 10
        )
        self.assertEqual(frames[50]["code"], errors.TOO_MANY_ERRORS)
        self.assertEqual((self.parsed, self.ids_read), (40, 10))
        self.assertTrue(client.closed)

    def test_blank_lines_count_against_the_frame_rate_limit(self) -> None:
        client = self.connect()
        client.send(b"\n" * 40 + b"  \r\n" * 5)
        frames = client.frames()
        self.assertEqual(len(frames), 5)
        for frame in frames:
            self.assert_error(frame, errors.RATE_LIMITED)
        self.assertEqual(self.parsed + self.ids_read, 0)
        client.send(b"\n" * 10_000)
        self.assertTrue(client.closed)
        self.assert_error(client.frames()[-1], errors.TOO_MANY_ERRORS)

    def test_nothing_is_parsed_after_the_connection_closes(self) -> None:
        client = self.connect()
        client.send(b"x\n" * 10 + b'{"type":"ping"}\n' * 100)
        self.assertEqual(self.parsed, 10)
        client.send(b'{"type":"ping"}\n' * 100)
        self.assertEqual(self.parsed, 10)


def _waiting(position: int) -> dict[str, Any]:
    return {
        "type": "queued",
        "game": "tictactoe",
        "position": position,
        "status": "waiting_for_server",
    }
