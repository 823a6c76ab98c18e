"""A room's seats and their sessions: who may sit down, and what a connection, a
disconnection (the reconnection window) and a leave do to the match.

`Seating` is a part a `Room` (vinom.rooms.room) makes and holds (`seating`). It
owns the room's `Member`s (by player id and in seat order) and their sessions,
and the game's idle rule (`IdleRule`, vinom.rooms.idle: whom the game awaits
after each change, `track_idle`, and who times out), and is
given what a connection needs (the outbox for the welcome, the room's
`RoomSending`, its real-time loop and its `GameFaults`). What a seat's change
does to the match (the game's hooks, the phases, the deadlines) it asks of the
room through `SeatedMatch`, a narrow interface, rather than reading the room.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from attrs import define, field

from vinom.games.interfaces import IGame, Outcome, Seat
from vinom.games.rules import rules_of
from vinom.protocol.events import RELIABLE
from vinom.protocol.interfaces import Admission
from vinom.rooms.faults import GameFaults
from vinom.rooms.idle import IdleRule
from vinom.rooms.member import Member
from vinom.rooms.messages import Phase, encode_presence, encode_welcome
from vinom.rooms.outbox import Outbox
from vinom.rooms.realtime import RealTimeLoop
from vinom.rooms.sending import RoomSending


class SeatedMatch(Protocol):
    """What `Seating` reads of its room (the game and where the match stands), and
    what it asks of it when a seat changes."""

    game: IGame
    state: Any
    phase: Phase

    @property
    def ended(self) -> bool: ...

    def hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None: ...

    def adopt(self, outcome: Outcome) -> bool: ...

    def maybe_start(self, now: float) -> None: ...

    def after_change(self, now: float) -> None: ...

    def finish(self, now: float) -> None: ...

    def abort(self, reason: str, now: float) -> None: ...

    def rewake(self) -> None: ...


@define(eq=False)
class Seating:
    """The seats of a `Room`: admission, sessions, the reconnection window, leaving."""

    match: SeatedMatch
    match_id: str
    # The seats, in match order.
    order: tuple[Member, ...]
    outbox: Outbox
    sending: RoomSending
    # A ticking room's real-time loop (None: turn-based).
    loop: RealTimeLoop | None
    faults: GameFaults
    # Seconds a disconnected player's seat is held for them.
    reconnect_grace: float
    # The game's idle rule (vinom.rooms.idle); None for a game without one.
    idle: IdleRule | None = None
    # The seats by player id (made from `order`).
    members: dict[str, Member] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.members = {m.seat.player_id: m for m in self.order}

    @property
    def seats(self) -> tuple[Seat, ...]:
        """The seats, in match order."""
        return tuple(m.seat for m in self.order)

    def session_ids(self) -> list[int]:
        """The sessions currently attached to seats."""
        return [m.session_id for m in self.order if m.session_id is not None]

    def seat_of(self, player_id: str) -> Seat | None:
        member = self.members.get(player_id)
        return None if member is None else member.seat

    def session_of(self, player_id: str) -> int | None:
        member = self.members.get(player_id)
        return None if member is None else member.session_id

    def in_grace(self, player_id: str) -> bool:
        """True while the player's seat is held for their reconnection."""
        member = self.members.get(player_id)
        return member is not None and member.grace_ends is not None

    def joined_players(self) -> tuple[str, ...]:
        """The players who connected to their seats at least once, in seat order."""
        return tuple(m.seat.player_id for m in self.order if m.joined)

    def has_left(self, player_id: str) -> bool:
        member = self.members.get(player_id)
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
        member = self.members.get(player_id)
        if member is None or member.bot is not None:
            return Admission.REFUSE, None
        if member.left or self.match.ended:
            return Admission.FULL, None
        if member.session_id is not None:
            # Already connected: a second session for one seat is refused.
            return Admission.REFUSE, None
        if not member.joined:
            try:
                reason = self.match.game.check_join(self.match.state, member.seat)
            except Exception as e:
                return Admission.FULL, self.faults.check_join_failed(e, player_id)
            if reason is not None:
                return Admission.FULL, str(reason)
        return Admission.ACCEPT, None

    def _welcome(self, member: Member, reconnected: bool) -> bytes:
        loop, game = self.loop, self.match.game
        return encode_welcome(
            self.match_id,
            game.name,
            member.seat.index,
            self.seats,
            reconnected,
            rules_of(game).title,
            0.0 if loop is None else loop.rate,
            0.0 if loop is None else loop.snapshot_rate,
            self.sending.views.quantisation.rules,
            () if loop is None or loop.schema is None else loop.schema.describe(),
        )

    def player_connected(self, player_id: str, session_id: int, now: float) -> bool:
        """A session for this player was established; False if the seat cannot take it."""
        if self.admission(player_id) is not Admission.ACCEPT:
            return False
        match, sending = self.match, self.sending
        member = self.members[player_id]
        member.session_id = session_id
        reconnected = member.joined
        if member.grace_ends is not None:
            member.grace_ends = None
            match.rewake()
        # The welcome is the session's first message: before any event.
        self.outbox.send_message(session_id, RELIABLE, self._welcome(member, reconnected))
        if self.loop is not None:
            self.loop.connected(player_id)
        member.joined = True
        sending.views.joining = member
        try:
            game = match.game
            if reconnected:
                outcome = match.hook("reconnect", game.reconnect, match.state, member.seat)
            else:
                outcome = match.hook("join", game.join, match.state, member.seat)
            changed = outcome is not None and match.adopt(outcome)
            sending.send_all(encode_presence(player_id, "connected"), but=member)
            if match.phase is Phase.WAITING:
                match.maybe_start(now)
                if changed and match.phase is Phase.WAITING:
                    sending.broadcast_state(now)
            elif changed:
                match.after_change(now)
        finally:
            sending.views.joining = None
        # Its first state, after the welcome and whatever the join changed, is current
        # (an ended room sent every member its final state reliably already).
        if not match.ended:
            sending.send_state_reliably(member, now)
        return True

    def player_disconnected(self, player_id: str, session_id: int, now: float) -> None:
        """The player's session closed: hold the seat for the reconnection window."""
        member = self.members.get(player_id)
        if member is None or member.session_id != session_id:
            return
        member.session_id = None
        if self.match.ended:
            return
        self.sending.send_all(encode_presence(player_id, "disconnected"), but=member)
        member.grace_ends = now + self.reconnect_grace
        self.match.rewake()

    def player_left(self, player_id: str, now: float) -> None:
        """The player left for good (a `leave` message): no reconnection window."""
        member = self.members.get(player_id)
        if member is None or member.left:
            return
        member.session_id = None
        if not self.match.ended:
            self.leave(member, now)

    def time_out(self, now: float) -> None:
        """The idle rule's deadline came: each awaited player out of time is out of
        the game, in seat order, until the game ends."""
        idle = self.idle
        assert idle is not None
        for member in self.order:
            if self.match.ended:
                return
            if idle.timed_out(member, now):
                self.leave(member, now, idle=True)

    def track_idle(self, actor: Member | None, now: float) -> None:
        """After a change while playing: `actor` (if any) just acted, and the players
        the game now awaits (its `idle_players`) start counting (`IdleRule.track`)."""
        idle, match = self.idle, self.match
        if idle is None or match.phase is not Phase.PLAYING:
            return
        try:
            awaited = frozenset(match.game.idle_players(match.state))  # type: ignore[attr-defined]
        except Exception:
            self.faults.failed("idle_players")
            awaited = frozenset()
        before = idle.due
        # Only a deadline sooner than before can come before the room's wake-up.
        if idle.track(self.order, awaited, actor, now) < before:
            match.rewake()

    def leave(self, member: Member, now: float, idle: bool = False) -> None:
        """This seat's player is out of the game: they left, their reconnection window
        closed, or (`idle`) the game's idle rule timed them out."""
        match = self.match
        member.left = True
        if member.grace_ends is not None:
            member.grace_ends = None
            match.rewake()
        player_id, game = member.seat.player_id, match.game
        if idle:
            # Everyone hears it, the idle player included: they are out of the game.
            self.sending.send_all(encode_presence(player_id, "idle"))
            outcome = match.hook("idle", game.idle, match.state, member.seat)  # type: ignore[attr-defined]
        else:
            outcome = match.hook("leave", game.leave, match.state, member.seat)
        changed = outcome is not None and match.adopt(outcome)
        if not idle:
            self.sending.send_all(encode_presence(player_id, "left"), but=member)
        if match.ended:
            return
        if match.phase is Phase.WAITING:
            match.abort("player_left", now)
        elif game.is_finished(match.state):
            match.finish(now)
        elif not any(m.session_id is not None or m.grace_ends is not None for m in self.order):
            match.abort("abandoned", now)
        elif changed:
            self.sending.broadcast_state(now)
