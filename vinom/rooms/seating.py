"""A room's seats and their sessions: who may sit down, and what a connection, a
disconnection (the reconnection window) and a leave do to the match.

`RoomSeating` is a part of `Room` (vinom.rooms.room), which inherits it: its
methods read and change the room's own attributes (vinom.rooms.base).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vinom.games.interfaces import Seat
from vinom.games.rules import rules_of
from vinom.protocol.events import RELIABLE
from vinom.protocol.interfaces import Admission
from vinom.rooms.base import RoomBase
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase, encode_presence, encode_welcome


class RoomSeating(RoomBase):
    """The seats of a `Room`: admission, sessions, the reconnection window, leaving."""

    if not TYPE_CHECKING:
        __slots__ = ()  # as RoomBase's

    def session_ids(self) -> list[int]:
        """The sessions currently attached to seats."""
        return [m.session_id for m in self._order if m.session_id is not None]

    def seat_of(self, player_id: str) -> Seat | None:
        member = self._members.get(player_id)
        return None if member is None else member.seat

    def session_of(self, player_id: str) -> int | None:
        member = self._members.get(player_id)
        return None if member is None else member.session_id

    def in_grace(self, player_id: str) -> bool:
        """True while the player's seat is held for their reconnection."""
        member = self._members.get(player_id)
        return member is not None and member.grace_ends is not None

    def joined_players(self) -> tuple[str, ...]:
        """The players who connected to their seats at least once, in seat order."""
        return tuple(m.seat.player_id for m in self._order if m.joined)

    def has_left(self, player_id: str) -> bool:
        member = self._members.get(player_id)
        return member is not None and member.left

    def admission(self, player_id: str) -> Admission:
        """May this player connect now? (A seat that is free or held for them.)"""
        return self.check_admission(player_id)[0]

    def check_admission(self, player_id: str) -> tuple[Admission, str | None]:
        """`admission`, with the reason when the game's `check_join` refused the seat.

        The reason is the game's text (or "check_join failed: " and the
        exception when the game raised); it is for the host's log and counters,
        not for the client, which only learns that it was denied.
        """
        member = self._members.get(player_id)
        if member is None or member.bot is not None:
            return Admission.REFUSE, None
        if member.left or self.ended:
            return Admission.FULL, None
        if member.session_id is not None:
            # Already connected: a second session for one seat is refused.
            return Admission.REFUSE, None
        if not member.joined:
            try:
                reason = self.game.check_join(self.state, member.seat)
            except Exception as e:
                return Admission.FULL, self._faults.check_join_failed(e, player_id)
            if reason is not None:
                return Admission.FULL, str(reason)
        return Admission.ACCEPT, None

    def player_connected(self, player_id: str, session_id: int, now: float) -> bool:
        """A session for this player was established; False if the seat cannot take it."""
        if self.admission(player_id) is not Admission.ACCEPT:
            return False
        member = self._members[player_id]
        member.session_id = session_id
        reconnected = member.joined
        if member.grace_ends is not None:
            member.grace_ends = None
            self._rewake()
        # The welcome is the session's first message: before any event.
        self.outbox.send_message(
            session_id,
            RELIABLE,
            encode_welcome(
                self.match.match_id,
                self.game.name,
                member.seat.index,
                self.seats,
                reconnected,
                rules_of(self.game).title,
                self.tick_rate,
                self.snapshot_rate,
                self.sending.views.quantisation.rules,
                () if self.realtime is None or self.realtime.schema is None
                else self.realtime.schema.describe(),
            ),
        )
        if self.realtime is not None:
            self.realtime.connected(player_id)
        member.joined = True
        self.sending.views.joining = member
        try:
            if reconnected:
                outcome = self._hook("reconnect", self.game.reconnect, self.state, member.seat)
            else:
                outcome = self._hook("join", self.game.join, self.state, member.seat)
            changed = outcome is not None and self._apply(outcome)
            self.sending.send_all(encode_presence(player_id, "connected"), but=member)
            if self.phase is Phase.WAITING:
                self._maybe_start(now)
                if changed and self.phase is Phase.WAITING:
                    self.sending.broadcast_state(now)
            elif changed:
                self._after_change(now)
        finally:
            self.sending.views.joining = None
        # Its first state, after the welcome and whatever the join changed, is current
        # (an ended room sent every member its final state reliably already).
        if not self.ended:
            self.sending.send_state_reliably(member, now)
        return True

    def player_disconnected(self, player_id: str, session_id: int, now: float) -> None:
        """The player's session closed: hold the seat for the reconnection window."""
        member = self._members.get(player_id)
        if member is None or member.session_id != session_id:
            return
        member.session_id = None
        if self.ended:
            return
        self.sending.send_all(encode_presence(player_id, "disconnected"), but=member)
        member.grace_ends = now + self.config.reconnect_grace
        self._rewake()

    def player_left(self, player_id: str, now: float) -> None:
        """The player left for good (a `leave` message): no reconnection window."""
        member = self._members.get(player_id)
        if member is None or member.left:
            return
        member.session_id = None
        if not self.ended:
            self._leave(member, now)

    def _leave(self, member: Member, now: float, idle: bool = False) -> None:
        member.left = True
        if member.grace_ends is not None:
            member.grace_ends = None
            self._rewake()
        player_id = member.seat.player_id
        if idle:
            # Everyone hears it, the idle player included: they are out of the game.
            self.sending.send_all(encode_presence(player_id, "idle"))
            outcome = self._hook("idle", self.game.idle, self.state, member.seat)  # type: ignore[attr-defined]
        else:
            outcome = self._hook("leave", self.game.leave, self.state, member.seat)
        changed = outcome is not None and self._apply(outcome)
        if not idle:
            self.sending.send_all(encode_presence(player_id, "left"), but=member)
        if self.ended:
            return
        if self.phase is Phase.WAITING:
            self.abort("player_left", now)
        elif self.game.is_finished(self.state):
            self._finish(now)
        elif not any(m.session_id is not None or m.grace_ends is not None for m in self._order):
            self.abort("abandoned", now)
        elif changed:
            self.sending.broadcast_state(now)
