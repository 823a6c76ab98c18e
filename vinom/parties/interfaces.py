"""Parties: the values and the seam behind which the lobby keeps them.

A party is a few players who queue together: its leader queues it as one
ticket and the matchmaker matches it as one unit (vinom.matchmaking). Its
state is an `IPartyStore`'s, in memory for one lobby (vinom.parties.memory)
or in Redis for lobbies that share players (vinom.cluster.parties), where a
party's members may be connected to different lobbies. Every change is told
to the store's listeners as a `PartyChange`, in every lobby (Redis: over a
pub/sub channel), so each lobby can tell the members it holds. Every method
returns a Deferred; a request that cannot be served fails with `PartyError`.
docs/lobby.md ("Parties") describes the frames built on this.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import frozen
from twisted.internet.defer import Deferred
from zope.interface import Interface

# PartyError codes (lobby error codes too: docs/lobby.md lists them), except party_full
# and party_queued, which the lobby answers as unknown_party (no oracle for guessed codes).
UNKNOWN_PARTY: Final = "unknown_party"
ALREADY_IN_PARTY: Final = "already_in_party"
PARTY_FULL: Final = "party_full"
NOT_IN_PARTY: Final = "not_in_party"
PARTY_QUEUED: Final = "party_queued"
PARTY_CHANGED: Final = "party_changed"

# PartyChange events.
CREATED: Final = "created"
JOINED: Final = "joined"
LEFT: Final = "left"
QUEUED: Final = "queued"
UNQUEUED: Final = "unqueued"
MATCHED: Final = "matched"


def new_party_id() -> str:
    """'p-' and 16 random hex digits."""
    return "p-" + secrets.token_hex(8)


@frozen
class PartyMember:
    player_id: str
    name: str


@frozen
class Party:
    """A party: `members` in join order, the first is the leader (the longest-standing
    member); `queued_for` is the game its ticket waits for and `queue` the queue
    ("normal" or "ranked"), both None when not queued."""

    party_id: str
    code: str
    members: tuple[PartyMember, ...]
    queued_for: str | None = None
    queue: str | None = None

    @property
    def leader(self) -> str:
        return self.members[0].player_id if self.members else ""

    @property
    def player_ids(self) -> tuple[str, ...]:
        return tuple(m.player_id for m in self.members)

    def describe(self) -> dict[str, Any]:
        """How the members see the party in `party` and `party_update` frames."""
        return {
            "party_id": self.party_id,
            "code": self.code,
            "leader": self.leader,
            "members": [{"player_id": m.player_id, "name": m.name} for m in self.members],
            "queued_for": self.queued_for,
            "queue": self.queue,
        }


@frozen
class PartyChange:
    """One change to a party, told to every lobby: `party` as it is after it (no
    members: it is gone), the `event` (created, joined, left, queued, unqueued,
    matched),
    the player whose request (or disconnection) made it, and, for `queued`, the
    party ticket's position in its queue."""

    party: Party
    event: str
    player_id: str
    position: int | None = None


def party_to_json(party: Party) -> dict[str, Any]:
    return {
        "party_id": party.party_id,
        "code": party.code,
        "members": [[m.player_id, m.name] for m in party.members],
        "queued_for": party.queued_for,
        "queue": party.queue,
    }


def party_from_json(data: Mapping[str, Any]) -> Party:
    """The party `party_to_json` gave (KeyError, TypeError or ValueError if it is not one)."""
    queued_for = data.get("queued_for")
    queue = data.get("queue")
    queued = queued_for not in (None, "")
    return Party(
        party_id=str(data["party_id"]),
        code=str(data["code"]),
        members=tuple(PartyMember(str(p), str(n)) for p, n in data["members"]),
        queued_for=str(queued_for) if queued else None,
        queue=(str(queue) if queue not in (None, "") else "normal") if queued else None,
    )


def change_to_json(change: PartyChange) -> dict[str, Any]:
    return {
        "party": party_to_json(change.party),
        "event": change.event,
        "player_id": change.player_id,
        "position": change.position,
    }


def change_from_json(data: Mapping[str, Any]) -> PartyChange:
    position = data.get("position")
    return PartyChange(
        party=party_from_json(data["party"]),
        event=str(data["event"]),
        player_id=str(data["player_id"]),
        position=None if position is None else int(position),
    )


PartyListener = Callable[[PartyChange], object]


class PartyError(Exception):
    """A party request that cannot be served: `code` is the lobby error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class IPartyStore(Interface):
    """The parties of every player; each change is told to every listener.

    A store that may fail a call it could not make in time (Redis's, with
    `BackendUnavailable`) never makes `create`, `join`, `set_queued` with a game,
    or `leave` with `refuse_late` later: those fail having done nothing, as
    the lobby tells its player. `leave` without it and `set_queued(..., None)`
    withdraw, and are still made once the store can.
    """

    max_size: int
    """The most members a party may have."""

    def create(leader: PartyMember) -> Deferred[Party]:
        """A new party with `leader` as its only member; fails with `already_in_party`."""

    def join(code: str, member: PartyMember) -> Deferred[Party]:
        """Add `member` to the party with join code `code` (any case); fails with
        `unknown_party`, `already_in_party`, `party_full` or `party_queued` (its
        ticket waits: the member would not be on it)."""

    def leave(player_id: str, *, refuse_late: bool = False) -> Deferred[Party]:
        """Take the player out of their party; fires with the party as it is after
        (no members: it is gone). If the leader leaves, the longest-standing member
        leads. A queued party is no longer queued (its ticket must be cancelled by
        the caller). Fails with `not_in_party`."""

    def party_of(player_id: str) -> Deferred[Party | None]:
        """The player's party, or None."""

    def set_queued(
        party_id: str,
        game: str | None,
        members: tuple[str, ...] = (),
        position: int | None = None,
        *,
        matched: bool = False,
        queue: str = "normal",
    ) -> Deferred[Party]:
        """Record that the party's ticket waits for `game` in `queue` (None: it no longer waits),
        told as `queued` (with `position`), or as `unqueued` (`matched` if its match
        formed). With a game, `members` are the players on the ticket: if the party's
        members differ, nothing changes and it fails with `party_changed`. Fails with
        `unknown_party` if the party is gone. Clearing what is clear already changes
        nothing and tells nobody."""

    def add_listener(listener: PartyListener) -> None:
        """Call `listener(change)` for every change from now on (every lobby's)."""
