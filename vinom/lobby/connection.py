"""One lobby connection as a state machine that does no I/O.

`LobbyConnection` is everything a lobby connection is besides its socket:
its player's state (`PlayerState`: NEW, IDLE, QUEUED, IN_ROOM, MATCHED), the line
framing (the sans-I/O `FrameDecoder`), the per-connection frame rate limit,
the protocol error count, the order of replies, which timeout applies now,
and how it closes. Bytes and timer expiries come in as method calls; frames,
closes, aborts, flow control and the timeout to arm go out through an
`ILobbyWire` (the Twisted `LobbyProtocol` in server.py is one). Requests go
to an `ILobbyServer` (the lobby's request handlers, match placement and
admission limits), which changes the player's state only through the named
transitions below (`welcomed`, `queued`, `matched`, ...), each of which
re-arms the timeout that state calls for.

The design follows magic-wormhole-transit-relay's `server_state.py`: a
machine per connection that talks to its transport only through an
interface, so it runs under a `StringTransport`, a real TLS socket or,
a WebSocket (websocket.py) unchanged. A connection is either a byte stream
(TCP: newline-delimited frames, `FrameDecoder`) or message-framed
(`messages=True`, WebSocket: one frame per message, `MessageDecoder`); both
go through the same limits, in the same order. It schedules nothing itself: it says
which timeout applies (`ILobbyWire.set_timeout`) and the wire calls
`timer_expired`. It reads the time only for its frame rate limit, from the
injected clock the rest of the lobby uses too: a request served later (by
a store or matchmaker that answers asynchronously) releases the frames
behind it, and those are rate-limited at the time they are taken, not at
the time the last bytes arrived.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from vinom.errors import BackendUnavailable, LobbyError
from vinom.lobby import errors
from vinom.lobby.codec import (
    FrameDecoder,
    FrameError,
    MessageDecoder,
    encode_frame,
    error_frame,
    parse_frame,
    request_id_of,
)
from vinom.lobby.config import LobbyConfig
from vinom.lobby.request_types import Request, RequestId
from vinom.net.ratelimit import TokenBucket

Frame = dict[str, Any]


class PlayerState(enum.Enum):
    """Where a connection's player is in the lobby."""

    NEW = "new"  # no hello yet
    IDLE = "idle"  # said hello, not queued
    QUEUED = "queued"  # has a ticket in a matchmaker queue
    IN_ROOM = "in_room"  # has a seat in an open room waiting for its players
    MATCHED = "matched"  # in a formed match; match_found pending or sent


# States in which the player waits for a match and must answer liveness pings.
_WAITING = frozenset({PlayerState.QUEUED, PlayerState.IN_ROOM, PlayerState.MATCHED})


class ILobbyWire(Interface):
    """What a `LobbyConnection` asks of its transport."""

    def write(data: bytes) -> None:
        """Send one whole encoded frame (its JSON and the newline that ends it)."""

    def close() -> None:
        """Close after the bytes written so far (TLS close_notify included)."""

    def abort() -> None:
        """Drop the connection at once, without sending what is left."""

    def pause_reading() -> None:
        """Stop reading from the peer until `resume_reading` (no-op if it cannot)."""

    def resume_reading() -> None:
        """Read from the peer again."""

    def set_timeout(seconds: float | None) -> None:
        """Call the connection's `timer_expired` after `seconds` without a new call; None: never."""


class ILobbyServer(Interface):
    """What a `LobbyConnection` asks of the lobby behind it."""

    def admit(connection: LobbyConnection) -> str | None:
        """Count a new connection against the caps; the reason it is refused, if it is."""

    def serve(connection: LobbyConnection, request: Request) -> Deferred[None] | None:
        """Serve one request; a `LobbyError` (raised or as a failure) becomes an error frame."""

    def player_gone(connection: LobbyConnection) -> None:
        """Let go of an admitted connection's player (their ticket withdrawn, their room
        left): the connection is gone, or was found dead and is closing. Called once,
        before `connection_lost`."""

    def connection_lost(connection: LobbyConnection) -> None:
        """An admitted connection is gone: it no longer counts against the connection
        caps. Its socket counts until then, also while a close lingers."""


class LobbyConnection:
    """One lobby connection's state: frames in, frames and closes out through `wire`.

    Timeouts: a new connection has `hello_timeout` seconds for the TLS
    handshake and its first frame; a connection that is not queued (nor
    matched) is closed after `idle_timeout` seconds without a frame (a `ping`
    keeps it); a queued or matched player is kept however long the wait, but
    one silent for `ping_interval` seconds is sent a `ping` and closed if
    nothing comes back within `ping_timeout` seconds (a dead peer must not
    be matched); and a connection that is closing is aborted if the close
    does not complete within `close_timeout` seconds.
    """

    log = Logger()

    def __init__(
        self,
        wire: ILobbyWire,
        server: ILobbyServer,
        config: LobbyConfig,
        clock: IReactorTime,
        *,
        peer_host: str,
        client: str,
        messages: bool = False,
        error_counts: Counter[str] | None = None,
    ) -> None:
        """`error_counts`: where the error frames sent are counted by code (the lobby's)."""
        self._wire = wire
        self._server = server
        self._config = config
        self.peer_host = peer_host
        # The key the per-address limits count this connection under (see addresses.py).
        self.client = client
        self._player_id: str | None = None
        self._name = ""
        # The game protocol the player's client speaks, from its hello (None before it).
        self._protocol: int | None = None
        self._state = PlayerState.NEW
        self._game: str | None = None
        self._protocol_errors = 0
        self._closing = False
        self._admitted = False
        self._player_gone = False
        # Any bytes received / any frame (not a blank line) received.
        self._heard = False
        self._framed = False
        self._timeout: float | None = None
        # A liveness `ping` was sent and nothing has come back since.
        self._pinged = False
        # A byte stream is split into lines; a message-framed transport hands over frames.
        self._decoder: FrameDecoder | MessageDecoder = (
            MessageDecoder(config.max_frame_bytes)
            if messages
            else FrameDecoder(config.max_frame_bytes)
        )
        self._clock = clock
        self._bucket = TokenBucket(config.frame_rate, config.frame_burst, clock.seconds())
        # Frames the server pushes while a request is being served wait here, so
        # they follow that request's reply (queued before match_found).
        self._held: list[tuple[Frame, bool]] = []
        self._busy = False
        self._processing = False
        self._reading_paused = False
        # The wire cannot send more now (its peer reads slower than it is answered).
        self._output_paused = False
        self._error_counts = error_counts

    # What the lobby reads.

    @property
    def state(self) -> PlayerState:
        return self._state

    @property
    def player_id(self) -> str | None:
        return self._player_id

    @property
    def name(self) -> str:
        return self._name

    @property
    def protocol(self) -> int | None:
        """The game protocol the client said it speaks in its first request (None before)."""
        return self._protocol

    @property
    def game(self) -> str | None:
        """The game queued for, gathered for in a room, or matched in."""
        return self._game

    @property
    def closing(self) -> bool:
        return self._closing

    # Transitions, made by the lobby as it serves requests and places matches.

    def welcomed(self, player_id: str, name: str, protocol: int) -> None:
        """NEW -> IDLE: the player said hello, speaking game `protocol`."""
        self._expect(PlayerState.NEW)
        self._player_id = player_id
        self._name = name
        self._protocol = protocol
        self._enter(PlayerState.IDLE, None)

    def queued(self, game: str) -> None:
        """IDLE -> QUEUED: a ticket is (being) put in a queue."""
        self._expect(PlayerState.IDLE)
        self._enter(PlayerState.QUEUED, game)

    def unqueued(self) -> None:
        """QUEUED -> IDLE: the ticket was cancelled or refused."""
        self._expect(PlayerState.QUEUED)
        self._enter(PlayerState.IDLE, None)

    def entered_room(self, game: str) -> None:
        """IDLE -> IN_ROOM: the player took a seat in an open room."""
        self._expect(PlayerState.IDLE)
        self._enter(PlayerState.IN_ROOM, game)

    def left_room(self) -> None:
        """IN_ROOM -> IDLE: the player left the room, or it closed."""
        self._expect(PlayerState.IN_ROOM)
        self._enter(PlayerState.IDLE, None)

    def matched(self, game: str) -> None:
        """QUEUED -> MATCHED: the player's match formed.

        Also from IDLE: a matchmaker that answers later may form a match with a
        ticket whose `cancel` crossed it (the cancel then fails with `not_queued`).
        """
        if self._state is PlayerState.NEW:
            raise AssertionError("a NEW connection has no ticket to be matched")
        self._enter(PlayerState.MATCHED, game)

    def match_failed(self) -> None:
        """MATCHED -> IDLE: no game host could host the match."""
        self._expect(PlayerState.MATCHED)
        self._enter(PlayerState.IDLE, None)

    def took_over(self, player_id: str, name: str, game: str, protocol: int) -> None:
        """NEW -> MATCHED: a player whose match waits for a host came back on this
        connection, with a client speaking game `protocol`."""
        self._expect(PlayerState.NEW)
        self._player_id = player_id
        self._name = name
        self._protocol = protocol
        self._enter(PlayerState.MATCHED, game)

    def requeued(self, player_id: str, name: str, game: str, protocol: int) -> None:
        """NEW -> QUEUED: a player came back for the place kept for them in a queue,
        with a client speaking game `protocol`."""
        self._expect(PlayerState.NEW)
        self._player_id = player_id
        self._name = name
        self._protocol = protocol
        self._enter(PlayerState.QUEUED, game)

    def _expect(self, state: PlayerState) -> None:
        if self._state is not state:
            raise AssertionError(f"a {self._state.name} connection cannot leave {state.name}")

    def _enter(self, state: PlayerState, game: str | None) -> None:
        self._state = state
        self._game = game
        if self._closing:
            return
        if state in _WAITING:
            self._pinged = False
            self._arm(self._config.ping_interval)
        elif self._framed:
            self._arm(self._config.idle_timeout)

    def _arm(self, seconds: float | None) -> None:
        self._timeout = seconds
        self._wire.set_timeout(seconds)

    # Inputs from the transport.

    def connection_made(self) -> bool:
        """The connection is up: arm the hello timeout and ask for admission.

        False if it was refused (and is being closed with `too_many_connections`).
        """
        self._arm(self._config.hello_timeout)
        refusal = self._server.admit(self)
        if refusal is not None:
            self.send_error(errors.TOO_MANY_CONNECTIONS, refusal)
            self.close()
            return False
        self._admitted = True
        return True

    def data_received(self, data: bytes) -> None:
        """Bytes of the stream; on a message-framed connection, one whole message."""
        if self._closing:
            return
        self._heard_from_peer()
        self._decoder.push(data)
        self._process()

    def message_refused(self, error: FrameError) -> None:
        """A message the transport could not take (a binary WebSocket message), in turn.

        Answered with `error` when its turn comes, and limited and counted like
        any frame. Only for message-framed connections.
        """
        if not isinstance(self._decoder, MessageDecoder):
            raise TypeError("message_refused is for message-framed connections")
        if self._closing:
            return
        self._heard_from_peer()
        self._decoder.refuse(error)
        self._process()

    def _heard_from_peer(self) -> None:
        self._heard = True
        if self._state in _WAITING:
            # Alive: the next liveness ping is due after another quiet interval.
            self._pinged = False
            self._arm(self._config.ping_interval)

    def timer_expired(self) -> None:
        if self._closing or not self._heard:
            # A close that did not complete (a peer that never reads, or never answers
            # TLS close_notify), or a peer that sent nothing at all, perhaps not even a
            # TLS handshake: drop the connection without another word.
            self._closing = True
            self._decoder.clear()
            self._wire.abort()
            return
        if self._state in _WAITING:
            if not self._pinged:
                self._pinged = True
                self.send({"type": "ping"})
                self._arm(self._config.ping_timeout)
                return
            # Dead, or as good as dead: it is told `timeout` (an abort would throw the
            # frame away unsent) and the lobby lets go of its player at once, so its
            # ticket is withdrawn now rather than when the close completes; a close the
            # dead peer never completes is aborted after `close_timeout`. The socket
            # counts against the per-address cap until it is really gone: a peer that
            # never answers must not hold more sockets than the cap.
            self.send_error(
                errors.TIMEOUT,
                f"no answer to ping within {self._timeout:g} seconds; closing the connection",
            )
            self.close()
            self._let_go_player()
            return
        self.send_error(
            errors.TIMEOUT,
            f"no frame for {self._timeout:g} seconds; closing the connection",
        )
        self.close()

    def connection_lost(self) -> None:
        self._closing = True
        self._arm(None)
        self._decoder.clear()
        self._held.clear()
        self._let_go()

    def _let_go_player(self) -> None:
        # The lobby is told once that the connection's player is gone...
        if self._admitted and not self._player_gone:
            self._player_gone = True
            self._server.player_gone(self)

    def _let_go(self) -> None:
        # ... and once that the connection is.
        self._let_go_player()
        if self._admitted:
            self._admitted = False
            self._server.connection_lost(self)

    # Outputs, for the lobby.

    def send(self, frame: Frame) -> None:
        """Write one frame now (unless the connection is closing); an error frame is
        counted by its code here, where every frame leaves (the final `too_many_errors`,
        a `timeout`, a `server_draining` pushed at a drain alike)."""
        if self._closing:
            return
        self._wire.write(encode_frame(frame))
        if self._error_counts is not None and frame.get("type") == "error":
            self._error_counts[frame["code"]] += 1

    def reply(self, request: Request, frame: Frame, *, final: bool = False) -> None:
        """Answer `request`, echoing its id; `final` closes the connection after it."""
        if request.request_id is not None:
            frame["id"] = request.request_id
        self.send(frame)
        if final:
            self.close()

    def push(self, frame: Frame, *, final: bool = False) -> None:
        """A frame the server sends on its own; after the current request's reply, if any."""
        if self._closing:
            return
        if self._busy:
            self._held.append((frame, final))
            return
        self.send(frame)
        if final:
            self.close()

    def send_error(
        self,
        code: str,
        message: str,
        request_id: RequestId = None,
        *,
        counted: bool | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """An `error` frame; too many protocol errors close the connection.

        `counted` overrides whether the error counts (default: unless its code
        is one of `errors.NOT_COUNTED`); `fields` go into the frame (`reason`).
        """
        self.send(error_frame(code, message, request_id, fields))
        if counted is None:
            counted = code not in errors.NOT_COUNTED
        if not counted or self._closing:
            return
        self._protocol_errors += 1
        limit = self._config.max_protocol_errors
        if self._protocol_errors >= limit:
            self.send(
                error_frame(
                    errors.TOO_MANY_ERRORS,
                    f"{limit} protocol errors on this connection; closing it",
                )
            )
            self.close()

    def close(self) -> None:
        """Close after the frames written so far; abort if that takes `close_timeout`."""
        if self._closing:
            return
        self._closing = True
        self._decoder.clear()
        self._arm(self._config.close_timeout)
        if self._reading_paused:
            # The TLS close needs the peer's close_notify: read again.
            self._reading_paused = False
            self._wire.resume_reading()
        self._wire.close()

    def output_paused(self) -> None:
        """The wire's peer reads slower than it is answered: serve no request until
        `output_resumed` (frames the server pushes meanwhile still go to the wire)."""
        self._output_paused = True
        self._flow_control()

    def output_resumed(self) -> None:
        """The wire can send again: serve the requests waiting."""
        if self._output_paused:
            self._output_paused = False
            self._process()

    # Serving requests one at a time.

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            # Lines are split and parsed one at a time, only while no request is being
            # served and the connection is open: the rest waits as raw bytes.
            while not self._busy and not self._closing and not self._output_paused:
                line = self._decoder.next_line()
                if line is None:
                    break
                self._take(line)
        finally:
            self._processing = False
        self._flow_control()

    def _take(self, line: bytes | FrameError) -> None:
        """Apply the limits to one line, then parse and serve it."""
        if isinstance(line, bytes) and not line:
            # A blank line is skipped, but it is still a frame for the rate limit.
            if not self._bucket.take(self._clock.seconds()):
                self._rate_limited(None)
            return
        self._framed = True
        if self._state is PlayerState.NEW or self._state is PlayerState.IDLE:
            self._arm(self._config.idle_timeout)
        if not self._bucket.take(self._clock.seconds()):
            # Parsed only to echo its id. Every rate_limited error counts towards
            # closing the connection, so this costs at most max_protocol_errors parses.
            request_id = None if isinstance(line, FrameError) else request_id_of(line)
            self._rate_limited(request_id)
            return
        item = line if isinstance(line, FrameError) else parse_frame(line)
        if isinstance(item, FrameError):
            self.send_error(item.code, item.message, item.request_id)
            return
        self._busy = True
        # A request served at once (most are: the matchmaker and the rooms are in
        # memory) is finished here, without a Deferred and its two callbacks; one
        # that waits (on Redis) is finished when its Deferred fires.
        try:
            waiting = self._server.serve(self, item)
        except Exception:
            self._failed(Failure(), item)
            self._served(None)
            return
        if waiting is None:
            self._served(None)
            return
        waiting.addErrback(self._failed, item)
        waiting.addBoth(self._served)

    def _rate_limited(self, request_id: RequestId) -> None:
        self.send_error(
            errors.RATE_LIMITED,
            f"more than {self._config.frame_rate:g} frames per second; the frame was dropped",
            request_id,
        )

    def _failed(self, failure: Failure, request: Request) -> None:
        if failure.check(LobbyError):
            error = failure.value
            assert isinstance(error, LobbyError)
            self.send_error(error.code, error.message, request.request_id, counted=error.counted,
                            fields=error.fields)  # fmt: skip
            if error.final:
                self.close()
            return
        if failure.check(BackendUnavailable):
            # Redis is away (restarting, unreachable): no bug here, and the
            # player may try again; the pools reconnect by themselves.
            self.log.warn("serving {request!r}: {error}", request=request, error=failure.value)
            self.send_error(
                errors.UNAVAILABLE,
                "the server's shared state did not answer in time; try again shortly",
                request.request_id,
            )
            return
        self.log.failure(
            "serving {request!r} from {peer} failed", failure, request=request, peer=self.peer_host
        )
        self.send_error(
            errors.INTERNAL_ERROR, "the server failed to serve this request", request.request_id
        )

    def _served(self, _: object) -> None:
        self._busy = False
        held, self._held = self._held, []
        for frame, final in held:
            self.push(frame, final=final)
            if self._closing:
                break
        self._process()

    def _flow_control(self) -> None:
        # Lines wait only while a request waits on the store or matchmaker; once more
        # than a frame's worth of bytes waits, stop reading from the peer until the
        # request is served rather than buffer without bound.
        if self._closing:
            return
        backlog = (
            self._busy or self._output_paused
        ) and self._decoder.buffered > self._config.max_frame_bytes
        if backlog and not self._reading_paused:
            self._reading_paused = True
            self._wire.pause_reading()
        elif not backlog and self._reading_paused:
            self._reading_paused = False
            self._wire.resume_reading()
