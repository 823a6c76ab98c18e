"""Faults of a scaled-out deployment, with real processes (issue #14).

`twistd -n vinom lobby|host` processes on a real redis-server
(tests/support/redis_server.py), as in tests/cluster/test_scaling.py: a lobby killed with
SIGKILL while its players are queued, and Redis killed and started again on
the same port (empty) while lobbies and a game host run, and a game host killed
with SIGKILL while it runs a match. Each test checks what docs/scaling.md ("When
something fails") documents, and prints how long it took: a lease's length is read
from Redis (its key's TTL, by Redis's clock) and what waits on it is checked by the
order of events (nothing dropped while the lease holds), not by a wall-clock bound a
busy machine breaks; the one bound kept is a promise the docs make, with its margin.
"""

# slow: starts game-host worker processes

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import time
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError, gatherResults
from twisted.internet.error import ConnectionClosed
from twisted.internet.task import deferLater

from tests.cluster.test_scaling import GAME, ClusterTestCase, Process
from tests.server.test_ops import http_get, metric_value
from tests.support.cut_proxy import CutProxy
from tests.support.lobby_players import PROTOCOL, Player, connect_player, connect_raw
from tests.support.ports import free_tcp_port
from tests.support.waiting import until
from vinom.client.bots import BotDriver, BotReport, LobbyAddress, play_bot, run_bots
from vinom.client.game import connect_game
from vinom.client.lobby import (
    LobbyClient,
    LobbyError,
    MatchFound,
    Queued,
    Welcome,
    connect_lobby,
)
from vinom.cluster.client import parse_redis_url
from vinom.cluster.placement import DEFAULT_PLACEMENT
from vinom.cluster.settings import DEFAULT_MATCHMAKER as MATCHMAKER
from vinom.cluster.settings import DEFAULT_PARTIES

# A lobby's lease lapses this long after its last heartbeat, and the next
# pass of a living lobby (every tick) drops its tickets.
LEASE = MATCHMAKER.lobby_lease
TICK = MATCHMAKER.tick_every
# Ranked players RATING_STEP apart never fit one window (base 100, no growth).
RATING_WINDOW = ("--rating-window", "tictactoe=100,0")
RATING_STEP = 1000.0
# A lobby looks for party members of dead lobbies this often.
PARTY_CHECK = DEFAULT_PARTIES.check_every
# The bound on each call of the player store (2 s by default).
REDIS_TIMEOUT = parse_redis_url("redis://127.0.0.1/0").timeout


def lobby_id(process: Process) -> str:
    found = re.search(r"matchmaker: lobby (l-[0-9a-f]+) on Redis", process.text)
    assert found is not None, process.text
    return found.group(1)


def report(what: str, seconds: float) -> None:
    print(f"\n{what}: {seconds:.2f} s", file=sys.stderr)


async def play_once_redis_is_back(lobby: LobbyAddress, name: str, *, seed: int,
                                  within: float = 20.0) -> BotReport:  # fmt: skip
    """A bot through `lobby`, started again while the lobby answers `unavailable`
    (its Redis connections not back yet), for up to `within` seconds."""
    tried: list[BotReport] = []

    async def played() -> BotReport | None:
        tried.append(await play_bot(reactor, lobby, GAME, name, rng=random.Random(seed)))
        unavailable = tried[-1].outcome == "error" and "unavailable" in (tried[-1].error or "")
        return None if unavailable else tried[-1]

    try:
        return cast(BotReport, await until(played, f"{name} served", timeout=within, every=0.2))
    except AssertionError:
        return tried[-1]  # still `unavailable`: the caller's assertion says so


async def play_match(welcome: Welcome, match: MatchFound, seed: int = 1) -> str:
    """Play `match` to its end with a bot of GAME for the player `welcome` names; the
    final phase."""
    session = await connect_game(reactor, match)
    driver = BotDriver(session, GAME.make_bot(welcome.player_id, random.Random(seed)),
                       clock=reactor)  # fmt: skip
    driver.attach()
    final = await session.finished
    driver.cancel()
    await session.disconnect()
    return str(final["p"])


class LobbyDeathTests(ClusterTestCase):
    timeout = 90

    async def test_a_killed_lobbys_queued_players_lapse_and_nobody_is_matched_with_them(
        self,
    ) -> None:
        sizes = ("--match-size", "maze=4")
        await self.start("host", ports=4)
        doomed = await self.start("lobby", *sizes)
        survivor = await self.start("lobby", *sizes)
        doomed_address = self.lobby_address(doomed)
        # Queued through the doomed lobby: one waits for tictactoe (two seats),
        # three for a maze of four. None of them can be matched yet.
        ghosts: list[Player] = []
        for name, game in (("g0", "tictactoe"), ("g1", "maze"), ("g2", "maze"), ("g3", "maze")):
            ghost = await connect_player(self, doomed_address, name)
            queued = await ghost.request({"type": "queue", "game": game})
            self.assertEqual(queued["type"], "queued")
            ghosts.append(ghost)
        ghost_ids = {g.player_id for g in ghosts}
        queues = ("vinom:mm:q:tictactoe:normal", "vinom:mm:q:maze:normal")

        async def queued_ghosts() -> set[str]:
            ids: set[str] = set()
            for queue in queues:
                ids |= {str(m) for m in await self.redis_call("ZRANGE", queue, 0, -1)}
            return ids & ghost_ids

        self.assertEqual(await queued_ghosts(), ghost_ids)
        dead_key = f"vinom:mm:lobby:{lobby_id(doomed)}"
        # The documented bound: lobby_lease after its last heartbeat (before the
        # kill), then the next pass of a living lobby. The lease's part is Redis's:
        # the key lapses by its TTL, at most LEASE, whatever this machine's load.
        self.assertTrue(0 < await self.redis_call("PTTL", dead_key) <= LEASE * 1000)
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed = time.monotonic()
        # Their TLS connections drop with the process.
        await gatherResults([g.closed for g in ghosts])

        # The tickets go once the lease has lapsed, never while it holds: queues read
        # first, then the lease, so a lease still there was there at the reading.
        async def dropped() -> bool:
            queued = await queued_ghosts()
            if await self.redis_call("EXISTS", dead_key):
                self.assertEqual(queued, ghost_ids, "dropped while the lease held")
            return not queued

        await until(dropped, "the dead lobby's tickets to leave the queues",
                    timeout=LEASE + TICK + 20)  # fmt: skip
        report("the dead lobby's tickets gone from the queues after", time.monotonic() - killed)

        # The living lobby's players: two play tictactoe to the end, four fill a maze;
        # each match is of them alone.
        address = self.lobby_address(survivor)
        pair = run_bots(reactor, address, GAME, 2, seed=7, name_prefix="t")
        mazers = [await connect_player(self, address, f"m{i}") for i in range(4)]
        for mazer in mazers:
            self.assertEqual((await mazer.request({"type": "queue", "game": "maze"}))["type"],
                             "queued")  # fmt: skip
        found = [await m.of_type("match_found") for m in mazers]
        self.assertEqual(len({f["game_id"] for f in found}), 1)
        played = await pair
        self.assertEqual([r.outcome for r in played], ["finished", "finished"])
        self.assertEqual(played[0].match_id, played[1].match_id)
        # Each match is of the living lobby's players alone, and no match ever
        # formed contains a player of the dead lobby.
        formed = await self.match_log()
        self.assertEqual(formed[found[0]["game_id"]], {m.player_id for m in mazers})
        self.assertEqual(formed[str(played[0].match_id)], {r.player_id for r in played})
        for match_id, players in formed.items():
            self.assertFalse(players & ghost_ids, match_id)

    async def test_players_who_come_back_at_once_are_never_matched_with_a_ghost(self) -> None:
        # 20 players wait in the ranked queue of a lobby that is killed, each alone
        # in their rating band (1000 apart, window 100), as do the players of a quiet
        # queue. They come back at once through the other lobby, as docs/client.md
        # says: hello with their previous identity, then queue again at their rating.
        await self.start("host", ports=24)
        doomed = await self.start("lobby", *RATING_WINDOW)
        survivor = await self.start("lobby", *RATING_WINDOW)
        there, here = self.lobby_address(doomed), self.lobby_address(survivor)
        count = 20
        welcomes: list[Welcome] = []
        lost: list[Deferred[MatchFound]] = []
        for i in range(count):
            client = await connect_lobby(reactor, there.host, there.port, trust=there.trust)
            welcomes.append(await client.hello(f"r{i}"))
            told: list[Queued] = []
            lost.append(client.queue("tictactoe", RATING_STEP * i, queue="ranked",
                                     on_queued=told.append))  # fmt: skip
            await until(lambda told=told: told, "queued")  # type: ignore[misc]
        ghost_ids = {w.player_id for w in welcomes}
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed = time.monotonic()
        for found in lost:
            with self.assertRaises(ConnectionClosed):
                await found

        async def player(name: str, rating: float, previous: Welcome | None = None,
                         ) -> tuple[Welcome, Deferred[MatchFound], LobbyClient]:  # fmt: skip
            client = await connect_lobby(reactor, here.host, here.port, trust=here.trust)
            self.addCleanup(lambda: None if client.protocol.closed.called else client.close())
            welcome = await client.hello(name, previous=previous)
            return welcome, client.queue("tictactoe", rating, queue="ranked"), client

        async def play(welcome: Welcome, found: Deferred[MatchFound]) -> tuple[str, str]:
            match = await found
            return await play_match(welcome, match), match.game_id

        # A new player queued right after the kill, in the first ghost's band.
        newcomer = await player("newcomer", 5.0)
        # Everyone comes back at once; the first ten find a new partner in their band.
        back = await gatherResults([
            Deferred.fromCoroutine(player(f"r{i}", RATING_STEP * i, welcomes[i]))
            for i in range(count)
        ])  # fmt: skip
        report("the 20 were queued again after", time.monotonic() - killed)
        partners = [await player(f"p{i}", RATING_STEP * i + 10) for i in range(1, 10)]
        games = [(newcomer[0], newcomer[1])] + [(w, f) for w, f, _ in back[:10]]
        games += [(w, f) for w, f, _ in partners]
        # Ten matches form: each of two living players, none with a ghost.
        async def ten_formed() -> dict[str, set[str]] | None:
            formed = await self.match_log()
            return formed if len(formed) >= 10 else None

        formed = cast(dict[str, set[str]], await until(ten_formed, "ten matches", timeout=30))
        ghostly = [m for m, players in formed.items() if players & ghost_ids]
        self.assertEqual(len(ghostly), 0, f"{len(ghostly)} of {len(formed)} matches had a ghost")
        played = await gatherResults([Deferred.fromCoroutine(play(w, f)) for w, f in games])
        # Each of the ten matches is of two living players, and was played to the end.
        self.assertEqual([p for p, _ in played], ["finished"] * 20)
        formed = await self.match_log()
        for welcome, (_, match_id) in zip([w for w, _ in games], played, strict=True):
            self.assertIn(welcome.player_id, formed[match_id])
        self.assertEqual(len(formed), 10)
        # The other ten are still queued, and no match ever had a ghost in it.
        for _, found, _ in back[10:]:
            self.assertFalse(found.called)
        for match_id, players in formed.items():
            self.assertFalse(players & ghost_ids, match_id)

    async def test_a_party_whose_members_lobby_died_is_told_and_not_matched_with_them(
        self,
    ) -> None:
        # Two parties of two, each split across the lobbies: Ann leads with Bob on
        # the doomed lobby (queued for a maze of four), Cid leads on the doomed
        # lobby with Dee (queued for dice, four).
        sizes = ("--match-size", "maze=4", "--match-size", "dice=4")
        await self.start("host", ports=4)
        doomed = await self.start("lobby", *sizes)
        survivor = await self.start("lobby", *sizes)
        there, here = self.lobby_address(doomed), self.lobby_address(survivor)
        ann, dee = [await connect_player(self, here, name) for name in ("Ann", "Dee")]
        bob, cid = [await connect_player(self, there, name) for name in ("Bob", "Cid")]
        for leader, member, game in ((ann, bob, "maze"), (cid, dee, "dice")):
            code = (await leader.request({"type": "party_create"}))["party"]["code"]
            self.assertEqual((await member.request({"type": "party_join", "code": code}))["type"],
                             "party")  # fmt: skip
            # The leader's lobby hears of the member through Redis: queueing before it
            # has is refused as `party_changed` (queue again), as a client would be.
            self.assertEqual((await leader.of_type("party_update"))["player_id"],
                             member.player_id)  # fmt: skip
            reply = await leader.request({"type": "queue", "game": game})
            self.assertEqual(reply["type"], "queued", reply)
        await dee.of_type("queued")
        dead_key = f"vinom:mm:lobby:{lobby_id(doomed)}"
        # Its lease lapses by Redis's clock, at most LEASE after its last heartbeat.
        self.assertTrue(0 < await self.redis_call("PTTL", dead_key) <= LEASE * 1000)
        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed = time.monotonic()
        # Right after the kill, two solo players for each game fill the seats each
        # party would make a match with.
        solos = {game: [await connect_player(self, here, f"{game}{i}") for i in range(2)]
                 for game in ("maze", "dice")}  # fmt: skip
        for game, players in solos.items():
            for solo in players:
                self.assertEqual((await solo.request({"type": "queue", "game": game}))["type"],
                                 "queued")  # fmt: skip
        # Ann and Dee are told their partner left, and that the party's ticket was
        # withdrawn, as for a member who leaves; not while the dead lobby's lease holds
        # (the frames read first, then the lease: one still there was there then).
        def told_left(player: Player) -> bool:
            return any(f["type"] == "party_update" and f["event"] == "left"
                       for f in player.frames)  # fmt: skip

        async def both_told() -> bool:
            told = [told_left(p) for p in (ann, dee)]
            if await self.redis_call("EXISTS", dead_key):
                self.assertEqual(told, [False, False], "told while the lease held")
            return all(told)

        bound = LEASE + PARTY_CHECK + 20  # a wedged run's
        await until(both_told, "Ann and Dee told", timeout=bound)
        for player, gone in ((ann, bob), (dee, cid)):
            left = player.when(lambda f: f["type"] == "party_update" and f["event"] == "left")
            update = await left
            self.assertEqual(update["player_id"], gone.player_id)
            self.assertEqual([m["player_id"] for m in update["party"]["members"]],
                             [player.player_id])  # fmt: skip
            try:
                cancelled = await player.of_type("cancelled").addTimeout(bound, reactor)
            except TimeoutError:
                self.fail(f"{player.player_id} was not told its ticket went: {player.frames}")
            self.assertEqual(cancelled["reason"], "member_left")
        report("the parties were told after", time.monotonic() - killed)
        # Nobody was matched meanwhile.
        self.assertEqual(await self.match_log(), {})
        # Queued again, each as a party of one, they make a maze with its solos.
        for player in (ann, dee):
            self.assertEqual((await player.request({"type": "queue", "game": "maze"}))["type"],
                             "queued")  # fmt: skip
        players = (ann, dee, *solos["maze"])
        found = []
        for p in players:
            try:
                found.append(await p.of_type("match_found").addTimeout(20, reactor))
            except TimeoutError:
                self.fail(f"no match_found for {p.player_id}: {p.frames}")
        self.assertEqual(len({f["game_id"] for f in found}), 1)
        formed = await self.match_log()
        self.assertEqual(list(formed.values()), [{p.player_id for p in players}])

    async def match_log(self) -> dict[str, set[str]]:
        """Every match the matchmakers formed: its id -> its players' ids."""
        formed = {}
        for _entry_id, fields in await self.redis_call("XRANGE", "vinom:mm:match-log", "-", "+"):
            match = json.loads(dict(zip(fields[::2], fields[1::2], strict=False))["match"])
            formed[match["match_id"]] = {p["player_id"] for p in match["players"]}
        return formed


class RedisRestartTests(ClusterTestCase):
    timeout = 90

    async def test_lobbies_and_hosts_carry_on_when_redis_restarts(self) -> None:
        host = await self.start("host", ports=6)
        first, second = [self.lobby_address(await self.start("lobby")) for _ in "ab"]
        host_id = self.host_id(host)
        # Before: one player waits in the tictactoe queue of the first lobby; two are
        # welcomed on the second and idle.
        waiting = await connect_lobby(reactor, first.host, first.port, trust=first.trust)
        waiting_welcome = await waiting.hello("waiting")
        told: list[Queued] = []
        waiting_found = waiting.queue("tictactoe", on_queued=told.append)
        await until(lambda: told, "queued")
        idle = await connect_lobby(reactor, second.host, second.port, trust=second.trust)
        await idle.hello("idle")
        late = await connect_lobby(reactor, second.host, second.port, trust=second.trust)
        await late.hello("late")
        self.addCleanup(lambda: [c.close() for c in (idle, late, waiting)
                                 if not c.protocol.closed.called])  # fmt: skip

        await self.redis.stop()
        # Meanwhile: `ping` is answered; `queue` gets an error, not a hang. Each answer
        # comes while Redis is still down (it starts again below, after them): that,
        # not a bound on a busy machine's clock, is what shows none waited for it.
        started = time.monotonic()
        pong = await idle.ping()
        self.assertEqual(pong["type"], "pong")
        report("ping while Redis is down", time.monotonic() - started)
        started = time.monotonic()
        # (maze: a different game from the waiting player's, so that the enqueue
        # Redis only hears once it is back, and takes out again, cannot meet them.)
        with self.assertRaises(LobbyError) as refused:
            await late.queue("maze")
        took = time.monotonic() - started
        report(f"queue while Redis is down answered {refused.exception.code}", took)
        self.assertEqual(refused.exception.code, "unavailable")
        # A newcomer's hello needs the player store: `unavailable` within its timeout.
        newcomer_lobby = await connect_lobby(reactor, first.host, first.port, trust=first.trust)
        self.addCleanup(newcomer_lobby.close)
        started = time.monotonic()
        with self.assertRaises(LobbyError) as refused:
            await newcomer_lobby.hello("early")
        took = time.monotonic() - started
        report(f"hello while Redis is down answered {refused.exception.code}", took)
        self.assertEqual(refused.exception.code, "unavailable")
        pong = await idle.ping()
        self.assertEqual(pong["type"], "pong")
        self.assertFalse(waiting_found.called)

        await self.redis.start()
        restarted = time.monotonic()
        # The game host registers again with its next heartbeat (and its pool's
        # reconnection, which backs off while Redis is away).
        async def registered() -> bool:
            return host_id in await self.redis_call("SMEMBERS", "vinom:hosts")

        await until(registered, "the host to register again", timeout=20, every=0.1)
        report("the host registered again after", time.monotonic() - restarted)
        # The player queued before the restart is still queued (their lobby put the
        # ticket back) and is matched with a newcomer through the other lobby.
        # Each process's connections come back on their own back-off: the second lobby
        # may still answer `unavailable` after the host is back, and then the newcomer
        # tries again, as a player would.
        newcomer = Deferred.fromCoroutine(play_once_redis_is_back(second, "newcomer", seed=4))
        found = await waiting_found
        report("the waiting player matched after the restart", time.monotonic() - restarted)
        self.assertEqual(await play_match(waiting_welcome, found, seed=5), "finished")
        theirs = await newcomer
        self.assertEqual((theirs.outcome, theirs.match_id), ("finished", found.game_id))
        # They were never told to queue again: nothing was lost to them. (Their match
        # may have formed before their lobby saw the host back, and waited for it: they
        # were then told `waiting_for_server`, docs/scaling.md.)
        self.assertEqual([q.requeued for q in told], [False] * len(told))
        self.assertEqual(told[0].status, "searching")
        self.assertEqual({q.status for q in told[1:]} - {"waiting_for_server"}, set())
        # New players through both lobbies are matched and play to the end, on the host.
        fresh = await gatherResults(
            [
                run_bots(reactor, first, GAME, 2, seed=8, name_prefix="x"),
                run_bots(reactor, second, GAME, 2, seed=9, name_prefix="y"),
            ]
        )
        reports = fresh[0] + fresh[1]
        self.assertEqual([r.outcome for r in reports], ["finished"] * 4)
        hosted = self.hosted_matches(host)
        for match_id in {r.match_id for r in reports} | {found.game_id}:
            self.assertIn(match_id, hosted)


class StalledRedisTests(ClusterTestCase):
    """Redis stalls (SIGSTOP) while players' requests wait on it, and goes on (SIGCONT)
    after the lobby answered them `unavailable`: what Redis then runs does nothing."""

    timeout = 60

    async def test_requests_answered_unavailable_leave_no_trace_once_redis_goes_on(
        self,
    ) -> None:
        await self.start("host", ports=2)
        ops = free_tcp_port()
        address = self.lobby_address(
            await self.start("lobby", "--ops-port", f"tcp:{ops}:interface=127.0.0.1")
        )

        async def queue_depth() -> float:
            code, text = await http_get(f"http://127.0.0.1:{ops}/metrics")
            self.assertEqual(code, 200)
            return metric_value(text, 'vinom_queue_depth{game="tictactoe"}')

        partner = await connect_player(self, address, "partner")
        self.assertEqual((await partner.request({"type": "queue", "game": "tictactoe"}))["type"],
                         "queued")  # fmt: skip
        queuer = await connect_player(self, address, "queuer")
        leader = await connect_player(self, address, "leader")
        host = await connect_player(self, address, "host")
        self.assertEqual(await queue_depth(), 1)

        self.redis.pause()
        queued = queuer.request({"type": "queue", "game": "tictactoe"})
        party = leader.request({"type": "party_create"})
        # Rooms live in the lobby: a room request needs no Redis and is served while
        # Redis is paused; the other two are refused at their deadline, also before
        # it resumes (no bound on a busy machine's clock needed to show either).
        room = await host.request({"type": "create_room", "game": "tictactoe"})
        self.assertEqual(room["type"], "room")
        answers = [await party, await queued]
        self.redis.resume()
        self.assertEqual([(a["type"], a.get("code")) for a in answers],
                         [("error", "unavailable")] * 2)  # fmt: skip

        # Redis has run what waited in its sockets; none of it did anything.
        await deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(await queue_depth(), 1)
        for player in (partner, queuer):
            self.assertNotIn("match_found", [f["type"] for f in player.frames])
        # The party was not created: creating it again is creating it.
        self.assertEqual((await leader.request({"type": "party_create"}))["type"], "party")
        # Nor was the player queued: queueing again is queueing, and they are matched
        # with the partner who waited.
        again = await queuer.request({"type": "queue", "game": "tictactoe"})
        self.assertEqual((again["type"], again["position"]), ("queued", 2))
        found = [await p.of_type("match_found") for p in (partner, queuer)]
        self.assertEqual(found[0]["game_id"], found[1]["game_id"])
        self.assertEqual(await queue_depth(), 0)


class CutOffLobbyTests(ClusterTestCase):
    """A lobby cut off from Redis (tests/support/cut_proxy.py) refuses every `hello`
    (`unavailable`): a gateway or Kubernetes routing by its `/ready` must take it out
    (503, saying why) while it is cut off, and back (200) once Redis answers again."""

    timeout = 60

    async def test_ready_is_503_while_the_lobby_is_cut_off_and_200_once_it_is_back(
        self,
    ) -> None:
        proxy = CutProxy(self.redis.port)
        proxy.start()
        self.addCleanup(proxy.stop)
        ops = free_tcp_port()
        address = self.lobby_address(await self.start(
            "lobby", "--redis", proxy.url, "--ops-port", f"tcp:{ops}:interface=127.0.0.1"))
        ready = f"http://127.0.0.1:{ops}/ready"
        self.assertEqual(await http_get(ready), (200, b"ready\n"))

        async def not_ready() -> tuple[int, bytes] | None:
            answer = await http_get(ready)
            return answer if answer[0] != 200 else None

        async def is_ready() -> bool:
            return await http_get(ready) == (200, b"ready\n")

        await proxy.cut()
        code, reason = cast(tuple[int, bytes], await until(not_ready, "/ready not 200"))
        self.assertEqual(code, 503)
        self.assertRegex(reason.decode(), r"^reading the live game hosts failed: .+ "
                                          r"\(for [0-9.]+ s\)\n$")  # fmt: skip
        # What a player sent there meanwhile gets.
        player = await connect_raw(self, address)
        refused = await player.request({"type": "hello", "name": "ann", "protocol": PROTOCOL})
        self.assertEqual((refused["type"], refused["code"]), ("error", "unavailable"))
        self.assertEqual((await http_get(ready))[0], 503)

        proxy.restore()
        await until(lambda: is_ready(), "/ready 200 again")
        await connect_player(self, address, "bob")


class RefusedPlacementSaveTests(ClusterTestCase):
    """A match placed on its game host while one of its players' lobbies cannot write to
    Redis (a failover's READONLY, a master short of replicas): that lobby, whose `FOLLOW`
    Redis refuses, says so once and asks again each second, its player waiting; never
    `match_failed` for a match its partner is already waiting in (who would see it
    aborted for players_missing at the connect deadline). Once Redis takes writes it
    follows the match, hears its `placed` (its player told `match_found`) and its end."""

    timeout = 60

    async def test_the_player_is_told_once_redis_takes_writes_and_both_play(self) -> None:
        await self.start("host", ports=2)
        refused_lobby = await self.start("lobby")
        here, there = self.lobby_address(refused_lobby), self.lobby_address(await self.start(
            "lobby"))  # fmt: skip
        clients = []
        for address, name in ((here, "first"), (there, "second")):
            client = await connect_lobby(reactor, address.host, address.port, trust=address.trust)
            self.addCleanup(lambda c=client: None if c.protocol.closed.called else c.close())
            clients.append((client, await client.hello(name)))
        statuses: list[str] = []
        first = clients[0][0].queue(GAME.name, on_queued=lambda q: statuses.append(q.status))
        await until(lambda: statuses, "the first player queued")
        # The first player's lobby does not run while the match forms on the other and is
        # placed; by the time it hears of the placement, Redis refuses writes.
        refused_lobby.transport.signalProcess(signal.SIGSTOP)
        second = await clients[1][0].queue(GAME.name)
        await self.redis_call("CONFIG", "SET", "min-replicas-to-write", "1")
        refused_lobby.transport.signalProcess(signal.SIGCONT)
        await until(lambda: "following matches to place failed" in refused_lobby.text,
                    "the refused lobby to say its follow was refused")  # fmt: skip
        # Followed again a second later, refused again: its player is told to wait.
        await until(lambda: "waiting_for_server" in statuses, "the player told to wait")
        self.assertFalse(first.called)
        # Reconnecting finds the match through any lobby: its record was saved.
        self.assertIsNotNone(await self.redis_call("GET", f"vinom:match:{second.game_id}"))
        await self.redis_call("CONFIG", "SET", "min-replicas-to-write", "0")
        found = await first
        self.assertEqual(found.game_id, second.game_id)
        self.assertEqual(refused_lobby.text.count("following matches to place failed"), 1)
        played = await gatherResults([Deferred.fromCoroutine(play_match(clients[0][1], found)),
                                      Deferred.fromCoroutine(play_match(clients[1][1], second))])
        self.assertEqual(played, ["finished", "finished"])
        await until(lambda: f"match {found.game_id} ended" in refused_lobby.text,
                    "the refused lobby to hear the end of its match")  # fmt: skip


class HostDeathTests(ClusterTestCase):
    """A game host killed with SIGKILL while it runs a match (issue #25): its players are
    told and keep their place, its matches end everywhere, no match goes to it after 2 s."""

    timeout = 120

    async def test_a_killed_hosts_players_are_requeued_and_it_gets_nothing_after_two_seconds(
        self,
    ) -> None:
        # The doomed host runs its matches in a worker process, which outlives it and
        # tells the players. It is the realm's only host until it has taken the first
        # match: hosts race to read a request (docs/scaling.md, "Take"), so with the
        # survivor up the match could go to either.
        doomed = await self.start("host", "--host-workers", "1", ports=10)
        doomed_id = self.host_id(doomed)
        # The players' own lobby lets their address have two matches (with its queued
        # players): a match of a dead host that still counted would keep them out.
        own = self.lobby_address(await self.start("lobby", "--limit", "max-matches-per-ip=2"))
        other = self.lobby_address(await self.start("lobby"))

        async def lobby_client(address: LobbyAddress) -> Any:
            client = await connect_lobby(reactor, address.host, address.port,
                                         trust=address.trust)  # fmt: skip
            self.addCleanup(lambda: None if client.protocol.closed.called else client.close())
            return client

        clients = [await lobby_client(own) for _ in range(2)]
        welcomes = [await c.hello(name) for c, name in zip(clients, ("ann", "bob"), strict=True)]
        found = await gatherResults([c.queue("tictactoe") for c in clients])
        match_id = found[0].game_id
        placed = json.loads(await self.redis_call("GET", f"vinom:outcome:{match_id}"))
        self.assertEqual(placed["host_id"], doomed_id)
        survivor_id = self.host_id(await self.start("host", ports=8))
        sessions = [await connect_game(reactor, f) for f in found]
        for session in sessions:
            self.addCleanup(session.disconnect)

        doomed.transport.signalProcess("KILL")
        await doomed.output.ended
        killed = time.monotonic()

        # Newcomers keep forming matches through the other lobby for 4 s.
        async def newcomers() -> list[BotReport]:
            pairs = []
            for i in range(8):
                pairs.append(run_bots(reactor, other, GAME, 2, seed=20 + i, name_prefix=f"n{i}-"))
                await deferLater(reactor, 0.5, lambda: None)
            return [r for pair in await gatherResults(pairs) for r in pair]

        traffic = Deferred.fromCoroutine(newcomers())
        self.addCleanup(lambda: traffic)

        # Each player is told by the host's worker, and reconnects at once: ann through
        # the other lobby first (which holds no place for her), bob through his own.
        told = [await session.finished for session in sessions]
        for final in told:
            self.assertEqual((final["p"], final.get("reason")), ("aborted", "host_crashed"))
        report("the dead host's players told host_crashed after", time.monotonic() - killed)
        ann, bob = welcomes
        stranger = await lobby_client(other)
        with self.assertRaises(LobbyError) as refused:
            await stranger.reconnect(ann.player_id, ann.secret)
        self.assertEqual(refused.exception.code, "no_active_match")
        queued: list[list[Queued]] = [[], []]
        again = []
        for welcome, heard in zip((ann, bob), queued, strict=True):
            client = await lobby_client(own)
            again.append(client.reconnect(welcome.player_id, welcome.secret,
                                          on_queued=heard.append))  # fmt: skip
        await until(lambda: all(queued), "both requeued", timeout=15, every=0.05)
        report("the dead host's players back at the head of the queue after",
               time.monotonic() - killed)  # fmt: skip
        for heard in queued:
            self.assertEqual((heard[0].requeued, heard[0].reason), (True, "host_crashed"))
            self.assertIn(heard[0].position, (1, 2))
        # Its match is over everywhere: no record leads a `reconnect` to the dead host.
        self.assertEqual(await self.redis_call("EXISTS", f"vinom:match:{match_id}"), 0)
        self.assertEqual(await self.redis_call("EXISTS", f"vinom:host-matches:{doomed_id}"), 0)
        # They are matched again, on the survivor, and play to the end: the dead match
        # no longer counts against their address.
        refound = await gatherResults(again)
        self.assertEqual(refound[0].game_id, refound[1].game_id)
        replaced = json.loads(await self.redis_call("GET", f"vinom:outcome:{refound[0].game_id}"))
        self.assertEqual(replaced["host_id"], survivor_id)
        finals = []
        for welcome, match in zip((ann, bob), refound, strict=True):
            session = await connect_game(reactor, match)
            driver = BotDriver(session, GAME.make_bot(welcome.player_id, random.Random(5)),
                               clock=reactor)  # fmt: skip
            driver.attach()
            self.addCleanup(driver.cancel)
            self.addCleanup(session.disconnect)
            finals.append(session.finished)
        self.assertEqual([f["p"] for f in await gatherResults(finals)], ["finished"] * 2)
        # Once their lobby has heard that match end (it removes its placement), the
        # same address plays again through it: two players, two matches' worth.
        async def ended() -> bool:
            return not await self.redis_call("EXISTS", f"vinom:match:{refound[0].game_id}")

        await until(ended, "the lobby to hear the match end")
        fresh = await run_bots(reactor, own, GAME, 2, seed=40, name_prefix="fresh-")
        self.assertEqual([(r.outcome, r.error) for r in fresh], [("finished", None)] * 2)

        # No newcomer's match went to the dead host (a dead host reads no request; a
        # lobby of the push design offered matches to it until it saw it silent), and
        # every newcomer played to the end, on the survivor.
        played = await traffic
        self.assertEqual([r.outcome for r in played], ["finished"] * len(played))
        for newcomers_match in {r.match_id for r in played}:
            outcome = json.loads(await self.redis_call("GET", f"vinom:outcome:{newcomers_match}"))
            self.assertEqual(outcome["host_id"], survivor_id)

    async def test_a_host_stalled_for_a_moment_keeps_its_matches(self) -> None:
        # A host stopped (SIGSTOP) for 1.5 s, well under the 2.5 s without a heartbeat
        # that makes a host dead (docs/scaling.md, "Why these timings"): a busy
        # machine's stall, not a death. Its match is not ended and plays to the end.
        host = await self.start("host", ports=4)
        lobby_process = await self.start("lobby")
        lobby = self.lobby_address(lobby_process)
        clients = []
        for _ in range(2):
            client = await connect_lobby(reactor, lobby.host, lobby.port, trust=lobby.trust)
            self.addCleanup(lambda c=client: None if c.protocol.closed.called else c.close())
            clients.append(client)
        welcomes = [await c.hello(name) for c, name in zip(clients, ("cy", "di"), strict=True)]
        found = await gatherResults([c.queue("tictactoe") for c in clients])
        sessions = [await connect_game(reactor, f) for f in found]
        finals = []
        for welcome, session in zip(welcomes, sessions, strict=True):
            self.addCleanup(session.disconnect)
            # 0.8 s a move: the match runs through the stall and well after it.
            driver = BotDriver(session, GAME.make_bot(welcome.player_id, random.Random(6)),
                               think_time=0.8, clock=reactor)  # fmt: skip
            driver.attach()
            self.addCleanup(driver.cancel)
            finals.append(session.finished)
        os.kill(host.transport.pid, signal.SIGSTOP)
        await deferLater(reactor, 1.5, lambda: None)
        os.kill(host.transport.pid, signal.SIGCONT)
        self.assertFalse(any(f.called for f in finals))
        # Past the time a dead host's matches would have been ended by.
        await deferLater(reactor, DEFAULT_PLACEMENT.host_ttl, lambda: None)
        self.assertEqual(await self.redis_call("EXISTS", f"vinom:match:{found[0].game_id}"), 1)
        self.assertEqual([f["p"] for f in await gatherResults(finals)], ["finished"] * 2)
        self.assertNotIn("left the registry", lobby_process.text)


class HostStopTests(ClusterTestCase):
    """A game host stopped cleanly (SIGTERM) leaves the registry itself: no lobby takes
    it for a dead host, nor says `host_crashed`."""

    async def test_a_host_stopped_cleanly_is_not_taken_for_a_dead_one(self) -> None:
        host = await self.start("host", ports=2)
        lobby_process = await self.start("lobby")
        host_id = self.host_id(host)
        host.transport.signalProcess("TERM")
        await host.output.ended
        self.assertIn(f"game host {host_id} unregistered", host.text)
        # Several registry reads of the lobby later: nothing to claim, nothing said.
        await deferLater(reactor, DEFAULT_PLACEMENT.refresh_every * 4, lambda: None)
        self.assertEqual(await self.redis_call("SISMEMBER", "vinom:hosts", host_id), 0)
        self.assertNotIn(host_id, lobby_process.text)
        self.assertNotIn("host_crashed", lobby_process.text)
