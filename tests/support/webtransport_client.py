"""Test helper: a WebTransport game client (aioquic's client, on a real UDP socket).

`WebTransportPlayer` is what a browser does on `--webtransport`'s port, driven
from the Twisted reactor as the server drives its side: a QUIC connection
with HTTP/3, an extended CONNECT to `/game` (`status` fires with the response
status), one bidirectional stream with length-prefixed messages (the token
first), datagrams both ways. Messages the server sends are decoded (msgpack)
into `messages` (each with how it came: "stream" or "datagram"); its close
capsule fires `closed` with (code, reason). When the server ends its side of the
stream, the player ends its own, as the web client does (it read to the end),
unless made with `reads_to_end=False` (a page that stopped reading).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
from aioquic.buffer import Buffer, encode_uint_var
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    PingAcknowledged,
    StreamDataReceived,
)
from aioquic.quic.rangeset import RangeSet
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase

from vinom.protocol.tokens import PublicToken
from vinom.rooms.message_reading import decode_server_message


class QuicPump(DatagramProtocol):
    """One aioquic client connection driven on the reactor: datagrams in, its
    datagrams out, its timer kept; a subclass reads the events (`_events`)."""

    quic: QuicConnection
    server: tuple[str, int]
    _timer: IDelayedCall | None = None

    def stopProtocol(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.quic.receive_datagram(data, addr, now=reactor.seconds())
        self._events()
        self.transmit()

    def transmit(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data, addr in self.quic.datagrams_to_send(now=reactor.seconds()):
            transport.write(data, addr)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        at = self.quic.get_timer()
        self._timer = None if at is None else reactor.callLater(
            max(0.0, at - reactor.seconds()), self._on_timer
        )

    def _on_timer(self) -> None:
        self._timer = None
        self.quic.handle_timer(now=reactor.seconds())
        self._events()
        self.transmit()

    def _events(self) -> None:
        raise NotImplementedError


class WebTransportPlayer(QuicPump):
    def __init__(self, port: int, origin: str | None, path: str = "/game",
                 reads_to_end: bool = True) -> None:  # fmt: skip
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                          max_datagram_frame_size=65536,
                                          server_name="localhost")  # fmt: skip
        configuration.verify_mode = 0  # ssl.CERT_NONE: the test trusts its own server
        self.quic = QuicConnection(configuration=configuration)
        self.h3 = H3Connection(self.quic, enable_webtransport=True)
        self.server = ("127.0.0.1", port)
        self.origin = origin
        self.path = path
        self.session_id: int | None = None
        self.stream_id: int | None = None
        self.status: Deferred[int] = Deferred()
        self.closed: Deferred[tuple[int, str]] = Deferred()
        self.terminated: Deferred[None] = Deferred()
        # The connection's end: its error code and reason.
        self.termination: tuple[int, str] | None = None
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.welcomed: Deferred[dict[str, Any]] = Deferred()
        self._buffer = b""
        self._capsules = b""
        self.reads_to_end = reads_to_end
        # The server ended its side of the stream; this player ended its own.
        self.stream_ended = False
        self.stream_end: Deferred[None] = Deferred()
        self.ended_own = False
        self._timer: IDelayedCall | None = None

    def startProtocol(self) -> None:
        self.quic.connect(self.server, now=reactor.seconds())
        self.session_id = self.quic.get_next_available_stream_id()
        headers = [(b":method", b"CONNECT"), (b":protocol", b"webtransport"),
                   (b":scheme", b"https"), (b":authority", b"localhost"),
                   (b":path", self.path.encode())]  # fmt: skip
        if self.origin is not None:
            headers.append((b"origin", self.origin.encode()))
        self.h3.send_headers(self.session_id, headers)
        self.transmit()

    def _events(self) -> None:
        while (event := self.quic.next_event()) is not None:
            if isinstance(event, ConnectionTerminated):
                self.termination = (event.error_code, event.reason_phrase)
                if not self.terminated.called:
                    self.terminated.callback(None)
                continue
            if isinstance(event, StreamDataReceived) and event.stream_id == self.stream_id:
                # The stream this client opened: aioquic's client would read the server's
                # bytes on it as HTTP/3 frames; they are the session's messages.
                self._stream_bytes(event.data)
                if event.end_stream:
                    self.stream_ended = True
                    self.stream_end.callback(None)
                    if self.reads_to_end and not self.ended_own:
                        self.end_stream()
                continue
            for h3_event in self.h3.handle_event(event):
                self._h3(h3_event)

    def _h3(self, event: Any) -> None:
        if isinstance(event, HeadersReceived) and event.stream_id == self.session_id:
            status = int(dict(event.headers)[b":status"])
            if not self.status.called:
                self.status.callback(status)
        elif isinstance(event, DataReceived) and event.stream_id == self.session_id:
            self._capsules += event.data
            if len(self._capsules) >= 8 and not self.closed.called:
                buf = Buffer(data=self._capsules)
                buf.pull_uint_var()  # the type (CLOSE_WEBTRANSPORT_SESSION)
                length = buf.pull_uint_var()
                body = buf.pull_bytes(length)
                (code,) = struct.unpack_from(">I", body)
                self.closed.callback((code, body[4:].decode()))
        elif isinstance(event, WebTransportStreamDataReceived):
            self._stream_bytes(event.data)
        elif isinstance(event, DatagramReceived):
            self._message("datagram", event.data)

    def _stream_bytes(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            (length,) = struct.unpack_from(">I", self._buffer)
            if len(self._buffer) < 4 + length:
                break
            self._message("stream", self._buffer[4 : 4 + length])
            self._buffer = self._buffer[4 + length :]

    def _message(self, how: str, data: bytes) -> None:
        if data[:1] == b"\xc1":  # a snap (docs/protocol.md §14): its numbers, then d
            message = decode_server_message(data)
            assert message is not None, data
        else:
            message = msgpack.unpackb(data)
        self.messages.append((how, message))
        if message.get("t") == "welcome" and not self.welcomed.called:
            self.welcomed.callback(message)

    def send(self, message: bytes) -> None:
        """One length-prefixed message on the session's stream (opened by the first)."""
        assert self.session_id is not None
        if self.stream_id is None:
            self.stream_id = self.h3.create_webtransport_stream(self.session_id)
        self.quic.send_stream_data(self.stream_id, struct.pack(">I", len(message)) + message)
        self.transmit()

    def end_stream(self) -> None:
        """End the session's stream (FIN): the browser is done with the session."""
        assert self.stream_id is not None
        self.ended_own = True
        self.quic.send_stream_data(self.stream_id, b"", end_stream=True)
        self.transmit()

    def send_token(self, token: PublicToken) -> None:
        self.send(token.request_packet())

    def send_on_unknown_session(self, data: bytes) -> None:
        """A WebTransport stream and a datagram naming a session that was never opened."""
        stream_id = self.h3.create_webtransport_stream(4 * 99)
        self.quic.send_stream_data(stream_id, data)
        self.h3.send_datagram(4 * 99, data)
        self.transmit()

    def send_datagram(self, message: bytes) -> None:
        assert self.session_id is not None
        self.h3.send_datagram(self.session_id, message)
        self.transmit()

    def close(self) -> None:
        self.quic.close()
        self.transmit()


async def connect_webtransport(case: TestCase, port: int, *, origin: str | None = None,
                               path: str = "/game",
                               reads_to_end: bool = True) -> WebTransportPlayer:  # fmt: skip
    """A player whose CONNECT to `path` was sent; closed at cleanup."""
    player = WebTransportPlayer(port, origin, path, reads_to_end)
    listening = reactor.listenUDP(0, player, interface="127.0.0.1")

    case.addCleanup(listening.stopListening)
    return player


class _FrameInjector(QuicConnection):
    """aioquic's client connection, which also sends frames it would not (`injected`),
    in the packet of its next PING."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.injected: list[tuple[int, bytes]] = []

    def _write_ping_frame(self, builder: Any, uids: list[int] | None = None,
                          comment: str = "") -> None:  # fmt: skip
        for frame_type, body in self.injected:
            builder.start_frame(frame_type, capacity=len(body) + 8).push_bytes(body)
        self.injected = []
        super()._write_ping_frame(builder, uids or [], comment)


class QuicPeer(QuicPump):
    """A bare QUIC client of the `--webtransport` port, as an attacker writes one:
    aioquic's client with HTTP/3's ALPN, which completes the handshake (`handshake`
    fires) and then sends only what the test asks, never a CONNECT. `terminated`
    fires with the server's error code and reason when the connection ends."""

    def __init__(self, port: int) -> None:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                          server_name="localhost")  # fmt: skip
        configuration.verify_mode = 0  # ssl.CERT_NONE: the test trusts its own server
        self.quic = _FrameInjector(configuration=configuration)
        self.server = ("127.0.0.1", port)
        self.handshake: Deferred[None] = Deferred()
        self.terminated: Deferred[tuple[int, str]] = Deferred()
        self._timer: IDelayedCall | None = None
        self._pings: dict[int, Deferred[None]] = {}
        self._next_ping = 0

    def startProtocol(self) -> None:
        self.quic.connect(self.server, now=reactor.seconds())
        self.transmit()

    def _events(self) -> None:
        while (event := self.quic.next_event()) is not None:
            if isinstance(event, HandshakeCompleted) and not self.handshake.called:
                self.handshake.callback(None)
            elif isinstance(event, ConnectionTerminated) and not self.terminated.called:
                self.terminated.callback((event.error_code, event.reason_phrase))
            elif isinstance(event, PingAcknowledged) and event.uid in self._pings:
                self._pings.pop(event.uid).callback(None)

    def ping(self) -> None:
        """A PING frame: the connection is not idle."""
        self.quic.send_ping(0)
        self.transmit()

    def round_trip(self) -> Deferred[None]:
        """A PING, fired when the server acknowledged it (it has handled everything sent
        before, and what it sent back with the acknowledgement has been read)."""
        self._next_ping += 1
        uid = self._next_ping
        self._pings[uid] = Deferred()
        self.quic.send_ping(uid)
        self.transmit()
        return self._pings[uid]

    def say_blocked(self, stream_id: int) -> Deferred[None]:
        """STREAM_DATA_BLOCKED at `stream_id`'s window and DATA_BLOCKED at the
        connection's (RFC 9000 19.12-19.13: "I would send more"), then a round trip."""
        quic: Any = self.quic
        stream_body = encode_uint_var(stream_id) + encode_uint_var(self.window(stream_id))
        quic.injected += [(0x15, stream_body), (0x14, encode_uint_var(quic._remote_max_data))]
        return self.round_trip()

    def send_crypto(self, offset: int, data: bytes) -> Deferred[None]:
        """A CRYPTO frame of `data` at `offset` (in the 1-RTT packets of an open
        connection: handshake data after the handshake), then a round trip."""
        quic: Any = self.quic
        body = encode_uint_var(offset) + encode_uint_var(len(data)) + data
        quic.injected.append((0x06, body))
        return self.round_trip()

    def streams_allowed(self) -> int:
        """The bidirectional streams the server lets this client open (MAX_STREAMS)."""
        return int(self.quic._remote_max_streams_bidi)  # type: ignore[attr-defined]

    def connection_window(self) -> int:
        """The bytes the server lets this client send on all its streams (MAX_DATA)."""
        return int(self.quic._remote_max_data)  # type: ignore[attr-defined]

    def window(self, stream_id: int) -> int:
        """The highest offset the server lets this client send on `stream_id` (its
        MAX_STREAM_DATA and MAX_DATA, as aioquic's client tracks them)."""
        quic: Any = self.quic
        stream = quic._get_or_create_stream_for_send(stream_id)
        left = quic._remote_max_data - quic._remote_max_data_used
        return int(min(stream.max_stream_data_remote, stream.sender.highest_offset + left))

    def send_at(self, stream_id: int, offset: int, data: bytes, *,
                past_windows: bool = False) -> None:  # fmt: skip
        """One STREAM frame of `data` at `offset` on `stream_id`, with nothing before it
        sent (a gap the server must hold open if it takes the frame); `past_windows`:
        sent even where the server's windows do not reach (aioquic's client would
        wait for them)."""
        quic: Any = self.quic
        stream = quic._get_or_create_stream_for_send(stream_id)
        sender = stream.sender
        if past_windows:
            end = offset + len(data)
            stream.max_stream_data_remote = max(stream.max_stream_data_remote, end)
            quic._remote_max_data += end
        # aioquic's sender sends from where its buffer stops: move it to `offset`.
        sender._buffer = bytearray()
        sender._buffer_start = sender._buffer_stop = offset
        sender._pending = RangeSet()
        sender._acked = RangeSet()
        self.quic.send_stream_data(stream_id, data)
        self.transmit()


async def connect_quic(case: TestCase, port: int) -> QuicPeer:
    """A `QuicPeer` whose handshake with the server on `port` is complete; closed at
    cleanup."""
    peer = QuicPeer(port)
    listening = reactor.listenUDP(0, peer, interface="127.0.0.1")
    case.addCleanup(listening.stopListening)
    await peer.handshake.addTimeout(10, reactor)
    return peer
