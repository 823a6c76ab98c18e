"""A Redis that restarts without persistence (empty) while a match runs, with
`twistd vinom` processes on it (tests/cluster/test_scaling.py's `ClusterTestCase`):
the lobby does not count the match as running once it has ended, so a SIGTERM drain
stops at once rather than at its `--limit drain-timeout` (docs/scaling.md, "When something
fails").

The host puts the matches it runs back as it registers again (vinom.cluster.hosts);
the lobby, finding its event stream lost, follows each of its running matches again
or, if its host runs it no more, ends it (vinom.cluster.placement, `_recheck`).
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

import random

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.support.waiting import until
from vinom.client.bots import BotDriver
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby


class RedisDataLossTests(ClusterTestCase):
    timeout = 120

    async def matched(self, where: object) -> list[tuple[str, GameSession]]:
        """Two players of one match, connected to its host, idle."""

        async def player(i: int) -> tuple[str, GameSession]:
            client = await connect_lobby(reactor, where.host, where.port,  # type: ignore[attr-defined]
                                         trust=where.trust)  # type: ignore[attr-defined]
            self.addCleanup(client.close)
            welcome = await client.hello(f"m{i}")
            found = await client.queue(GAME.name)
            session = await connect_game(reactor, found)
            self.addCleanup(session.disconnect)
            return welcome.player_id, session

        players = await gatherResults([Deferred.fromCoroutine(player(i)) for i in range(2)])
        for _, session in players:
            await until(lambda session=session: session.state is not None,  # type: ignore[misc]
                        "the match's state")  # fmt: skip
        return players

    async def play_out(self, players: list[tuple[str, GameSession]]) -> None:
        for i, (player_id, session) in enumerate(players):
            driver = BotDriver(session, GAME.make_bot(player_id, random.Random(i)), clock=reactor)
            driver.attach()
            self.addCleanup(driver.cancel)
            session.version -= 1  # act on the current state, asked for now
            session.sync()
        finals = await gatherResults([s.finished for _, s in players])
        self.assertEqual([f["p"] for f in finals], ["finished", "finished"])

    async def test_a_match_that_ended_across_a_redis_restart_does_not_hold_a_drain(
        self,
    ) -> None:
        host = await self.start("host", ports=2)
        host_id = self.host_id(host)
        lobby = await self.start("lobby", "--limit", "drain-timeout=45")
        players = await self.matched(self.lobby_address(lobby))

        await self.redis.stop()
        await self.redis.start()  # empty: no persistence

        async def registered() -> bool:
            return host_id in await self.redis_call("SMEMBERS", "vinom:hosts")

        await until(registered, "the host to register again", timeout=20, every=0.1)
        await self.play_out(players)
        lobby.transport.signalProcess("TERM")
        exit_code, signal_number = await lobby.output.ended
        self.assertEqual((exit_code, signal_number), (0, None), lobby.text)
        # It stopped because the match ended, not at its drain timeout.
        self.assertIn("drain: every match has ended", lobby.text)
        self.assertNotIn("still running after", lobby.text)
