"""Spectators of a running match: read-only sessions fed the game's public view, delayed.

A spectator holds a connect token the lobby issued for a match with a
spectator id (`SPECTATOR_PREFIX`, docs/lobby.md "spectate"), and opens a
stream session (the web server's ``/game``) with it, as a player does. The
game host core hands such a session to `SpectatorFeeds` instead of the seat
router: it sits in no seat, the room never learns of it, and whatever it sends
is dropped (counted). The feeds look at each spectated room at its snapshot
rate, half a tick after the room's ticks (a game without a tick: every
`POLL_INTERVAL`), and when the room's
version moved, build the public view ``view(state, None)`` once and encode one
``state`` message, which every spectator of the match is sent, the same bytes
(on the unreliable channel, latest wins, as the players' states: a spectator
costs the host a datagram per state and no acknowledgement), `delay` seconds
later (a competitive match's spectators must not see what the
players see while it still matters). A spectator arriving meanwhile gets the
newest state already due. The players' room does not wait for any of this:
the feeds read its public attributes on their own timer, in the host's
`TimerQueue`. When the match ends, its final state and phase are queued as
every change was: the spectators see the last seconds `delay` late too, and
their streams close after the end is sent. Until then the feeds are
`holding` that ended match, and the game host core holds its `HostIdle`
(vinom.hosting.core): a host whose last match ended stays up (and keeps its
port) `delay` seconds more for the spectators, a drain waits for them within
its timeout. The outcome is still reported at once (the lobby and the players
learn the result when it happens): the delay keeps the spectators' picture
from helping a player while the match runs, and once it has ended there is
no player left to help, but a broadcast that showed the end before the
play leading to it would spoil the match for its audience.

Limits: at most `max_per_match` spectators of one match (a refusal is
``spectators_full``); the web server's per-address limits on ``/game`` count
spectators' sockets as they count players'.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable

from attrs import define, field, frozen

from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.messages import encode_phase, encode_state, encode_welcome
from vinom.rooms.outbox import Outbox
from vinom.rooms.room import Room
from vinom.rooms.timers import TimerQueue

#: The player id of every spectator token starts with this (no player's can: theirs
#: are 'p-' and hex digits, vinom.identity).
SPECTATOR_PREFIX = "~spectator-"
#: Seconds between two looks at a spectated room of a game without a tick.
POLL_INTERVAL = 0.1
DEFAULT_MAX_PER_MATCH = 100


def is_spectator(player_id: str) -> bool:
    return player_id.startswith(SPECTATOR_PREFIX)


@frozen
class SpectatorSettings:
    """`delay`: seconds spectators lag behind the match; `max_per_match`: spectators
    one match may have (0: none)."""

    delay: float = 0.0
    max_per_match: int = DEFAULT_MAX_PER_MATCH


@define(eq=False)
class _Feed:
    room: Room
    sessions: list[int] = field(factory=list)
    # Encoded messages, oldest first: when each is due, whether it is a state of the
    # running match (sent unreliably), and the message.
    frames: deque[tuple[float, bool, bytes]] = field(factory=deque)
    # The newest state encoded (the final state, sent again reliably at the end).
    last_state: bytes = b""
    # The newest state message already due: what a newcomer is sent first.
    current: bytes = b""
    version: int = -1
    next_look: float = 0.0
    ended: bool = False
    # When the last frame of an ended match is due (the streams close after it).
    closes_at: float = math.inf


def _next_look(room: Room, now: float) -> float:
    """When the feeds look at `room` again: a snapshot interval on (a game without a
    tick: `POLL_INTERVAL`), moved to half a tick after one of the room's ticks, so
    that the spectators' sends never hold back the players' states of a tick."""
    rate = room.snapshot_rate
    if not rate:
        return now + POLL_INTERVAL
    wanted = now + 1.0 / rate
    tick_rate = room.tick_rate
    next_tick = room.schedule.next_timer()
    if not tick_rate or next_tick is None or next_tick < now:
        return wanted
    tick = 1.0 / tick_rate
    mid = next_tick + tick / 2
    return mid + max(0, round((wanted - mid) / tick)) * tick


class SpectatorFeeds:
    """Every spectated match of one game host core (see the module docstring)."""

    def __init__(
        self,
        settings: SpectatorSettings,
        outbox: Outbox,
        timers: TimerQueue,
        close_stream: Callable[[int], object],
        on_released: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self._outbox = outbox
        self._timers = timers
        self._close_stream = close_stream
        # Called when the feeds stop `holding` an ended match (its last spectator gone).
        self._on_released = on_released
        self._feeds: dict[str, _Feed] = {}
        self._match_of: dict[int, str] = {}
        self.wake = math.inf
        #: opened, closed, refused:<reason>, messages_dropped (theirs), messages_sent
        #: (to them, one per spectator), view_errors.
        self.counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._match_of)

    def has(self, session_id: int) -> bool:
        return session_id in self._match_of

    @property
    def holding(self) -> bool:
        """Whether spectators of an ended match are still owed its delayed end."""
        return any(feed.ended for feed in self._feeds.values())

    def refusal(self, room: Room | None) -> str | None:
        """Why a spectator cannot watch this room now (None: they can)."""
        if room is None or room.ended:
            return "not_hosted"
        feed = self._feeds.get(room.match_id)
        if len(feed.sessions if feed is not None else ()) >= self.settings.max_per_match:
            return "spectators_full"
        return None

    def add(self, session_id: int, room: Room, now: float) -> None:
        """Feed this stream session the room's match (`refusal` said it may)."""
        feed = self._feeds.get(room.match_id)
        if feed is None:
            feed = self._feeds[room.match_id] = _Feed(room)
            self._look(feed, now)
        feed.sessions.append(session_id)
        self._match_of[session_id] = room.match_id
        self.counts["opened"] += 1
        send = self._outbox.send_message
        send(session_id, RELIABLE, encode_welcome(
            room.match_id, room.game.name, -1, room.seats, False, None,
            room.tick_rate, 0.0,
        ))  # fmt: skip
        if feed.current:
            send(session_id, RELIABLE, feed.current)
        self._rewake()

    def remove(self, session_id: int) -> None:
        """The spectator's stream closed."""
        match_id = self._match_of.pop(session_id, None)
        if match_id is None:
            return
        self.counts["closed"] += 1
        feed = self._feeds[match_id]
        feed.sessions.remove(session_id)
        if not feed.sessions:
            del self._feeds[match_id]
            if feed.ended and self._on_released is not None and not self.holding:
                self._on_released()
        self._rewake()

    def room_ended(self, room: Room) -> None:
        """The room just ended: its final state and its end are queued, `delay`
        seconds late as every change before them (see the module docstring)."""
        feed = self._feeds.get(room.match_id)
        if feed is None or feed.ended:
            return
        ended_at = room.ending.ended_at
        now = ended_at if ended_at is not None else feed.next_look
        self._look(feed, now)
        self._rewake()

    def dropped(self) -> None:
        """A spectator sent something: never read."""
        self.counts["messages_dropped"] += 1

    def handle_timer(self, now: float) -> None:
        for feed in list(self._feeds.values()):
            if not feed.ended and feed.next_look <= now:
                self._look(feed, now)
            self._send_due(feed, now)
            if feed.ended and feed.closes_at <= now:
                for session_id in list(feed.sessions):
                    self.remove(session_id)
                    self._close_stream(session_id)
        self._rewake()

    # -- internals ------------------------------------------------------------------

    def _look(self, feed: _Feed, now: float) -> None:
        room = feed.room
        feed.next_look = _next_look(room, now)
        due = now + self.settings.delay
        if room.version != feed.version:
            feed.version = room.version
            try:
                view = room.game.view(room.state, None)
                data = encode_state(room.version, room.phase, room.remaining(now), view, None,
                                    room.tick_number, room.server_time(now))  # fmt: skip
            except Exception:
                self.counts["view_errors"] += 1
            else:
                feed.last_state = data
                if not room.ended:
                    feed.frames.append((due, True, data))
        if room.ended:
            feed.ended = True
            end = room.ending
            phase = encode_phase(
                room.phase, room.version, None, result=end.result, reason=end.abort_reason
            )
            # The final state and the end, both reliably: every spectator sees the end.
            if feed.last_state:
                feed.frames.append((due, False, feed.last_state))
            feed.frames.append((due, False, phase))
            feed.closes_at = due
        self._send_due(feed, now)

    def _send_due(self, feed: _Feed, now: float) -> None:
        frames = feed.frames
        send = self._outbox.send_message
        while frames and frames[0][0] <= now:
            _, running, data = frames.popleft()
            # A running match's states go as the players' do, latest wins (a lost one
            # is replaced by the next, and owes no acknowledgement); its final state
            # and its end reliably.
            if running:
                feed.current = data
            channel = UNRELIABLE if running else RELIABLE
            for session_id in feed.sessions:
                send(session_id, channel, data)
            self.counts["messages_sent"] += len(feed.sessions)

    def _rewake(self) -> None:
        wake = math.inf
        for feed in self._feeds.values():
            if feed.frames:
                wake = min(wake, feed.frames[0][0])
            # An ended match's streams close after its last frame; a running one's
            # room is looked at again.
            wake = min(wake, feed.closes_at if feed.ended else feed.next_look)
        if wake != self.wake:
            self.wake = wake
            if wake != math.inf:
                self._timers.schedule(wake, self)
