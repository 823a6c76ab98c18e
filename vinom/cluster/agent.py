"""`HostAgent`: a game-host process's end of the placement channel (vinom.cluster.placement).

It registers the host in the `IHostRegistry` with a TTL and renews it every
`heartbeat_every` (its heartbeat, with its free capacity), holds its presence
connection (subscribed to its presence channel for as long as the process lives:
lobbies end its matches only once it is gone, not while it is only paused), takes
the placement requests lobbies add to its stream, hosts each match on its own
`GameHostingService` and says where to the lobbies that follow the match (their
placement streams, vinom.cluster.channel); when a match ends it says how, to the same
lobbies.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from vinom.cluster.channel import (
    OPEN_GROUP,
    TELL,
    PlacementKeys,
    address_json,
    announce_end,
    decide,
    stream_lost,
)
from vinom.cluster.client import RedisClient, RedisSubscription, milliseconds
from vinom.cluster.hosts import DEFAULT_REALM, HostRecord, IHostRegistry, presence_channel
from vinom.cluster.outage import Outage
from vinom.cluster.records import RedisRecords
from vinom.cluster.settings import DEFAULT_PLACEMENT, PlacementSettings
from vinom.errors import BackendUnavailable
from vinom.hosting.service import GameHostingService
from vinom.match import (
    Match,
    MatchEnded,
    match_from_json,
    outcome_to_json,
)
from vinom.store.interfaces import MatchPlacement

# Placement requests a host takes from its stream in one call at most (XREADGROUP's count).
REQUESTS_PER_POP = 64

# The matches a host remembers having taken (a request Redis gives again is dropped).
TAKEN_REMEMBERED = 4096

# A stopping host waits this long at most for its games to stop before it unregisters.
STOP_WAIT = 10.0


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
    ) -> None:
        self.host_id = host_id or "h-" + secrets.token_hex(6)
        self.realm = realm
        self._redis = redis
        self._registry = registry
        self._hosting = hosting
        self._public_host = public_host
        self._ports = ports
        self._clock = clock
        self._settings = settings
        self._keys = PlacementKeys(redis.settings.key_prefix)
        self._capacity = hosting.free_ports
        # Matches whose request this host took -> why it refused them (None: it did not).
        self._taken: OrderedDict[str, str | None] = OrderedDict()
        # Matches being hosted here now -> other attempts at them waiting to learn
        # whether they were refused (the refusal's reason), or not (None).
        self._hosting_now: dict[str, list[Deferred[str | None]]] = {}
        # The ids of the requests handled and not acknowledged yet (`_serve`).
        self._handled: set[str] = set()
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
        )  # fmt: skip
        self._serving = False
        # The loop taking requests: a stop waits for it (a read out answers within a
        # second; its wait after a failed read is cut short).
        self._serve_loop: Deferred[None] = succeed(None)
        self._backoff: Deferred[None] | None = None
        self._registered = False
        # A capacity update sent in the last refresh_every / 2, and whether capacity
        # changed since.
        self._announcing = False
        self._announce_again = False
        self._quiet: IDelayedCall | None = None
        self.draining = False
        # Announcements of ends not answered yet (the host leaves the registry after them).
        self._ending: set[Deferred[None]] = set()
        # Matches placed here and not ended: what the host's matches set in Redis should
        # hold (`_restore_ends`).
        self._running_here: set[str] = set()
        # The `ended` messages of the last matches ended here, to say them again as they
        # were to a promoted replica that never had them.
        self._ends: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # The `placed` outcome and placement record of each match placed here and not
        # ended, to record them again on a promoted replica that never had them
        # (`_restore_ends`).
        self._placements: dict[str, tuple[dict[str, Any], MatchPlacement]] = {}
        # Matches hosted here whose `placed` came too late (another outcome was recorded
        # first): copies nobody joins, whose end is not the match's (`_ended`).
        self._copies: set[str] = set()
        # The last registration sent (the host unregisters after its answer).
        self._last_beat: Deferred[None] = succeed(None)
        self.placed = 0
        self.refused = 0
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

        d = self._registry.register(self.record(), self._settings.host_ttl)
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
        matches play on), refuse requests still in the list."""
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
        if self._quiet is not None and self._quiet.active():
            self._quiet.cancel()
        self._quiet = None
        self._announcing = self._announce_again = False
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

    async def _serve(self) -> None:
        """Take the requests of this host's stream through its consumer group (`host`):
        every request waiting, oldest first, in one reply (a burst of matches is taken
        in one round trip), and when none waits the next one as soon as it comes
        (`BLOCK`: one connection of the pool, which no other call is given meanwhile,
        waits up to a second). A request
        stays pending in the group until it is handled (`XACK`, sent beside the next
        read), so after any failed read (Redis away, a failover) the host first reads
        its pending ones again: one whose reply was lost on the way is taken, one taken
        already is dropped (`_hosted`). A stream or group Redis lost is made again."""
        key = self._keys.requests(self.host_id)
        ready, backlog = False, True
        while self._serving:
            try:
                if not ready:
                    ttl = milliseconds(self._settings.key_ttl)
                    await self._redis.run(OPEN_GROUP, [key], ["host", ttl])
                    ready = True
                if self._handled:
                    # Sent with the read, not before it; kept until acknowledged: one
                    # pending read again is not taken twice.
                    done = sorted(self._handled)
                    acked = self._redis.bounded(
                        self._redis.handler.execute_command("XACK", key, "host", *done))
                    acked.addCallbacks(lambda _, done=done: self._handled.difference_update(
                        done), lambda _: None)  # (a failed read follows)  # fmt: skip
                reply = await self._redis.blocking(
                    "XREADGROUP", "GROUP", "host", self.host_id, "COUNT", REQUESTS_PER_POP,
                    "BLOCK", 1000, "STREAMS", key, "0" if backlog else ">")  # fmt: skip
            except Exception as error:
                if self._serving:
                    ready = not stream_lost(error)
                    backlog = True
                    if ready:
                        self._popping.failed(error)
                        # Cancelled by stopService: a stopped host leaves no timer.
                        self._backoff = deferLater(self._clock, 0.5, lambda: None)
                        with contextlib.suppress(CancelledError):
                            await self._backoff
                        self._backoff = None
                continue
            self._popping.worked()
            backlog = False
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    if entry_id in self._handled:
                        continue  # handled, its acknowledgement lost
                    if not fields:  # trimmed away while pending: nothing to take
                        self._handled.add(entry_id)
                        continue
                    text = dict(zip(fields[::2], fields[1::2], strict=True)).get("r", "")
                    d = Deferred.fromCoroutine(self._take(text))
                    d.addErrback(self._take_failed)
                    d.addBoth(self._was_handled, entry_id)

    def _was_handled(self, _: object, entry_id: str) -> None:
        self._handled.add(entry_id)

    def _take_failed(self, failure: Failure) -> None:
        if failure.check(BackendUnavailable):
            # Redis away (restarting, failing over): one line, no traceback; the lobby
            # offers the match again or gives it up by its own timeouts.
            self.log.warn("a placement request failed: {error}", error=failure.value)
        else:
            self.log.failure("a placement request failed", failure)

    async def _take(self, text: str | bytes) -> None:
        try:
            request = json.loads(text)
            match = match_from_json(request["match"])
            attempt = int(request["attempt"])
            # A refusal goes to the lobby that asked (it waits for it), no other.
            lobby_id = str(request["lobby_id"])
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a placement request: {text!r}", text=text)
            return
        if self._hosted(match.match_id):
            # A request taken before, given again by a Redis that lost the taking (a
            # replica promoted before it had it): the match runs here already.
            self.log.info("match {match_id}: a request taken already, dropped",
                          match_id=match.match_id)  # fmt: skip
            return
        # Read through the group, the request is this host's: a lobby takes back only
        # what the group has not delivered yet, or what a departed host left
        # (vinom.cluster.placement's `_WITHDRAW`). No claim of its own: no round trip.
        if match.match_id in self._hosting_now:
            # Two attempts at the match came in one pop (after a failover: the former
            # lobby's, left untaken on the promoted replica, and the one of the lobby
            # that took the match over): the first hosts it, and its `placed` reaches
            # every lobby that follows the match. If it is refused instead, this
            # attempt's lobby (which can no longer withdraw it) is told too, and offers
            # the match to the next host.
            first_refused = await self._outcome_here(match.match_id)
            if first_refused is not None:
                await self._refuse(match, attempt, lobby_id, first_refused)
                return
            self.log.info("match {match_id}: attempt {attempt} came with another, dropped",
                          match_id=match.match_id, attempt=attempt)  # fmt: skip
            return
        self._taken[match.match_id] = None
        while len(self._taken) > TAKEN_REMEMBERED:
            self._taken.popitem(last=False)
        self._hosting_now[match.match_id] = []
        refused: str | None = None
        try:
            refused = await self._host(match, attempt, lobby_id)
        finally:
            if match.match_id in self._taken:
                self._taken[match.match_id] = refused
            for waiter in self._hosting_now.pop(match.match_id):
                waiter.callback(refused)

    def _hosted(self, match_id: str) -> bool:
        """Whether this host hosted `match_id` (a request it took and did not refuse; a
        match it refused may be offered again, and taken if it can now)."""
        return (match_id in self._taken and self._taken[match_id] is None
                and match_id not in self._hosting_now)  # fmt: skip

    def _outcome_here(self, match_id: str) -> Deferred[str | None]:
        """Once the attempt at `match_id` being hosted here is decided: why this host
        refused it, or None if it did not."""
        waiter: Deferred[str | None] = Deferred()
        self._hosting_now[match_id].append(waiter)
        return waiter

    async def _host(self, match: Match, attempt: int, lobby_id: str) -> str | None:
        """Host a match whose request this host took; the reason it refused it, if it
        did."""
        if self.draining or not self._serving or self._hosting.free_ports < 1:
            reason = "draining" if self.draining else "full"
            await self._refuse(match, attempt, lobby_id, reason)
            return reason
        try:
            address = await self._hosting.host_match(
                match, on_ended=partial(self._ended, match.match_id)
            )
        except Exception as error:
            self.log.warn("match {match_id} not hosted: {error}", match_id=match.match_id,
                          error=error)  # fmt: skip
            await self._refuse(match, attempt, lobby_id, "failed")
            return "failed"
        if match.match_id not in self._ends:  # (not ended at once)
            self._running_here.add(match.match_id)
        placed = {
            "event": "placed",
            "match_id": match.match_id,
            "host_id": self.host_id,
            "address": address_json(address),
        }
        # The placement record goes with the outcome: the lobbies that follow the match
        # save nothing (one writer per match, however many lobbies hear it).
        record = MatchPlacement(match, address, self._clock.seconds())
        recorded = await decide(self._redis, self._keys, self._settings, placed, record)
        if not recorded:
            # Given up, or placed on another host first (this host paused or cut off past
            # the lobby's taking its request back; a request read twice across a
            # failover): nobody comes, it aborts at the connect deadline.
            if match.match_id in self._running_here:
                self._copies.add(match.match_id)
            self.log.warn("match {match_id} was placed too late", match_id=match.match_id)
            return None
        if match.match_id in self._running_here:
            # Recorded (acknowledged): what a promoted replica may lack (`_restore_ends`).
            self._placements[match.match_id] = (placed, record)
        self.placed += 1
        self._capacity_changed()
        return None

    async def _refuse(self, match: Match, attempt: int, lobby_id: str, reason: str) -> None:
        self.refused += 1
        await self._publish(
            lobby_id,
            {"event": "refused", "match_id": match.match_id, "attempt": attempt,
             "host_id": self.host_id, "reason": reason}
        )  # fmt: skip

    def _ended(self, match_id: str, outcome: MatchEnded | None) -> None:
        data = None if outcome is None else outcome_to_json(outcome)
        message = {"event": "ended", "match_id": match_id, "outcome": data}
        self._running_here.discard(match_id)
        self._placements.pop(match_id, None)
        if match_id in self._copies:
            # Not the match's end: it may run on another host, whose placement record,
            # game record and end to its lobbies this would overwrite.
            self._copies.discard(match_id)
            if not self.draining:
                self._capacity_changed()
            return
        if self._records is not None:
            self._records.upload(match_id)
        self._ends[match_id] = message
        while len(self._ends) > TAKEN_REMEMBERED:
            self._ends.popitem(last=False)
        d = Deferred.fromCoroutine(self._announce_end(match_id, message))
        self._ending.add(d)
        d.addBoth(lambda _: self._ending.discard(d))
        if not self.draining:
            self._capacity_changed()

    async def _announce_end(self, match_id: str, message: dict[str, Any]) -> None:
        """Tell the match's lobbies it ended; while Redis does not answer (restarting,
        or failing over to a replica), again every second for up to `stall_grace` (and
        not once this host has left the registry):
        until they hear it, they count the match as running (per-address limits, the
        drain of its players' lobbies). A repeat of an end they heard changes nothing."""
        give_up = self._clock.seconds() + self._settings.stall_grace
        while True:
            try:
                await announce_end(self._redis, self._keys, self.host_id, message)
                return
            except BackendUnavailable as error:
                if self._left or self._clock.seconds() >= give_up:
                    self.log.warn("announcing the end of {match_id} failed: {error}",
                                  match_id=match_id, error=error)  # fmt: skip
                    return
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
                message = self._ends.get(match_id)
                if message is None:
                    message = {"event": "ended", "match_id": match_id, "outcome": None}
                await announce_end(self._redis, self._keys, self.host_id, message)
            if lost:
                self.log.info("game host {host_id}: announced again the end of {count} "
                              "match(es) Redis had lost", host_id=self.host_id,
                              count=len(lost))  # fmt: skip
            held = {m.decode() if isinstance(m, bytes) else str(m) for m in members or ()}
            recent = self._clock.seconds() - self._settings.key_ttl
            for match_id, (placed, record) in sorted(self._placements.items()):
                if (match_id in held or record.placed_at <= recent
                        or match_id not in self._placements):  # (ended meanwhile)
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

    def _capacity_changed(self) -> None:
        """Register again so that lobbies see the new free capacity by their next read
        of the registry, not at the next heartbeat. At most one such update per half
        `refresh_every` (lobbies read every `refresh_every`): the changes made
        meanwhile go in one more at its end."""
        if not self._serving:
            return  # stopped: unregistered, nothing to announce
        if self._announcing:
            self._announce_again = True
            return
        self._announcing = True

        def quiet_over() -> None:
            self._quiet = None
            self._announcing = False
            if self._announce_again:
                self._announce_again = False
                self._capacity_changed()

        self.heartbeat()
        self._quiet = self._clock.callLater(self._settings.refresh_every / 2, quiet_over)

    async def _publish(self, lobby_id: str, message: Mapping[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"))
        await self._redis.run(TELL, [self._keys.events(lobby_id)], [text])
