"""Lobbies and game hosts as separate `twistd -n vinom` processes on one real Redis.

Two `--role lobby` processes and `--role host` processes share a redis-server
started by the test (tests/redis_server.py) and one `--token-key-file`:
players queued through either lobby are matched exactly once, placed on a
live game host, and play to the end; a player reconnects through the other
lobby; a game host killed with SIGKILL stops getting matches.
"""

from __future__ import annotations

import collections
import os
import random
import re
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.redis_server import RedisServer, free_tcp_port
from tests.servers import free_udp_range
from tests.test_twistd import ROOT, RUN_TWISTD, Collect
from vinom.client.bots import BotDriver, BotReport, LobbyAddress, play_bot, run_bots
from vinom.client.game import connect_game
from vinom.client.lobby import connect_lobby
from vinom.games.registry import GameRegistry
from vinom.redis import RedisClient, parse_redis_url

GAME = GameRegistry.from_plugins().get("tictactoe")
# Players in the exactly-once test; `python -m benchmarks match --lobbies 2 --redis`
# runs many more (docs/performance.md).
PLAYERS = 40


class Process:
    def __init__(self, transport: Any, output: Collect, data_dir: str) -> None:
        self.transport = transport
        self.output = output
        self.data_dir = data_dir

    @property
    def text(self) -> str:
        return self.output.output.decode(errors="replace")


class ScalingTests(TestCase):
    timeout = 180

    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = RedisServer(os.path.abspath(self.mktemp()))
        await self.redis.start()
        self.addCleanup(self.redis.stop)
        self.key_file = os.path.abspath(self.mktemp())
        with open(self.key_file, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(self.key_file, 0o600)

    async def start(self, role: str, *extra: str, ports: int = 8) -> Process:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        output = Collect()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        args = [
            sys.executable, "-c", RUN_TWISTD, "-n", "--pidfile=", "vinom",
            "--role", role, "--redis", self.redis.url, "--token-key-file", self.key_file,
            "--data-dir", data_dir, "--websocket", "none", "--ops-port", "none",
            "--host-workers", "0",
        ]  # fmt: skip
        if role == "lobby":
            args += ["--lobby", f"ssl:{free_tcp_port()}:interface=127.0.0.1"]
            # Every test player comes from 127.0.0.1: lift the per-address limits.
            for limit in ("max-connections-per-ip", "max-pending-per-ip", "max-matches-per-ip",
                          "queue-burst", "queue-rate"):  # fmt: skip
                args += [f"--{limit}", "10000"]
        else:
            udp = free_udp_range(ports)
            args += ["--udp-ports", f"{udp}-{udp + ports - 1}"]
        transport = reactor.spawnProcess(output, sys.executable, [*args, *extra], env=env,
                                         path=data_dir)  # fmt: skip
        process = Process(transport, output, data_dir)
        self.addCleanup(self._kill, process)
        await self.output_has(process, "starting on" if role == "lobby" else "registered")
        return process

    async def _kill(self, process: Process) -> None:
        if not process.output.ended.called:
            process.transport.signalProcess("KILL")
            await process.output.ended

    async def output_has(self, process: Process, text: str, limit: float = 30.0) -> None:
        waited = 0.0
        while text not in process.text:
            self.assertFalse(process.output.ended.called, process.text)
            self.assertLess(waited, limit, process.text)
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    def lobby_address(self, process: Process) -> LobbyAddress:
        port = re.search(r"lobby on ssl:(\d+)", process.text)
        assert port is not None, process.text
        return LobbyAddress("127.0.0.1", int(port.group(1)),
                            os.path.join(process.data_dir, "dev-cert.pem"))  # fmt: skip

    def host_id(self, process: Process) -> str:
        found = re.search(r"game host id (h-[0-9a-f]+)", process.text)
        assert found is not None, process.text
        return found.group(1)

    async def redis_call(self, command: str, *args: Any) -> Any:
        client = RedisClient.open(parse_redis_url(self.redis.url), reactor)
        try:
            return await client.bounded(client.handler.execute_command(command, *args))
        finally:
            await client.disconnect()

    def check_matched_once(self, reports: list[BotReport], players: int) -> None:
        problems = [r for r in reports if r.outcome != "finished"]
        self.assertEqual(problems, [])
        self.assertEqual(len({r.player_id for r in reports}), players)
        by_match = collections.Counter(r.match_id for r in reports)
        # Every player in exactly one match, every match of exactly two players.
        self.assertEqual(set(by_match.values()), {2})
        self.assertEqual(len(by_match), players // 2)

    async def test_players_across_two_lobbies_are_matched_once_and_play_to_the_end(
        self,
    ) -> None:
        host = await self.start("host", ports=PLAYERS // 2)
        first, second = [self.lobby_address(await self.start("lobby")) for _ in "ab"]
        reports = await gatherResults(
            [
                run_bots(reactor, first, GAME, PLAYERS // 2, seed=1, name_prefix="a"),
                run_bots(reactor, second, GAME, PLAYERS // 2, seed=2, name_prefix="b"),
            ]
        )
        self.check_matched_once(reports[0] + reports[1], PLAYERS)
        # The host says which matches it ran; they are these.
        for report in reports[0] + reports[1]:
            self.assertIn(f"match {report.match_id} ", host.text)

    async def test_reconnect_through_the_other_lobby_resumes_the_match(self) -> None:
        await self.start("host", "--session-timeout", "1", ports=2)
        first, second = [self.lobby_address(await self.start("lobby")) for _ in "ab"]
        steady = Deferred.fromCoroutine(
            play_bot(reactor, second, GAME, "steady", rng=random.Random(1))
        )
        lobby = await connect_lobby(reactor, first.host, first.port, trust=first.trust)
        welcome = await lobby.hello("flaky")
        found = await lobby.queue("tictactoe")
        session = await connect_game(reactor, found)
        driver = BotDriver(session, GAME.make_bot(welcome.player_id, random.Random(2)),
                           think_time=0.2, clock=reactor)  # fmt: skip
        driver.attach()
        while not (driver.actions_sent >= 1 and driver.in_flight is None):
            await deferLater(reactor, 0.05, lambda: None)
        driver.cancel()
        # The socket goes without a word to the host; the player comes back through
        # the other lobby, which never saw them, with their id and secret.
        assert session.protocol is not None and session.protocol.transport is not None
        await session.protocol.transport.stopListening()
        again = await connect_lobby(reactor, second.host, second.port, trust=second.trust)
        refound = await again.reconnect(welcome.player_id, welcome.secret)
        self.assertEqual(refound.game_id, found.game_id)
        self.assertEqual((refound.host, refound.port), (found.host, found.port))
        self.assertNotEqual(refound.token["token"], found.token["token"])
        resumed = await connect_game(reactor, refound, session=session)
        driver = BotDriver(resumed, GAME.make_bot(welcome.player_id, random.Random(3)),
                           think_time=0.0, clock=reactor)  # fmt: skip
        driver.attach()
        final = await session.finished
        driver.cancel()
        self.assertEqual(final["p"], "finished")
        theirs = await steady
        self.assertEqual(theirs.outcome, "finished")
        self.assertEqual(theirs.match_id, found.game_id)
        await session.disconnect()

    async def test_a_killed_host_gets_no_more_matches_and_they_go_to_the_other(self) -> None:
        # The doomed host has the most free ports: lobbies prefer it while it is listed.
        doomed = await self.start("host", ports=8)
        survivor = await self.start("host", ports=6)
        first, second = [self.lobby_address(await self.start("lobby")) for _ in "ab"]
        doomed_id = self.host_id(doomed)
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed_at = reactor.seconds()
        # Matches formed right away may be offered to the dead host first; it never
        # claims them, and the lobby offers them to the next host.
        early = await gatherResults(
            [
                run_bots(reactor, first, GAME, 2, seed=3, name_prefix="e"),
                run_bots(reactor, second, GAME, 2, seed=4, name_prefix="f"),
            ]
        )
        self.check_matched_once(early[0] + early[1], 4)
        # Within the heartbeat TTL (6 s) and a refresh (1 s) the host is gone from
        # the registry: no lobby offers it anything more.
        ttl, refresh = 6.0, 1.0
        left = killed_at + ttl + refresh - reactor.seconds()
        if left > 0:
            await deferLater(reactor, left, lambda: None)
        offered_before = await self.redis_call("LLEN", f"vinom:place:{doomed_id}")
        late = await gatherResults(
            [
                run_bots(reactor, first, GAME, 4, seed=5, name_prefix="g"),
                run_bots(reactor, second, GAME, 4, seed=6, name_prefix="h"),
            ]
        )
        reports = early[0] + early[1] + late[0] + late[1]
        self.check_matched_once(late[0] + late[1], 8)
        self.assertEqual(await self.redis_call("LLEN", f"vinom:place:{doomed_id}"),
                         offered_before)  # fmt: skip
        self.assertNotIn(doomed_id, await self.redis_call("SMEMBERS", "vinom:hosts"))
        # Every match ran on the survivor, at its address.
        for report in reports:
            self.assertIn(f"match {report.match_id} ", survivor.text)
        # The early ones were offered to the dead host first, and taken back.
        self.assertGreater(offered_before, 0)

    async def test_a_party_split_across_two_lobbies_is_placed_once_with_two_solos(
        self,
    ) -> None:
        # Parties in Redis: Ann leads on one lobby, Bob joins through the other;
        # a solo player on each. The maze seats four here.
        from tests.test_integration_parties import Player, connect_player

        await self.start("host", "--match-size", "maze=4", ports=2)
        lobbies = [self.lobby_address(await self.start("lobby", "--match-size", "maze=4"))
                   for _ in "ab"]  # fmt: skip
        ann = await connect_player(self, lobbies[0], "Ann")
        bob = await connect_player(self, lobbies[1], "Bob")
        party = (await ann.request({"type": "party_create"}))["party"]
        self.assertEqual((await bob.request({"type": "party_join", "code": party["code"]}))
                         ["party"]["leader"], ann.player_id)  # fmt: skip
        update = await ann.of_type("party_update")
        self.assertEqual(update["player_id"], bob.player_id)
        queued = await ann.request({"type": "queue", "game": "maze"})
        self.assertEqual(queued["party_id"], party["party_id"])
        self.assertEqual((await bob.of_type("queued"))["party_id"], party["party_id"])
        solos: list[Player] = []
        for lobby, name in zip(lobbies, ("Sol", "Sue"), strict=True):
            solo = await connect_player(self, lobby, name)
            self.assertEqual((await solo.request({"type": "queue", "game": "maze"}))["type"],
                             "queued")  # fmt: skip
            solos.append(solo)
        found = [await p.of_type("match_found") for p in (ann, bob, *solos)]
        # One match, placed once: the same game host address for all four.
        self.assertEqual(len({(f["game_id"], f["host"], f["port"]) for f in found}), 1)
        self.assertEqual([f["seat"] for f in found[:2]], [0, 1])
        self.assertEqual(sorted(f["seat"] for f in found), [0, 1, 2, 3])
