"""What only the Redis matchmaker has: lobbies racing, lobbies dying, Redis restarting.

Every test runs real redis-server (tests/support/redis_server.py) and several
`RedisMatchmaker`s, each with connections of its own as separate lobby
processes would have; the lobby that dies is a real child process, killed.
The contract both matchmakers keep is in tests/matchmaking/test_matchmaking.py.
"""

# slow: starts Redis and lobby processes

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from typing import Any

import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support.ports import free_tcp_port
from tests.support.redis_server import RedisServer, start_redis
from tests.support.waiting import until
from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings
from vinom.cluster.watch import WATCH_BREAK
from vinom.errors import BackendUnavailable
from vinom.games.rules import GameCatalogue
from vinom.match import Match, Ticket
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.matchmaking.windows import RatingWindow, fifo_groups

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Lobby:
    """One lobby's matchmaker, its own connections, and every match its listener heard."""

    def __init__(self, matchmaker: RedisMatchmaker) -> None:
        self.matchmaker = matchmaker
        self.heard: list[Match] = []
        matchmaker.add_listener(self.heard.append)


async def start_lobby(
    case: TestCase,
    port: int,
    sizes: dict[str, int],
    settings: RedisMatchmakerSettings,
    poolsize: int = 2,
    windows: dict[str, RatingWindow] | None = None,
) -> Lobby:
    pool = txredisapi.lazyConnectionPool("127.0.0.1", port, poolsize=poolsize, reconnect=True,
                                         replyTimeout=settings.call_timeout)
    case.addCleanup(pool.disconnect)
    matchmaker = RedisMatchmaker(
        pool, TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        GameCatalogue.sized(sizes, windows=windows), reactor, settings=settings,
    )  # fmt: skip
    await matchmaker.start()
    case.addCleanup(matchmaker.stop)
    return Lobby(matchmaker)


def hears_only_its_own(lobbies: list[Lobby], owners: dict[str, Lobby]) -> bool:
    """Whether each lobby heard exactly the matches that hold a player whose ticket it
    queued (`owners`; a match's `formed_by` is the owner of one of its tickets), each
    once: no other lobby's."""
    every = {m.match_id: m for lobby in lobbies for m in lobby.heard}
    for lobby in lobbies:
        me = lobby.matchmaker.lobby_id
        ours = {
            match_id for match_id, match in every.items()
            if any(owners[p] is lobby for p in match.player_ids)
            or any(other.matchmaker.formed_by(match_id) == me for other in lobbies)
        }  # fmt: skip
        heard = [m.match_id for m in lobby.heard]
        if len(heard) != len(set(heard)) or set(heard) != ours:
            return False
    return True


def ticket(player_id: str, game: str = "tictactoe", rating: float | None = None,
           queue: str = "normal") -> Ticket:
    return Ticket(player_id, player_id, game, rating, time.time(), queue)


class _Child(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class _HeldEnqueues:
    """A lobby's pool whose enqueue (or `op`) answers wait until `release()`: the match
    channel (its own connection) then delivers before them, as it may under load."""

    def __init__(self, pool: Any, op: str = "enqueue") -> None:
        self._pool = pool
        self._op = op
        self.held: list[tuple[Deferred[Any], Any]] = []
        self.holding = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def evalsha(self, sha: str, keys: list[str], args: list[str]) -> Deferred[Any]:
        answer: Deferred[Any] = self._pool.evalsha(sha, keys, args)
        if not (self.holding and args[0] == self._op):
            return answer
        held: Deferred[Any] = Deferred()
        answer.addBoth(lambda value: self.held.append((held, value)))
        return held

    def release(self) -> None:
        self.holding = False
        for held, value in self.held:
            held.callback(value) if not isinstance(value, Failure) else held.errback(value)


class RaceTests(TestCase):
    async def test_no_ticket_is_matched_twice_by_racing_lobbies(self) -> None:
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(tick_every=0.05)
        lobbies = [
            await start_lobby(self, redis.port, {"tictactoe": 2, "maze": 3}, settings)
            for _ in range(4)
        ]
        count = 10_002  # 5,001 duels and 5,001 mazes
        tickets = [
            ticket(f"p{i}", "tictactoe" if i % 2 else "maze") for i in range(count)
        ]
        started = time.monotonic()

        async def feed(lobby: Lobby, mine: list[Ticket]) -> None:
            # Many calls in flight per lobby, as a busy lobby has.
            for start in range(0, len(mine), 200):
                await gatherResults([lobby.matchmaker.enqueue(t) for t in mine[start:start + 200]])

        await gatherResults(
            [Deferred.fromCoroutine(feed(lobby, tickets[i::4])) for i, lobby in enumerate(lobbies)]
        )
        duels, mazes = count // 2, count // 2
        expected_matches = duels // 2 + mazes // 3
        owners = {t.player_id: lobbies[i % 4] for i, t in enumerate(tickets)}
        every: dict[str, Match] = {}

        def all_heard() -> bool:
            every.update((m.match_id, m) for lobby in lobbies for m in lobby.heard)
            return len(every) >= expected_matches and hears_only_its_own(lobbies, owners)

        await until(all_heard, "every lobby to hear the matches of its players", timeout=60)
        # A figure to watch, not to assert (a busy machine's clock): the timeout
        # above is the bound for a wedged run.
        print(f"\n{count} tickets matched in {time.monotonic() - started:.1f} s", file=sys.stderr)
        # Each lobby heard the matches it formed or that hold its players, once; no other.
        self.assertTrue(hears_only_its_own(lobbies, owners))
        self.assertEqual(len(every), expected_matches)
        matched = Counter(p for m in every.values() for p in m.player_ids)
        self.assertEqual(max(matched.values()), 1, "a ticket was matched twice")
        for match in every.values():
            self.assertEqual(len(match.players), {"tictactoe": 2, "maze": 3}[match.game])
            self.assertTrue(all(t.game == match.game for t in match.players))
        # Every ticket but the remainder of each game (one duel) was matched.
        unmatched = {t.player_id for t in tickets} - set(matched)
        self.assertEqual(len(unmatched), duels % 2 + mazes % 3)
        for player_id in unmatched:
            self.assertIsNotNone(await lobbies[0].matchmaker.position(player_id))

    async def test_racing_lobbies_never_split_a_party_nor_match_it_twice(self) -> None:
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(tick_every=0.05)
        lobbies = [await start_lobby(self, redis.port, {"maze": 4}, settings) for _ in range(4)]
        # Parties of one to three, 2,000 players in all.
        tickets: list[Ticket] = []
        sizes = [1, 2, 3, 1, 1, 2]
        number = 0
        while number < 2000:
            size = sizes[len(tickets) % len(sizes)]
            ids = [f"p{number + k}" for k in range(size)]
            number += size
            members = tuple(Ticket(p, p, "maze", None, time.time(), party_id=ids[0])
                            for p in ids[1:])  # fmt: skip
            tickets.append(Ticket(ids[0], ids[0], "maze", None, time.time(), party_id=ids[0],
                                  members=members))  # fmt: skip

        async def feed(lobby: Lobby, mine: list[Ticket]) -> None:
            for start in range(0, len(mine), 100):
                await gatherResults([lobby.matchmaker.enqueue(t) for t in mine[start:start + 100]])

        await gatherResults(
            [Deferred.fromCoroutine(feed(lobby, tickets[i::4])) for i, lobby in enumerate(lobbies)]
        )
        # Let passes run until no more can form.
        await deferLater(reactor, 0.5, lambda: None)
        owners = {p: lobbies[i % 4] for i, t in enumerate(tickets) for p in t.player_ids}
        await until(lambda: hears_only_its_own(lobbies, owners),
                    "every lobby to hear the matches of its players", timeout=30)  # fmt: skip
        heard = list({m.match_id: m for lobby in lobbies for m in lobby.heard}.values())
        matched = Counter(p for m in heard for p in m.player_ids)
        self.assertEqual(max(matched.values()), 1, "a player was matched twice")
        parties = {t.player_id: t.player_ids for t in tickets}
        for match in heard:
            self.assertEqual(len(match.players), 4)
            ids = match.player_ids
            index = 0
            while index < len(ids):
                # Each party sits together, whole, in its join order.
                unit = parties[ids[index]]
                self.assertEqual(ids[index:index + len(unit)], unit)
                index += len(unit)
        unmatched = [t for t in tickets if t.player_id not in matched]
        for t in unmatched:
            self.assertIsNotNone(await lobbies[0].matchmaker.position(t.player_id))
        # What is left cannot fill a match (parties that cannot make four together).
        self.assertEqual(sum(t.size for t in unmatched) + 4 * len(heard), 2000)
        self.assertEqual(fifo_groups(unmatched, 4), [])


class FormedByTests(TestCase):
    async def test_the_lobbies_of_a_match_know_which_lobby_formed_it(self) -> None:
        # The lobby whose call formed a match places it (vinom.cluster.placement).
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(tick_every=60.0, lobby_lease=3600.0)
        first, second, third = [
            await start_lobby(self, redis.port, {"tictactoe": 2}, settings) for _ in range(3)
        ]
        await first.matchmaker.enqueue(ticket("p"))
        await second.matchmaker.enqueue(ticket("q"))  # forms the match
        await until(lambda: bool(first.heard and second.heard), "the match", timeout=5)
        match_id = first.heard[0].match_id
        ids = {first.matchmaker.lobby_id, second.matchmaker.lobby_id}
        for lobby in (first, second):
            self.assertEqual(lobby.matchmaker.formed_by(match_id), second.matchmaker.lobby_id)
            self.assertEqual(set(lobby.matchmaker.lobbies_of(match_id)), ids)
        self.assertIsNone(first.matchmaker.formed_by("m-unknown"))
        # A lobby holding none of its players hears nothing of it.
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(third.heard, [])

    async def test_a_match_the_leader_forms_for_other_lobbies_players_is_theirs_alone(
        self,
    ) -> None:
        """The game's leader runs its matching passes: a match its pass forms of other
        lobbies' tickets is published to those lobbies only, and the leader neither
        hears nor follows it (docs/matchmaking.md, "Who hears a match")."""
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(tick_every=0.1)
        windows = {"tictactoe": RatingWindow(base=100.0, growth=400.0)}
        leader = await start_lobby(self, redis.port, {"tictactoe": 2}, settings, windows=windows)
        leads = "return redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0"
        await until(lambda: redis.command("EVAL", leads, "1", "vinom:mm:leader:tictactoe",
                                          leader.matchmaker.lobby_id) == b":1",
                    "the first lobby leading the game")  # fmt: skip
        first, second = [
            await start_lobby(self, redis.port, {"tictactoe": 2}, settings, windows=windows)
            for _ in range(2)
        ]
        # Too far apart to match as they queue; the leader's pass pairs them once their
        # windows have grown.
        await first.matchmaker.enqueue(ticket("p", rating=1000.0, queue="ranked"))
        await second.matchmaker.enqueue(ticket("q", rating=1500.0, queue="ranked"))
        await until(lambda: bool(first.heard and second.heard), "the match", timeout=10)
        match_id = first.heard[0].match_id
        ids = {first.matchmaker.lobby_id, second.matchmaker.lobby_id}
        self.assertEqual(set(first.matchmaker.lobbies_of(match_id)), ids)
        self.assertIn(first.matchmaker.formed_by(match_id), ids)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(leader.heard, [])


class BurstTests(TestCase):
    """A busy lobby's tickets go to Redis in batches (one call per queue in flight)."""

    async def test_a_burst_of_tickets_is_matched_in_queue_order_with_answers_for_each(
        self
    ) -> None:
        redis = await start_redis(self)
        # Batches of 16: 100 tickets make several calls while one is in flight.
        settings = RedisMatchmakerSettings(enqueue_batch=16)
        lobby = await start_lobby(self, redis.port, {"maze": 3}, settings)
        tickets = [ticket(f"p{i:03d}", "maze") for i in range(100)]
        again = ticket("p099", "maze")  # never matched: 100 tickets, matches of 3
        results = await gatherResults(
            [lobby.matchmaker.enqueue(t).addErrback(lambda f: f.value) for t in tickets]
            + [lobby.matchmaker.enqueue(again).addErrback(lambda f: f.value)],
        )
        *positions, twice = results
        # Every ticket got its own answer: its place in the queue when it went in,
        # behind at most the two left over from the last match and its own batch.
        self.assertTrue(all(isinstance(p, int) and 1 <= p <= 2 + 16 for p in positions),
                        positions)
        self.assertEqual(type(twice).__name__, "AlreadyQueued")
        await until(lambda: len(lobby.heard) >= 33, "33 matches", timeout=10)
        # Matches take the queue in order, each ticket once: p000-p002, p003-p005, ...
        self.assertEqual(
            [m.player_ids for m in lobby.heard],
            [tuple(f"p{i:03d}" for i in range(n, n + 3)) for n in range(0, 99, 3)],
        )
        self.assertEqual(await lobby.matchmaker.position("p099"), 1)

    async def test_every_ticket_of_a_burst_fails_clearly_when_redis_is_gone(self) -> None:
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(enqueue_batch=4, call_timeout=1.0)
        lobby = await start_lobby(self, redis.port, {"maze": 3}, settings)
        await redis.stop()
        failures = await gatherResults(
            [lobby.matchmaker.enqueue(ticket(f"q{i}", "maze")).addCallbacks(
                lambda _: None, lambda f: f.value) for i in range(10)],
        )  # fmt: skip
        self.assertTrue(all(isinstance(f, BackendUnavailable) for f in failures), failures)
        # Each says why, in its player's terms: the call that carried it (three of
        # at most four tickets) was refused or gave up at its own deadline; none
        # waited for Redis to come back (it never does here).
        for failure in failures:
            self.assertRegex(str(failure), r"^enqueue: (Redis did not answer within 1\.0 s"
                                           r"|.*(refused|lost|closed|unreachable))")

    async def test_a_lobby_stopped_as_its_enqueue_fails_stops_after_the_withdrawal(
        self
    ) -> None:
        # An enqueue given up on sends a withdrawal once its callers are told; a
        # lobby stopped by one of them (a shutdown on the error) still has that
        # call out. Its stop answers once every call it made has settled: nothing
        # of the lobby is left running on its clock.
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(call_timeout=1.0, lobby_lease=3600.0,
                                           tick_every=60.0)  # fmt: skip
        pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=1,
                                             reconnect=True)  # fmt: skip
        self.addCleanup(pool.disconnect)
        clock = Clock()
        matchmaker = RedisMatchmaker(pool, TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port),
                                     GameCatalogue.sized({"maze": 3}), clock,
                                     settings=settings)  # fmt: skip
        await matchmaker.start()
        await redis.stop()
        stopped: list[Deferred[None]] = []
        left_running: list[list[object]] = []

        def stop(failure: Failure) -> None:
            failure.trap(BackendUnavailable)
            stopped.append(matchmaker.stop().addCallback(
                lambda _: left_running.append([c for c in clock.getDelayedCalls()
                                               if c.active()])))  # fmt: skip

        matchmaker.enqueue(ticket("p", "maze")).addCallbacks(self.fail, stop)
        clock.advance(1.0)  # the enqueue is given up on; the lobby stops
        self.assertEqual(len(stopped), 1)
        # The lobby's clock runs on (its stop waits for the withdrawal's call, which
        # answers on the reactor's own time); `until` lets the reactor run meanwhile.
        def advanced() -> bool:
            if stopped[0].called:
                return True
            clock.advance(0.5)
            return False

        await until(advanced, "the lobby to stop", every=0.01)
        await stopped[0]
        self.assertEqual(left_running, [[]])

    async def test_a_ticket_matched_before_its_enqueue_answers_can_queue_again(self) -> None:
        # Lobby A queues p; lobby B's enqueue of q matches p at once, and A hears
        # the match on its channel before the answer to its enqueue. p's match
        # then finds no game host and A puts p back: that must work (p is not
        # still counted as queued), and p is matched once more, with r.
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(tick_every=60.0, lobby_lease=3600.0)
        pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=2,
                                             reconnect=True)  # fmt: skip
        self.addCleanup(pool.disconnect)
        held = _HeldEnqueues(pool)
        matchmaker = RedisMatchmaker(
            held, TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port),
            GameCatalogue.sized({"tictactoe": 2}), reactor, settings=settings,
        )  # fmt: skip
        await matchmaker.start()
        self.addCleanup(matchmaker.stop)
        first = Lobby(matchmaker)
        second = await start_lobby(self, redis.port, {"tictactoe": 2}, settings)
        queued = first.matchmaker.enqueue(ticket("p"))
        await until(lambda: bool(held.held), "the enqueue's answer", timeout=5)
        await second.matchmaker.enqueue(ticket("q"))
        await until(lambda: len(first.heard) == 1, "the match on the channel", timeout=5)
        self.assertFalse(queued.called)
        held.release()
        self.assertEqual(await queued, 1)
        self.assertEqual(await first.matchmaker.requeue(ticket("p")), 1)
        await second.matchmaker.enqueue(ticket("r"))
        await until(lambda: len(first.heard) == 2, "the second match", timeout=5)
        self.assertEqual(first.heard[1].player_ids, ("p", "r"))
        # Nothing of p is left to put back in the queue after a lapse.
        self.assertIsNone(await first.matchmaker.position("p"))


class DeadLobbyTests(TestCase):
    async def spawn_lobby(self, redis: RedisServer, config: dict[str, Any]) -> tuple[_Child, str]:
        child = _Child()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
        transport = reactor.spawnProcess(
            child, sys.executable,
            [sys.executable, "-m", "tests.support.matchmaker_lobby", str(redis.port),
             json.dumps(config)],
            env=env, path=ROOT,
        )  # fmt: skip

        def kill() -> None:
            if not child.ended.called:
                transport.signalProcess("KILL")

        self.addCleanup(lambda: (kill(), child.ended)[1])
        # The whole line: the pipe may hand over "ready" before the lobby id after it.
        await until(lambda: re.search(rb"ready \S+\n", child.output) or child.ended.called,
                    "the child lobby", timeout=30)
        line = child.output.decode().strip().splitlines()[-1]
        self.assertTrue(line.startswith("ready "), child.output.decode())
        child.kill = kill  # type: ignore[attr-defined]
        child.transport = transport  # type: ignore[attr-defined]
        return child, line.split()[1]

    async def test_the_tickets_of_a_dead_lobby_lapse_and_nobody_is_matched_with_them(
        self,
    ) -> None:
        redis = await start_redis(self)
        ttl = 1.0
        window = {"base": 100.0, "growth": 0.0, "max": None}
        settings = {"lobby_lease": ttl, "tick_every": 0.1}
        # The dying lobby queues ranked tickets far apart (none fits another)
        # and one normal ticket.
        ghosts = [
            {"player_id": f"ghost{i}", "name": "g", "game": "tictactoe",
             "rating": 1000.0 * i, "queued_at": time.time(), "queue": "ranked"}
            for i in range(10)
        ] + [{"player_id": "ghost-normal", "name": "g", "game": "tictactoe", "rating": None,
              "queued_at": time.time(), "queue": "normal"}]  # fmt: skip
        child, dead_id = await self.spawn_lobby(
            redis, {"sizes": {"tictactoe": 2}, "settings": settings,
                    "windows": {"tictactoe": window}, "tickets": ghosts},
        )  # fmt: skip
        lobby = await start_lobby(
            self, redis.port, {"tictactoe": 2},
            RedisMatchmakerSettings(lobby_lease=ttl, tick_every=0.1),
            windows={"tictactoe": RatingWindow(**window)},
        )  # fmt: skip
        self.assertIsNotNone(await lobby.matchmaker.position("ghost0"))
        # The dead lobby's lease lapses `ttl` after its last renewal, by Redis's
        # own clock (no reading of ours): its key holds a TTL of at most that.
        lease = f"vinom:mm:lobby:{dead_id}"
        self.assertTrue(0 < int(redis.command("PTTL", lease)[1:]) <= ttl * 1000)
        killed = time.monotonic()
        child.kill()  # type: ignore[attr-defined]
        await child.ended

        # Its tickets lapse with the lease, in the next pass of a living lobby;
        # while the lease holds, they stay (the tickets read first, then the lease:
        # one still there was there at the reading).
        positions: dict[str, int | None] = {}

        async def gone() -> bool:
            for g in ghosts:
                positions[g["player_id"]] = await lobby.matchmaker.position(g["player_id"])
            if redis.command("EXISTS", lease) == b":1":
                self.assertTrue(all(positions.values()), f"dropped under a lease: {positions}")
            return not any(positions.values())

        await until(gone, lambda: f"the ghosts to lapse: {positions}", timeout=ttl + 20)
        print(f"\nthe dead lobby's tickets lapsed after {time.monotonic() - killed:.2f} s",
              file=sys.stderr)  # fmt: skip

        # The living lobby's players are matched, each with the other living
        # player near them, never with a ghost of the same rating.
        for i in range(10):
            await lobby.matchmaker.enqueue(ticket(f"b{i}", rating=1000.0 * i + 10, queue="ranked"))
            await lobby.matchmaker.enqueue(ticket(f"c{i}", rating=1000.0 * i - 10, queue="ranked"))
        await lobby.matchmaker.enqueue(ticket("n1"))
        await lobby.matchmaker.enqueue(ticket("n2"))
        await until(lambda: len(lobby.heard) == 11, "11 matches", timeout=5)
        self.assertEqual(
            sorted(m.player_ids for m in lobby.heard),
            sorted([(f"b{i}", f"c{i}") for i in range(10)] + [("n1", "n2")]),
        )

    async def test_a_killed_lobbys_tickets_are_never_matched_even_before_its_lease_lapses(
        self,
    ) -> None:
        # The lease is long here: only the killed process's closed connections
        # tell the survivors, and they must be enough.
        redis = await start_redis(self)
        settings = {"lobby_lease": 30.0, "tick_every": 0.1}
        # Three of a maze of four wait in the lobby that dies.
        ghosts = [{"player_id": f"ghost{i}", "name": "g", "game": "maze", "rating": None,
                   "queued_at": 0.0} for i in range(3)]  # fmt: skip
        child, dead_id = await self.spawn_lobby(
            redis, {"sizes": {"maze": 4}, "settings": settings, "tickets": ghosts}
        )
        lobby = await start_lobby(
            self, redis.port, {"maze": 4},
            RedisMatchmakerSettings(lobby_lease=30.0, tick_every=0.1),
        )  # fmt: skip
        # While its lobby lives, a player cannot be queued twice.
        with self.assertRaises(Exception) as refused:
            await lobby.matchmaker.enqueue(ticket("ghost0", "maze"))
        self.assertEqual(type(refused.exception).__name__, "AlreadyQueued")
        child.kill()  # type: ignore[attr-defined]
        await child.ended
        # The dead lobby's lease (30 s) holds throughout: what frees its tickets is
        # its closed connections, which the test shows by finishing under the lease
        # (checked at the end, on Redis: no reading of a busy machine's clock).
        lease = f"vinom:mm:lobby:{dead_id}"
        self.assertEqual(redis.command("EXISTS", lease), b":1")

        # Right after the kill: a returning player's ticket replaces their ghost
        # (polled: Redis hears the connections close a moment after the kill) ...
        async def replaced() -> int | None:
            try:
                return int(await lobby.matchmaker.enqueue(ticket("ghost0", "maze")))
            except Exception as e:
                self.assertEqual(type(e).__name__, "AlreadyQueued")
                return None

        position = await until(replaced, "the ghost's ticket replaced", timeout=15)
        # ... and it is not matched with the other two ghosts, nor is a new
        # player, though the four would fill a maze.
        self.assertEqual(position, 3)
        await lobby.matchmaker.enqueue(ticket("new1", "maze"))
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(lobby.heard, [])
        # Living players fill the match.
        await lobby.matchmaker.enqueue(ticket("new2", "maze"))
        await lobby.matchmaker.enqueue(ticket("new3", "maze"))
        await until(lambda: len(lobby.heard) == 1, "the match", timeout=5)
        self.assertEqual(lobby.heard[0].player_ids, ("ghost0", "new1", "new2", "new3"))
        self.assertEqual(redis.command("EXISTS", lease), b":1", "the lease lapsed first")

    async def test_a_lobby_that_stalled_past_its_lease_puts_its_tickets_back(self) -> None:
        redis = await start_redis(self)
        lease = 0.5
        settings = {"lobby_lease": lease, "tick_every": 0.1}
        child, _ = await self.spawn_lobby(
            redis, {"sizes": {"tictactoe": 2, "maze": 4}, "settings": settings,
                    "tickets": [{"player_id": player, "name": "S", "game": game,
                                 "rating": None, "queued_at": 0.0}
                                for player, game in (("stalled", "tictactoe"),
                                                     ("returned", "maze"))]},
        )  # fmt: skip
        lobby = await start_lobby(
            self, redis.port, {"tictactoe": 2, "maze": 4},
            RedisMatchmakerSettings(lobby_lease=lease, tick_every=0.1),
        )
        # One of its players came back through the other lobby, which withdrew
        # their ticket (a returning player's hello).
        self.assertTrue(await lobby.matchmaker.cancel("returned"))
        child.transport.signalProcess(signal.SIGSTOP)  # type: ignore[attr-defined]
        self.addCleanup(lambda: child.ended.called or child.transport.signalProcess(signal.SIGCONT))
        # Its lease lapses and the living lobby's pass drops its ticket.
        await until(lambda: lobby.matchmaker.position("stalled").addCallback(lambda p: p is None),
                    "the stalled lobby's ticket dropped", timeout=10)  # fmt: skip
        # A player queued meanwhile is not matched with it.
        await lobby.matchmaker.enqueue(ticket("partner"))
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(lobby.heard, [])
        # Resumed, the lobby finds its lease lapsed and puts its ticket back in
        # its place, ahead of the partner: they are matched. The withdrawn ticket
        # is not put back.
        child.transport.signalProcess(signal.SIGCONT)  # type: ignore[attr-defined]
        await until(lambda: len(lobby.heard) == 1, "the match", timeout=10)
        self.assertEqual(lobby.heard[0].player_ids, ("stalled", "partner"))
        await deferLater(reactor, 0.3, lambda: None)
        self.assertIsNone(await lobby.matchmaker.position("returned"))

    async def test_after_redis_was_away_a_lobby_has_a_full_lease_to_come_back(self) -> None:
        # Redis stalls for longer than a lease and the watch guard's break (every lease
        # and the guard's key expire on its clock); one lobby comes back at once, the
        # other (stalled with it) a moment later.
        redis = await start_redis(self)
        lease = 1.0
        settings = {"lobby_lease": lease, "tick_every": 0.1}
        child, _ = await self.spawn_lobby(
            redis, {"sizes": {"tictactoe": 2}, "settings": settings,
                    "tickets": [{"player_id": "waiting", "name": "W", "game": "tictactoe",
                                 "rating": None, "queued_at": 0.0}]},
        )  # fmt: skip
        lobby = await start_lobby(self, redis.port, {"tictactoe": 2},
                                  RedisMatchmakerSettings(lobby_lease=lease, tick_every=0.1))
        self.assertEqual(await lobby.matchmaker.position("waiting"), 1)
        child.transport.signalProcess(signal.SIGSTOP)  # type: ignore[attr-defined]
        self.addCleanup(lambda: child.ended.called or child.transport.signalProcess(signal.SIGCONT))
        redis.pause()
        await deferLater(reactor, lease + WATCH_BREAK + 0.3, lambda: None)
        redis.resume()
        # The living lobby's passes meet the ticket of a lobby whose lease has lapsed:
        # it waits (the lobby is away) for a lease and a tick after Redis came back.
        # How long Redis has been watched again is read from Redis after each look:
        # one made while that is under 0.9 lease surely came before the window's end.
        async def window_over() -> bool:
            position = await lobby.matchmaker.position("waiting")
            if redis.watch_lasted_ms() >= lease * 0.9 * 1000:
                return True
            self.assertEqual(position, 1)
            return False

        await until(window_over, "the away window's end", every=0.05)
        child.transport.signalProcess(signal.SIGCONT)  # type: ignore[attr-defined]
        await lobby.matchmaker.enqueue(ticket("partner"))
        await until(lambda: len(lobby.heard) == 1, "the match", timeout=5)
        self.assertEqual(lobby.heard[0].player_ids, ("waiting", "partner"))


class PartyMemberLobbyTests(TestCase):
    async def test_a_partys_ticket_waits_while_a_member_is_not_held_by_a_live_lobby(
        self,
    ) -> None:
        # The party store keeps which lobby holds each member (the party's
        # `lobbies`); the test writes it as the store would.
        redis = await start_redis(self)
        lobby = await start_lobby(self, redis.port, {"maze": 4},
                                  RedisMatchmakerSettings(tick_every=0.1))  # fmt: skip
        me = lobby.matchmaker.lobby_id
        pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=1)
        self.addCleanup(pool.disconnect)

        async def members_held_by(lobbies: dict[str, str]) -> None:
            await pool.execute_command("HSET", "vinom:party:p-1", "lobbies", json.dumps(lobbies))
            await deferLater(reactor, 0.4, lambda: None)  # a few passes

        await members_held_by({"a": me, "b": "l-dead"})
        now = time.time()
        await lobby.matchmaker.enqueue(Ticket("a", "a", "maze", None, now, party_id="p-1",
                                              members=(Ticket("b", "b", "maze", None, now,
                                                              party_id="p-1"),)))  # fmt: skip
        await lobby.matchmaker.enqueue(ticket("s1", "maze"))
        await lobby.matchmaker.enqueue(ticket("s2", "maze"))
        # b's lobby has no lease: dead.
        await members_held_by({"a": me, "b": "l-dead"})
        self.assertEqual(lobby.heard, [])
        # b was taken out of the party (its ticket is about to be withdrawn).
        await members_held_by({"a": me})
        self.assertEqual(lobby.heard, [])
        # Both held by a live lobby: the party and the solos make a match.
        await members_held_by({"a": me, "b": me})
        await until(lambda: len(lobby.heard) == 1, "the match", timeout=5)
        self.assertEqual(lobby.heard[0].player_ids, ("a", "b", "s1", "s2"))


class RedisRestartTests(TestCase):
    async def test_lobbies_carry_on_after_a_restart_and_calls_fail_while_it_is_down(
        self,
    ) -> None:
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(lobby_lease=5.0, tick_every=0.1, call_timeout=1.0)
        sizes = {"tictactoe": 2, "maze": 2}
        first = await start_lobby(self, redis.port, sizes, settings)
        second = await start_lobby(self, redis.port, sizes, settings)
        await first.matchmaker.enqueue(ticket("waiting"))
        await second.matchmaker.enqueue(ticket("leaving", "maze"))

        await redis.stop()
        for call in (
            lambda: first.matchmaker.enqueue(ticket("lost")),
            lambda: second.matchmaker.position("waiting"),
            lambda: second.matchmaker.cancel("leaving"),
        ):
            # Refused while Redis is down (it starts again below): not a hang.
            with self.assertRaises(BackendUnavailable):
                await call()

        await redis.start()
        # Redis came back empty. The first lobby's heartbeat finds its key gone
        # and puts its waiting player back; the enqueue that failed while Redis
        # was down (and was sent when it came back) is refused there, past its
        # deadline; the player whose cancel failed is not put back.
        async def back() -> bool:
            try:
                return await first.matchmaker.position("waiting") == 1
            except BackendUnavailable:
                return False

        await until(back, "the ticket put back", timeout=15, every=0.1)
        self.assertIsNone(await first.matchmaker.position("lost"))
        self.assertIsNone(await first.matchmaker.position("leaving"))
        # A lobby is live for the others once its presence channel is subscribed
        # again; until then its tickets wait where they are, and a newcomer would
        # be matched past "waiting" (docs/matchmaking.md). Redis shows when both
        # lobbies' presence and match channels are back.
        subscribed = "return #redis.call('PUBSUB', 'CHANNELS', 'vinom:mm:*')"
        await until(lambda: redis.command("EVAL", subscribed, "0") == b":4",
                    "both lobbies subscribed again", timeout=15)  # fmt: skip

        # Each lobby's connections come back on their own back-off: a call sent
        # while one is still reconnecting reaches Redis past its deadline and is
        # refused (unavailable, nothing queued). A player then tries again.
        async def enqueue(lobby: Lobby, player: str) -> None:
            async def queued() -> bool:
                try:
                    await lobby.matchmaker.enqueue(ticket(player))
                    return True
                except BackendUnavailable:
                    return False

            await until(queued, f"{player} queued", timeout=15, every=0.2)

        await enqueue(second, "newcomer")
        await enqueue(second, "x")
        await enqueue(first, "y")
        for lobby in (first, second):
            await until(lambda lobby=lobby: len(lobby.heard) == 2, "both matches", timeout=10)  # type: ignore[misc]
            self.assertEqual(
                sorted(m.player_ids for m in lobby.heard), [("waiting", "newcomer"), ("x", "y")]
            )

    async def test_a_restore_after_a_failover_that_fails_is_tried_again(self) -> None:
        # After a failover the promoted replica lacks a ticket the lobby holds (its lease
        # is there: the heartbeat sees nothing amiss), and Redis refuses writes for a
        # moment (a master short of replicas: NOREPLICAS), so the first restore fails.
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(lobby_lease=3600.0, tick_every=0.1, call_timeout=1.0)
        lobby = await start_lobby(self, redis.port, {"tictactoe": 2}, settings)
        await lobby.matchmaker.enqueue(ticket("lost"))
        self.assertEqual(redis.command("DEL", "vinom:mm:t:lost"), b":1")
        self.assertEqual(redis.command("ZREM", "vinom:mm:q:tictactoe:normal", "lost"), b":1")
        self.assertEqual(redis.command("CONFIG", "SET", "min-replicas-to-write", "1"), b"+OK")
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        await lobby.matchmaker.restore_tickets()  # fails: logged, not raised
        self.assertIsNone(await lobby.matchmaker.position("lost"))
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(redis.command("CONFIG", "SET", "min-replicas-to-write", "0"), b"+OK")
        # Writes are taken again: a tick puts the ticket back, and the player is matched.
        await until(lambda: lobby.matchmaker.position("lost").addCallback(lambda p: p == 1),
                    "the ticket put back", timeout=5)  # fmt: skip
        await lobby.matchmaker.enqueue(ticket("partner"))
        await until(lambda: len(lobby.heard) == 1, "the match", timeout=5)
        self.assertEqual(lobby.heard[0].player_ids, ("lost", "partner"))
        # Five ticks failed meanwhile: one warning for them, one line once they work.
        said = [formatEvent(e) for e in events if e.get("log_namespace", "").startswith(
            "vinom.cluster.matchmaker")]  # fmt: skip
        self.assertEqual(len([s for s in said if "the matchmaker's tick failed" in s]), 1, said)
        self.assertEqual(len([s for s in said if "tick works again" in s]), 1, said)

    async def test_lobbies_carry_on_after_redis_forgets_their_script(self) -> None:
        # SCRIPT FLUSH (an operator's, or a failover to a replica that never ran it):
        # the next call of each lobby sends the script again, and nothing is lost.
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(tick_every=60.0, lobby_lease=3600.0)
        first = await start_lobby(self, redis.port, {"tictactoe": 2}, settings)
        second = await start_lobby(self, redis.port, {"tictactoe": 2}, settings)
        self.assertEqual(await first.matchmaker.enqueue(ticket("a")), 1)
        self.assertEqual(redis.command("SCRIPT", "FLUSH"), b"+OK")
        self.assertEqual(await first.matchmaker.position("a"), 1)
        self.assertEqual(redis.command("SCRIPT", "FLUSH"), b"+OK")
        await second.matchmaker.enqueue(ticket("b"))
        for lobby in (first, second):
            await until(lambda lobby=lobby: len(lobby.heard) == 1, "the match", timeout=10)  # type: ignore[misc]
            self.assertEqual(lobby.heard[0].player_ids, ("a", "b"))

    async def test_start_fails_clearly_without_redis(self) -> None:
        port = free_tcp_port()
        pool = txredisapi.lazyConnectionPool("127.0.0.1", port, poolsize=1, reconnect=True)
        self.addCleanup(pool.disconnect)
        matchmaker = RedisMatchmaker(
            pool, TCP4ClientEndpoint(reactor, "127.0.0.1", port),
            GameCatalogue.sized({"tictactoe": 2}), reactor,
            settings=RedisMatchmakerSettings(call_timeout=0.3),
        )
        with self.assertRaises(BackendUnavailable) as refused:
            await matchmaker.start()
        # Given up at its call timeout (what the error says), not a busy machine's bound.
        self.assertIn("within 0.3 s", str(refused.exception))
        await matchmaker.stop()


class SameRuleTests(TestCase):
    timeout = 120

    async def test_redis_forms_the_matches_the_memory_matchmaker_forms(self) -> None:
        # Random queues of solo players and parties, with cancels, through both
        # matchmakers: the same matches, in the same seats (one rule, written twice).
        redis = await start_redis(self)
        rng = random.Random(14)
        formed = 0
        by_game = dict.fromkeys(["maze", "trio", "duo", "six", "quads"], 0)
        for run in range(30):
            pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=1,
                                                 reconnect=True)  # fmt: skip
            self.addCleanup(pool.disconnect)
            clock = Clock()
            # duo, six, quads: teams of two, three and four; a party sits in one team.
            sizes = {"maze": 4, "trio": 3, "duo": 4, "six": 6, "quads": 8}
            teams = {"duo": 2, "six": 3, "quads": 4}
            settings = RedisMatchmakerSettings(prefix=f"run{run}", lobby_lease=3600.0)
            games = GameCatalogue.sized(sizes, team_sizes=teams)
            shared = RedisMatchmaker(pool, TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port),
                                     games, clock, settings=settings)  # fmt: skip
            await shared.start()
            alone = MemoryMatchmaker(games, clock)
            heard: dict[str, list[Match]] = {"redis": [], "memory": []}
            shared.add_listener(heard["redis"].append)
            alone.add_listener(heard["memory"].append)
            queued: list[str] = []
            for step in range(80):
                if queued and rng.random() < 0.2:
                    leader = queued.pop(rng.randrange(len(queued)))
                    self.assertEqual(await shared.cancel(leader), await alone.cancel(leader))
                    continue
                game = rng.choice(list(sizes))
                size = rng.choice([1, 1, 1, 2, 3] if game != "duo" else [1, 1, 2])
                ids = [f"r{run}s{step}m{k}" for k in range(size)]
                members = tuple(Ticket(p, p, game, None, 0.0, party_id=ids[0]) for p in ids[1:])
                t = Ticket(ids[0], ids[0], game, None, 0.0, party_id=ids[0], members=members)
                self.assertEqual(await shared.enqueue(t), await alone.enqueue(t))
                queued.append(t.player_id)
                matched = {p for m in heard["memory"] for p in m.player_ids}
                queued = [q for q in queued if q not in matched]
            await shared.position("nobody")  # every answer is in
            self.assertEqual([m.player_ids for m in heard["redis"]],
                             [m.player_ids for m in heard["memory"]], f"run {run}")  # fmt: skip
            formed += len(heard["memory"])
            for match in heard["memory"]:
                by_game[match.game] += 1
            await shared.stop()
        # The runs formed matches enough to say something (about 13 per run),
        # in every game, those with teams too.
        self.assertGreater(formed, 200)
        self.assertGreater(min(by_game.values()), 20, by_game)


class LateCallTests(TestCase):
    """A call its lobby gave up on (Redis stalled: SIGSTOP) and Redis runs afterwards
    (SIGCONT) does nothing: the caller was told nothing was done."""

    timeout = 30

    async def stalled_lobbies(self) -> tuple[RedisServer, Lobby, Lobby]:
        redis = await start_redis(self)
        settings = RedisMatchmakerSettings(call_timeout=1.0)
        first = await start_lobby(self, redis.port, {"tictactoe": 2}, settings)
        second = await start_lobby(self, redis.port, {"tictactoe": 2}, settings)
        return redis, first, second

    async def settle(self, *lobbies: Lobby) -> None:
        """Every call sent before now has been run (each lobby's pool is answered)."""
        await deferLater(reactor, 0.3, lambda: None)
        for lobby in lobbies:
            for _ in range(2):  # each connection of the pool
                await lobby.matchmaker.position("nobody")

    async def test_an_enqueue_redis_runs_after_its_deadline_queues_nobody(self) -> None:
        redis, first, second = await self.stalled_lobbies()
        await second.matchmaker.enqueue(ticket("partner"))
        redis.pause()
        with self.assertRaises(BackendUnavailable) as refused:
            await first.matchmaker.enqueue(ticket("p"))
        # Given up at the call timeout (1 s, what the error says: txredisapi's reply
        # timeout, set from it), while Redis is still paused (it resumes below).
        self.assertIn("1.0 s", str(refused.exception))
        redis.resume()
        await self.settle(first, second)
        # The enqueue reached Redis after its lobby gave up: no ticket, no match
        # with the partner who waited, nothing counted.
        self.assertEqual((first.heard, second.heard), ([], []))
        self.assertIsNone(await first.matchmaker.position("p"))
        self.assertEqual(await second.matchmaker.position("partner"), 1)
        self.assertEqual(first.matchmaker.queue_length("tictactoe"), 0)
        # Queueing again is queueing for the first time.
        self.assertEqual(await first.matchmaker.enqueue(ticket("p")), 2)
        await until(lambda: len(second.heard) == 1, "the match", timeout=5)
        self.assertEqual(second.heard[0].player_ids, ("partner", "p"))

    async def test_a_cancel_redis_runs_after_its_deadline_leaves_the_ticket_queued(
        self,
    ) -> None:
        redis, first, second = await self.stalled_lobbies()
        await first.matchmaker.enqueue(ticket("p"))
        redis.pause()
        with self.assertRaises(BackendUnavailable):
            await first.matchmaker.cancel("p", refuse_late=True)
        redis.resume()
        await self.settle(first, second)
        # Still queued, in Redis and in its lobby's count, and matched as usual.
        self.assertEqual(await first.matchmaker.position("p"), 1)
        self.assertEqual(first.matchmaker.queue_length("tictactoe"), 1)
        await second.matchmaker.enqueue(ticket("partner"))
        await until(lambda: len(first.heard) == 1, "the match", timeout=5)
        self.assertEqual(first.heard[0].player_ids, ("p", "partner"))
        self.assertEqual(first.matchmaker.queue_length("tictactoe"), 0)

    async def test_a_withdrawal_redis_runs_late_still_withdraws(self) -> None:
        # A cancel for a player who is gone (no refuse_late) is done once Redis can.
        redis, first, second = await self.stalled_lobbies()
        await first.matchmaker.enqueue(ticket("gone"))
        redis.pause()
        with self.assertRaises(BackendUnavailable):
            await first.matchmaker.cancel("gone")
        redis.resume()
        await self.settle(first, second)
        self.assertIsNone(await first.matchmaker.position("gone"))
        self.assertEqual(first.matchmaker.queue_length("tictactoe"), 0)

    async def held_lobby(self, redis: RedisServer, op: str) -> tuple[Lobby, _HeldEnqueues]:
        """A lobby whose `op` calls Redis runs at once but whose answers it reads only
        after `release()`, as when the lobby process itself stalls."""
        pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=2,
                                             reconnect=True)  # fmt: skip
        self.addCleanup(pool.disconnect)
        held = _HeldEnqueues(pool, op)
        matchmaker = RedisMatchmaker(
            held, TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port),
            GameCatalogue.sized({"tictactoe": 2}), reactor,
            settings=RedisMatchmakerSettings(call_timeout=0.5),
        )  # fmt: skip
        await matchmaker.start()
        self.addCleanup(matchmaker.stop)
        return Lobby(matchmaker), held

    async def test_an_enqueue_run_in_time_but_answered_too_late_is_withdrawn(self) -> None:
        redis = await start_redis(self)
        lobby, held = await self.held_lobby(redis, "enqueue")
        with self.assertRaises(BackendUnavailable):
            await lobby.matchmaker.enqueue(ticket("p"))
        held.release()
        await self.settle(lobby)
        self.assertIsNone(await lobby.matchmaker.position("p"))
        self.assertEqual(lobby.matchmaker.queue_length("tictactoe"), 0)
        # The player queues again; that ticket is not the one withdrawn.
        self.assertEqual(await lobby.matchmaker.enqueue(ticket("p")), 1)
        await self.settle(lobby)
        self.assertEqual(await lobby.matchmaker.position("p"), 1)

    async def test_a_cancel_run_in_time_but_answered_too_late_is_undone(self) -> None:
        redis = await start_redis(self)
        lobby, held = await self.held_lobby(redis, "cancel")
        await lobby.matchmaker.enqueue(ticket("p"))
        with self.assertRaises(BackendUnavailable):
            await lobby.matchmaker.cancel("p", refuse_late=True)
        held.release()
        await self.settle(lobby)
        self.assertEqual(await lobby.matchmaker.position("p"), 1)
        self.assertEqual(lobby.matchmaker.queue_length("tictactoe"), 1)
