"""What a room sends: the players' states (now, or with the next snapshot), its
events and errors, and the periodic state.

`RoomSending` is a part a `Room` (vinom.rooms.room) makes and holds (`sending`).
It owns the room's `RoomViews` (vinom.rooms.views), which builds and sends the
messages, and the periodic state's deadline; what it reads of the match as it
stands (state, version, phase, time left) it reads through `MatchNow`, the room.
The room decides when states go; a game's shared view is checked here
(`check_shared_view`, the debug check `RoomConfig.check_views` turns on).

States: a game without a tick (turn-based) sends every player a state after
every change. A game with a tick, while playing, sends each player at most one
state per tick, at its `snapshot_rate` (by default its tick rate): actions and
hooks only mark the state changed, and the tick's snapshot, built after the
game's tick, carries everything applied since the last one. Errors, events,
phase changes and the states sent reliably (on joining, on `sync`, at the end)
go out at once. Whatever the game, a state also goes out when none did for
`RoomConfig.state_interval` seconds. Every state carries the room's tick
number and its time (milliseconds since `start`), for clients that interpolate.
`Room` decides when states go; `vinom.rooms.views` builds and sends them, and
`vinom.rooms.member` holds what it knows of each seat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from attrs import define

from vinom.games.interfaces import GameEvent
from vinom.rooms.faults import GameFaults
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase, encode_event
from vinom.rooms.realtime import RealTimeLoop
from vinom.rooms.views import RoomViews

_PLAYING = Phase.PLAYING
_INF = math.inf


class MatchNow(Protocol):
    """What `RoomSending` reads of its room: the match as it stands."""

    state: Any
    version: int
    phase: Phase

    def remaining(self, now: float) -> float | None: ...


@define(eq=False)
class RoomSending:
    """What a `Room` sends: states, events, errors."""

    match: MatchNow
    views: RoomViews
    # The seats, by player id and in seat order (the room's seating).
    members: Mapping[str, Member]
    order: tuple[Member, ...]
    # A ticking room's real-time loop (None: turn-based).
    loop: RealTimeLoop | None
    faults: GameFaults
    # Seconds between periodic states when none went out (0: none).
    state_interval: float
    # Told `now` when the state changed while playing: the bots look at it.
    wake_bots: Callable[[float], None] | None = None
    # When the periodic state is due (inf: never).
    due: float = _INF

    def start(self, now: float) -> None:
        """The room opened at `now`: the states' time and the periodic state start."""
        self.views.started_at = now
        if self.state_interval > 0:
            self.due = now + self.state_interval

    def check_shared_view(self, state: Any, version: int) -> None:
        """The debug check of `shared_view`: every seat's view must be the same. The
        first difference is logged (`GameFaults.shared_view_differs`) and each player
        gets their own view from then on, so that nothing hidden is shown to another."""
        views = self.views
        difference = views.shared_view_difference(state, self.order)
        if difference is not None:
            views.shared = views.check = False
            self.faults.shared_view_differs(*difference, version)

    def send_error(
        self, player_id: str, code: str, message: str, action_id: int | None = None
    ) -> None:
        """Send an ``error`` to this player's session, if connected (see `handle_action`)."""
        member = self.members.get(player_id)
        if member is not None:
            self.views.send_error(member, code, message, action_id)

    def send_state(self, player_id: str, now: float) -> None:
        """Send the current state to this player on the reliable channel (`sync`)."""
        member = self.members.get(player_id)
        if member is not None and member.session_id is not None:
            self.send_state_reliably(member, now)

    def broadcast_state(self, now: float) -> None:
        """The state changed: send it to every player now or, for a game with a
        tick while playing, with the next snapshot (`RoomSchedule.handle_timer`)."""
        loop = self.loop
        if loop is not None and self.match.phase is _PLAYING:
            loop.changed = True
            if self.wake_bots is not None:
                self.wake_bots(now)
            return
        self.send_states(now)

    def send_states(self, now: float) -> None:
        """Send the current state to every connected player (unreliably)."""
        match = self.match
        version, phase, state = match.version, match.phase, match.state
        if self.wake_bots is not None and phase is _PLAYING:
            self.wake_bots(now)
        loop = self.loop
        tick = 0
        if loop is not None:
            loop.changed = False
            tick = loop.tick_number
        if self.due != _INF:
            # The periodic state is for when none goes out: it waits a whole
            # interval from this one (`handle_timer` picks up the later time).
            self.due = now + self.state_interval
        remaining, views = match.remaining(now), self.views
        server_time = views.server_time(now)
        try:
            if views.check:
                self.check_shared_view(state, version)
            if phase is _PLAYING and loop is not None:
                # Delta-encoded snaps (docs/protocol.md §14, §16).
                views.send_snaps(loop.feeds.values(), version, remaining, state, tick, server_time)
            else:
                views.send_states(self.order, version, phase, remaining, state, tick, server_time)
        except Exception:
            self.faults.failed("view")

    def send_state_reliably(self, member: Member, now: float) -> None:
        match, loop = self.match, self.loop
        tick = 0 if loop is None else loop.tick_number
        try:
            self.views.send_state(
                member, match.version, match.phase, match.remaining(now), match.state, tick, now
            )
        except Exception:
            self.faults.failed("view")

    def send_event(self, event: GameEvent) -> None:
        try:
            data = encode_event(self.match.version, event.name, event.data)
        except Exception:
            self.faults.failed("event")
            return
        self.views.send_reliably(self.order, data, to=event.to)

    def send_all(self, data: bytes, but: Member | None = None) -> None:
        self.views.send_reliably(self.order, data, but=but)
