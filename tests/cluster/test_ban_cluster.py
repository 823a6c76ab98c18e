"""A ban reaches players who are online, on every lobby of a real cluster.

Two `twistd vinom lobby` processes signing players in with `--auth device` and a
`twistd vinom host` on a real Redis share one real PostgreSQL account database
(tests/support). Ann, queued through lobby B, plays a match of tictactoe against
Bob (lobby A) and has signed in again on lobby B meanwhile; Dave waits in lobby
A's queue. The operator bans Ann and Dave with `vinom accounts ban` as a child
process on the same database: within seconds each lobby connection is told
`banned` (reason and until) and closed, Dave's ticket leaves the queue, Ann is
taken out of the match as a leaver (her game session closed, Bob wins by
`opponent_left`), and each lobby counts what it ended in its `/metrics`.
"""

# slow: starts Redis, PostgreSQL, three twistd vinom processes and vinom accounts

from __future__ import annotations

import os
import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.cluster.test_scaling import ClusterTestCase
from tests.server.test_ops import http_get, metric_value
from tests.support.lobby_players import connect_raw
from tests.support.ports import free_tcp_port
from tests.support.postgres_server import postgres_database
from tests.support.servers import ROOT
from tests.support.waiting import until
from tests.test_integration_accounts import RUN_CLI, Frame, device, hello
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession, connect_game

DAY = 86400


class BanInClusterTests(ClusterTestCase):
    timeout = 120

    async def vinom_accounts(self, *args: str) -> tuple[str, str, int]:
        """`vinom accounts ARGS`, as the operator runs it beside the cluster."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_CLI, "accounts", *args, "--data-dir", data_dir],
            env=env, path=data_dir,
        )  # fmt: skip
        return out.decode(), err.decode(), code

    async def test_a_ban_ends_the_players_lobby_connections_and_game_seat(self) -> None:
        database = await postgres_database(self)
        accounts = ("--auth", "device", "--database", database)
        await self.start("host", ports=4)
        ops_a, ops_b = free_tcp_port(), free_tcp_port()
        lobby_a = self.lobby_address(await self.start(
            "lobby", *accounts, "--ops-port", f"tcp:{ops_a}:interface=127.0.0.1"))  # fmt: skip
        lobby_b = self.lobby_address(await self.start(
            "lobby", *accounts, "--ops-port", f"tcp:{ops_b}:interface=127.0.0.1"))  # fmt: skip

        # Ann (lobby B) and Bob (lobby A) are matched and join their game.
        ann_auth, bob_auth, dave_auth = device(), device(), device()
        ann = LobbyPlayer(reactor, lobby_b, "Ann", auth=ann_auth)
        bob = LobbyPlayer(reactor, lobby_a, "Bob", auth=bob_auth)
        found_ann, found_bob = ann.find_match("tictactoe"), bob.find_match("tictactoe")
        sessions: list[GameSession] = []
        for found in (await found_ann, await found_bob):
            session = await connect_game(reactor, found)
            self.addCleanup(session.disconnect)
            sessions.append(session)
        ann_game, bob_game = sessions
        assert ann.welcome is not None and bob.welcome is not None
        ann_id, bob_id = ann.welcome.player_id, bob.welcome.player_id
        await until(lambda: ann_game.phase == "playing" and bob_game.phase == "playing",
                    "both players in the game")  # fmt: skip
        # Ann signs in again on lobby B while she plays (match_found closed her first
        # connection); Dave waits in lobby A's queue.
        ann_lobby = await connect_raw(self, lobby_b)
        self.assertEqual((await hello(ann_lobby, ann_auth, "Ann"))["player_id"], ann_id)
        dave = await connect_raw(self, lobby_a)
        dave_id = (await hello(dave, dave_auth, "Dave"))["player_id"]
        queued = await dave.request({"type": "queue", "game": "maze"})
        self.assertEqual(queued["type"], "queued", queued)

        # The operator bans them, beside the cluster, on its database.
        for player_id, duration in ((ann_id, "1d"), (dave_id, None)):
            args = ["ban", player_id, "--reason", "cheating", "--database", database,
                    *(["--duration", duration] if duration else [])]  # fmt: skip
            out, err, code = await self.vinom_accounts(*args)
            self.assertEqual((code, err), (0, ""), out)
        banned_at = reactor.seconds()

        told: dict[str, Frame] = {}
        for name, player in (("ann", ann_lobby), ("dave", dave)):
            told[name] = await player.of_type("error")
            await player.closed
        waited = reactor.seconds() - banned_at
        until_ann = told["ann"]["until"]
        self.assertEqual(
            {k: v for k, v in told["ann"].items() if k != "message"},
            {"type": "error", "code": "banned", "reason": "cheating", "until": until_ann,
             "id": None},
        )  # fmt: skip
        self.assertLess(abs(until_ann - (banned_at + DAY)), 60.0)
        self.assertEqual((told["dave"]["code"], told["dave"]["reason"], told["dave"]["until"]),
                         ("banned", "cheating", None))  # fmt: skip
        # Within a few read intervals (2 s each), however busy the machine.
        self.assertLess(waited, 20.0)

        # Ann is out of the match as a leaver: her session closed, Bob wins.
        result = await bob_game.finished
        self.assertEqual((result["p"], result["result"]["reason"]),
                         ("finished", "opponent_left"), result)  # fmt: skip
        self.assertEqual(result["result"]["winners"], [bob_id])
        await until(lambda: not ann_game.connected, "Ann's game session to close")

        # Each lobby counted what it ended: Dave's connection on A; Ann's connection and
        # her seat (she queued there) on B.
        async def ended(ops: int, what: str) -> float:
            _, page = await http_get(f"http://127.0.0.1:{ops}/metrics")
            return metric_value(page, f'vinom_lobby_bans_ended_total{{what="{what}"}}')

        self.assertEqual((await ended(ops_a, "connection"), await ended(ops_a, "seat")),
                         (1.0, 0.0))  # fmt: skip
        self.assertEqual((await ended(ops_b, "connection"), await ended(ops_b, "seat")),
                         (1.0, 1.0))  # fmt: skip
        # Dave's ticket left the queue, as at a disconnection.
        _, page = await http_get(f"http://127.0.0.1:{ops_a}/metrics")
        self.assertEqual(metric_value(page, 'vinom_queue_depth{game="maze"}'), 0.0)
