"""`RemoteMatchHosting`: a lobby's `IMatchHosting` on game hosts in other processes that
share its Redis (`HostAgent`, vinom.cluster.agent, is the host's end; vinom.cluster.channel
has the keys and scripts; docs/scaling.md, "Placing matches on game hosts", every step).

Every lobby that hears a match follows it, and the first adds its request to the realm's
stream, which the realm's hosts read while they have a free slot: no lobby chooses a
host. The first outcome recorded (`placed` or `failed`) wins, and a lobby learns it one
way: its event stream, where it is told to every follower (and, by `FOLLOW`, to a lobby
following a match whose outcome is recorded already). What a lobby decides itself (its
timeout, a player of it leaving through it) it knows without hearing it.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.cluster.channel import (
    EVENTS_TTL,
    FOLLOW,
    FOLLOWERS_TTL,
    OPEN_GROUP,
    RECHECK,
    REQUESTS_KEPT_FOR,
    WITHDRAWN,
    PlacementKeys,
    decide,
    stream_lost,
    withdraw,
)
from vinom.cluster.client import RedisClient, milliseconds
from vinom.cluster.hosts import DEFAULT_REALM, HostRecord, IHostRegistry, presence_channel
from vinom.cluster.outage import Outage
from vinom.cluster.settings import DEFAULT_PLACEMENT, PlacementSettings
from vinom.errors import BackendUnavailable
from vinom.hosting.interfaces import (
    HostingStopped,
    IMatchHosting,
    MatchWithdrawn,
    NoHostAvailable,
)
from vinom.match import HOST_CRASHED, Match, MatchEnded, match_to_json, outcome_from_json
from vinom.protocol.address import HostAddress

EndedCallback = Callable[[MatchEnded | None], object]

EVENTS_PER_READ = 256
# Matches ended `host_crashed` remembered for their host's own end, which replaces that.
CRASHED_REMEMBERED = 4096
# A match not placed this long after it was followed is followed again (a failover may
# have lost its request, or the follow itself), and its players told `waiting_for_server`.
FOLLOW_AGAIN = 1.0
# The `failed` reason a lobby hears for a match placed and ended before it followed it:
# nobody is sent to a game that is over.
ENDED_BEFORE_TOLD = "the match ended before its players were told"


class _Placing:
    """A match this lobby follows and waits to see placed."""

    def __init__(self, match: Match, on_ended: EndedCallback | None,
                 on_waiting: Callable[[int], object] | None) -> None:  # fmt: skip
        self.match = match
        self.on_ended = on_ended
        self.on_waiting = on_waiting
        self.result: Deferred[HostAddress] = Deferred()
        self.timers: list[IDelayedCall] = []
        # A player of it left through this lobby (`withdraw`).
        self.left = False

    def cancel_timers(self) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()


@implementer(IMatchHosting)
class RemoteMatchHosting(Service):
    """A lobby's `IMatchHosting` on the game hosts of its realm (module docstring)."""

    log = Logger()

    def __init__(
        self,
        *,
        redis: RedisClient,
        registry: IHostRegistry,
        clock: IReactorTime,
        lobby_id: str | None = None,
        settings: PlacementSettings = DEFAULT_PLACEMENT,
        refuses: Callable[[HostRecord], str | None] | None = None,
        realm: str = DEFAULT_REALM,
    ) -> None:
        self.lobby_id = lobby_id or "l-" + secrets.token_hex(6)
        self.realm = realm
        # Why this lobby cannot use a host (None: it can), e.g. one it cannot relay to:
        # its requests then go to the realm's `relayed` stream; said once per host.
        self._refuses = refuses
        self._refused: set[str] = set()
        self._redis = redis
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._keys = PlacementKeys(redis.settings.key_prefix)
        self._placing: dict[str, _Placing] = {}
        # Placed and not ended: match id -> (host id, on_ended).
        self._running: dict[str, tuple[str, EndedCallback | None]] = {}
        # Ended `host_crashed` here: match id -> on_ended.
        self._crashed: OrderedDict[str, EndedCallback] = OrderedDict()
        self._hosts: list[HostRecord] = []
        self._refresh = LoopingCall(self.refresh_hosts)
        self._refresh.clock = clock
        self._all_ended: list[Deferred[None]] = []
        # Hosts whose life is being proven -> the callers waiting.
        self._proving: dict[str, list[Deferred[bool]]] = {}
        self._reading = Outage(self.log, clock, "reading the live game hosts")
        self._hearing = Outage(self.log, clock, "reading the placement events")
        self._following = Outage(self.log, clock, "following matches to place")
        self._listening: Deferred[None] = succeed(None)
        # Rechecking the running matches after Redis lost its data, and its pause.
        self._rechecking: Deferred[None] | None = None
        self._recheck_pause: Deferred[None] | None = None

    @property
    def events(self) -> str:
        """This lobby's stream: the placement events of the matches it follows."""
        return self._keys.events(self.lobby_id)

    # -- IMatchHosting

    @property
    def matches(self) -> int:
        return len(self._placing) + len(self._running)

    @property
    def running_games(self) -> int:
        return len(self._running)

    @property
    def free_ports(self) -> int:
        return sum(record.free for record in self._hosts)

    @property
    def live_hosts(self) -> list[HostRecord]:
        """The live hosts of this lobby's realm that it can use, least loaded first."""
        return list(self._hosts)

    def problem(self) -> str | None:
        """Why this lobby cannot serve now (its `/ready`): Redis does not answer its reads
        of the live hosts (every `refresh_every`), so it would refuse every `hello`
        (`unavailable`) and place nothing. None while they work."""
        return self._reading.problem()

    def when_all_ended(self) -> Deferred[None]:
        if not self.matches:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._all_ended.append(d)
        return d

    def host_match(
        self,
        match: Match,
        on_waiting: Callable[[int], object] | None = None,
        on_ended: EndedCallback | None = None,
    ) -> Deferred[HostAddress]:
        match_id = match.match_id
        placing = _Placing(match, on_ended, on_waiting)
        # Cancelled: no longer followed here, and withdrawn as by `withdraw`.
        placing.result = Deferred(lambda _: self._withdraw(match_id))
        self._placing[match_id] = placing
        self._later(placing, self._settings.place_timeout, self._timed_out, match_id)
        self._later(placing, FOLLOW_AGAIN, self._not_placed_yet, match_id)
        # No free slot anywhere: its players are told to wait once it is followed (not
        # before this returns: the lobby holds its Deferred then).
        self._follow(placing, waiting=self.free_ports == 0 and bool(self.running))
        return placing.result

    def _follow(self, placing: _Placing, waiting: bool = False) -> None:
        """Follow the match (`FOLLOW`); a failure (Redis away, or refusing writes) is
        logged once, and `FOLLOW_AGAIN` asks again."""
        match_id = placing.match.match_id
        request = json.dumps({"match": match_to_json(placing.match)}, separators=(",", ":"))
        ended = json.dumps({"event": "failed", "match_id": match_id,
                            "reason": ENDED_BEFORE_TOLD}, separators=(",", ":"))  # fmt: skip
        keys = [self._keys.followers(match_id), self._keys.outcome(match_id),
                self._keys.requests(self.realm, self._refuses is not None),
                self._keys.requested(match_id), self.events]  # fmt: skip
        args = [self.lobby_id, milliseconds(FOLLOWERS_TTL), request,
                milliseconds(self._settings.key_ttl),
                milliseconds(REQUESTS_KEPT_FOR * self._settings.place_timeout), match_id,
                ended]  # fmt: skip
        d = self._redis.run(FOLLOW, keys, args)
        d.addCallbacks(lambda _: self._following.worked(),
                        lambda f: self._following.failed(f.value))  # fmt: skip
        if waiting:
            d.addCallback(lambda _: self._tell_waiting(placing) if match_id in self._placing
                          else None)  # fmt: skip

    def _not_placed_yet(self, match_id: str) -> None:
        placing = self._placing.get(match_id)
        if placing is None:
            return
        self._tell_waiting(placing)
        self._follow(placing)
        self._later(placing, FOLLOW_AGAIN, self._not_placed_yet, match_id)

    def _later(self, placing: _Placing, delay: float, call: Callable[..., object],
               *args: object) -> None:  # fmt: skip
        """A timer of the match's (cancelled as it is answered, or this stops)."""
        placing.timers = [timer for timer in placing.timers if timer.active()]
        placing.timers.append(self._clock.callLater(delay, call, *args))

    def _tell_waiting(self, placing: _Placing) -> None:
        on_waiting, placing.on_waiting = placing.on_waiting, None
        if on_waiting is not None:
            try:
                on_waiting(1)
            except Exception:
                self.log.failure("on_waiting failed for {match_id}",
                                 match_id=placing.match.match_id)  # fmt: skip

    # -- services

    def startService(self) -> None:
        super().startService()
        self._refresh.start(self._settings.refresh_every, now=True)
        self._listening = Deferred.fromCoroutine(self._listen()).addErrback(
            lambda f: self.log.failure("placement events: the loop ended", f)
        )

    def stopService(self) -> Deferred[None]:
        """Stop, leaving no timer: each match still waiting here fails with
        `HostingStopped` (followed still, for the other lobbies' players and its own
        reconnecting elsewhere); then delete the stream."""
        super().stopService()
        if self._refresh.running:
            self._refresh.stop()
        if self._recheck_pause is not None:
            self._recheck_pause.cancel()
        for match_id, placing in list(self._placing.items()):
            self._done(match_id)
            placing.result.errback(HostingStopped("the lobby is stopping"))
        self._check_all_ended()

        def delete(_: object) -> Deferred[None]:
            d = self._redis.bounded(self._redis.handler.delete(self.events))
            return d.addCallbacks(lambda _: None, lambda f: self.log.info(
                "deleting the placement events: {error}", error=f.value))  # fmt: skip

        listening, self._listening = self._listening, succeed(None)
        return listening.addCallback(delete)

    async def _listen(self) -> None:
        """Read this lobby's events as they come (`NOACK`: a lobby that dies with one
        unread is gone with what it would have done). A lost stream is made again."""
        group_ready = False
        while self.running:
            try:
                if not group_ready:
                    await self._redis.run(OPEN_GROUP, [self.events],
                                          ["lobby", milliseconds(EVENTS_TTL)])  # fmt: skip
                    group_ready = True
                reply = await self._redis.blocking(
                    "XREADGROUP", "GROUP", "lobby", self.lobby_id, "COUNT", EVENTS_PER_READ,
                    "BLOCK", 1000, "NOACK", "STREAMS", self.events, ">")  # fmt: skip
            except Exception as error:
                if not self.running:
                    return
                group_ready = not stream_lost(error)
                if group_ready:
                    self._hearing.failed(error)
                    await deferLater(self._clock, 0.5, lambda: None)
                elif self._running and self._rechecking is None:
                    # Redis lost its data: the followers of these matches too.
                    self._rechecking = Deferred.fromCoroutine(self._recheck())
                    self._rechecking.addErrback(lambda f: self.log.failure(
                        "rechecking the running matches", f))  # fmt: skip
                continue
            self._hearing.worked()
            for _, entries in reply or ():
                for _, fields in entries:
                    event = dict(zip(fields[::2], fields[1::2], strict=True)).get("m", "")
                    self.handle_message(event)

    async def _recheck(self) -> None:
        """After Redis lost its data, once the hosts had time to register again
        (`RECHECK`): each match running here is followed again, ended (outcome unknown),
        or after `stall_grace` without its host, ended `host_crashed`."""
        settings = self._settings
        give_up = self._clock.seconds() + settings.host_ttl + settings.heartbeat_every
        give_up += settings.stall_grace
        wait = settings.host_ttl + settings.heartbeat_every
        try:
            while self.running:
                self._recheck_pause = deferLater(self._clock, wait, lambda: None)
                try:
                    await self._recheck_pause
                except CancelledError:
                    return
                finally:
                    self._recheck_pause = None
                wait = settings.heartbeat_every
                unregistered = False
                for match_id, (host_id, _) in list(self._running.items()):
                    keys = [self._keys.host(host_id), self._keys.host_matches(host_id),
                            self._keys.followers(match_id)]  # fmt: skip
                    try:
                        found = await self._redis.run(RECHECK, keys, [
                            self.lobby_id, milliseconds(FOLLOWERS_TTL), match_id])  # fmt: skip
                    except BackendUnavailable:
                        unregistered = True
                        continue
                    if found == 0:
                        self.log.warn("match {match_id} ended while Redis lost its data: its "
                                      "outcome was not heard", match_id=match_id)  # fmt: skip
                        self._ended(match_id, None)
                    elif found == -1:
                        if self._clock.seconds() < give_up:
                            unregistered = True
                        else:
                            self.log.warn("match {match_id}: its game host {host_id} did not "
                                          "register again after Redis lost its data",
                                          match_id=match_id, host_id=host_id)  # fmt: skip
                            self._ended(match_id, MatchEnded(match_id, "aborted", None,
                                                             HOST_CRASHED))  # fmt: skip
                if not unregistered:
                    return
        finally:
            self._rechecking = None

    def refresh_hosts(self) -> Deferred[None]:
        """Read the live hosts and claim those that departed (ending their matches)."""

        def read(hosts: list[HostRecord]) -> Deferred[list[str]]:
            silent = self._settings.silent_after
            self._hosts = [host for host in hosts
                           if host.realm == self.realm and host.silent_for <= silent
                           and self._usable(host)]  # fmt: skip
            return self._registry.claim_departed()

        def failed(failure: Failure) -> None:
            if self.running:  # (a read the stop cut short is no outage)
                self._reading.failed(failure.value)

        d = self._registry.live_hosts().addCallback(read)
        return d.addCallbacks(lambda _: self._reading.worked(), failed)

    def _usable(self, host: HostRecord) -> bool:
        reason = None if self._refuses is None else self._refuses(host)
        if reason is None:
            return True
        if host.host_id not in self._refused:
            self._refused.add(host.host_id)
            self.log.warn("game host {host_id} gets no match from this lobby: {reason}",
                          host_id=host.host_id, reason=reason)  # fmt: skip
        return False

    def remove_player(self, match_id: str, player_id: str) -> Deferred[bool]:
        """Tell the match's host, on its presence channel (`HostAgent`), to take the player
        out: True once its host heard it (pub/sub: a host cut off from Redis does not,
        and the lobby's next read of the bans tells it again)."""
        running = self._running.get(match_id)
        if running is None:
            return succeed(False)
        message = json.dumps({"remove": player_id, "match_id": match_id})
        channel = presence_channel(self._redis, running[0])
        d = self._redis.bounded(self._redis.handler.publish(channel, message))
        return d.addCallback(lambda heard: int(heard) > 0)

    def confirm_running(self, match_id: str) -> Deferred[bool]:
        return Deferred.fromCoroutine(self._confirm_running(match_id))

    async def _confirm_running(self, match_id: str) -> bool:
        running = self._running.get(match_id)
        host_id = None if running is None else running[0]
        if host_id is None:
            # Not followed here (a player reconnecting through this lobby): its host.
            text = await self._redis.bounded(self._redis.handler.get(self._keys.outcome(match_id)))
            placed = None if text is None else json.loads(text)
            if placed is None or placed.get("event") != "placed":
                return True  # nothing known here against it
            host_id = str(placed["host_id"])
        if await self._host_alive(host_id):
            return True
        self.log.info("match {match_id}: its game host {host_id} is gone", match_id=match_id,
                      host_id=host_id)  # fmt: skip
        # Ended here at once, so that the caller sees what its end left.
        self._ended(match_id, MatchEnded(match_id, "aborted", None, HOST_CRASHED))
        return False

    def _host_alive(self, host_id: str) -> Deferred[bool]:
        """Whether the host lives (or nothing proves it dead): one proof per host, since
        the players of a host that died all reconnect at once."""
        waiter: Deferred[bool] = Deferred()
        waiting = self._proving.get(host_id)
        if waiting is not None:
            waiting.append(waiter)
        else:
            self._proving[host_id] = [waiter]

            def proven(result: bool | Failure) -> None:
                for each in self._proving.pop(host_id, []):
                    if isinstance(result, Failure):
                        each.errback(result)
                    else:
                        each.callback(result)

            Deferred.fromCoroutine(self._prove(host_id)).addBoth(proven)
        return waiter

    async def _prove(self, host_id: str) -> bool:
        """Alive: a heartbeat after the proof began. Dead: unregistered and its departure
        claimed (vinom.cluster.hosts). Neither within `host_ttl + heartbeat_every`: True."""
        step = self._settings.heartbeat_every / 5
        deadline = self._clock.seconds() + self._settings.host_ttl + self._settings.heartbeat_every
        now = await self._registry.get(host_id)
        seen = None if now is None else now.updated_at
        while True:
            if now is not None and now.updated_at != seen:
                return True
            if now is None:
                await self._registry.claim_departed()
                return not await self._registry.departed(host_id)
            if self._clock.seconds() >= deadline:
                return True
            await deferLater(self._clock, step, lambda: None)
            now = await self._registry.get(host_id)

    # -- the events

    def handle_message(self, text: str | bytes) -> None:
        """One placement event of this lobby's stream. Heard twice changes nothing."""
        try:
            message = json.loads(text)
            event = message["event"]
            match_id = str(message["match_id"])
            if event == "placed":
                address = HostAddress.from_json(message["address"])
                self._placed(match_id, str(message["host_id"]), address)
            elif event == "failed":
                self._failed(match_id, str(message.get("reason", "")))
            elif event == "ended":
                outcome = message.get("outcome")
                self._ended(match_id, None if outcome is None else outcome_from_json(outcome))
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a placement message: {text!r}", text=text)

    def _done(self, match_id: str) -> _Placing | None:
        placing = self._placing.pop(match_id, None)
        if placing is not None:
            placing.cancel_timers()
        return placing

    def _placed(self, match_id: str, host_id: str, address: HostAddress) -> None:
        placing = self._done(match_id)
        if placing is None:
            return
        self._running[match_id] = (host_id, placing.on_ended)
        placing.result.callback(address)

    def _failed(self, match_id: str, reason: str) -> None:
        placing = self._done(match_id)
        if placing is None:
            return
        if reason == WITHDRAWN:
            # A player of it left: here (withdrawn, as in one lobby) or through another
            # lobby, whose players are then put back in the queue at once.
            placing.result.errback(CancelledError() if placing.left else MatchWithdrawn(
                "a player of the match left before it was placed"))  # fmt: skip
        else:
            placing.result.errback(NoHostAvailable(reason or "no game host took the match"))
        self._check_all_ended()

    def _ended(self, match_id: str, outcome: MatchEnded | None) -> None:
        """The match ended. One ended `host_crashed` whose host then tells its own end (it
        was cut off from Redis, not from its players) is ended again with that."""
        running = self._running.pop(match_id, None)
        if running is None:
            late = self._crashed.pop(match_id, None)
            if late is not None and outcome is not None and outcome.reason != HOST_CRASHED:
                self.log.info("match {match_id}: its game host came back with its end "
                              "({phase}), which replaces host_crashed", match_id=match_id,
                              phase=outcome.phase)  # fmt: skip
                self._tell_ended(late, match_id, outcome)
            return
        _, on_ended = running
        if on_ended is not None:
            if outcome is not None and outcome.reason == HOST_CRASHED:
                self._crashed[match_id] = on_ended
                while len(self._crashed) > CRASHED_REMEMBERED:
                    self._crashed.popitem(last=False)
            self._tell_ended(on_ended, match_id, outcome)
        self._check_all_ended()

    def _tell_ended(
        self, on_ended: EndedCallback, match_id: str, outcome: MatchEnded | None
    ) -> None:
        try:
            on_ended(outcome)
        except Exception:
            self.log.failure("on_ended failed for {match_id}", match_id=match_id)

    def _check_all_ended(self) -> None:
        if not self.matches and self._all_ended:
            waiters, self._all_ended = self._all_ended, []
            for waiter in waiters:
                waiter.callback(None)

    def _timed_out(self, match_id: str) -> None:
        """Nothing heard in time: `failed` is recorded unless an outcome is, so that a host
        reading the request later hosts nothing. Else the outcome recorded first reaches
        this lobby's stream (`FOLLOW` tells it again each `FOLLOW_AGAIN`)."""
        if match_id not in self._placing:
            return
        reason = "no game host took the match in time"
        failed = {"event": "failed", "match_id": match_id, "reason": reason}

        def recorded(done: bool) -> None:
            if done:
                self._failed(match_id, reason)

        def unrecorded(failure: Failure) -> None:
            self._failed(match_id, f"the placement could not be decided: {failure.value}")

        decide(self._redis, self._keys, self._settings, failed).addCallbacks(
            recorded, unrecorded)

    def withdraw(self, match_id: str) -> Deferred[bool]:
        """A player of a match not placed yet left it through this lobby: it is withdrawn
        (its Deferred fails with CancelledError; every other lobby of it hears `failed`,
        `withdrawn`) unless an outcome is recorded first (then that outcome stands, and
        reaches this lobby as every follower's). Whether it was withdrawn."""
        placing = self._placing.get(match_id)
        if placing is None:
            return succeed(False)
        placing.left = True

        def decided(given_up: bool) -> bool:
            if given_up:
                self._failed(match_id, WITHDRAWN)
            else:
                self.log.info("match {match_id}: a player of it left, after it was placed "
                              "or given up", match_id=match_id)  # fmt: skip
            return given_up

        def failed(failure: Failure) -> bool:
            # It waits on: `place_timeout` gives it up if no host takes it.
            self.log.warn("withdrawing {match_id} failed: {error}", match_id=match_id,
                          error=failure.value)  # fmt: skip
            return False

        return withdraw(self._redis, self._keys, self._settings,
                        match_id).addCallbacks(decided, failed)  # fmt: skip

    def _withdraw(self, match_id: str) -> None:
        """The match's Deferred was cancelled: withdrawn for every lobby, as by `withdraw`."""
        self._done(match_id)
        d = withdraw(self._redis, self._keys, self._settings, match_id)
        d.addErrback(lambda f: self.log.warn("withdrawing {match_id} failed: {error}",
                                             match_id=match_id, error=f.value))  # fmt: skip
        self._check_all_ended()
