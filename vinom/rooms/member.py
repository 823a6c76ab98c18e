"""A room's seat and what the room knows of the player's connection to it.

One `Member` per seat, made by the `Room` and read by the parts it sends with
(`vinom.rooms.views`): a plain mutable record, changed only by its room and
the parts the room holds (`vinom.rooms.realtime`, `vinom.rooms.idle`,
`vinom.rooms.bots`).
"""

from __future__ import annotations

import math

from attrs import define

from vinom.games.interfaces import IBot, Seat
from vinom.rooms.budget import PriorityQueue
from vinom.rooms.delta import SnapshotHistory
from vinom.rooms.inputs import InputBuffer
from vinom.rooms.schema import SchemaHistory


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
    # A ticking room (made by its `RealTimeLoop`, None in a turn-based room): the
    # player's real-time inputs waiting for their tick, the snapshots sent to their
    # current session (its delta baselines), and when they last heard that an
    # input was rejected.
    inputs: InputBuffer | None = None
    snapshots: SnapshotHistory | SchemaHistory | None = None
    input_noticed_at: float = -math.inf
    # A game with a snapshot budget: this session's entities waiting to be sent.
    priorities: PriorityQueue | None = None
