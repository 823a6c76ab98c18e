"""The game session over WebSocket, for browsers: a thin autobahn adapter at `/game`.

A browser cannot send UDP, so after the lobby's `match_found` it opens
`wss://HOST:7380/game` on the web server and plays there (docs/web.md, "The
game session over WebSocket"). Its first binary message is its connect
token as a UDP client presents it (the 1200-byte `request` packet,
docs/protocol.md); every later binary message is one room message (msgpack,
what a UDP client sends on its reliable channel), and every message the
server sends is one room message too. The player sits in the same room as
the UDP players: the game host opens a *stream session* for it
(`IGameHost.open_stream`) beside its UDP sessions.

`GameSocketProtocol` is one such socket, a thin adapter around a
`GameStream` (vinom.hosting.game_stream, the session's sans-I/O machine,
shared with WebTransport): the machine learns the token's match (the web
server holds the token key, as the lobby issuing the tokens does), finds the
match's host through the hosting service (`host_of`), opens the stream there
and relays messages both ways; the socket is the stream's `IStreamPeer`.
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
size limit is for what a player sends.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from attrs import frozen
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from txaio.tx import make_logger
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
from vinom.net.origins import OriginPolicy, forwarded_client_address, peer_host_of
from vinom.protocol.config import DEFAULT_MAX_RECEIVE_MESSAGE, ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import UNRELIABLE
from vinom.protocol.tokens import peek_request_token
from vinom.protocol.wire import REQUEST_SIZE

__all__ = [
    "GameSocketConfig",
    "GameSocketFactory",
    "GameSocketProtocol",
    "HeldOutput",
]

# The opcode of a binary frame (RFC 6455, 5.2).
_BINARY_OPCODE = 2
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


class MatchHosts(Protocol):
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
class GameSocketProtocol(WebSocketServerProtocol):
    """One browser's game session: a `GameStream` (token first, then room messages
    both ways) on an autobahn socket."""

    # As in the WebSocket lobby: autobahn's own handshake and failure logs are a
    # flood an attacker chooses; refusals are counted here instead.
    log = make_logger(level="error")

    def __init__(self, owner: GameSocketFactory) -> None:
        super().__init__()
        self._owner = owner
        config = owner.config
        self._stream = GameStream(owner.find_host, token_timeout=config.token_timeout,
                                  message_rate=config.message_rate,
                                  message_burst=config.message_burst)  # fmt: skip
        self._runner = GameStreamRunner(self._stream, self, owner.clock, owner)
        # The transport's write buffer is full (it paused us); output waits in `_out`.
        self._paused = False
        self._out = HeldOutput()
        # The host ended the session while output was held: this close once it is sent.
        self._end_when_sent: Close | None = None
        # The client key this socket is counted under, once admitted.
        self._client: str | None = None

    # autobahn

    def connectionMade(self) -> None:
        super().connectionMade()
        # twisted.web's HTTP channel registered itself as the transport's producer
        # and keeps the slot after the upgrade; the socket takes it, so that a full
        # write buffer pauses this session's output (pauseProducing below).
        transport = IConsumer(self.transport, None)
        if transport is not None:
            transport.unregisterProducer()
            transport.registerProducer(self, True)

    def onConnect(self, request: ConnectionRequest) -> None:
        owner = self._owner
        origin = request.headers.get("origin")
        if origin is not None and not owner.origin_policy.allows(origin):
            owner.refused("origin")
            raise ConnectionDeny(ADMISSION_STATUS["origin"], "origin not allowed")
        assert self.transport is not None
        client = client_key(
            forwarded_client_address(
                peer_host_of(self.transport), request.headers, owner.trusted_proxies
            )
        )
        refusal = owner.admit(client)
        if refusal is not None:
            owner.refused(refusal)
            raise ConnectionDeny(ADMISSION_STATUS[refusal], _REFUSAL_TEXT[refusal])
        self._client = client

    def onOpen(self) -> None:
        self._runner.run(self._stream.start(self._owner.clock.seconds()))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803 (autobahn's name)
        stream = self._stream
        self._runner.run(stream.message(payload, self._owner.clock.seconds(), binary=isBinary))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        # autobahn leaves its close-handshake timer running after a drop (as in the lobby).
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None
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
            if self.state == WebSocketServerProtocol.STATE_OPEN:
                self.sendClose(close.code, close.reason)

    def stopProducing(self) -> None:
        pass  # the connection is going: connectionLost follows

    # IStreamPeer

    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        if self.state != WebSocketServerProtocol.STATE_OPEN:
            return  # the peer has begun to close: what is left is lost with it
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
        elif self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendClose(close.code, close.reason)

    # internals

    def _write_out(self, messages: list[tuple[int, bytes]]) -> None:
        """Write messages until the transport pauses us; hold the rest."""
        # One binary frame each. Not sendMessage: autobahn applies the incoming size
        # limit (`max_message`) to what it sends too, and a state may be longer.
        send = self.sendFrame
        for i, (_channel, data) in enumerate(messages):
            send(opcode=_BINARY_OPCODE, payload=data)
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

    def dropConnection(self, abort: bool = False) -> None:
        # A transport does not close while a producer is registered (the TLS wrapper
        # would never send its close_notify): give the slot back first.
        consumer = IConsumer(self.transport, None)
        if consumer is not None:
            consumer.unregisterProducer()
        super().dropConnection(abort)

    def _drop_slow_reader(self) -> None:
        """The peer reads slower than the match runs: drop the socket (the seat's grace)."""
        held = self._out.held_bytes
        self._out = HeldOutput()
        self._end_when_sent = None
        self._runner.run(self._stream.drop("too_slow"))
        self._owner.slow_reader_dropped(held)
        # A close frame would wait behind the unread bytes: abort instead.
        self.dropConnection(abort=True)


class GameSocketFactory(WebSocketServerFactory):
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
        super().__init__(server="vinom", reactor=reactor)
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
        limit = max(self.config.max_message, REQUEST_SIZE)
        options: dict[str, Any] = {
            "maxMessagePayloadSize": limit,
            "maxFramePayloadSize": limit,
            "failByDrop": False,
            "openHandshakeTimeout": self.config.token_timeout,
            "webStatus": False,
            "autoPingInterval": self.config.ping_interval,
            "autoPingTimeout": self.config.ping_timeout,
            "allowedOrigins": ["*"],
            "allowNullOrigin": True,
        }
        self.setProtocolOptions(**options)

    def buildProtocol(self, addr: IAddress | None) -> GameSocketProtocol:
        protocol = GameSocketProtocol(self)
        protocol.factory = self
        return protocol

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
