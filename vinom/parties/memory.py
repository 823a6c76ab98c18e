"""The in-memory party store: the parties of one lobby process.

Listeners are told of each change before the call's Deferred fires. Lobbies
that share players keep their parties in Redis (vinom.cluster.parties).
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import evolve
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from vinom.codes import new_join_code, normal_code
from vinom.parties.interfaces import (
    ALREADY_IN_PARTY,
    CREATED,
    JOINED,
    LEFT,
    MATCHED,
    NOT_IN_PARTY,
    PARTY_CHANGED,
    PARTY_FULL,
    PARTY_QUEUED,
    QUEUED,
    UNKNOWN_PARTY,
    UNQUEUED,
    IPartyStore,
    Party,
    PartyChange,
    PartyError,
    PartyListener,
    PartyMember,
    new_party_id,
)

DEFAULT_MAX_SIZE = 8


@implementer(IPartyStore)
class MemoryPartyStore:
    """Parties by id, by join code and by member; at most `max_size` members each."""

    log = Logger()

    def __init__(
        self,
        max_size: int = DEFAULT_MAX_SIZE,
        *,
        new_id: Callable[[], str] = new_party_id,
        new_code: Callable[[], str] = new_join_code,
    ) -> None:
        if max_size < 1:
            raise ValueError("a party's max_size must be at least 1")
        self.max_size = max_size
        self._new_id = new_id
        self._new_code = new_code
        self._parties: dict[str, Party] = {}
        self._by_code: dict[str, str] = {}
        self._by_player: dict[str, str] = {}
        self._listeners: list[PartyListener] = []

    def create(self, leader: PartyMember) -> Deferred[Party]:
        if leader.player_id in self._by_player:
            return fail(PartyError(ALREADY_IN_PARTY, "you are in a party already; leave it first"))
        code = self._new_code()
        while code in self._by_code:
            code = self._new_code()
        party = Party(self._new_id(), code, (leader,))
        self._by_code[code] = party.party_id
        self._by_player[leader.player_id] = party.party_id
        return succeed(self._changed(party, CREATED, leader.player_id))

    def join(self, code: str, member: PartyMember) -> Deferred[Party]:
        party_id = self._by_code.get(normal_code(code))
        if party_id is None:
            return fail(PartyError(UNKNOWN_PARTY, "no party with that join code"))
        if member.player_id in self._by_player:
            return fail(PartyError(ALREADY_IN_PARTY, "you are in a party already; leave it first"))
        party = self._parties[party_id]
        if len(party.members) >= self.max_size:
            return fail(PartyError(PARTY_FULL, f"the party has its {self.max_size} members"))
        if party.queued_for is not None:
            return fail(PartyError(PARTY_QUEUED, "the party is queued; join once it is not"))
        self._by_player[member.player_id] = party_id
        party = evolve(party, members=(*party.members, member))
        return succeed(self._changed(party, JOINED, member.player_id))

    def leave(self, player_id: str, *, refuse_late: bool = False) -> Deferred[Party]:
        # Done at once: never late.
        party_id = self._by_player.pop(player_id, None)
        if party_id is None:
            return fail(PartyError(NOT_IN_PARTY, "you are not in a party"))
        party = self._parties[party_id]
        members = tuple(m for m in party.members if m.player_id != player_id)
        party = evolve(party, members=members, queued_for=None, queue=None)
        if not members:
            del self._parties[party_id]
            del self._by_code[party.code]
        return succeed(self._changed(party, LEFT, player_id))

    def party_of(self, player_id: str) -> Deferred[Party | None]:
        party_id = self._by_player.get(player_id)
        return succeed(None if party_id is None else self._parties[party_id])

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
        party = self._parties.get(party_id)
        if party is None:
            return fail(PartyError(UNKNOWN_PARTY, "the party is gone"))
        if game is not None and tuple(members) != party.player_ids:
            return fail(PartyError(PARTY_CHANGED, "the party's members changed; queue again"))
        if game == party.queued_for and game is None:
            return succeed(party)
        party = evolve(party, queued_for=game, queue=None if game is None else queue)
        event = QUEUED if game is not None else MATCHED if matched else UNQUEUED
        return succeed(self._changed(party, event, party.leader, position))

    def add_listener(self, listener: PartyListener) -> None:
        self._listeners.append(listener)

    def _changed(
        self, party: Party, event: str, player_id: str, position: int | None = None
    ) -> Party:
        if party.members:
            self._parties[party.party_id] = party
        change = PartyChange(party, event, player_id, position)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                # One failing listener must not keep the change from the others.
                self.log.failure("party listener failed for {party_id}", party_id=party.party_id)
        return party
