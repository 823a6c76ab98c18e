"""A room: one match of one game, played by the sessions of its seated players.

The game's state is immutable; the room is the mutable service around it. It
owns the match lifecycle (connect deadline, countdown, play until the time
limit or a result, finished or aborted), the state version, the seats and
their sessions, the reconnection window, and all timers (from an injected
`IReactorTime`, every one cancelled when the room ends). It sends straight to
its players' sessions through an `ISessionSender`; the session manager tells
it which session belongs to which seat.

Version rule: the version grows by exactly one for every applied action,
every phase change, and every hook (join, leave, reconnect, tick, time up)
that returned a new state object. A rejected action changes nothing.
"""

from __future__ import annotations

import contextlib
import random
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from attrs import define, field, frozen
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from vinom.games.interfaces import (
    GameEvent,
    IGame,
    IllegalAction,
    Outcome,
    Seat,
    action_rate_of,
    shared_view_of,
)
from vinom.games.registry import check_game
from vinom.matchmaking.interfaces import Match
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.protocol.interfaces import Admission, ISessionSender
from vinom.rooms.messages import (
    Phase,
    encode_error,
    encode_event,
    encode_phase,
    encode_presence,
    encode_state,
    encode_welcome,
    state_with_action_id,
)

log = Logger()

_PLAYING = Phase.PLAYING

# Games that passed `check_game` (by id, while they live): checking costs about
# 0.1 ms, and a game object serves many rooms.
_checked_games: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def _check_game_once(game: IGame) -> None:
    if _checked_games.get(id(game)) is game:
        return
    check_game(game)
    # A game that cannot be weakly referenced is checked for every room.
    with contextlib.suppress(TypeError):
        _checked_games[id(game)] = game


@frozen
class RoomConfig:
    """Timing of a room's lifecycle, in seconds."""

    # Every player must connect within this time of the room's creation.
    connect_deadline: float = 30.0
    # A player whose session closes keeps the seat this long.
    reconnect_grace: float = 30.0
    # The state is also sent this often when nothing changes (0: only on change).
    state_interval: float = 1.0
    # Passed to the game's `create`.
    options: Mapping[str, Any] = field(factory=dict)


@define(eq=False)
class _Member:
    """A seat and what the room knows of its player's connection."""

    seat: Seat
    session_id: int | None = None
    joined: bool = False
    left: bool = False
    grace: IDelayedCall | None = None
    last_action_id: int | None = None


@define(eq=False, repr=False)
class Room:
    """One match: seats from the `Match`, the game's immutable state and its version.

    Call `start` once; then the session manager reports connections
    (`player_connected`, `player_disconnected`, `player_left`) and actions
    (`handle_action`). `on_end(room)` is called once when the room finishes or
    is aborted; the room keeps its sessions until its owner removes it, so the
    final messages can still be delivered.
    """

    match: Match
    game: IGame
    sender: ISessionSender
    clock: IReactorTime
    config: RoomConfig = field(factory=RoomConfig)
    rng: random.Random = field(factory=random.Random)
    on_end: Callable[[Room], object] | None = None

    seats: tuple[Seat, ...] = field(init=False)
    state: Any = field(init=False)
    version: int = field(init=False, default=0)
    phase: Phase = field(init=False, default=Phase.WAITING)
    # The game's result once finished; the reason once aborted.
    result: Mapping[str, Any] | None = field(init=False, default=None)
    abort_reason: str | None = field(init=False, default=None)

    _members: dict[str, _Member] = field(init=False, factory=dict)
    _order: tuple[_Member, ...] = field(init=False, default=())
    _phase_ends: float | None = field(init=False, default=None)
    _phase_call: IDelayedCall | None = field(init=False, default=None)
    # The periodic state: one delayed call rescheduled each time (a
    # LoopingCall costs a Deferred and more memory in every room).
    _state_call: IDelayedCall | None = field(init=False, default=None)
    _tick_loop: LoopingCall | None = field(init=False, default=None)
    _last_tick: float = field(init=False, default=0.0)
    _game_errors: int = field(init=False, default=0)
    # Read from the game once: actions per second per player (0: unlimited),
    # and whether every player gets the same view.
    action_rate: float = field(init=False, default=0.0)
    _shared_view: bool = field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        # Games from the registry were checked as plugins; one passed directly
        # (to a SessionManager or here) is checked now, before it runs.
        _check_game_once(self.game)
        self.action_rate = action_rate_of(self.game)
        self._shared_view = shared_view_of(self.game)
        self.seats = tuple(
            Seat(player_id=t.player_id, name=t.name, index=i)
            for i, t in enumerate(self.match.players)
        )
        self._order = tuple(_Member(seat) for seat in self.seats)
        self._members = {m.seat.player_id: m for m in self._order}
        self.state = self.game.create(self.seats, self.config.options, self.rng)

    def __repr__(self) -> str:
        return (
            f"<Room {self.match.match_id} {self.game.name} {self.phase} v{self.version}"
            f" sessions={self.session_ids()}>"
        )

    # -- queries ------------------------------------------------------------

    @property
    def match_id(self) -> str:
        return self.match.match_id

    @property
    def ended(self) -> bool:
        """True once finished or aborted."""
        return self.phase is Phase.FINISHED or self.phase is Phase.ABORTED

    def remaining(self) -> float | None:
        """Seconds left in the current phase, or None if it has no end."""
        ends = self._phase_ends
        if ends is None:
            return None
        return max(0.0, ends - self.clock.seconds())

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
        return member is not None and member.grace is not None

    def has_left(self, player_id: str) -> bool:
        member = self._members.get(player_id)
        return member is not None and member.left

    def admission(self, player_id: str) -> Admission:
        """May this player connect now? (A seat that is free or held for them.)"""
        return self.check_admission(player_id)[0]

    def check_admission(self, player_id: str) -> tuple[Admission, str | None]:
        """`admission`, with the reason when the game's `check_join` refused the seat.

        The reason is the game's text (or "check_join failed" when the game
        raised); it is for the host's log and counters, not for the client,
        which only learns that it was denied.
        """
        member = self._members.get(player_id)
        if member is None:
            return Admission.REFUSE, None
        if member.left or self.ended:
            return Admission.FULL, None
        if member.session_id is not None:
            # Already connected: a second session for one seat is refused.
            return Admission.REFUSE, None
        if not member.joined:
            try:
                reason = self.game.check_join(self.state, member.seat)
            except Exception:
                self._game_error("check_join")
                return Admission.FULL, "check_join failed"
            if reason is not None:
                return Admission.FULL, str(reason)
        return Admission.ACCEPT, None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Open the room: the connect deadline and the periodic state start now."""
        self._set_phase_end(self.config.connect_deadline)
        self._phase_call = self.clock.callLater(
            self.config.connect_deadline, self._connect_deadline_passed
        )
        if self.config.state_interval > 0:
            self._state_call = self.clock.callLater(
                self.config.state_interval, self._periodic_state
            )

    def abort(self, reason: str) -> None:
        """End the room without a result, telling the connected players why."""
        if not self.ended:
            self.abort_reason = reason
            self._end(Phase.ABORTED)

    def _connect_deadline_passed(self) -> None:
        self._phase_call = None
        if self.phase is Phase.WAITING:
            self.abort("players_missing")

    def _maybe_start(self) -> None:
        if self.phase is not Phase.WAITING:
            return
        for member in self._order:
            if member.session_id is None:
                return
        self._cancel_phase_call()
        countdown = self.game.countdown
        if countdown and countdown > 0:
            self._enter(Phase.COUNTDOWN, countdown)
            self._phase_call = self.clock.callLater(countdown, self._start_play)
            self._broadcast_state()
        else:
            self._start_play()

    def _start_play(self) -> None:
        self._phase_call = None
        limit = self.game.time_limit
        has_limit = bool(limit and limit > 0)
        self._enter(Phase.PLAYING, limit if has_limit else None)
        if has_limit:
            self._phase_call = self.clock.callLater(limit, self._time_up)
        rate = self.game.tick_rate
        if rate and rate > 0:
            self._last_tick = self.clock.seconds()
            self._tick_loop = self._loop(self._tick, 1.0 / rate)
        self._broadcast_state()

    def _time_up(self) -> None:
        self._phase_call = None
        outcome = self._hook("time_up", self.game.time_up, self.state)
        if outcome is not None:
            self._apply(outcome)
        self._finish()

    def _tick(self) -> None:
        now = self.clock.seconds()
        dt = now - self._last_tick
        self._last_tick = now
        try:
            outcome = self.game.tick(self.state, dt, self.rng)
        except Exception:
            self._game_error("tick")
            return
        if self._apply(outcome):
            self._after_change()

    def _finish(self) -> None:
        try:
            self.result = dict(self.game.result(self.state))
        except Exception:
            self._game_error("result")
            self.result = {"winners": [], "reason": "error"}
        self._end(Phase.FINISHED)

    def _enter(self, phase: Phase, duration: float | None) -> None:
        self.phase = phase
        self.version += 1
        self._set_phase_end(duration)
        self._send_all(encode_phase(phase, self.version, self.remaining()))

    def _end(self, phase: Phase) -> None:
        self.phase = phase
        self.version += 1
        self._phase_ends = None
        self._cancel_timers()
        self._send_all(
            encode_phase(phase, self.version, None, result=self.result, reason=self.abort_reason)
        )
        # The final state goes on the reliable channel so that it is not lost.
        for member in self._order:
            if member.session_id is not None:
                self._send_state_reliably(member)
        if self.on_end is not None:
            self.on_end(self)

    def close(self) -> None:
        """Stop every timer (the owner removes the room); ends it as aborted if still running."""
        self.abort("closed")
        self._cancel_timers()

    # -- sessions -----------------------------------------------------------

    def player_connected(self, player_id: str, session_id: int) -> bool:
        """A session for this player was established; False if the seat cannot take it."""
        if self.admission(player_id) is not Admission.ACCEPT:
            return False
        member = self._members[player_id]
        member.session_id = session_id
        reconnected = member.joined
        if member.grace is not None:
            member.grace.cancel()
            member.grace = None
        # The welcome is the session's first message: before any event.
        self.sender.send_message(
            session_id,
            RELIABLE,
            encode_welcome(
                self.match.match_id, self.game.name, member.seat.index, self.seats, reconnected
            ),
        )
        member.joined = True
        if reconnected:
            outcome = self._hook("reconnect", self.game.reconnect, self.state, member.seat)
        else:
            outcome = self._hook("join", self.game.join, self.state, member.seat)
        changed = outcome is not None and self._apply(outcome)
        self._send_state_reliably(member)
        self._send_others(member, encode_presence(player_id, "connected"))
        if self.phase is Phase.WAITING:
            self._maybe_start()
            if changed and self.phase is Phase.WAITING:
                self._broadcast_state()
        elif changed:
            self._after_change()
        return True

    def player_disconnected(self, player_id: str, session_id: int) -> None:
        """The player's session closed: hold the seat for the reconnection window."""
        member = self._members.get(player_id)
        if member is None or member.session_id != session_id:
            return
        member.session_id = None
        if self.ended:
            return
        self._send_others(member, encode_presence(player_id, "disconnected"))
        member.grace = self.clock.callLater(self.config.reconnect_grace, self._grace_lapsed, member)

    def player_left(self, player_id: str) -> None:
        """The player left for good (a `leave` message): no reconnection window."""
        member = self._members.get(player_id)
        if member is None or member.left:
            return
        member.session_id = None
        if not self.ended:
            self._leave(member)

    def _grace_lapsed(self, member: _Member) -> None:
        member.grace = None
        if not self.ended and member.session_id is None:
            self._leave(member)

    def _leave(self, member: _Member) -> None:
        member.left = True
        if member.grace is not None:
            member.grace.cancel()
            member.grace = None
        outcome = self._hook("leave", self.game.leave, self.state, member.seat)
        changed = outcome is not None and self._apply(outcome)
        self._send_others(member, encode_presence(member.seat.player_id, "left"))
        if self.ended:
            return
        if self.phase is Phase.WAITING:
            self.abort("player_left")
        elif self.game.is_finished(self.state):
            self._finish()
        elif not any(m.session_id is not None or m.grace is not None for m in self._order):
            self.abort("abandoned")
        elif changed:
            self._broadcast_state()

    # -- actions ------------------------------------------------------------

    def handle_action(
        self, player_id: str, action: Mapping[str, Any], action_id: int | None
    ) -> bool:
        """Apply one action of this seated player; True if applied.

        A rejected action (wrong phase, stale, illegal) changes nothing and is
        answered with an `error` to its sender only.
        """
        member = self._members[player_id]
        if self.phase is not _PLAYING:
            self._send_error(member, "not_playing", f"the game is {self.phase}", action_id)
            return False
        game = self.game
        try:
            outcome = game.apply_action(self.state, member.seat, action, self.rng)
        except IllegalAction as e:
            self._send_error(member, e.code, e.message, action_id)
            return False
        except Exception:
            # A game bug or an input the game did not expect: the state is
            # immutable, so nothing changed; only the sender hears of it.
            self._game_error("apply_action")
            self._send_error(member, "internal_error", "the game failed on this action", action_id)
            return False
        member.last_action_id = action_id
        self.state = state = outcome.state
        self.version += 1
        events = outcome.events
        if events:
            for event in events:
                self._send_event(event)
        if game.is_finished(state):
            self._finish()
        else:
            self._broadcast_state()
        return True

    def send_error(
        self, player_id: str, code: str, message: str, action_id: int | None = None
    ) -> None:
        """Send an ``error`` to this player's session, if connected (see `handle_action`)."""
        member = self._members.get(player_id)
        if member is not None:
            self._send_error(member, code, message, action_id)

    def send_state(self, player_id: str) -> None:
        """Send the current state to this player on the reliable channel (`sync`)."""
        member = self._members.get(player_id)
        if member is not None and member.session_id is not None:
            self._send_state_reliably(member)

    # -- internals ----------------------------------------------------------

    def _apply(self, outcome: Outcome) -> bool:
        """Adopt a hook's outcome and send its events; True if the state changed."""
        changed = outcome.state is not self.state
        if changed:
            self.state = outcome.state
            self.version += 1
        for event in outcome.events:
            self._send_event(event)
        return changed

    def _after_change(self) -> None:
        if self.phase is not Phase.WAITING and self.game.is_finished(self.state):
            self._finish()
        else:
            self._broadcast_state()

    def _broadcast_state(self) -> None:
        send = self.sender.send_message
        ends = self._phase_ends
        remaining = None
        if ends is not None:
            remaining = ends - self.clock.seconds()
            if remaining < 0.0:
                remaining = 0.0
        version, phase, state = self.version, self.phase, self.state
        try:
            if self._shared_view:
                # One view and one encoding for everyone; only a recipient
                # whose last action id differs gets a copy with theirs.
                data = b""
                first_id = None
                for member in self._order:
                    session_id = member.session_id
                    if session_id is None:
                        continue
                    action_id = member.last_action_id
                    if not data:
                        first_id = action_id
                        view = self.game.view(state, member.seat.player_id)
                        data = encode_state(version, phase, remaining, view, action_id)
                        send(session_id, UNRELIABLE, data)
                    elif action_id is first_id:
                        send(session_id, UNRELIABLE, data)
                    else:
                        send(
                            session_id,
                            UNRELIABLE,
                            state_with_action_id(data, first_id, action_id),
                        )
            else:
                view_for = self.game.view
                for member in self._order:
                    session_id = member.session_id
                    if session_id is not None:
                        view = view_for(state, member.seat.player_id)
                        send(
                            session_id,
                            UNRELIABLE,
                            encode_state(version, phase, remaining, view, member.last_action_id),
                        )
        except Exception:
            self._game_error("view")

    def _send_state_reliably(self, member: _Member) -> None:
        assert member.session_id is not None
        try:
            data = encode_state(
                self.version,
                self.phase,
                self.remaining(),
                self.game.view(self.state, member.seat.player_id),
                member.last_action_id,
            )
        except Exception:
            self._game_error("view")
            return
        self.sender.send_message(member.session_id, RELIABLE, data)

    def _send_event(self, event: GameEvent) -> None:
        try:
            data = encode_event(self.version, event.name, event.data)
        except Exception:
            self._game_error("event")
            return
        to = event.to
        send = self.sender.send_message
        for member in self._order:
            session_id = member.session_id
            if session_id is not None and (to is None or member.seat.player_id in to):
                send(session_id, RELIABLE, data)

    def _send_error(self, member: _Member, code: str, message: str, action_id: int | None) -> None:
        if member.session_id is not None:
            self.sender.send_message(
                member.session_id, RELIABLE, encode_error(code, message, action_id)
            )

    def _send_all(self, data: bytes) -> None:
        for member in self._order:
            if member.session_id is not None:
                self.sender.send_message(member.session_id, RELIABLE, data)

    def _send_others(self, sender: _Member, data: bytes) -> None:
        for member in self._order:
            if member is not sender and member.session_id is not None:
                self.sender.send_message(member.session_id, RELIABLE, data)

    def _hook(self, name: str, hook: Callable[..., Outcome], *args: Any) -> Outcome | None:
        try:
            return hook(*args)
        except Exception:
            self._game_error(name)
            return None

    def _game_error(self, where: str) -> None:
        # Log the first failures with a traceback, then only count them, so a
        # client cannot flood the log by sending what the game chokes on.
        self._game_errors += 1
        if self._game_errors <= 3:
            log.failure(
                "Game {game} failed in {where} (room {match_id})",
                game=self.game.name,
                where=where,
                match_id=self.match.match_id,
            )

    @property
    def game_errors(self) -> int:
        """How many times the game's code raised (other than `IllegalAction`)."""
        return self._game_errors

    def _set_phase_end(self, duration: float | None) -> None:
        self._phase_ends = None if duration is None else self.clock.seconds() + duration

    def _periodic_state(self) -> None:
        self._state_call = self.clock.callLater(self.config.state_interval, self._periodic_state)
        self._broadcast_state()

    def _loop(self, function: Callable[[], None], interval: float) -> LoopingCall:
        loop = LoopingCall(function)
        loop.clock = self.clock
        loop.start(interval, now=False).addErrback(
            lambda failure: log.failure("Room loop failed", failure)
        )
        return loop

    def _cancel_phase_call(self) -> None:
        if self._phase_call is not None:
            if self._phase_call.active():
                self._phase_call.cancel()
            self._phase_call = None

    def _cancel_timers(self) -> None:
        self._cancel_phase_call()
        if self._state_call is not None:
            if self._state_call.active():
                self._state_call.cancel()
            self._state_call = None
        if self._tick_loop is not None and self._tick_loop.running:
            self._tick_loop.stop()
        self._tick_loop = None
        for member in self._order:
            if member.grace is not None:
                member.grace.cancel()
                member.grace = None
