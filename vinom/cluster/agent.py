"""`HostAgent`: a game-host process's end of the placement channel (vinom.cluster.placement).

It keeps the host registered and its presence connection open while the process lives, takes
its realm's placement requests while it has a free slot, hosts their matches and tells their
lobbies where each runs and how it ended: docs/scaling.md, "Placing matches on game hosts".
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
from vinom.match import Match, MatchEnded, match_from_json, outcome_to_json
from vinom.protocol.route_token import relayable
from vinom.store.interfaces import MatchPlacement

READ_DELAY = 0.05  # the longest a host waits, once a request is added, before it reads
READ_AT_ONCE = 16  # the most requests a host reads at once (each for a free slot)
TAKEN_REMEMBERED = 4096  # matches remembered as taken: a request given again is dropped
STOP_WAIT = 10.0  # the longest a stopping host waits for its games to stop


def read_delay(record: HostRecord, *, pack: bool, most: float) -> float:
    """Up to `most`: with `pack` the longer the more free slots (the busiest host reads first,
    so idle ones can be scaled down), with `spread` the fewer (the idlest reads first)."""
    if record.capacity <= 0:
        return most
    share = record.free / record.capacity
    return most * (share if pack else 1.0 - share)


class HostAgent(Service):
    """A game-host process's side of the placement channel (module docstring)."""

    log = Logger()

    def __init__(
        self, *, redis: RedisClient, registry: IHostRegistry, hosting: GameHostingService,
        public_host: str, ports: tuple[int, int], clock: IReactorTime, presence_endpoint: Any,
        host_id: str | None = None, settings: PlacementSettings = DEFAULT_PLACEMENT,
        realm: str = DEFAULT_REALM, records: RedisRecords | None = None, placement: str = "spread",
    ) -> None:  # fmt: skip
        self.host_id = host_id or "h-" + secrets.token_hex(6)
        self.realm = realm
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
        self._taken: OrderedDict[str, None] = OrderedDict()
        # Requests being taken, each holding a slot; by stream too: a relayable host's two
        # streams can give two requests added in the same millisecond the same entry id.
        self._taking: set[tuple[str, str]] = set()
        self._left = False  # set once a stop left the registry: nothing is announced after
        self._popping = Outage(self.log, clock, "taking placement requests")
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = clock
        # Open while the process lives, paused too; each new subscription: `_restore_ends`.
        self._presence = RedisSubscription(
            presence_endpoint, presence_channel(redis, self.host_id), self._heard, clock,
            redis.settings.password, catch_up=self._restore_ends, username=redis.settings.username,
        )  # fmt: skip
        self._serving = False
        self._serve_loop: Deferred[None] = succeed(None)
        self._backoff: Deferred[None] | None = None
        self._registered = False
        self.draining = False
        self._ending: set[Deferred[None]] = set()  # announcements of ends not answered yet
        self._running_here: set[str] = set()  # placed here, not ended: the host's matches set
        # For a promoted replica that lacks them (`_restore_ends`): recent ends' `ended` and
        # ranked result ('' for none), and each running match's `placed` and record.
        self._ends: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        self._placements: dict[str, tuple[dict[str, Any], MatchPlacement]] = {}
        self._copies: set[str] = set()  # hosted here but `placed` too late: nobody joins
        self._deciding: dict[str, tuple[MatchEnded | None] | None] = {}  # (`_host`, `_ended`)
        self._claim = guarded(CLAIM_SOURCE, settings.host_ttl + settings.heartbeat_every)
        self._claim_at = 0.0
        self._last_beat: Deferred[None] = succeed(None)  # the host unregisters after its answer
        self.placed = 0
        self._records = records  # copies ended matches' records to Redis (None: disk only)

    def _heard(self, text: str) -> None:
        """Being subscribed to the presence channel is what tells lobbies the host lives;
        what it carries is a lobby's word that a player of a match here was banned
        (`RemoteMatchHosting.remove_player`): they are taken out as a leaver is."""
        try:
            message = json.loads(text)
            match_id, player_id = str(message["match_id"]), str(message["remove"])
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a presence message: {text!r}", text=text[:200])
            return
        d = self._hosting.remove_player(match_id, player_id)
        d.addErrback(lambda f: self.log.failure("removing {player_id} from {match_id}", f,
                                                player_id=player_id,
                                                match_id=match_id))  # fmt: skip

    def record(self) -> HostRecord:
        """This host as it announces itself now."""
        capacity = max(self._capacity, self._hosting.free_ports)
        return HostRecord(
            host_id=self.host_id, public_host=self._public_host, ports=self._ports,
            capacity=capacity, free=0 if self.draining else min(self._hosting.free_ports, capacity),
            updated_at=self._clock.seconds(), game_url=self._hosting.game_url, realm=self.realm,
        )  # fmt: skip

    def heartbeat(self) -> Deferred[None]:
        """Register again (a draining host too: it is alive, its matches not a dead host's),
        with its matches, not copies; a failure is logged, the next heartbeat retries."""

        def registered(_: object) -> None:
            if not self._registered:
                self.log.info("game host {host_id} registered", host_id=self.host_id)
            self._registered = True

        def failed(failure: Failure) -> None:
            if self._registered:
                self.log.warn("game host {host_id}: registering failed: {error}",
                              host_id=self.host_id, error=failure.value)  # fmt: skip
            self._registered = False

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
        """Take no new matches: stay registered with no free capacity while its matches play
        on, and give back the requests it reads or claims (`_next`, `_take`)."""
        if self.draining:
            return
        self.draining = True
        self.log.info("game host {host_id} draining: takes no new matches", host_id=self.host_id)
        self.heartbeat()

    def _unregister(self) -> Deferred[None]:
        """Leave the registry: a lobby ends matches whose end was not announced."""

        def done(_: object) -> None:
            self.log.info("game host {host_id} unregistered", host_id=self.host_id)

        d = self._registry.unregister(self.host_id)
        return d.addCallbacks(done, lambda f: self.log.warn(
            "game host {host_id}: unregistering failed: {error}", host_id=self.host_id,
            error=f.value))  # fmt: skip

    def stopService(self) -> Deferred[None]:
        """Take no new match; heartbeat on (for `STOP_WAIT` at most) until the games stop and
        their ends are announced: players hear `shutdown`, never a lobby's `host_crashed`."""
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
        await DeferredList(list(self._ending))
        if self._heartbeat.running:
            self._heartbeat.stop()
        # A heartbeat still out would register the host again after it left.
        await DeferredList([self._last_beat])
        await self._serve_loop
        # Unregistered first: with its key gone, the presence closing cannot look like a death.
        await self._unregister()
        await self._presence.stop()
        self._left = True

    def _free(self) -> int:
        """Slots this host can take a request for now (none while draining or stopping)."""
        if self.draining or not self._serving:
            return 0
        return self._hosting.free_ports - len(self._taking)

    async def _serve(self) -> None:
        """Take requests while a slot is free, one per slot, so the load spreads by itself
        (docs/scaling.md, step 2); a stream or group Redis lost is made again."""
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
                    # Taken even if a later read failed: they are pending here already.
                    for key, entry_id, text in entries:
                        self._taking.add((key, entry_id))
                        d = Deferred.fromCoroutine(self._take(key, entry_id, text))
                        d.addErrback(self._take_failed)
                        d.addBoth(self._taken_now, (key, entry_id))
                self._popping.worked()
                if self.draining:
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
        """Add to `found` the next requests, one per free slot (up to `READ_AT_ONCE`), each as
        read so a later failed read loses none. First, every `claim_after / 4` and at once
        again after a find (a dead host may leave a batch), it claims one: a dead reader's or
        its own. A draining host only claims, to give back: no other host claims what it holds."""
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
            # Redis away: one line; the request stays pending, claimed after `claim_after`.
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
            # Given again (Redis lost its acknowledgement, or a failover the request and the
            # placement): its `placed` is said again unless being recorded (`_host`).
            placed = self._placements.get(match_id)
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
        # Given back when draining (a new match would hold the drain) or stopping (`_host`).
        ttl = milliseconds(self._settings.key_ttl)
        await self._redis.run(GIVE_BACK, [key], ["hosts", entry_id, text, ttl, match_id])

    async def _host(self, match: Match, request: tuple[str, str]) -> bool:
        """Host a taken request's match and record it `placed`, or `failed` if it could not
        start (its players are requeued); False if stopping: the request goes back."""
        hosted = self._hosting.host_match(match, on_ended=partial(self._ended, match))
        self._taking.discard(request)  # its port is taken (or waited for): no slot held now
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
        placed = {"event": "placed", "match_id": match.match_id, "host_id": self.host_id,
                  "address": address.to_json()}  # fmt: skip
        # Saved with the outcome, by the host: one writer per match, however many lobbies.
        record = MatchPlacement(match, address, self._clock.seconds())
        if match.match_id in self._running_here:
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
            # Withdrawn, given up, or placed elsewhere first (this host paused, or a
            # failover): nobody joins this copy. A player's leave aborts it now, as a
            # match nobody joined, so that its port is free at once, not at its connect
            # deadline.
            if match.match_id in self._running_here:
                self._copies.add(match.match_id)
                aborted = self._hosting.remove_player(match.match_id, match.players[0].player_id)
                aborted.addErrback(lambda f: self.log.warn(
                    "aborting the copy of {match_id} failed: {error}", match_id=match.match_id,
                    error=f.value))  # fmt: skip
            self.log.warn("match {match_id} was placed too late: its copy here is aborted",
                          match_id=match.match_id)  # fmt: skip
        else:
            self.placed += 1
        self._end_decided(match)
        return True

    def _end_decided(self, match: Match) -> None:
        """Pass on an end held back while the placement was being recorded (`_ended`)."""
        ended = self._deciding.pop(match.match_id, None)
        if ended is not None:
            self._ended(match, ended[0])

    def _over(self, outcome: MatchEnded) -> None:
        """A match ended, its room lingering: mark it ended so `spectate` answers
        `match_ended`. Not retried: the end's announcement (`_ended`) removes it anyway."""
        match_id = outcome.match_id
        if match_id in self._copies or match_id not in self._running_here:
            return
        self._redis.run(MARK_ENDED, ended_keys(self._redis, match_id)).addErrback(lambda _: None)

    def _ended(self, match: Match, outcome: MatchEnded | None) -> None:
        match_id = match.match_id
        if match_id in self._deciding:
            # Placement still being recorded: a copy's end must not reach the match's lobbies.
            self._deciding[match_id] = (outcome,)
            return
        data = None if outcome is None else outcome_to_json(outcome)
        message = {"event": "ended", "match_id": match_id, "outcome": data}
        self._running_here.discard(match_id)
        self._placements.pop(match_id, None)
        if match_id in self._copies:
            # Not the match's end: it may run on another host, whose placement record, game
            # record and end to its lobbies this would overwrite.
            self._copies.discard(match_id)
            return
        if self._records is not None:
            self._records.upload(match_id)
        result = encode_result(match, outcome)  # for every rating lobby (vinom.cluster.ranked)
        self._ends[match_id] = (message, result)
        while len(self._ends) > TAKEN_REMEMBERED:
            self._ends.popitem(last=False)
        d = Deferred.fromCoroutine(self._announce_end(match_id, message, result))
        self._ending.add(d)
        d.addBoth(lambda _: self._ending.discard(d))

    async def _announce_end(self, match_id: str, message: dict[str, Any], result: str) -> None:
        """Tell the match's lobbies, which count it running until then; every second while
        Redis does not answer. A serving host tries on (its end still counts after its
        departure was claimed); a stopping one for `stall_grace` at most, not once it left."""
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
        """Say again what a promoted replica lacks (replication is asynchronous): the end of
        each match in the host's matches set there that no longer runs here (else its lobbies
        count it running for good), and the `placed` of each placed within `key_ttl` that the
        set lacks (else its players split and the host's death ends nothing)."""
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
                # Not one being recorded (`_host`), which would find this outcome: a copy.
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
                    # Given up, or placed on another host meanwhile: this one is a copy now.
                    self._placements.pop(match_id, None)
                    self._copies.add(match_id)
                    self.log.warn("match {match_id}: placed elsewhere while Redis had lost "
                                  "its placement here", match_id=match_id)  # fmt: skip
        except Exception as error:
            # Not raised: the presence connection would close and the host look gone.
            self.log.warn("game host {host_id}: reading its matches after Redis came back "
                          "failed: {error}", host_id=self.host_id, error=error)  # fmt: skip
