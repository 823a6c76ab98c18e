"""The in-memory party store: the parties of one lobby process.

It runs the party rule (vinom.parties.rules) on its own dicts. Listeners are
told of each change before the call's Deferred fires. Lobbies that share
players keep their parties in Redis (vinom.cluster.parties).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from vinom.codes import new_join_code, normal_code
from vinom.parties import rules
from vinom.parties.interfaces import (
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
        code = self._new_code()
        while code in self._by_code:
            code = self._new_code()
        own = self._party_of(leader.player_id)
        return self._run(lambda: rules.create(own, self._new_id(), code, leader))

    def join(self, code: str, member: PartyMember) -> Deferred[Party]:
        party_id = self._by_code.get(normal_code(code))
        party = None if party_id is None else self._parties[party_id]
        own = self._party_of(member.player_id)
        return self._run(lambda: rules.join(party, own, member, self.max_size))

    def leave(self, player_id: str, *, refuse_late: bool = False) -> Deferred[Party]:
        # Done at once: never late.
        return self._run(lambda: rules.leave(self._party_of(player_id), player_id))

    def party_of(self, player_id: str) -> Deferred[Party | None]:
        return succeed(self._party_of(player_id))

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
        return self._run(lambda: rules.set_queued(
            party, game, members, position, matched=matched, queue=queue
        ))  # fmt: skip

    def add_listener(self, listener: PartyListener) -> None:
        self._listeners.append(listener)

    def _party_of(self, player_id: str) -> Party | None:
        party_id = self._by_player.get(player_id)
        return None if party_id is None else self._parties[party_id]

    def _run(self, decide: Callable[[], rules.Step]) -> Deferred[Party]:
        """Make the step the rule decides (or fail with its PartyError), then tell it."""
        try:
            step = decide()
        except PartyError as error:
            return fail(error)
        party = step.party
        if step.event is None:
            return succeed(party)
        if step.joined is not None:
            self._by_player[step.joined] = party.party_id
            self._by_code[party.code] = party.party_id
        if step.left is not None:
            del self._by_player[step.left]
        if party.members:
            self._parties[party.party_id] = party
        else:
            del self._parties[party.party_id]
            del self._by_code[party.code]
        change = PartyChange(party, step.event, step.player_id, step.position)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                # One failing listener must not keep the change from the others.
                self.log.failure("party listener failed for {party_id}", party_id=party.party_id)
        return succeed(party)
