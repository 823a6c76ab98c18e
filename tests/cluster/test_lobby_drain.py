"""`twistd vinom lobby` drains on SIGTERM as docs/operations.md ("Stopping") says (issue #25).

A `twistd -n vinom lobby` and a `twistd vinom host` on a real Redis
(tests/cluster/test_scaling.py). The lobby holds a queued player, an idle
player, and two players whose match runs on the host. On SIGTERM: the
queued player gets `server_draining` and the connection closes; `ping`,
`cancel` and `reconnect` are still answered while the players' match runs;
once it ends (heard through the placement channel) the lobby exits 0
without a critical line or a traceback, and Redis keeps nothing of it: no
lease, no ticket, no record of a player of its without a running match.
With a short `--limit drain-timeout` it exits when that runs out, its players'
match playing on on the host.
"""

# slow: starts twistd vinom processes on Redis (tests/cluster/test_scaling.py)

from __future__ import annotations

import random
import re
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process
from tests.support.lobby_players import Player, connect_player
from tests.support.waiting import until
from vinom.client.bots import BotDriver
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby
from vinom.cluster.settings import DEFAULT_MATCHMAKER as MATCHMAKER


def lobby_id(process: Process) -> str:
    found = re.search(r"matchmaker: lobby (l-[0-9a-f]+) on Redis", process.text)
    assert found is not None, process.text
    return found.group(1)


class LobbyDrainTests(ClusterTestCase):
    timeout = 90

    async def drained_lobby(self, drain_timeout: float) -> dict[str, Any]:
        """A lobby with two players in a match on a host (holding it open: they act
        later), one queued and one idle player, sent SIGTERM once they are all there;
        what the test looks at."""
        await self.start("host", ports=2)
        lobby = await self.start("lobby", "--limit", f"drain-timeout={drain_timeout:g}")
        address = self.lobby_address(lobby)
        await self.output_has(lobby, "matchmaker: lobby l-")
        lease = f"vinom:mm:lobby:{lobby_id(lobby)}"
        self.assertEqual(await self.redis_call("EXISTS", lease), 1)
        match_id = ""

        async def player(i: int) -> tuple[str, str, GameSession]:
            nonlocal match_id
            client = await connect_lobby(reactor, address.host, address.port, trust=address.trust)
            welcome = await client.hello(f"m{i}")
            found = await client.queue(GAME.name)
            match_id = found.game_id
            session = await connect_game(reactor, found)
            self.addCleanup(session.disconnect)
            return welcome.player_id, welcome.secret, session

        matched = await gatherResults([Deferred.fromCoroutine(player(i)) for i in range(2)])
        for _, _, session in matched:
            await until(lambda session=session: session.state is not None, "the match's state")  # type: ignore[misc]
        # One queued (a maze waits for more players), one idle.
        queued = await connect_player(self, address, "queued")
        self.assertEqual((await queued.request({"type": "queue", "game": "maze"}))["type"],
                         "queued")  # fmt: skip
        idle = await connect_player(self, address, "idle")
        for player_id in [queued.player_id, idle.player_id, *(p for p, _, _ in matched)]:
            self.assertEqual(await self.redis_call("EXISTS", f"vinom:player:{player_id}"), 1)
        self.assertEqual(await self.redis_call("EXISTS", f"vinom:mm:t:{queued.player_id}"), 1)

        lobby.transport.signalProcess("TERM")
        signalled = time.monotonic()
        # The queued player is told, their ticket withdrawn, their connection closed.
        told = await queued.of_type("error")
        self.assertEqual(told["code"], "server_draining")
        await queued.closed
        return {"lobby": lobby, "address": address, "lease": lease, "matched": matched,
                "match_id": match_id, "queued": queued, "idle": idle,
                "signalled": signalled}  # fmt: skip

    async def check_clean_exit(self, lobby: Process, idle: Player) -> None:
        exit_code, signal_number = await lobby.output.ended
        self.assertEqual((exit_code, signal_number), (0, None), lobby.text)
        for bad in ("CRITICAL", "critical", "Traceback", "failed"):
            self.assertNotIn(bad, lobby.text)
        # The idle player was told as the lobby closed.
        told = await idle.when(lambda f: f.get("code") == "server_draining")
        self.assertEqual(told["type"], "error")
        await idle.closed

    async def keys(self) -> set[str]:
        return {str(k) for k in await self.redis_call("KEYS", "*")}

    async def test_a_lobby_serves_its_players_until_their_match_ends_and_leaves_nothing(
        self,
    ) -> None:
        drained = await self.drained_lobby(60)
        lobby, address, idle = drained["lobby"], drained["address"], drained["idle"]
        matched = drained["matched"]
        # The lobby serves on while its players' match runs: ping, cancel, reconnect.
        await deferLater(reactor, 1.0, lambda: None)
        self.assertFalse(lobby.output.ended.called, lobby.text)
        self.assertEqual((await idle.request({"type": "ping"}))["type"], "pong")
        cancelled = await idle.request({"type": "cancel"})
        self.assertEqual((cancelled["type"], cancelled.get("code")), ("error", "not_queued"))
        refused = await idle.request({"type": "queue", "game": "maze"})
        self.assertEqual((refused["type"], refused.get("code")), ("error", "server_draining"))
        # (A player whose session dropped would connect with this token.)
        player_id, secret, session = matched[0]
        back = await connect_lobby(reactor, address.host, address.port, trust=address.trust)
        found = await back.reconnect(player_id, secret)
        self.assertEqual(found.game_id, drained["match_id"])
        self.assertFalse(lobby.output.ended.called, lobby.text)

        # The match ends: the lobby hears it, and stops.
        for i, (player_id, _, session) in enumerate(matched):
            driver = BotDriver(session, GAME.make_bot(player_id, random.Random(i)), clock=reactor)
            driver.attach()
            self.addCleanup(driver.cancel)
            session.version -= 1  # act on the current state, asked for now
            session.sync()
        finals = await gatherResults([s.finished for _, _, s in matched])
        self.assertEqual([f["p"] for f in finals], ["finished", "finished"])
        await self.check_clean_exit(lobby, idle)
        # It stopped because the match ended, not at its drain timeout (60 s, inside
        # this test's own): its log says which, whatever a busy machine's clock read.
        self.assertIn("drain: every match has ended", lobby.text)
        self.assertNotIn("still running after", lobby.text)

        # Nothing of the lobby's is left in Redis.
        keys = await self.keys()
        queued = drained["queued"]
        players = [queued.player_id, idle.player_id, *(p for p, _, _ in matched)]
        self.assertNotIn(drained["lease"], keys)
        for player_id in players:
            self.assertNotIn(f"vinom:player:{player_id}", keys)
            self.assertNotIn(f"vinom:player-match:{player_id}", keys)
        self.assertNotIn(f"vinom:mm:t:{queued.player_id}", keys)
        # What names its players is the matchmaker's memory of the matched tickets,
        # which lapses by itself (`matched_memory`).
        naming = {k for k in keys if any(p in k for p in players)}
        self.assertEqual(naming, {f"vinom:mm:t:{p}" for p, _, _ in matched})
        for key in naming:
            ttl = await self.redis_call("PTTL", key)
            self.assertTrue(0 < ttl <= MATCHMAKER.matched_memory * 1000, (key, ttl))
        self.assertEqual(await self.redis_call("ZRANGE", "vinom:mm:q:maze:normal", 0, -1), [])

    async def test_at_the_drain_timeout_the_lobby_stops_and_its_players_match_plays_on(
        self,
    ) -> None:
        drain_timeout = 2.0
        drained = await self.drained_lobby(drain_timeout)
        lobby, idle, matched = drained["lobby"], drained["idle"], drained["matched"]
        await self.check_clean_exit(lobby, idle)
        # Not before the drain timeout (a lower bound, which no late timer breaks),
        # and because of it, its log says: the match was still running.
        self.assertGreaterEqual(time.monotonic() - drained["signalled"], drain_timeout)
        self.assertIn("drain: 1 match(es) of this lobby's players still running after 2 s"
                      " play on on their game hosts", lobby.text)  # fmt: skip
        self.assertNotIn("drain: every match has ended", lobby.text)
        keys = await self.keys()
        self.assertNotIn(drained["lease"], keys)
        for player in (drained["queued"], idle):
            self.assertNotIn(f"vinom:player:{player.player_id}", keys)
            self.assertNotIn(f"vinom:mm:t:{player.player_id}", keys)
        # The match's players keep their records, to reconnect through another lobby,
        # and play on to the end on the host.
        for player_id, _, _ in matched:
            self.assertIn(f"vinom:player:{player_id}", keys)
        for i, (player_id, _, session) in enumerate(matched):
            driver = BotDriver(session, GAME.make_bot(player_id, random.Random(i)), clock=reactor)
            driver.attach()
            self.addCleanup(driver.cancel)
            session.version -= 1
            session.sync()
        finals = await gatherResults([s.finished for _, _, s in matched])
        self.assertEqual([f["p"] for f in finals], ["finished", "finished"])
