"""RFC 6455 framing for a WebSocket server, sans-I/O: bytes in, messages and events out.

`ServerFrames` is the server's half of one WebSocket connection after the
opening handshake (which twisted.web's resource does): `receive` takes the
bytes the client sent and returns what they held, `binary`, `close` and
`ping` return the bytes of frames to write. No I/O, no clock, no Twisted:
the adapters (the `/game` socket, vinom.hosting.websocket, and the `/lobby`
one, vinom.lobby.websocket) write the bytes, keep the timers (the pings'
deadline, the closing handshake's) and close the TCP connection when `state`
says so.

What `receive` returns, in order:

- `bytes`: a whole binary message (its fragments joined), the hot path;
- `TextMessage`: a whole text message, its UTF-8 checked as its bytes come;
- `Ping` (with its `reply`, the pong to write), `Pong`;
- `CloseReceived`: the peer's close frame (code None: it named no code), with
  its `reply` (the echoed close to write) when the peer began the closing
  handshake; `state` is then `CLOSED` and the adapter closes the connection;
- `ProtocolFailure`: the connection is failed (`reply` is the close frame to
  write): 1002 for a frame RFC 6455 forbids (an unmasked frame, reserved bits,
  an unknown opcode, a fragmented or over-long control frame, a length not in
  its shortest form or over 2**63, a continuation out of place, a bad close
  code), 1007 for text (or a close reason) that is not UTF-8, at its first bad
  byte, before the rest of its frame has come (RFC 6455 8.1), 1009 for a
  message over `max_message` bytes, refused at its header, before its payload
  is held. After a 1007 or 1009 the framing is still sound: what follows is
  read, data frames skipped, until the peer's close; after a 1002 everything
  that follows is discarded.

Memory: what is held between calls is at most one unfinished frame (its
payload bounded by `max_message`) and the fragments of one message (their sum
bounded by `max_message`), plus one read's bytes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from codecs import getincrementaldecoder
from typing import Final

from attrs import frozen

__all__ = [
    "CLOSED",
    "CLOSING",
    "OPEN",
    "CloseReceived",
    "Ping",
    "Pong",
    "ProtocolFailure",
    "ServerFrames",
    "TextMessage",
    "accept_key",
    "valid_close_code",
]

OPEN: Final = "open"
# We sent a close frame and wait for the peer's.
CLOSING: Final = "closing"
# Both close frames went: the server closes the TCP connection.
CLOSED: Final = "closed"

# Opcodes (RFC 6455, 5.2).
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10

# Close codes (RFC 6455, 7.4.1).
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009

# The codes a peer may send in a close frame: RFC 6455's and IANA's registered
# ones (those a peer may send), and the ranges for libraries and applications.
_REGISTERED_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Headers of unfragmented server frames: FIN and the opcode, then the length.
_SHORT_BINARY = tuple(bytes((0x80 | _BINARY, n)) for n in range(126))
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def valid_close_code(code: int) -> bool:
    """A code a peer may send in a close frame."""
    return code in _REGISTERED_CODES or 3000 <= code <= 4999


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value answering the client's Sec-WebSocket-Key (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


@frozen
class TextMessage:
    text: str


@frozen
class Ping:
    payload: bytes
    # The pong to write (empty once we are closing).
    reply: bytes


@frozen
class Pong:
    payload: bytes


@frozen
class CloseReceived:
    # None: the close frame named no code (1005 to an application).
    code: int | None
    reason: str
    # The close frame to write back (empty when we began the closing handshake).
    reply: bytes


@frozen
class ProtocolFailure:
    code: int
    reason: str
    # The close frame to write (empty if we had already sent one).
    reply: bytes


Event = bytes | TextMessage | Ping | Pong | CloseReceived | ProtocolFailure


def frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame (a server's)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return _HEAD16.pack(0x80 | opcode, 126, n) + payload
    return _HEAD64.pack(0x80 | opcode, 127, n) + payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def close_payload(code: int | None, reason: str = "") -> bytes:
    """A close frame's payload: the code and up to 123 bytes of the reason's UTF-8."""
    if code is None:
        return b""
    return code.to_bytes(2, "big") + _truncate_utf8(reason, 123)


def _truncate_utf8(text: str, limit: int) -> bytes:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


class ServerFrames:
    """The frames of one server-side WebSocket connection (module docstring)."""

    __slots__ = (
        "_broken",
        "_buffer",
        "_checked",
        "_decoder",
        "_fragments",
        "_held",
        "_message",
        "_partial",
        "_skip",
        "max_message",
        "state",
    )

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.state: str = OPEN
        # Bytes of an unfinished frame.
        self._buffer = b""
        # The opcode of the fragmented message under way (0: none), its fragments
        # and their size, and the UTF-8 decoder of a text one.
        self._message = 0
        self._fragments: list[bytes] = []
        self._held = 0
        self._decoder: object = None
        # Of an unfinished text frame: the payload bytes already found to be UTF-8 so
        # far, and the decoder's state after them (`_early_text`).
        self._checked = 0
        self._partial: tuple[bytes, int] = (b"", 0)
        # Payload bytes still to skip (the rest of an oversized frame, once failed).
        self._skip = 0
        # After a framing error nothing more can be read.
        self._broken = False

    # bytes out

    def binary(self, data: bytes) -> bytes:
        """A binary message, as one frame."""
        n = len(data)
        if n < 126:
            return _SHORT_BINARY[n] + data
        return frame(_BINARY, data)

    def text(self, data: bytes) -> bytes:
        """A text message, as one frame, from its UTF-8 bytes (the caller's to be UTF-8)."""
        return frame(_TEXT, data)

    def ping(self, payload: bytes = b"") -> bytes:
        if len(payload) > 125:
            raise ValueError("a ping's payload is at most 125 bytes")
        return frame(_PING, payload)

    def close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """The close frame that begins the closing handshake (b"" if one already went)."""
        if self.state != OPEN:
            return b""
        self.state = CLOSING
        return frame(_CLOSE, close_payload(code, reason))

    # bytes in

    def receive(self, data: bytes) -> list[Event]:
        """What `data` (the next bytes from the client) completes, in order."""
        if self._broken or self.state == CLOSED:
            return []
        events: list[Event] = []
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return events
            data = data[self._skip :]
            self._skip = 0
        buf = self._buffer + data if self._buffer else data
        end = len(buf)
        at = 0
        while end - at >= 2:
            b0 = buf[at]
            b1 = buf[at + 1]
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            head = at + 2
            if n == 126:
                if end - head < 2:
                    break
                n = (buf[head] << 8) | buf[head + 1]
                head += 2
                if n < 126:
                    return self._fail(events, PROTOCOL_ERROR, "length not in its shortest form")
            elif n == 127:
                if end - head < 8:
                    break
                n = int.from_bytes(buf[head : head + 8], "big")
                head += 8
                if n < 65536 or n >> 63:
                    return self._fail(events, PROTOCOL_ERROR, "bad 64-bit length")
            if b0 & 0x70:
                return self._fail(events, PROTOCOL_ERROR, "reserved bits set")
            if opcode & 0x08:
                if opcode > _PONG:
                    return self._fail(events, PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if not b0 & 0x80:
                    return self._fail(events, PROTOCOL_ERROR, "fragmented control frame")
                if n > 125:
                    return self._fail(events, PROTOCOL_ERROR, "control frame over 125 bytes")
            elif opcode > _BINARY:
                return self._fail(events, PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not b1 & 0x80:
                return self._fail(events, PROTOCOL_ERROR, "unmasked frame from a client")
            opened = self.state == OPEN
            if opened and opcode < _CLOSE:
                if opcode == _CONTINUATION:
                    if not self._message:
                        return self._fail(events, PROTOCOL_ERROR, "continuation without a message")
                elif self._message:
                    return self._fail(events, PROTOCOL_ERROR, "new message before the last ended")
            stop = head + 4 + n
            if opcode < _CLOSE and (self._held + n > self.max_message or not opened):
                # Refused (or, once closing, ignored) at its header: its payload is
                # skipped, never held.
                if opened:
                    size = self._held + n
                    self._reset_message()
                    events.append(self._failure(
                        MESSAGE_TOO_BIG, f"message of {size} bytes over {self.max_message}"
                    ))  # fmt: skip
                if stop > end:
                    self._skip = stop - end
                    self._buffer = b""
                    return events
                at = stop
                continue
            if stop > end:
                text = opcode == _TEXT or (opcode == _CONTINUATION and self._message == _TEXT)
                if text and not self._early_text(opcode, buf, head, end):
                    # Not UTF-8 already: failed now (RFC 6455 8.1), the rest skipped.
                    self._reset_message()
                    events.append(self._failure(INVALID_DATA, "text that is not UTF-8"))
                    self._skip = stop - end
                    self._buffer = b""
                    return events
                break
            payload = _unmask(buf[head + 4 : stop], buf[head : head + 4])
            at = stop
            fin = b0 & 0x80
            if opcode == _BINARY and fin:
                events.append(payload)
                continue
            if opcode < _CLOSE:
                self._data_frame(events, opcode, payload, fin)
                continue
            if opcode == _PING:
                reply = frame(_PONG, payload) if self.state == OPEN else b""
                events.append(Ping(payload, reply))
            elif opcode == _PONG:
                events.append(Pong(payload))
            else:
                closed = self._closed(payload)
                events.append(closed)
                if isinstance(closed, ProtocolFailure):
                    self._broken = True
                    self._buffer = b""
                return events
        self._buffer = buf[at:] if at < end else b""
        return events

    def _early_text(self, opcode: int, buf: bytes, head: int, end: int) -> bool:
        """Whether the part of an unfinished text frame (its header at `head`) that came
        is UTF-8 so far: checked once a byte, as it comes, so that a peer is failed at
        its first bad byte, not at the end of a frame of up to `max_message` bytes."""
        checked = self._checked
        start = head + 4 + checked
        if end <= start:
            return True
        if not checked:
            self._partial = (b"", 0) if opcode == _TEXT else self._decoder.getstate()  # type: ignore[attr-defined]
        decoder = getincrementaldecoder("utf-8")()
        decoder.setstate(self._partial)
        turn = checked & 3  # the mask goes on from the payload's byte `checked`
        mask = buf[head + turn : head + 4] + buf[head : head + turn]
        try:
            decoder.decode(_unmask(buf[start:end], mask))
        except UnicodeDecodeError:
            return False
        self._checked = end - head - 4
        self._partial = decoder.getstate()
        return True

    def _data_frame(self, events: list[Event], opcode: int, payload: bytes, fin: int) -> None:
        self._checked = 0  # the frame is whole: it is decoded from its start below
        if opcode:
            self._message = opcode
            if opcode == _TEXT:
                self._decoder = getincrementaldecoder("utf-8")()
        if self._message == _TEXT:
            try:
                self._decoder.decode(payload, bool(fin))  # type: ignore[attr-defined]
            except UnicodeDecodeError:
                # The framing is sound: what follows is read on, to the peer's close.
                self._reset_message()
                events.append(self._failure(INVALID_DATA, "text that is not UTF-8"))
                return
        if fin:
            fragments = self._fragments
            if fragments:
                fragments.append(payload)
                payload = b"".join(fragments)
            kind = self._message
            self._reset_message()
            events.append(TextMessage(payload.decode("utf-8")) if kind == _TEXT else payload)
        else:
            self._fragments.append(payload)
            self._held += len(payload)

    def _closed(self, payload: bytes) -> CloseReceived | ProtocolFailure:
        code: int | None = None
        reason = ""
        if len(payload) == 1:
            return self._failure(PROTOCOL_ERROR, "close frame of one byte")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not valid_close_code(code):
                return self._failure(PROTOCOL_ERROR, f"close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._failure(INVALID_DATA, "close reason that is not UTF-8")
        reply = frame(_CLOSE, close_payload(code)) if self.state == OPEN else b""
        self.state = CLOSED
        self._buffer = b""
        self._reset_message()
        return CloseReceived(code, reason, reply)

    def _reset_message(self) -> None:
        self._checked = 0
        self._message = 0
        self._fragments = []
        self._held = 0
        self._decoder = None

    def _failure(self, code: int, reason: str) -> ProtocolFailure:
        reply = frame(_CLOSE, close_payload(code, reason)) if self.state == OPEN else b""
        if self.state == OPEN:
            self.state = CLOSING
        return ProtocolFailure(code, reason, reply)

    def _fail(self, events: list[Event], code: int, reason: str) -> list[Event]:
        """A framing error: what follows cannot be read."""
        events.append(self._failure(code, reason))
        self._broken = True
        self._buffer = b""
        self._reset_message()
        return events
