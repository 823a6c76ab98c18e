"""A room's seat and what the room knows of the player's connection to it.

One `Member` per seat, made by the `Room` and read by the parts it sends with
(`vinom.rooms.views`): a plain mutable record, changed only by its room and
the parts the room holds (`vinom.rooms.idle`, `vinom.rooms.bots`). A ticking
room's per-seat buffers are not here but in its real-time loop's `SeatFeed`s
(`vinom.rooms.realtime`).
"""

from __future__ import annotations

import math

from attrs import define

from vinom.games.interfaces import IBot, Seat


@define(eq=False)
class Member:
    """A seat and what the room knows of its player's connection."""

    seat: Seat
    session_id: int | None = None
    joined: bool = False
    left: bool = False
    # When the reconnection window of a disconnected player closes.
    grace_ends: float | None = None
    last_action_id: int | None = None
    # Since when the player's silence counts (their last action, or when the game
    # began to await them), for the game's idle rule.
    idle_since: float = 0.0
    # The game's bot playing this seat (a bot ticket), and when it next acts.
    bot: IBot | None = None
    bot_due: float = math.inf
