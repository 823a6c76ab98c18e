"""A room's idle rule: players the game awaits who stay silent too long forfeit.

A game with an `idle_timeout` (docs/games.md, "Idle players") names after every
change, in `idle_players(state)`, whom it is waiting for; a player so named
who sends no action for that many seconds is taken out of the game (the room
calls the game's `idle`). `IdleRule` keeps the players counted and when the
first of them times out; each seat's `Member.idle_since` says since when its
silence counts. Sans-I/O: times in, a deadline out. A room whose game has no
idle rule holds none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from attrs import define

from vinom.rooms.member import Member

_INF = math.inf


@define(eq=False)
class IdleRule:
    """The idle clocks of one room (module docstring)."""

    # Seconds an awaited player may stay silent (more than 0).
    timeout: float
    # The players the game awaits now, and when the first of them times out.
    counted: frozenset[str] = frozenset()
    due: float = _INF

    @classmethod
    def of(cls, timeout: float) -> IdleRule | None:
        """The rule of a game whose `idle_timeout` is `timeout` (None: it has none)."""
        return cls(timeout) if timeout else None

    def track(
        self, members: Sequence[Member], awaited: Iterable[str], actor: Member | None, now: float
    ) -> float:
        """After a change at `now`: `actor` (if any) just acted and the game now
        awaits the players `awaited`; those newly awaited start counting now.
        Returns when the first counted player times out (inf: none)."""
        if actor is not None:
            actor.idle_since = now
        counted = frozenset(awaited)
        before = self.counted
        timeout = self.timeout
        due = _INF
        for member in members:
            player_id = member.seat.player_id
            if player_id not in counted or member.left:
                continue
            if player_id not in before:
                member.idle_since = now
            if member.idle_since + timeout < due:
                due = member.idle_since + timeout
        self.counted = counted
        self.due = due
        return due

    def timed_out(self, member: Member, now: float) -> bool:
        """Whether this seat's player, awaited and still in the game, is out of time."""
        return (
            member.seat.player_id in self.counted
            and not member.left
            and member.idle_since + self.timeout <= now
        )
