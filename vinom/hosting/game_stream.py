"""One browser's game session as a connection machine that does no I/O, shared by
the `/game` WebSocket (websocket.py) and WebTransport (webtransport.py) adapters.

`GameStream` is everything a browser's game session is besides its transport:
the token that must come first (within `token_timeout` seconds), the message
rate limit, the messages that wait while the game host opens the stream (sent
in order once it is open), the refusals with their close codes (docs/web.md:
both transports close with the same codes, so the web client explains them
alike), and how the host's stream ends when the session does, whichever side
ends it. In the style of vinom.gateway.relay_core: calls come in with `now`,
frozen actions go out (`Action`), the token timer is returned as a deadline
(`SetTimer`), no reactor, no socket, no callback into the adapter. It finds
the token's host through the `find_host` it is given (a lookup: the token key
and the hosting service's table, no I/O).

`GameStreamRunner` carries a stream's actions out for an adapter: it calls the
game host (`open_stream`, whose Deferred it feeds back to the machine,
`stream_messages`, `close_stream`), keeps the token timer on the reactor,
counts refusals and openings in the adapter's `StreamCounts` (the `/game`
sockets' factory, the WebTransport server), and hands the close to send to the
adapter's `IGameStreamWire`.

Security: a session holds nothing before its token but its timer; a token
that opens no session, a message faster than the rate limit, and a text
message close it at once, counted by reason; the host's stream is closed
whenever the session ends after it opened, so no seat stays held by a
session that is gone (the seat then enters its reconnection grace).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from attrs import frozen
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from vinom.hosting.interfaces import IGameHost, IStreamPeer, StreamOpened, StreamRefused
from vinom.net.ratelimit import TokenBucket

__all__ = [
    "ADMISSION_STATUS",
    "CLOSE_HOST_FAILED",
    "CLOSE_NORMAL",
    "CLOSE_TEXT_MESSAGE",
    "CLOSE_TOKEN_REFUSED",
    "CLOSE_TOKEN_TIMEOUT",
    "CLOSE_TOO_FAST",
    "Action",
    "Close",
    "CloseStream",
    "Counted",
    "GameStream",
    "GameStreamRunner",
    "IGameStreamWire",
    "OpenStream",
    "SetTimer",
    "StreamCounts",
    "ToHost",
]

# Close codes (docs/web.md). 1000-1011 are RFC 6455's, 4000-4999 the application's.
CLOSE_NORMAL = 1000  # the host ended the session (the match is over, or a new socket took it)
CLOSE_TEXT_MESSAGE = 4003  # a text message: game messages are binary
CLOSE_HOST_FAILED = 1011  # the match's host failed while opening the session
CLOSE_TOKEN_REFUSED = 4001  # the token opens no session (the reason says why)
CLOSE_TOKEN_TIMEOUT = 4002  # no token within the time allowed
CLOSE_TOO_FAST = 4008  # messages faster than the rate limit

# The HTTP status of a session refused before it opens (docs/web.md), by the reason counted.
ADMISSION_STATUS = {
    "origin": 403,  # the page's Origin is not allowed
    "too_many_sockets": 429,  # the client address has its share of game sessions open
    "server_full": 503,  # the web server has its share of game sessions open
}


@frozen
class SetTimer:
    """Call `timer_expired` at `at` (the adapter's clock), or at no time if None."""

    at: float | None


@frozen
class OpenStream:
    """Open the session's stream on `host` with `token` (`IGameHost.open_stream`); its
    outcome goes to `stream_opened` or `stream_failed`."""

    host: IGameHost
    token: bytes


@frozen
class ToHost:
    """Hand `messages`, in order, to the host's stream session `session_id`."""

    host: IGameHost
    session_id: int
    messages: tuple[bytes, ...]


@frozen
class CloseStream:
    """End the host's stream session `session_id` (its seat's reconnection grace)."""

    host: IGameHost
    session_id: int


@frozen
class Counted:
    """Count the session: `refused` for a refusal or limit by this reason, or, when
    `opened`, a session opened on its host."""

    refused: str | None = None
    opened: bool = False


@frozen
class Close:
    """Close the browser's session with `code` and `reason`; when `drain`, after the
    output the transport holds back has left."""

    code: int
    reason: str
    drain: bool = False


Action = SetTimer | OpenStream | ToHost | CloseStream | Counted | Close

_TOKEN, _OPENING, _OPEN, _CLOSED = range(4)


class GameStream:
    """One browser's game session (module docstring): token first, then room messages.

    `now` arguments are the adapter's monotonic clock (the reactor's `seconds()`).
    """

    def __init__(
        self,
        find_host: Callable[[bytes], IGameHost | str],
        *,
        token_timeout: float,
        message_rate: float,
        message_burst: float,
    ) -> None:
        self._find_host = find_host
        self._token_timeout = token_timeout
        self._rate = message_rate
        self._burst = message_burst
        self._state = _TOKEN
        self._bucket: TokenBucket | None = None
        self._deadline: float | None = None
        self._host: IGameHost | None = None
        self._session_id = 0
        # Messages that came while the stream was opening, sent once it is open.
        self._held: list[bytes] = []

    @property
    def is_open(self) -> bool:
        """The host's stream is open: messages go to it."""
        return self._state == _OPEN

    @property
    def is_closed(self) -> bool:
        return self._state == _CLOSED

    def start(self, now: float) -> list[Action]:
        """The transport is open: the token's time and the rate limit start now."""
        self._bucket = TokenBucket(self._rate, self._burst, now)
        if self._state != _TOKEN:
            return []
        self._deadline = now + self._token_timeout
        return [SetTimer(self._deadline)]

    def message(self, data: bytes, now: float, *, binary: bool = True) -> list[Action]:
        """One message from the browser: its token first, then room messages."""
        state = self._state
        if state == _CLOSED:
            return []
        bucket = self._bucket
        if bucket is not None and not bucket.take(now):
            return self.refuse(CLOSE_TOO_FAST, "too_fast", "too many messages")
        if not binary:
            return self.refuse(CLOSE_TEXT_MESSAGE, "text_message",
                               "game messages are binary (msgpack)")  # fmt: skip
        if state == _OPEN:
            assert self._host is not None
            return [ToHost(self._host, self._session_id, (data,))]
        if state == _OPENING:
            self._held.append(data)
            return []
        return self._token(data)

    def timer_expired(self, now: float) -> list[Action]:
        """The deadline of the last `SetTimer` came (the adapter's timer fired)."""
        if self._state != _TOKEN or self._deadline is None:
            return []
        self._deadline = None
        return self.refuse(CLOSE_TOKEN_TIMEOUT, "token_timeout", "no token in time")

    def stream_opened(self, opened: StreamOpened | StreamRefused) -> list[Action]:
        """The host answered `OpenStream`."""
        host = self._host
        assert host is not None
        if isinstance(opened, StreamRefused):
            return self.refuse(CLOSE_TOKEN_REFUSED, opened.reason)
        if self._state != _OPENING:
            # The session went, or broke a limit, while the stream opened.
            return [CloseStream(host, opened.session_id)]
        self._state = _OPEN
        self._session_id = opened.session_id
        actions: list[Action] = [Counted(opened=True)]
        held, self._held = self._held, []
        if held:
            actions.append(ToHost(host, opened.session_id, tuple(held)))
        return actions

    def stream_failed(self) -> list[Action]:
        """The host failed to open the stream (it raised, or its Deferred failed)."""
        was_closed = self._state == _CLOSED
        self._state = _CLOSED
        self._held = []
        actions: list[Action] = [Counted(refused="host_failed")]
        if not was_closed:
            actions.append(Close(CLOSE_HOST_FAILED, "the game host failed"))
        return actions

    def host_ended(self) -> list[Action]:
        """The host ended the stream (the match is over, or a new session took the seat)."""
        self._state = _CLOSED
        self._held = []
        return [*self._stop_timer(), Close(CLOSE_NORMAL, "session closed", drain=True)]

    def refuse(self, code: int, reason: str, text: str | None = None) -> list[Action]:
        """Close the session for `reason` (counted) with `code`; `text` is the close
        reason the browser reads, `reason` itself if None."""
        return [Counted(refused=reason), *self.close(code, text if text is not None else reason)]

    def close(self, code: int, reason: str) -> list[Action]:
        """Close the session with `code`, ending the host's stream (nothing counted)."""
        was_closed = self._state == _CLOSED
        actions = self._end()
        if not was_closed:
            actions.append(Close(code, reason))
        return actions

    def drop(self, reason: str) -> list[Action]:
        """The adapter drops the transport for `reason` (counted), sending no close."""
        return [Counted(refused=reason), *self._end()]

    def peer_closed(self) -> list[Action]:
        """The browser closed the session, or its connection went."""
        return self._end()

    # internals

    def _token(self, token: bytes) -> list[Action]:
        actions = self._stop_timer()
        found = self._find_host(token)
        if isinstance(found, str):
            return [*actions, *self.refuse(CLOSE_TOKEN_REFUSED, found)]
        self._state = _OPENING
        self._host = found
        return [*actions, OpenStream(found, token)]

    def _stop_timer(self) -> list[Action]:
        if self._deadline is None:
            return []
        self._deadline = None
        return [SetTimer(None)]

    def _end(self) -> list[Action]:
        """The session is over: its timer stops, the host's stream (if open) ends."""
        actions = self._stop_timer()
        if self._state == _OPEN and self._host is not None:
            actions.append(CloseStream(self._host, self._session_id))
        self._state = _CLOSED
        self._held = []
        return actions


class IGameStreamWire(IStreamPeer):
    """What a `GameStreamRunner` asks of its adapter (which is the host's stream peer too)."""

    def end_session(close: Close) -> None:
        """Close the browser's session with the close code and reason."""


class StreamCounts(Protocol):
    """Where an adapter's sessions are counted."""

    def refused(self, reason: str) -> None:
        """A session refused, or closed by a limit, for `reason`."""

    def stream_opened(self) -> None:
        """A session opened on its game host."""


class GameStreamRunner:
    """Carries out a `GameStream`'s actions for `wire`, counted in `counts` (module
    docstring); the token timer runs on `clock`."""

    def __init__(self, stream: GameStream, wire: IGameStreamWire, clock: IReactorTime,
                 counts: StreamCounts) -> None:  # fmt: skip
        self.stream = stream
        self._wire = wire
        self._clock = clock
        self._counts = counts
        self._timer: IDelayedCall | None = None

    def run(self, actions: Sequence[Action]) -> None:
        wire = self._wire
        for action in actions:
            if isinstance(action, ToHost):
                action.host.stream_messages([(action.session_id, m) for m in action.messages])
            elif isinstance(action, SetTimer):
                self._set_timer(action.at)
            elif isinstance(action, Counted):
                if action.refused is not None:
                    self._counts.refused(action.refused)
                if action.opened:
                    self._counts.stream_opened()
            elif isinstance(action, Close):
                wire.end_session(action)
            elif isinstance(action, CloseStream):
                action.host.close_stream(action.session_id)
            else:
                self._open(action)

    def cancel(self) -> None:
        """The adapter is gone: no timer outlives it."""
        self._set_timer(None)

    def _open(self, action: OpenStream) -> None:
        stream = self.stream
        try:
            opening = action.host.open_stream(action.token, self._wire)
        except Exception:
            self.run(stream.stream_failed())
            return
        opening.addCallbacks(self._opened, self._failed)

    def _opened(self, opened: StreamOpened | StreamRefused) -> None:
        self.run(self.stream.stream_opened(opened))

    def _failed(self, failure: Failure) -> None:
        self.run(self.stream.stream_failed())

    def _set_timer(self, at: float | None) -> None:
        timer = self._timer
        if timer is not None and timer.active():
            timer.cancel()
        self._timer = None
        if at is not None:
            delay = max(0.0, at - self._clock.seconds())
            self._timer = self._clock.callLater(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self.run(self.stream.timer_expired(self._clock.seconds()))
