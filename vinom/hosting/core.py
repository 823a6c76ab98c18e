"""The sans-I/O game host: one port's sessions, seats and rooms, driven only by `now`.

`GameHostCore` owns the `ServerEndpoint` (handshakes, sessions, AEAD,
reliability), the `SeatRouter` (which session sits in which seat of which
room; action rate limits), the rooms and one `TimerQueue` holding every
deadline of the rooms and the router. It does no I/O, reads no clock and
calls nothing outside itself; a transport adapter drives it
(`IDatagramCore`):

    core.receive_datagram(data, addr, now)   # a datagram arrived
    core.datagrams_to_send(now)              # what to transmit now
    core.get_timer()                         # when handle_timer is next due
    core.handle_timer(now)                   # that time has come
    core.next_event()                        # MatchEnded, HostIdle, StreamsReady

and, for players on a reliable stream (a WebSocket, vinom.hosting.websocket), stream
sessions beside the endpoint's (vinom.hosting.streams):

    core.open_stream(request, now)           # StreamOpened | StreamRefused
    core.stream_received(session_id, data, now)
    core.stream_closed(session_id, now)
    core.streams_to_send()                   # (messages, closed streams)

and the hosting layer adds matches and ends them (`add_match(match, now)`,
`shutdown(reason, now)`), transmitting afterwards as well.

Inside, a datagram goes to the endpoint; the endpoint's events (a session
connected, a message, a session closed) go to the router at once, in order,
each datagram's before the next datagram is read; the router hands messages
to rooms, and rooms queue what they send straight on the endpoint's sessions
(the endpoint is their `Outbox`). Replies thus share the packets that carry
the acks, and nothing leaves until the adapter asks for `datagrams_to_send`.
The endpoint's handshake asks the router whether a token's player may connect
through the `admit` callable the core gives it. The same core runs under the
Twisted UDP adapter (vinom.hosting.udp), in a test feeding it datagrams, and
can run in a worker process or behind another transport unchanged.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable

from attrs import frozen
from twisted.logger import Logger
from zope.interface import implementer

import vinom
from vinom.games.interfaces import IGame, Seat
from vinom.games.rules import rules_of
from vinom.hosting.interfaces import (
    HostIdle,
    IDatagramCore,
    StreamMessage,
    StreamOpened,
    StreamRefused,
    StreamsReady,
)
from vinom.hosting.records import RecordSettings
from vinom.hosting.spectators import SpectatorFeeds, SpectatorSettings, is_spectator
from vinom.hosting.streams import StreamOutbox, StreamQueue
from vinom.match import Match, MatchEnded
from vinom.protocol.config import HostConfig
from vinom.protocol.events import MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.protocol.server import Address, ServerEndpoint
from vinom.protocol.wire import DROP_HOST_FULL, DROP_NOT_ADMITTED
from vinom.rooms.record import MatchRecorder, record_header
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.router import STREAM, SeatRouter
from vinom.rooms.timers import TimerQueue

_log = Logger()
# Failures logged with a traceback; the rest are only counted, so that a
# hostile peer cannot fill the log.
_MAX_LOGGED = 10


HostEvent = MatchEnded | HostIdle | StreamsReady


@frozen
class RecordChunk:
    """Bytes of a match's record to append to its file (`records_to_write`);
    `closed`: its last."""

    match_id: str
    started: float
    data: bytes
    closed: bool
_STREAMS_READY = StreamsReady()


@implementer(IDatagramCore)
class GameHostCore:
    """The game host of one port, driven by `now` (see the module docstring).

    `config` is the endpoint's (the addresses tokens must name, limits);
    `find_game` looks a game up by name (a `GameRegistry.get`); `room_config` is
    every room's unless `add_match` is given another. `wall_clock` (unix time,
    for token expiry) and `random_bytes` go to the endpoint.
    """

    def __init__(
        self,
        config: HostConfig,
        find_game: Callable[[str], IGame],
        room_config: RoomConfig | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
        recording: RecordSettings | None = None,
        spectators: SpectatorSettings | None = None,
    ) -> None:
        self.timers = TimerQueue()
        self._find_game = find_game
        self._wall_clock = wall_clock
        self._random_bytes = random_bytes
        self.recording = recording
        # The records of the rooms recording now, by match id (vinom.rooms.record).
        self._recorders: dict[str, MatchRecorder] = {}
        self.endpoint = ServerEndpoint(
            config, self._admit, wall_clock=wall_clock, random_bytes=random_bytes
        )
        self._streams = StreamOutbox(self.endpoint, self._close_stream)
        self.router = SeatRouter(
            find_game=find_game,
            outbox=self._streams,
            timers=self.timers,
            config=room_config if room_config is not None else RoomConfig(),
        )
        registry = self.router.registry
        registry.add_end_listener(self._match_ended)
        registry.add_removal_listener(self._room_removed)
        # The endpoint's events (never replaced), handed to the router as they come.
        self._endpoint_events = self.endpoint.events
        self._events: deque[HostEvent] = deque()
        # Exceptions the router or the endpoint raised (logged, the first few).
        self.errors = 0
        self._max_stream_message = config.max_receive_message
        self._next_stream_id = -1
        # Streams the core closed since the adapter last asked (streams_to_send).
        self._closed_streams: list[int] = []
        # Stream refusals and dropped stream messages, by reason.
        self.stream_drops: Counter[str] = Counter()
        self.streams_opened = 0
        # StreamsReady was returned and streams_to_send not called since.
        self._streams_announced = False
        # The spectators' stream sessions (vinom.hosting.spectators).
        self.spectators = SpectatorFeeds(
            spectators if spectators is not None else SpectatorSettings(),
            self._streams, self.timers, self._close_spectator, self._spectators_released,
        )  # fmt: skip

    # -- IDatagramCore --------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.endpoint.receive_datagram(data, addr, now)
        if self._endpoint_events:
            self._dispatch(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return self.endpoint.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        ours = self.timers.next_time()
        theirs = self.endpoint.get_timer()
        if ours is None:
            return theirs
        return ours if theirs is None or ours < theirs else theirs

    def handle_timer(self, now: float) -> None:
        self.timers.run_due(now)
        if self._endpoint_events:
            self._dispatch(now)
        self.endpoint.handle_timer(now)
        if self._endpoint_events:
            self._dispatch(now)

    def next_event(self) -> HostEvent | None:
        events = self._events
        if events:
            return events.popleft()
        if (self._streams.dirty or self._closed_streams) and not self._streams_announced:
            self._streams_announced = True
            return _STREAMS_READY
        return None

    # -- the hosting layer's calls --------------------------------------------

    def add_match(
        self,
        match: Match,
        now: float,
        config: RoomConfig | None = None,
        rng: random.Random | None = None,
    ) -> Room:
        """Host `match` from `now`: its players may connect until its room is removed.

        Raises KeyError for an unknown game and `RoomExists` for a match id
        hosted already. With `recording` on for its game (and no `rng` given) the
        room gets a generator of a fresh seed and a recorder (`records_to_write`).
        """
        recorder = None
        settings = self.recording
        game = self._find_game(match.game) if settings is not None else None
        if (
            rng is None and game is not None and settings is not None
            and settings.records(match.game) and rules_of(game).records_matches
        ):
            seed = int.from_bytes(self._random_bytes(8), "big")
            rng = random.Random(seed)
            room_config = config if config is not None else self.router.config
            recorder = MatchRecorder(
                record_header(
                    match_id=match.match_id, game=match.game, game_version=game.version,
                    options=room_config.options,
                    seats=[Seat(t.player_id, t.name, i) for i, t in enumerate(match.players)],
                    bots=[t.bot for t in match.players], seed=seed,
                    tick_rate=float(game.tick_rate or 0.0), hash_every=settings.hash_every,
                    started=self._wall_clock(), vinom_version=vinom.__version__,
                    spectators=match.spectators,
                ),
                hash_every=settings.hash_every,
            )  # fmt: skip
        room = self.router.add_match(match, now, config, rng, recorder)
        if recorder is not None:
            self._recorders[match.match_id] = recorder
        return room

    def records_to_write(self) -> list[RecordChunk]:
        """The records' bytes since the last call (the adapter appends them to the
        match's file at its flush interval, and when a match ends): each ends on a
        sync flush, so what was written replays even if the host dies next."""
        chunks = []
        recorders = self._recorders
        for match_id, recorder in list(recorders.items()):
            data = recorder.take()
            if recorder.closed:
                del recorders[match_id]
            if data or recorder.closed:
                chunks.append(
                    RecordChunk(match_id, recorder.header["started"], data, recorder.closed)
                )
        return chunks

    @property
    def recording_count(self) -> int:
        """Rooms whose record is still open."""
        return len(self._recorders)

    def shutdown(self, reason: str, now: float) -> None:
        """End every room now, telling its players `reason`, and close their sessions."""
        self.router.shutdown(reason, now)
        self._dispatch(now)

    def remove_player(self, match_id: str, player_id: str, now: float) -> bool:
        """Take a player out of a match as their `leave` would (`SeatRouter.remove_player`);
        False if they hold no seat there any more."""
        removed = self.router.remove_player(match_id, player_id, now)
        self._dispatch(now)
        return removed

    def close_session(self, session_id: int, now: float) -> None:
        """Disconnect one session (its peer is told); its seat is held as after a timeout."""
        self.endpoint.close_session(session_id)
        self._dispatch(now)

    # -- stream sessions (a WebSocket: vinom.hosting.websocket) ----------------

    def open_stream(self, token: bytes, now: float) -> StreamOpened | StreamRefused:
        """Open a stream session with a `request` packet (the connect token as a UDP
        client presents it, docs/web.md): the same checks as a UDP handshake (key,
        expiry, this host's address, one session per token and per player), then
        the seat router's admission. A stream of the same player that is open
        already is closed first: a browser that reconnects replaces its old socket,
        which may not have noticed yet that it is dead."""
        endpoint = self.endpoint
        checked = endpoint.check_request(token)
        if isinstance(checked, str):
            return self._refuse_stream(checked)
        player_id, match_id = checked.player_id, checked.match_id
        if is_spectator(player_id):
            return self._open_spectator(token, player_id, match_id, now)
        streams = self._streams.streams
        for old in list(streams.values()):
            if old.player_id == player_id and old.match_id == match_id:
                self._close_stream(old.session_id)
        self._dispatch(now)
        verdict = self.router.admit(player_id, match_id, now)
        if verdict is Admission.FULL:
            return self._refuse_stream("match_full")
        if verdict is not Admission.ACCEPT:
            return self._refuse_stream(DROP_NOT_ADMITTED)
        if endpoint.session_count + len(streams) >= endpoint.config.max_sessions:
            return self._refuse_stream(DROP_HOST_FULL)
        endpoint.spend_request(token)
        session_id = self._next_stream_id
        self._next_stream_id = session_id - 1
        streams[session_id] = StreamQueue(session_id, player_id, match_id)
        self._endpoint_events.append(
            SessionConnected(session_id, player_id, match_id, ("stream", 0), checked.user_data)
        )
        self._dispatch(now)
        if session_id not in streams:
            # The router refused the seat after all (the room ended meanwhile).
            return self._refuse_stream(DROP_NOT_ADMITTED)
        self.streams_opened += 1
        return StreamOpened(session_id, player_id, match_id)

    def stream_received(self, session_id: int, data: bytes, now: float) -> None:
        """One message from a stream's peer: a room message, msgpack, as a UDP client
        sends on its channels (a stream has one, `STREAM`, for every kind of message,
        ``input`` included). Never raises on what is in it."""
        if session_id not in self._streams.streams:
            self.stream_drops["no_session"] += 1
            return
        if self.spectators.has(session_id):
            self.spectators.dropped()  # read-only
            return
        if len(data) > self._max_stream_message:
            self.stream_drops["too_large"] += 1
            return
        try:
            self.router.message_received(session_id, STREAM, data, now)
        except Exception:
            self._error("the seat router failed")
        if self._endpoint_events:
            self._dispatch(now)

    def stream_closed(self, session_id: int, now: float) -> None:
        """The stream's peer is gone (its socket closed): its seat is held for the
        reconnection grace, as after a UDP session's timeout."""
        stream = self._streams.streams.pop(session_id, None)
        if stream is None:
            return
        stream.closed = True
        if self.spectators.has(session_id):
            self.spectators.remove(session_id)
            return
        self._endpoint_events.append(SessionClosed(session_id, "disconnect"))
        self._dispatch(now)

    def streams_to_send(self) -> tuple[list[StreamMessage], list[int]]:
        """What the streams owe their peers now, (session id, channel, message) in
        order, and then the streams the core closed (after their last messages)."""
        self._streams_announced = False
        messages = self._streams.take_messages()
        closed, self._closed_streams = self._closed_streams, []
        return messages, closed

    @property
    def stream_count(self) -> int:
        """Stream sessions open now."""
        return len(self._streams.streams)

    def _close_stream(self, session_id: int) -> None:
        stream = self._streams.streams.pop(session_id, None)
        if stream is None:
            return
        stream.closed = True
        self._closed_streams.append(session_id)
        self._endpoint_events.append(SessionClosed(session_id, "closed"))

    def _open_spectator(
        self, token: bytes, player_id: str, match_id: str, now: float
    ) -> StreamOpened | StreamRefused:
        """A spectator's stream: fed the match's public view, never seated."""
        feeds = self.spectators
        reason = feeds.refusal(self.router.room(match_id))
        if reason is not None:
            feeds.counts[f"refused:{reason}"] += 1
            return self._refuse_stream(reason)
        endpoint = self.endpoint
        if endpoint.session_count + len(self._streams.streams) >= endpoint.config.max_sessions:
            return self._refuse_stream(DROP_HOST_FULL)
        endpoint.spend_request(token)
        session_id = self._next_stream_id
        self._next_stream_id = session_id - 1
        self._streams.streams[session_id] = StreamQueue(session_id, player_id, match_id)
        room = self.router.room(match_id)
        assert room is not None
        feeds.add(session_id, room, now)
        self.streams_opened += 1
        return StreamOpened(session_id, player_id, match_id)

    def _spectator_event(self, event: object, now: float) -> bool:
        """A UDP spectator's connect or close, handled here (True), never the router's
        (a spectator's message is `_dispatch`'s)."""
        feeds = self.spectators
        if isinstance(event, SessionConnected):
            if not is_spectator(event.player_id):
                return False
            room = self.router.room(event.match_id)
            if room is None or feeds.refusal(room) is not None:
                self.endpoint.close_session(event.session_id)  # ended meanwhile
            else:
                feeds.add(event.session_id, room, now)
            return True
        if isinstance(event, SessionClosed) and feeds.has(event.session_id):
            feeds.remove(event.session_id)
            return True
        return False

    def _close_spectator(self, session_id: int) -> None:
        if session_id > 0:
            self.endpoint.close_session(session_id)  # its SessionClosed removes nothing more
            return
        stream = self._streams.streams.pop(session_id, None)
        if stream is not None:
            stream.closed = True
            self._closed_streams.append(session_id)

    def _refuse_stream(self, reason: str) -> StreamRefused:
        self.stream_drops[reason] += 1
        return StreamRefused(reason)

    # -- queries ----------------------------------------------------------------

    @property
    def room_count(self) -> int:
        return len(self.router.registry)

    def room(self, match_id: str) -> Room | None:
        """The room of a match hosted here, for inspection."""
        return self.router.room(match_id)

    @property
    def session_count(self) -> int:
        """Sessions of the endpoint (authenticated peers)."""
        return self.endpoint.session_count

    @property
    def vacant(self) -> bool:
        """Nothing of any match is left: no room, no session (UDP or stream), no
        spectator waiting for an ended match, no record open. Only counters, the
        spent tokens and the cookie keys remain: a vacant core may take the next
        match on its port (vinom.hosting.inline, "Reuse")."""
        return (
            not len(self.router.registry)
            and not self.spectators.holding
            and not self.endpoint.session_count
            and not self._streams.streams
            and not self._recorders
        )

    # -- internals ---------------------------------------------------------------

    def _admit(self, player_id: str, match_id: str, now: float) -> Admission:
        if is_spectator(player_id):
            # A spectator over UDP: admitted while the match may take one more.
            reason = self.spectators.refusal(self.router.room(match_id))
            if reason is None:
                return Admission.ACCEPT
            self.spectators.counts[f"refused:{reason}"] += 1
            return Admission.FULL if reason == "spectators_full" else Admission.REFUSE
        return self.router.admit(player_id, match_id, now)

    def _dispatch(self, now: float) -> None:
        """Hand the router every endpoint event waiting, in order, including those it
        causes meanwhile (a session it closes); a failure costs that event only."""
        events = self._endpoint_events
        router = self.router
        spectators = self.spectators
        while events:
            event = events.popleft()
            try:
                if isinstance(event, MessageReceived):
                    # A message, once a move: one look-up for a spectator's (never
                    # read), not `_spectator_event`'s tests of every kind of event.
                    session_id, channel, data = event
                    if spectators.has(session_id):
                        spectators.dropped()
                    else:
                        router.message_received(session_id, channel, data, now)
                elif self._spectator_event(event, now):
                    continue
                elif isinstance(event, SessionConnected):
                    router.session_connected(event, now)
                elif isinstance(event, SessionClosed):
                    router.session_closed(event, now)
            except Exception:
                self._error("the seat router failed")

    def _match_ended(self, room: Room) -> None:
        self.spectators.room_ended(room)
        self._events.append(
            MatchEnded(
                room.match_id, room.phase.value, room.ending.result, room.ending.abort_reason,
                room.joined_players(),
            )
        )

    def _room_removed(self, room: Room) -> None:
        # Idle once the spectators of an ended match have had its delayed end too.
        if len(self.router.registry) == 0 and not self.spectators.holding:
            self._events.append(HostIdle())

    def _spectators_released(self) -> None:
        if len(self.router.registry) == 0:
            self._events.append(HostIdle())

    def _error(self, what: str) -> None:
        self.errors += 1
        if self.errors <= _MAX_LOGGED:
            _log.failure("game host core: {what} (error {n})", what=what, n=self.errors)
