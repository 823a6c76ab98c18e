"""The session manager: which sessions belong to which seats of which rooms.

It is the game host's `IAdmission` (the handshake asks it whether a connect
token's player may connect) and its `ISessionSink` (the UDP adapter reports
sessions and messages to it). It knows every match hosted here (the session
list: players, seats, rooms), maps each authenticated session to its player
and room, and hands decoded messages to the room. The acting player is always
the session's player; nothing in a payload can name another.

Per message the work is two dict lookups, one msgpack decode and the room's
call; malformed messages are dropped silently and counted in `drops` by
reason (the UDP rule: never a reply to garbage).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from attrs import Factory, define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from vinom.games.interfaces import IGame
from vinom.matchmaking.interfaces import Match
from vinom.protocol.events import RELIABLE, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission, IAdmission, ISessionSender, ISessionSink
from vinom.rooms.messages import ClientMessageKind, decode_client_message
from vinom.rooms.registry import RoomRegistry
from vinom.rooms.room import Room, RoomConfig

log = Logger()

_ACTION = ClientMessageKind.ACTION
_SYNC = ClientMessageKind.SYNC


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
    # Dropped client messages by reason (see `decode_client_message`, plus
    # `unknown_session` and `wrong_channel`).
    drops: Counter[str] = field(init=False, factory=Counter)
    # Other counts: actions_applied, actions_rejected, sessions_opened,
    # sessions_refused, sessions_closed, internal_errors.
    counters: Counter[str] = field(init=False, factory=Counter)
    _sessions: dict[int, tuple[str, Room]] = field(init=False, factory=dict, repr=False)
    _idle_waiters: list[Deferred[None]] = field(init=False, factory=list, repr=False)

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
        return None if entry is None else (entry[0], entry[1].match_id)

    # -- IAdmission ---------------------------------------------------------

    def admit(self, player_id: str, match_id: str) -> Admission:
        room = self.registry.get(match_id)
        if room is None:
            return Admission.REFUSE
        return room.admission(player_id)

    # -- ISessionSink -------------------------------------------------------

    def session_connected(self, event: SessionConnected) -> None:
        session_id = event.session_id
        try:
            if session_id in self._sessions:
                # The adapter reused an id we still hold: the old one is gone.
                self._forget(session_id)
            room = self.registry.get(event.match_id)
            if room is not None:
                self._sessions[session_id] = (event.player_id, room)
                if room.player_connected(event.player_id, session_id):
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
        player_id, room = entry
        try:
            kind = message.kind
            if kind is _ACTION:
                assert message.action is not None
                if room.handle_action(player_id, message.action, message.action_id):
                    self.counters["actions_applied"] += 1
                else:
                    self.counters["actions_rejected"] += 1
            elif kind is _SYNC:
                room.send_state(player_id)
            else:
                self._sessions.pop(session_id, None)
                room.player_left(player_id)
                self._close(session_id)
                self._remove_if_vacated(room)
        except Exception:
            self._internal_error("message_received")

    def session_closed(self, event: SessionClosed) -> None:
        try:
            self._forget(event.session_id)
        except Exception:
            self._internal_error("session_closed")

    # -- internals ----------------------------------------------------------

    def _forget(self, session_id: int) -> None:
        entry = self._sessions.pop(session_id, None)
        if entry is None:
            return
        self.counters["sessions_closed"] += 1
        player_id, room = entry
        room.player_disconnected(player_id, session_id)
        self._remove_if_vacated(room)

    def _remove_if_vacated(self, room: Room) -> None:
        # An ended room lingers only for its players' sakes: once they have
        # all gone there is nothing left to deliver.
        if room.ended and not room.session_ids() and self.registry.get(room.match_id) is room:
            self.registry.remove(room.match_id)

    def _room_removed(self, room: Room) -> None:
        for session_id in room.session_ids():
            entry = self._sessions.get(session_id)
            if entry is not None and entry[1] is room:
                del self._sessions[session_id]
                self._close(session_id)
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
