"""A match whose players leave it before it is placed, on a cluster, is treated as one
lobby treats it (docs/lobby.md, "withdrawn"; docs/scaling.md, "Give up"): while a player
of it is still connected to a lobby, it waits on for them and a player who left keeps
their seat, to `reconnect` to; once none is connected to any lobby it is withdrawn, and
no game host takes it (its port stays free for the next players).

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

    async def test_a_player_who_left_a_waiting_match_keeps_their_seat(self) -> None:
        """No game host yet: a match of a player of each lobby waits. The first lobby's
        player leaves; the second's waits on, gets `match_found` once a host comes, and
        plays the match against the player who left and came back with `reconnect`,
        as with one lobby (their opponent was not gone for good)."""
        ann, bob = await self.player(self.first, "ann"), await self.player(self.second, "bob")
        assert ann.welcome is not None and bob.welcome is not None
        told: dict[str, list[Queued]] = {"ann": [], "bob": []}
        ann.queue("tictactoe", on_queued=told["ann"].append).addErrback(lambda _: None)
        bob_found = bob.queue("tictactoe", on_queued=told["bob"].append)
        await until(lambda: all(any(q.status == "waiting_for_server" for q in told[name])
                                for name in told), "both told waiting_for_server")  # fmt: skip
        match_id = await self.formed(self.lobbies[0])
        await ann.close()
        # The first lobby has heard that its player left (and said what it did of it).
        await until(lambda: re.search(rf"match {match_id}(: its players here left| withdrawn)",
                                      self.lobbies[0].text), "the first lobby's word")  # fmt: skip
        host = await self.start("host", ports=2)
        found = await bob_found
        self.assertEqual(found.game_id, match_id)
        # The player who left takes their seat again, through either lobby.
        back = await connect_lobby(reactor, self.second.host, self.second.port,
                                   trust=self.second.trust)  # fmt: skip
        self.addCleanup(back.close)
        seat = await back.reconnect(ann.welcome.player_id, ann.welcome.secret)
        self.assertEqual(seat.game_id, match_id)
        await self.play({ann.welcome.player_id: seat, bob.welcome.player_id: found})
        self.assertEqual(self.hosted_matches(host), [match_id])

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
