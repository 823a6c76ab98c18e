"""The game session over WebSocket, for browsers: a thin adapter at `/game`.

A browser cannot send UDP, so after the lobby's `match_found` it opens
`wss://HOST:7380/game` on the web server and plays there (docs/web.md, "The
game session over WebSocket"). Its first binary message is its connect
token as a UDP client presents it (the 1200-byte `request` packet,
docs/protocol.md); every later binary message is one room message (msgpack,
what a UDP client sends on its reliable channel), and every message the
server sends is one room message too. The player sits in the same room as
the UDP players: the game host opens a *stream session* for it
(`IGameHost.open_stream`) beside its UDP sessions.

`GameSocketResource` is `/game` on twisted.web: it checks the upgrade
request (RFC 6455's headers, the Origin policy, the socket caps), answers it
with 101 and hands the connection's transport to a `GameSocketProtocol`
(vinom.net.upgrade, as the lobby's `/lobby` does). `GameSocketProtocol` is one such socket,
vinom's own WebSocket framing (`ServerFrames`, vinom.net.websocket: sans-I/O
bytes in, messages out) around a `GameStream` (vinom.hosting.game_stream,
the session's sans-I/O machine, shared with WebTransport): the machine
learns the token's match (the web server holds the token key, as the lobby
issuing the tokens does), finds the match's host through the hosting service
(`host_of`), opens the stream there and relays messages both ways; the socket
is the stream's `IStreamPeer`.
`GameSocketFactory` builds them and holds the limits (a time for the token
to come, the message size, a message rate, the open sockets
per client address and in all, counted as the WebSocket lobby counts
connections: per IPv4 address or IPv6 /64, behind `trusted_proxies` the
address from X-Forwarded-For) and the Origin policy, the one the WebSocket
lobby applies. Every refusal is counted in `refusals` by reason.

A socket whose peer reads slowly holds its output back: the protocol is the
transport's push producer (it takes the slot twisted.web's HTTP channel held
before the upgrade), so when the transport's write buffer is full it is
paused, and what the host hands over meanwhile waits in a `HeldOutput` (only
the newest state; every reliable message, in order) until the transport
resumes. A socket holding more than `GameSocketConfig.held_limit` bytes is
dropped: its seat enters the reconnection grace; the drop is counted
(`too_slow`) and logged (at most 10 lines at once, 1 a second after that).
Messages go out as single binary frames, whatever their size: the message
size limit is for what a player sends. Liveness is a WebSocket ping every
`ping_interval`; one unanswered for `ping_timeout` drops the socket. A close
(ours or the peer's) waits `CLOSE_HANDSHAKE_TIMEOUT` for the other side's
close frame, then the connection is closed.
"""

from __future__ import annotations

import time
import typing
from collections import Counter
from collections.abc import Callable

from attrs import frozen
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from vinom.hosting.game_stream import (
    ADMISSION_STATUS,
    Close,
    GameStream,
    GameStreamRunner,
    IGameStreamWire,
)
from vinom.hosting.interfaces import IGameHost
from vinom.net.addresses import client_key
from vinom.net.limits import LogLimiter
from vinom.net.origins import OriginPolicy
from vinom.net.upgrade import Refusal, accept_upgrade, client_address, refusal, refuse
from vinom.net.websocket import (
    CLOSED,
    OPEN,
    CloseReceived,
    Ping,
    Pong,
    ProtocolFailure,
    ServerFrames,
    TextMessage,
)
from vinom.protocol.config import DEFAULT_MAX_RECEIVE_MESSAGE, ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import UNRELIABLE
from vinom.protocol.tokens import peek_request_token
from vinom.protocol.wire import REQUEST_SIZE

__all__ = [
    "GameSocketConfig",
    "GameSocketFactory",
    "GameSocketProtocol",
    "GameSocketResource",
    "HeldOutput",
]

# Seconds to wait for the peer's close frame after ours (then the connection is closed).
CLOSE_HANDSHAKE_TIMEOUT = 1.0
# Sockets dropped for reading too slowly: logged at most this many at once and
# this many per second after that.
DROP_LOG_BURST = 10
DROP_LOG_RATE = 1.0

# Upgrade requests refused for the socket caps (docs/web.md; the status is
# ADMISSION_STATUS's), with the reason counted.
_REFUSAL_TEXT = {
    "too_many_sockets": "too many game sockets from this address",
    "server_full": "too many game sockets",
}


class MatchHosts(typing.Protocol):
    """Where the match's host is found (the hosting service)."""

    def host_of(self, match_id: str) -> IGameHost | None: ...


@frozen
class GameSocketConfig:
    """The limits of one game socket."""

    # Seconds from the opening handshake to the token message.
    token_timeout: float = 10.0
    # The largest message a player may send (the rooms' limit on UDP, 2 KiB; the
    # token message is 1200 bytes). A larger one fails the socket with 1009.
    max_message: int = DEFAULT_MAX_RECEIVE_MESSAGE
    # Messages per second (a burst of `message_burst`), far above any game's action
    # rate, which the seat router applies as on UDP: this one protects the server.
    message_rate: float = 20.0
    message_burst: float = 40.0
    # WebSocket pings find a dead socket (its seat then enters the reconnection
    # grace): one every `ping_interval` seconds, unanswered for `ping_timeout`.
    ping_interval: float = 5.0
    ping_timeout: float = 10.0
    # Bytes of messages a socket may hold back while its transport cannot take
    # more (a reader slower than the match); past it the socket is dropped.
    held_limit: int = 256 * 1024
    # Open game sockets (from the upgrade request until closed) per client address
    # (an IPv4 address, an IPv6 /64), and in all: without a cap, sockets that never
    # send a token could be held open until the token timeout without limit.
    max_sockets_per_ip: int = 32
    max_sockets: int = 10000


class HeldOutput:
    """Messages a paused socket holds back, oldest first: of the states (unreliable
    messages) only the newest is kept; every reliable message is kept, in order."""

    __slots__ = ("held_bytes", "messages", "state_at")

    def __init__(self) -> None:
        # A replaced state's slot holds None.
        self.messages: list[tuple[int, bytes] | None] = []
        self.state_at = -1
        self.held_bytes = 0

    def __bool__(self) -> bool:
        return bool(self.messages)

    def hold(self, channel: int, data: bytes) -> None:
        messages = self.messages
        if channel == UNRELIABLE:
            at = self.state_at
            if at >= 0:
                replaced = messages[at]
                assert replaced is not None
                self.held_bytes -= len(replaced[1])
                messages[at] = None  # superseded before it left
            self.state_at = len(messages)
        messages.append((channel, data))
        self.held_bytes += len(data)

    def take(self) -> list[tuple[int, bytes]]:
        """Everything held, in order, leaving nothing held."""
        messages, self.messages = self.messages, []
        self.state_at = -1
        self.held_bytes = 0
        return [m for m in messages if m is not None]


@implementer(IGameStreamWire, IPushProducer)
class GameSocketProtocol(Protocol):
    """One browser's game session: a `GameStream` (token first, then room messages
    both ways) on a WebSocket whose upgrade `GameSocketResource` accepted."""

    def __init__(self, owner: GameSocketFactory, client: str) -> None:
        self._owner = owner
        config = owner.config
        self._frames = ServerFrames(max(config.max_message, REQUEST_SIZE))
        self._stream = GameStream(owner.find_host, token_timeout=config.token_timeout,
                                  message_rate=config.message_rate,
                                  message_burst=config.message_burst)  # fmt: skip
        self._runner = GameStreamRunner(self._stream, self, owner.clock, owner)
        # The transport's write buffer is full (it paused us); output waits in `_out`.
        self._paused = False
        self._out = HeldOutput()
        # The host ended the session while output was held: this close once it is sent.
        self._end_when_sent: Close | None = None
        # The client key this socket is counted under (released when it closes).
        self._client: str | None = client
        # Liveness: the ping timer, and the payload and time of the ping awaiting its pong.
        self._ping_call: IDelayedCall | None = None
        self._ping_payload = b""
        self._ping_sent: float | None = None
        self._pings = 0
        # The closing handshake's deadline.
        self._close_call: IDelayedCall | None = None

    # twisted

    def connectionMade(self) -> None:
        # twisted.web's HTTP channel registered itself as the transport's producer
        # and keeps the slot after the upgrade; the socket takes it, so that a full
        # write buffer pauses this session's output (pauseProducing below).
        transport = IConsumer(self.transport, None)
        if transport is not None:
            transport.unregisterProducer()
            transport.registerProducer(self, True)
        clock = self._owner.clock
        self._ping_call = clock.callLater(self._owner.config.ping_interval, self._ping)
        self._runner.run(self._stream.start(clock.seconds()))

    def dataReceived(self, data: bytes) -> None:
        frames = self._frames
        for event in frames.receive(data):
            if type(event) is bytes:
                if frames.state is OPEN:
                    stream = self._stream
                    self._runner.run(stream.message(event, self._owner.clock.seconds()))
            elif isinstance(event, TextMessage):
                if frames.state is OPEN:
                    now = self._owner.clock.seconds()
                    text = event.text.encode("utf-8")
                    self._runner.run(self._stream.message(text, now, binary=False))
            elif isinstance(event, Ping):
                self._write(event.reply)
            elif isinstance(event, Pong):
                if self._ping_sent is not None and event.payload == self._ping_payload:
                    self._ping_sent = None
            elif isinstance(event, CloseReceived):
                self._write(event.reply)
                self._close_transport()
            elif isinstance(event, ProtocolFailure):
                self._write(event.reply)
                self._closing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call in (self._ping_call, self._close_call):
            if call is not None and call.active():
                call.cancel()
        self._ping_call = self._close_call = None
        self._runner.run(self._stream.peer_closed())
        self._runner.cancel()
        self._out = HeldOutput()
        if self._client is not None:
            self._owner.release(self._client)
            self._client = None

    # IPushProducer: the transport's write buffer is full, or has room again.

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._out:
            self._write_out(self._out.take())
        close = self._end_when_sent
        if close is not None and not self._paused and not self._out:
            self._end_when_sent = None
            self._send_close(close.code, close.reason)

    def stopProducing(self) -> None:
        pass  # the connection is going: connectionLost follows

    # IStreamPeer

    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        if self._frames.state is not OPEN:
            return  # the socket has begun to close: what is left is lost with it
        if self._paused or self._out:
            self._hold(messages, 0)
        else:
            self._write_out(messages)

    def stream_ended(self) -> None:
        self._runner.run(self._stream.host_ended())

    # IGameStreamWire

    def end_session(self, close: Close) -> None:
        if close.drain and self._out:
            self._end_when_sent = close  # after what is held
        else:
            self._send_close(close.code, close.reason)

    # internals

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.transport.write(data)

    def _write_out(self, messages: list[tuple[int, bytes]]) -> None:
        """Write messages (one binary frame each, whatever their size: the size limit
        is for what a player sends) until the transport pauses us; hold the rest."""
        binary = self._frames.binary
        write = self.transport.write  # type: ignore[union-attr]
        for i, (_channel, data) in enumerate(messages):
            write(binary(data))
            if self._paused:  # this write filled the buffer
                self._hold(messages, i + 1)
                return

    def _hold(self, messages: list[tuple[int, bytes]], start: int) -> None:
        out = self._out
        for i in range(start, len(messages)):
            channel, data = messages[i]
            out.hold(channel, data)
        if out.held_bytes > self._owner.config.held_limit:
            self._drop_slow_reader()

    def _send_close(self, code: int, reason: str) -> None:
        """Begin the closing handshake (once)."""
        frame = self._frames.close(code, reason)
        if frame:
            self._write(frame)
            self._closing()

    def _closing(self) -> None:
        """Our close frame went: the peer's is awaited, for a while."""
        if self._close_call is None:
            clock = self._owner.clock
            self._close_call = clock.callLater(CLOSE_HANDSHAKE_TIMEOUT, self._close_transport)

    def _close_transport(self, abort: bool = False) -> None:
        # A transport does not close while a producer is registered (the TLS wrapper
        # would never send its close_notify): give the slot back first.
        transport = self.transport
        if transport is None:
            return
        consumer = IConsumer(transport, None)
        if consumer is not None:
            consumer.unregisterProducer()
        if abort:
            transport.abortConnection()  # type: ignore[attr-defined]
        else:
            transport.loseConnection()

    def _ping(self) -> None:
        """Every `ping_interval`: a ping, or the drop of a socket whose last ping went
        unanswered for `ping_timeout`."""
        config = self._owner.config
        clock = self._owner.clock
        now = clock.seconds()
        self._ping_call = clock.callLater(config.ping_interval, self._ping)
        if self._frames.state is CLOSED:
            return
        if self._ping_sent is not None:
            if now - self._ping_sent >= config.ping_timeout:
                self._close_transport(abort=True)
            return
        if self._frames.state is OPEN:
            self._pings += 1
            self._ping_payload = self._pings.to_bytes(4, "big")
            self._ping_sent = now
            self._write(self._frames.ping(self._ping_payload))

    def _drop_slow_reader(self) -> None:
        """The peer reads slower than the match runs: drop the socket (the seat's grace)."""
        held = self._out.held_bytes
        self._out = HeldOutput()
        self._end_when_sent = None
        self._runner.run(self._stream.drop("too_slow"))
        self._owner.slow_reader_dropped(held)
        # A close frame would wait behind the unread bytes: abort instead.
        self._close_transport(abort=True)


class GameSocketResource(Resource):
    """`/game` on twisted.web: the WebSocket upgrade checked and answered, the connection
    handed to a `GameSocketProtocol` of `factory` (vinom.net.upgrade).

    Refused: a request that is not a WebSocket upgrade of version 13 (400, or 426
    naming the version), an Origin the policy does not allow (403, counted
    `origin`), a client over its socket cap (429, 503: `admit`'s reasons).
    """

    isLeaf = True

    def __init__(self, factory: GameSocketFactory) -> None:
        super().__init__()
        self.factory = factory

    def render_GET(self, request: Request) -> bytes | int:
        owner = self.factory
        refused = refusal(request, owner.origin_policy)
        if refused is not None:
            if refused.reason == "origin":
                owner.refused("origin")
            return refuse(request, refused)
        address = client_address(request, owner.trusted_proxies)
        if address is None:
            return NOT_DONE_YET  # the connection went while the request was read
        client = client_key(address)
        admission = owner.admit(client)
        if admission is not None:
            owner.refused(admission)
            return refuse(request, Refusal(ADMISSION_STATUS[admission],
                                           _REFUSAL_TEXT[admission], admission))  # fmt: skip
        accept_upgrade(request, owner.build_socket(client))
        return NOT_DONE_YET


class GameSocketFactory:
    """Builds `/game` sockets: the token's host found through `hosts`, the limits of `config`.

    `protocol` is the token key's configuration (the lobby's); `wall_clock`
    gives unix time for token expiry (as the game hosts' endpoints read it).
    """

    log = Logger()
    noisy = False

    def __init__(
        self,
        hosts: MatchHosts,
        protocol: ProtocolConfig,
        origin_policy: OriginPolicy,
        *,
        reactor: IReactorTime,
        config: GameSocketConfig | None = None,
        wall_clock: Callable[[], float] | None = None,
        trusted_proxies: int = 0,
    ) -> None:
        self.hosts = hosts
        self.trusted_proxies = trusted_proxies
        # Open sockets per client key, and in all.
        self._per_client: dict[str, int] = {}
        self.open_sockets = 0
        self.protocol_config = protocol
        self.origin_policy = origin_policy
        self.clock = reactor
        self.config = config if config is not None else GameSocketConfig()
        self._wall_clock = wall_clock if wall_clock is not None else time.time
        self._aead = new_aead(protocol.token_key)
        # Sockets refused or closed by a limit, by reason (token drop reasons,
        # `not_hosted`, `origin`, `token_timeout`, `too_fast`, `text_message`, ...).
        self.refusals: Counter[str] = Counter()
        self.streams_opened = 0
        self._drop_log = LogLimiter(DROP_LOG_RATE, DROP_LOG_BURST, reactor)

    def build_socket(self, client: str) -> GameSocketProtocol:
        """The socket of an upgrade admitted for `client` (a client key)."""
        return GameSocketProtocol(self, client)

    def find_host(self, token: bytes) -> IGameHost | str:
        """The host of the match the token is for, or why there is none (a reason)."""
        peeked = peek_request_token(token, self.protocol_config, self._wall_clock(), self._aead)
        if isinstance(peeked, str):
            return peeked
        host = self.hosts.host_of(peeked.match_id)
        return "not_hosted" if host is None else host

    def refused(self, reason: str) -> None:
        self.refusals[reason] += 1

    def stream_opened(self) -> None:
        self.streams_opened += 1

    def slow_reader_dropped(self, held: int) -> None:
        """Log a socket dropped for holding more than `held_limit` bytes (counted
        `too_slow`), unless such drops come in a flood."""
        if not self._drop_log.allow():
            return
        suppressed = self._drop_log.take_suppressed()
        self.log.info(
            "dropped a game socket: {held} bytes waited for its peer to read (more than "
            "{limit})" + (" ({suppressed} more drops not logged)" if suppressed else ""),
            held=held,
            limit=self.config.held_limit,
            suppressed=suppressed,
        )

    def admit(self, client: str) -> str | None:
        """Count a socket of `client` (a client key); the reason it is refused, if it is."""
        if self.open_sockets >= self.config.max_sockets:
            return "server_full"
        count = self._per_client.get(client, 0)
        if count >= self.config.max_sockets_per_ip:
            return "too_many_sockets"
        self._per_client[client] = count + 1
        self.open_sockets += 1
        return None

    def release(self, client: str) -> None:
        """An admitted socket of `client` is gone."""
        self.open_sockets -= 1
        remaining = self._per_client.get(client, 0) - 1
        if remaining > 0:
            self._per_client[client] = remaining
        else:
            self._per_client.pop(client, None)
