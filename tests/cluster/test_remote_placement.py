"""Remote placement (vinom.cluster.placement, agent, channel): a match no game host took
puts its connected players back at the head of the queue; a lobby sharing its store
forgets only its own players; match outcomes cross the placement channel as they were;
the first lobby to follow a match asks for it, the realm's hosts take requests only
while they have a free slot, and a live host takes what a dead one read."""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, LoopingCall, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from txredisapi import ResponseError
from zope.interface import implementer

from tests.cluster.test_host_registry import MemoryHostRegistry
from tests.lobby import reconnect
from tests.lobby.test_lobby import LobbyHarness
from tests.support.doubles import FakeUDPReactor, PlaceholderGameHostFactory
from tests.support.http import capture_log
from tests.support.placement_events import hear_placements
from tests.support.redis_server import start_redis
from tests.support.waiting import until
from vinom.cluster import agent as agent_module
from vinom.cluster.agent import HostAgent, read_delay
from vinom.cluster.channel import PlacementKeys, announce_end, decide, stream_lost
from vinom.cluster.client import (
    RedisClient,
    parse_redis_url,
)
from vinom.cluster.hosts import HostRecord, RedisHostRegistry
from vinom.cluster.placement import DEFAULT_PLACEMENT, RemoteMatchHosting
from vinom.cluster.players import RedisPlayerStore
from vinom.cluster.settings import PlacementSettings
from vinom.errors import BackendUnavailable
from vinom.hosting.interfaces import HostingStopped, IMatchHosting, NoHostAvailable
from vinom.hosting.ports import PortAllocator
from vinom.hosting.service import GameHostingService
from vinom.identity import hash_secret
from vinom.lobby.config import LobbyConfig
from vinom.match import Match, MatchEnded, Ticket, match_to_json, outcome_from_json, outcome_to_json
from vinom.protocol.address import HostAddress
from vinom.server.logs import ServerRoot
from vinom.store.interfaces import MatchPlacement, PlayerRecord
from vinom.store.memory import MemoryPlayerStore


@implementer(IMatchHosting)
class ScriptedHosting:
    """An IMatchHosting whose placements the test answers."""

    matches = 0
    running_games = 0
    free_ports = 0

    def __init__(self) -> None:
        self.asked: list[tuple[Match, Deferred[HostAddress]]] = []
        self.on_ended: dict[str, Callable[[MatchEnded | None], object]] = {}

    def host_match(
        self,
        match: Match,
        on_waiting: Callable[[int], object] | None = None,
        on_ended: Callable[[MatchEnded | None], object] | None = None,
    ) -> Deferred[HostAddress]:
        d: Deferred[HostAddress] = Deferred()
        self.asked.append((match, d))
        if on_ended is not None:
            self.on_ended[match.match_id] = on_ended
        return d

    def end(self, match: Match) -> None:
        """The game host says the match finished."""
        self.on_ended.pop(match.match_id)(
            MatchEnded(match.match_id, "finished", {"winners": []}, None, match.player_ids)
        )

    def when_all_ended(self) -> Deferred[None]:
        return succeed(None)

    def confirm_running(self, match_id: str) -> Deferred[bool]:
        return succeed(True)

    def withdraw(self, match_id: str) -> Deferred[bool]:
        return succeed(False)


class NoHostTests(LobbyHarness):
    def setUp(self) -> None:
        super().setUp()
        self.remote = ScriptedHosting()
        self.store = MemoryPlayerStore()
        self.factory = self.make_factory(hosting=self.remote, store=self.store)
        self.factory.startService()

    def test_players_go_back_to_the_head_of_the_queue_and_are_told(self) -> None:
        ada, bo = self.queued_player("ada"), self.queued_player("bo")
        [(match, placing)] = self.remote.asked
        placing.errback(NoHostAvailable("no live game host with free capacity"))
        for client in (ada, bo):
            [frame] = client.frames()
            self.assertEqual(
                frame,
                {"type": "queued", "game": "tictactoe", "queue": "normal",
                 "position": frame["position"],
                 "status": "searching", "requeued": True, "reason": "no_host"},
            )  # fmt: skip
        # Back in the queue, they are matched again: and this time a host takes it.
        self.assertEqual(len(self.remote.asked), 2)
        again, placed = self.remote.asked[1]
        self.assertEqual(set(again.player_ids), set(match.player_ids))
        self.assertNotEqual(again.match_id, match.match_id)
        placed.callback(HostAddress("203.0.113.7", 7400))
        for client in (ada, bo):
            [found] = client.frames()
            self.assertEqual(found["type"], "match_found")
            self.assertEqual((found["host"], found["port"]), ("203.0.113.7", 7400))

    def test_a_shared_store_keeps_the_records_of_other_lobbies_players(self) -> None:
        ada = self.queued_player("ada")
        # A player this lobby does not hold (another lobby's), matched with ada.
        other = PlayerRecord("p-other", "zed", "00" * 32, self.clock.seconds())
        self.store.save_player(other)
        self.matchmaker.enqueue(Ticket("p-other", "zed", "tictactoe", None, self.clock.seconds()))
        [(_, placing)] = self.remote.asked
        placing.errback(NoHostAvailable("none"))
        self.assertEqual(ada.frames()[0]["reason"], "no_host")
        self.assertEqual(self.successResultOf(self.store.get_player("p-other")), other)


class RecordedStore(MemoryPlayerStore):
    """A player store shared with other lobbies, as a Redis one is, counting the
    placement writes this lobby makes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def save_placement(self, placement: MatchPlacement) -> Deferred[None]:
        self.writes.append("save " + placement.match_id)
        return super().save_placement(placement)

    def remove_placement(self, match_id: str, forget: Any = ()) -> Deferred[None]:
        self.writes.append("remove " + match_id)
        return super().remove_placement(match_id, forget)


class SharedPlacementTests(LobbyHarness):
    """With remote hosting the game host's scripts save the placement record and remove
    it (`HostRecordsPlacementTests`): a lobby that follows the match writes nothing of it,
    so a match split across lobbies costs each only its own players' frames."""

    def start(self) -> ScriptedHosting:
        remote = ScriptedHosting()
        # The harness's own lobby hears the matches too: this one gets its own store.
        self.shared = RecordedStore()
        self.factory = self.make_factory(hosting=remote, store=self.shared)
        self.factory.startService()
        return remote

    def other_lobbys_match(self, remote: ScriptedHosting) -> Match:
        # Two players this lobby does not hold (another lobby's), matched together.
        for name in ("yan", "zed"):
            self.matchmaker.enqueue(Ticket(f"p-{name}", name, "tictactoe", None, 1.0))
        [(match, placing)] = remote.asked
        placing.callback(HostAddress("203.0.113.7", 7400))
        return match

    def test_a_lobby_without_its_players_writes_nothing_of_the_match(self) -> None:
        remote = self.start()
        match = self.other_lobbys_match(remote)
        remote.end(match)
        self.assertEqual(self.shared.writes, [])

    def test_a_lobby_with_a_player_of_the_match_only_delivers_it(self) -> None:
        remote = self.start()
        ada = self.queued_player("ada")
        self.matchmaker.enqueue(Ticket("p-zed", "zed", "tictactoe", None, 1.0))
        [(match, placing)] = remote.asked
        placing.callback(HostAddress("203.0.113.7", 7400))
        found = ada.frames()[-1]
        self.assertEqual((found["type"], found["game_id"]), ("match_found", match.match_id))
        remote.end(match)
        self.assertEqual(self.shared.writes, [])

    def test_a_player_reconnecting_here_while_their_match_waits_gets_it(self) -> None:
        # Another lobby's player (that lobby died, say) reconnects through this one
        # before their match is placed: this lobby followed the match, so it answers
        # with the wait and then delivers the match.
        remote = self.start()
        secret = "s" * 32
        self.shared.save_player(PlayerRecord("p-yan", "yan", hash_secret(secret), 1.0))
        for name in ("yan", "zed"):
            self.matchmaker.enqueue(Ticket(f"p-{name}", name, "tictactoe", None, 1.0))
        [(match, placing)] = remote.asked
        client = self.connect()
        reply = client.request(reconnect("p-yan", secret))
        self.assertEqual((reply["type"], reply["status"]), ("queued", "waiting_for_server"))
        placing.callback(HostAddress("203.0.113.7", 7400))
        [found] = client.frames()
        self.assertEqual((found["type"], found["game_id"]), ("match_found", match.match_id))
        self.assertEqual(self.shared.writes, [])


class GonePlayerTests(LobbyHarness):
    """A player who leaves as their ticket is matched (the cancel loses the race) is
    still this lobby's: when the match formed elsewhere ends, their address stops
    counting it and their record goes."""

    config = LobbyConfig(max_pending_per_ip=1)

    def test_the_match_of_a_player_gone_as_it_formed_is_answered_for(self) -> None:
        remote = ScriptedHosting()
        held = HeldCancels(self.matchmaker)
        self.store = MemoryPlayerStore()
        self.factory = self.make_factory(hosting=remote, store=self.store, matchmaker=held)
        self.factory.startService()
        ada = self.queued_player("ada")
        player_id = ada.player_id
        ada.drop()  # its ticket's cancel is under way...
        # ...while another lobby's player is matched with it.
        self.matchmaker.enqueue(Ticket("p-zed", "zed", "tictactoe", None, 1.0))
        held.answer(False)  # too late: matched
        [(match, placing)] = remote.asked
        placing.callback(HostAddress("203.0.113.7", 7400))
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 1)
        self.assertIsNotNone(self.successResultOf(self.store.get_player(player_id)))
        remote.end(match)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)
        self.assertIsNone(self.successResultOf(self.store.get_player(player_id)))
        # The address may queue again.
        self.assertEqual(self.queued_player("bo").frames(), [])


class HeldCancels:
    """A matchmaker whose cancels the test answers (a cancel racing a match)."""

    def __init__(self, matchmaker: Any) -> None:
        self._matchmaker = matchmaker
        self._cancels: list[Deferred[bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._matchmaker, name)

    def cancel(self, player_id: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self._cancels.append(d)
        return d

    def answer(self, removed: bool) -> None:
        self._cancels.pop(0).callback(removed)


class OutcomeJsonTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        for outcome in (
            MatchEnded("m-1", "finished", {"winners": ["p-1"]}, None, ("p-1", "p-2")),
            MatchEnded("m-2", "aborted", None, "players_missing", ("p-1",)),
        ):
            self.assertEqual(outcome_from_json(outcome_to_json(outcome)), outcome)

    def test_the_one_json_form(self) -> None:
        """The form on the worker pipe and on the placement channel, key for key."""
        outcome = MatchEnded("m-1", "finished", {"winners": ["p-1"]}, None, ("p-1", "p-2"))
        self.assertEqual(
            outcome_to_json(outcome),
            {"match_id": "m-1", "phase": "finished", "result": {"winners": ["p-1"]},
             "reason": None, "joined": ["p-1", "p-2"]},
        )  # fmt: skip
        # An older sender's outcome without `joined` (or `result`, `reason`) still reads.
        self.assertEqual(
            outcome_from_json({"match_id": "m-2", "phase": "aborted", "reason": "players_missing"}),
            MatchEnded("m-2", "aborted", None, "players_missing", ()),
        )


class EarlyOutcomeTests(TestCase):
    """On a real Redis, with no game host: an outcome recorded before this lobby follows
    the match (another lobby's timeout, a host faster than this lobby's call) is told to
    its stream as it follows, and decides at once; no request is added for it."""

    timeout = 30

    async def lobby(self) -> tuple[RemoteMatchHosting, RedisClient]:
        redis = await open_redis(self)
        hosting = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                     clock=Clock(), lobby_id="l-test")  # fmt: skip
        hosting.startService()
        self.addCleanup(hosting.stopService)
        return hosting, redis

    def match(self) -> Match:
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        return Match("m-early", "duel", players, 1.0)

    async def record(self, redis: RedisClient, outcome: dict[str, Any]) -> None:
        # The lobby that asked for the match follows it (a match placed and without
        # followers has ended).
        await redis.handler.sadd("vinom:lobbies:m-early", "l-first")
        keys = PlacementKeys("vinom:")
        self.assertTrue(await decide(redis, keys, DEFAULT_PLACEMENT, outcome))

    async def test_placed_recorded_before_the_lobby_follows_gives_its_address(self) -> None:
        hosting, redis = await self.lobby()
        await self.record(redis, {"event": "placed", "match_id": "m-early", "host_id": "h-1",
                                  "address": {"host": "127.0.0.1", "port": 7400}})  # fmt: skip
        ended: list[MatchEnded | None] = []
        address = await hosting.host_match(self.match(), on_ended=ended.append)
        self.assertEqual(address, HostAddress("127.0.0.1", 7400))
        self.assertEqual(hosting.running_games, 1)
        # Nothing asked of the hosts: it was placed.
        self.assertEqual(await redis.handler.exists("vinom:place:default"), 0)
        hosting.handle_message(json.dumps({"event": "ended", "match_id": "m-early",
                                           "outcome": None}))  # fmt: skip
        self.assertEqual((ended, hosting.matches), ([None], 0))

    async def test_failed_recorded_before_the_lobby_follows_fails_it(self) -> None:
        hosting, redis = await self.lobby()
        await self.record(redis, {"event": "failed", "match_id": "m-early",
                                  "reason": "no game host took the match"})  # fmt: skip
        with self.assertRaises(NoHostAvailable):
            await hosting.host_match(self.match())
        self.assertEqual(hosting.matches, 0)


class EventsStreamTests(TestCase):
    """On a real Redis: a lobby's placement events wait in its stream while it does not
    read (its connection dropped, it followed a Sentinel failover, Redis lost its group),
    and are read once it does, not after `place_timeout`."""

    timeout = 30

    async def lobby(self) -> tuple[RemoteMatchHosting, RedisClient, Deferred[HostAddress]]:
        redis = await open_redis(self)
        # The timers (place_timeout) on a Clock that never moves.
        self.clock = Clock()
        hosting = RemoteMatchHosting(redis=redis, registry=MemoryHostRegistry(Clock()),  # type: ignore[arg-type]
                                     clock=self.clock, lobby_id="l-test")  # fmt: skip
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        placed = hosting.host_match(Match("m-away", "duel", players, 1.0))
        await until(lambda: redis.handler.sismember("vinom:lobbies:m-away", "l-test"),
                    "the lobby following the match")  # fmt: skip
        return hosting, redis, placed

    async def place(self, redis: RedisClient) -> None:
        """The match's host places it (another lobby formed it), as its agent does."""
        placed = {"event": "placed", "match_id": "m-away", "host_id": "h-1",
                  "address": {"host": "127.0.0.1", "port": 7400}}  # fmt: skip
        self.assertTrue(await decide(redis, PlacementKeys("vinom:"), DEFAULT_PLACEMENT, placed))

    async def test_an_outcome_told_while_the_lobby_was_away_is_read_when_it_is_back(
        self,
    ) -> None:
        hosting, redis, placed = await self.lobby()
        await self.place(redis)
        hosting.startService()
        self.addCleanup(hosting.stopService)
        self.assertEqual(await placed, HostAddress("127.0.0.1", 7400))
        self.assertEqual(hosting.running_games, 1)

    async def test_a_stream_redis_lost_is_read_again_from_its_start(self) -> None:
        hosting, redis, placed = await self.lobby()
        hosting.startService()
        self.addCleanup(hosting.stopService)
        await until(lambda: redis.handler.exists("vinom:placements:l-test"), "its stream")
        # Redis lost the stream and its group (a restart, a replica promoted before it
        # had them); the host's `placed` makes a new one.
        await redis.handler.delete("vinom:placements:l-test")
        await self.place(redis)
        self.assertEqual(await placed, HostAddress("127.0.0.1", 7400))

    async def test_an_entry_that_is_no_event_is_refused_and_reading_goes_on(self) -> None:
        hosting, redis, placed = await self.lobby()
        await redis.handler.execute_command("XADD", "vinom:placements:l-test", "*", "x", "1")
        await redis.handler.execute_command("XADD", "vinom:placements:l-test", "*", "m", "{")
        await self.place(redis)
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        hosting.startService()
        self.addCleanup(hosting.stopService)
        self.assertEqual(await placed, HostAddress("127.0.0.1", 7400))
        said = [formatEvent(e) for e in events if "not a placement message" in formatEvent(e)]
        self.assertEqual(len(said), 2)

    async def test_a_stopped_lobby_leaves_no_stream_and_no_timer(self) -> None:
        hosting, redis, placed = await self.lobby()
        hosting.startService()
        await until(lambda: redis.handler.exists("vinom:placements:l-test"), "its stream")
        await hosting.stopService()
        self.assertEqual(await redis.handler.exists("vinom:placements:l-test"), 0)
        # Its waiting match fails here, and stays followed for the other lobbies of its
        # players (as a lobby that died leaves it).
        self.failureResultOf(placed, HostingStopped)
        self.assertTrue(await redis.handler.sismember("vinom:lobbies:m-away", "l-test"))
        self.assertEqual(self.clock.getDelayedCalls(), [])


def retry_due(clock: Clock) -> bool:
    """Whether a call is due `FOLLOW_AGAIN` (1 s) from now: a `FOLLOW` asked again (the
    lobby's other timers, its registry reads and its events' read after a failure, are
    due every half second)."""
    return any(call.getTime() == clock.seconds() + 1.0 for call in clock.getDelayedCalls())


class RefusedFollowTests(TestCase):
    """On a real Redis that refuses writes (a master short of replicas: NOREPLICAS, as
    READONLY during a failover), the lobby on a Clock: its `FOLLOW` of a match placed
    already is refused, logged once, and asked again each `FOLLOW_AGAIN`, its players
    told `waiting_for_server`; once Redis takes the write the lobby follows the match,
    hears its `placed` on its stream (the one way it learns an outcome) and its end. A
    lobby that stops meanwhile leaves no retry behind."""

    timeout = 30

    async def lobby(self) -> tuple[RemoteMatchHosting, RedisClient, Clock]:
        redis = await open_redis(self)
        clock = Clock()
        hosting = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                     clock=clock, lobby_id="l-late")  # fmt: skip
        placed = {"event": "placed", "match_id": "m-refused", "host_id": "h-1",
                  "address": {"host": "127.0.0.1", "port": 7400}}  # fmt: skip
        await redis.handler.sadd("vinom:lobbies:m-refused", "l-first")
        self.assertTrue(await decide(redis, PlacementKeys("vinom:"), DEFAULT_PLACEMENT, placed))
        await redis.handler.execute_command("CONFIG", "SET", "min-replicas-to-write", "1")
        self.addCleanup(redis.handler.execute_command, "CONFIG", "SET",
                        "min-replicas-to-write", "0")  # fmt: skip
        return hosting, redis, clock

    def match(self) -> Match:
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        return Match("m-refused", "duel", players, 1.0)

    async def test_a_placed_match_is_answered_once_redis_takes_writes(self) -> None:
        hosting, redis, clock = await self.lobby()
        hosting.startService()
        self.addCleanup(hosting.stopService)
        logged = capture_log(self)
        ended: list[MatchEnded | None] = []
        waiting: list[int] = []
        placed = hosting.host_match(self.match(), on_ended=ended.append,
                                    on_waiting=waiting.append)  # fmt: skip
        followers = "vinom:lobbies:m-refused"
        for _ in range(2):  # refused again: asked again a second later
            await until(lambda: retry_due(clock), "the retry")
            clock.advance(1.0)
            await redis.handler.ping()
            self.assertFalse(await redis.handler.sismember(followers, "l-late"))
        self.assertFalse(placed.called)
        self.assertEqual(waiting, [1])
        refusals = [e for e in logged if "following matches to place failed" in str(e)]
        self.assertEqual(len(refusals), 1)
        await redis.handler.execute_command("CONFIG", "SET", "min-replicas-to-write", "0")
        await until(lambda: retry_due(clock), "the retry")
        clock.advance(1.0)
        self.assertEqual(await placed, HostAddress("127.0.0.1", 7400))
        self.assertTrue(await redis.handler.sismember(followers, "l-late"))
        # Followed: it hears the match's end as the first lobby does.
        end = {"event": "ended", "match_id": "m-refused", "outcome": None}
        await announce_end(redis, PlacementKeys("vinom:"), "h-1", end)
        await until(lambda: ended, "the end heard")
        self.assertEqual((ended, hosting.matches), ([None], 0))

    async def test_a_lobby_that_stops_meanwhile_leaves_no_retry(self) -> None:
        hosting, _, clock = await self.lobby()
        hosting.startService()
        placed = hosting.host_match(self.match())
        await until(lambda: retry_due(clock), "the retry")
        stopped = hosting.stopService()
        clock.advance(0.5)  # (its events' read waits half a second after a failure)
        await stopped
        self.failureResultOf(placed, HostingStopped)
        self.assertEqual(clock.getDelayedCalls(), [])


class FollowTests(TestCase):
    """On a real Redis, with no game host, the lobbies on a Clock: every lobby of a match
    follows it, and the first to follow adds its request to the realm's stream (so a
    lobby that formed a match and died at once leaves nothing to take over); a request
    Redis lost (a replica promoted before it had it) is added again; a lobby that heard
    nothing by `place_timeout` records `failed`, which every follower hears."""

    timeout = 30

    async def lobbies(self) -> tuple[RedisClient, Clock, list[RemoteMatchHosting]]:
        redis = await open_redis(self)
        clock = Clock()
        lobbies = [RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                      clock=clock, lobby_id=lobby_id)
                   for lobby_id in ("l-a", "l-b")]  # fmt: skip
        return redis, clock, lobbies

    def match(self) -> Match:
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        return Match("m-formed", "duel", players, 1.0)

    async def requests(self, redis: RedisClient) -> list[str]:
        entries = await redis.handler.execute_command("XRANGE", "vinom:place:default", "-", "+")
        return [json.loads(fields[1])["match"]["match_id"] for _, fields in entries]

    async def test_the_first_lobby_to_follow_a_match_asks_for_it_once(self) -> None:
        redis, _, (first, second) = await self.lobbies()
        first.host_match(self.match()).addErrback(lambda _: None)
        second.host_match(self.match()).addErrback(lambda _: None)
        await until(lambda: redis.handler.scard("vinom:lobbies:m-formed").addCallback(
            lambda n: n == 2), "both lobbies following")  # fmt: skip
        self.assertEqual(await self.requests(redis), ["m-formed"])

    async def test_a_request_redis_lost_is_added_again(self) -> None:
        redis, clock, (lobby, _) = await self.lobbies()
        lobby.host_match(self.match()).addErrback(lambda _: None)
        await until(lambda: self.requests(redis), "the request")
        # A replica promoted before it had the request: neither it nor its marker.
        await redis.handler.delete("vinom:place:default", "vinom:requested:m-formed")
        clock.advance(1.0)
        await until(lambda: self.requests(redis), "the request added again")
        self.assertEqual(await self.requests(redis), ["m-formed"])
        # Added once only while it waits: the marker says it is in the stream.
        clock.advance(1.0)
        await redis.handler.ping()
        await redis.handler.ping()
        self.assertEqual(await self.requests(redis), ["m-formed"])

    async def test_a_match_no_host_took_by_place_timeout_fails_for_every_follower(
        self,
    ) -> None:
        redis, clock, (first, second) = await self.lobbies()
        for lobby in (first, second):
            lobby.startService()
            self.addCleanup(lobby.stopService)
        failed = [first.host_match(self.match()), second.host_match(self.match())]
        await until(lambda: redis.handler.scard("vinom:lobbies:m-formed").addCallback(
            lambda n: n == 2), "both lobbies following")  # fmt: skip
        clock.advance(DEFAULT_PLACEMENT.place_timeout)
        for d in failed:
            await until(lambda d=d: d.called, "the lobby's answer")
            self.failureResultOf(d, NoHostAvailable)
        outcome = json.loads(await redis.handler.get("vinom:outcome:m-formed"))
        self.assertEqual(outcome["event"], "failed")


class _SlowPort:
    """A game port whose closing takes until the test says so (a worker's games stop
    asynchronously)."""

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def stopListening(self) -> Deferred[None]:
        return self.closed


class HostStopTests(TestCase):
    """On a real Redis: a game host that stops (as `twistd vinom` stops its services, the
    agent and the hosting service at once) leaves the registry only once its games have
    stopped and their ends are announced, so that no lobby ends them as a dead host's."""

    timeout = 30

    async def test_a_clean_stop_ends_its_matches_as_shutdown_never_host_crashed(self) -> None:
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-test")
        factory = PlaceholderGameHostFactory(FakeUDPReactor(), "0.0.0.0", "198.51.100.9")
        root = ServerRoot()
        hosting = GameHostingService(PortAllocator(range(7400, 7402)), factory)
        hosting.setServiceParent(root)
        HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=hosting,
                  public_host="198.51.100.9", ports=(7400, 7401), clock=reactor,
                  presence_endpoint=redis.endpoint(reactor),
                  host_id="h-test").setServiceParent(root)  # fmt: skip
        root.startService()
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        slow = _SlowPort()
        factory.hosts[7400].listening_port = slow  # type: ignore[assignment]
        # A lobby reads the registry all along (and may end what a departed host left).
        lobby = RedisHostRegistry(redis, settle=0.0)
        reading = True

        async def read() -> None:
            while reading:
                await lobby.claim_departed()
                await deferLater(reactor, 0.02, lambda: None)

        reader = Deferred.fromCoroutine(read())
        stopped = root.stopService()
        await deferLater(reactor, 0.3, lambda: None)
        # Still stopping its game: still registered.
        self.assertEqual(await redis.handler.exists("vinom:host:h-test"), 1)
        slow.closed.callback(None)
        await stopped
        # The end announced; and a moment more of the lobby's reading, in which it
        # must not announce it again.
        await until(lambda: [m for m in heard if m["event"] == "ended"], "the end announced")
        await deferLater(reactor, 0.2, lambda: None)
        reading = False
        await reader
        ended = [m for m in heard if m["event"] == "ended"]
        self.assertEqual([(m["match_id"], m["outcome"]) for m in ended], [("m-1", None)])
        # Gone, with nothing left for a lobby to claim.
        self.assertEqual(await redis.handler.exists("vinom:host:h-test"), 0)
        self.assertEqual(await redis.handler.sismember("vinom:hosts", "h-test"), 0)


class StreamLostTests(SynchronousTestCase):
    """A failed stream read that says Redis lost the stream or its group is made again
    quietly; anything else is an outage (one log line, a back-off)."""

    def test_nogroup_and_redis_7s_unblocked_are_a_lost_stream_not_an_outage(self) -> None:
        self.assertTrue(stream_lost(ResponseError(
            "NOGROUP No such key 'vinom:place:h-1' or consumer group 'host'")))  # fmt: skip
        # Redis 7 wakes a read blocked on a stream deleted meanwhile (one that lapsed).
        self.assertTrue(stream_lost(ResponseError("UNBLOCKED the stream key no longer exists")))
        self.assertFalse(stream_lost(ConnectionError("Not connected")))
        self.assertFalse(stream_lost(BackendUnavailable("Redis at redis://r:6379/0 did not "
                                                        "answer")))  # fmt: skip


class HostStopWhileRedisAwayTests(TestCase):
    """On a real Redis that stopped answering for a while: a game host stopped while it
    waits to read its requests again leaves no timer behind (trial's check for a clean reactor is
    the rest of the assertion; a stopped host's back-off call once outlived it)."""

    timeout = 60

    async def test_a_host_stopped_while_redis_is_away_leaves_no_timer(self) -> None:
        server = await start_redis(self)
        redis = RedisClient.open(parse_redis_url(server.url), reactor)
        self.addCleanup(redis.disconnect)
        lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        factory = PlaceholderGameHostFactory(FakeUDPReactor(), "0.0.0.0", "198.51.100.9")
        hosting = GameHostingService(PortAllocator(range(7400, 7402)), factory)
        hosting.startService()
        self.addCleanup(hosting.stopService)
        agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=hosting,
                          public_host="198.51.100.9", ports=(7400, 7401), clock=reactor,
                          presence_endpoint=redis.endpoint(reactor), host_id="h-test")  # fmt: skip
        agent.startService()
        await until(lambda: redis.handler.exists("vinom:host:h-test"), "the host registered")
        server.transport.signalProcess(signal.SIGSTOP)
        self.addCleanup(server.transport.signalProcess, signal.SIGCONT)
        await until(lambda: any("taking placement requests failed" in line for line in lines),
                    "the host's reads failing", timeout=30)  # fmt: skip
        # Redis answers again, and the host is stopped as it waits to read again.
        server.transport.signalProcess(signal.SIGCONT)
        await agent.stopService()
        await deferLater(reactor, 0, lambda: None)


class EndAnnouncementTests(TestCase):
    """On a real Redis: the end of a match is announced again while Redis refuses it
    (failing over, short of replicas), so that its lobbies stop counting it as running."""

    timeout = 30

    async def test_an_end_redis_refused_is_announced_once_it_takes_writes(self) -> None:
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-test")
        factory, _ = start_host(self, redis, "h-test")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        await redis.handler.execute_command("CONFIG", "SET", "min-replicas-to-write", "1")
        self.assertTrue(factory.end_match("m-1"))
        await deferLater(reactor, 1.5, lambda: None)
        self.assertEqual([m for m in heard if m["event"] == "ended"], [])
        await redis.handler.execute_command("CONFIG", "SET", "min-replicas-to-write", "0")
        await until(lambda: [m for m in heard if m["event"] == "ended"], "the end announced")
        self.assertEqual(await redis.handler.sismember("vinom:host-matches:h-test", "m-1"), 0)


class SubscribedWhileRecordingTests(TestCase):
    """On a real Redis: the host's presence channel subscribes (its first time, or again
    after Redis came back) while a match's placement is being recorded. The placement
    is not taken for one Redis lost (its recording is under way), so the match is this
    host's, and its end reaches its lobby (run 60: recorded twice, the second call
    found the first's outcome, took the match for a copy and never announced its end)."""

    timeout = 30

    async def test_the_match_is_the_hosts_and_its_end_is_announced(self) -> None:
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-test")
        factory, _, agent = start_host_agent(self, redis, "h-test")
        recording = decide

        async def subscribed_meanwhile(*args: Any, **kwargs: Any) -> bool:
            if args[3]["event"] == "placed" and "ack" in kwargs:
                await agent._restore_ends()  # what each subscription runs first
            return await recording(*args, **kwargs)

        self.patch(agent_module, "decide", subscribed_meanwhile)
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        await offer(redis, duel_request())
        await until(lambda: [m for m in heard if m["event"] == "placed"], "the placement")
        self.assertTrue(factory.end_match("m-1"))
        await until(lambda: [m for m in heard if m["event"] == "ended"], "the end announced")
        self.assertEqual([m["event"] for m in heard], ["placed", "ended"])


class LostEndTests(TestCase):
    """On a real Redis: an end the master acknowledged and lost with its death (a replica
    promoted before it had it: asynchronous replication) is announced again, as it was,
    once the host's presence channel subscribes to the new master: added to the streams
    of the lobbies that follow the match."""

    timeout = 30

    async def test_an_end_the_promoted_replica_never_had_is_announced_again(self) -> None:
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-test")
        factory, _ = start_host(self, redis, "h-test")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        self.assertTrue(factory.end_match("m-1"))
        await until(lambda: [m for m in heard if m["event"] == "ended"], "the end")
        [said] = [m for m in heard if m["event"] == "ended"]
        self.assertEqual(said["match_id"], "m-1")
        # Redis as a replica promoted before the end reached it holds it: the match still
        # the host's, its followers still named, the end not in the lobby's stream.
        await redis.handler.sadd("vinom:host-matches:h-test", "m-1")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        # The connections to the old master are gone; the host's presence channel
        # subscribes again (to the new one).
        await redis.handler.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await until(lambda: len([m for m in heard if m["event"] == "ended"]) == 2, "again")
        self.assertEqual([m for m in heard if m["event"] == "ended"], [said, said])
        self.assertEqual(await redis.handler.sismember("vinom:host-matches:h-test", "m-1"), 0)


class LostPlacementTests(TestCase):
    """On a real Redis: a placement the master acknowledged and lost with its death (a
    replica promoted before it had it) is recorded again by its host once its presence
    channel subscribes to the new master; so a lobby of the match that had not read its
    `placed` yet answers its players with the host at its `place_timeout` (they join
    the others, not `no_host`), and a `reconnect` finds the placement."""

    timeout = 30

    async def test_a_placement_the_promoted_replica_never_had_is_recorded_again(
            self) -> None:  # fmt: skip
        redis = await open_redis(self)
        start_host(self, redis, "h-test")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        # Redis as a replica promoted before the placement reached it: none of its keys.
        await redis.handler.delete("vinom:outcome:m-1", "vinom:match:m-1",
                                   "vinom:player-match:p0", "vinom:player-match:p1")
        await redis.handler.srem("vinom:host-matches:h-test", "m-1")
        # Another lobby of the match, which had not read the `placed` (on a Clock).
        clock = Clock()
        lobby = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                   clock=clock, lobby_id="l-b",
                                   settings=PlacementSettings(place_timeout=5.0))
        lobby.startService()
        self.addCleanup(lobby.stopService)
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        placed = lobby.host_match(Match("m-1", "duel", players, 1.0))
        # The host's presence channel subscribes again (to the new master).
        await redis.handler.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await until(lambda: redis.handler.sismember("vinom:host-matches:h-test", "m-1"),
                    "the placement recorded again")  # fmt: skip
        clock.advance(5.0)
        await until(lambda: placed.called, "the lobby's answer")
        self.assertEqual((await placed).host, "198.51.100.9")
        found = await RedisPlayerStore(redis).placement_for_player("p1")
        self.assertEqual(found.match_id if found else None, "m-1")

    async def test_a_lost_placement_placed_elsewhere_meanwhile_ends_as_a_copy(self) -> None:
        # As above, but the lobby took its request back from the new master (which
        # lacked the host's read) and another host placed the match first.
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-test")
        factory, _ = start_host(self, redis, "h-test")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        await redis.handler.delete("vinom:outcome:m-1", "vinom:match:m-1",
                                   "vinom:player-match:p0", "vinom:player-match:p1")
        await redis.handler.srem("vinom:host-matches:h-test", "m-1")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        there = HostAddress("203.0.113.5", 7600)
        elsewhere = {"event": "placed", "match_id": "m-1", "host_id": "h-other",
                     "address": {"host": there.host, "port": there.port}}  # fmt: skip
        self.assertTrue(await decide(redis, PlacementKeys("vinom:"), DEFAULT_PLACEMENT,
                                     elsewhere, MatchPlacement(Match("m-1", "duel", players,
                                                                     1.0), there, 1.0)))
        said: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            said.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        await redis.handler.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await until(lambda: [line for line in said if "placed elsewhere" in line],
                    "the host finding its match placed elsewhere")  # fmt: skip
        # The host's copy ends: the players play on h-other, whose placement stays.
        self.assertTrue(factory.end_match("m-1"))
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual([m["event"] for m in heard if m["match_id"] == "m-1"][-1], "placed")
        self.assertNotIn("ended", [m["event"] for m in heard])
        record = await RedisPlayerStore(redis).placement_for_player("p0")
        self.assertEqual(None if record is None else record.address, there)


class LatePlacementTests(TestCase):
    """On a real Redis: a host whose `placed` came too late (another host's was recorded
    first: a host paused past `claim_after` while it started the match, a request read
    twice across a failover) runs a copy of the match that nobody joins. Its end
    is not the match's: it is told to no lobby, and the placement record of the host
    the players play on stays (docs/scaling.md, faults)."""

    timeout = 30

    async def test_the_end_of_a_copy_placed_too_late_is_told_to_nobody(self) -> None:
        server = await start_redis(self)
        redis = RedisClient.open(parse_redis_url(server.url), reactor)
        self.addCleanup(redis.disconnect)
        heard = await hear_placements(self, redis, "l-test")
        keys = PlacementKeys("vinom:")
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        match = Match("m-1", "duel", players, 1.0)
        await redis.handler.sadd("vinom:lobbies:m-1", "l-test")
        factory, hosting = start_host(self, redis, "h-test")
        # The host takes the request and starts the match slowly (paused meanwhile).
        held = _HeldStarts()
        factory.start_host = held.start_host(factory.start_host)  # type: ignore[method-assign]
        await offer(redis, duel_request())
        await until(lambda: held.waiting, "the host starting the match")
        # Placed on another host first; the players play there.
        there = HostAddress("203.0.113.5", 7600)
        placed = {"event": "placed", "match_id": "m-1", "host_id": "h-other",
                  "address": {"host": there.host, "port": there.port}}  # fmt: skip
        self.assertTrue(await decide(redis, keys, DEFAULT_PLACEMENT, placed,
                                     MatchPlacement(match, there, 1.0)))  # fmt: skip
        # Redis stalls as the host records its placement: the copy ends (at its connect
        # deadline: nobody joined it) before the host learns it is a copy.
        server.pause()
        held.release()
        await until(lambda: hosting.matches == 1, "the copy hosted")
        self.assertTrue(factory.end_match("m-1"))
        await deferLater(reactor, 0.2, lambda: None)
        server.resume()
        await until(lambda: all_taken(redis), "the request taken")
        # A match placed here after it ends too: its end is heard, and m-1's before it.
        others = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2, 4))
        await redis.handler.sadd("vinom:lobbies:m-2", "l-test")
        await offer(redis, json.dumps({"match": match_to_json(Match("m-2", "duel", others,
                                                                    1.0))}))  # fmt: skip
        await until(lambda: redis.handler.get("vinom:outcome:m-2"))
        self.assertTrue(factory.end_match("m-2"))
        await until(lambda: [m for m in heard if m["event"] == "ended"], "an end")
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual([m["match_id"] for m in heard if m["event"] == "ended"], ["m-2"])
        record = await RedisPlayerStore(redis).placement_for_player("p0")
        self.assertEqual(None if record is None else record.address, there)


class _HeldStarts:
    """Holds a game host factory's starts until `release` (a host paused as it starts a
    match)."""

    def __init__(self) -> None:
        self.waiting: list[Deferred[None]] = []
        self.released = False

    def start_host(self, start: Callable[[int], Deferred[Any]]) -> Callable[[int], Deferred[Any]]:
        def held(port: int) -> Deferred[Any]:
            if self.released:
                return start(port)
            gate: Deferred[None] = Deferred()
            self.waiting.append(gate)
            return gate.addCallback(lambda _: start(port))

        return held

    def release(self) -> None:
        self.released = True
        for gate in self.waiting:
            gate.callback(None)


class HostRecordsPlacementTests(TestCase):
    """On a real Redis: the game host's `placed` saves the match's placement record where
    a `reconnect` through any lobby finds it, and its `ended` (or the claim of its
    departure, `host_crashed`) removes it: one writer per match, not one per lobby."""

    timeout = 30

    async def placed(self) -> tuple[RedisClient, RedisPlayerStore, PlaceholderGameHostFactory]:
        redis = await open_redis(self)
        store = RedisPlayerStore(redis)
        await store.save_player(PlayerRecord("p0", "P0", "00" * 32, 1.0))
        factory, _ = start_host(self, redis, "h-test")
        await offer(redis, duel_request())
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        return redis, store, factory

    async def test_the_host_saves_the_placement_and_its_end_removes_it(self) -> None:
        redis, store, factory = await self.placed()
        placement = await store.placement_for_player("p1")
        assert placement is not None
        self.assertEqual((placement.match_id, placement.address),
                         ("m-1", HostAddress("198.51.100.9", 7400)))  # fmt: skip
        self.assertEqual(placement, await store.get_placement("m-1"))
        # The player record outlives the placement.
        pttl = ("PTTL", "vinom:player:p0")
        self.assertGreater(await redis.handler.execute_command(*pttl), 23 * 3600 * 1000)
        self.assertTrue(factory.end_match("m-1"))
        await until(lambda: store.get_placement("m-1").addCallback(lambda p: p is None))
        self.assertIsNone(await store.placement_for_player("p0"))
        self.assertLessEqual(await redis.handler.execute_command(*pttl), 12 * 3600 * 1000)

    async def test_the_claim_of_a_dead_hosts_departure_removes_its_placements(self) -> None:
        redis = await open_redis(self)
        store = RedisPlayerStore(redis)
        registry = RedisHostRegistry(redis, settle=0.0)
        record = HostRecord("h-dead", "198.51.100.9", (7400, 7401), 2, 2, 1.0)
        await registry.register(record, 0.2)
        # Its `placed`, as its agent records it, then its death: its key lapses and it
        # holds no presence connection.
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        match = Match("m-1", "duel", players, 1.0)
        placed = {"event": "placed", "match_id": "m-1", "host_id": "h-dead",
                  "address": {"host": "198.51.100.9", "port": 7400}}  # fmt: skip
        placement = MatchPlacement(match, HostAddress("198.51.100.9", 7400), 1.0)
        keys = PlacementKeys("vinom:")
        self.assertTrue(await decide(redis, keys, DEFAULT_PLACEMENT, placed, placement))
        self.assertEqual(await store.placement_for_player("p1"), placement)
        await until(lambda: registry.claim_departed().addCallback(lambda ids: ids == ["h-dead"]),
                    "its departure claimed")  # fmt: skip
        self.assertIsNone(await store.get_placement("m-1"))
        self.assertIsNone(await store.placement_for_player("p1"))


class RequestGivenAgainTests(TestCase):
    """On a real Redis: a placement request a host took comes back to it (a replica
    promoted before it had the taking, or the placement: asynchronous replication); the
    host does not host the match a second time, and says its placement again."""

    timeout = 30

    async def test_a_request_taken_before_is_hosted_once_and_its_placement_said_again(
        self,
    ) -> None:
        redis = await open_redis(self)
        _, hosting = start_host(self, redis, "h-test")
        request = duel_request()
        await offer(redis, request)
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        placed = json.loads(await redis.handler.get("vinom:outcome:m-1"))
        # What the promoted replica lacks: the placement; a lobby still waiting asks
        # for the match again.
        await redis.handler.delete("vinom:outcome:m-1", "vinom:match:m-1")
        await offer(redis, request)
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "the placement again")
        await until(lambda: all_taken(redis), "every request taken")
        self.assertEqual(hosting.matches, 1)
        self.assertEqual(json.loads(await redis.handler.get("vinom:outcome:m-1")), placed)
        found = await RedisPlayerStore(redis).get_placement("m-1")
        self.assertEqual(None if found is None else found.address.port, placed["address"]["port"])

    async def test_two_requests_for_one_match_host_it_once(self) -> None:
        # A failover lost the request's marker but not the request: a lobby of the match
        # added it again, and the host finds both.
        redis = await open_redis(self)
        heard = await hear_placements(self, redis, "l-a")
        await redis.handler.sadd("vinom:lobbies:m-1", "l-a")
        await offer(redis, duel_request(), duel_request())
        _, hosting = start_host(self, redis, "h-test")
        await until(lambda: all_taken(redis), "every request taken")
        await until(lambda: redis.handler.get("vinom:outcome:m-1"))
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual((hosting.matches, hosting.free_ports), (1, 1))
        self.assertEqual([m["event"] for m in heard], ["placed"])


class PullTests(TestCase):
    """On a real Redis: the realm's hosts take requests only while they have a free slot,
    so a burst spreads over them by itself with none over its capacity, a full host
    leaves a request to the next host that frees a slot, and a request a host read and
    died with (or is paused with) is taken by a live host after `claim_after`
    (`XAUTOCLAIM`), not left to `place_timeout` (docs/scaling.md, faults), and a
    relaying lobby's request is read only by hosts announcing an IP address."""

    timeout = 30

    async def test_a_burst_spreads_over_the_hosts_with_free_slots(self) -> None:
        redis = await open_redis(self)
        hosts = [start_host(self, redis, f"h-{n}", ports=3)[1] for n in range(2)]
        await offer(redis, *(request_for(f"m-{i}", 2 * i) for i in range(6)))
        for i in range(6):
            await until(lambda i=i: redis.handler.get(f"vinom:outcome:m-{i}"), f"m-{i} placed")
        outcomes = [json.loads(await redis.handler.get(f"vinom:outcome:m-{i}"))
                    for i in range(6)]  # fmt: skip
        self.assertEqual({o["event"] for o in outcomes}, {"placed"})
        self.assertEqual([hosting.matches for hosting in hosts], [3, 3])

    async def test_a_full_host_leaves_the_request_to_a_host_with_a_free_slot(self) -> None:
        redis = await open_redis(self)
        _, full = start_host(self, redis, "h-full", ports=1)
        await offer(redis, request_for("m-x", 8))
        await until(lambda: full.matches == 1, "the first host full")
        await offer(redis, duel_request())
        await deferLater(reactor, 0.5, lambda: None)
        self.assertIsNone(await redis.handler.get("vinom:outcome:m-1"))
        _, free = start_host(self, redis, "h-free", ports=1)
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed")
        self.assertEqual((full.matches, free.matches), (1, 1))

    async def test_a_host_reads_a_backlog_one_request_per_free_slot(self) -> None:
        redis = await open_redis(self)
        await offer(redis, *(request_for(f"m-{i}", 2 * i) for i in range(3)))
        _, two_slots = start_host(self, redis, "h-two", ports=2)
        # Both recorded `placed`, their requests acknowledged in the same call.
        await until(lambda: redis.handler.execute_command(
            "EXISTS", "vinom:outcome:m-0", "vinom:outcome:m-1").addCallback(
                lambda found: found == 2), "two matches placed")  # fmt: skip
        # The third waits in the stream, unread: no host has a slot for it.
        self.assertEqual(two_slots.matches, 2)
        [group] = await redis.handler.execute_command("XINFO", "GROUPS", "vinom:place:default")
        self.assertEqual(dict(zip(group[::2], group[1::2], strict=True))["pending"], 0)
        _, other = start_host(self, redis, "h-other", ports=1)
        await until(lambda: other.matches == 1, "the third hosted by a host with a slot")

    async def test_a_request_a_host_read_and_died_with_is_taken_by_a_live_host(self) -> None:
        redis = await open_redis(self)
        key = "vinom:place:default"
        # A host that read the request (its group's read) and died before it placed it.
        await redis.handler.execute_command("XGROUP", "CREATE", key, "hosts", "$", "MKSTREAM")
        await offer(redis, duel_request())
        read = await redis.handler.execute_command(
            "XREADGROUP", "GROUP", "hosts", "h-dead", "COUNT", 1, "STREAMS", key, ">")
        self.assertEqual(len(read[0][1]), 1)
        _, live = start_host(self, redis, "h-live",
                             settings=PlacementSettings(claim_after=0.5))
        await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed by the live host")
        self.assertEqual(live.matches, 1)
        outcome = json.loads(await redis.handler.get("vinom:outcome:m-1"))
        self.assertEqual(outcome["host_id"], "h-live")
        await until(lambda: all_taken(redis), "the request handled")

    async def test_a_relaying_lobbys_match_goes_only_to_a_host_announcing_an_ip(self) -> None:
        # --relay: a route token carries an address, so a host announcing a name
        # (--public-host) must not take the match of a lobby that relays its players.
        redis = await open_redis(self)
        lobby = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                   clock=reactor, lobby_id="l-relay",
                                   refuses=lambda host: None)  # fmt: skip
        named = GameHostingService(PortAllocator(range(7500, 7502)), PlaceholderGameHostFactory(
            FakeUDPReactor(), "0.0.0.0", "host-7.internal"))  # fmt: skip
        named.startService()
        agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=named,
                          public_host="host-7.internal", ports=(7500, 7501), clock=reactor,
                          presence_endpoint=redis.endpoint(reactor), host_id="h-named")
        agent.startService()
        self.addCleanup(agent.stopService)
        self.addCleanup(named.stopService)
        lobby.startService()
        self.addCleanup(lobby.stopService)
        placed = lobby.host_match(Match("m-1", "duel", tuple(
            Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2)), 1.0))
        placed.addErrback(lambda _: None)
        await until(lambda: redis.handler.execute_command("XLEN", "vinom:place:default:relayed"),
                    "the request in the realm's relayed stream")  # fmt: skip
        await deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(named.matches, 0)
        _, addressed = start_host(self, redis, "h-ip")
        outcome = await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed")
        self.assertEqual((json.loads(str(outcome))["host_id"], addressed.matches), ("h-ip", 1))
        address = HostAddress.from_json(json.loads(str(outcome))["address"])
        self.assertEqual(await placed, address)

    async def test_a_request_given_up_is_not_hosted(self) -> None:
        await given_up_is_not_hosted(self)


class PausedHostTimeoutTests(TestCase):
    """On a real Redis, the lobby on a Clock: a host that read a request and was paused
    (SIGSTOP: not departed, so the request stays its own) past `place_timeout` finds the
    match given up when it goes on. Its players were told `no_host` at the timeout: the
    host's late `placed` is refused (`placed too late`), so no lobby still waiting sends
    its players there and no placement record points them at a match nobody else joins
    (docs/scaling.md, faults: a host is paused)."""

    timeout = 30

    async def test_a_request_read_by_a_host_paused_past_place_timeout_is_given_up(
            self) -> None:  # fmt: skip
        redis, _, clock, lobby = await clocked_lobby(self, place_timeout=5.0)
        # Another lobby of the match, still waiting (it heard the match a moment later).
        other = await hear_placements(self, redis, "l-other")
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        match = Match("m-1", "duel", players, 1.0)
        await redis.handler.sadd("vinom:lobbies:m-1", "l-other")
        placed = lobby.host_match(match)
        key = "vinom:place:default"
        await until(lambda: redis.handler.execute_command("XLEN", key), "the request")
        # The host reads it (its claim), then is paused: no other host to claim it.
        await redis.handler.execute_command("XGROUP", "CREATE", key, "hosts", "0")
        await redis.handler.execute_command(
            "XREADGROUP", "GROUP", "hosts", "h-paused", "STREAMS", key, ">")  # fmt: skip
        for _ in range(12):
            clock.advance(0.5)
            # (The lobby's calls to Redis answered before its clock moves on.)
            await redis.handler.ping()
        await until(lambda: placed.called, "the lobby's answer")
        self.failureResultOf(placed, NoHostAvailable)
        # The host goes on and hosts the match: too late, its `placed` is refused.
        late = {"event": "placed", "match_id": "m-1", "host_id": "h-paused",
                "address": {"host": "198.51.100.7", "port": 7500}}  # fmt: skip
        record = MatchPlacement(match, HostAddress("198.51.100.7", 7500), 1.0)
        keys = PlacementKeys("vinom:")
        self.assertFalse(await decide(redis, keys, PlacementSettings(), late, record))
        outcome = json.loads(await redis.handler.get("vinom:outcome:m-1"))
        self.assertEqual(outcome["event"], "failed")
        await until(lambda: other, "the other lobby told")
        self.assertEqual([m["event"] for m in other], ["failed"])


class RealmTests(TestCase):
    """A lobby places on the live hosts of its own realm only (docs/scaling.md)."""

    async def test_only_the_hosts_of_the_lobbys_realm_are_used(self) -> None:
        redis = await open_redis(self)
        registry = RedisHostRegistry(redis)
        for host_id, realm, free in (("h-eu", "eu", 2), ("h-us", "us", 8), ("h-any", "default", 8)):
            record = HostRecord(host_id, "127.0.0.1", (7400, 7407), 8, free, 1.0, realm=realm)
            await registry.register(record, 30)
        for realm, expected in (("eu", ["h-eu"]), ("us", ["h-us"]), ("default", ["h-any"]),
                                ("asia", [])):  # fmt: skip
            lobby = RemoteMatchHosting(redis=redis, registry=registry, clock=Clock(),
                                       lobby_id="l-test", realm=realm)  # fmt: skip
            await lobby.refresh_hosts()
            self.assertEqual([h.host_id for h in lobby.live_hosts], expected, realm)
            # Its free capacity (its /ready, its waiting) is its realm's alone.
            self.assertEqual(lobby.free_ports, {"eu": 2, "us": 8, "default": 8}.get(realm, 0))


class WaitForHostTests(TestCase):
    """On a real Redis: a match formed while no game host is registered (all full, or
    not registered again yet after Redis was away) waits for one, its players told
    waiting_for_server, instead of failing and being formed again at once."""

    timeout = 30

    async def test_a_match_waits_for_a_host_that_registers_meanwhile(self) -> None:
        redis = await open_redis(self)
        lobby = RemoteMatchHosting(redis=redis, registry=RedisHostRegistry(redis),
                                   clock=reactor, lobby_id="l-test")  # fmt: skip
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        waiting: list[int] = []
        placed = lobby.host_match(Match("m-wait", "duel", players, 1.0),
                                  on_waiting=waiting.append)  # fmt: skip
        await until(lambda: waiting, "the players told to wait")
        # And no more for a second: no failure, no second telling.
        await deferLater(reactor, 1.0, lambda: None)
        self.assertFalse(placed.called)
        self.assertEqual(waiting, [1])
        # A host registers (a second after the match formed): it takes the match.
        start_host(self, redis, "h-late")
        # (No channel here: the test hands the lobby the outcome the host records.)
        async def handed() -> bool:
            outcome = await redis.handler.get("vinom:outcome:m-wait")
            if outcome is not None and not placed.called:
                lobby.handle_message(outcome)
            return placed.called

        await until(handed, "the late host's outcome", timeout=20, every=0.05)
        # Placed on the late host (a match still without one at place_timeout fails).
        address = await placed
        self.assertEqual(address.host, "198.51.100.9")


async def open_redis(case: TestCase) -> RedisClient:
    """A client of a real Redis started for the test (tests/support/redis_server.py)."""
    server = await start_redis(case)
    redis = RedisClient.open(parse_redis_url(server.url), reactor)
    case.addCleanup(redis.disconnect)
    return redis


async def clocked_lobby(
    case: TestCase, place_timeout: float
) -> tuple[RedisClient, RedisHostRegistry, Clock, RemoteMatchHosting]:
    """A lobby's placement (`l-test`) on a real Redis, its timeouts on a Clock (a second
    to accept, `place_timeout` to place), running until the test's end."""
    redis = await open_redis(case)
    registry = RedisHostRegistry(redis)
    clock = Clock()
    settings = PlacementSettings(place_timeout=place_timeout)
    lobby = RemoteMatchHosting(redis=redis, registry=registry, clock=clock,
                               lobby_id="l-test", settings=settings)  # fmt: skip
    lobby.startService()
    case.addCleanup(lobby.stopService)
    return redis, registry, clock, lobby


async def offer(redis: RedisClient, *requests: str) -> None:
    """Add placement requests to the default realm's stream, as lobbies do
    (vinom.cluster.channel's `FOLLOW`)."""
    for request in requests:
        match_id = json.loads(request)["match"]["match_id"]
        await redis.handler.execute_command("XADD", "vinom:place:default", "*", "r", request,
                                            "m", match_id)  # fmt: skip


async def given_up_is_not_hosted(case: TestCase) -> None:
    """A request whose match was given up (its players all left: withdrawn) before a
    host read it is read, dropped, and not hosted: a copy nobody joins would hold a
    port until its connect deadline."""
    redis = await open_redis(case)
    await offer(redis, duel_request())
    failed = {"event": "failed", "match_id": "m-1", "reason": "withdrawn"}
    case.assertTrue(await decide(redis, PlacementKeys("vinom:"), DEFAULT_PLACEMENT, failed))
    _, hosting = start_host(case, redis, "h-test")
    await until(lambda: all_taken(redis), "the request read and dropped")
    case.assertEqual(hosting.matches, 0)


async def all_taken(redis: RedisClient) -> bool:
    """Whether the hosts read every request of the realm's stream and handled each."""
    key = "vinom:place:default"
    stream = await redis.handler.execute_command("XINFO", "STREAM", key)
    groups = await redis.handler.execute_command("XINFO", "GROUPS", key)
    if not groups:
        return False  # no host has read yet
    [group] = groups
    last = dict(zip(stream[::2], stream[1::2], strict=True))["last-generated-id"]
    read = dict(zip(group[::2], group[1::2], strict=True))
    return bool(read["last-delivered-id"] == last and read["pending"] == 0)


def request_for(match_id: str, first: int = 0) -> str:
    """A placement request for duel `match_id` of players p<first> and p<first + 1>."""
    players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in (first, first + 1))
    return json.dumps({"match": match_to_json(Match(match_id, "duel", players, 1.0))})


def duel_request() -> str:
    """A placement request for match m-1 (duel, players p0 and p1)."""
    return request_for("m-1")


def start_host(case: TestCase, redis: RedisClient, host_id: str, ports: int = 2,
               settings: PlacementSettings = DEFAULT_PLACEMENT,
               ) -> tuple[PlaceholderGameHostFactory, GameHostingService]:  # fmt: skip
    """A game host of `ports` ports on `redis` (its hosting service and agent), running
    until the test's end; the agent leaves once its games stopped: the hosting stops
    first."""
    factory, hosting, _ = start_host_agent(case, redis, host_id, ports, settings)
    return factory, hosting


def start_host_agent(
    case: TestCase, redis: RedisClient, host_id: str, ports: int = 2,
    settings: PlacementSettings = DEFAULT_PLACEMENT,
) -> tuple[PlaceholderGameHostFactory, GameHostingService, HostAgent]:  # fmt: skip
    """`start_host`, with its agent (to drain it)."""
    factory = PlaceholderGameHostFactory(FakeUDPReactor(), "0.0.0.0", "198.51.100.9")
    hosting = GameHostingService(PortAllocator(range(7400, 7400 + ports)), factory)
    hosting.startService()
    agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=hosting,
                      public_host="198.51.100.9", ports=(7400, 7399 + ports), clock=reactor,
                      presence_endpoint=redis.endpoint(reactor), host_id=host_id,
                      settings=settings)  # fmt: skip
    agent.startService()
    case.addCleanup(agent.stopService)
    case.addCleanup(hosting.stopService)
    return factory, hosting, agent


class PlacementOrderTests(TestCase):
    """On a real Redis, the hosts' waits on a Clock: `--placement` is the order in which
    hosts with a free slot read a new request. With `pack` the fullest reads first (hosts
    fill one after another), with `spread` the idlest (docs/scaling.md, step 2)."""

    timeout = 30

    async def taker(self, placement: str) -> str:
        """Which of two hosts of three slots takes a request: h-busy (one match running)
        or h-idle (none)."""
        redis = await open_redis(self)
        clock = Clock()
        # Once measured, the clock goes on (the hosts' stops wait on it), to the end.
        pump = LoopingCall(clock.advance, 0.1)
        self.addCleanup(lambda: pump.stop() if pump.running else None)
        for host_id in ("h-busy", "h-idle"):
            factory = PlaceholderGameHostFactory(FakeUDPReactor(), "0.0.0.0", "198.51.100.9")
            hosting = GameHostingService(PortAllocator(range(7400, 7403)), factory)
            hosting.startService()
            agent = HostAgent(redis=redis, registry=RedisHostRegistry(redis), hosting=hosting,
                              public_host="198.51.100.9", ports=(7400, 7402), clock=clock,
                              presence_endpoint=redis.endpoint(reactor), host_id=host_id,
                              placement=placement)  # fmt: skip
            if host_id == "h-busy":
                players = tuple(Ticket(f"x{i}", f"X{i}", "duel", None, 1.0) for i in range(2))
                await hosting.host_match(Match("m-running", "duel", players, 1.0))
            agent.startService()
            self.addCleanup(agent.stopService)
            self.addCleanup(hosting.stopService)

        async def both_waiting() -> bool:
            info = await redis.handler.execute_command("INFO", "clients")
            return "blocked_clients:2" in info

        await until(both_waiting, "both hosts waiting for a request")
        timers = len(clock.getDelayedCalls())
        await offer(redis, duel_request())
        # Both woken; each waits its read delay on the clock (but the idlest with
        # `spread`, whose delay is none).
        waits = 2 if placement == "pack" else 1
        await until(lambda: len(clock.getDelayedCalls()) == timers + waits, "the hosts' waits")
        # Past the first's wait (pack: h-busy's 0.033 s; spread: h-idle's, none), short of
        # the other's (h-idle's 0.05 s; h-busy's 0.017 s, which 0.04 s passed: it then read
        # before h-idle whenever the idle host's wake was handled after the clock moved).
        clock.advance(0.04 if placement == "pack" else 0.01)
        outcome = await until(lambda: redis.handler.get("vinom:outcome:m-1"), "placed")
        pump.start(0.01)
        return str(json.loads(str(outcome))["host_id"])

    async def test_pack_gives_the_request_to_the_fullest_host(self) -> None:
        self.assertEqual(await self.taker("pack"), "h-busy")

    async def test_spread_gives_the_request_to_the_idlest_host(self) -> None:
        self.assertEqual(await self.taker("spread"), "h-idle")


class DeadHostTests(TestCase):
    """A lobby's view of the hosts' lives, on a Clock with the in-memory registry model:
    a silent host gets no new match, a dead one's match ends before `reconnect` answers."""

    timeout = 30

    async def lobby(self) -> tuple[RemoteMatchHosting, MemoryHostRegistry, Clock]:
        redis = self.redis = await open_redis(self)
        clock = Clock()
        registry = MemoryHostRegistry(clock)
        hosting = RemoteMatchHosting(redis=redis, registry=registry, clock=clock,
                                     lobby_id="l-test")  # fmt: skip
        return hosting, registry, clock

    def record(self, host_id: str, now: float) -> HostRecord:
        return HostRecord(host_id, "127.0.0.1", (7400, 7409), 10, 10, now)

    async def placed(self, hosting: RemoteMatchHosting, host_id: str
                     ) -> tuple[Match, list[MatchEnded | None]]:  # fmt: skip
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        match = Match("m-1", "duel", players, 1.0)
        ended: list[MatchEnded | None] = []
        # Placed already (its outcome recorded first), so nothing is asked of a host here.
        placed = {"event": "placed", "match_id": "m-1", "host_id": host_id,
                  "address": {"host": "127.0.0.1", "port": 7400}}  # fmt: skip
        # (Asked for by another lobby, which follows it.)
        await self.redis.handler.sadd("vinom:lobbies:m-1", "l-first")
        self.assertTrue(await decide(self.redis, PlacementKeys("vinom:"), DEFAULT_PLACEMENT,
                                     placed))  # fmt: skip
        answer = hosting.host_match(match, on_ended=ended.append)
        # (Not reading its stream on this Clock: handed the event its stream holds.)
        hosting.handle_message(json.dumps(placed))
        await answer
        return match, ended

    async def test_a_host_silent_for_a_second_gets_no_new_match(self) -> None:
        hosting, registry, clock = await self.lobby()
        await registry.register(self.record("h-quiet", 0), DEFAULT_PLACEMENT.host_ttl)
        await registry.register(self.record("h-beating", 0), DEFAULT_PLACEMENT.host_ttl)
        await hosting.refresh_hosts()
        self.assertEqual([h.host_id for h in hosting.live_hosts], ["h-beating", "h-quiet"])
        clock.advance(DEFAULT_PLACEMENT.silent_after + 0.1)
        await registry.register(self.record("h-beating", clock.seconds()),
                                DEFAULT_PLACEMENT.host_ttl)  # fmt: skip
        await hosting.refresh_hosts()
        self.assertEqual([h.host_id for h in hosting.live_hosts], ["h-beating"])
        self.assertEqual(hosting.free_ports, 10)
        # Heard again: placeable again.
        await registry.register(self.record("h-quiet", clock.seconds()),
                                DEFAULT_PLACEMENT.host_ttl)  # fmt: skip
        await hosting.refresh_hosts()
        self.assertEqual([h.host_id for h in hosting.live_hosts], ["h-beating", "h-quiet"])

    async def test_a_live_host_confirms_its_match_with_its_next_heartbeat(self) -> None:
        hosting, registry, clock = await self.lobby()
        await registry.register(self.record("h-1", 0), DEFAULT_PLACEMENT.host_ttl)
        match, ended = await self.placed(hosting, "h-1")
        confirmed = hosting.confirm_running(match.match_id)
        clock.advance(0.2)
        self.assertFalse(confirmed.called)  # no heartbeat since the question yet
        await registry.register(self.record("h-1", clock.seconds()), DEFAULT_PLACEMENT.host_ttl)
        clock.advance(0.1)
        self.assertTrue(await confirmed)
        self.assertEqual(ended, [])
        self.assertEqual(hosting.running_games, 1)

    async def test_a_dead_hosts_match_ends_as_host_crashed_before_the_answer(self) -> None:
        hosting, registry, clock = await self.lobby()
        await registry.register(self.record("h-1", 0), DEFAULT_PLACEMENT.host_ttl)
        match, ended = await self.placed(hosting, "h-1")
        confirmed = hosting.confirm_running(match.match_id)
        for _ in range(40):  # no heartbeat: its registration lapses after host_ttl
            clock.advance(0.1)
        self.assertFalse(await confirmed)
        self.assertEqual(ended, [MatchEnded("m-1", "aborted", None, "host_crashed")])
        self.assertEqual(hosting.running_games, 0)
        # The lobby claimed the departure: no other reader gets it.
        self.assertEqual(await registry.claim_departed(), [])

    async def test_the_players_of_one_host_wait_on_one_proof_of_life(self) -> None:
        # A host dies: all its players reconnect at once. One proof per host, shared:
        # its reads of the registry do not grow with the players.
        hosting, registry, clock = await self.lobby()
        await registry.register(self.record("h-1", 0), DEFAULT_PLACEMENT.host_ttl)
        players = tuple(Ticket(f"p{i}", f"P{i}", "duel", None, 1.0) for i in range(2))
        matches = [Match(f"m-{i}", "duel", players, 1.0) for i in range(20)]
        for match in matches:
            placed = {"event": "placed", "match_id": match.match_id, "host_id": "h-1",
                      "address": {"host": "127.0.0.1", "port": 7400}}  # fmt: skip
            await self.redis.handler.sadd(f"vinom:lobbies:{match.match_id}", "l-first")
            self.assertTrue(await decide(self.redis, PlacementKeys("vinom:"), DEFAULT_PLACEMENT,
                                         placed))  # fmt: skip
            answer = hosting.host_match(match)
            hosting.handle_message(json.dumps(placed))  # (as `placed` does)
            await answer
        confirmed = [hosting.confirm_running(match.match_id) for match in matches]
        for _ in range(40):  # no heartbeat: its registration lapses after host_ttl
            clock.advance(0.1)
        self.assertEqual([await d for d in confirmed], [False] * 20)
        self.assertEqual(hosting.running_games, 0)
        # One read per poll (every heartbeat_every / 5) for the one proof, and one more.
        polls = (DEFAULT_PLACEMENT.host_ttl + DEFAULT_PLACEMENT.heartbeat_every) / (
            DEFAULT_PLACEMENT.heartbeat_every / 5)  # fmt: skip
        self.assertLessEqual(registry.reads, polls + 2)

    async def test_a_host_missing_while_its_departure_is_held_back_is_not_dead(self) -> None:
        # Right after Redis was away, every host key has expired and the registry holds
        # the departures back (the watch guard): a reconnect does not end the match.
        hosting, registry, clock = await self.lobby()
        await registry.register(self.record("h-1", 0), DEFAULT_PLACEMENT.host_ttl)
        match, ended = await self.placed(hosting, "h-1")
        registry.holding = True
        clock.advance(DEFAULT_PLACEMENT.host_ttl + 0.1)  # its key expired meanwhile
        confirmed = hosting.confirm_running(match.match_id)
        clock.advance(1.0)
        await registry.register(self.record("h-1", clock.seconds()), DEFAULT_PLACEMENT.host_ttl)
        clock.advance(0.1)
        self.assertTrue(await confirmed)
        self.assertEqual((ended, hosting.running_games), ([], 1))
        # One that never comes back is left be, until the registry lets its departure
        # be claimed.
        registry.holding = True
        clock.advance(DEFAULT_PLACEMENT.host_ttl + 0.1)
        confirmed = hosting.confirm_running(match.match_id)
        for _ in range(40):
            clock.advance(0.1)
        self.assertTrue(await confirmed)
        self.assertEqual((ended, hosting.running_games), ([], 1))
        registry.holding = False
        self.assertFalse(await self._confirm(hosting, clock, match))
        self.assertEqual(ended, [MatchEnded("m-1", "aborted", None, "host_crashed")])

    async def _confirm(self, hosting: RemoteMatchHosting, clock: Clock, match: Match) -> bool:
        confirmed = hosting.confirm_running(match.match_id)
        for _ in range(40):
            clock.advance(0.1)
        return bool(await confirmed)

    async def test_reading_the_hosts_while_redis_is_away_is_one_line_and_one_on_recovery(
        self,
    ) -> None:
        redis = await open_redis(self)
        clock = Clock()
        away = _Away(MemoryHostRegistry(clock))
        hosting = RemoteMatchHosting(redis=redis, registry=away, clock=clock)  # type: ignore[arg-type]
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        hosting.startService()
        self.addCleanup(hosting.stopService)
        clock.pump([DEFAULT_PLACEMENT.refresh_every] * 20)  # 21 reads fail, for ten seconds
        # Its /ready says so meanwhile (vinom.fleet.shared).
        self.assertEqual(hosting.problem(), "reading the live game hosts failed: Redis did "
                         "not answer (for 10.0 s)")  # fmt: skip
        away.away = False
        clock.pump([DEFAULT_PLACEMENT.refresh_every] * 4)
        self.assertIsNone(hosting.problem())
        said = [formatEvent(e) for e in events
                if e.get("log_namespace", "").startswith("vinom.cluster.placement")]  # fmt: skip
        self.assertEqual(said, [
            "reading the live game hosts failed: Redis did not answer (logged again once it "
            "works)",
            "reading the live game hosts works again, after 10.5 s of failures",
        ])  # fmt: skip


    async def test_a_read_the_stop_cuts_short_is_no_outage(self) -> None:
        redis = await open_redis(self)
        clock = Clock()
        held = _Held(MemoryHostRegistry(clock))
        hosting = RemoteMatchHosting(redis=redis, registry=held, clock=clock)  # type: ignore[arg-type]
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        hosting.startService()  # its first read waits on Redis
        stopped = hosting.stopService()  # and the stop closes the connections under it
        self.addCleanup(lambda: stopped)
        held.reading.errback(BackendUnavailable("Lost connection"))
        said = [formatEvent(e) for e in events
                if e.get("log_namespace", "").startswith("vinom.cluster.placement")]  # fmt: skip
        self.assertEqual(said, [])


class _Held:
    """A registry whose `live_hosts` waits until the test fires `reading`."""

    def __init__(self, registry: MemoryHostRegistry) -> None:
        self.registry = registry
        self.reading: Deferred[Any] = Deferred()

    def __getattr__(self, name: str) -> Any:
        if name == "live_hosts":
            return lambda: self.reading
        return getattr(self.registry, name)


class _Away:
    """A registry that fails (Redis away) while `away`, else is `registry`."""

    def __init__(self, registry: MemoryHostRegistry) -> None:
        self.registry = registry
        self.away = True

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.registry, name)

        def called(*args: Any) -> Any:
            if self.away:
                return fail(BackendUnavailable("Redis did not answer"))
            return call(*args)

        return called


class ReadDelayTests(SynchronousTestCase):
    """--placement: the host with a free slot that reads a new request first (the
    shortest `read_delay`; a tie goes to whichever reads first)."""

    def test_spread_takes_the_least_loaded_and_pack_the_most_loaded(self) -> None:
        records = [HostRecord(name, "10.0.0.1", (7400, 7409), 10, free, 0.0)
                   for name, free in (("a", 9), ("b", 1), ("c", 4), ("d", 6))]  # fmt: skip

        def first(pack: bool) -> list[str]:
            delays = {r.host_id: read_delay(r, pack=pack, most=0.05) for r in records}
            return sorted(delays, key=delays.__getitem__)

        self.assertEqual(first(pack=False), ["a", "d", "c", "b"])
        self.assertEqual(first(pack=True), ["b", "c", "d", "a"])
        # Both within the most a host waits; a host of no capacity waits the most.
        self.assertEqual(read_delay(HostRecord("e", "10.0.0.1", (7400, 7400), 0, 0, 0.0),
                                    pack=False, most=0.05), 0.05)  # fmt: skip
