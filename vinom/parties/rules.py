"""The party rule, written once: what each request does to a party.

Sans-I/O: each function takes what its request must know (the party it names,
the requesting player's own party, as the store has them now) and answers the
`Step` to make, or raises `PartyError`. Both stores run it: the in-memory one
(vinom.parties.memory) on its dicts, the Redis one (vinom.cluster.parties) on
what it read from Redis, whose step it writes only if nothing it read has
changed meanwhile, and reads again otherwise. The store draws party ids and
join codes (a code no other party holds) and keeps who is in which party.
"""

from __future__ import annotations

from typing import Final

from attrs import evolve, frozen

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
    Party,
    PartyError,
    PartyMember,
)

MESSAGES: Final = {
    UNKNOWN_PARTY: "no party with that join code",
    ALREADY_IN_PARTY: "you are in a party already; leave it first",
    PARTY_FULL: "the party is full",
    PARTY_QUEUED: "the party is queued; join once it is not",
    NOT_IN_PARTY: "you are not in a party",
    PARTY_CHANGED: "the party's members changed; queue again",
}


def refused(code: str) -> PartyError:
    """The `PartyError` of `code`, with its message."""
    return PartyError(code, MESSAGES.get(code, code))


@frozen
class Step:
    """What a request does: `party` as it is after (no members: it is gone), told as
    `event` (None: nothing changes and nobody is told) with `player_id` and `position`
    (see `PartyChange`); `joined` is the player who became a member, `left` the one who
    no longer is."""

    party: Party
    event: str | None
    player_id: str
    position: int | None = None
    joined: str | None = None
    left: str | None = None


def create(own: Party | None, party_id: str, code: str, leader: PartyMember) -> Step:
    """A new party `party_id` with join code `code` and `leader` alone in it; `own` is the
    leader's party."""
    if own is not None:
        raise refused(ALREADY_IN_PARTY)
    party = Party(party_id, code, (leader,))
    return Step(party, CREATED, leader.player_id, joined=leader.player_id)


def join(party: Party | None, own: Party | None, member: PartyMember, max_size: int) -> Step:
    """`member` joins `party` (the party of the code given, None if no party has it) at
    the end; `own` is the member's party. A full or queued party takes nobody."""
    if party is None:
        raise refused(UNKNOWN_PARTY)
    if own is not None:
        raise refused(ALREADY_IN_PARTY)
    if len(party.members) >= max_size:
        raise refused(PARTY_FULL)
    if party.queued_for is not None:
        raise refused(PARTY_QUEUED)
    after = evolve(party, members=(*party.members, member))
    return Step(after, JOINED, member.player_id, joined=member.player_id)


def leave(party: Party | None, player_id: str) -> Step:
    """`player_id` leaves `party` (theirs, None if they have none): the longest-standing
    member left leads, and the party is no longer queued (its ticket no longer holds
    its members)."""
    if party is None or player_id not in party.player_ids:
        raise refused(NOT_IN_PARTY)
    members = tuple(m for m in party.members if m.player_id != player_id)
    after = evolve(party, members=members, queued_for=None, queue=None)
    return Step(after, LEFT, player_id, left=player_id)


def set_queued(
    party: Party | None,
    game: str | None,
    members: tuple[str, ...] = (),
    position: int | None = None,
    *,
    matched: bool = False,
    queue: str = "normal",
) -> Step:
    """The party's ticket waits for `game` in `queue` (told as `queued`), or no longer
    waits (None: `unqueued`, or `matched`); see `IPartyStore.set_queued`. A ticket for
    other players than the members is refused; clearing what is clear changes nothing."""
    if party is None:
        raise refused(UNKNOWN_PARTY)
    if game is not None and tuple(members) != party.player_ids:
        raise refused(PARTY_CHANGED)
    if game is None and party.queued_for is None:
        return Step(party, None, party.leader)
    after = evolve(party, queued_for=game, queue=None if game is None else queue)
    event = QUEUED if game is not None else MATCHED if matched else UNQUEUED
    return Step(after, event, party.leader, position)
