"""QUIC's bounds on one WebTransport listener: what a peer can make it hold, and whom
it answers before the address is validated. vinom.hosting.webtransport drives these
qh3 connections; this module is where vinom reaches into qh3's 1.x connection.

Receive budget: qh3 holds a stream's data from the first byte not yet read
up to the highest offset received (zero-filling any gap) and doubles the
windows each time that offset passes half of one, or the peer says it is
blocked at one, so a peer sending a few bytes just below the window each round
trip doubles what the server holds each time. `BoundedQuicConnection` slides
the windows instead (what was read plus `stream_receive_budget` on a stream,
plus `receive_budget` on the connection), takes DATA_BLOCKED and
STREAM_DATA_BLOCKED as the hints they are, and checks each STREAM and CRYPTO
frame before qh3 takes it: one past its
windows or its budget closes the connection (FLOW_CONTROL_ERROR, RFC 9000
section 21.6), counted in `closes` (`receive_budget`), and so does an HTTP/3
layer holding more than a stream's budget of frames not yet whole.

Address validation: while `retry_above` connections are in their handshake, a
client's first Initial is answered with a Retry (`RetryTokens`): only an Initial
that brings its token back from its own address starts a connection, so a spoofed
address gets a packet smaller than its Initial and costs no handshake. Below that
mark, an address not validated yet never gets more than 3x what it sent (RFC 9000
8.1): qh3 keeps that limit on every packet but a CONNECTION_CLOSE, which
`BoundedQuicConnection` then does not send where it would not fit.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Any

from qh3._hazmat import Buffer, BufferReadError
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection, QuicConnectionError, QuicReceiveContext
from qh3.quic.packet import QuicErrorCode

__all__ = ["RECEIVE_BUDGET", "BoundedQuicConnection", "RetryTokens"]


class RetryTokens:
    """The Retry tokens of one listener (RFC 9000 8.1.2): a client that brings one back
    receives at the address it claims.

    A token is the time it was issued, the client's original destination
    connection ID and the Retry's source connection ID, with an HMAC-SHA256 (cut
    to 16 bytes) over them and the client's address under a key made at start:
    checking one costs a hash, so Initials with forged tokens cost little."""

    _HEAD = struct.Struct(">dB")
    _MAC = 16

    def __init__(self, key: bytes | None = None, lifetime: float = 10.0) -> None:
        self._key = key if key is not None else os.urandom(32)
        self.lifetime = lifetime

    def issue(self, addr: Any, original_cid: bytes, retry_cid: bytes, now: float) -> bytes:
        body = self._HEAD.pack(now, len(original_cid)) + original_cid + retry_cid
        return body + self._mac(addr, body)

    def check(self, addr: Any, token: bytes, destination_cid: bytes,
              now: float) -> bytes | None:  # fmt: skip
        """The client's original destination connection ID if `token` is one this
        listener issued to `addr` for a Retry from `destination_cid`, in its lifetime."""
        body, mac = token[: -self._MAC], token[-self._MAC :]
        if len(body) < self._HEAD.size or not hmac.compare_digest(mac, self._mac(addr, body)):
            return None
        issued, length = self._HEAD.unpack_from(body)
        original = body[self._HEAD.size : self._HEAD.size + length]
        if body[self._HEAD.size + length :] != destination_cid or not (
            0 <= now - issued <= self.lifetime
        ):
            return None
        return original

    def _mac(self, addr: Any, body: bytes) -> bytes:
        where = f"{addr[0]} {addr[1]} ".encode()
        return hmac.new(self._key, where + body, hashlib.sha256).digest()[: self._MAC]

# Why a connection over its receive budget is closed, and counted under.
RECEIVE_BUDGET = "receive_budget"


class BoundedQuicConnection(QuicConnection):
    """qh3's server connection, holding no more of what its peer sent than vinom's
    budget (module docstring, "Receive budget").

    qh3 keeps a stream's data from the first byte not yet read up to the highest
    offset received, zero-filling any gap, and doubles a stream's and the
    connection's window each time that highest offset passes half of it, or the
    peer says it is blocked at it: a peer sending a few bytes just below the window
    each round trip makes it hold twice as much each time. Here the windows slide
    instead: a stream's is what was read of it plus `stream_budget`, the
    connection's what was read of all of them plus `budget`, each raised (by qh3's
    own MAX_STREAM_DATA and MAX_DATA frames) once it can grow by half a budget,
    never otherwise; the limits on streams opened stay where they start (qh3
    doubles them too). And every STREAM and CRYPTO frame is checked before qh3
    takes it: one beyond its windows, or that would leave more than `stream_budget`
    bytes unread on its stream or `budget` on all of them, or carry an epoch's
    handshake data past `stream_budget`, closes the connection with
    FLOW_CONTROL_ERROR (CRYPTO_BUFFER_EXCEEDED for a CRYPTO frame) and sets
    `over_budget`, and qh3 never holds it.

    The frames' layout is RFC 9000's (19.6, 19.8, 19.12, 19.13), read before qh3
    reads it; what qh3 keeps is read through its streams' `receiver.starting_offset()`
    and `receiver.highest_offset` and its `_local_max_*` limits; its packet writer is
    called with its doubling rule's input (the highest offsets, the data and streams
    used) hidden, as qh3's 1.x line has them (their presence is checked when this
    module loads)."""

    def __init__(self, *, stream_budget: int, budget: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream_budget = stream_budget
        self.budget = budget
        # Why the connection was closed for holding too much, once it was.
        self.over_budget: str | None = None
        # A STREAM frame was taken since the flag was last cleared (then HTTP/3 may
        # hold part of a frame: `_Connection` checks it).
        self.stream_data = False

    @staticmethod
    def configure(configuration: QuicConfiguration, stream_budget: int, budget: int) -> None:
        """Start a connection's windows at the budget."""
        configuration.max_stream_data = stream_budget
        configuration.max_data = budget

    def held(self) -> int:
        """The bytes received and not read on all the connection's streams (qh3 keeps
        each stream's from its first unread byte to its highest offset)."""
        return sum(stream.receiver.highest_offset - stream.receiver.starting_offset()
                   for stream in self._streams.values())  # fmt: skip

    def _handle_stream_frame(self, context: QuicReceiveContext, frame_type: int,
                             buf: Buffer) -> None:  # fmt: skip
        start = buf.tell()
        try:
            stream_id = buf.pull_uint_var()
            offset = buf.pull_uint_var() if frame_type & 4 else 0
            length = buf.pull_uint_var() if frame_type & 2 else buf.capacity - buf.tell()
        except BufferReadError:
            stream_id = None  # malformed: qh3's own reading refuses it
        buf.seek(start)
        if stream_id is not None:
            self._check_stream(frame_type, stream_id, offset + length)
        self.stream_data = True
        super()._handle_stream_frame(context, frame_type, buf)
        if stream_id is not None and (stream := self._streams.get(stream_id)) is not None:
            # qh3 looks at a stream's window again only when its highest offset
            # grows; a frame filling a gap moves what was read, and so the window.
            self._streams_dirty_limits.add(stream)

    def _check_stream(self, frame_type: int, stream_id: int, end: int) -> None:
        if stream_id in self._streams_finished:
            return  # a late resend on a stream qh3 has done with: it ignores it
        stream = self._streams.get(stream_id)
        read = highest = 0
        window = self.stream_budget  # a new stream's (`configure`)
        if stream is not None:
            read, highest = stream.receiver.starting_offset(), stream.receiver.highest_offset
            window = stream.max_stream_data_local or window
        if end <= highest:
            return  # nothing more to hold than now
        more = end - highest
        connection = self._local_max_data
        if (end > min(window, read + self.stream_budget)
                or connection.used + more > connection.value
                or self.held() + more > self.budget):  # fmt: skip
            self._refuse(frame_type, QuicErrorCode.FLOW_CONTROL_ERROR)

    def _handle_crypto_frame(self, context: QuicReceiveContext, frame_type: int,
                             buf: Buffer) -> None:  # fmt: skip
        start = buf.tell()
        try:
            end = buf.pull_uint_var() + buf.pull_uint_var()
        except BufferReadError:
            end = 0
        buf.seek(start)
        # All of an epoch's handshake data, not only what is unread: qh3's TLS keeps
        # what it was given until a whole message (up to 16 MiB, as it claims) came.
        if end > self.stream_budget:
            self._refuse(frame_type, QuicErrorCode.CRYPTO_BUFFER_EXCEEDED)
        super()._handle_crypto_frame(context, frame_type, buf)

    def _refuse(self, frame_type: int, error_code: int) -> None:
        self.over_budget = RECEIVE_BUDGET
        raise QuicConnectionError(error_code=error_code, frame_type=frame_type,
                                  reason_phrase="over the receive budget")  # fmt: skip

    def _handle_data_blocked_frame(self, context: QuicReceiveContext, frame_type: int,
                                   buf: Buffer) -> None:  # fmt: skip
        # qh3 doubles the connection's window when a peer says it is blocked; the
        # window slides with what was read here, and the hint changes nothing.
        buf.pull_uint_var()

    def _handle_stream_data_blocked_frame(self, context: QuicReceiveContext, frame_type: int,
                                          buf: Buffer) -> None:  # fmt: skip
        # As DATA_BLOCKED, for a stream's window (qh3 would double it); a stream
        # this end only sends on is an error (RFC 9000 19.13).
        stream_id = buf.pull_uint_var()
        buf.pull_uint_var()
        self._assert_stream_can_receive(frame_type, stream_id)
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._streams_dirty_limits.add(stream)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """qh3's packets, the windows they raise slid to what was read plus the budget.

        qh3 writes MAX_DATA and MAX_STREAM_DATA where a window moved, doubling one
        whose highest offset (a stream's) or data used (the connection's) has passed
        half of it: here the windows are moved first, and those inputs hidden while it
        writes (nothing is received meanwhile)."""
        limit = self._local_max_data
        # Counting what is held walks every stream: only where the window may move.
        if limit.used + self.budget - limit.value >= self.budget // 2:
            wanted = limit.used - self.held() + self.budget
            if wanted - limit.value >= self.budget // 2:
                limit.value = wanted
        hidden = []
        for stream in self._streams_dirty_limits:
            receiver = stream.receiver
            if stream.max_stream_data_local:  # 0: a stream only this end sends on
                wanted = receiver.starting_offset() + self.stream_budget
                if wanted - stream.max_stream_data_local >= self.stream_budget // 2:
                    stream.max_stream_data_local = wanted
            hidden.append((receiver, receiver.highest_offset))
            receiver.highest_offset = 0
        # And the limits on streams opened stay qh3's first (100 bidirectional, 103
        # unidirectional, for the connection's life): qh3 doubles them on the
        # number ever opened, however many are closed, and a game session needs two.
        limits = (limit, self._local_max_streams_bidi, self._local_max_streams_uni)
        used = [each.used for each in limits]
        for each in limits:
            each.used = 0
        closing = self._close_pending
        try:
            datagrams = super().datagrams_to_send(now)
        finally:
            for each, value in zip(limits, used, strict=True):
                each.used = value
            for receiver, highest in hidden:
                receiver.highest_offset = highest
        if closing and datagrams and self._network_paths:
            datagrams = self._within_3x(self._network_paths[0], datagrams)
        return datagrams

    @staticmethod
    def _within_3x(path: Any, datagrams: list[tuple[bytes, Any]]) -> list[tuple[bytes, Any]]:
        """The datagrams of a CONNECTION_CLOSE that fit 3x what an unvalidated address
        sent (RFC 9000 8.1); the rest are not sent. qh3 keeps that limit on every
        packet but this one: an Initial nobody answers would otherwise get its first
        flight and resends (3x) and the close on top."""
        if path.is_validated:
            return datagrams
        sent = path.bytes_sent - sum(len(data) for data, _ in datagrams)
        kept = []
        for data, addr in datagrams:
            if sent + len(data) > 3 * path.bytes_received:
                break
            sent += len(data)
            kept.append((data, addr))
        path.bytes_sent = sent
        return kept


assert QuicConfiguration(is_client=False).connection_id_length == 8
# The receive budget is kept in qh3's STREAM, CRYPTO and *_BLOCKED frame handlers and
# its packet writer, which BoundedQuicConnection extends (the 1.x line has them: 2.x
# moved the connection into native code): a release without them would leave it
# unchecked, so the listener does not load on one.
for _handler in ("_handle_stream_frame", "_handle_crypto_frame", "_handle_data_blocked_frame",
                 "_handle_stream_data_blocked_frame", "_assert_stream_can_receive",
                 "_streams_dirty_limits", "_streams_finished", "_local_max_streams_bidi",
                 "_local_max_streams_uni", "_close_pending", "_network_paths"):  # fmt: skip
    if not hasattr(QuicConnection, _handler):
        raise ImportError(f"vinom needs qh3 1.x (its QuicConnection has no {_handler})")
