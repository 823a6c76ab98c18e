"""`HostAgent`: a game-host process's end of the placement channel (vinom.cluster.placement).

It registers the host in the `IHostRegistry` with a TTL and renews it every
`heartbeat_every` (its heartbeat, with its free capacity), holds its presence
connection (subscribed to its presence channel for as long as the process lives:
lobbies end its matches only once it is gone, not while it is only paused), takes
placement requests from its realm's stream while it has a free slot, hosts each match
on its own `GameHostingService` and says where to the lobbies that follow the match
(their placement streams, vinom.cluster.channel); when a match ends it says how, to
the same lobbies.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections import OrderedDict
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.cluster.channel import (
    CLAIM_SOURCE,
    GIVE_BACK,
    OPEN_GROUP,
    READ,
    WAIT_FROM,
    PlacementKeys,
    announce_end,
    decide,
    stream_lost,
)
from vinom.cluster.client import RedisClient, RedisSubscription, milliseconds
from vinom.cluster.hosts import DEFAULT_REALM, HostRecord, IHostRegistry, presence_channel
from vinom.cluster.outage import Outage
from vinom.cluster.players import MARK_ENDED, ended_keys
from vinom.cluster.ranked import encode_result
from vinom.cluster.records import RedisRecords
from vinom.cluster.settings import DEFAULT_PLACEMENT, PlacementSettings
from vinom.cluster.watch import guarded, watch_key
from vinom.errors import BackendUnavailable
from vinom.hosting.interfaces import HostingStopped
from vinom.hosting.service import GameHostingService
from vinom.match import (
    Match,
    MatchEnded,
    match_from_json,
    outcome_to_json,
)
from vinom.protocol.route_token import relayable
from vinom.store.interfaces import MatchPlacement

# The longest a host waits, once a request is added, before it reads (`read_delay`).
READ_DELAY = 0.05

# The most requests a host reads at once (each while it has a free slot for it).
READ_AT_ONCE = 16

# The matches a host remembers having taken (a request Redis gives again is dropped).
TAKEN_REMEMBERED = 4096

# A stopping host waits this long at most for its games to stop before it unregisters.
STOP_WAIT = 10.0


def read_delay(record: HostRecord, *, pack: bool, most: float) -> float:
    """How long a host waits, once a request is added, before it reads: up to `most`,
    the longer the more free slots it has with `pack` (--placement pack: the busiest
    host reads first, so hosts fill one after another and idle ones can be scaled
    down, docs/kubernetes.md), or the fewer with `spread` (the idlest reads first)."""
    if record.capacity <= 0:
        return most
    share = record.free / record.capacity
    return most * (share if pack else 1.0 - share)


def _ignore(message: str) -> None:
    """The presence channel carries nothing: being subscribed is what counts."""


class HostAgent(Service):
    """A game-host process's side of the placement channel (module docstring)."""

    log = Logger()

    def __init__(
        self,
        *,
        redis: RedisClient,
        registry: IHostRegistry,
        hosting: GameHostingService,
        public_host: str,
        ports: tuple[int, int],
        clock: IReactorTime,
        presence_endpoint: Any,
        host_id: str | None = None,
        settings: PlacementSettings = DEFAULT_PLACEMENT,
        realm: str = DEFAULT_REALM,
        records: RedisRecords | None = None,
        placement: str = "spread",
    ) -> None:
        self.host_id = host_id or "h-" + secrets.token_hex(6)
        self.realm = realm
        # --placement pack: the busiest host with a free slot reads a request first.
        self._pack = placement == "pack"
        self._redis = redis
        self._registry = registry
        self._hosting = hosting
        self._public_host = public_host
        self._ports = ports
        self._clock = clock
        self._settings = settings
        self._keys = PlacementKeys(redis.settings.key_prefix)
        self._capacity = hosting.free_ports
        hosting.on_match_over = self._over
        # Matches whose request this host took (a request Redis gives again is dropped).
        self._taken: OrderedDict[str, None] = OrderedDict()
        # The requests being taken now, (stream, entry id) (each holds a slot meanwhile):
        # not the entry id alone, which the two streams of a host announcing an IP address
        # give two requests added in the same millisecond.
        self._taking: set[tuple[str, str]] = set()
        # Set once a stop has left the registry: nothing more is announced after that.
        self._left = False
        # Taking requests (retried every 0.5 s while Redis is away): logged once each way.
        self._popping = Outage(self.log, clock, "taking placement requests")
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = clock
        # Open while this process lives (a paused one's too): `presence_endpoint`
        # reaches the Redis master for a connection of its own (RedisClient.endpoint).
        # Each time it subscribes again (Redis came back, or a replica was promoted), the
        # ends that Redis lost are announced again (`_restore_ends`).
        self._presence = RedisSubscription(
            presence_endpoint, presence_channel(redis, self.host_id), _ignore, clock,
            redis.settings.password, catch_up=self._restore_ends,
            username=redis.settings.username,
        )  # fmt: skip
        self._serving = False
        # The loop taking requests: a stop waits for it (a read out answers within a
        # second; its wait after a failed read is cut short).
        self._serve_loop: Deferred[None] = succeed(None)
        self._backoff: Deferred[None] | None = None
        self._registered = False
        self.draining = False
        # Announcements of ends not answered yet (the host leaves the registry after them).
        self._ending: set[Deferred[None]] = set()
        # Matches placed here and not ended: what the host's matches set in Redis should
        # hold (`_restore_ends`).
        self._running_here: set[str] = set()
        # The `ended` messages of the last matches ended here, to say them again as they
        # were to a promoted replica that never had them.
        # With a ranked match's result (vinom.cluster.ranked), '' for none.
        self._ends: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        # The `placed` outcome and placement record of each match placed here and not
        # ended, to record them again on a promoted replica that never had them
        # (`_restore_ends`).
        self._placements: dict[str, tuple[dict[str, Any], MatchPlacement]] = {}
        # Matches hosted here whose `placed` came too late (another outcome was recorded
        # first): copies nobody joins, whose end is not the match's (`_ended`).
        self._copies: set[str] = set()
        # The matches whose placement is being recorded (`_host`), each with its end if
        # it ended meanwhile: whether it is the match's or a copy's is known after.
        self._deciding: dict[str, tuple[MatchEnded | None] | None] = {}
        # Claims a request another host read and left (its reader dead), or one this
        # host read itself, after `claim_after` (vinom.cluster.channel, `CLAIM_SOURCE`).
        self._claim = guarded(CLAIM_SOURCE, settings.host_ttl + settings.heartbeat_every)
        # When it next looks for such a request (`_next`).
        self._claim_at = 0.0
        # The last registration sent (the host unregisters after its answer).
        self._last_beat: Deferred[None] = succeed(None)
        self.placed = 0
        # Copies each ended match's record to Redis (None: records stay on disk).
        self._records = records

    def record(self) -> HostRecord:
        """This host as it announces itself now."""
        capacity = max(self._capacity, self._hosting.free_ports)
        return HostRecord(
            host_id=self.host_id,
            public_host=self._public_host,
            ports=self._ports,
            capacity=capacity,
            free=0 if self.draining else min(self._hosting.free_ports, capacity),
            updated_at=self._clock.seconds(),
            game_url=self._hosting.game_url,
            realm=self.realm,
        )

    def heartbeat(self) -> Deferred[None]:
        """Register (again); a failure is logged and the next heartbeat tries again.
        A draining host goes on (with no free capacity): it is alive, and its matches
        are not to be ended as a dead host's."""

        def registered(_: object) -> None:
            if not self._registered:
                self.log.info("game host {host_id} registered", host_id=self.host_id)
            self._registered = True

        def failed(failure: Failure) -> None:
            if self._registered:
                self.log.warn(
                    "game host {host_id}: registering failed: {error}",
                    host_id=self.host_id, error=failure.value,
                )  # fmt: skip
            self._registered = False

        # With the matches it runs (not a copy placed too late, which is another
        # host's match): put back if Redis lost them (vinom.cluster.hosts).
        d = self._registry.register(self.record(), self._settings.host_ttl,
                                    sorted(self._running_here - self._copies))  # fmt: skip
        d.addCallbacks(registered, failed)
        self._last_beat = d
        return d

    def startService(self) -> None:
        super().startService()
        self._presence.start()
        self._heartbeat.start(self._settings.heartbeat_every, now=True)
        self._serving = True
        self._left = False
        self._serve_loop = Deferred.fromCoroutine(self._serve()).addErrback(
            lambda f: self.log.failure("placement requests: the loop ended", f)
        )

    def drain(self) -> None:
        """Take no new matches: announce no free capacity (staying registered, since its
        matches play on), give back to the realm's other hosts the requests its read
        out brings, and those it claims back from itself (`_next`, `_take`)."""
        if self.draining:
            return
        self.draining = True
        self.log.info("game host {host_id} draining: takes no new matches", host_id=self.host_id)
        self.heartbeat()

    def _unregister(self) -> Deferred[None]:
        """Leave the registry: gone at once if every match's end was announced, else the
        first lobby to notice ends those left (`host_crashed`: vinom.cluster.hosts)."""

        def done(_: object) -> None:
            self.log.info("game host {host_id} unregistered", host_id=self.host_id)

        d = self._registry.unregister(self.host_id)
        return d.addCallbacks(done, lambda f: self.log.warn(
            "game host {host_id}: unregistering failed: {error}", host_id=self.host_id,
            error=f.value))  # fmt: skip

    def stopService(self) -> Deferred[None]:
        """Take no new match, and leave the registry once the games have stopped (the
        hosting service stops with this one) and their ends are announced: their players
        are told `shutdown` by this host, never `host_crashed` by a lobby that saw the
        host gone first. Heartbeats go on meanwhile (with no free capacity), for at most
        `STOP_WAIT` seconds."""
        super().stopService()
        self._serving = False
        if self._backoff is not None:
            self._backoff.cancel()
        self.draining = True
        return Deferred.fromCoroutine(self._leave())

    async def _leave(self) -> None:
        stopped: Deferred[bool] = Deferred()

        def settle(ended: bool) -> None:
            if not stopped.called:
                stopped.callback(ended)

        self._hosting.when_all_ended().addCallback(lambda _: settle(True))
        timer = self._clock.callLater(STOP_WAIT, settle, False)
        if await stopped:
            if timer.active():
                timer.cancel()
        else:
            self.log.warn("game host {host_id}: its games did not stop within {seconds} s; "
                          "unregistering", host_id=self.host_id, seconds=STOP_WAIT)  # fmt: skip
        # Each end's announcement answered (or failed) before the host leaves.
        await DeferredList(list(self._ending))
        if self._heartbeat.running:
            self._heartbeat.stop()
        # A heartbeat still out would register the host again after it left.
        await DeferredList([self._last_beat])
        # Its reading over (the loop's read out, or its wait cut short).
        await self._serve_loop
        # Unregistered first: with its key gone, the presence closing cannot make the
        # host look like one that died.
        await self._unregister()
        await self._presence.stop()
        self._left = True

    def _free(self) -> int:
        """Slots this host can take a request for now (none while draining or stopping)."""
        if self.draining or not self._serving:
            return 0
        return self._hosting.free_ports - len(self._taking)

    async def _serve(self) -> None:
        """Take requests from the realm's stream through its hosts' consumer group
        (`hosts`), only while a slot is free, one per slot: the load spreads by itself.
        Now and then first a request another host read and has not placed in
        `claim_after` (it died or is paused: its registration gone), or this host's own
        (`CLAIM_SOURCE`), then those no host read yet (`READ`); with none, wait for the
        next request added (`XREAD ... BLOCK`, up to a second, on one connection of the
        pool), then `read_delay` (--placement), then read again: whichever host reads
        first takes it. A stream or group Redis lost is made again."""
        streams = [self._keys.requests(self.realm)]
        if relayable(self._public_host):
            streams.append(self._keys.requests(self.realm, relayed=True))
        ready = False
        while self._serving:
            try:
                if not ready:
                    for key in streams:
                        await self._redis.run(OPEN_GROUP, [key], [
                            "hosts", milliseconds(self._settings.key_ttl)])  # fmt: skip
                    ready = True
                if self._free() < 1 and not self.draining:
                    await self._pause(self._settings.refresh_every)
                    continue
                entries: list[tuple[str, str, str]] = []
                try:
                    await self._next(streams, entries)
                finally:
                    # Those read before a later read of the batch failed are pending for
                    # this host: taken now, not left to its own claim (`claim_after`).
                    for key, entry_id, text in entries:
                        self._taking.add((key, entry_id))
                        d = Deferred.fromCoroutine(self._take(key, entry_id, text))
                        d.addErrback(self._take_failed)
                        d.addBoth(self._taken_now, (key, entry_id))
                self._popping.worked()
                if self.draining:
                    # It reads nothing new; it only looks again, now and then, for what it
                    # read and still holds (`_next`).
                    await self._pause(self._settings.refresh_every)
                    continue
                if entries:
                    continue
                since = await self._redis.run(WAIT_FROM, streams, ["hosts"])
                await self._redis.blocking("XREAD", "COUNT", 1, "BLOCK", 1000, "STREAMS",
                                           *streams, *since)  # fmt: skip
                delay = read_delay(self.record(), pack=self._pack, most=READ_DELAY)
                if delay > 0:
                    await self._pause(delay)
            except Exception as error:
                if self._serving:
                    ready = not stream_lost(error)
                    if ready:
                        self._popping.failed(error)
                        await self._pause(0.5)

    def _taken_now(self, _: object, request: tuple[str, str]) -> None:
        self._taking.discard(request)

    async def _pause(self, seconds: float) -> None:
        # Cancelled by stopService: a stopped host leaves no timer.
        self._backoff = deferLater(self._clock, seconds, lambda: None)
        with contextlib.suppress(CancelledError):
            await self._backoff
        self._backoff = None

    async def _next(self, streams: list[str], found: list[tuple[str, str, str]]) -> None:
        """Add to `found` the next requests for this host, as many as it has free slots
        (up to `READ_AT_ONCE`): (stream, entry id, request); each as it is read, so that
        a later read that fails loses none. Every `claim_after / 4`, and again at once
        while one is found, first a request a dead host read and left, or its own
        (`CLAIM_SOURCE`, one per look): a host that died with a batch read left up to
        `READ_AT_ONCE`, which would otherwise grow older than `place_timeout` waiting.
        A draining host only claims, to give back (`_take`): a request it read and still
        holds (its give-back failed, or the answer of its read was lost) is claimed by no
        other host while it lives, and would wait out `place_timeout` for nothing."""
        giving_back = self.draining
        commands = [] if giving_back else ["XREADGROUP"]
        if self._clock.seconds() >= self._claim_at:
            self._claim_at = self._clock.seconds() + self._settings.claim_after / 4
            commands.insert(0, "XCLAIM")
        idle = milliseconds(self._settings.claim_after)
        timeout = milliseconds(self._settings.place_timeout)
        for command in commands:
            for key in streams:
                slots = READ_AT_ONCE if giving_back else min(self._free(), READ_AT_ONCE)
                wanted = slots - len(found)
                if wanted < 1:
                    return
                if command == "XCLAIM":
                    reply = await self._redis.run(self._claim, [key, watch_key(
                        self._keys.prefix)], ["hosts", self.host_id, idle, self._keys.host(
                            ""), self._keys.outcome(""), timeout])  # fmt: skip
                    entries = [reply] if reply else []
                    if reply:
                        self._claim_at = 0.0  # (there may be more: look again next time)
                else:
                    outcomes = self._keys.outcome("")
                    entries = await self._redis.run(READ, [key], [
                        "hosts", self.host_id, wanted, outcomes, timeout])  # fmt: skip
                for entry_id, fields in entries:
                    if (key, entry_id) in self._taking:
                        continue  # being taken here (claimed back from this host itself)
                    if not fields:  # trimmed away while pending: nothing to take
                        await self._ack(key, entry_id)
                        continue
                    text = dict(zip(fields[::2], fields[1::2], strict=True)).get("r", "")
                    found.append((key, entry_id, text))

    def _ack(self, key: str, entry_id: str) -> Deferred[Any]:
        return self._redis.bounded(
            self._redis.handler.execute_command("XACK", key, "hosts", entry_id))

    def _take_failed(self, failure: Failure) -> None:
        if failure.check(BackendUnavailable):
            # Redis away (restarting, failing over): one line, no traceback; the request
            # stays pending, claimed again after `claim_after` (here, draining or not, or
            # by another host once this one is gone).
            self.log.warn("a placement request failed: {error}", error=failure.value)
        else:
            self.log.failure("a placement request failed", failure)

    async def _take(self, key: str, entry_id: str, text: str | bytes) -> None:
        try:
            match = match_from_json(json.loads(text)["match"])
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a placement request: {text!r}", text=text)
            await self._ack(key, entry_id)
            return
        match_id = match.match_id
        if match_id in self._taken:
            # A request taken before, given again: by a Redis that lost its
            # acknowledgement, or by a lobby still waiting after a failover lost the
            # request and the placement. The match runs here already: its `placed` is
            # said again (the first outcome recorded still wins).
            placed = self._placements.get(match_id)
            # (Not while its placement is being recorded: that call records it.)
            if placed is not None and match_id not in self._deciding and await decide(
                    self._redis, self._keys, self._settings, *placed):  # fmt: skip
                self.log.info("game host {host_id}: recorded again the placement of "
                              "{match_id}, which Redis had lost", host_id=self.host_id,
                              match_id=match_id)  # fmt: skip
            await self._ack(key, entry_id)
            return
        if not self.draining:
            self._taken[match_id] = None
            while len(self._taken) > TAKEN_REMEMBERED:
                self._taken.popitem(last=False)
            if await self._host(match, (key, entry_id)):
                return
        # Given back to the realm's other hosts: read as this host began to drain or stop
        # (its read out, a batch of up to `READ_AT_ONCE`: a new match here would hold its
        # drain for a whole match), or stopping as it started it (`_host`).
        ttl = milliseconds(self._settings.key_ttl)
        await self._redis.run(GIVE_BACK, [key], ["hosts", entry_id, text, ttl, match_id])

    async def _host(self, match: Match, request: tuple[str, str]) -> bool:
        """Host a match whose request (stream, entry id) this host took, and record it
        `placed`, acknowledging the request; a match it could not start is recorded
        `failed` (its players go back to the head of the queue, told `no_host`), but for
        one it could not start because it is stopping: False, its request given back to
        the realm's other hosts."""
        hosted = self._hosting.host_match(match, on_ended=partial(self._ended, match))
        # Its port is taken (or it waits for one): the request no longer holds a slot.
        self._taking.discard(request)
        try:
            address = await hosted
        except HostingStopped:
            self.log.info("match {match_id} given back to the other hosts: this host is "
                          "stopping", match_id=match.match_id)  # fmt: skip
            self._taken.pop(match.match_id, None)
            return False
        except Exception as error:
            self.log.warn("match {match_id} not hosted: {error}", match_id=match.match_id,
                          error=error)  # fmt: skip
            failed = {"event": "failed", "match_id": match.match_id,
                      "reason": f"the game host could not start it: {error}"}  # fmt: skip
            await decide(self._redis, self._keys, self._settings, failed, ack=request)
            return True
        if match.match_id not in self._ends:  # (not ended at once)
            self._running_here.add(match.match_id)
        placed = {
            "event": "placed",
            "match_id": match.match_id,
            "host_id": self.host_id,
            "address": address.to_json(),
        }
        # The placement record goes with the outcome: the lobbies that follow the match
        # save nothing (one writer per match, however many lobbies hear it).
        record = MatchPlacement(match, address, self._clock.seconds())
        if match.match_id in self._running_here:
            # What a promoted replica may lack (`_restore_ends`, or the request again).
            self._placements[match.match_id] = (placed, record)
        self._deciding[match.match_id] = None
        try:
            recorded = await decide(self._redis, self._keys, self._settings, placed, record,
                                    ack=request)  # fmt: skip
        except Exception:
            self._end_decided(match)
            raise
        if not recorded:
            self._placements.pop(match.match_id, None)
            # Given up, or placed on another host first (this host paused past
            # `claim_after` or `place_timeout`; a request read twice across a failover):
            # nobody comes, it aborts at the connect deadline.
            if match.match_id in self._running_here:
                self._copies.add(match.match_id)
            self.log.warn("match {match_id} was placed too late", match_id=match.match_id)
        else:
            self.placed += 1
        self._end_decided(match)
        return True

    def _end_decided(self, match: Match) -> None:
        """The end of a match that ended while its placement was being recorded, now
        that whether it was a copy is known."""
        ended = self._deciding.pop(match.match_id, None)
        if ended is not None:
            self._ended(match, ended[0])

    def _over(self, outcome: MatchEnded) -> None:
        """A match here ended, its room lingering a little longer (for its players, and its
        spectators' delay): its placement is marked ended on Redis, so that every lobby
        answers `spectate` for it `match_ended`. A mark Redis did not take is not tried
        again: the end itself is announced (and retried) once the room is gone (`_ended`),
        which removes the placement."""
        match_id = outcome.match_id
        if match_id in self._copies or match_id not in self._running_here:
            return
        self._redis.run(MARK_ENDED, ended_keys(self._redis, match_id)).addErrback(
            lambda _: None
        )

    def _ended(self, match: Match, outcome: MatchEnded | None) -> None:
        match_id = match.match_id
        if match_id in self._deciding:
            # Ended before its placement was recorded (a Redis slow to answer): a copy's
            # end must not reach the match's lobbies (`_end_decided`).
            self._deciding[match_id] = (outcome,)
            return
        data = None if outcome is None else outcome_to_json(outcome)
        message = {"event": "ended", "match_id": match_id, "outcome": data}
        self._running_here.discard(match_id)
        self._placements.pop(match_id, None)
        if match_id in self._copies:
            # Not the match's end: it may run on another host, whose placement record,
            # game record and end to its lobbies this would overwrite.
            self._copies.discard(match_id)
            return
        if self._records is not None:
            self._records.upload(match_id)
        # A ranked match's end also goes to every lobby that rates matches, whichever
        # followed it (vinom.cluster.ranked).
        result = encode_result(match, outcome)
        self._ends[match_id] = (message, result)
        while len(self._ends) > TAKEN_REMEMBERED:
            self._ends.popitem(last=False)
        d = Deferred.fromCoroutine(self._announce_end(match_id, message, result))
        self._ending.add(d)
        d.addBoth(lambda _: self._ending.discard(d))

    async def _announce_end(self, match_id: str, message: dict[str, Any], result: str) -> None:
        """Tell the match's lobbies it ended; while Redis does not answer (restarting,
        failing over to a replica, or cut off from this host), again every second: until
        they hear it, they count the match as running (per-address limits, the drain of
        its players' lobbies). While the host serves, for as long as it takes: a host
        cut off from Redis for longer than `stall_grace` has its departure claimed and
        its matches ended `host_crashed`, and the end it saw then reaches their lobbies
        once it is back, which take it over that (vinom.cluster.placement). A stopping
        host tries for `stall_grace` at most (and not once it left the registry). A
        repeat of an end they heard changes nothing."""
        give_up = self._clock.seconds() + self._settings.stall_grace
        said = False
        while True:
            try:
                await announce_end(self._redis, self._keys, self.host_id, message, result)
                return
            except BackendUnavailable as error:
                late = self._clock.seconds() >= give_up
                if self._left or (late and not self._serving):
                    self.log.warn("announcing the end of {match_id} failed: {error}",
                                  match_id=match_id, error=error)  # fmt: skip
                    return
                if late and not said:
                    said = True
                    self.log.warn("announcing the end of {match_id} failed for {seconds} s: "
                                  "{error}; trying on", match_id=match_id, error=error,
                                  seconds=self._settings.stall_grace)  # fmt: skip
            except Exception as error:
                self.log.warn("announcing the end of {match_id} failed: {error}",
                              match_id=match_id, error=error)  # fmt: skip
                return
            await deferLater(self._clock, 1.0, lambda: None)

    async def _restore_ends(self) -> None:
        """Say again the ends the Redis master lost: called each time the presence
        channel subscribes (again). Replication is asynchronous, so a replica promoted
        after the master died may lack an end the master acknowledged; its lobbies, if
        they missed the message too, would count the match as running for good. The
        host's matches set there still names such a match: it is announced again (as it
        was, if remembered; else with no outcome), told to its lobbies.

        So with a placement: a match placed here lately (within `key_ttl`, as long as
        its outcome key lives) that the host's matches set there lacks has its `placed`
        recorded again (`decide`: outcome, the host's matches, placement record, told
        to its lobbies), unless another outcome is recorded there already. Else the
        lobbies of the match that had not read its `placed` yet give it up at their
        `place_timeout` while the others' players play it (its players split), a
        `reconnect` finds no placement, and the host's death would end nothing."""
        try:
            key = self._keys.host_matches(self.host_id)
            members = await self._redis.bounded(self._redis.handler.smembers(key))
            lost = sorted(
                match_id for match_id in (m.decode() if isinstance(m, bytes) else str(m)
                                          for m in members or ())
                if match_id not in self._running_here
            )  # fmt: skip
            for match_id in lost:
                message, result = self._ends.get(match_id) or (
                    {"event": "ended", "match_id": match_id, "outcome": None}, "")
                await announce_end(self._redis, self._keys, self.host_id, message, result)
            if lost:
                self.log.info("game host {host_id}: announced again the end of {count} "
                              "match(es) Redis had lost", host_id=self.host_id,
                              count=len(lost))  # fmt: skip
            held = {m.decode() if isinstance(m, bytes) else str(m) for m in members or ()}
            recent = self._clock.seconds() - self._settings.key_ttl
            for match_id, (placed, record) in sorted(self._placements.items()):
                # A placement being recorded (`_host`) is not lost: recorded again here
                # first, that call would find an outcome and take the match for a copy.
                if (match_id in held or record.placed_at <= recent
                        or match_id not in self._placements  # (ended meanwhile)
                        or match_id in self._deciding):  # fmt: skip
                    continue
                if await decide(self._redis, self._keys, self._settings, placed, record):
                    self.log.info("game host {host_id}: recorded again the placement of "
                                  "{match_id}, which Redis had lost", host_id=self.host_id,
                                  match_id=match_id)  # fmt: skip
                    continue
                text = await self._redis.bounded(
                    self._redis.handler.get(self._keys.outcome(match_id)))
                outcome = None if text is None else json.loads(text)
                if (outcome is not None and outcome.get("host_id") != self.host_id
                        and match_id in self._placements):  # fmt: skip
                    # Given up meanwhile, or placed on another host (its lobby took the
                    # request back from the new master, which lacked this host's read):
                    # this one is a copy now.
                    self._placements.pop(match_id, None)
                    self._copies.add(match_id)
                    self.log.warn("match {match_id}: placed elsewhere while Redis had lost "
                                  "its placement here", match_id=match_id)  # fmt: skip
        except Exception as error:
            # Not raised: the presence connection would close (and this host look gone
            # to lobbies). Left to the next subscription.
            self.log.warn("game host {host_id}: reading its matches after Redis came back "
                          "failed: {error}", host_id=self.host_id, error=error)  # fmt: skip
