"""The game-host registry: one contract run against the Redis registry and an in-memory model.

Time passes on a Clock for the in-memory registry and for real (short TTLs,
Redis's own key expiry) for the Redis one; `pass_time` hides which.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import txredisapi
from attrs import define, evolve, field
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support.placement_events import hear_placements
from tests.support.redis_server import start_redis
from tests.support.waiting import until
from vinom.cluster.channel import PlacementKeys, announce_end, decide
from vinom.cluster.client import RedisClient, RedisSettings, RedisSubscription, client_endpoint
from vinom.cluster.hosts import (
    DEFAULT_REALM,
    HostRecord,
    IHostRegistry,
    RedisHostRegistry,
    check_ttl,
    decode_host,
    encode_host,
    least_loaded_first,
    presence_channel,
)
from vinom.cluster.settings import DEFAULT_PLACEMENT
from vinom.cluster.watch import WATCH_BREAK
from vinom.errors import BackendUnavailable
from vinom.match import outcome_from_json

# The placement channel's keys under the default prefix.
KEYS = PlacementKeys("vinom:")
# The lobby that follows the matches of these tests (vinom.cluster.channel).
LOBBY = "l-test"


@implementer(IHostRegistry)
@define
class MemoryHostRegistry:
    """A model of `IHostRegistry` for its contract: hosts in a dictionary, each with the
    time its TTL runs out on `clock`."""

    clock: IReactorTime
    # Each host's record, when its TTL runs out and when it registered.
    _hosts: dict[str, tuple[HostRecord, float, float]] = field(factory=dict, init=False)
    _departed: set[str] = field(factory=set, init=False)
    # Departures held back from claims, as the Redis registry holds them after Redis was
    # away (vinom.cluster.watch); and how many times `get` was called.
    holding: bool = field(default=False, init=False)
    reads: int = field(default=0, init=False)

    def register(
        self, record: HostRecord, ttl: float, matches: Sequence[str] = ()
    ) -> Deferred[None]:
        check_ttl(ttl)
        now = self.clock.seconds()
        self._hosts[record.host_id] = (record, now + ttl, now)
        self._departed.discard(record.host_id)
        return succeed(None)

    def unregister(self, host_id: str) -> Deferred[None]:
        # (No match is placed in this model: a host leaves with none left to end.)
        self._hosts.pop(host_id, None)
        self._departed.discard(host_id)
        return succeed(None)

    def _expire(self) -> None:
        now = self.clock.seconds()
        for host_id, (_, expires_at, _) in list(self._hosts.items()):
            if expires_at <= now:
                del self._hosts[host_id]
                self._departed.add(host_id)

    def live_hosts(self) -> Deferred[list[HostRecord]]:
        self._expire()
        now = self.clock.seconds()
        return succeed(least_loaded_first(
            evolve(record, silent_for=now - at) for record, _, at in self._hosts.values()
        ))  # fmt: skip

    def claim_departed(self) -> Deferred[list[str]]:
        self._expire()
        if self.holding:
            return succeed([])
        departed, self._departed = sorted(self._departed), set()
        return succeed(departed)

    def get(self, host_id: str) -> Deferred[HostRecord | None]:
        self._expire()
        self.reads += 1
        found = self._hosts.get(host_id)
        return succeed(None if found is None else found[0])

    def departed(self, host_id: str) -> Deferred[bool]:
        self._expire()
        return succeed(host_id not in self._hosts and host_id not in self._departed)


def host(host_id: str, free: int = 4, capacity: int = 8) -> HostRecord:
    return HostRecord(host_id, f"{host_id}.example", (7400, 7499), capacity, free, 10.0)


class HostRegistryContract:
    """The tests every host registry passes; `make_registry` gives a fresh empty one."""

    registry: Any
    # The TTL of the expiry tests, in seconds.
    ttl: float


    async def make_registry(self) -> Any:
        raise NotImplementedError

    async def pass_time(self, seconds: float) -> None:
        raise NotImplementedError

    def setUp(self) -> Deferred[None]:
        async def made() -> None:
            self.registry = await self.make_registry()

        return Deferred.fromCoroutine(made())

    def test_provides_the_interface(self: Any) -> None:
        self.assertTrue(verifyObject(IHostRegistry, self.registry))

    async def test_a_registered_host_is_live_and_found(self: Any) -> None:
        self.assertEqual(await self.registry.live_hosts(), [])
        record = host("h-1")
        self.assertIsNone(await self.registry.register(record, 30))
        self.assertEqual(await self.registry.live_hosts(), [record])
        self.assertEqual(await self.registry.get("h-1"), record)
        self.assertIsNone(await self.registry.get("h-2"))

    async def test_registering_again_replaces_the_record(self: Any) -> None:
        await self.registry.register(host("h-1", free=4), 30)
        fuller = host("h-1", free=1)
        await self.registry.register(fuller, 30)
        self.assertEqual(await self.registry.live_hosts(), [fuller])
        self.assertEqual(await self.registry.get("h-1"), fuller)

    async def test_live_hosts_are_listed_least_loaded_first(self: Any) -> None:
        for record in (host("c", free=2), host("b", free=5), host("a", free=2),
                       host("d", free=0), host("e", free=5, capacity=5)):  # fmt: skip
            await self.registry.register(record, 30)
        listed = await self.registry.live_hosts()
        self.assertEqual([r.host_id for r in listed], ["b", "e", "a", "c", "d"])

    async def test_an_unregistered_host_is_gone(self: Any) -> None:
        await self.registry.register(host("h-1"), 30)
        await self.registry.register(host("h-2"), 30)
        self.assertIsNone(await self.registry.unregister("h-1"))
        self.assertEqual(await self.registry.live_hosts(), [host("h-2")])
        self.assertIsNone(await self.registry.get("h-1"))
        # Unregistering an unknown host is not an error.
        await self.registry.unregister("h-1")

    async def test_a_host_that_stops_heartbeating_drops_out_within_its_ttl(self: Any) -> None:
        ttl = self.ttl
        await self.registry.register(host("quiet"), ttl)
        await self.registry.register(host("beating"), ttl)
        await self.pass_time(ttl * 0.5)
        await self.registry.register(host("beating"), ttl)  # a heartbeat
        await self.pass_time(ttl * 0.6)
        self.assertEqual(await self.registry.live_hosts(), [host("beating")])
        self.assertIsNone(await self.registry.get("quiet"))
        # A host that comes back registers again and is live again.
        await self.registry.register(host("quiet", free=6), ttl * 10)
        listed = await self.registry.live_hosts()
        self.assertEqual([r.host_id for r in listed], ["quiet", "beating"])
        await self.pass_time(ttl * 0.9)
        self.assertEqual(await self.registry.live_hosts(), [host("quiet", free=6)])

    async def test_the_game_url_is_kept(self: Any) -> None:
        record = HostRecord("h-web", "games-1.example", (7400, 7401), 2, 2, 3.0,
                            game_url="wss://games-1.example:7380/game")  # fmt: skip
        await self.registry.register(record, 30)
        found = await self.registry.get("h-web")
        self.assertEqual(found, record)
        self.assertEqual(found.game_url, "wss://games-1.example:7380/game")

    async def test_ids_that_look_like_numbers_stay_strings(self: Any) -> None:
        record = HostRecord("42", "10.0.0.1", (7400, 7400), 1, 1, 2.0)
        await self.registry.register(record, 30)
        self.assertEqual(await self.registry.live_hosts(), [record])
        self.assertEqual(await self.registry.get("42"), record)
    async def test_a_departed_host_is_claimed_once(self: Any) -> None:
        ttl = self.ttl
        await self.registry.register(host("quiet"), ttl)
        await self.registry.register(host("leaving"), ttl * 10)
        await self.registry.register(host("beating"), ttl * 10)
        self.assertEqual(await self.registry.claim_departed(), [])
        await self.registry.unregister("leaving")
        # Gone at once, with no match left: nothing to claim.
        self.assertTrue(await self.registry.departed("leaving"))
        self.assertFalse(await self.registry.departed("quiet"))
        await self.pass_time(ttl * 1.2)
        self.assertFalse(await self.registry.departed("quiet"))
        self.assertEqual(sorted(await self.registry.claim_departed()), ["quiet"])
        self.assertTrue(await self.registry.departed("quiet"))
        # Claimed: nobody else gets them.
        self.assertEqual(await self.registry.claim_departed(), [])
        self.assertEqual(await self.registry.live_hosts(), [host("beating")])

    async def test_a_host_back_before_it_is_claimed_has_not_departed(self: Any) -> None:
        ttl = self.ttl
        await self.registry.register(host("h-1"), ttl)
        await self.pass_time(ttl * 1.2)
        await self.registry.register(host("h-1"), ttl * 10)
        self.assertEqual(await self.registry.claim_departed(), [])
        self.assertEqual(await self.registry.live_hosts(), [host("h-1")])

    async def test_a_hosts_silence_is_measured(self: Any) -> None:
        ttl = self.ttl
        await self.registry.register(host("h-1"), ttl * 10)
        await self.pass_time(ttl * 0.5)
        [listed] = await self.registry.live_hosts()
        self.assertGreaterEqual(listed.silent_for, ttl * 0.5 - 0.01)
        self.assertLess(listed.silent_for, ttl * 5)
        await self.registry.register(host("h-1"), ttl * 10)  # a heartbeat
        [listed] = await self.registry.live_hosts()
        self.assertLess(listed.silent_for, ttl * 0.5)


    def test_a_ttl_must_be_positive(self: Any) -> None:
        for ttl in (0, -1.0):
            self.assertRaises(ValueError, self.registry.register, host("h-1"), ttl)


class MemoryHostRegistryTests(HostRegistryContract, TestCase):
    ttl = 5.0

    async def make_registry(self) -> Any:
        self.clock = Clock()
        return MemoryHostRegistry(self.clock)

    async def pass_time(self, seconds: float) -> None:
        self.clock.advance(seconds)


class RedisHostRegistryTests(HostRegistryContract, TestCase):
    timeout = 30
    # Real time with Redis's own key expiry: short to keep the tests fast, long
    # enough that a loaded machine's round trips fit well inside it.
    ttl = 1.0

    async def make_registry(self) -> Any:
        self.redis = await start_redis(self)
        return self.lobby()

    def lobby(self, client: RedisClient | None = None) -> RedisHostRegistry:
        """A lobby's registry: with these tests' TTL, a host missing once Redis has been
        watched for `ttl` is dead (vinom.cluster.watch)."""
        return RedisHostRegistry(client or self.client(), settle=self.ttl)

    def client(self, **settings: Any) -> RedisClient:
        client = RedisClient.open(RedisSettings("127.0.0.1", self.redis.port, **settings), reactor)
        self.addCleanup(client.disconnect)
        return client

    async def pass_time(self, seconds: float) -> None:
        """Real time passes in a cluster whose other processes go on calling Redis: the
        watch guard's key is renewed every 0.25 s as their calls renew it
        (vinom.cluster.watch), so only the keys under test lapse, however late this
        process's own calls run on a loaded machine."""
        end = reactor.seconds() + seconds
        while (left := end - reactor.seconds()) > 0:
            self.redis.command("PEXPIRE", "vinom:watch", str(int(WATCH_BREAK * 1000)))
            await deferLater(reactor, min(0.25, left), lambda: None)

    async def pass_unwatched_time(self, seconds: float) -> None:
        """Real time passes with nobody calling Redis (as while it is away)."""
        await deferLater(reactor, seconds, lambda: None)

    async def test_every_lobby_process_sees_the_same_hosts(self) -> None:
        # A second pool, as a second lobby process on the same Redis would have.
        other = self.lobby()
        await self.registry.register(host("h-1", free=1), 30)
        await other.register(host("h-2", free=3), 30)
        self.assertEqual(await other.live_hosts(), [host("h-2", free=3), host("h-1", free=1)])
        await other.unregister("h-1")
        self.assertEqual(await self.registry.live_hosts(), [host("h-2", free=3)])

    async def test_hosts_that_all_stopped_leave_no_key_behind(self) -> None:
        registry = RedisHostRegistry(self.client(key_prefix="app-1:"), stall_grace=self.ttl,
                                     settle=self.ttl)  # fmt: skip
        await registry.register(host("h-1"), self.ttl)
        await registry.register(host("h-2"), self.ttl / 2)
        raw = await txredisapi.Connection("127.0.0.1", self.redis.port, reconnect=False)
        self.addCleanup(raw.disconnect)
        # (And the watch guard's key, which lapses once nobody calls: vinom.cluster.watch.)
        self.assertEqual(sorted(await raw.keys("*")),
                         ["app-1:host-heard:h-1", "app-1:host-heard:h-2", "app-1:host:h-1",
                          "app-1:host:h-2", "app-1:hosts", "app-1:watch"])  # fmt: skip
        await self.pass_unwatched_time(max(self.ttl, WATCH_BREAK) * 1.3)
        self.assertEqual(await raw.keys("*"), [])
    async def hear_channel(self) -> list[Any]:
        """What the stream of the lobby following every match (`place`) gets from now on."""
        return await hear_placements(self, self.client(), LOBBY)

    async def place(self, client: RedisClient, host_id: str, match_id: str) -> None:
        """Record `match_id`, followed by LOBBY, as placed on `host_id`, as its HostAgent
        does."""
        await client.handler.sadd(KEYS.followers(match_id), LOBBY)
        placed = {"event": "placed", "match_id": match_id, "host_id": host_id,
                  "address": {"host": "127.0.0.1", "port": 7400}}  # fmt: skip
        self.assertTrue(await decide(client, KEYS, DEFAULT_PLACEMENT, placed))

    async def test_the_first_claimer_ends_the_matches_a_dead_host_left(self) -> None:
        heard = await self.hear_channel()
        agent = self.client()
        await self.registry.register(host("doomed"), self.ttl)
        await self.registry.register(host("steady"), 30)
        for match_id in ("m-1", "m-2", "m-3"):
            await self.place(agent, "doomed", match_id)
        await self.place(agent, "steady", "m-4")
        # m-3 ends on its host before the host dies: not ended again.
        await announce_end(agent, KEYS, "doomed", {"event": "ended", "match_id": "m-3",
                                                   "outcome": None})  # fmt: skip
        self.assertEqual(await self.registry.claim_departed(), [])
        await self.pass_time(self.ttl * 1.3)
        # Three lobbies read the registry at once: exactly one claims the dead host.
        lobbies = [self.lobby() for _ in range(3)]
        claims = await gatherResults([lobby.claim_departed() for lobby in lobbies])
        self.assertEqual(sorted(claims), [[], [], ["doomed"]])
        await self.heard(heard, 3)
        ended = [m for m in heard if m["event"] == "ended"]
        self.assertEqual(sorted(m["match_id"] for m in ended), ["m-1", "m-2", "m-3"])
        for message in ended:
            if message["match_id"] == "m-3":
                continue
            self.assertEqual(message["host_id"], "doomed")
            outcome = outcome_from_json(message["outcome"])
            self.assertEqual((outcome.match_id, outcome.phase, outcome.reason),
                             (message["match_id"], "aborted", "host_crashed"))  # fmt: skip
        raw = await txredisapi.Connection("127.0.0.1", self.redis.port, reconnect=False)
        self.addCleanup(raw.disconnect)
        self.assertEqual(await raw.exists(KEYS.host_matches("doomed")), 0)
        self.assertEqual(await raw.smembers(KEYS.host_matches("steady")), {"m-4"})
        # The ended matches' lobbies are done with them; m-4's still follow it.
        for match_id in ("m-1", "m-2", "m-3"):
            self.assertEqual(await raw.exists(KEYS.followers(match_id)), 0)
        self.assertEqual(await raw.smembers(KEYS.followers("m-4")), {LOBBY})
        # Each end waits in the lobby's stream for it to read (vinom.cluster.channel);
        # m-4 runs on.
        self.assertEqual(await raw.execute_command("XLEN", KEYS.events(LOBBY)), 4 + 3)

    async def test_a_dead_hosts_matches_outlive_its_registration_for_the_claimer(self) -> None:
        await self.registry.register(host("doomed"), self.ttl)
        agent = self.client()
        await self.place(agent, "doomed", "m-1")
        await self.registry.register(host("doomed"), self.ttl)  # a heartbeat
        raw = await txredisapi.Connection("127.0.0.1", self.redis.port, reconnect=False)
        self.addCleanup(raw.disconnect)
        # No lobby reads the registry until long after its TTL ran out (another host
        # beats meanwhile: Redis is watched, this is no outage).
        for _ in range(8):
            await self.registry.register(host("steady"), 30)
            await self.pass_time(self.ttl / 4)
        self.assertEqual(await raw.exists("vinom:host:doomed"), 0)
        self.assertGreater(
            await raw.execute_command("PTTL", KEYS.host_matches("doomed")), self.ttl * 1000
        )
        self.assertGreater(await raw.execute_command("PTTL", KEYS.hosts), self.ttl * 1000)
        heard = await self.hear_channel()
        self.assertEqual(await self.registry.claim_departed(), ["doomed"])
        await self.heard(heard, 1)
        self.assertEqual([m["match_id"] for m in heard], ["m-1"])


    async def heard(self, heard: list[dict[str, Any]], ended: int) -> None:
        """Until `ended` ends were heard on the channel; then a moment more, in which
        no other may come (a second announcement of one)."""
        await until(lambda: len([m for m in heard if m["event"] == "ended"]) >= ended,
                    lambda: f"{ended} ends heard, not {heard}")  # fmt: skip
        await deferLater(reactor, 0.2, lambda: None)

    async def hold_presence(self, host_id: str) -> RedisSubscription:
        """The presence connection of `host_id`, open, as its HostAgent holds it."""
        settings = RedisSettings("127.0.0.1", self.redis.port)
        channel = presence_channel(self.registry.redis, host_id)
        subscription = RedisSubscription(client_endpoint(settings, reactor), channel,
                                         lambda _: None, reactor)  # fmt: skip
        subscription.start()
        self.addCleanup(subscription.stop)
        await subscription.when_subscribed()
        return subscription

    async def test_a_paused_host_keeps_its_matches_and_plays_on_when_it_resumes(self) -> None:
        # A paused process: its registration lapses, its presence connection stays open.
        await self.hold_presence("paused")
        await self.registry.register(host("paused"), self.ttl)
        await self.place(self.client(), "paused", "m-1")
        heard = await self.hear_channel()
        await self.pass_time(self.ttl * 1.3)
        self.assertEqual(await self.registry.live_hosts(), [])
        self.assertEqual(await self.registry.claim_departed(), [])
        # It goes on: registered again, its match still its own, nothing ended.
        await self.registry.register(host("paused"), self.ttl)
        self.assertEqual(await self.registry.live_hosts(), [host("paused")])
        self.assertEqual(await self.registry.claim_departed(), [])
        raw = await txredisapi.Connection("127.0.0.1", self.redis.port, reconnect=False)
        self.addCleanup(raw.disconnect)
        self.assertEqual(await raw.smembers(KEYS.host_matches("paused")), {"m-1"})
        self.assertEqual(heard, [])

    async def test_a_host_paused_past_the_stall_grace_is_departed(self) -> None:
        registry = RedisHostRegistry(self.client(), stall_grace=self.ttl * 2, settle=self.ttl)
        await self.hold_presence("stuck")
        await registry.register(host("stuck"), self.ttl)
        await self.place(self.client(), "stuck", "m-1")
        heard = await self.hear_channel()
        await self.pass_time(self.ttl * 1.3)
        self.assertEqual(await registry.claim_departed(), [])
        await self.pass_time(self.ttl)
        self.assertEqual(await registry.claim_departed(), ["stuck"])
        await self.heard(heard, 1)
        self.assertEqual([m["outcome"]["reason"] for m in heard], ["host_crashed"])

    async def test_a_host_whose_presence_closed_is_departed_as_its_key_lapses(self) -> None:
        # Two hosts stop heartbeating; the process of one is killed (Redis sees its
        # connections close), the other's is paused (its connection stays open).
        killed = await self.hold_presence("killed")
        await self.hold_presence("paused")
        await self.registry.register(host("killed"), self.ttl)
        await self.registry.register(host("paused"), self.ttl)
        for host_id in ("killed", "paused"):
            await self.place(self.client(), host_id, f"m-{host_id}")
        await killed.stop()
        await self.pass_time(self.ttl * 1.3)
        self.assertEqual(await self.registry.claim_departed(), ["killed"])
        self.assertEqual(await self.registry.claim_departed(), [])
    async def test_a_host_that_unregisters_with_matches_left_is_claimed(self) -> None:
        heard = await self.hear_channel()
        agent = self.client()
        for host_id in ("clean", "hasty"):
            await self.registry.register(host(host_id), 30)
            await self.place(agent, host_id, f"m-{host_id}")
        await announce_end(agent, KEYS, "clean", {"event": "ended", "match_id": "m-clean",
                                                  "outcome": None})  # fmt: skip
        await self.registry.unregister("clean")
        await self.registry.unregister("hasty")  # its match's end was never announced
        self.assertTrue(await self.registry.departed("clean"))
        self.assertFalse(await self.registry.departed("hasty"))
        # Claimed once Redis has been watched for the guard's window (a TTL here).
        claimed: list[str] = []
        for _ in range(int(self.ttl / 0.1) + 10):
            claimed += await self.registry.claim_departed()
            await self.pass_time(0.1)
        self.assertEqual(claimed, ["hasty"])
        await self.heard(heard, 2)
        ended = [m for m in heard if m["event"] == "ended"]
        self.assertEqual([(m["match_id"], (m["outcome"] or {}).get("reason")) for m in ended],
                         [("m-clean", None), ("m-hasty", "host_crashed")])  # fmt: skip

    async def beat(self, registry: RedisHostRegistry, host_id: str, every: float,
                   until: Deferred[None]) -> None:  # fmt: skip
        """`host_id`'s heartbeats every `every` seconds until `until` fires."""
        while not until.called:
            await registry.register(host(host_id), self.ttl)
            await self.pass_time(every)

    async def test_after_redis_was_away_every_host_has_a_full_ttl_to_come_back(self) -> None:
        # Redis away for longer than a host's TTL (a failover, a restart): nobody could
        # call it, and every host key has expired when it is back.
        hosts = self.client()
        for host_id in ("back", "doomed"):
            await self.registry.register(host(host_id), self.ttl)
        heard = await self.hear_channel()
        await self.place(hosts, "back", "m-1")
        await self.pass_unwatched_time(WATCH_BREAK + 0.2)
        # The first lobby back claims nobody, however often it looks, until the watch
        # has lasted a TTL: "back" registers again meanwhile and keeps its match.
        lobby = self.lobby()
        self.assertEqual(await lobby.claim_departed(), [])
        self.assertFalse(await lobby.departed("doomed"))
        stop: Deferred[None] = Deferred()
        beating = Deferred.fromCoroutine(self.beat(self.lobby(hosts), "back", self.ttl / 4, stop))
        # How long the watch had lasted is read from Redis after each claim: a claim
        # that found a death while that is under a TTL was surely made too early,
        # however late this process's calls ran.
        claimed: list[str] = []
        while not claimed:
            claimed += await lobby.claim_departed()
            lasted = self.redis.watch_lasted_ms() / 1000
            if claimed:
                self.assertGreaterEqual(lasted, self.ttl, "claimed before a full TTL")
            else:
                # Past the guard's window a host that did not come back is dead, at
                # once (a loaded machine's round trips aside).
                self.assertLess(lasted, self.ttl + 1.0)
            await self.pass_time(0.05)
        stop.callback(None)
        await beating
        self.assertEqual(claimed, ["doomed"])
        self.assertTrue(await lobby.departed("doomed"))
        self.assertFalse(await lobby.departed("back"))
        self.assertEqual([m["event"] for m in heard], ["placed"])

    async def test_a_death_while_redis_is_watched_is_noticed_within_the_ttl(self) -> None:
        # The guard does not delay a real death: a lobby reads the registry every 0.1 s,
        # two hosts beat, and one of them stops once the watch has lasted its window.
        steady_stop: Deferred[None] = Deferred()
        doomed_stop: Deferred[None] = Deferred()
        every = self.ttl / 4
        steady = Deferred.fromCoroutine(self.beat(self.lobby(), "steady", every, steady_stop))
        doomed = Deferred.fromCoroutine(self.beat(self.lobby(), "doomed", every, doomed_stop))
        lobby = self.lobby()
        for _ in range(int(self.ttl / 0.1) + 3):
            self.assertEqual(await lobby.claim_departed(), [])
            await self.pass_time(0.1)
        doomed_stop.callback(None)
        await doomed
        # Its key lapses `ttl` after its last heartbeat, by Redis's clock.
        self.assertTrue(0 < int(self.redis.command("PTTL", "vinom:host:doomed")[1:])
                        <= self.ttl * 1000)  # fmt: skip
        stopped = reactor.seconds()
        claimed: list[str] = []

        async def noticed() -> bool:
            # The guard delays nothing: the first read after the key lapsed claims the
            # host (the read first, then the key: one there still was there then).
            found = await lobby.claim_departed()
            lapsed = self.redis.command("EXISTS", "vinom:host:doomed") == b":0"
            self.redis.command("PEXPIRE", "vinom:watch", str(int(WATCH_BREAK * 1000)))
            claimed.extend(found)
            if lapsed and not claimed:
                lapsed_reads.append(1)
            return bool(claimed)

        lapsed_reads: list[int] = []
        await until(noticed, "the death noticed", timeout=self.ttl + 20, every=0.1)
        print(f"\nnoticed {reactor.seconds() - stopped:.2f} s after the last heartbeat",
              file=sys.stderr)  # fmt: skip
        steady_stop.callback(None)
        await steady
        self.assertEqual(claimed, ["doomed"])
        # Not delayed by the watch guard: at most one read (under way as the key
        # lapsed) saw the key gone and claimed nothing.
        self.assertLessEqual(len(lapsed_reads), 1)

    async def test_calls_fail_clearly_while_redis_is_down(self) -> None:
        registry = self.lobby(self.client(timeout=0.3))
        await registry.register(host("h-1"), 30)
        await self.redis.stop()
        await self.assertFailure(registry.live_hosts(), BackendUnavailable)
        await self.assertFailure(registry.register(host("h-1"), 30), BackendUnavailable)


class HostRecordTests(SynchronousTestCase):
    def test_bad_records_are_refused(self) -> None:
        for bad in (
            {"host_id": ""},
            {"ports": (7500, 7400)},
            {"ports": (0, 10)},
            {"capacity": -1, "free": 0},
            {"free": 9},
            {"free": -1},
            {"realm": ""},
        ):
            fields: dict[str, Any] = {"host_id": "h", "public_host": "h.example",
                                      "ports": (7400, 7499), "capacity": 8, "free": 4,
                                      "updated_at": 1.0, **bad}  # fmt: skip
            self.assertRaises(ValueError, HostRecord, **fields)

    def test_ties_in_free_capacity_go_by_host_id(self) -> None:
        records = [host("b", free=1), host("a", free=1), host("c", free=2)]
        self.assertEqual([r.host_id for r in least_loaded_first(records)], ["c", "a", "b"])

    def test_the_realm_survives_encoding_and_a_record_without_one_is_in_the_default(
        self,
    ) -> None:
        record = evolve(host("h-1"), realm="eu")
        self.assertEqual(decode_host(encode_host(record, 3000)), record)
        older = json.loads(encode_host(host("h-2")))
        del older["realm"]  # as a host of an earlier version registers
        self.assertEqual(decode_host(json.dumps(older)).realm, DEFAULT_REALM)
