"""The session manager: which sessions belong to which seats of which rooms.

It is the game host's `IAdmission` (the handshake asks it whether a connect
token's player may connect) and its `ISessionSink` (the UDP adapter reports
sessions and messages to it). It knows every match hosted here (the session
list: players, seats, rooms), maps each authenticated session to its player
and room, and hands decoded messages to the room. The acting player is always
the session's player; nothing in a payload can name another.

Per message the work is a dict lookup, one msgpack decode and the room's
call; malformed messages are dropped silently and counted in `drops` by
reason (the UDP rule: never a reply to garbage).

Rate limits (docs/games.md, "Action rate"): each player has a token bucket
for actions at their game's `action_rate` (a burst of `ACTION_BURST` seconds'
worth; none when the rate is 0) and one for `sync` at `sync_rate`. The
buckets belong to the player, not the session, so reconnecting refills
nothing. An action that finds no token is held (in order, at most
`max_held_actions` per session) and applied as soon as the bucket allows, so
a client with one action in flight is slowed down, never stalled; an action
beyond that is dropped (``drops["rate_limited"]``) and its sender hears an
``error`` with code ``rate_limited`` at most once per `notice_interval`
seconds. Actions still held when the room ends are dropped
(``drops["held_at_end"]``) without an error: the players have the final
phase. A `sync` without a token is dropped silently
(``drops["sync_rate_limited"]``).
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from attrs import Factory, define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from vinom.games.interfaces import ACTION_BURST, IGame
from vinom.matchmaking.interfaces import Match
from vinom.protocol.events import RELIABLE, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission, IAdmission, ISessionSender, ISessionSink
from vinom.ratelimit import TokenBucket
from vinom.rooms.messages import ClientMessageKind, decode_client_message
from vinom.rooms.registry import RoomRegistry
from vinom.rooms.room import Room, RoomConfig

log = Logger()

_ACTION = ClientMessageKind.ACTION
_SYNC = ClientMessageKind.SYNC
RATE_LIMITED = "rate_limited"


@define(eq=False)
class _PlayerLimits:
    """A player's buckets; they outlive the player's sessions, not the room."""

    actions: TokenBucket | None
    syncs: TokenBucket
    # When the player was last told that an action was dropped.
    noticed_at: float = -math.inf


class _Session:
    """An authenticated session: whose it is, its room, and its held actions."""

    __slots__ = ("actions", "held", "limits", "player_id", "room", "session_id", "timer")

    def __init__(
        self, session_id: int, player_id: str, room: Room, limits: _PlayerLimits | None
    ) -> None:
        self.session_id = session_id
        self.player_id = player_id
        self.room = room
        # None until needed when the game's actions are unlimited (an idle
        # session of such a game costs no buckets).
        self.limits = limits
        # The action bucket, or None when actions are unlimited (the hot path).
        self.actions = None if limits is None else limits.actions
        # Actions waiting for a token, oldest first, and the timer that applies them.
        self.held: deque[tuple[Mapping[str, Any], int | None]] | None = None
        self.timer: IDelayedCall | None = None

    def drop_held(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        self.held = None


@implementer(IAdmission, ISessionSink)
@define
class SessionManager:
    """Admits a match's players, routes their sessions to rooms, and tracks idleness.

    `games` maps a game name to its `IGame` (for example a game registry's
    lookup). `sender` (the UDP adapter) may be set after construction, since
    the adapter and the manager refer to each other, but before `add_match`.
    """

    games: Callable[[str], IGame]
    clock: IReactorTime
    sender: ISessionSender | None = None
    config: RoomConfig = field(factory=RoomConfig)
    registry: RoomRegistry = field(
        repr=False, default=Factory(lambda self: RoomRegistry(self.clock), takes_self=True)
    )
    # `sync` requests per second per player (a burst of ACTION_BURST seconds' worth).
    sync_rate: float = 2.0
    # Actions of one session waiting for a token; more are dropped.
    max_held_actions: int = 8
    # Seconds between two `rate_limited` errors to one player.
    notice_interval: float = 1.0
    # Seconds between two log lines about refused joins (the rest are counted).
    log_interval: float = 10.0
    # Dropped client messages by reason (see `decode_client_message`, plus
    # `unknown_session`, `wrong_channel`, `rate_limited`, `held_at_end` and
    # `sync_rate_limited`).
    drops: Counter[str] = field(init=False, factory=Counter)
    # Other counts: actions_applied, actions_rejected, actions_delayed,
    # sessions_opened, sessions_refused, sessions_closed, joins_refused
    # (the game's check_join said no), internal_errors.
    counters: Counter[str] = field(init=False, factory=Counter)
    _sessions: dict[int, _Session] = field(init=False, factory=dict, repr=False)
    # Rate limits by (match id, player id), for the life of the room.
    _limits: dict[tuple[str, str], _PlayerLimits] = field(init=False, factory=dict, repr=False)
    _idle_waiters: list[Deferred[None]] = field(init=False, factory=list, repr=False)
    _refusals_logged_at: float = field(init=False, default=-math.inf, repr=False)
    _refusals_unlogged: int = field(init=False, default=0, repr=False)

    def __attrs_post_init__(self) -> None:
        self.registry.add_removal_listener(self._room_removed)

    # -- matches ------------------------------------------------------------

    def add_match(
        self, match: Match, config: RoomConfig | None = None, rng: random.Random | None = None
    ) -> Room:
        """Host `match`: its players may connect from now on, until its room is removed.

        Raises KeyError from `games` for an unknown game and `RoomExists` for a
        match id hosted already.
        """
        if self.sender is None:
            raise RuntimeError("SessionManager.sender must be set before add_match")
        game = self.games(match.game)
        return self.registry.create(
            match, game, self.sender, config if config is not None else self.config, rng
        )

    def room(self, match_id: str) -> Room | None:
        return self.registry.get(match_id)

    def when_idle(self) -> Deferred[None]:
        """Fires when no room is left (at once if there is none now)."""
        if len(self.registry) == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def shutdown(self, reason: str = "shutdown") -> None:
        """Abort every room, telling its players `reason`, and remove it now."""
        for room in self.registry:
            room.abort(reason)
            self.registry.remove(room.match_id)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def session_player(self, session_id: int) -> tuple[str, str] | None:
        """(player id, match id) of a session, or None."""
        entry = self._sessions.get(session_id)
        return None if entry is None else (entry.player_id, entry.room.match_id)

    # -- IAdmission ---------------------------------------------------------

    def admit(self, player_id: str, match_id: str) -> Admission:
        room = self.registry.get(match_id)
        if room is None:
            return Admission.REFUSE
        admission, reason = room.check_admission(player_id)
        if reason is not None:
            self._join_refused(room, player_id, reason)
        return admission

    # -- ISessionSink -------------------------------------------------------

    def session_connected(self, event: SessionConnected) -> None:
        session_id = event.session_id
        try:
            if session_id in self._sessions:
                # The adapter reused an id we still hold: the old one is gone.
                self._forget(session_id)
            room = self.registry.get(event.match_id)
            player_id = event.player_id
            if room is not None and room.seat_of(player_id) is not None:
                self._sessions[session_id] = _Session(
                    session_id,
                    player_id,
                    room,
                    self._limits_of(room, player_id, create=room.action_rate > 0),
                )
                if room.player_connected(player_id, session_id):
                    self.counters["sessions_opened"] += 1
                    return
                del self._sessions[session_id]
            # Admitted during the handshake but no longer admissible (the room
            # ended or the seat was taken meanwhile).
            self.counters["sessions_refused"] += 1
            self._close(session_id)
        except Exception:
            self._internal_error("session_connected")

    def message_received(self, session_id: int, channel: int, data: bytes) -> None:
        entry = self._sessions.get(session_id)
        if entry is None:
            self.drops["unknown_session"] += 1
            return
        if channel != RELIABLE:
            self.drops["wrong_channel"] += 1
            return
        message = decode_client_message(data, self.drops)
        if message is None:
            return
        try:
            kind, action, action_id = message
            if kind is _ACTION:
                assert action is not None
                if entry.actions is None:
                    if entry.room.handle_action(entry.player_id, action, action_id):
                        self.counters["actions_applied"] += 1
                    else:
                        self.counters["actions_rejected"] += 1
                else:
                    self._limited_action(entry, action, action_id)
            elif kind is _SYNC:
                limits = entry.limits
                if limits is None:
                    limits = entry.limits = self._limits_of(entry.room, entry.player_id)
                assert limits is not None
                if limits.syncs.take(self.clock.seconds()):
                    entry.room.send_state(entry.player_id)
                else:
                    self.drops["sync_rate_limited"] += 1
            else:
                room = entry.room
                self._sessions.pop(session_id, None)
                entry.drop_held()
                room.player_left(entry.player_id)
                self._close(session_id)
                self._remove_if_vacated(room)
        except Exception:
            self._internal_error("message_received")

    def session_closed(self, event: SessionClosed) -> None:
        try:
            self._forget(event.session_id)
        except Exception:
            self._internal_error("session_closed")

    # -- rate limits --------------------------------------------------------

    def _limits_of(self, room: Room, player_id: str, create: bool = True) -> _PlayerLimits | None:
        key = (room.match_id, player_id)
        limits = self._limits.get(key)
        if limits is None and create:
            now = self.clock.seconds()
            rate = room.action_rate
            actions = None
            if rate > 0:
                actions = TokenBucket(rate, max(1.0, rate * ACTION_BURST), now)
            syncs = TokenBucket(self.sync_rate, max(1.0, self.sync_rate * ACTION_BURST), now)
            limits = self._limits[key] = _PlayerLimits(actions, syncs)
        return limits

    def _limited_action(
        self, entry: _Session, action: Mapping[str, Any], action_id: int | None
    ) -> None:
        now = self.clock.seconds()
        bucket = entry.actions
        assert bucket is not None
        held = entry.held
        if not held and bucket.take(now):
            self._apply(entry, action, action_id)
            return
        if held is None:
            held = entry.held = deque()
        if len(held) < self.max_held_actions:
            # Held, in order behind any earlier one, until a token comes.
            held.append((action, action_id))
            self.counters["actions_delayed"] += 1
            if entry.timer is None:
                entry.timer = self.clock.callLater(bucket.wait(now), self._release, entry)
            return
        self.drops[RATE_LIMITED] += 1
        limits = entry.limits
        assert limits is not None
        if now - limits.noticed_at >= self.notice_interval:
            limits.noticed_at = now
            entry.room.send_error(
                entry.player_id, RATE_LIMITED, "too many actions: this one was dropped", action_id
            )

    def _release(self, entry: _Session) -> None:
        """Apply the held actions the bucket now allows; wait again for the rest."""
        entry.timer = None
        if self._sessions.get(entry.session_id) is not entry or not entry.held:
            entry.held = None
            return
        held = entry.held
        if entry.room.ended:
            # The match ended while they waited: the players have the final
            # phase and state, and an error per held action would tell nothing.
            self.drops["held_at_end"] += len(held)
            entry.held = None
            return
        bucket = entry.actions
        assert bucket is not None
        now = self.clock.seconds()
        try:
            while held and bucket.take(now):
                action, action_id = held.popleft()
                self._apply(entry, action, action_id)
                if self._sessions.get(entry.session_id) is not entry:
                    return  # the action ended the session (the room ended and was removed)
        except Exception:
            self._internal_error("held action")
        if held:
            entry.timer = self.clock.callLater(bucket.wait(now), self._release, entry)
        else:
            entry.held = None

    def _apply(self, entry: _Session, action: Mapping[str, Any], action_id: int | None) -> None:
        if entry.room.handle_action(entry.player_id, action, action_id):
            self.counters["actions_applied"] += 1
        else:
            self.counters["actions_rejected"] += 1

    # -- internals ----------------------------------------------------------

    def _join_refused(self, room: Room, player_id: str, reason: str) -> None:
        # A player with a valid token can retry the handshake at will: log at
        # most one line per interval, count every refusal.
        self.counters["joins_refused"] += 1
        now = self.clock.seconds()
        if now - self._refusals_logged_at < self.log_interval:
            self._refusals_unlogged += 1
            return
        self._refusals_logged_at = now
        unlogged, self._refusals_unlogged = self._refusals_unlogged, 0
        log.info(
            "Game {game} refused player {player_id} in room {match_id}: {reason}"
            " ({unlogged} more refusals since the last such message)",
            game=room.game.name,
            player_id=player_id,
            match_id=room.match_id,
            reason=reason,
            unlogged=unlogged,
        )

    def _forget(self, session_id: int) -> None:
        entry = self._sessions.pop(session_id, None)
        if entry is None:
            return
        entry.drop_held()
        self.counters["sessions_closed"] += 1
        room = entry.room
        room.player_disconnected(entry.player_id, session_id)
        self._remove_if_vacated(room)

    def _remove_if_vacated(self, room: Room) -> None:
        # An ended room lingers only for its players' sakes: once they have
        # all gone there is nothing left to deliver.
        if room.ended and not room.session_ids() and self.registry.get(room.match_id) is room:
            self.registry.remove(room.match_id)

    def _room_removed(self, room: Room) -> None:
        for session_id in room.session_ids():
            entry = self._sessions.get(session_id)
            if entry is not None and entry.room is room:
                del self._sessions[session_id]
                entry.drop_held()
                self._close(session_id)
        for seat in room.seats:
            self._limits.pop((room.match_id, seat.player_id), None)
        if len(self.registry) == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _close(self, session_id: int) -> None:
        if self.sender is not None:
            self.sender.close_session(session_id)

    def _internal_error(self, where: str) -> None:
        self.counters["internal_errors"] += 1
        log.failure("Session manager failed in {where}", where=where)
