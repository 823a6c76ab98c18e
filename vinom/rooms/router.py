"""The seat router: which authenticated sessions sit in which seats of which rooms.

The game host core asks it whether a connect token's player may connect
(`admit`, during the handshake) and hands it the endpoint's session events
(`session_connected`, `message_received`, `session_closed`), each with `now`.
It knows every match hosted here (players, seats, rooms), binds each
authenticated session to its player's seat, and hands decoded messages to
the room. The acting player is always the session's player; nothing in a
payload can name another. Like the rooms it is sans-I/O: what it sends or
closes goes to an outbox (the endpoint), its deadlines to the host's
`TimerQueue`.

Per message the work is a dict lookup, one msgpack decode and the room's
call; malformed messages are dropped silently and counted in `drops` by
reason (the UDP rule: never a reply to garbage).

Rate limits (docs/games.md, "Action rate"): each player has a token bucket
for actions at their game's `action_rate` (a burst of `ACTION_BURST` seconds'
worth; none when the rate is 0) and one for `sync` at `sync_rate`. The
buckets belong to the player, not the session, so reconnecting refills
nothing; they are made at the player's first action or sync (a bucket starts
full), so an idle player holds none. An action that finds no token is held (in order, at most
`max_held_actions` per session) and applied as soon as the bucket allows, so
a client with one action in flight is slowed down, never stalled; an action
beyond that is dropped (``drops["rate_limited"]``) and its sender hears an
``error`` with code ``rate_limited`` at most once per `notice_interval`
seconds. Actions still held when the room ends are dropped
(``drops["held_at_end"]``) without an error: the players have the final
phase. A `sync` without a token is dropped silently
(``drops["sync_rate_limited"]``).

Real-time inputs: in a room whose game has a tick, ``input`` messages come
on the unreliable channel and go to the room's jitter buffer
(`Room.handle_inputs`). They take no token of the action rate (each repeats
the last few, and is bounded to `MAX_INPUTS_PER_MESSAGE` pairs), but each
session has a bucket of its own for them: `INPUT_MESSAGES_PER_TICK` messages
a tick of its game, a burst of a second's worth; every message on the
unreliable channel takes a token before it is decoded, and one that finds
none is dropped (``drops["input_rate_limited"]``), so that a flood costs the
host a bucket's arithmetic per datagram. A session that keeps far over its
bucket is closed: its dropped messages take tokens of a second bucket, at
the first one's rate with `FLOOD_SECONDS` seconds' worth of burst, and the
one that finds none is counted ``drops["flood"]`` instead and ends the
session (its seat is held as after a timeout), after which the flood's
datagrams cost what a stranger's do. Anything else on that channel, and
an ``input`` on the reliable one or in a room without a tick, is dropped
(``drops["wrong_channel"]``). A stream session (WebSocket, WebTransport) has
one ordered channel for everything: its messages come as `STREAM`, where an
``input`` is as good as on the unreliable channel. What became of the inputs
is counted by the rooms (`input_counts`), summed here for the host's metrics.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from attrs import Factory, define, field
from twisted.logger import Logger

from vinom.games.interfaces import ACTION_BURST, IGame
from vinom.match import Match
from vinom.net.ratelimit import TokenBucket
from vinom.protocol.events import RELIABLE, UNRELIABLE, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.rooms.client_messages import ClientMessage, ClientMessageKind, decode_client_message
from vinom.rooms.messages import ticking_ack_delays
from vinom.rooms.outbox import SessionOutbox
from vinom.rooms.record import MatchRecorder
from vinom.rooms.registry import RoomRegistry
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.timers import TimerQueue

log = Logger()

_ACTION = ClientMessageKind.ACTION
_SYNC = ClientMessageKind.SYNC
_INPUT = ClientMessageKind.INPUT
RATE_LIMITED = "rate_limited"
INPUT_RATE_LIMITED = "input_rate_limited"
_INF = math.inf

#: The channel a stream session's messages come on (WebSocket, WebTransport): one
#: ordered channel that carries every kind of message, ``input`` included.
STREAM = -1
#: ``input`` messages one session may send per tick of its game (a client sends
#: one a tick, or fewer: ack-only ones at most ten a second); a burst of a
#: second's worth. More are dropped (``drops["input_rate_limited"]``).
INPUT_MESSAGES_PER_TICK = 4
#: A session's input messages over its bucket, in seconds of the bucket's rate,
#: that close it (refilled at that rate: a session sending more than twice its
#: bucket for long, or this much over it at once). An honest client sends at
#: most one a tick, a quarter of the bucket; what a stalled link then delivers
#: at once must have been held back 44 s to come near.
FLOOD_SECONDS = 10
FLOOD = "flood"


@define(eq=False)
class _PlayerLimits:
    """A player's buckets; they outlive the player's sessions, not the room."""

    actions: TokenBucket | None
    syncs: TokenBucket
    # When the player was last told that an action was dropped.
    noticed_at: float = -math.inf


class _SeatBinding:
    """An authenticated session bound to its player's seat: the room, and held actions.

    While actions are held, `wake` is when the next may be applied (see
    `TimerQueue`); the router's `release_held` applies them.
    """

    __slots__ = (
        "actions", "held", "inputs", "limits", "overdraft", "player_id", "room", "router",
        "session_id", "wake",
    )  # fmt: skip

    def __init__(
        self,
        router: SeatRouter,
        session_id: int,
        player_id: str,
        room: Room,
        limits: _PlayerLimits | None,
    ) -> None:
        self.router = router
        self.session_id = session_id
        self.player_id = player_id
        self.room = room
        # None until first needed (an action or a sync): an idle session costs
        # no buckets. A bucket starts full, so one made at the first action is
        # the one an idle seat's would be by then.
        self.limits = limits
        # The action bucket, or None when actions are unlimited (the hot path) or
        # the bucket is not made yet.
        self.actions = None if limits is None else limits.actions
        # Actions waiting for a token, oldest first, and when the next may go.
        self.held: deque[tuple[Mapping[str, Any], int | None]] | None = None
        self.wake = _INF
        # The session's bucket of input messages (a ticking room), made at its first.
        self.inputs: TokenBucket | None = None
        # What it may send over that bucket before it is closed (`FLOOD_SECONDS`),
        # made at its first message over.
        self.overdraft: TokenBucket | None = None

    def handle_timer(self, now: float) -> None:
        self.router.release_held(self, now)

    def drop_held(self) -> None:
        self.wake = _INF  # its entry in the timer queue is stale now
        self.held = None


@define
class SeatRouter:
    """Admits a match's players, binds their sessions to seats and rate-limits their actions.

    `find_game` maps a game name to its `IGame` (for example a game registry's
    lookup); `outbox` queues messages for sessions and closes them (the
    endpoint); `timers` is the host's timer queue, shared with the rooms.
    """

    find_game: Callable[[str], IGame]
    outbox: SessionOutbox
    timers: TimerQueue
    config: RoomConfig = field(factory=RoomConfig)
    registry: RoomRegistry = field(
        repr=False, default=Factory(lambda self: RoomRegistry(self.timers), takes_self=True)
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
    # `unknown_session`, `wrong_channel`, `rate_limited`, `held_at_end`,
    # `sync_rate_limited`, `input_rate_limited` and `flood`).
    drops: Counter[str] = field(init=False, factory=Counter)
    # Other counts: actions_applied, actions_rejected, actions_delayed,
    # sessions_opened, sessions_refused, sessions_closed, joins_refused
    # (the game's check_join said no), internal_errors.
    counters: Counter[str] = field(init=False, factory=Counter)
    _bindings: dict[int, _SeatBinding] = field(init=False, factory=dict, repr=False)
    # Rate limits by (match id, player id), for the life of the room.
    _limits: dict[tuple[str, str], _PlayerLimits] = field(init=False, factory=dict, repr=False)
    # The input counts of the rooms removed so far (`input_counts`).
    _retired_inputs: Counter[str] = field(init=False, factory=Counter, repr=False)
    # The snapshot entity counts of the rooms removed so far (`entity_counts`).
    _retired_entities: Counter[str] = field(init=False, factory=Counter, repr=False)
    _refusals_logged_at: float = field(init=False, default=-math.inf, repr=False)
    _refusals_unlogged: int = field(init=False, default=0, repr=False)

    def __attrs_post_init__(self) -> None:
        self.registry.add_removal_listener(self._room_removed)

    # -- matches ------------------------------------------------------------

    def add_match(
        self,
        match: Match,
        now: float,
        config: RoomConfig | None = None,
        rng: random.Random | None = None,
        recorder: MatchRecorder | None = None,
    ) -> Room:
        """Host `match` from `now`: its players may connect until its room is removed.

        Raises KeyError from `find_game` for an unknown game and `RoomExists` for a
        match id hosted already.
        """
        game = self.find_game(match.game)
        return self.registry.create(
            match, game, self.outbox, now, config if config is not None else self.config, rng,
            recorder,
        )

    def room(self, match_id: str) -> Room | None:
        return self.registry.get(match_id)

    def shutdown(self, reason: str, now: float) -> None:
        """Abort every room, telling its players `reason`, and remove it now."""
        for room in self.registry:
            room.abort(reason, now)
            self.registry.remove(room.match_id, now)

    @property
    def session_count(self) -> int:
        """Sessions bound to seats."""
        return len(self._bindings)

    def session_player(self, session_id: int) -> tuple[str, str] | None:
        """(player id, match id) of a session, or None."""
        entry = self._bindings.get(session_id)
        return None if entry is None else (entry.player_id, entry.room.match_id)

    # -- the endpoint's admission check and events ---------------------------

    def admit(self, player_id: str, match_id: str, now: float) -> Admission:
        """May this token's player connect now? (Synchronous: the handshake may not wait.)"""
        room = self.registry.get(match_id)
        if room is None:
            return Admission.REFUSE
        admission, reason = room.check_admission(player_id)
        if reason is not None:
            self._join_refused(room, player_id, reason, now)
        return admission

    def session_connected(self, event: SessionConnected, now: float) -> None:
        session_id = event.session_id
        try:
            if session_id in self._bindings:
                # The endpoint reused an id we still hold: the old one is gone.
                self._forget(session_id, now)
            room = self.registry.get(event.match_id)
            player_id = event.player_id
            if room is not None and room.seat_of(player_id) is not None:
                self._bindings[session_id] = _SeatBinding(
                    self,
                    session_id,
                    player_id,
                    room,
                    self._limits_of(room, player_id, now, create=False),
                )
                if room.player_connected(player_id, session_id, now):
                    self.counters["sessions_opened"] += 1
                    if room.tick_rate > 0 and room.snapshot_rate > 0:
                        host, client = ticking_ack_delays(room.tick_rate, room.snapshot_rate)
                        self.tune_ack_delays(session_id, host, client)
                    return
                del self._bindings[session_id]
            # Admitted during the handshake but no longer admissible (the room
            # ended or the seat was taken meanwhile).
            self.counters["sessions_refused"] += 1
            self.outbox.close_session(session_id)
        except Exception:
            self._internal_error("session_connected")

    def tune_ack_delays(self, session_id: int, own_s: float, peer_s: float) -> None:
        """A session joined a ticking room: its acks should ride on the states
        (the host holds an owed ack up to `own_s`, a snapshot interval) and the
        client's on its inputs (`peer_s`, a tick), with no ack-only datagrams."""
        self.outbox.set_ack_delays(session_id, own_s, peer_s)

    def input_counts(self) -> Counter[str]:
        """What became of the real-time inputs of every room hosted here so far
        (`Room.input_counts`: held, late, early, duplicate, applied, rejected...)."""
        total = Counter(self._retired_inputs)
        for room in self.registry:
            total.update(room.input_counts)
        return total

    def entity_counts(self) -> Counter[str]:
        """The entities of every room hosted here so far whose game sets a snapshot
        budget: changed ones sent, their waits, and the overdue ones sent past the
        budget (`Room.entity_counts`)."""
        total = Counter(self._retired_entities)
        for room in self.registry:
            total.update(room.entity_counts)
        return total

    def message_received(self, session_id: int, channel: int, data: bytes, now: float) -> None:
        entry = self._bindings.get(session_id)
        if entry is None:
            self.drops["unknown_session"] += 1
            return
        if channel == UNRELIABLE:
            if entry.room.tick_rate > 0:
                self._unreliable(entry, data, now)
            else:
                self.drops["wrong_channel"] += 1
            return
        if channel != RELIABLE and channel != STREAM:
            self.drops["wrong_channel"] += 1
            return
        message = decode_client_message(data, self.drops)
        if message is None:
            return
        try:
            kind, action, action_id, _, _, _ = message
            if kind is _INPUT:
                # Over UDP inputs travel unreliable (channel 0); a stream session
                # has one ordered channel, whose messages come as `STREAM`.
                if channel == STREAM and entry.room.tick_rate > 0:
                    if self._input_allowed(entry, now):
                        self._inputs(entry, message, now)
                else:
                    self.drops["wrong_channel"] += 1
            elif kind is _ACTION:
                assert action is not None
                # The usual case inline: no limit at all, or nothing held and a
                # token in the bucket (made at the player's first action, below).
                bucket = entry.actions
                if (bucket is None and entry.room.action_rate <= 0) or (
                    bucket is not None and not entry.held and bucket.take(now)
                ):
                    if entry.room.handle_action(entry.player_id, action, action_id, now):
                        self.counters["actions_applied"] += 1
                    else:
                        self.counters["actions_rejected"] += 1
                else:
                    self._limited_action(entry, action, action_id, now)
            elif kind is _SYNC:
                limits = entry.limits
                if limits is None:
                    limits = entry.limits = self._limits_of(entry.room, entry.player_id, now)
                assert limits is not None
                if limits.syncs.take(now):
                    entry.room.send_state(entry.player_id, now)
                else:
                    self.drops["sync_rate_limited"] += 1
            else:
                self._leave(entry, now)
        except Exception:
            self._internal_error("message_received")

    def remove_player(self, match_id: str, player_id: str, now: float) -> bool:
        """Take a player out of a match as their `leave` would (a ban): their session, if
        any, is closed and their seat not held. False if they hold no seat there, or
        left it already."""
        room = self.registry.get(match_id)
        if room is None or room.seat_of(player_id) is None or room.has_left(player_id):
            return False
        session_id = room.session_of(player_id)
        entry = None if session_id is None else self._bindings.get(session_id)
        if entry is not None and entry.room is room:
            self._leave(entry, now)
        else:
            room.player_left(player_id, now)
            self._remove_if_vacated(room, now)
        return True

    def _leave(self, entry: _SeatBinding, now: float) -> None:
        """The session's player leaves their match for good, and the session closes."""
        room = entry.room
        self._bindings.pop(entry.session_id, None)
        entry.drop_held()
        room.player_left(entry.player_id, now)
        self.outbox.close_session(entry.session_id)
        self._remove_if_vacated(room, now)

    def _unreliable(self, entry: _SeatBinding, data: bytes, now: float) -> None:
        """A message on channel 0 of a ticking room: only ``input`` belongs there."""
        if not self._input_allowed(entry, now):
            return
        message = decode_client_message(data, self.drops)
        if message is None:
            return
        if message.kind is not _INPUT:
            self.drops["wrong_channel"] += 1
            return
        self._inputs(entry, message, now)

    def _input_allowed(self, entry: _SeatBinding, now: float) -> bool:
        """Take a token of the session's input bucket; False (counted) if none is
        there, and the session closed if it has no overdraft left either."""
        bucket = entry.inputs
        if bucket is None:
            rate = INPUT_MESSAGES_PER_TICK * entry.room.tick_rate
            bucket = entry.inputs = TokenBucket(rate, rate, now)
        if bucket.take(now):
            return True
        overdraft = entry.overdraft
        if overdraft is None:
            overdraft = entry.overdraft = TokenBucket(bucket.rate,
                                                      FLOOD_SECONDS * bucket.rate, now)  # fmt: skip
        if overdraft.take(now):
            self.drops[INPUT_RATE_LIMITED] += 1
            return False
        # A flood: the seat is held as for a lost connection, and the session's
        # datagrams find none from now on.
        self.drops[FLOOD] += 1
        session_id = entry.session_id
        self._forget(session_id, now)
        self.outbox.close_session(session_id)
        return False

    def _inputs(self, entry: _SeatBinding, message: ClientMessage, now: float) -> None:
        try:
            inputs = message.inputs
            assert inputs is not None
            entry.room.handle_inputs(entry.player_id, message.snap_ack, inputs, now,
                                     message.drawn)  # fmt: skip
        except Exception:
            self._internal_error("input")

    def session_closed(self, event: SessionClosed, now: float) -> None:
        try:
            self._forget(event.session_id, now)
        except Exception:
            self._internal_error("session_closed")

    # -- rate limits --------------------------------------------------------

    def _limits_of(
        self, room: Room, player_id: str, now: float, create: bool = True
    ) -> _PlayerLimits | None:
        key = (room.match_id, player_id)
        limits = self._limits.get(key)
        if limits is None and create:
            rate = room.action_rate
            actions = None
            if rate > 0:
                actions = TokenBucket(rate, max(1.0, rate * ACTION_BURST), now)
            syncs = TokenBucket(self.sync_rate, max(1.0, self.sync_rate * ACTION_BURST), now)
            limits = self._limits[key] = _PlayerLimits(actions, syncs)
        return limits

    def _limited_action(
        self, entry: _SeatBinding, action: Mapping[str, Any], action_id: int | None, now: float
    ) -> None:
        """An action of a rate-limited seat that could not be applied inline: applied
        when its bucket was only now made and has a token, else held (in order) or dropped."""
        bucket = entry.actions
        if bucket is None:
            limits = entry.limits
            if limits is None:
                limits = entry.limits = self._limits_of(entry.room, entry.player_id, now)
            assert limits is not None and limits.actions is not None
            bucket = entry.actions = limits.actions
        held = entry.held
        if not held and bucket.take(now):
            self._apply(entry, action, action_id, now)
            return
        if held is None:
            held = entry.held = deque()
        if len(held) < self.max_held_actions:
            # Held, in order behind any earlier one, until a token comes.
            held.append((action, action_id))
            self.counters["actions_delayed"] += 1
            if entry.wake == _INF:
                entry.wake = bucket.ready_at(now)
                self.timers.schedule(entry.wake, entry)
            return
        self.drops[RATE_LIMITED] += 1
        limits = entry.limits
        assert limits is not None
        if now - limits.noticed_at >= self.notice_interval:
            limits.noticed_at = now
            entry.room.send_error(
                entry.player_id, RATE_LIMITED, "too many actions: this one was dropped", action_id
            )

    def release_held(self, entry: _SeatBinding, now: float) -> None:
        """Apply the held actions the bucket allows at `now`; wait again for the rest."""
        entry.wake = _INF
        if self._bindings.get(entry.session_id) is not entry or not entry.held:
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
        try:
            while held and bucket.take(now):
                action, action_id = held.popleft()
                self._apply(entry, action, action_id, now)
                if self._bindings.get(entry.session_id) is not entry:
                    return  # the action ended the session (the room ended and was removed)
        except Exception:
            self._internal_error("held action")
        if held:
            entry.wake = bucket.ready_at(now)
            self.timers.schedule(entry.wake, entry)
        else:
            entry.held = None

    def _apply(
        self, entry: _SeatBinding, action: Mapping[str, Any], action_id: int | None, now: float
    ) -> None:
        if entry.room.handle_action(entry.player_id, action, action_id, now):
            self.counters["actions_applied"] += 1
        else:
            self.counters["actions_rejected"] += 1

    # -- internals ----------------------------------------------------------

    def _join_refused(self, room: Room, player_id: str, reason: str, now: float) -> None:
        # A player with a valid token can retry the handshake at will: log at
        # most one line per interval, count every refusal.
        self.counters["joins_refused"] += 1
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

    def _forget(self, session_id: int, now: float) -> None:
        entry = self._bindings.pop(session_id, None)
        if entry is None:
            return
        entry.drop_held()
        self.counters["sessions_closed"] += 1
        room = entry.room
        room.player_disconnected(entry.player_id, session_id, now)
        self._remove_if_vacated(room, now)

    def _remove_if_vacated(self, room: Room, now: float) -> None:
        # An ended room lingers only for its players' sakes: once they have
        # all gone there is nothing left to deliver.
        if room.ended and not room.session_ids() and self.registry.get(room.match_id) is room:
            self.registry.remove(room.match_id, now)

    def _room_removed(self, room: Room) -> None:
        self._retired_inputs.update(room.input_counts)
        self._retired_entities.update(room.entity_counts)
        for session_id in room.session_ids():
            entry = self._bindings.get(session_id)
            if entry is not None and entry.room is room:
                del self._bindings[session_id]
                entry.drop_held()
                self.outbox.close_session(session_id)
        for seat in room.seats:
            self._limits.pop((room.match_id, seat.player_id), None)

    def _internal_error(self, where: str) -> None:
        self.counters["internal_errors"] += 1
        log.failure("Seat router failed in {where}", where=where)
