"""The Redis party store: parties shared by every lobby on one Redis.

A party's members may be connected to different lobbies. The party rule is
Python (vinom.parties.rules, which the in-memory store runs too): each change
reads the keys it needs, runs the rule on what it read and writes the step
it decides with checked.lua (vinom.cluster.checked), which Redis runs
atomically and which writes nothing if any key read has changed since; the
change is then read and decided again. So racing joins cannot overfill a
party nor lose a member. Each change is
published on a channel that every lobby's store hears and hands to its
listeners, so each lobby tells the members it holds (`party_update`); the
caller's own lobby hears it from the script's answer at once (and ignores it
on the channel). Keys expire `party_ttl` after they were last refreshed: a
lobby refreshes the keys of the players it holds every `refresh_every`
seconds, so the parties of a lobby that died lapse, and takes out of their
party the members whose keys have lapsed. A party keeps which lobby
holds each member; every `check_every` seconds each lobby looks at the
parties of its players, and a member whose lobby's lease has lapsed (it died:
vinom/cluster/matchmaker.py) is taken out of their party (told as `left`),
which withdraws the party's ticket. Until then the matchmaker script passes
over a party's ticket while any member's lobby is not live. Messages
published while a lobby's channel connection is down are lost to it (its
members see the party as it is on their next request). docs/scaling.md lists the keys.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar, cast

from attrs import evolve, frozen
from twisted.internet.defer import Deferred, FirstError, ensureDeferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from vinom.cluster.checked import CHANGED, EXPIRED, UNSETTLED, Snapshot, checked_script
from vinom.cluster.client import RedisClient, RedisSubscription
from vinom.cluster.outage import Outage
from vinom.cluster.settings import DEFAULT_MATCHMAKER, DEFAULT_PARTIES, RedisPartySettings
from vinom.codes import new_join_code, normal_code
from vinom.errors import BackendUnavailable
from vinom.parties import rules
from vinom.parties.interfaces import (
    IPartyStore,
    Party,
    PartyChange,
    PartyError,
    PartyListener,
    PartyMember,
    change_from_json,
    change_to_json,
    new_party_id,
    party_from_json,
)
from vinom.parties.memory import DEFAULT_MAX_SIZE

T = TypeVar("T")

# Changes a lobby remembers having told, to tell each once although it hears
# it in the script's answer and on the channel.
_REMEMBERED_CHANGES = 10_000

# The attempts at one change whose keys other lobbies keep changing under it.
_ATTEMPTS = 8

# A party's hash: its fields as read, and the one every write moves.
_FIELDS = ("code", "members", "queued_for", "queue", "lobbies")
_VERSION = "v"


@frozen
class _Read:
    """A party as read from Redis: which lobby holds each member (where known) and the
    version its hash had."""

    party: Party
    lobbies: dict[str, str]
    version: int


class _Changed(Exception):
    """Another lobby changed what a change read: read and decide again."""


@implementer(IPartyStore)
class RedisPartyStore:
    """One lobby's view of the shared parties.

    `redis` is the process's `RedisClient` (its calls are bounded by its
    timeout: with Redis down they fail with `BackendUnavailable`);
    `subscription_endpoint` reaches the same Redis for the changes channel.
    `lobby_id` is the id of the lobby this store serves (its matchmaker's), kept
    with each member it holds: the matchmaker publishes a party's match to the
    lobby of each member, so a member held by another lobby than the leader's
    hears their match only with it; with `lease_prefix`, the matchmaker's prefix
    (the lobbies' leases are its `:lobby:<lobby_id>` keys), the store takes
    out of their parties, every `check_every`, the members held by a lobby
    whose lease has lapsed.
    Call `start()` before use and `stop()` at shutdown.
    """

    log = Logger()

    def __init__(
        self,
        redis: RedisClient,
        subscription_endpoint: Any,
        clock: IReactorTime,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        settings: RedisPartySettings | None = None,
        password: str | None = None,
        username: str | None = None,
        lobby_id: str = "",
        lease_prefix: str | None = None,
        lease_settle: float = DEFAULT_MATCHMAKER.lobby_lease + DEFAULT_MATCHMAKER.tick_every,
    ) -> None:
        if max_size < 1:
            raise ValueError("a party's max_size must be at least 1")
        self.max_size = max_size
        self._redis = redis
        self._clock = clock
        self._settings = settings or DEFAULT_PARTIES
        self._listeners: list[PartyListener] = []
        self._told: OrderedDict[int, None] = OrderedDict()
        # The players whose party keys this lobby refreshes.
        self._held: set[str] = set()
        self._subscription = RedisSubscription(
            subscription_endpoint,
            f"{self._settings.prefix}:changes",
            self._heard,
            clock,
            password,
            username=username,
        )
        self._stopped: Deferred[None] | None = None
        self._refresher = LoopingCall(self._refresh)
        self._refresher.clock = clock
        # The lobby this store serves (kept with each member it holds) and the
        # prefix of the lobbies' leases (`<lease_prefix>:lobby:<lobby_id>`, the
        # matchmaker's): with both, members held by a lobby whose lease lapsed are
        # taken out of their parties.
        self._lobby_id = lobby_id
        self._lease_prefix = lease_prefix
        # A lapsed lease counts once Redis has been watched this long (vinom.cluster.watch).
        self._lua = checked_script(lease_settle)
        # Each logged once as it fails, once as it works again.
        self._refreshing = Outage(self.log, clock, "refreshing parties")
        self._checking = Outage(self.log, clock, "checking parties")
        self._checker = LoopingCall(self._check)
        self._checker.clock = clock

    # -- lifecycle

    def start(self) -> Deferred[Any]:
        """Subscribe to the changes channel and start refreshing; fires once subscribed."""
        self._subscription.start()
        self._refresher.start(self._settings.refresh_every, now=False)
        if self._lobby_id and self._lease_prefix is not None:
            self._checker.start(self._settings.check_every, now=False)
        return self._subscription.when_subscribed()

    def stop(self) -> Deferred[None]:
        if self._refresher.running:
            self._refresher.stop()
        if self._checker.running:
            self._checker.stop()
        if self._stopped is None:
            self._stopped = self._subscription.stop()
        d: Deferred[None] = Deferred()

        def stopped(result: object) -> object:
            d.callback(None)
            return result

        self._stopped.addBoth(stopped)
        return d

    # -- IPartyStore

    def create(self, leader: PartyMember) -> Deferred[Party]:
        async def decide(snapshot: Snapshot) -> _Plan:
            own = await self._own(snapshot, leader.player_id)
            # A code another party holds is drawn again (rare: 31^6 codes).
            code = new_join_code()
            while await snapshot.get(self._code_key(code)) is not None:
                code = new_join_code()
            step = rules.create(_party(own), new_party_id(), code, leader)
            return self._planned(step, None)

        return self._changing("create", decide, refuse_late=True, holds=leader.player_id)

    def join(self, code: str, member: PartyMember) -> Deferred[Party]:
        async def decide(snapshot: Snapshot) -> _Plan:
            party_id = await snapshot.get(self._code_key(normal_code(code)))
            read = None if party_id is None else await self._read(snapshot, party_id)
            own = await self._own(snapshot, member.player_id)
            step = rules.join(_party(read), _party(own), member, self.max_size)
            return self._planned(step, read)

        return self._changing("join", decide, refuse_late=True, holds=member.player_id)

    def leave(self, player_id: str, *, refuse_late: bool = False) -> Deferred[Party]:
        async def decide(snapshot: Snapshot) -> _Plan:
            own = await self._own(snapshot, player_id)
            return self._planned(rules.leave(_party(own), player_id), own)

        if not refuse_late:
            self._held.discard(player_id)
            return self._changing("leave", decide)

        def left(party: Party) -> Party:
            self._held.discard(player_id)
            return party

        return self._changing("leave", decide, refuse_late=True).addCallback(left)

    def party_of(self, player_id: str) -> Deferred[Party | None]:
        async def find() -> Party | None:
            return _party(await self._own(Snapshot(self._redis), player_id))

        return Deferred.fromCoroutine(find())

    def set_queued(
        self,
        party_id: str,
        game: str | None,
        members: tuple[str, ...] = (),
        position: int | None = None,
        *,
        matched: bool = False,
        queue: str = "normal",
    ) -> Deferred[Party]:
        async def decide(snapshot: Snapshot) -> _Plan:
            read = await self._read(snapshot, party_id)
            step = rules.set_queued(
                _party(read), game, members, position, matched=matched, queue=queue
            )
            return self._planned(step, read)

        # Queueing is refused late; clearing (a withdrawal) is done whenever it can be.
        return self._changing("set_queued", decide, refuse_late=game is not None)

    def add_listener(self, listener: PartyListener) -> None:
        self._listeners.append(listener)

    # -- reading, deciding, writing

    def _party_key(self, party_id: str) -> str:
        return f"{self._settings.prefix}:{party_id}"

    def _code_key(self, code: str) -> str:
        return f"{self._settings.prefix}:code:{code}"

    def _of_key(self, player_id: str) -> str:
        return f"{self._settings.prefix}:of:{player_id}"

    async def _read(self, snapshot: Snapshot, party_id: str) -> _Read | None:
        """The party `party_id` (None if it is gone)."""
        values = await snapshot.fields(self._party_key(party_id), _FIELDS, _VERSION)
        code, members, queued_for, queue, lobbies = (values[name] for name in _FIELDS)
        if code is None or members is None:
            return None
        party = party_from_json({
            "party_id": party_id, "code": code, "members": json.loads(members),
            "queued_for": queued_for, "queue": queue,
        })  # fmt: skip
        held_by = json.loads(lobbies) if lobbies else {}
        return _Read(party, held_by, int(values[_VERSION] or 0))

    async def _own(self, snapshot: Snapshot, player_id: str) -> _Read | None:
        """The player's party. (A member key whose party is gone, or does not list
        them, as after Redis lost keys, does not count.)"""
        party_id = await snapshot.get(self._of_key(player_id))
        read = None if party_id is None else await self._read(snapshot, party_id)
        if read is None or player_id not in read.party.player_ids:
            return None
        return read

    def _planned(self, step: rules.Step, before: _Read | None) -> _Plan:
        """The writes and the change of the rule's `step` on the party read as `before`."""
        if step.event is None:
            return _Plan(step.party)
        change = PartyChange(step.party, step.event, step.player_id, step.position)
        writes = self._party_writes(step.party, before, joined=step.joined,
                                    left=() if step.left is None else (step.left,))  # fmt: skip
        return _Plan(step.party, writes, (change,))

    def _party_writes(
        self,
        party: Party,
        before: _Read | None,
        *,
        joined: str | None = None,
        left: tuple[str, ...] = (),
        drop_left: bool = True,
    ) -> list[tuple[object, ...]]:
        """Write `party` as it is after a step (no members: delete it), moving its
        version: the member keys of those who `joined` and (`drop_left`) `left`, the
        party's hash, and its code's key."""
        ttl = self._ttl_ms()
        lobbies = dict(before.lobbies) if before is not None else {}
        writes: list[tuple[object, ...]] = []
        for player_id in left:
            lobbies.pop(player_id, None)
            if drop_left:
                writes.append(("DEL", self._of_key(player_id)))
        if joined is not None:
            if self._lobby_id:
                lobbies[joined] = self._lobby_id
            writes.append(("SET", self._of_key(joined), party.party_id, "PX", ttl))
        key = self._party_key(party.party_id)
        if not party.members:
            writes.append(("DEL", key, self._code_key(party.code)))
            return writes
        members = [[m.player_id, m.name] for m in party.members]
        writes.append((
            "HSET", key, "code", party.code, "members", _json(members),
            "queued_for", party.queued_for or "", "queue", party.queue or "",
            "lobbies", _json(lobbies), _VERSION, (before.version if before else 0) + 1,
        ))  # fmt: skip
        writes.append(("PEXPIRE", key, ttl))
        writes.append(("SET", self._code_key(party.code), party.party_id, "PX", ttl))
        return writes

    def _ttl_ms(self) -> int:
        return int(self._settings.party_ttl * 1000)

    def _changing(
        self,
        op: str,
        decide: Callable[[Snapshot], Awaitable[_Plan]],
        *,
        refuse_late: bool = False,
        holds: str | None = None,
    ) -> Deferred[Party]:
        async def change() -> Party:
            # (Only the timers' changes answer with no party.)
            party = cast(Party, await self._change(op, decide, refuse_late=refuse_late))
            if holds is not None:
                self._held.add(holds)
            return party

        return Deferred.fromCoroutine(change())

    async def _change(
        self, op: str, decide: Callable[[Snapshot], Awaitable[_Plan]], *, refuse_late: bool
    ) -> Party | None:
        """Read, decide and write one change, again while other lobbies change what it read
        (the party, or PartyError). With `refuse_late` each write carries a deadline:
        Redis refuses it once `bounded()` would have given up on it, and it fails as
        unavailable, having done nothing."""
        for _ in range(_ATTEMPTS):
            snapshot = Snapshot(self._redis)
            try:
                plan = await decide(snapshot)
            except PartyError:
                # Refused on what several reads said: they must have held together.
                if len(snapshot.checks) > 1:
                    answer = await self._commit(op, snapshot, _Plan(None), refuse_late)
                    if answer == CHANGED:
                        continue
                raise
            if not plan.writes:
                return plan.party
            answer = await self._commit(op, snapshot, plan, refuse_late)
            if answer == CHANGED:
                continue
            if answer != UNSETTLED:
                for message in answer:
                    self._tell(json.loads(message))
            return plan.party
        raise BackendUnavailable(
            f"party {op}: other lobbies changed the party {_ATTEMPTS} times while this one "
            "tried; nothing was done"
        )

    async def _commit(self, op: str, snapshot: Snapshot, plan: _Plan, refuse_late: bool) -> Any:
        prefix = self._settings.prefix
        answer = await snapshot.commit(
            self._lua, self._settings.watch_key, plan.writes,
            [_json(change_to_json(change)) for change in plan.changes],
            counter=f"{prefix}:seq", channel=f"{prefix}:changes",
            deadline=self._redis.deadline() if refuse_late else "", judged=plan.judged,
        )  # fmt: skip
        if answer == EXPIRED:
            raise BackendUnavailable(
                f"party {op}: Redis ran it after its deadline; nothing was done"
            )
        return answer

    # -- changes heard

    def _heard(self, message: str) -> None:
        try:
            data = json.loads(message)
            if int(data["seq"]) in self._told:
                return
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a party change: {message!r}", message=message)
            return
        self._tell(data)

    def _tell(self, data: dict[str, Any]) -> PartyChange:
        change = change_from_json(data)
        seq = int(data["seq"])
        if seq in self._told:
            return change
        self._told[seq] = None
        while len(self._told) > _REMEMBERED_CHANGES:
            self._told.popitem(last=False)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                # One failing listener must not keep the change from the others.
                self.log.failure("party listener failed for {party_id}",
                                 party_id=change.party.party_id)  # fmt: skip
        return change

    # -- members whose lobby is gone

    async def _parties_held(self) -> list[str]:
        """The parties of the players this lobby holds; their member keys live on."""
        held = sorted(self._held)
        redis = self._redis
        ids = await _each(redis.bounded(redis.handler.get(self._of_key(p))) for p in held)
        ttl = self._ttl_ms()
        await _each(
            redis.bounded(redis.handler.execute_command("PEXPIRE", self._of_key(p), ttl))
            for p, party_id in zip(held, ids, strict=True) if party_id is not None
        )  # fmt: skip
        return sorted({str(party_id) for party_id in ids if party_id is not None})

    def _refresh(self) -> Deferred[None]:
        """The keys of the players this lobby holds, and their parties', live on; a member
        whose key has lapsed (their lobby died) is taken out of their party."""
        if not self._held:
            return succeed(None)

        async def refresh() -> None:
            for party_id in await self._parties_held():
                await self._change("refresh", partial(self._lapsed, party_id), refuse_late=False)

        d = Deferred.fromCoroutine(refresh())
        # The timer keeps running whatever fails: the next refresh tries again.
        return d.addCallbacks(lambda _: self._refreshing.worked(),
                              lambda f: self._refreshing.failed(f.value))  # fmt: skip

    async def _lapsed(self, party_id: str, snapshot: Snapshot) -> _Plan:
        read = await self._read(snapshot, party_id)
        if read is None:
            return _Plan(None)
        members = read.party.player_ids
        theirs = await _each(snapshot.get(self._of_key(p)) for p in members)
        lapsed = tuple(p for p, at in zip(members, theirs, strict=True) if at != party_id)
        if not lapsed:
            ttl = self._ttl_ms()
            return _Plan(None, [("PEXPIRE", self._party_key(party_id), ttl),
                                ("PEXPIRE", self._code_key(read.party.code), ttl)])  # fmt: skip
        # Their keys lapsed or name another party: they stay as they are.
        return self._taken_out(read, lapsed, drop_keys=False)

    def _taken_out(self, read: _Read, players: tuple[str, ...], *, drop_keys: bool) -> _Plan:
        """`players` leave the party read as `read`, each told as `left`."""
        party, changes = read.party, []
        for player_id in players:
            step = rules.leave(party, player_id)
            party = step.party
            changes.append(PartyChange(party, step.event or "", player_id))
        writes = self._party_writes(party, read, left=players, drop_left=drop_keys)
        return _Plan(None, writes, tuple(changes))

    def _check(self) -> Deferred[None]:
        """A member held by a lobby whose lease has lapsed (it died) is taken out of their
        party, as if they had left; once Redis has been watched for a lease and a tick
        (the watch guard: after a failover or a restart every lease has lapsed, and
        nobody is taken out)."""
        if not self._held or self._lease_prefix is None:
            return succeed(None)

        async def check() -> None:
            for party_id in await self._parties_held():
                await self._change("check", partial(self._dead, party_id), refuse_late=False)

        d = Deferred.fromCoroutine(check())
        # The timer keeps running whatever fails: the next check tries again.
        return d.addCallbacks(lambda _: self._checking.worked(),
                              lambda f: self._checking.failed(f.value))  # fmt: skip

    async def _dead(self, party_id: str, snapshot: Snapshot) -> _Plan:
        read = await self._read(snapshot, party_id)
        if read is None:
            return _Plan(None)
        members = read.party.player_ids
        held_by = {read.lobbies[p] for p in members if read.lobbies.get(p)}
        others = sorted(held_by - {self._lobby_id})
        leases = await _each(snapshot.get(f"{self._lease_prefix}:lobby:{o}") for o in others)
        dead = {lobby for lobby, lease in zip(others, leases, strict=True) if lease is None}
        if not dead:
            return _Plan(None)
        gone = tuple(p for p in members if read.lobbies.get(p) in dead)
        plan = self._taken_out(read, gone, drop_keys=False)
        # Their member keys go too, where they still name this party.
        theirs = await _each(snapshot.get(self._of_key(p)) for p in gone)
        drop = [
            ("DEL", self._of_key(p)) for p, at in zip(gone, theirs, strict=True) if at == party_id
        ]
        return evolve(plan, writes=(*drop, *plan.writes), judged=True)


@frozen
class _Plan:
    """What a change decided: the party the call answers with (None for the timers'), the
    writes to make and the changes to tell; `judged`: it judges a death (vinom.cluster.watch)."""

    party: Party | None
    writes: Sequence[tuple[object, ...]] = ()
    changes: tuple[PartyChange, ...] = ()
    judged: bool = False


def _party(read: _Read | None) -> Party | None:
    return None if read is None else read.party


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


async def _each(calls: Iterable[Coroutine[Any, Any, T] | Deferred[T]]) -> list[T]:
    """Every call's result, the calls made at once; the first failure as it is."""
    d: Deferred[list[T]] = gatherResults(
        [ensureDeferred(call) for call in calls],
        consumeErrors=True,
    )
    try:
        return await d
    except FirstError as error:
        error.subFailure.raiseException()
        raise
