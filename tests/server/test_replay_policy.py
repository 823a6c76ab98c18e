"""`/replays/<id>` over real HTTPS serves finished matches only, under the rule
`spectate` follows (vinom.match.watch_refusal): a match still playing, and the match
of a private room that lets nobody watch, are the same 404 as no record at all.

A whole server of `twistd vinom` (`--web-replays`) runs in this process on real
sockets; rooms are opened through its lobby by a real lobby client, each filled
with the game's bot. Their owners never connect to the game, so each match plays
until its connect deadline aborts it (`players_missing`): its record then ends.
"""

from __future__ import annotations

import msgpack
from twisted.internet import reactor
from twisted.internet.ssl import Certificate
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, readBody

from tests.support.ports import free_tcp_port
from tests.support.servers import RunningServer, start_server
from tests.support.waiting import until
from vinom.client.lobby import MatchFound, connect_lobby
from vinom.hosting.records import RecordIndex

NOT_FOUND = (404, b"no finished match has this id")


class ReplayPolicyTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        port = free_tcp_port()
        self.server: RunningServer = await start_server(
            self, "--websocket", f"ssl:{port}:interface=127.0.0.1", "--web-replays",
            "--limit", "connect-deadline=4", ports=4,
        )  # fmt: skip
        self.base = f"https://localhost:{port}"

    async def get(self, match_id: str) -> tuple[int, bytes]:
        trust = self.server.lobby.trust
        assert trust is not None
        with open(trust, "rb") as f:
            policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(f.read()))
        response = await Agent(reactor, contextFactory=policy).request(
            b"GET", f"{self.base}/replays/{match_id}".encode()
        )
        return response.code, await readBody(response)

    async def room_match(self, name: str, *, private: bool) -> MatchFound:
        where = self.server.lobby
        owner = await connect_lobby(reactor, where.host, where.port, trust=where.trust)
        self.addCleanup(owner.close)
        await owner.hello(name)
        await owner.create_room("tictactoe", private=private)
        await owner.add_bot()
        return await owner.room_match()

    def ended(self, match_id: str) -> bool:
        host = self.server.hosting.host_of(match_id)
        return host is None or host.outcome(match_id) is not None

    async def test_only_finished_matches_that_may_be_watched_are_served(self) -> None:
        public = await self.room_match("ann", private=False)
        private = await self.room_match("bob", private=True)
        records = RecordIndex(f"{self.server.data_dir}/records")
        # On disk and still playing: no replay of it (it would show the play live).
        await until(lambda: records.find(public.game_id) is not None, "the record on disk")
        self.assertFalse(self.ended(public.game_id))
        self.assertEqual(await self.get(public.game_id), NOT_FOUND)
        await until(lambda: self.ended(public.game_id) and self.ended(private.game_id),
                    "both matches aborted at their connect deadline", timeout=15)  # fmt: skip
        status, body = await self.get(public.game_id)
        self.assertEqual(status, 200, body)
        self.assertEqual(msgpack.unpackb(body)["end"]["phase"], "aborted")
        # Ended, but its room let nobody watch: never served, as if there were no record.
        self.assertIsNotNone(records.find(private.game_id))
        self.assertEqual(await self.get(private.game_id), NOT_FOUND)
        self.assertEqual(await self.get("m-0123456789abcdef"), NOT_FOUND)
