"""What a room sends: the players' states (now, or with the next snapshot), its
events and errors.

`RoomSending` is a part of `Room` (vinom.rooms.room), which inherits it: its
methods read and change the room's own attributes (vinom.rooms.base). The room
decides when states go; `vinom.rooms.views` builds and sends them, and the room
checks a shared view (`Room._check_shared_view`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from vinom.games.interfaces import GameEvent
from vinom.rooms.base import RoomBase
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase, encode_event

_PLAYING = Phase.PLAYING
_INF = math.inf


class RoomSending(RoomBase):
    """What a `Room` sends: states, events, errors."""

    if not TYPE_CHECKING:
        __slots__ = ()  # as RoomBase's

    def send_error(
        self, player_id: str, code: str, message: str, action_id: int | None = None
    ) -> None:
        """Send an ``error`` to this player's session, if connected (see `handle_action`)."""
        member = self._members.get(player_id)
        if member is not None:
            self._send_error(member, code, message, action_id)

    def send_state(self, player_id: str, now: float) -> None:
        """Send the current state to this player on the reliable channel (`sync`)."""
        member = self._members.get(player_id)
        if member is not None and member.session_id is not None:
            self._send_state_reliably(member, now)

    def _broadcast_state(self, now: float) -> None:
        """The state changed: send it to every player now or, for a game with a
        tick while playing, with the next snapshot (`_tick`)."""
        loop = self.realtime
        if loop is not None and self.phase is _PLAYING:
            loop.changed = True
            if self._bots is not None:
                self._wake_bots(self._bots, now)
            return
        self._send_states(now)

    def _send_states(self, now: float) -> None:
        """Send the current state to every connected player (unreliably)."""
        if self._bots is not None and self.phase is _PLAYING:
            self._wake_bots(self._bots, now)
        loop = self.realtime
        tick = 0
        if loop is not None:
            loop.changed = False
            tick = loop.tick_number
        if self._state_due != _INF:
            # The periodic state is for when none goes out: it waits a whole
            # interval from this one (`handle_timer` picks up the later time).
            self._state_due = now + self.config.state_interval
        ends = self._phase_ends
        remaining = None
        if ends is not None:
            remaining = ends - now
            if remaining < 0.0:
                remaining = 0.0
        version, phase, state, views = self.version, self.phase, self.state, self._views
        server_time = views.server_time(now)
        try:
            if views.check:
                self._check_shared_view(state, version)
            if phase is _PLAYING and loop is not None:
                # Delta-encoded snaps (docs/protocol.md §14, §16).
                views.send_snaps(loop.feeds.values(), version, remaining, state, tick, server_time)
            else:
                views.send_states(self._order, version, phase, remaining, state, tick, server_time)
        except Exception:
            self._game_error("view")

    @property
    def entity_counts(self) -> Mapping[str, int]:
        """A game with a snapshot budget: the changed entities its snaps carried
        (``sent``) and those that waited for a later one (``deferred``)."""
        return self._views.entity_counts

    def server_time(self, now: float) -> int:
        """The room's time at `now` as a state's ``ts`` says it (the spectators' too)."""
        return self._views.server_time(now)

    def _send_state_reliably(self, member: Member, now: float) -> None:
        state, tick = self.state, self.tick_number
        try:
            self._views.send_state(
                member, self.version, self.phase, self.remaining(now), state, tick, now
            )
        except Exception:
            self._game_error("view")

    def _send_event(self, event: GameEvent) -> None:
        try:
            data = encode_event(self.version, event.name, event.data)
        except Exception:
            self._game_error("event")
            return
        self._views.send_reliably(self._order, data, to=event.to)

    def _send_error(self, member: Member, code: str, message: str, action_id: int | None) -> None:
        self._views.send_error(member, code, message, action_id)

    def _send_all(self, data: bytes, but: Member | None = None) -> None:
        self._views.send_reliably(self._order, data, but=but)
