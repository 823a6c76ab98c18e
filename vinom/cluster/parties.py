"""The Redis party store: parties shared by every lobby on one Redis.

A party's members may be connected to different lobbies. Every change is one
call of one Lua script (parties.lua beside this module), atomic in Redis, so
racing joins cannot overfill a party nor lose a member. Each change is
published on a channel that every lobby's store hears and hands to its
listeners, so each lobby tells the members it holds (`party_update`); the
caller's own lobby hears it from the script's answer at once (and ignores it
on the channel). Keys expire `party_ttl` after they were last refreshed: a
lobby refreshes the keys of the players it holds every `refresh_every`
seconds, so the parties of a lobby that died lapse. A party keeps which lobby
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
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from vinom.cluster.client import RedisClient, RedisSubscription, Script
from vinom.cluster.outage import Outage
from vinom.cluster.settings import DEFAULT_MATCHMAKER, DEFAULT_PARTIES, RedisPartySettings
from vinom.cluster.watch import guarded
from vinom.codes import new_join_code, normal_code
from vinom.errors import BackendUnavailable
from vinom.parties.interfaces import (
    MATCHED,
    UNQUEUED,
    IPartyStore,
    Party,
    PartyChange,
    PartyError,
    PartyListener,
    PartyMember,
    change_from_json,
    new_party_id,
    party_from_json,
)
from vinom.parties.memory import DEFAULT_MAX_SIZE

SCRIPT = Script.packaged("parties.lua")

# Changes a lobby remembers having told, to tell each once although it hears
# it in the script's answer and on the channel.
_REMEMBERED_CHANGES = 10_000

_MESSAGES = {
    "unknown_party": "no party with that join code",
    "already_in_party": "you are in a party already; leave it first",
    "party_full": "the party is full",
    "party_queued": "the party is queued; join once it is not",
    "not_in_party": "you are not in a party",
    "party_changed": "the party's members changed; queue again",
}


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
        self._lua = guarded(SCRIPT.source, lease_settle)
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
        async def create() -> Party:
            # A code another party holds is drawn again (rare: 31^6 codes).
            while True:
                answer = await self._call(
                    "create", new_party_id(), new_join_code(), leader.player_id, leader.name,
                    self._lobby_id, refuse_late=True,
                )  # fmt: skip
                if answer.get("error") != "code_taken":
                    break
            party = self._answered(answer)
            self._held.add(leader.player_id)
            return party

        return Deferred.fromCoroutine(create())

    def join(self, code: str, member: PartyMember) -> Deferred[Party]:
        def joined(answer: dict[str, Any]) -> Party:
            party = self._answered(answer)
            self._held.add(member.player_id)
            return party

        d = self._call(
            "join", normal_code(code), member.player_id, member.name, str(self.max_size),
            self._lobby_id, refuse_late=True,
        )  # fmt: skip
        return d.addCallback(joined)

    def leave(self, player_id: str, *, refuse_late: bool = False) -> Deferred[Party]:
        if not refuse_late:
            self._held.discard(player_id)
            return self._call("leave", player_id).addCallback(self._answered)

        def left(answer: dict[str, Any]) -> Party:
            party = self._answered(answer)
            self._held.discard(player_id)
            return party

        return self._call("leave", player_id, refuse_late=True).addCallback(left)

    def party_of(self, player_id: str) -> Deferred[Party | None]:
        def found(answer: dict[str, Any]) -> Party | None:
            party = answer.get("party")
            return None if party is None else party_from_json(party)

        return self._call("get", player_id).addCallback(found)

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
        d = self._call(
            "set_queued",
            party_id,
            game or "",
            " ".join(members),
            "" if position is None else str(position),
            MATCHED if matched else UNQUEUED,
            queue if game else "",
            # Queueing is refused late; clearing (a withdrawal) is done whenever it can be.
            refuse_late=game is not None,
        )
        return d.addCallback(self._answered)

    def add_listener(self, listener: PartyListener) -> None:
        self._listeners.append(listener)

    # -- calls and changes

    def _call(self, op: str, *arguments: str, refuse_late: bool = False) -> Deferred[Any]:
        """One call of the script. With `refuse_late` it carries a deadline: Redis refuses
        it once `bounded()` would have given up on it, and it fails as unavailable."""
        ttl = str(int(self._settings.party_ttl * 1000))
        deadline = self._redis.deadline() if refuse_late else ""
        args = [op, self._settings.prefix, ttl, deadline, *arguments]
        d = self._redis.run(self._lua, [self._settings.watch_key], args)
        return d.addCallback(self._decoded, op)

    def _decoded(self, reply: str, op: str) -> Any:
        answer = json.loads(reply)
        if isinstance(answer, dict) and answer.get("error") == "expired":
            raise BackendUnavailable(
                f"party {op}: Redis ran it after its deadline; nothing was done"
            )
        return answer

    def _answered(self, answer: dict[str, Any]) -> Party:
        """The party of a script's answer (told to the listeners first), or PartyError."""
        error = answer.get("error")
        if error is not None:
            raise PartyError(str(error), _MESSAGES.get(str(error), str(error)))
        if "seq" in answer:
            return self._tell(answer).party
        return party_from_json(answer["party"])

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

    def _refresh(self) -> Deferred[None]:
        if not self._held:
            return succeed(None)

        def refreshed(messages: Any) -> None:
            for data in messages:
                self._tell(data)

        d = self._call("refresh", *sorted(self._held))
        d.addCallback(refreshed)
        # The timer keeps running whatever fails: the next refresh tries again.
        return d.addCallbacks(lambda _: self._refreshing.worked(),
                              lambda f: self._refreshing.failed(f.value))  # fmt: skip

    def _check(self) -> Deferred[None]:
        if not self._held or self._lease_prefix is None:
            return succeed(None)

        def checked(messages: Any) -> None:
            for data in messages:
                self._tell(data)

        d = self._call("check", self._lobby_id, self._lease_prefix, *sorted(self._held))
        d.addCallback(checked)
        # The timer keeps running whatever fails: the next check tries again.
        return d.addCallbacks(lambda _: self._checking.worked(),
                              lambda f: self._checking.failed(f.value))  # fmt: skip
