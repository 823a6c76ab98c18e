"""A game host that departs, with `twistd vinom` processes on a real Redis
(tests/cluster/test_scaling.py's `ClusterTestCase`): a killed host's consumer of the
placement group goes once nothing is pending for it, so the group does not keep one
consumer per host process ever started (docs/scaling.md, "Take"); a host cut off from
Redis (not from its players, tests/support/cut_proxy.py) has its departure claimed
and its match ended `host_crashed`, and the end its players played out meanwhile
replaces that once the host is back (docs/scaling.md, "Game hosts in the registry").
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.support.cut_proxy import CutProxy
from tests.support.waiting import until
from vinom.client.bots import BotDriver, run_bots
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import connect_lobby

REQUESTS = "vinom:place:default"


def consumers(reply: Any) -> set[str]:
    """The names in an `XINFO CONSUMERS` reply."""
    names = set()
    for consumer in reply:
        fields = dict(zip(consumer[::2], consumer[1::2], strict=True))
        names.add(str(fields["name"]))
    return names


class DepartedConsumerTests(ClusterTestCase):
    async def test_a_killed_host_s_consumer_leaves_the_placement_group(self) -> None:
        # One game port each: the two matches played at once are one on each host, so
        # each host read a request (Redis makes a consumer as it delivers it one).
        doomed = await self.start("host", ports=1)
        survivor = await self.start("host", ports=1)
        lobby = self.lobby_address(await self.start("lobby"))
        doomed_id, survivor_id = self.host_id(doomed), self.host_id(survivor)
        reports = await run_bots(reactor, lobby, GAME, 4, seed=1)
        self.check_matched_once(reports, 4)

        async def group() -> set[str]:
            return consumers(await self.redis_call("XINFO", "CONSUMERS", REQUESTS, "hosts"))

        self.assertEqual(await group(), {doomed_id, survivor_id})
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended

        async def only_the_survivor() -> bool:
            return await group() == {survivor_id}

        # Its registration lapses (3 s), the watch has lasted 3.5 s, and the survivor's
        # next claim pass (every 1.5 s) finds it holding nothing.
        await until(only_the_survivor, "the dead host's consumer gone", timeout=20, every=0.2)


class CutOffHostTests(ClusterTestCase):
    timeout = 120

    async def test_the_end_a_cut_off_host_saw_replaces_host_crashed(self) -> None:
        proxy = CutProxy(self.redis.port)
        proxy.start()
        self.addCleanup(proxy.stop)
        host = await self.start("host", "--redis", proxy.url, ports=2)
        lobby = await self.start("lobby")
        where = self.lobby_address(lobby)

        async def player(i: int) -> tuple[str, str, GameSession]:
            client = await connect_lobby(reactor, where.host, where.port, trust=where.trust)
            self.addCleanup(client.close)
            welcome = await client.hello(f"m{i}")
            found = await client.queue(GAME.name)
            session = await connect_game(reactor, found)
            self.addCleanup(session.disconnect)
            return welcome.player_id, found.game_id, session

        players = await gatherResults([Deferred.fromCoroutine(player(i)) for i in range(2)])
        match_id = players[0][1]
        for _, _, session in players:
            await until(lambda session=session: session.state is not None,  # type: ignore[misc]
                        "the match's state")  # fmt: skip

        # Cut off from Redis: its registration lapses and, its presence connection
        # closed, its departure is claimed and its match ended host_crashed.
        await proxy.cut()
        await self.output_has(lobby, "of its matches ended (host_crashed)")
        # Its players play the match out, over UDP, as the host goes on.
        for i, (player_id, _, session) in enumerate(players):
            driver = BotDriver(session, GAME.make_bot(player_id, random.Random(i)), clock=reactor)
            driver.attach()
            self.addCleanup(driver.cancel)
            session.version -= 1  # act on the current state, asked for now
            session.sync()
        finals = await gatherResults([s.finished for _, _, s in players])
        self.assertEqual([f["p"] for f in finals], ["finished", "finished"])
        # Cut off for longer than `stall_grace` (30 s) since the match ended: the host
        # says so (and tries on).
        await self.output_has(host, f"announcing the end of {match_id} failed", limit=60)
        # Back: the host tells the end it saw, which the lobby takes over host_crashed.
        proxy.restore()
        await self.output_has(
            lobby, f"match {match_id} ended finished after all: its game host came back",
            limit=60,
        )
