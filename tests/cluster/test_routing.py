"""A lobby's work grows with its own players only: real `twistd vinom` processes on Redis.

A match is heard by the lobby that formed it and the lobbies that hold its players,
no other (their operations figures show it); the Redis commands a match costs are
the same with two lobbies as with four (counted with MONITOR); a player who comes
back through a lobby that holds none of the match's players, while the match waits
for its game host, still gets it there.
"""

# slow: starts twistd vinom processes on Redis (tests/cluster/test_scaling.py)

from __future__ import annotations

import json
import random
import re
import signal

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process
from tests.server.test_ops import http_get, metric_value
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from vinom.client.bots import BotDriver, LobbyAddress, play_bot
from vinom.client.game import connect_game
from vinom.client.lobby import MatchFound, Queued, connect_lobby

# A game host's `register` script call, as MONITOR shows it.
HEARTBEAT = re.compile(r'^"EVALSHA" "[0-9a-f]+" "\d+" "vinom:host:')


class Monitor(Protocol):
    """A Redis connection in MONITOR mode: every command Redis runs, scripts' own too."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._buffer = b""

    def connectionMade(self) -> None:
        self.transport.write(b"MONITOR\r\n")

    def dataReceived(self, data: bytes) -> None:
        *complete, self._buffer = (self._buffer + data).split(b"\r\n")
        self.lines.extend(line.decode(errors="replace") for line in complete)

    def mentioning(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


class RoutingTests(ClusterTestCase):
    async def start_lobby(self) -> tuple[LobbyAddress, int]:
        """A lobby and the port of its operations endpoint."""
        ops = free_tcp_port()
        lobby = await self.start("lobby", "--ops-port", f"tcp:{ops}:interface=127.0.0.1")
        return self.lobby_address(lobby), ops

    async def formed(self, ops: int) -> float:
        """The matches a lobby heard of (its `vinom_matches_formed_total`)."""
        code, text = await http_get(f"http://127.0.0.1:{ops}/metrics")
        self.assertEqual(code, 200)
        return metric_value(text, "vinom_matches_formed_total")

    async def play(self, lobby: LobbyAddress, *names: str) -> str:
        """Bots named `names` play one match through `lobby`; its id."""
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(reactor, lobby, GAME, name, rng=random.Random(name)))
            for name in names
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished"] * len(names))
        self.assertEqual(len({r.match_id for r in reports}), 1)
        match_id = reports[0].match_id
        assert match_id is not None
        return match_id

    async def until_gone(self, *keys: str) -> None:
        async def gone() -> bool:
            return not await self.redis_call("EXISTS", *keys)

        await until(gone, f"{keys} to go", every=0.05)

    async def test_a_lobby_holding_none_of_a_matchs_players_hears_nothing_of_it(self) -> None:
        await self.start("host", ports=2)
        (first, first_ops), (second, second_ops), (_, third_ops) = [
            await self.start_lobby() for _ in "abc"
        ]
        # One player through each of two lobbies: the third holds neither.
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(reactor, lobby, GAME, name, rng=random.Random(n)))
            for n, (lobby, name) in enumerate([(first, "ann"), (second, "bob")])
        ])  # fmt: skip
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        self.assertEqual(reports[0].match_id, reports[1].match_id)
        self.assertEqual(await self.formed(first_ops), 1)
        self.assertEqual(await self.formed(second_ops), 1)
        self.assertEqual(await self.formed(third_ops), 0)

    async def test_the_redis_commands_of_a_match_do_not_grow_with_the_lobbies(self) -> None:
        await self.start("host", ports=2)
        lobby, _ = await self.start_lobby()
        await self.start_lobby()
        assert self.redis.port is not None
        monitor = Monitor()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.redis.port)
        await connectProtocol(endpoint, monitor)
        self.addCleanup(lambda: monitor.transport.loseConnection())

        async def commands(*names: str) -> list[str]:
            """The commands Redis ran that name the match `names` play through `lobby`,
            from its forming to the removal of its placement."""
            match_id = await self.play(lobby, *names)
            await self.until_gone(f"vinom:match:{match_id}", f"vinom:lobbies:{match_id}")
            await deferLater(reactor, 0.3, lambda: None)  # any lobby's late call
            # Everything Redis ran before this marker has come through MONITOR once
            # the marker has (it streams in the order Redis runs them).
            marker = f"vinom:marker:{match_id}"
            await self.redis_call("EXISTS", marker)
            await until(lambda: monitor.mentioning(marker), "the marker through MONITOR")
            # The commands, without their time and client: `"SET" "vinom:outcome:m-..."`.
            named = [line.split("] ", 1)[1] for line in monitor.mentioning(match_id)]
            # Not until_gone's look-ups nor the marker, nor the once-only load of a
            # script new to Redis (EVALSHA refused, EVAL); nor what the host's mark of
            # the match's end runs inside its script (MARK_ENDED: a PTTL, then a SET
            # while the placement is still there), which races the host's end script
            # that removes it: one match's mark, whatever the lobbies.
            mine = (f'"EXISTS" "vinom:match:{match_id}"', f'"EXISTS" "{marker}"', '"EVAL" ',
                    f'"PTTL" "vinom:match:{match_id}"',
                    f'"SET" "vinom:match-ended:{match_id}"')  # fmt: skip
            named = [line for line in named if not line.startswith(mine)]
            # Nor the host's heartbeat (`register`, first key its `host:` record), which
            # names the matches it runs: one every half second whatever the lobbies, so
            # how many fall within a match is the match's length, not the lobbies'.
            named = [line for line in named if not HEARTBEAT.match(line)]
            return [re.sub(r"m-[0-9a-f]+", "m-*", re.sub(r'"\d+-\d+"', '"*"', line))
                    for line in named]  # fmt: skip

        with_two = await commands("ann", "bob")
        await self.start_lobby()
        await self.start_lobby()
        with_four = await commands("cat", "dan")
        self.assertGreater(len(with_two), 10)
        self.assertEqual(
            len(with_four),
            len(with_two),
            "\n".join(["with two lobbies:", *with_two, "with four:", *with_four]),
        )

    async def test_a_player_who_leaves_a_match_waiting_for_its_host_withdraws_it(
        self,
    ) -> None:
        # docs/scaling.md, step 6: a match not yet placed is withdrawn as soon as one
        # of its players leaves; the others, on any lobby, go back to the head of the
        # queue at once, and the leaver, back through a lobby that holds neither
        # player, queues anew and is matched with them.
        host = await self.start("host", ports=2)
        first, second, third = [(await self.start_lobby())[0] for _ in "abc"]
        flaky = await connect_lobby(reactor, first.host, first.port, trust=first.trust)
        steady = await connect_lobby(reactor, second.host, second.port, trust=second.trust)
        welcome = await flaky.hello("flaky")
        steady_welcome = await steady.hello("steady")
        # The host stops: the match waits for it (a request in its list, unclaimed).
        self.stop(host, "STOP")
        flaky.queue("tictactoe").addErrback(lambda _: None)
        told: list[Queued] = []
        steadys = steady.queue("tictactoe", on_queued=told.append)
        ticket = f"vinom:mm:t:{welcome.player_id}"

        async def matched() -> bool:
            return bool(await self.redis_call("HGET", ticket, "state") == "matched")

        await until(matched, "the ticket matched")
        await flaky.close()
        await until(lambda: any(q.requeued for q in told),
                    "the steady player requeued at once")  # fmt: skip
        self.stop(host, "CONT")
        again = await connect_lobby(reactor, third.host, third.port, trust=third.trust)
        back = await again.hello("flaky")
        founds: list[MatchFound] = list(await gatherResults([again.queue("tictactoe"), steadys]))
        self.assertEqual(founds[0].game_id, founds[1].game_id)
        await self.play_to_the_end(founds, [back.player_id, steady_welcome.player_id])

    async def test_a_match_whose_former_died_right_after_asking_for_it_is_placed(
        self,
    ) -> None:
        host = await self.start("host", ports=2)
        former = await self.start("lobby")
        first = self.lobby_address(former)
        second, third = [(await self.start_lobby())[0] for _ in "bc"]
        flaky = await connect_lobby(reactor, first.host, first.port, trust=first.trust)
        steady = await connect_lobby(reactor, second.host, second.port, trust=second.trust)
        welcome = await flaky.hello("flaky")
        steady_welcome = await steady.hello("steady")
        steady_told: list[Queued] = []
        steadys = steady.queue("tictactoe", on_queued=steady_told.append)
        await until(lambda: steady_told, "the steady player queued")
        # The host stops, then the former forms the match (its enqueue) and asks for it.
        self.stop(host, "STOP")
        flaky.queue("tictactoe").addErrback(lambda _: None)
        match_id = await self.matched(welcome.player_id)
        requested = f"vinom:requested:{match_id}"
        await until(lambda: self.redis_call("EXISTS", requested), "the match asked for")
        # The former dies with the match waiting in the realm's stream; its player comes
        # back elsewhere, and the host goes on.
        former.transport.signalProcess("KILL")
        again = await connect_lobby(reactor, third.host, third.port, trust=third.trust)
        told: list[Queued] = []
        refound = again.reconnect(welcome.player_id, welcome.secret, on_queued=told.append)
        await until(lambda: told, "the third lobby taking the player back to their match")
        self.stop(host, "CONT")
        founds: list[MatchFound] = list(await gatherResults([refound, steadys]))
        # The match itself: not given up (after `place_timeout`), its players queued again.
        self.assertEqual([f.game_id for f in founds], [match_id, match_id])
        self.assertEqual([t.status for t in told], ["waiting_for_server"])
        await self.play_to_the_end(founds, [welcome.player_id, steady_welcome.player_id])

    async def matched(self, player_id: str) -> str:
        """The id of the match a player's ticket was matched into (its log entry's)."""
        ticket = f"vinom:mm:t:{player_id}"
        log_id = await until(lambda: self.redis_call("HGET", ticket, "log"),
                             f"{player_id} matched")  # fmt: skip
        entries = await self.redis_call("XRANGE", "vinom:mm:match-log", log_id, log_id)
        fields = entries[0][1]
        return str(json.loads(fields[fields.index("match") + 1])["match_id"])

    async def play_to_the_end(self, founds: list[MatchFound], player_ids: list[str]) -> None:
        sessions = [await connect_game(reactor, found) for found in founds]
        for n, session in enumerate(sessions):
            BotDriver(session, GAME.make_bot(player_ids[n], random.Random(n)), think_time=0.0,
                      clock=reactor).attach()  # fmt: skip
        for session in sessions:
            self.assertEqual((await session.finished)["p"], "finished")
            await session.disconnect()

    def stop(self, process: Process, name: str) -> None:
        """SIGSTOP or SIGCONT (a stopped process goes on at the end of the test)."""
        process.transport.signalProcess(getattr(signal, f"SIG{name}"))
        if name == "STOP":
            self.addCleanup(lambda: process.transport.signalProcess(signal.SIGCONT))
