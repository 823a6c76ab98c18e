"""Who may watch a match, on every lobby of a cluster: `spectate` by id decides by the
match's own policy (a private room's "no spectators" travels with its match), and a
match that has ended is answered `match_ended`, not a fresh token.

Two `twistd vinom lobby` processes and a `twistd vinom host` process on a real Redis
(tests/cluster/test_scaling.py's `ClusterTestCase`); the players and spectators
are real lobby clients (vinom.client.lobby) on TLS, the players' game sessions
real UDP sessions.
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

import random

from twisted.internet import reactor

from tests.cluster.test_scaling import GAME, ClusterTestCase
from tests.support.waiting import until
from vinom.client.bots import BotDriver, LobbyAddress
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import LobbyClient, MatchFound, connect_lobby
from vinom.errors import LobbyError


class SpectatePolicyTests(ClusterTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        await self.start("host", ports=4)
        self.first, self.second = [self.lobby_address(await self.start("lobby")) for _ in "ab"]

    async def client(self, where: LobbyAddress, name: str) -> LobbyClient:
        lobby = await connect_lobby(reactor, where.host, where.port, trust=where.trust)
        self.addCleanup(lobby.close)
        await lobby.hello(name)
        return lobby

    async def room_match(self, spectators: bool) -> tuple[dict[str, object], MatchFound]:
        """A private room on the first lobby, its owner and the game's bot: the room
        and its match (placed, its owner not connected to it)."""
        owner = await self.client(self.first, "owner")
        room = await owner.create_room("tictactoe", private=True, spectators=spectators)
        await owner.add_bot()
        return room, await owner.room_match()

    async def answer(self, lobby: LobbyClient, match_id: str) -> str:
        """`spectating`, or the code of the error `spectate` was answered."""
        try:
            await lobby.spectate(match_id)
        except LobbyError as e:
            return e.code
        return "spectating"

    async def refused(self, lobby: LobbyClient, match_id: str) -> str:
        code = await self.answer(lobby, match_id)
        self.assertNotEqual(code, "spectating", f"spectate {match_id} answered spectating")
        return code

    async def test_a_private_room_that_lets_nobody_watch_is_refused_on_every_lobby(
        self,
    ) -> None:
        _room, found = await self.room_match(spectators=False)
        here = await self.client(self.first, "eve")
        there = await self.client(self.second, "mallory")
        # One answer on both lobbies, as for no match at all: no token, no players.
        self.assertEqual(await self.refused(here, found.game_id), "no_active_match")
        self.assertEqual(await self.refused(there, found.game_id), "no_active_match")
        self.assertEqual(await self.refused(there, "m-0123456789abcdef"), "no_active_match")

    async def test_a_private_room_that_lets_spectators_watch_is_watched_from_any_lobby(
        self,
    ) -> None:
        room, found = await self.room_match(spectators=True)
        there = await self.client(self.second, "eve")
        watching = await there.spectate(found.game_id)
        self.assertEqual(watching.game_id, found.game_id)
        by_code = await (await self.client(self.first, "ann")).spectate(code=str(room["code"]))
        self.assertEqual(by_code.game_id, found.game_id)

    async def test_a_match_that_has_ended_is_answered_match_ended(self) -> None:
        """Its players still on their sessions (the room lingers for them), the match
        over: neither lobby hands out a token for it."""
        sessions: list[GameSession] = []
        drivers: list[BotDriver] = []
        found = []
        players = []
        for n, where in enumerate((self.first, self.second)):
            lobby = await connect_lobby(reactor, where.host, where.port, trust=where.trust)
            self.addCleanup(lobby.close)
            players.append((await lobby.hello(f"p{n}")).player_id)
            found.append(lobby.queue("tictactoe"))
        matches = [await d for d in found]
        for n, match in enumerate(matches):
            session = await connect_game(reactor, match)
            self.addCleanup(session.disconnect)
            sessions.append(session)
            drivers.append(BotDriver(session, GAME.make_bot(players[n], random.Random(n)),
                                     think_time=0.0, clock=reactor))  # fmt: skip
        match_id = matches[0].game_id
        watcher = await self.client(self.second, "eve")
        self.assertEqual((await watcher.spectate(match_id)).game_id, match_id)
        for driver in drivers:
            driver.attach()
        for session in sessions:
            final = await session.finished
            self.assertEqual(final["p"], "finished")
        for driver in drivers:
            driver.cancel()

        async def ended() -> bool:
            return await self.answer(watcher, match_id) == "match_ended"

        # (The host marks the match ended as it ends, on Redis: within moments, well
        # inside the 3 s its room lingers for its players.)
        await until(ended, "spectate answered match_ended", timeout=2.0, every=0.1)
        other = await self.client(self.first, "ann")
        self.assertEqual(await self.refused(other, match_id), "match_ended")
