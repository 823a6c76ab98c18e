"""Placing matches on game hosts in other processes, through Redis.

With `--redis`, lobbies and game hosts are separate processes that share
one Redis and nothing else (docs/scaling.md, "Placing matches on game hosts",
has every step, key and timeout). `RemoteMatchHosting`, here, is each lobby's
`IMatchHosting`; `HostAgent` (vinom.cluster.agent) is each host's end;
vinom.cluster.channel has the keys and scripts both use.

Every lobby that hears a match (the one that formed it and those holding its
players) calls `host_match` for it and waits for its outcome on its own stream
of placement events. The lobby that formed it places it: it claims it
(`placer:<match>`, in one call with its first request, naming the match's
lobbies as its followers); the others claim it only if they heard no outcome
`takeover_after` after the match, and a claim whose holder's lease is gone (it
died) is taken over. The placer adds the request to the stream of the least
loaded live host of its realm (with `--placement pack` the most loaded). The
host's read through its consumer group is its claim; a request it did not read
within `accept_timeout`, or read and died with, the lobby takes back
(`_WITHDRAW`) and offers to the next host. The host hosts the match and records
`placed` (or says `refused`), publishing it to the followers in the same
script; a lobby that placed nothing by 80 % of `place_timeout` records
`failed`, and any lobby that heard nothing by `place_timeout` reads the outcome
key. Why Redis and not a connection from lobby to host: a host needs no
listening port nor lobbies its address, a request waits in its stream while
the host is briefly away, and the outcome reaches every lobby of the match.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from attrs import evolve
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.cluster.channel import (
    EVENTS_TTL,
    FOLLOWERS_TTL,
    OPEN_GROUP,
    REQUESTS_KEPT,
    PlacementKeys,
    address_from,
    decide,
    stream_lost,
)
from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.hosts import DEFAULT_REALM, HostRecord, IHostRegistry
from vinom.cluster.outage import Outage
from vinom.cluster.settings import DEFAULT_PLACEMENT, PlacementSettings
from vinom.hosting.interfaces import IMatchHosting, NoHostAvailable
from vinom.match import (
    HOST_CRASHED,
    Match,
    MatchEnded,
    match_to_json,
    outcome_from_json,
)
from vinom.protocol.address import HostAddress

EndedCallback = Callable[[MatchEnded | None], object]


# Outcomes (`placed`, `failed`) a lobby heard before the match itself, kept for it.
_EARLY_OUTCOMES = 4096

# The placement events a lobby reads in one call at most.
EVENTS_PER_READ = 256

# Lua: add a request (ARGV[i]) to a host's stream (KEYS[k]), renewing its TTL (ARGV[j]).
_PUSH_LUA = f"""
local function push(k, i, j)
  local id = redis.call('XADD', KEYS[k], 'MAXLEN', '~', {REQUESTS_KEPT}, '*', 'r', ARGV[i])
  redis.call('PEXPIRE', KEYS[k], ARGV[j])
  return id
end
"""

# KEYS: a host's request stream. ARGV: the request, the stream's TTL (ms). The entry's id.
_PUSH = Script(_PUSH_LUA + "return push(1, 1, 2)")

# KEYS: a host's request stream, the host's key, the host index. ARGV: the request's
# entry id, the host id. Takes a request back (1) unless the host's group read it (0):
# delivered is taken, XREADGROUP being the host's claim, so a request is run by one
# host or by none. A request a departed host read (neither live nor in the index: its
# departure was claimed, vinom.cluster.hosts) is taken back too, acknowledged for it,
# and offered to the next host: a dead host's pending work goes to a live one.
_WITHDRAW = Script("""
local function later(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, bm = tonumber(am), tonumber(bm)
  return am > bm or (am == bm and tonumber(as) > tonumber(bs))
end
local delivered = '0-0'
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) == 'table' and not groups.err then
  for _, group in ipairs(groups) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == 'host' then delivered = fields['last-delivered-id'] end
  end
end
if not later(ARGV[1], delivered) and (redis.call('EXISTS', KEYS[2]) == 1
    or redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1) then
  return 0
end
redis.pcall('XACK', KEYS[1], 'host', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
""")

# Lua: claim the match (KEYS[1], the placer key) for this lobby (ARGV[2]) for ARGV[1]
# ms: unless another lobby holds the claim and still holds its lease (ARGV[4], the
# prefix of the lobbies' leases, `<prefix>:lobby:<lobby_id>`; '' to never take a claim
# over). A claim whose holder's lease is gone is taken over: its holder died before
# placing the match.
_CLAIM_LUA = """
local function claim()
  if redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1], 'NX') then return true end
  if ARGV[4] == '' then return false end
  local holder = redis.call('GET', KEYS[1])
  if not holder or holder == ARGV[2] then return false end
  if redis.call('EXISTS', ARGV[4] .. ':lobby:' .. holder) == 1 then return false end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
  return true
end
"""

# KEYS: the match's placer key, its followers, a host's request stream. ARGV: the TTL of
# the placer key (ms), the lobby id, the TTL of the followers (ms), the lease prefix
# (`_CLAIM_LUA`), the lobbies that follow the match, then the request ('': none) and the
# stream's TTL (ms). The claim writes who hears the match's placement events
# (vinom.cluster.channel), and the lobby's first request goes with it: one call. The
# request's entry id (1 without one), or 0 if another live lobby holds the claim.
_CLAIM_AND_PUSH = Script(
    _CLAIM_LUA
    + _PUSH_LUA
    + """
local n = #ARGV
if not claim() then return 0 end
redis.call('SADD', KEYS[2], unpack(ARGV, 5, n - 2))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[n - 1] == '' then return 1 end
return push(3, n - 1, n)
"""
)


def _stop_timers(placing: _Placing) -> None:
    for timer in (placing.timer, placing.takeover):
        if timer is not None and timer.active():
            timer.cancel()


class _Placing:
    """A match this lobby heard of and waits to see placed."""

    def __init__(self, match: Match, on_ended: EndedCallback | None, result: Deferred[HostAddress],
                 timer: IDelayedCall, heard_at: float,
                 on_waiting: Callable[[int], object] | None = None) -> None:  # fmt: skip
        self.match = match
        self.on_ended = on_ended
        self.on_waiting = on_waiting
        self.result = result
        self.timer = timer
        self.heard_at = heard_at
        # Set while the match is left to the lobby that formed it (or to the lobby
        # that holds the claim, once this lobby takes it over).
        self.takeover: IDelayedCall | None = None
        self.took_over = False
        # Refusals heard, by attempt (the placing lobby waits on them).
        self.answers: dict[int, Deferred[dict[str, Any]]] = {}


def choose_host(candidates: list[HostRecord], *, pack: bool) -> HostRecord:
    """The host a match is offered to among `candidates` (live, with free capacity, least
    loaded first): the first, or with `pack` (--placement pack) the most loaded, so that
    hosts fill one after another and idle ones can be scaled down (docs/kubernetes.md)."""
    if pack:
        return min(candidates, key=lambda h: (h.free, h.host_id))
    return candidates[0]


@implementer(IMatchHosting)
class RemoteMatchHosting(Service):
    """A lobby's `IMatchHosting` on the game hosts of the registry (module docstring).

    It reads its stream of placement events (`events`) while it runs, and hands
    each to `handle_message`.
    """

    log = Logger()
    # The host's `placed` script saves the placement record and its end removes it
    # (vinom.cluster.channel): no lobby of the match writes it.
    records_placements = True

    def __init__(
        self,
        *,
        redis: RedisClient,
        registry: IHostRegistry,
        clock: IReactorTime,
        lobby_id: str | None = None,
        settings: PlacementSettings = DEFAULT_PLACEMENT,
        formed_by: Callable[[str], str | None] | None = None,
        lobbies_of: Callable[[str], tuple[str, ...]] | None = None,
        lease_prefix: str | None = None,
        refuses: Callable[[HostRecord], str | None] | None = None,
        realm: str = DEFAULT_REALM,
        placement: str = "spread",
    ) -> None:
        self.lobby_id = lobby_id or "l-" + secrets.token_hex(6)
        # PLACEMENTS: with `pack`, the most loaded host with free capacity is offered a
        # match first, so hosts fill one after another.
        self.pack = placement == "pack"
        # The realm whose matches this lobby places: on hosts of that realm only (none
        # live: the match waits for one, its players told waiting_for_server).
        self.realm = realm
        # Why this lobby cannot use a live host (None: it can), e.g. a host it cannot
        # relay to: such a host gets no match from it, said once per host.
        self._refuses = refuses
        self._refused: set[str] = set()
        # The lobbies that heard a match (the matchmaker's `lobbies_of`): they follow it,
        # so the placing lobby names them as the hearers of its placement events.
        self._lobbies_of = lobbies_of
        # The matchmaker's prefix: the lobbies' leases are `<lease_prefix>:lobby:<id>`. A
        # lobby taking a match over claims it from a former whose lease is gone.
        self._lease_prefix = lease_prefix
        # The id of the lobby that formed a match, if known (the matchmaker's
        # `formed_by`): that lobby places it, the others take over only if it does not.
        self._formed_by = formed_by
        self._redis = redis
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._keys = PlacementKeys(redis.settings.key_prefix)
        self._placing: dict[str, _Placing] = {}
        # Placed and not ended: match id -> (host id, on_ended).
        self._running: dict[str, tuple[str, EndedCallback | None]] = {}
        # The matches channel and the placement events are two connections: a
        # match's outcome may arrive before this lobby hears of the match itself.
        self._early: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._hosts: list[HostRecord] = []
        self._refresh = LoopingCall(self.refresh_hosts)
        self._refresh.clock = clock
        self._all_ended: list[Deferred[None]] = []
        # Hosts whose life is being proven (`confirm_running`) -> the callers waiting.
        self._proving: dict[str, list[Deferred[bool]]] = {}
        # Reading the registry, every refresh_every, and this lobby's events: logged once
        # as it fails, once as it works again.
        self._reading = Outage(self.log, clock, "reading the live game hosts")
        self._hearing = Outage(self.log, clock, "reading the placement events")
        self._listening: Deferred[None] = succeed(None)
        self.placed_here = 0
        self.failed_here = 0

    @property
    def events(self) -> str:
        """This lobby's stream: the placement events of the matches it follows."""
        return self._keys.events(self.lobby_id)

    def _claim_arguments(self, match_id: str) -> list[str | int]:
        lobbies = () if self._lobbies_of is None else self._lobbies_of(match_id)
        if self.lobby_id not in lobbies:
            lobbies = (*lobbies, self.lobby_id)
        ttl = milliseconds(self._settings.key_ttl)
        leases = self._lease_prefix or ""
        return [ttl, self.lobby_id, milliseconds(FOLLOWERS_TTL), leases, *lobbies]

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
        """The live hosts of this lobby's realm as last read that take matches (not
        `silent_after`), least loaded first."""
        return list(self._hosts)

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
        result: Deferred[HostAddress] = Deferred()
        timer = self._clock.callLater(self._settings.place_timeout, self._timed_out, match_id)
        placing = _Placing(match, on_ended, result, timer, self._clock.seconds(), on_waiting)
        self._placing[match_id] = placing
        early = self._early.pop(match_id, None)
        if early is not None:
            # Placed (or given up) already, by another lobby: nothing to place.
            self._outcome(early)
            return result
        former = None if self._formed_by is None else self._formed_by(match_id)
        if former is not None and former != self.lobby_id:
            # Formed by another lobby, which places it; unless it died meanwhile.
            placing.takeover = self._clock.callLater(
                self._settings.takeover_after, self._take_over, match
            )
            return result
        self._start_placing(match)
        return result

    def _start_placing(self, match: Match) -> None:
        d = Deferred.fromCoroutine(self._maybe_place(match))
        d.addErrback(self._place_failed, match.match_id)

    def _take_over(self, match: Match) -> None:
        placing = self._placing.get(match.match_id)
        if placing is None:
            return
        if not placing.took_over:
            self.log.info("match {match_id}: not placed by the lobby that formed it yet; "
                          "claiming it", match_id=match.match_id)  # fmt: skip
        placing.takeover = None
        placing.took_over = True
        self._start_placing(match)

    def _take_over_later(self, match: Match) -> None:
        """A lobby that lost the claim of a match it takes over tries again
        `takeover_after` later (the claim goes to it once its holder's lease is gone),
        until the match's outcome is heard or its `place_timeout`."""
        placing = self._placing.get(match.match_id)
        if placing is None or not placing.took_over or self._lease_prefix is None:
            return
        placing.takeover = self._clock.callLater(
            self._settings.takeover_after, self._take_over, match
        )

    # -- services

    def startService(self) -> None:
        super().startService()
        self._refresh.start(self._settings.refresh_every, now=True)
        self._listening = Deferred.fromCoroutine(self._listen()).addErrback(
            lambda f: self.log.failure("placement events: the loop ended", f)
        )

    def stopService(self) -> Deferred[None]:
        """Stop reading the registry and the events (the read out answers within a
        second), then delete the stream: nobody reads it any more (an event added after
        this makes it again, for `EVENTS_TTL`)."""
        super().stopService()
        if self._refresh.running:
            self._refresh.stop()

        def delete(_: object) -> Deferred[None]:
            d = self._redis.bounded(self._redis.handler.delete(self.events))
            return d.addCallbacks(lambda _: None, lambda f: self.log.info(
                "deleting the placement events: {error}", error=f.value))  # fmt: skip

        listening, self._listening = self._listening, succeed(None)
        return listening.addCallback(delete)

    async def _listen(self) -> None:
        """Read this lobby's events while it runs, as they come (`XREADGROUP ... BLOCK`:
        one connection of the pool, which no other call is given meanwhile, waits up to
        a second, not the reactor), and hand each to
        `handle_message`. With `NOACK`: an event is read once; a lobby that dies with it
        unread is gone with what it would have done with it. A stream or group that
        Redis lost (a restart, a replica promoted before it had them, a stream that
        lapsed) is made again, reading what the stream holds from its start."""
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
                continue
            self._hearing.worked()
            for _, entries in reply or ():
                for _, fields in entries:
                    # (Anything but an event is refused as one: `handle_message` says so.)
                    event = dict(zip(fields[::2], fields[1::2], strict=True)).get("m", "")
                    self.handle_message(event)

    def refresh_hosts(self) -> Deferred[None]:
        """Read the live hosts (a host silent for `silent_after` gets no new match: it
        may have died) and claim the hosts that departed: the registry ends their
        matches (vinom.cluster.hosts), whichever lobby claims them first."""

        def read(hosts: list[HostRecord]) -> Deferred[list[str]]:
            silent = self._settings.silent_after
            self._hosts = [host for host in hosts
                           if host.realm == self.realm and host.silent_for <= silent
                           and self._usable(host)]  # fmt: skip
            return self._registry.claim_departed()

        def failed(failure: Failure) -> None:
            # A read the stop cut short (its connection closed under it) is no outage.
            if self.running:
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

    def confirm_running(self, match_id: str) -> Deferred[bool]:
        return Deferred.fromCoroutine(self._confirm_running(match_id))

    async def _confirm_running(self, match_id: str) -> bool:
        running = self._running.get(match_id)
        host_id = None if running is None else running[0]
        if host_id is None:
            text = await self._redis.bounded(self._redis.handler.get(self._keys.outcome(match_id)))
            placed = None if text is None else json.loads(text)
            if placed is None or placed.get("event") != "placed":
                return True  # nothing known here against it
            host_id = str(placed["host_id"])
        if await self._host_alive(host_id):
            return True
        self.log.info("match {match_id}: its game host {host_id} is gone", match_id=match_id,
                      host_id=host_id)  # fmt: skip
        # Ended here at once (the registry's `ended` for it comes in the events too,
        # and finds it ended), so that the caller sees what its end left.
        self._ended(match_id, MatchEnded(match_id, "aborted", None, HOST_CRASHED))
        return False

    def _host_alive(self, host_id: str) -> Deferred[bool]:
        """Whether the host lives (or nothing proves it dead), by one proof per host: the
        players of a host that died all reconnect at once, and wait on the same one."""
        waiter: Deferred[bool] = Deferred()
        waiting = self._proving.get(host_id)
        if waiting is not None:
            waiting.append(waiter)
        else:
            # (Waiting before the proof starts: it may be over at once.)
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
        """Proof of life: a heartbeat after the proof began (every `heartbeat_every`).
        Death: the host's registration gone and its departure claimed (by this lobby or
        another; the registry holds a departure back while Redis was lately away: the
        watch guard, and while a host whose key lapsed still holds its presence
        connection: a paused host, vinom.cluster.hosts). A host gone from the registry
        but not departed, or that does neither within `host_ttl + heartbeat_every`, is
        left be (True): the player's handshake waits or retries until it goes on."""
        step = self._settings.heartbeat_every / 5
        deadline = self._clock.seconds() + self._settings.host_ttl + self._settings.heartbeat_every
        now = await self._registry.get(host_id)
        seen = None if now is None else now.updated_at
        while True:
            if now is not None and now.updated_at != seen:
                return True
            if now is None:
                await self._registry.claim_departed()
                # Gone from the registry and not departed: paused (its presence
                # connection open) or held back by the watch guard; left be at once.
                return not await self._registry.departed(host_id)
            if self._clock.seconds() >= deadline:
                return True
            await deferLater(self._clock, step, lambda: None)
            now = await self._registry.get(host_id)

    # -- the events

    def handle_message(self, text: str) -> None:
        """One placement event of this lobby's stream. Heard twice changes nothing."""
        try:
            message = json.loads(text)
            event = message["event"]
            match_id = str(message["match_id"])
            if event in ("placed", "failed"):
                if match_id in self._placing:
                    self._outcome(message)
                else:
                    self._heard_early(match_id, message)
            elif event == "refused":
                placing = self._placing.get(match_id)
                waiter = None if placing is None else placing.answers.get(int(message["attempt"]))
                if waiter is not None and not waiter.called:
                    waiter.callback(message)
            elif event == "ended":
                outcome = message.get("outcome")
                self._ended(match_id, None if outcome is None else outcome_from_json(outcome))
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a placement message: {text!r}", text=text)

    def _outcome(self, message: Mapping[str, Any]) -> None:
        match_id = str(message["match_id"])
        if message["event"] == "placed":
            self._placed(match_id, str(message["host_id"]), address_from(message["address"]))
        else:
            self._failed(match_id, str(message.get("reason", "")))

    def _heard_early(self, match_id: str, message: dict[str, Any]) -> None:
        """An outcome of a match this lobby is not placing: kept in case it hears the
        match later (checked now, so that a malformed message is refused at once)."""
        if message["event"] == "placed":
            str(message["host_id"])
            address_from(message["address"])
        self._early[match_id] = message
        while len(self._early) > _EARLY_OUTCOMES:
            self._early.popitem(last=False)

    def _placed(self, match_id: str, host_id: str, address: HostAddress) -> None:
        placing = self._placing.pop(match_id, None)
        if placing is None:
            return
        _stop_timers(placing)
        for waiter in placing.answers.values():
            if not waiter.called:
                waiter.callback({"event": "placed"})
        self._running[match_id] = (host_id, placing.on_ended)
        placing.result.callback(address)

    def _failed(self, match_id: str, reason: str) -> None:
        placing = self._placing.pop(match_id, None)
        if placing is None:
            return
        _stop_timers(placing)
        for waiter in placing.answers.values():
            if not waiter.called:
                waiter.callback({"event": "failed"})
        placing.result.errback(NoHostAvailable(reason or "no game host took the match"))
        self._check_all_ended()

    def _ended(self, match_id: str, outcome: MatchEnded | None) -> None:
        running = self._running.pop(match_id, None)
        if running is None:
            return
        _, on_ended = running
        if on_ended is not None:
            try:
                on_ended(outcome)
            except Exception:
                self.log.failure("on_ended failed for {match_id}", match_id=match_id)
        self._check_all_ended()

    def _check_all_ended(self) -> None:
        if not self.matches and self._all_ended:
            waiters, self._all_ended = self._all_ended, []
            for waiter in waiters:
                waiter.callback(None)

    def _timed_out(self, match_id: str) -> None:
        """Nothing heard in time: `failed` is recorded unless an outcome is (the first
        decides), and the outcome key says what became of the match. Recorded, not only
        read: a host that read the request and was paused past this timeout (not
        departed: the request stays its own) would record `placed` when it goes on, for
        players told `no_host`, and to the lobbies of the match still waiting; so its
        `placed` comes too late, as every lobby's timeout agrees."""
        if match_id not in self._placing:
            return
        failed = {"event": "failed", "match_id": match_id,
                  "reason": "no game host took the match in time"}  # fmt: skip

        def reread(recorded: bool) -> Deferred[str | None]:
            if recorded:
                return succeed(json.dumps(failed))
            return self._redis.bounded(self._redis.handler.get(self._keys.outcome(match_id)))

        def read(text: str | None) -> None:
            message = None if text is None else json.loads(text)
            if message is not None and message.get("event") == "placed":
                self._placed(match_id, str(message["host_id"]), address_from(message["address"]))
            else:
                self._failed(match_id, "no game host took the match in time")

        def unreadable(failure: Failure) -> None:
            self._failed(match_id, f"the placement could not be read: {failure.value}")

        d = decide(self._redis, self._keys, self._settings, failed)
        d.addCallback(reread).addCallback(read).addErrback(unreadable)

    # -- placing (the lobby that claimed the match)

    async def _maybe_place(self, match: Match) -> None:
        placing = self._placing.get(match.match_id)
        if placing is None:
            return
        # Leave the other lobbies time to hear the outcome before their own timeouts.
        deadline = placing.heard_at + self._settings.place_timeout * 0.8
        tried: set[str] = set()
        claimed = False
        # A lobby taking the match over numbers its attempts after the former's: a
        # request the former left in a host's list is never confused with its own.
        first = self._settings.hosts_tried if placing.took_over else 0
        for attempt in range(first, first + self._settings.hosts_tried):
            if match.match_id not in self._placing:
                return  # placed (heard in the events)
            host = await self._pick_host(tried)
            if host is None and not tried:
                host = await self._wait_for_host(placing, deadline)
            if host is None or self._clock.seconds() >= deadline:
                break
            tried.add(host.host_id)
            offered = await self._offer(match, host, attempt, deadline, claim=not claimed)
            if offered is None:
                # Another lobby places it; its events (or the timeout) tells us.
                self._take_over_later(match)
                return
            claimed = True
            if offered:
                return
        if not claimed and not await self._claim(match):
            self._take_over_later(match)
            return
        await self._give_up(match, "no game host took the match" if tried
                            else "no live game host with free capacity")  # fmt: skip

    async def _wait_for_host(self, placing: _Placing, deadline: float) -> HostRecord | None:
        """No live host with free capacity: wait up to `host_wait` for one (re-reading
        the registry every `refresh_every`), its players told waiting_for_server, as a
        match waits for a free port in one process; rather than fail the match and
        form it again at once, as often as the players can be matched."""
        until = min(deadline, self._clock.seconds() + self._settings.host_wait)
        if placing.on_waiting is not None:
            try:
                placing.on_waiting(1)
            except Exception:
                self.log.failure("on_waiting failed for {match_id}",
                                 match_id=placing.match.match_id)  # fmt: skip
        while self._clock.seconds() < until:
            await deferLater(self._clock, self._settings.refresh_every, lambda: None)
            if placing.match.match_id not in self._placing:
                return None  # placed or failed meanwhile (heard in the events)
            await self.refresh_hosts()
            host = await self._pick_host(set())
            if host is not None:
                return host
        return None

    def _claim(self, match: Match) -> Deferred[bool]:
        """`SET placer:<match> NX`: whether this lobby is the one that places the match."""
        match_id = match.match_id
        keys = [self._keys.placer(match_id), self._keys.followers(match_id), ""]
        arguments = [*self._claim_arguments(match_id), "", 0]
        return self._redis.run(_CLAIM_AND_PUSH, keys, arguments).addCallback(bool)

    async def _pick_host(self, tried: set[str]) -> HostRecord | None:
        if not self._hosts:
            await self.refresh_hosts()
        candidates = [h for h in self._hosts if h.free > 0 and h.host_id not in tried]
        if not candidates:
            return None
        best = choose_host(candidates, pack=self.pack)
        # Count the match against the host until its next heartbeat says otherwise.
        self._hosts = [evolve(h, free=h.free - 1) if h is best else h for h in self._hosts]
        self._hosts.sort(key=lambda record: (-record.free, record.host_id))
        return best

    async def _offer(self, match: Match, host: HostRecord, attempt: int, deadline: float,
                     *, claim: bool) -> bool | None:  # fmt: skip
        """Offer the match to one host (with `claim`, claiming the match in the same call);
        whether it was placed (or failed for good), None if another lobby holds the claim."""
        placing = self._placing.get(match.match_id)
        if placing is None:
            return True
        answer: Deferred[dict[str, Any]] = Deferred()
        placing.answers[attempt] = answer
        request = json.dumps({"match": match_to_json(match), "attempt": attempt,
                              "lobby_id": self.lobby_id})  # fmt: skip
        requests = self._keys.requests(host.host_id)
        ttl = milliseconds(self._settings.key_ttl)
        if claim:
            match_id = match.match_id
            keys = [self._keys.placer(match_id), self._keys.followers(match_id), requests]
            arguments = [*self._claim_arguments(match_id), request, ttl]
            entry = await self._redis.run(_CLAIM_AND_PUSH, keys, arguments)
            if not entry:
                placing.answers.pop(attempt, None)
                return None
        else:
            entry = await self._redis.run(_PUSH, [requests], [request, ttl])
        withdraw = [requests, self._keys.host(host.host_id), self._keys.hosts]
        while True:
            left = max(0.0, deadline - self._clock.seconds())
            heard = await self._within(answer, min(self._settings.accept_timeout, left))
            if heard is not None:
                break
            # Not answered in time: take the request back unless the host read it; and
            # (asked again every accept_timeout) once the host that read it departed.
            if await self._redis.run(_WITHDRAW, withdraw, [entry, host.host_id]):
                self.log.info("game host {host_id} did not take match {match_id} in time",
                              host_id=host.host_id, match_id=match.match_id)  # fmt: skip
                return False
            if self._clock.seconds() >= deadline:
                # Never offered to another host while its host lives (it could run twice):
                # the timeout of every lobby reads the outcome key.
                return True
        if heard.get("event") == "refused":
            return False
        if heard.get("event") == "placed":
            self.placed_here += 1
        return True

    def _within(self, answer: Deferred[dict[str, Any]], seconds: float
                ) -> Deferred[dict[str, Any] | None]:  # fmt: skip
        """`answer`'s message, or None after `seconds`."""
        result: Deferred[dict[str, Any] | None] = Deferred()

        def expired() -> None:
            if not result.called:
                result.callback(None)

        timer = self._clock.callLater(seconds, expired)

        def heard(message: dict[str, Any]) -> dict[str, Any]:
            if timer.active():
                timer.cancel()
            if not result.called:
                result.callback(message)
            # Kept: the answer may come after this wait ran out, to the next one.
            return message

        answer.addCallback(heard)
        return result

    async def _give_up(self, match: Match, reason: str) -> None:
        failed = {"event": "failed", "match_id": match.match_id, "reason": reason}
        recorded = await decide(self._redis, self._keys, self._settings, failed)
        if not recorded:
            return  # a host placed it at the last moment: its message says where
        self.failed_here += 1
        self.log.warn("match {match_id} not placed: {reason}", match_id=match.match_id,
                      reason=reason)  # fmt: skip

    def _place_failed(self, failure: Failure, match_id: str) -> None:
        # Redis failed under the placing lobby: every lobby's timeout reads the outcome.
        self.log.warn("placing {match_id} failed: {error}", match_id=match_id,
                      error=failure.value)  # fmt: skip
