"""Faults of the pull placement (vinom.cluster.placement, agent, channel) that players
would see, each on a real Redis with real host agents and lobbies' placement: a lobby
that hears a match after its host placed it, or after it ended, and a match a player
left through one lobby while another lobby's players wait for it."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from tests.cluster.test_remote_placement import (
    _HeldStarts,
    all_taken,
    duel_request,
    offer,
    open_redis,
    request_for,
    start_host,
    start_host_agent,
)
from tests.lobby.test_lobby import LobbyHarness
from tests.support.doubles import FakeUDPReactor, PlaceholderGameHostFactory
from tests.support.placement_events import hear_placements
from tests.support.ports import free_udp_port
from tests.support.redis_server import start_redis
from tests.support.waiting import until
from vinom.cluster.agent import HostAgent
from vinom.cluster.channel import (
    GIVE_BACK,
    READ,
    PlacementKeys,
    announce_end,
    decide,
)
from vinom.cluster.client import RedisClient, Script, parse_redis_url
from vinom.cluster.hosts import HostRecord, RedisHostRegistry
from vinom.cluster.placement import DEFAULT_PLACEMENT, RemoteMatchHosting
from vinom.cluster.settings import PlacementSettings
from vinom.errors import BackendUnavailable
from vinom.games.duel import DuelGame
from vinom.games.registry import GameRegistry
from vinom.hosting.inline import InlineGameHostFactory
from vinom.hosting.interfaces import HostingStopped, MatchWithdrawn, NoHostAvailable
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.match import Match, MatchEnded, Ticket
from vinom.protocol.config import ProtocolConfig, generate_token_key
from vinom.store.memory import MemoryPlayerStore


def duel(match_id: str = "m-1") -> Match:
    players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
    return Match(match_id, "duel", players, 1.0)


def lobby(case: TestCase, redis: RedisClient, lobby_id: str,
          clock: Clock | None = None) -> RemoteMatchHosting:  # fmt: skip
    """A lobby's placement reading its events until the test ends."""
    hosting = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                 clock=clock or reactor, lobby_id=lobby_id)  # fmt: skip
    hosting.startService()
    case.addCleanup(hosting.stopService)
    return hosting


class LateFollowerTests(TestCase):
    """A match split over two lobbies: the second hears it (the matchmaker's channel,
    or its log read after a reconnection) only after the host placed it. Its players
    get the address; the match's end must reach it too, as it reaches the first:
    else it counts the match running for good (its drain waits, its players' addresses
    stay counted, a `host_crashed` keeps them no place in the queue)."""

    timeout = 30

    async def test_a_lobby_that_follows_a_placed_match_hears_its_end(self) -> None:
        redis = await open_redis(self)
        factory, _ = start_host(self, redis, "h-1")
        first, second = lobby(self, redis, "l-a"), lobby(self, redis, "l-b")
        ends: dict[str, list[MatchEnded | None]] = {"l-a": [], "l-b": []}
        address = await first.host_match(duel(), on_ended=ends["l-a"].append)
        # The second lobby hears the match now, after its placement.
        late = await second.host_match(duel(), on_ended=ends["l-b"].append)
        self.assertEqual(late, address)
        self.assertTrue(factory.end_match("m-1"))
        await until(lambda: ends["l-a"], "the first lobby told the end")
        await until(lambda: ends["l-b"], "the late lobby told the end", timeout=5)
        self.assertEqual((first.matches, second.matches), (0, 0))

    async def test_a_lobby_that_hears_a_match_after_it_ended_sends_nobody_there(
            self) -> None:  # fmt: skip
        # A lobby cut off from Redis hears, from the match log, a match formed and
        # placed meanwhile, which ended (aborted: its players never came). Its players
        # must not be sent to a game that is over (a port that may run another match
        # by now): they are answered as for a match no host took, and queue again.
        redis = await open_redis(self)
        factory, _ = start_host(self, redis, "h-1")
        first, second = lobby(self, redis, "l-a"), lobby(self, redis, "l-b")
        ended: list[MatchEnded | None] = []
        await first.host_match(duel(), on_ended=ended.append)
        self.assertTrue(factory.end_match("m-1"))
        await until(lambda: ended, "the end told")
        late = second.host_match(duel())
        await until(lambda: late.called, "the late lobby's answer")
        self.failureResultOf(late, NoHostAvailable)
        self.assertEqual(second.matches, 0)


class WithdrawTests(TestCase):
    """A match of two lobbies' players waits for a host, and the first lobby's player
    leaves it (`MatchPlacer.withdraw_if_abandoned` withdraws it, or cancels its
    placement). The second lobby's player must not be sent to a game host that would
    wait its connect deadline for an opponent who is gone, holding a port: the second
    lobby hears the match withdrawn at once (its `host_match` fails `MatchWithdrawn`, so
    its players go back to the head of the queue), whether it followed the match before
    the withdrawal or after, and no host takes it."""

    timeout = 30

    async def withdrawn_and_not_hosted(self, redis: RedisClient,
                                       *lobbies: RemoteMatchHosting) -> None:  # fmt: skip
        self.assertEqual(json.loads(await redis.handler.get("vinom:outcome:m-1")),
                         {"event": "failed", "match_id": "m-1", "reason": "withdrawn"})
        # A host that reads the request later hosts nothing: no port is held for it.
        _, hosting = start_host(self, redis, "h-late")
        await until(lambda: all_taken(redis), "the request read and dropped")
        self.assertEqual([hosting.matches, *(lobby.matches for lobby in lobbies)],
                         [0] * (1 + len(lobbies)))  # fmt: skip

    async def test_a_lobby_following_the_match_hears_the_withdrawal_at_once(self) -> None:
        redis = await open_redis(self)
        clock = Clock()
        first, second = lobby(self, redis, "l-a", clock), lobby(self, redis, "l-b", clock)
        gone = first.host_match(duel())
        waiting = second.host_match(duel())
        await until(lambda: redis.handler.scard("vinom:lobbies:m-1").addCallback(
            lambda n: n == 2), "both lobbies following")  # fmt: skip
        self.assertTrue(await first.withdraw("m-1"))
        self.failureResultOf(gone, CancelledError)
        await until(lambda: waiting.called, "the second lobby told", timeout=5)
        self.failureResultOf(waiting, MatchWithdrawn)
        await self.withdrawn_and_not_hosted(redis, first, second)

    async def test_a_lobby_that_follows_the_match_after_its_withdrawal_hears_it_at_once(
        self,
    ) -> None:
        """The forced race: the first lobby's player left before the second lobby
        (which heard the match late: a slow channel, a pause) followed it."""
        redis = await open_redis(self)
        clock = Clock()
        first = lobby(self, redis, "l-a", clock)
        gone = first.host_match(duel())
        await until(lambda: redis.handler.sismember("vinom:lobbies:m-1", "l-a"), "followed")
        gone.cancel()
        self.failureResultOf(gone, CancelledError)
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "the match withdrawn")
        second = lobby(self, redis, "l-b", clock)
        late = second.host_match(duel())
        await until(lambda: late.called, "the late lobby told", timeout=5)
        self.failureResultOf(late, MatchWithdrawn)
        await self.withdrawn_and_not_hosted(redis, first, second)

    async def test_a_host_that_started_the_match_as_it_was_withdrawn_frees_its_port(
        self,
    ) -> None:
        """The host read the request and starts the match slowly (paused meanwhile) as
        its player leaves: its `placed` comes too late, and the copy nobody will join is
        aborted at once, not at its connect deadline (30 s), its port free again."""
        redis = await open_redis(self)
        port = free_udp_port()
        protocol = ProtocolConfig(token_key=generate_token_key())
        factory = InlineGameHostFactory(
            reactor=reactor, find_game=GameRegistry([DuelGame()]).get,
            protocol_config=protocol, public_host="127.0.0.1", interface="127.0.0.1",
        )  # fmt: skip
        held = _HeldStarts()
        hosting = GameHostingService(PortAllocator([port]), _Held(factory, held))
        hosting.startService()
        agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=hosting,
                          public_host="127.0.0.1", ports=(port, port), clock=reactor,
                          presence_endpoint=redis.endpoint(reactor), host_id="h-1")  # fmt: skip
        agent.startService()
        self.addCleanup(agent.stopService)
        self.addCleanup(hosting.stopService)
        first = lobby(self, redis, "l-a")
        gone = first.host_match(duel())
        await until(lambda: held.waiting, "the host starting the match")
        self.assertTrue(await first.withdraw("m-1"))
        self.failureResultOf(gone, CancelledError)
        held.release()
        await until(lambda: hosting.matches == 1, "the copy hosted")
        await until(lambda: hosting.free_ports == 1, "the copy's port free again", timeout=10)
        self.assertEqual(json.loads(await redis.handler.get("vinom:outcome:m-1"))["reason"],
                         "withdrawn")  # fmt: skip

    async def test_a_match_placed_before_the_player_left_goes_on(self) -> None:
        redis = await open_redis(self)
        start_host(self, redis, "h-1")
        first, second = lobby(self, redis, "l-a"), lobby(self, redis, "l-b")
        address = await first.host_match(duel())
        self.assertFalse(await first.withdraw("m-1"))
        self.assertEqual(await second.host_match(duel()), address)


class _Held:
    """A game host factory whose starts `held` holds (a host paused as it starts)."""

    def __init__(self, factory: Any, held: _HeldStarts) -> None:
        self._factory = factory
        self.start_host = held.start_host(factory.start_host)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)


class FormedForOthersTests(LobbyHarness, TestCase):
    """On a real Redis, with no game host: the lobby whose call formed a match (the
    matchmaker's leader, by its timer, as the windows of other lobbies' tickets widen)
    hears it though it holds none of its players. None of them left through it: it
    must not give the match up, and their players, in their own lobbies, wait for it
    (`waiting_for_server`, not `no_host`), in a cluster whose hosts are all busy."""

    timeout = 30

    async def test_a_match_of_other_lobbies_players_is_not_withdrawn_here(self) -> None:
        redis = await open_redis(self)
        hosting = lobby(self, redis, "l-test", self.clock)
        await until(lambda: redis.handler.exists("vinom:placements:l-test"), "its stream")
        self.factory = self.make_factory(hosting=hosting, store=MemoryPlayerStore())
        self.factory.startService()
        # Another lobby's players (this lobby holds neither), matched together here.
        for name in ("yan", "zed"):
            self.matchmaker.enqueue(Ticket(f"p-{name}", name, "tictactoe", None, 1.0))
        [match] = self.matches
        await until(lambda: redis.handler.exists(f"vinom:requested:{match.match_id}"),
                    "its request")  # fmt: skip
        await redis.handler.ping()
        self.assertEqual(self.factory.matches_withdrawn, 0)
        self.assertIsNone(await redis.handler.get(f"vinom:outcome:{match.match_id}"))
        # Their own lobby follows it, as it hears it: it waits for a host.
        waiting = lobby(self, redis, "l-theirs", self.clock).host_match(match)
        await until(lambda: redis.handler.sismember(f"vinom:lobbies:{match.match_id}",
                                                    "l-theirs"), "followed there")  # fmt: skip
        self.assertFalse(waiting.called)
        waiting.addErrback(lambda f: f.trap(HostingStopped))  # (as the test's lobbies stop)


class FailoverSplitTests(TestCase):
    """On a real Redis: a Sentinel failover promotes a replica that lacks the last
    writes of host A (its `placed` for a match and its acknowledgement: replication is
    asynchronous), but has A's read of the request, pending for A since before the
    failover, so idle longer than `claim_after` at once. One lobby of the match had
    read A's `placed` (its players were sent to A); another had not and waits. Host B
    claims the request (`XAUTOCLAIM`) before A's presence channel subscribes to the new
    master and says its placement again: B's `placed` is recorded, and the waiting
    lobby's players are sent to B. One match, two addresses: each half of its players
    waits for the others until the connect deadline aborts both copies."""

    timeout = 30

    async def test_a_live_host_s_read_lost_in_a_failover_is_not_hosted_twice(self) -> None:
        redis = await open_redis(self)
        first, second = lobby(self, redis, "l-a"), lobby(self, redis, "l-b")
        start_host(self, redis, "h-a")
        told_a = await first.host_match(duel())
        await until(lambda: redis.handler.sismember("vinom:host-matches:h-a", "m-1"))
        # The promoted replica: A's `placed` and its acknowledgement lost, its read of
        # the request (as a new entry read by A) kept; the other lobby still follows.
        await redis.handler.delete("vinom:outcome:m-1", "vinom:match:m-1",
                                   "vinom:player-match:p0", "vinom:player-match:p1")
        await redis.handler.srem("vinom:host-matches:h-a", "m-1")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-b")
        key = "vinom:place:default"
        await redis.handler.execute_command("XADD", key, "*", "r", request_for("m-1"), "m", "m-1")
        await redis.handler.execute_command(
            "XREADGROUP", "GROUP", "hosts", "h-a", "COUNT", 1, "STREAMS", key, ">")
        await deferLater(reactor, 0.6, lambda: None)
        # Host B comes up on the new master (claim_after shortened for the test).
        start_host(self, redis, "h-b", settings=PlacementSettings(claim_after=0.5))
        waiting = second.host_match(duel())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "a placement again")
        # A's presence channel subscribes to the new master.
        await redis.handler.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await waiting
        # (Both hosts announce the same address here: the outcome names the host.)
        outcome = json.loads(await redis.handler.get("vinom:outcome:m-1"))
        self.assertEqual((outcome["host_id"], outcome["address"]["host"]),
                         ("h-a", told_a.host), "the match's players were sent to two hosts")


class StoppingHostTests(TestCase):
    """On a real Redis: a host stopped cleanly (SIGTERM: a rolling deploy, a scale-down)
    while it starts a match it took (a worker's start takes a moment) cannot host it.
    The match is not the host's to fail: its players, waiting, get it from another host
    with a free slot, not `no_host` (back to the queue, matched again) because one host
    of the realm was going away."""

    timeout = 30

    async def test_a_match_a_stopping_host_could_not_start_goes_to_another_host(
            self) -> None:  # fmt: skip
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-a")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-a")
        factory = PlaceholderGameHostFactory(FakeUDPReactor(), "0.0.0.0", "198.51.100.9")
        hosting = GameHostingService(PortAllocator(range(7400, 7402)), factory)
        hosting.startService()
        agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=hosting,
                          public_host="198.51.100.9", ports=(7400, 7401), clock=reactor,
                          presence_endpoint=redis.endpoint(reactor), host_id="h-stopping")
        agent.startService()
        held = _HeldStarts()
        factory.start_host = held.start_host(factory.start_host)  # type: ignore[method-assign]
        await offer(redis, duel_request())
        await until(lambda: held.waiting, "the host starting the match")
        # SIGTERM: the root stops the agent and the hosting service together.
        stopped = [agent.stopService(), hosting.stopService()]
        held.release()
        for d in stopped:
            await d
        start_host(self, redis, "h-other", settings=PlacementSettings(claim_after=0.5))
        await until(lambda: heard, "the match's outcome")
        self.assertEqual([(m["event"], m.get("host_id")) for m in heard],
                         [("placed", "h-other")])  # fmt: skip


class FloodTests(TestCase):
    """On a real Redis: a flood of matches while every host of the realm is full (a
    launch, hosts scaling up behind it). Each match's request waits in the realm's
    stream for up to `place_timeout`; the stream keeps the requests still waiting, not
    only the last thousand: else the oldest waiting matches lose their request (their
    lobbies, whose marker says it is asked for, add nothing again), and when a host
    frees a slot it serves a newer match while the oldest players get `no_host` at
    their timeout."""

    timeout = 60

    async def test_the_oldest_waiting_match_is_served_first_after_a_flood(self) -> None:
        redis = await open_redis(self)
        lobby_ = lobby(self, redis, "l-a", Clock())
        placing = {}
        for i in range(1200):
            players = tuple(Ticket(f"p{i}-{s}", f"P{i}", "duel", None, 1.0) for s in (0, 1))
            match = Match(f"m-{i:04}", "duel", players, 1.0)
            placing[match.match_id] = lobby_.host_match(match)
            if i % 100 == 99 or i == 0:
                await until(lambda i=i: redis.handler.exists(f"vinom:requested:m-{i:04}"),
                            "the requests")  # fmt: skip
        # A host frees a slot (one registers): it takes the oldest request waiting.
        start_host(self, redis, "h-1", ports=1)
        await until(lambda: placing["m-0000"].called, "the oldest match placed", timeout=10)
        self.assertEqual((await placing["m-0000"]).host, "198.51.100.9")
        # The others wait on; a lobby that stops fails them.
        await lobby_.stopService()
        for d in list(placing.values())[1:]:
            self.failureResultOf(d, HostingStopped)


class MissedEndsTests(TestCase):
    """On a real Redis: a busy lobby that does not read its events for a few seconds (a
    long collection, its connection to Redis dropped, a failover it follows) while more
    than a thousand of its matches end. Every end waits in its stream until it reads
    on: a lost `ended` is never said again, and the lobby would count that match as
    running for good (its drain waits on it, its players' addresses stay counted, a
    `host_crashed` keeps them no place in the queue)."""

    timeout = 60

    async def test_a_lobby_that_did_not_read_for_a_while_hears_every_end(self) -> None:
        redis = await open_redis(self)
        keys = PlacementKeys("vinom:")
        # Its placement, not reading its stream yet (as while it was away).
        hosting = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                     clock=Clock(), lobby_id="l-busy")  # fmt: skip
        count = 1100
        for i in range(count):
            match_id = f"m-{i:04}"
            await redis.handler.sadd(f"vinom:lobbies:{match_id}", "l-first")
            placed = {"event": "placed", "match_id": match_id, "host_id": "h-1",
                      "address": {"host": "198.51.100.9", "port": 7400}}  # fmt: skip
            self.assertTrue(await decide(redis, keys, DEFAULT_PLACEMENT, placed))
            hosting.host_match(duel(match_id))
        # Each `placed` told to its stream as it follows the match, and not read yet.
        await until(lambda: redis.handler.execute_command(
            "XLEN", "vinom:placements:l-busy").addCallback(lambda n: n == count),
            "its matches followed")  # fmt: skip
        for i in range(count):
            await announce_end(redis, keys, "h-1", {"event": "ended",
                                                    "match_id": f"m-{i:04}", "outcome": None})
        hosting.startService()
        self.addCleanup(hosting.stopService)
        await until(lambda: hosting.matches == 0,
                    lambda: f"every end heard ({hosting.matches} not)", timeout=10)


class PausedReaderTests(TestCase):
    """On a real Redis: a host that read a request and was paused (SIGSTOP) stops
    renewing its registration; once it lapses, a live host takes the request
    (`claim_after` after the read), as it takes a dead host's: its players get the
    match a few seconds late, not `no_host` at `place_timeout`."""

    timeout = 30

    async def test_a_request_read_by_a_host_paused_since_is_taken_by_a_live_host(
            self) -> None:  # fmt: skip
        redis = await open_redis(self)
        registry = RedisHostRegistry(redis)
        paused = HostRecord("h-paused", "198.51.100.7", (7500, 7501), 2, 2, 1.0)
        await registry.register(paused, 0.5)
        key = "vinom:place:default"
        await redis.handler.execute_command("XGROUP", "CREATE", key, "hosts", "$", "MKSTREAM")
        await offer(redis, duel_request())
        await redis.handler.execute_command(
            "XREADGROUP", "GROUP", "hosts", "h-paused", "COUNT", 1, "STREAMS", key, ">")
        _, live = start_host(self, redis, "h-live", settings=PlacementSettings(claim_after=0.5))
        # Not while its registration lives (it may be only slow).
        await deferLater(reactor, 0.3, lambda: None)
        self.assertIsNone(await redis.handler.get("vinom:outcome:m-1"))
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed by the live host")
        outcome = json.loads(await redis.handler.get("vinom:outcome:m-1"))
        self.assertEqual((outcome["host_id"], live.matches), ("h-live", 1))


class GapRedis(RedisClient):
    """A pool on which a request is added (as a lobby adds one) just before the host's
    next wait for requests (`XREAD ... BLOCK`) reaches Redis: after the host found none
    to read, before it waits. Says whether that wait ran out with nothing."""

    gap_request: str | None = None
    missed: bool | None = None

    def blocking(self, *command: object) -> Deferred[Any]:
        request = self.gap_request
        if command[0] != "XREAD" or request is None:
            return RedisClient.blocking(self, *command)
        self.gap_request = None
        added = self.handler.execute_command("XADD", "vinom:place:default", "*", "r", request,
                                             "m", json.loads(request)["match"]["match_id"])

        def seen(reply: Any) -> Any:
            self.missed = reply is None
            return reply

        return added.addCallback(
            lambda _: RedisClient.blocking(self, *command).addCallback(seen))


class ArrivalGapTests(TestCase):
    """On a real Redis: a request added while the realm's only host is between finding
    nothing to read and waiting for the next request is read at once, not when its wait
    runs out a second later (by then its lobby told its players `waiting_for_server`,
    though the host was idle)."""

    timeout = 30

    async def test_a_request_added_as_the_host_goes_to_wait_is_read_at_once(self) -> None:
        server = await start_redis(self)
        redis = GapRedis.open(parse_redis_url(server.url), reactor)
        self.addCleanup(redis.disconnect)
        start_host(self, redis, "h-1")
        await until(lambda: redis.handler.exists("vinom:host:h-1"), "the host registered")
        redis.gap_request = duel_request()
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed")
        self.assertIs(redis.missed, False)


class BatchReadTests(TestCase):
    """On a real Redis: a host reads as many requests as it has free slots in one call
    (`READ`), so a read can leave several requests pending for one host. None of them
    may wait for a claim (`claim_after`, then one claim per look) while the host that
    read them lives, nor be dropped as too old after a host died with a whole batch:
    each is a match whose players wait."""

    timeout = 60

    async def test_a_request_read_before_another_streams_read_failed_is_hosted(
            self) -> None:  # fmt: skip
        # A host announcing an IP address reads two streams; Redis lost the second (it
        # lapsed: no relaying lobby added to it for `key_ttl`), so reading it fails
        # after the read of the first took the request. Taken now, not after
        # `claim_after` (long here) as a request of the host's own left pending.
        redis = await open_redis(self)
        start_host(self, redis, "h-1", settings=PlacementSettings(claim_after=60.0,
                                                                  place_timeout=120.0))
        await until(lambda: redis.handler.exists("vinom:place:default:relayed"),
                    "the host's groups made")  # fmt: skip
        await redis.handler.delete("vinom:place:default:relayed")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed", timeout=20)

    async def test_a_batch_a_host_read_and_died_with_is_taken_before_it_is_too_old(
            self) -> None:  # fmt: skip
        # A host with 16 free slots read 16 requests (one `READ`) and died. A live host
        # claims them after `claim_after`: all of them, not one per look (every
        # `claim_after / 4`, or each second as its wait for new requests runs out),
        # while the last ones grow older than `place_timeout` and are dropped (their
        # lobbies tell their players `no_host`).
        redis = await open_redis(self)
        key = "vinom:place:default"
        await redis.handler.execute_command("XGROUP", "CREATE", key, "hosts", "$", "MKSTREAM")
        await offer(redis, *(request_for(f"m-{i}", 2 * i) for i in range(16)))
        read = await redis.handler.execute_command(
            "XREADGROUP", "GROUP", "hosts", "h-dead", "COUNT", 16, "STREAMS", key, ">")
        self.assertEqual(len(read[0][1]), 16)
        # (It claims once the watch has lasted a host's TTL and heartbeat, 3.5 s.)
        settings = PlacementSettings(claim_after=1.0, place_timeout=12.0)
        _, live = start_host(self, redis, "h-live", ports=16, settings=settings)
        await until(lambda: all_taken(redis), "every request handled", timeout=30)
        self.assertEqual(live.matches, 16)


class HeldRedis(RedisClient):
    """A pool that holds back one call until the test releases it (`held.callback`),
    once `hold` names it: a script's answer, when it found something (`READ`), or `int`
    (the next plain answer that is a count: a lobby's `EXISTS` of a match's followers);
    or with `hold_placed`, the next `placed` outcome recorded (`decide`), before it is
    sent (a host saying again the placement of a match Redis lost). The next run of the
    script `lose` fails without reaching Redis, as while Redis does not answer (a
    failover, a stall)."""

    hold: Script | type[int] | None = None
    hold_placed = False
    held: Deferred[None] | None = None
    lose: Script | None = None

    def _held(self) -> Deferred[None]:
        self.hold, self.hold_placed, self.held = None, False, Deferred()
        return self.held

    def bounded(self, call: Deferred[Any]) -> Deferred[Any]:
        def maybe_hold(reply: Any) -> Any:
            if self.hold is int and isinstance(reply, int):
                return self._held().addCallback(lambda _: reply)
            return reply

        return RedisClient.bounded(self, call).addCallback(maybe_hold)

    def run(self, script: Script, keys: Sequence[object] = (),
            args: Sequence[object] = ()) -> Deferred[Any]:  # fmt: skip
        if script is self.lose:
            self.lose = None
            return fail(BackendUnavailable("Redis did not answer within 5 s"))
        if self.hold_placed and args and '"event":"placed"' in str(args[0]):
            return self._held().addCallback(lambda _: RedisClient.run(self, script, keys, args))

        def maybe_hold(reply: Any) -> Any:
            if script is self.hold and reply:
                return self._held().addCallback(lambda _: reply)
            return reply

        return RedisClient.run(self, script, keys, args).addCallback(maybe_hold)


class DrainWhileReadingTests(TestCase):
    """On a real Redis: a host reads requests (up to one per free slot, `READ`) just as
    it begins to drain (SIGTERM: a scale-down, a rolling deploy). A draining host takes
    no new match: else its drain waits for a whole match more (up to 16 of them) that
    began after it was told to drain. The request goes to another host of the realm."""

    timeout = 30

    async def test_a_request_read_as_the_host_began_to_drain_goes_to_another_host(
            self) -> None:  # fmt: skip
        server = await start_redis(self)
        redis = HeldRedis.open(parse_redis_url(server.url), reactor)
        self.addCleanup(redis.disconnect)
        _, draining, agent = start_host_agent(self, redis, "h-draining")
        await until(lambda: redis.handler.exists("vinom:place:default"), "the host reading")
        redis.hold = READ
        await offer(redis, duel_request())
        await until(lambda: redis.held is not None, "the host's read out")
        agent.drain()
        assert redis.held is not None
        redis.held.callback(None)
        start_host(self, redis, "h-other")
        outcome = await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed")
        self.assertEqual((json.loads(str(outcome))["host_id"], draining.matches),
                         ("h-other", 0))  # fmt: skip


class DrainGiveBackLostTests(TestCase):
    """On a real Redis: a host reads a request as it begins to drain, and its give-back
    fails (Redis did not answer: a failover, a stall). The request stays pending for
    the draining host, which lives on (its matches play on) and is registered: no other
    host may claim it. It must still reach a host with a free slot within the match's
    `place_timeout`, not leave its players waiting until they are told `no_host`."""

    timeout = 40

    async def test_a_request_a_draining_host_failed_to_give_back_goes_to_another_host(
            self) -> None:  # fmt: skip
        server = await start_redis(self)
        redis = HeldRedis.open(parse_redis_url(server.url), reactor)
        self.addCleanup(redis.disconnect)
        settings = PlacementSettings(claim_after=0.5)
        _, draining, agent = start_host_agent(self, redis, "h-draining", settings=settings)
        await until(lambda: redis.handler.exists("vinom:place:default"), "the host reading")
        redis.hold = READ
        await offer(redis, duel_request())
        await until(lambda: redis.held is not None, "the host's read out")
        agent.drain()
        redis.lose = GIVE_BACK
        assert redis.held is not None
        redis.held.callback(None)
        await until(lambda: redis.lose is None, "the give-back lost")
        start_host(self, redis, "h-other", settings=settings)
        outcome = await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed",
                              timeout=15)  # fmt: skip
        self.assertEqual((json.loads(str(outcome))["host_id"], draining.matches),
                         ("h-other", 0))  # fmt: skip


class SameEntryIdTests(TestCase):
    """On a real Redis: a host announcing an IP address reads two streams, the realm's
    and its relayed one, whose entry ids are made apart (`<ms>-<seq>`): two requests
    added in the same millisecond, one to each, have the same id. One request, being
    taken (a match taken before, given again after a failover lost its placement),
    must not make the host pass over the other, a new match: left pending for the
    host's own claim, its players wait `claim_after` for nothing (or `no_host`)."""

    timeout = 30

    async def test_a_request_whose_id_another_stream_s_request_has_is_hosted(
            self) -> None:  # fmt: skip
        server = await start_redis(self)
        redis = HeldRedis.open(parse_redis_url(server.url), reactor)
        self.addCleanup(redis.disconnect)
        settings = PlacementSettings(claim_after=60.0, place_timeout=120.0)
        start_host(self, redis, "h-1", ports=3, settings=settings)
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "m-1 placed")
        await until(lambda: redis.handler.exists("vinom:place:default:relayed"),
                    "the host's groups made")  # fmt: skip
        # A failover lost m-1's placement; a lobby still waiting asks for it again.
        await redis.handler.delete("vinom:outcome:m-1")
        seconds, micros = await redis.handler.execute_command("TIME")
        entry_id = f"{int(seconds) * 1000 + int(micros) // 1000 + 1000}-0"
        redis.hold_placed = True
        await redis.handler.execute_command("XADD", "vinom:place:default", entry_id, "r",
                                            duel_request(), "m", "m-1")  # fmt: skip
        await until(lambda: redis.held is not None, "m-1's placement said again, held")
        # A relaying lobby's new match, added in the same millisecond on its stream.
        key = "vinom:place:default:relayed"
        await redis.handler.execute_command("XADD", key, entry_id, "r",
                                            request_for("m-2", 2), "m", "m-2")  # fmt: skip

        async def read() -> bool:
            [group] = await redis.handler.execute_command("XINFO", "GROUPS", key)
            return dict(zip(group[::2], group[1::2], strict=True))["last-delivered-id"] == entry_id

        await until(read, "m-2's request read")
        assert redis.held is not None
        redis.held.callback(None)
        await until(lambda: redis.handler.get("vinom:outcome:m-2"), "m-2 placed", timeout=5)
