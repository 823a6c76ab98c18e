"""A client given several lobbies: the rotation and backoff rule (vinom.client.failover), and
LobbyPlayer moving past a lobby that refuses, stays silent or turns it away."""

from __future__ import annotations

import io
import json
import random
import re
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import Clock
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.client.test_cli import bots_options
from tests.support.servers import start_server
from tests.support.waiting import until
from vinom import cli
from vinom.cli.options import CommandError
from vinom.client import bots
from vinom.client.bots import play_bot
from vinom.client.failover import (
    Backoff,
    FailoverPolicy,
    LobbyPlayer,
    LobbyRotation,
    NoLobbyAvailable,
)
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import (
    LobbyAddress,
    LobbyClient,
    LobbyClientProtocol,
    MatchFound,
    client_tls_options,
)
from vinom.client.udp import ConnectFailedError
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHost
from vinom.server.certs import ensure_dev_certificate

A, B, C = (LobbyAddress("127.0.0.1", port) for port in (7001, 7002, 7003))
GAME = GameRegistry.from_plugins().get("tictactoe")


class BackoffTests(SynchronousTestCase):
    def test_the_ceiling_doubles_from_half_a_second_to_five(self) -> None:
        backoff = Backoff()
        self.assertEqual([backoff.ceiling(n) for n in range(7)], [0.5, 1, 2, 4, 5, 5, 5])

    def test_each_wait_lies_between_half_the_ceiling_and_the_ceiling(self) -> None:
        backoff, rng = Backoff(), random.Random(1)
        for failures in range(8):
            ceiling = backoff.ceiling(failures)
            for _ in range(200):
                self.assertTrue(ceiling / 2 <= backoff.delay(failures, rng) <= ceiling)

    def test_clients_that_lost_a_lobby_together_come_back_spread_out(self) -> None:
        # 1,000 players of a dead lobby: their first attempts at the next one are spread
        # over the quarter second from 0.25 s to 0.5 s, not made at one instant.
        rng = random.Random(7)
        waits = sorted(Backoff().delay(0, rng) for _ in range(1000))
        self.assertGreaterEqual(waits[0], 0.25)
        self.assertLessEqual(waits[-1], 0.5)
        per_tenth = [sum(1 for w in waits if 0.25 + i * 0.025 <= w < 0.275 + i * 0.025)
                     for i in range(10)]  # fmt: skip
        self.assertLess(max(per_tenth), 150, per_tenth)


class RotationTests(SynchronousTestCase):
    def test_round_robin_from_the_start_address(self) -> None:
        rotation = LobbyRotation((A, B, C), index=4)
        rng = random.Random(1)
        seen = [rotation.current]
        for _ in range(4):
            rotation.failed(0.0, "connection refused", rng)
            seen.append(rotation.current)
        self.assertEqual(seen, [B, C, A, B, C])

    def test_waits_grow_with_failures_in_a_row_and_start_over_after_a_success(self) -> None:
        rotation = LobbyRotation((A, B))
        rng = random.Random(2)
        waits = [rotation.failed(0.0, "connection lost", rng) for _ in range(5)]
        for wait, ceiling in zip(waits, (0.5, 1, 2, 4, 5), strict=True):
            assert wait is not None
            self.assertTrue(ceiling / 2 <= wait <= ceiling, (wait, ceiling))
        rotation.succeeded()
        wait = rotation.failed(0.0, "connection lost", rng)
        assert wait is not None
        self.assertLessEqual(wait, 0.5)

    def test_gives_up_after_thirty_seconds_of_failures_on_every_address(self) -> None:
        clock = Clock()
        rotation = LobbyRotation((A, B))
        rng = random.Random(3)
        attempts = 0
        while (wait := rotation.failed(clock.seconds(), "connection refused", rng)) is not None:
            attempts += 1
            clock.advance(wait)
        # Waits of 0.25-0.5, 0.5-1, 1-2, 2-4, then 2.5-5 s: it gives up at the first
        # failure 30 s after the first one, having waited at most one wait longer.
        self.assertGreaterEqual(clock.seconds(), 30.0)
        self.assertLess(clock.seconds(), 35.0)
        self.assertTrue(8 <= attempts <= 15, attempts)
        error = rotation.give_up(clock.seconds())
        self.assertEqual(error.errors, ((A, "connection refused"), (B, "connection refused")))
        self.assertEqual(
            str(error),
            f"no lobby could be reached for {clock.seconds():.0f} s (127.0.0.1:7001: "
            "connection refused; 127.0.0.1:7002: connection refused)",
        )

    def test_does_not_give_up_before_every_address_has_failed(self) -> None:
        rotation = LobbyRotation((A, B, C), FailoverPolicy(give_up_after=1.0))
        rng = random.Random(4)
        self.assertIsNotNone(rotation.failed(0.0, "connection lost", rng))
        self.assertIsNotNone(rotation.failed(5.0, "connection refused", rng))
        self.assertIsNone(rotation.failed(6.0, "timed out", rng))
        self.assertEqual(
            rotation.give_up(6.0).errors,
            ((A, "connection lost"), (B, "connection refused"), (C, "timed out")),
        )

    def test_a_success_ends_the_run_of_failures(self) -> None:
        rotation = LobbyRotation((A,), FailoverPolicy(give_up_after=1.0))
        rng = random.Random(5)
        rotation.failed(0.0, "connection lost", rng)
        rotation.succeeded()
        # Ten seconds later a new run begins: not given up at once.
        self.assertIsNotNone(rotation.failed(10.0, "connection lost", rng))
        self.assertIsNone(rotation.failed(11.0, "connection lost", rng))

    def test_needs_an_address(self) -> None:
        self.assertRaises(ValueError, LobbyRotation, ())


async def both_seated(session: GameSession) -> None:
    """Until the match is past `waiting` (every player connected): a player who left
    before its partner connected would have it denied (the match aborted), and the
    partner's report would name no match."""
    await until(lambda: session.phase != "waiting", timeout=20.0)


async def dead_address() -> LobbyAddress:
    """A port that was just free: nothing listens there."""
    port = reactor.listenTCP(0, ServerFactory(), interface="127.0.0.1")
    number = port.getHost().port  # type: ignore[attr-defined]
    await maybeDeferred(port.stopListening)
    return LobbyAddress("127.0.0.1", number)


class _Silent(Protocol):
    """Accepts a connection and never says a word (a lobby process that hangs)."""


class _FallsSilent(LineOnlyReceiver):
    """A lobby that welcomes and queues a player, then never says another word (it hung)."""

    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        request = json.loads(line)
        if request["type"] == "hello":
            reply = {"type": "welcome", "player_id": "p-0000000000000001", "name": "x",
                     "secret": "s" * 43}  # fmt: skip
        elif request["type"] == "queue":
            reply = {"type": "queued", "game": request["game"], "position": 1,
                     "status": "searching"}  # fmt: skip
        else:
            return
        self.sendLine(json.dumps({**reply, "id": request["id"]}).encode())


async def hung_lobby(case: TestCase) -> LobbyAddress:
    """A TLS lobby (its own dev certificate) that falls silent after `queued`."""
    pem = ensure_dev_certificate(case.mktemp())
    key = PrivateCertificate.loadPEM(pem.certificate.read_bytes() + pem.private_key.read_bytes())
    port = reactor.listenSSL(0, ServerFactory.forProtocol(_FallsSilent), key.options(),
                             interface="127.0.0.1")  # fmt: skip
    case.addCleanup(port.stopListening)
    return LobbyAddress("127.0.0.1", port.getHost().port, str(pem.certificate))  # type: ignore[attr-defined]


# Short waits, but an attempt long enough for a live in-process TLS lobby on a loaded
# machine: these tests count lobby changes exactly.
FAST = FailoverPolicy(Backoff(first=0.1, most=0.2), give_up_after=1.0, attempt_timeout=2.0)


class LobbyPlayerTests(TestCase):
    timeout = 60

    async def test_a_refused_address_is_passed_for_the_next(self) -> None:
        server = await start_server(self, ports=2)
        dead = await dead_address()
        bots = [
            play_bot(reactor, [dead, server.lobby], GAME, f"b{i}", rng=random.Random(i),
                     policy=FAST)
            for i in range(2)
        ]  # fmt: skip
        reports = await gatherResults([Deferred.fromCoroutine(bot) for bot in bots])
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        self.assertEqual([r.lobby_changes for r in reports], [1, 1])
        self.assertEqual(reports[0].match_id, reports[1].match_id)

    async def test_a_silent_lobby_is_left_after_the_attempt_timeout(self) -> None:
        server = await start_server(self, ports=2)
        silent = reactor.listenTCP(0, ServerFactory.forProtocol(_Silent), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        hung = LobbyAddress("127.0.0.1", silent.getHost().port, server.lobby.trust)  # type: ignore[attr-defined]
        started = reactor.seconds()
        reports = await gatherResults([
            Deferred.fromCoroutine(
                play_bot(reactor, lobbies, GAME, name, rng=random.Random(1), policy=FAST)
            )
            for name, lobbies in (("patient", [hung, server.lobby]), ("partner", server.lobby))
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        # The attempt's time for the silent lobby's first frame, then on to the next.
        self.assertEqual([r.lobby_changes for r in reports], [1, 0])
        self.assertGreaterEqual(reactor.seconds() - started, FAST.attempt_timeout)

    async def test_a_lobby_that_falls_silent_while_the_player_is_queued_is_left(self) -> None:
        server = await start_server(self, ports=2)
        hung = await hung_lobby(self)
        policy = attrs.evolve(FAST, keepalive=0.2)
        statuses: list[str] = []
        player = LobbyPlayer(reactor, [hung, server.lobby], "patient", policy=policy,
                             on_queued=lambda queued: statuses.append(queued.status))  # fmt: skip
        matched = player.find_match("tictactoe")
        partner = Deferred.fromCoroutine(
            play_bot(reactor, server.lobby, GAME, "partner", rng=random.Random(1))
        )
        # Queued on the hung lobby, which then says nothing: a keepalive period without a
        # frame, a ping, another period without an answer, and the player moves on. The
        # next lobby does not know the player (bad_secret): it queues them anew.
        found = await matched
        self.assertEqual(player.lobby, server.lobby)
        self.assertEqual(player.lobby_changes, 1)
        assert player.welcome is not None
        self.assertNotEqual(player.welcome.player_id, "p-0000000000000001")
        self.assertEqual(statuses[0], "searching")
        session = await connect_game(reactor, found)
        await both_seated(session)
        await session.leave()
        theirs = await partner
        self.assertEqual(theirs.match_id, found.game_id)

    async def test_a_connect_function_opens_every_lobby_connection(self) -> None:
        # A client that opens its connections itself (here from a source address of its
        # own) gives LobbyPlayer a `connect`: every attempt goes through it.
        server = await start_server(self, ports=2)
        dead = await dead_address()
        attempts: list[tuple[LobbyAddress, float]] = []
        sources: list[str] = []

        def connect(address: LobbyAddress, timeout: float) -> Deferred[LobbyClient]:
            attempts.append((address, timeout))
            endpoint = TCP4ClientEndpoint(reactor, address.host, address.port, timeout=timeout,
                                          bindAddress=("127.0.0.2", 0))  # fmt: skip
            made = connectProtocol(
                wrapClientTLS(client_tls_options(address.trust), endpoint), LobbyClientProtocol()
            )

            def client(protocol: LobbyClientProtocol) -> LobbyClient:
                sources.append(protocol.transport.getHost().host)  # type: ignore[union-attr]
                return LobbyClient(protocol)

            return made.addCallback(client)

        player = LobbyPlayer(reactor, [dead, server.lobby], "bound", policy=FAST, connect=connect)
        matched = player.find_match("tictactoe")
        partner = Deferred.fromCoroutine(
            play_bot(reactor, server.lobby, GAME, "partner", rng=random.Random(1))
        )
        found = await matched
        timeout = FAST.attempt_timeout
        self.assertEqual(attempts, [(dead, timeout), (server.lobby, timeout)])
        self.assertEqual(sources, ["127.0.0.2"])
        self.assertEqual(player.lobby_changes, 1)
        session = await connect_game(reactor, found)
        await both_seated(session)
        await session.leave()
        theirs = await partner
        self.assertEqual(theirs.match_id, found.game_id)

    async def test_a_bot_with_no_lobby_to_come_back_through_reports_why(self) -> None:
        server = await start_server(self, ports=1)
        sessions: list[GameSession] = []
        bots = [
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, GAME, f"b{i}", rng=random.Random(i),
                         think_time=0.5, on_session=sessions.append, policy=FAST)
            )
            for i in range(2)
        ]  # fmt: skip
        await until(lambda: len(sessions) == 2 and all(s.welcome for s in sessions),
                    "both sessions welcomed")  # fmt: skip
        # The lobby goes away, then the game host ends both sessions: the bots look for
        # a lobby to reconnect through, find none, and say so once FAST gives up.
        listening = await server.service("lobby-listener").port()
        await listening.stopListening()
        host = server.hosting.host_of(sessions[0].welcome["match"])  # type: ignore[index]
        assert isinstance(host, InlineGameHost)
        for session in sessions:
            assert session.protocol is not None and session.protocol.session is not None
            host.core.close_session(session.protocol.session.session_id, reactor.seconds())
        host.protocol.transmit()
        reports = await gatherResults(bots)
        where = f"127.0.0.1:{server.lobby.port}"
        for report in reports:
            self.assertEqual(report.outcome, "error")
            self.assertRegex(
                report.error or "",
                rf"^session closed: disconnect; no lobby could be reached for \d+ s "
                rf"\({re.escape(where)}: connection refused\)$",
            )

    async def test_a_bot_whose_first_connect_fails_asks_the_lobby_again(self) -> None:
        # The game host may die between `match_found` and the bot's handshake; its
        # match then ends host_crashed, which keeps every player a place, those not
        # connected yet too (docs/lobby.md). So a failed first connect is followed
        # through `reconnect`, as a lost session is: here the host lives on, and the
        # lobby answers with a fresh token for the same seat.
        server = await start_server(self, ports=1)
        tried: list[str] = []

        def connect(reactor: Any, found: MatchFound, **kwargs: Any) -> Deferred[GameSession]:
            tried.append(found.token["player_id"])
            if tried.count(tried[0]) == 1 and found.token["player_id"] == tried[0]:
                return fail(ConnectFailedError("timeout"))
            return connect_game(reactor, found, **kwargs)

        self.patch(bots, "connect_game", connect)
        reports = await gatherResults([
            Deferred.fromCoroutine(
                play_bot(reactor, server.lobby, GAME, f"b{i}", rng=random.Random(i), policy=FAST)
            )
            for i in range(2)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"], reports)
        self.assertEqual(reports[0].match_id, reports[1].match_id)
        refused = next(r for r in reports if r.player_id == tried[0])
        self.assertEqual(refused.reconnects, 1)
        self.assertEqual(tried.count(tried[0]), 2)

    async def test_every_lobby_failing_is_one_clear_error_in_bounded_time(self) -> None:
        dead = [await dead_address() for _ in range(2)]
        player = LobbyPlayer(reactor, dead, "alone", policy=FAST)
        started = reactor.seconds()
        failure = await self.assertFailure(player.find_match("maze"), NoLobbyAvailable)
        # It tried for give_up_after (1 s), then gave up: a player that never did
        # would hang this test until trial's timeout.
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual([address for address, _ in failure.errors], dead)
        self.assertIn(f"{dead[0]}: connection refused; {dead[1]}: connection refused",
                      str(failure))  # fmt: skip

    async def test_a_lobby_that_turns_players_away_is_passed_for_the_next(self) -> None:
        draining = await start_server(self, ports=2)
        open_lobby = await start_server(self, ports=2)
        draining.service("lobby").drain()  # what SIGTERM does: server_draining to newcomers
        reports = await gatherResults([
            Deferred.fromCoroutine(
                play_bot(reactor, [draining.lobby, open_lobby.lobby], GAME, f"d{i}",
                         rng=random.Random(i), policy=FAST)
            )
            for i in range(2)
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        self.assertEqual([r.lobby_changes for r in reports], [1, 1])

    async def test_lobbies_that_all_turn_players_away_end_in_one_error(self) -> None:
        # Each lobby answers hello, then refuses the queue: that is no success, and the
        # player gives up once give_up_after has passed.
        servers = [await start_server(self, ports=2) for _ in "ab"]
        for server in servers:
            server.service("lobby").drain()
        player = LobbyPlayer(reactor, [s.lobby for s in servers], "turned-away", policy=FAST)
        failure = await self.assertFailure(player.find_match("maze"), NoLobbyAvailable)
        self.assertEqual(
            [error.split(":")[0] for _, error in failure.errors], ["server_draining"] * 2
        )


class BotsCommandFailoverTests(TestCase):
    timeout = 60

    async def test_bots_given_a_dead_lobby_and_a_live_one_play_through_the_live_one(
        self,
    ) -> None:
        server = await start_server(self, ports=2)
        dead = await dead_address()
        out, err = io.StringIO(), io.StringIO()
        options = bots_options("-g", "tictactoe", "-c", "2", "--json",
                               "--lobby", f"{dead},{server.lobby}",
                               "--trust", str(server.lobby.trust))  # fmt: skip
        code = await cli.bots_command(reactor, options, out, err=err)
        self.assertEqual(code, 0, out.getvalue() + err.getvalue())
        self.assertEqual(
            err.getvalue(),
            f"vinom: note: cannot reach the lobby at {dead}: connection refused (is the "
            "server running?); the bots use the other lobbies\n",
        )
        self.assertIn('"finished": 2', out.getvalue())

    async def test_every_lobby_unreachable_is_one_clear_error(self) -> None:
        dead = [await dead_address() for _ in range(2)]
        with self.assertRaises(CommandError) as caught:
            await cli.bots_command(
                reactor, bots_options("-g", "maze", "-l", str(dead[0]), "-l", str(dead[1])),
                io.StringIO(), err=io.StringIO(),
            )  # fmt: skip
        self.assertEqual(
            str(caught.exception),
            f"cannot reach the lobby at {dead[0]}: connection refused (is the server "
            f"running?); cannot reach the lobby at {dead[1]}: connection refused (is the "
            "server running?)",
        )


class LobbyOptionTests(SynchronousTestCase):
    def test_several_lobbies_repeated_or_comma_separated(self) -> None:
        options = bots_options("-g", "maze", "--lobby", "a:1,b", "-l", "[::1]:3")
        self.assertEqual(
            [(a.host, a.port) for a in options["addresses"]],
            [("a", 1), ("b", 7350), ("::1", 3)],
        )
        self.assertEqual(options["address"], options["addresses"][0])
        self.assertEqual(str(options["addresses"][2]), "[::1]:3")

    def test_one_trust_for_all_or_one_per_lobby(self) -> None:
        first, second = self.mktemp(), self.mktemp()
        for path in (first, second):
            with open(path, "w") as f:
                f.write("not read here")
        shared = bots_options("-g", "maze", "-l", "a:1,b:2", "-t", first)
        self.assertEqual([a.trust for a in shared["addresses"]], [first, first])
        each = bots_options("-g", "maze", "-l", "a:1", "-t", first, "-l", "b:2", "-t", second)
        self.assertEqual([a.trust for a in each["addresses"]], [first, second])
        with self.assertRaises(cli.usage.UsageError) as caught:
            bots_options("-g", "maze", "-l", "a:1,b:2,c:3", "-t", first, "-t", second)
        self.assertEqual(
            str(caught.exception),
            "--trust given 2 times for 3 lobbies: give it once for all of them, or once per "
            "lobby in their order",
        )

    def test_an_empty_address_between_commas(self) -> None:
        with self.assertRaises(cli.usage.UsageError) as caught:
            bots_options("-g", "maze", "-l", "a:1,,b:2")
        self.assertEqual(
            str(caught.exception), "--lobby 'a:1,,b:2': an empty address between commas"
        )

    def test_play_takes_one_lobby(self) -> None:
        options = cli.PlayOptions()
        with self.assertRaises(cli.usage.UsageError) as caught:
            options.parseOptions(["maze", "-l", "a:1,b:2"])
        self.assertEqual(
            str(caught.exception), "vinom play connects to one lobby: give --lobby once"
        )
