"""A match a player leaves before it is placed, on a cluster, is treated as one lobby
treats it (docs/lobby.md, "withdrawn"; docs/scaling.md, "Withdraw"): it is withdrawn,
its players still connected to any lobby are back at the head of the queue at once
(not sent to a game host to wait its connect deadline for a player who is gone), also
in a lobby that follows the match only after its withdrawal, and no game host takes it
(its port stays free for the next players).

Two `twistd vinom lobby` processes and a `twistd vinom host` process on a real Redis
(tests/cluster/test_scaling.py's `ClusterTestCase`); the players are real lobby
clients (vinom.client.lobby) on TLS, their game sessions real UDP sessions.
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

import json
import os
import random
import re
import signal

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process
from tests.server.test_ops import http_get, metric_value
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from vinom.client.bots import BotDriver, LobbyAddress
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import LobbyClient, MatchFound, Queued, connect_lobby


class MatchWithdrawalTests(ClusterTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        # Each lobby's operations endpoint: its `vinom_free_ports`, the free slots of the
        # live game hosts as it last read them.
        self.ops = [free_tcp_port() for _ in "ab"]
        self.lobbies = [await self.start("lobby", "--ops-port",
                                         f"tcp:{port}:interface=127.0.0.1")
                        for port in self.ops]  # fmt: skip
        self.first, self.second = [self.lobby_address(p) for p in self.lobbies]

    async def player(self, where: LobbyAddress, name: str) -> LobbyClient:
        lobby = await connect_lobby(reactor, where.host, where.port, trust=where.trust)
        self.addCleanup(lobby.close)
        await lobby.hello(name)
        return lobby

    async def formed(self, lobby: Process) -> str:
        """The id of the first match the lobby heard formed (its log says so as it does)."""
        found = await until(lambda: re.search(r"match (m-[0-9a-f]+) formed for", lobby.text),
                            "a match formed", timeout=10.0)  # fmt: skip
        assert isinstance(found, re.Match)
        return found.group(1)

    async def outcome(self, match_id: str) -> dict[str, object] | None:
        text = await self.redis_call("GET", f"vinom:outcome:{match_id}")
        return None if text is None else json.loads(text)

    async def requeued_at_once(self, bob: Deferred[MatchFound], told: list[Queued],
                               since: float, match_id: str) -> None:  # fmt: skip
        """Bob, whose opponent left their waiting match, is back at the head of the
        queue within 2 s of `since` (not at the game host's connect deadline, 30 s
        later); the match is withdrawn, no host takes it, and Bob is matched with the
        next player as soon as a host comes."""
        await until(lambda: any(q.requeued for q in told), "Bob requeued", timeout=10.0)
        elapsed = reactor.seconds() - since
        self.assertLess(elapsed, 2.0)
        self.assertEqual([(q.status, q.reason) for q in told if q.requeued],
                         [("searching", "no_host")])  # fmt: skip
        self.assertEqual(await self.outcome(match_id),
                         {"event": "failed", "match_id": match_id, "reason": "withdrawn"})
        host = await self.start("host", ports=2)
        cid = await self.player(self.first, "cid")
        seats = await gatherResults([cid.queue("tictactoe"), bob])
        self.assertEqual(seats[0].game_id, seats[1].game_id)
        self.assertEqual(self.hosted_matches(host), [seats[0].game_id])

    async def test_the_waiting_player_is_requeued_once_their_opponent_leaves(self) -> None:
        """No game host yet: a match of a player of each lobby waits. The first lobby's
        player leaves it: the second's is requeued at once, as in one lobby."""
        ann, bob = await self.player(self.first, "ann"), await self.player(self.second, "bob")
        told: dict[str, list[Queued]] = {"ann": [], "bob": []}
        ann.queue("tictactoe", on_queued=told["ann"].append).addErrback(lambda _: None)
        bob_found = bob.queue("tictactoe", on_queued=told["bob"].append)
        await until(lambda: all(any(q.status == "waiting_for_server" for q in told[name])
                                for name in told), "both told waiting_for_server")  # fmt: skip
        match_id = await self.formed(self.lobbies[0])
        left = reactor.seconds()
        await ann.close()
        await self.requeued_at_once(bob_found, told["bob"], left, match_id)

    async def test_a_lobby_that_follows_a_match_after_its_withdrawal_requeues_at_once(
        self,
    ) -> None:
        """The forced race: the second lobby is paused (SIGSTOP) as the match of its
        player and the first lobby's forms, and the first lobby's player leaves it
        before the second lobby has followed it. Resumed, the second lobby follows a
        match withdrawn already: its player is requeued at once."""
        bob = await self.player(self.second, "bob")
        told: list[Queued] = []
        bob_found = bob.queue("tictactoe", on_queued=told.append)
        await until(lambda: told, "Bob queued")
        paused = self.lobbies[1].transport.pid
        os.kill(paused, signal.SIGSTOP)
        self.addCleanup(lambda: None if self.lobbies[1].output.ended.called
                        else os.kill(paused, signal.SIGCONT))  # fmt: skip
        ann = await self.player(self.first, "ann")
        ann.queue("tictactoe").addErrback(lambda _: None)
        match_id = await self.formed(self.lobbies[0])
        await ann.close()
        await until(lambda: self.outcome(match_id), "the match withdrawn")
        resumed = reactor.seconds()
        os.kill(paused, signal.SIGCONT)
        await self.requeued_at_once(bob_found, told, resumed, match_id)

    async def play(self, seats: dict[str, MatchFound]) -> None:
        """Both players connect to the game host and play the match to its end."""
        sessions: list[GameSession] = []
        drivers: list[BotDriver] = []
        for n, (player_id, found) in enumerate(seats.items()):
            session = await connect_game(reactor, found)
            self.addCleanup(session.disconnect)
            sessions.append(session)
            drivers.append(BotDriver(session, GAME.make_bot(player_id, random.Random(n)),
                                     think_time=0.0, clock=reactor))  # fmt: skip
        for driver in drivers:
            driver.attach()
            self.addCleanup(driver.cancel)
        for session in sessions:
            final = await session.finished
            self.assertEqual(final["p"], "finished")

    async def test_a_match_whose_players_all_left_in_its_first_second_is_not_hosted(
        self,
    ) -> None:
        """The only game host (one port) is paused, so the lobbies take it for one with a
        free slot and wait a second before they say `waiting_for_server`: both players
        leave in that second. The match is withdrawn, the host hosts nothing of it once it
        goes on, and the next two players get its only port at once."""
        host = await self.start("host", ports=1)
        ann, bob = await self.player(self.first, "ann"), await self.player(self.second, "bob")

        async def host_seen() -> bool:
            for port in self.ops:
                code, text = await http_get(f"http://127.0.0.1:{port}/metrics")
                if code != 200 or metric_value(text, "vinom_free_ports") != 1:
                    return False
            return True

        await until(host_seen, "both lobbies seeing the host's free port", every=0.05)
        os.kill(host.transport.pid, signal.SIGSTOP)
        self.addCleanup(lambda: None if host.output.ended.called
                        else os.kill(host.transport.pid, signal.SIGCONT))  # fmt: skip
        ann.queue("tictactoe").addErrback(lambda _: None)
        bob.queue("tictactoe").addErrback(lambda _: None)
        match_id = await self.formed(self.lobbies[0])
        await self.formed(self.lobbies[1])
        await ann.close()
        await bob.close()
        # Given up on Redis, by the last lobby whose players all left.
        await until(lambda: self.outcome(match_id), "the match given up", timeout=10.0)
        self.assertEqual(await self.outcome(match_id),
                         {"event": "failed", "match_id": match_id, "reason": "withdrawn"})
        os.kill(host.transport.pid, signal.SIGCONT)
        # The next players are placed on the host's only port: it was never taken.
        cid, dee = await self.player(self.first, "cid"), await self.player(self.second, "dee")
        found = [cid.queue("tictactoe"), dee.queue("tictactoe")]
        # (Promptly: the match before them, had it been hosted, would hold the port
        # for the connect deadline, 30 s.)
        await until(lambda: all(d.called for d in found), "match_found for the next players",
                    timeout=8.0)  # fmt: skip
        seats = [await d for d in found]
        self.assertEqual(seats[0].game_id, seats[1].game_id)
        self.assertNotEqual(seats[0].game_id, match_id)
        self.assertEqual(self.hosted_matches(host), [seats[0].game_id])
