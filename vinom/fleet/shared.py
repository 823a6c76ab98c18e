"""vinom's fleet on Redis: the shared state of a cluster's lobbies and game hosts, and what
a game host of the cluster adds (its agent, its Agones lifecycle).

`build_shared` opens the process's Redis pool (it joins the root first, so that
it closes after everything that uses it) and, where a lobby runs, the Redis
matchmaker, placement, parties, per-address limits and ranked results
(vinom.cluster). `build_host` makes the `HostAgent` that registers a game host
and takes the matches lobbies place on it, and with --agones its
`AgonesLifecycle` (vinom.fleet.agones).
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.python import usage

from vinom.cluster.address_limits import RedisAddressLimiter
from vinom.cluster.agent import HostAgent
from vinom.cluster.client import RedisClient
from vinom.cluster.hosts import DEFAULT_REALM, RedisHostRegistry
from vinom.cluster.inflight import InFlightCalls
from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings
from vinom.cluster.parties import RedisPartySettings, RedisPartyStore
from vinom.cluster.placement import RemoteMatchHosting
from vinom.cluster.players import RedisPlayerStore
from vinom.cluster.ranked import RankedResultsReader
from vinom.cluster.records import RedisRecords
from vinom.cluster.services import MatchmakerService, PartyStoreService, RedisClientService
from vinom.cluster.watch import watch_key
from vinom.fleet.agones import AgonesLifecycle, AgonesSDK
from vinom.fleet.redis import check_redis
from vinom.games.rules import GameCatalogue
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.server.fleet import HostParts, SharedState
from vinom.server.roles import relay_refuses, runs_lobby


def build_shared(
    options: usage.Options, reactor: Any, root: service.MultiService, games: GameCatalogue,
    check: bool,
) -> SharedState:  # fmt: skip
    """The player store, matchmaker and parties on the Redis of `options["redis-settings"]`;
    the process's pool joins the root first, so that it closes after everything that uses it."""
    settings = options["redis-settings"]
    if check:
        # Under twistd: a Redis that does not answer is one line and a non-zero exit.
        check_redis(settings, options["redis-start-wait"])
    redis = RedisClient.open(settings, reactor)
    # The pool closes last, once the lobby's calls in flight are answered.
    calls = InFlightCalls(reactor)
    service_named("redis", RedisClientService(redis, reactor, calls)).setServiceParent(root)
    if not runs_lobby(options):
        return SharedState(None, None, None, None, None, (), redis)

    def endpoint() -> Any:
        # With Sentinel, each channel asks the sentinels where the master is at each connection.
        return redis.endpoint(reactor)

    # Each realm is a matchmaking pool of its own: its lobbies' queues, tickets and leases
    # (docs/scaling.md); the default realm keeps the keys it always had.
    mm_prefix = matchmaker_prefix(settings.key_prefix, options["realm"])
    matchmaker = RedisMatchmaker(
        redis.handler, endpoint(), games, reactor,
        settings=RedisMatchmakerSettings(prefix=mm_prefix,
                                         party_prefix=settings.key_prefix + "party",
                                         watch_key=watch_key(settings.key_prefix),
                                         placement_prefix=settings.key_prefix),
        password=settings.password,
        username=settings.username,
        # Its heartbeat reads Redis's clock for every call's deadline.
        redis_clock=redis.redis_clock,
    )  # fmt: skip
    # After a Sentinel failover the promoted replica may lack the last tickets enqueued.
    redis.on_master_moved(matchmaker.restore_tickets)
    placement = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis), clock=reactor,
                                   lobby_id=matchmaker.lobby_id, realm=options["realm"],
                                   refuses=relay_refuses(options))  # fmt: skip
    parties = RedisPartyStore(
        redis, endpoint(), reactor, max_size=games.largest_match or 8,
        settings=RedisPartySettings(prefix=settings.key_prefix + "party",
                                    watch_key=watch_key(settings.key_prefix)),
        password=settings.password,
        username=settings.username,
        # A member whose lobby's lease lapses is taken out of their party.
        lobby_id=matchmaker.lobby_id, lease_prefix=mm_prefix,
    )  # fmt: skip
    # party_join attempts per address are counted in Redis, by every lobby.
    party_joins = RedisAddressLimiter(redis, "party-join", options["queue-rate"],
                                      options["queue-burst"])  # fmt: skip
    # Read only if the lobby rates matches (it subscribes: an account database).
    results = RankedResultsReader(redis=redis, clock=reactor, consumer=matchmaker.lobby_id)
    services = (
        ("matchmaker", MatchmakerService(matchmaker, reactor)),
        ("placement", placement),
        ("parties", PartyStoreService(parties)),
        ("ranked-results", results),
    )
    return SharedState(calls.track(RedisPlayerStore(redis)), calls.track(matchmaker),
                       calls.track(parties), party_joins, placement, services,
                       redis, results, readiness=(placement.problem,))  # fmt: skip


def build_host(
    options: usage.Options, reactor: Any, shared: SharedState, hosting: GameHostingService,
    allocator: PortAllocator,
) -> HostParts:  # fmt: skip
    """A game host of the cluster: its agent and, with --agones, its Agones lifecycle."""
    redis = shared.handle
    low, _high = options["udp-port-range"]
    # Stops with the hosting service; leaves the registry once the games have stopped
    # and their ends are announced (HostAgent.stopService).
    agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis),
                      hosting=hosting, public_host=options["public-host"],
                      ports=(low, low + options["max-games"] - 1), clock=reactor,
                      presence_endpoint=redis.endpoint(reactor),
                      realm=options["realm"], placement=options["placement"],
                      records=redis_records(options, redis))  # fmt: skip
    parts = HostParts(services=(("host-agent", agent),), drains=(agent,),
                      description=f", game host id {agent.host_id}")  # fmt: skip
    if not options["agones"]:
        return parts
    # Once Agones marks the game server Shutdown, lobbies place nothing more here.
    agones = AgonesLifecycle(
        AgonesSDK(reactor, options["agones-sdk-port"]), reactor, allocator,
        labels={"realm": options["realm"]},
        health_every=options["agones-health-interval"],
        on_shutdown=agent.drain,
    )  # fmt: skip

    def watch(healthy: Any) -> None:
        agones.healthy = healthy

    return HostParts(services=parts.services, last=(("agones", agones),),
                     drains=(agent, agones), readiness=(agones.problem,),
                     health_watchers=(watch,), description=parts.description)  # fmt: skip


def service_named(name: str, child: service.Service) -> service.Service:
    child.setName(name)
    return child


def redis_records(options: usage.Options, redis: Any) -> RedisRecords | None:
    """With --redis: the finished records copied to Redis (none when not recording)."""
    recording = options.get("recording")
    if recording is None or not recording.enabled:
        return None
    return RedisRecords(redis, recording)


def matchmaker_prefix(key_prefix: str, realm: str) -> str:
    """The matchmaker's keys of a realm: `<prefix>mm` for the default realm, else
    `<prefix>mm:realm:<realm>` (no key of the default realm's has a `realm` part)."""
    return key_prefix + ("mm" if realm == DEFAULT_REALM else f"mm:realm:{realm}")
