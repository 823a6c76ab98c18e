"""Integration: ranked queueing over real TLS lobby sockets on 127.0.0.1.

A whole server (makeService, tests/support/servers.py) runs with `--rating-window
tictactoe=10,100`: ratings 10 apart match at once, and a window grows by 100
points per second waited. Players use the client library
(`LobbyClient.queue(..., queue="ranked")`). Two players 500 apart queue
first: they must wait until both windows reach 500 (4.9 s after the second
queued), while two players 5 apart, queued after them, are matched at once,
while the far pair still waits. No wall-clock bound says when: two pairs of dice
players, a game with the default window (100 + 20/s), queued just after, are the
witnesses. A pair 120 apart matches 1 s after queueing, before the far pair; a
pair 280 apart 9 s after, after it. A matchmaker that ignored the windows would
match the far pair first of all; one that did not get the option (the default
window: 20 s) after both witnesses. Each pair is matched about 4 s apart from the
next (the matchmaker's passes, a second apart, included): only a stall of this
process that long would make two of them fall in one pass.
`..._on_redis` runs the same with `--redis` (a real Redis, tests/support/redis_server.py):
the Redis matchmaker and its Lua script apply the window.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.redis_server import start_redis
from tests.support.servers import RunningServer, start_server
from vinom.client.lobby import LobbyClient, MatchFound, Queued, connect_lobby
from vinom.errors import LobbyError

WINDOW = ("--rating-window", "tictactoe=10,100")


class RankedPlayer:
    """One player on one lobby connection, queued ranked."""

    def __init__(self, client: LobbyClient) -> None:
        self.client = client
        self.queued: Deferred[Queued] = Deferred()
        self.found: Deferred[MatchFound] | None = None

    def queue(self, rating: float, game: str = "tictactoe") -> Deferred[Queued]:
        def queued(frame: Queued) -> None:
            if not self.queued.called:
                self.queued.callback(frame)

        self.found = self.client.queue(game, rating, queue="ranked", on_queued=queued)
        return self.queued


class RankedIntegrationTests(TestCase):
    timeout = 90

    async def player(self, server: RunningServer, name: str) -> RankedPlayer:
        client = await connect_lobby(
            reactor, "127.0.0.1", server.lobby.port, trust=server.lobby.trust
        )
        self.addCleanup(client.close)
        await client.hello(name)
        return RankedPlayer(client)

    async def far_apart_wait_and_close_ones_match_at_once(self, server: RunningServer) -> None:
        # Everyone connected first: then the queueing takes a round trip each.
        low, high = await self.player(server, "Low"), await self.player(server, "High")
        # The witnesses (the module docstring): dice on the default window.
        witnesses = {pair: [await self.player(server, f"{pair}{n}") for n in range(2)]
                     for pair in ("quick", "slow")}  # fmt: skip
        near, nearer = await self.player(server, "Near"), await self.player(server, "Nearer")
        self.assertEqual((await low.queue(1500)).queue, "ranked")
        self.assertEqual((await high.queue(2000)).queue, "ranked")
        for pair, ratings in (("quick", (1000, 1120)), ("slow", (3000, 3280))):
            for player, rating in zip(witnesses[pair], ratings, strict=True):
                await player.queue(rating, "dice")
        await near.queue(5000)
        await nearer.queue(5005)
        # Each pair's name, in the order the pairs are matched.
        order: list[str] = []
        matches: dict[str, list[MatchFound]] = {}

        def matched(found: list[MatchFound], name: str) -> None:
            order.append(name)
            matches[name] = found

        pairs = {"close": [near, nearer], "far": [low, high], **witnesses}
        every_pair = gatherResults([
            gatherResults([player.found for player in players if player.found is not None])
            .addCallback(matched, name)
            for name, players in pairs.items()
        ])  # fmt: skip
        assert near.found is not None and nearer.found is not None
        close = [await near.found, await nearer.found]
        self.assertEqual(close[0].game_id, close[1].game_id)
        # Matched while the far pair still waits for its windows.
        assert low.found is not None and high.found is not None
        self.assertFalse(low.found.called or high.found.called)

        await every_pair  # (the test's timeout bounds it)
        # The close pair first of the ranked ones (above); the witnesses either side
        # of the far pair.
        self.assertEqual([name for name in order if name != "close"], ["quick", "far", "slow"])
        self.assertLess(order.index("close"), order.index("far"))
        for name, (first, second) in matches.items():
            self.assertEqual(first.game_id, second.game_id, name)
        self.assertEqual(len({first.game_id for first, _ in matches.values()}), len(pairs))

    async def test_far_apart_wait_and_close_ones_match_at_once(self) -> None:
        server = await start_server(self, *WINDOW, ports=6)
        await self.far_apart_wait_and_close_ones_match_at_once(server)

    async def test_far_apart_wait_and_close_ones_match_at_once_on_redis(self) -> None:
        redis = await start_redis(self)
        key_file = os.path.abspath(self.mktemp())
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        server = await start_server(
            self, *WINDOW, "--redis", redis.url, "--token-key-file", key_file, ports=6
        )
        await self.far_apart_wait_and_close_ones_match_at_once(server)

    async def test_an_unknown_queue_and_a_bad_rating_are_refused(self) -> None:
        # The client fails each with vinom.errors.LobbyError: the one class the lobby
        # raises to send an error frame and the client raises when it gets one.
        server = await start_server(self, ports=1)
        player = await self.player(server, "Ann")
        for game, queue, rating, code in (("tictactoe", "casual", 1500.0, "unknown_queue"),
                                          ("tictactoe", "ranked", 1e12, "invalid_field"),
                                          ("chess", "normal", None, "unknown_game")):  # fmt: skip
            with self.assertRaises(LobbyError) as caught:
                await player.client.queue(game, rating, queue=queue)
            self.assertEqual(caught.exception.code, code)
        # The connection is still good: a ranked queue request is answered.
        self.assertEqual((await player.queue(1500)).queue, "ranked")

