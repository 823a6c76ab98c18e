"""Lobbies and game hosts as separate `twistd -n vinom` processes on one real Redis.

Two `twistd vinom lobby` processes and `twistd vinom host` processes share a redis-server
started by the test (tests/support/redis_server.py) and one `--token-key-file`:
1,000 players queued through both lobbies are matched exactly once, placed on a
live game host, and play to the end; a player reconnects through the other
lobby; a game host killed with SIGKILL stops getting matches; a browser's
WebSocket player gets the game host's own `/game` URL in `match_found` and
plays there.
"""

# slow: starts twistd vinom processes on Redis

from __future__ import annotations

import collections
import json
import os
import random
import re
import sys
from typing import Any
from urllib.parse import urlsplit

from attrs import evolve
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.lobby import hello
from tests.lobby.test_websocket_lobby import is_type
from tests.server.test_ops import http_get, metric_value
from tests.server.test_twistd import ROOT, RUN_TWISTD, Collect
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.redis_server import RedisServer
from tests.support.sentinel import start_sentinel_cluster
from tests.support.waiting import until
from tests.support.websocket_client import HandshakeRefused, connect_game_socket, connect_websocket
from vinom.client.bots import BotDriver, BotReport, LobbyAddress, play_bot, run_bots
from vinom.client.game import connect_game
from vinom.client.lobby import connect_lobby
from vinom.cluster.client import RedisClient, parse_redis_url
from vinom.cluster.placement import DEFAULT_PLACEMENT
from vinom.games.registry import GameRegistry
from vinom.protocol.tokens import PublicToken

GAME = GameRegistry.from_plugins().get("tictactoe")
# Players in the exactly-once test (issue #14), half through each lobby, and how
# many of them are between connecting and the end of their match at once: the
# test process plays every bot, and on a loaded 2-core machine a thousand TLS
# handshakes at once would only measure the backlog.
PLAYERS = 1000
IN_FLIGHT = 200


async def play_on(session: Any, found: Any, player_id: str, rng: random.Random) -> Any:
    """Resume `session` on the game host `found` (a reconnect's match_found) with a bot
    of GAME for `player_id` at the helm; the match's final state."""
    resumed = await connect_game(reactor, found, session=session)
    driver = BotDriver(resumed, GAME.make_bot(player_id, rng), think_time=0.0, clock=reactor)
    driver.attach()
    try:
        return await session.finished
    finally:
        driver.cancel()


class Process:
    def __init__(self, transport: Any, output: Collect, data_dir: str) -> None:
        self.transport = transport
        self.output = output
        self.data_dir = data_dir

    @property
    def text(self) -> str:
        return self.output.output.decode(errors="replace")


class ClusterTestCase(TestCase):
    """A real Redis and `twistd vinom` processes on it; helpers to start and read them.

    With `sentinel` the Redis is a `SentinelCluster` (a master, a replica and three
    sentinels: tests/support/sentinel.py), `self.sentinels`, and the processes are
    given its `redis+sentinel://` URL."""

    timeout = 180
    # What each process runs (`python -c`): twistd.
    program = RUN_TWISTD
    sentinel = False

    async def setUp(self) -> None:  # type: ignore[override]
        if self.sentinel:
            self.sentinels = await start_sentinel_cluster(self)
            self.redis_url = self.sentinels.url
        else:
            self.redis = RedisServer(os.path.abspath(self.mktemp()))
            await self.redis.start()
            self.addCleanup(self.redis.stop)
            self.redis_url = self.redis.url
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
            sys.executable, "-c", self.program, "-n", "--pidfile=", "vinom",
            role, "--redis", self.redis_url, "--token-key-file", self.key_file,
            "--data-dir", data_dir, "--websocket", "none", "--ops-port", "none",
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
            # In the host's own process unless the test asks for worker processes.
            if not {"--host-workers", "--matches"} & set(extra):
                args += ["--matches", "here"]
        transport = reactor.spawnProcess(output, sys.executable, [*args, *extra], env=env,
                                         path=data_dir)  # fmt: skip
        process = Process(transport, output, data_dir)
        self.addCleanup(self._kill, process)
        # A lobby says where it listens once it does (`lobby_address` reads that line).
        await self.output_has(process, "vinom: lobby on" if role == "lobby" else "registered")
        return process

    async def _kill(self, process: Process) -> None:
        if not process.output.ended.called:
            process.transport.signalProcess("KILL")
            await process.output.ended
        # Kept in the test's directory under _trial_temp: what each process said, for
        # reading after a failure (a CI run leaves no other trace of it).
        with open(os.path.join(process.data_dir, "output.log"), "wb") as log:
            log.write(process.output.output)

    async def output_has(self, process: Process, text: str, limit: float = 30.0) -> None:
        def said() -> bool:
            if text in process.text:
                return True
            if process.output.ended.called:
                last = process.text.strip().splitlines()[-1:] or ["nothing"]
                self.fail(f"the process ended before it said {text!r}; its last line: "
                          f"{last[0]}\nall it said:\n{process.text}")  # fmt: skip
            return False

        await until(said, lambda: f"{text!r} in:\n{process.text}", limit, every=0.05)

    def lobby_address(self, process: Process) -> LobbyAddress:
        port = re.search(r"lobby on vinom-ssl:(\d+)", process.text)
        assert port is not None, process.text
        return LobbyAddress("127.0.0.1", int(port.group(1)),
                            os.path.join(process.data_dir, "dev-cert.pem"))  # fmt: skip

    def host_id(self, process: Process) -> str:
        found = re.search(r"game host id (h-[0-9a-f]+)", process.text)
        assert found is not None, process.text
        return found.group(1)

    async def redis_call(self, command: str, *args: Any) -> Any:
        # One connection: a pool's others, still connecting when it disconnects,
        # would log errors.
        client = RedisClient.open(evolve(parse_redis_url(self.redis_url), pool_size=1), reactor)
        try:
            return await client.bounded(client.handler.execute_command(command, *args))
        finally:
            await client.disconnect()

    def check_matched_once(self, reports: list[BotReport], players: int) -> None:
        problems = [r for r in reports if r.outcome != "finished"]
        self.assertEqual(problems[:5], [], f"{len(problems)} of {len(reports)} did not finish")
        self.assertEqual(len({r.player_id for r in reports}), players)
        by_match = collections.Counter(r.match_id for r in reports)
        # Every player in exactly one match, every match of exactly two players.
        self.assertEqual(set(by_match.values()), {2})
        self.assertEqual(len(by_match), players // 2)

    def hosted_matches(self, host: Process) -> list[str]:
        """The ids of the matches a game host started, in order, from its log."""
        return re.findall(r"match (m-[0-9a-f]+) \(\w+\) hosted on port", host.text)


class ScalingTests(ClusterTestCase):
    async def test_players_across_two_lobbies_are_matched_once_and_play_to_the_end(
        self,
    ) -> None:
        host = await self.start("host", ports=IN_FLIGHT)
        lobbies = [self.lobby_address(await self.start("lobby")) for _ in "ab"]
        started = reactor.seconds()
        limit = DeferredSemaphore(IN_FLIGHT)
        rng = random.Random(1)

        def bot(i: int) -> Deferred[BotReport]:
            # Alternately through each lobby: every match may pair players of both.
            return limit.run(lambda: Deferred.fromCoroutine(
                play_bot(reactor, lobbies[i % 2], GAME, f"{'ab'[i % 2]}{i}",
                         rng=random.Random(rng.random()))
            ))  # fmt: skip

        reports = await gatherResults([bot(i) for i in range(PLAYERS)])
        elapsed = reactor.seconds() - started
        # Both lobbies had their half of the players, each matched once, every match
        # of two players played to `finished`.
        for half in (reports[0::2], reports[1::2]):
            self.assertEqual(len({r.player_id for r in half if r.outcome == "finished"}),
                             PLAYERS // 2)  # fmt: skip
        self.check_matched_once(reports, PLAYERS)
        # The host ran exactly these matches, each once: no match of a player who
        # was matched twice, none with nobody to play it.
        hosted = self.hosted_matches(host)
        self.assertEqual(sorted(hosted), sorted({r.match_id for r in reports}))
        print(f"\n{PLAYERS} players, {PLAYERS // 2} matches through two lobbies: "
              f"{elapsed:.1f} s", file=sys.stderr)  # fmt: skip

    async def test_reconnect_through_the_other_lobby_resumes_the_match(self) -> None:
        await self.start("host", "--limit", "session-timeout=1", ports=2)
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
        await until(lambda: driver.actions_sent >= 1 and driver.in_flight is None,
                    "a move answered")  # fmt: skip
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
        final = await play_on(session, refound, welcome.player_id, random.Random(3))
        self.assertEqual(final["p"], "finished")
        theirs = await steady
        self.assertEqual(theirs.outcome, "finished")
        self.assertEqual(theirs.match_id, found.game_id)
        await session.disconnect()

    async def test_a_killed_host_gets_no_more_matches_and_they_go_to_the_other(self) -> None:
        # The doomed host has the most free ports: the idlest, it read first while alive.
        doomed = await self.start("host", ports=8)
        survivor = await self.start("host", ports=6)
        lobbies = [await self.start("lobby") for _ in "ab"]
        first, second = [self.lobby_address(lobby) for lobby in lobbies]
        doomed_id = self.host_id(doomed)
        ttl, refresh = DEFAULT_PLACEMENT.host_ttl, DEFAULT_PLACEMENT.refresh_every
        # Its registration lapses `ttl` after its last heartbeat, by Redis's clock.
        self.assertTrue(0 < await self.redis_call("PTTL", f"vinom:host:{doomed_id}")
                        <= ttl * 1000)  # fmt: skip
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed_at = reactor.seconds()

        async def lapse() -> float:
            # When the dead host's registration lapses, measured from the kill.
            async def gone() -> bool:
                return not await self.redis_call("EXISTS", f"vinom:host:{doomed_id}")

            await until(gone, "the dead host's registration to lapse", timeout=ttl + 20,
                        every=0.1)  # fmt: skip
            return reactor.seconds() - killed_at

        lapsed = Deferred.fromCoroutine(lapse())
        # Matches formed right away: a dead host reads no request; the survivor takes
        # them all.
        early = await gatherResults(
            [
                run_bots(reactor, first, GAME, 2, seed=3, name_prefix="e"),
                run_bots(reactor, second, GAME, 2, seed=4, name_prefix="f"),
            ]
        )
        self.check_matched_once(early[0] + early[1], 4)
        # Within the heartbeat TTL and a refresh the host is gone from the registry
        # (its TTL checked on Redis above).
        lapsed_after = await lapsed
        print(f"\nthe killed host's registration lapsed {lapsed_after:.2f} s after the kill",
              file=sys.stderr)  # fmt: skip
        left = killed_at + ttl + refresh - reactor.seconds()
        if left > 0:
            await deferLater(reactor, left, lambda: None)
        late = await gatherResults(
            [
                run_bots(reactor, first, GAME, 4, seed=5, name_prefix="g"),
                run_bots(reactor, second, GAME, 4, seed=6, name_prefix="h"),
            ]
        )
        reports = early[0] + early[1] + late[0] + late[1]
        self.check_matched_once(late[0] + late[1], 8)
        self.assertNotIn(doomed_id, await self.redis_call("SMEMBERS", "vinom:hosts"))
        # Every match ran on the survivor, at its address; no lobby gave one up.
        for report in reports:
            self.assertIn(f"match {report.match_id} ", survivor.text)
        for lobby in lobbies:
            self.assertNotIn("no game host took match", lobby.text)

    async def test_a_party_split_across_two_lobbies_is_placed_once_with_two_solos(
        self,
    ) -> None:
        # Parties in Redis: Ann leads on one lobby, Bob joins through the other;
        # a solo player on each. The maze seats four here.
        from tests.support.lobby_players import Player, connect_player

        await self.start("host", ports=2)
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

    async def test_a_browser_plays_on_the_game_hosts_own_web_server(self) -> None:
        # The host serves /game on its own web server, with its own certificate; the
        # lobby's web server serves /lobby only.
        host_web = free_tcp_port()
        host = await self.start(
            "host", "--websocket", f"ssl:{host_web}:interface=127.0.0.1", ports=2
        )
        lobby_web = free_tcp_port()
        lobby = self.lobby_address(
            await self.start("lobby", "--websocket", f"ssl:{lobby_web}:interface=127.0.0.1")
        )
        game_url = f"wss://127.0.0.1:{host_web}/game"
        record = await self.redis_call("GET", f"vinom:host:{self.host_id(host)}")
        self.assertEqual(json.loads(record)["game_url"], game_url)
        web = await connect_websocket(self, lobby_web, lobby.trust)
        welcome = await web.request(hello("web", id="h"))
        await web.request({"type": "queue", "game": "tictactoe", "id": 1})
        udp = Deferred.fromCoroutine(
            play_bot(reactor, lobby, GAME, "udp", rng=random.Random(1))
        )
        found = await web.when(is_type("match_found"))
        self.assertEqual(found["game_url"], game_url)
        host_trust = os.path.join(host.data_dir, "dev-cert.pem")
        with self.assertRaises(HandshakeRefused) as refused:
            await connect_game_socket(self, lobby_web, lobby.trust, None)
        self.assertIn("[404]", str(refused.exception))
        socket = await connect_game_socket(self, urlsplit(game_url).port or 0, host_trust, None)
        driver = BotDriver(socket.session, GAME.make_bot(welcome["player_id"], random.Random(2)),
                           clock=reactor)  # fmt: skip
        driver.attach()
        socket.attach(PublicToken.from_json(found["token"]))
        final = await socket.session.finished
        driver.cancel()
        self.assertEqual(final["p"], "finished", final)
        self.assertGreater(driver.actions_sent, 0)
        theirs = await udp
        self.assertEqual((theirs.outcome, theirs.match_id), ("finished", found["game_id"]))
        self.assertEqual(theirs.result, final["result"])
        self.assertEqual((await socket.closed).code, 1000)
        self.assertIn(f"match {found['game_id']} ", host.text)


class OperationsEndpointTests(ClusterTestCase):
    async def test_a_lobby_and_a_host_each_serve_their_own_figures(self) -> None:
        host_ops, lobby_ops = free_tcp_port(), free_tcp_port()
        await self.start("host", "--ops-port", f"tcp:{host_ops}:interface=127.0.0.1", ports=2)
        lobby = self.lobby_address(
            await self.start("lobby", "--ops-port", f"tcp:{lobby_ops}:interface=127.0.0.1")
        )

        async def metrics(port: int) -> bytes:
            code, text = await http_get(f"http://127.0.0.1:{port}/metrics")
            self.assertEqual(code, 200)
            return text

        async def metric_until(port: int, name: str, value: float) -> bytes:
            seen: list[bytes] = []

            async def reached() -> bool:
                seen.append(await metrics(port))
                return metric_value(seen[-1], name) == value

            await until(reached, lambda: f"{name} to be {value}:\n{seen[-1].decode()}",
                        every=0.05)  # fmt: skip
            return seen[-1]

        for port in (host_ops, lobby_ops):
            self.assertEqual(await http_get(f"http://127.0.0.1:{port}/health"), (200, b"ok\n"))
            self.assertEqual(await http_get(f"http://127.0.0.1:{port}/ready"), (200, b"ready\n"))
        # The host's own ports; the lobby sees them in the registry.
        self.assertEqual(metric_value(await metrics(host_ops), "vinom_free_ports"), 2)
        await metric_until(lobby_ops, "vinom_free_ports", 2)

        # A queued player is in their lobby's figures, not the host's.
        ann = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
        await ann.hello("Ann")
        ann.queue("tictactoe").addErrback(lambda _: None)
        text = await metric_until(lobby_ops, 'vinom_queue_depth{game="tictactoe"}', 1)
        self.assertEqual(metric_value(text, "vinom_lobby_connections"), 1)
        self.assertEqual(metric_value(await metrics(host_ops), "vinom_lobby_connections"), 0)
        await ann.close()
        await metric_until(lobby_ops, 'vinom_queue_depth{game="tictactoe"}', 0)

        # A match: formed and placed by the lobby, played on the host.
        reports = await gatherResults([
            Deferred.fromCoroutine(
                play_bot(reactor, lobby, GAME, f"bot{n}", rng=random.Random(n))
            )
            for n in range(2)
        ])
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        text = await metric_until(lobby_ops, "vinom_matches_formed_total", 1)
        host_text = await metric_until(host_ops, "vinom_handshakes_completed_total", 2)
        self.assertGreater(metric_value(host_text, 'vinom_datagrams_total{direction="in"}'), 10)
        self.assertEqual(metric_value(text, "vinom_handshakes_completed_total"), 0)
