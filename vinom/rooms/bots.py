"""A room's bot seats: the game's bots, each acting a think time after a change.

A match ticket marked `bot` is played by the game's own bot (`IGame.make_bot`),
seated at once. After every change the room wakes its bots (`wake`); each
one still in the game looks at its view after `RoomConfig.bot_think_time`
(as a person would) and sends its action as a player does, through the room's
`handle_action`. Sans-I/O: times in, the earliest bot's turn out. A room
without bot seats holds no `RoomBots`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from attrs import define

from vinom.games.interfaces import IGame
from vinom.match import Ticket
from vinom.rooms.member import Member

_INF = math.inf


@define(eq=False)
class RoomBots:
    """The bot seats of one room (module docstring)."""

    members: tuple[Member, ...]
    # Seconds a bot waits after a change before it acts.
    think_time: float

    @classmethod
    def seat(
        cls,
        game: IGame,
        members: Sequence[Member],
        tickets: Sequence[Ticket],
        rng: random.Random,
        think_time: float,
    ) -> RoomBots | None:
        """Give every bot ticket's seat the game's bot (each with a generator drawn
        from `rng`, in seat order); None when no ticket is a bot's."""
        for member, ticket in zip(members, tickets, strict=True):
            if ticket.bot:
                member.bot = game.make_bot(ticket.player_id, random.Random(rng.getrandbits(64)))
        bots = tuple(m for m in members if m.bot is not None)
        return cls(bots, think_time) if bots else None

    def wake(self, now: float) -> float:
        """The state changed at `now`: each bot still in the game and not about to
        act looks at it after its think time. Returns when (inf: none woke)."""
        due = now + self.think_time
        woke = _INF
        for member in self.members:
            if not member.left and member.bot_due == _INF:
                member.bot_due = woke = due
        return woke

    def earliest(self) -> tuple[float, Member | None]:
        """The first bot's turn: when (inf: none) and whose."""
        due, whose = _INF, None
        for member in self.members:
            if member.bot_due < due:
                due, whose = member.bot_due, member
        return due, whose

    def retry_at(self, now: float) -> float:
        """When a bot whose action was refused at `now` looks again."""
        return now + max(self.think_time, 0.1)
