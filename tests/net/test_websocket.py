"""vinom's RFC 6455 server framing (vinom.net.websocket) against wsproto, an independent one.

Client to server: random streams of frames (valid and invalid: fragmented
messages with control frames between them, text with and without valid UTF-8,
any opcode, reserved bits, unmasked frames, lengths in and out of their
shortest form, close frames with every kind of code) cut at random places are
read by `ServerFrames` and by wsproto's server-side frame reader; both must
see the same messages, pings, pongs and close, and fail with the same close
code at the same place. Server to client: what `ServerFrames` writes is read
back by wsproto's client. Then the limits that are vinom's own: the message
size refused at the header (1009, nothing held), and the closing handshake.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed

from vinom.net.websocket import (
    CLOSED,
    CLOSING,
    OPEN,
    CloseReceived,
    Ping,
    Pong,
    ProtocolFailure,
    ServerFrames,
    TextMessage,
    accept_key,
)

Outcome = list[tuple[Any, ...]]


def raw_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x00\x00\x00\x00",
    length_form: int = 0,
) -> bytes:
    """A frame as a client (or an attacker) writes it: `length_form` 0 is the shortest
    length, 2 and 8 force the 16-bit and 64-bit forms."""
    n = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    if length_form == 8 or n >= 65536:
        head = struct.pack("!BBQ", first, 127, n)
    elif length_form == 2 or n >= 126:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = bytes((first, n))
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((head[0], head[1] | 0x80)) + head[2:] + mask + masked


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def by_wsproto(chunks: list[bytes]) -> Outcome:
    """What wsproto's server-side frame reader makes of the chunks, up to a close or failure."""
    reader = FrameProtocol(client=False, extensions=[])
    seen: Outcome = []
    parts: list[Any] = []
    try:
        for chunk in chunks:
            reader.receive_bytes(chunk)
            for frame in reader.received_frames():
                if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                    parts.append(frame.payload)
                    if frame.message_finished:
                        if frame.opcode is Opcode.TEXT:
                            seen.append(("text", "".join(parts)))
                        else:
                            seen.append(("binary", b"".join(parts)))
                        parts = []
                elif frame.opcode is Opcode.PING:
                    seen.append(("ping", bytes(frame.payload)))
                elif frame.opcode is Opcode.PONG:
                    seen.append(("pong", bytes(frame.payload)))
                else:
                    code, reason = frame.payload
                    code = None if code is CloseReason.NO_STATUS_RCVD else int(code)
                    seen.append(("close", code, reason))
                    return seen
    except ParseFailed as failed:
        seen.append(("fail", int(failed.code)))
    return seen


def by_vinom(chunks: list[bytes], max_message: int = 1 << 20) -> Outcome:
    """What `ServerFrames` makes of them, in the same terms."""
    frames = ServerFrames(max_message)
    seen: Outcome = []
    for chunk in chunks:
        for event in frames.receive(chunk):
            if isinstance(event, bytes):
                seen.append(("binary", event))
            elif isinstance(event, TextMessage):
                seen.append(("text", event.text))
            elif isinstance(event, Ping):
                seen.append(("ping", event.payload))
            elif isinstance(event, Pong):
                seen.append(("pong", event.payload))
            elif isinstance(event, CloseReceived):
                seen.append(("close", event.code, event.reason))
                return seen
            else:
                assert isinstance(event, ProtocolFailure)
                seen.append(("fail", event.code))
                return seen
    return seen


masks = st.binary(min_size=4, max_size=4)
texts = st.text(max_size=40)
# Close codes: valid ones, reserved and out of range ones.
close_codes = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013]),
    st.sampled_from([0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2000, 2999, 5000, 65535]),
    st.integers(3000, 4999),
    st.integers(0, 65535),
)


@st.composite
def close_payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["none", "one", "code", "code", "bad-reason"]))
    if kind == "none":
        return b""
    if kind == "one":
        return b"\x03"
    code = draw(close_codes).to_bytes(2, "big")
    if kind == "bad-reason":
        return code + b"ok\xff"
    return code + draw(st.text(max_size=20)).encode("utf-8")[:123]


@st.composite
def text_payloads(draw: st.DrawFn) -> bytes:
    """UTF-8 text, sometimes cut anywhere (a code point split across fragments) or spoiled."""
    data = draw(texts).encode("utf-8")
    spoil = draw(st.sampled_from(["none", "none", "none", "byte"]))
    if spoil == "byte" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc0", b"\xed\xa0\x80"])) + data[at:]
    return data


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    """One data message in 1-4 fragments (control frames between them), mostly valid."""
    text = draw(st.booleans())
    payload = draw(text_payloads()) if text else draw(st.binary(max_size=300))
    count = draw(st.integers(1, 4))
    points = sorted(draw(st.lists(st.integers(0, len(payload)), min_size=count - 1,
                                  max_size=count - 1)))  # fmt: skip
    pieces = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]
    frames = []
    for i, piece in enumerate(pieces):
        opcode = (1 if text else 2) if i == 0 else 0
        frames.append(raw_frame(opcode, piece, fin=i == len(pieces) - 1, mask=draw(masks),
                                length_form=draw(st.sampled_from([0] * 30 + [2, 8]))))  # fmt: skip
        if i < len(pieces) - 1 and draw(st.booleans()):
            frames.append(draw(controls()))
    return frames


@st.composite
def controls(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([9, 9, 10]))
    return raw_frame(opcode, draw(st.binary(max_size=125)), mask=draw(masks))


@st.composite
def invalid_frames(draw: st.DrawFn) -> bytes:
    """A frame RFC 6455 forbids a client, or one out of place."""
    kind = draw(st.sampled_from(
        ["opcode", "rsv", "unmasked", "long-control", "fragmented-control", "continuation",
         "length-msb", "close", "any"]
    ))  # fmt: skip
    payload = draw(st.binary(max_size=200))
    mask = draw(masks)
    if kind == "opcode":
        return raw_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload,
                         mask=mask)  # fmt: skip
    if kind == "rsv":
        return raw_frame(2, payload, rsv=draw(st.integers(1, 7)), mask=mask)
    if kind == "unmasked":
        return raw_frame(draw(st.sampled_from([1, 2, 8, 9, 10])), b"", mask=None)
    if kind == "long-control":
        return raw_frame(draw(st.sampled_from([8, 9, 10])), b"x" * draw(st.integers(126, 200)),
                         mask=mask)  # fmt: skip
    if kind == "fragmented-control":
        return raw_frame(draw(st.sampled_from([9, 10])), payload[:125], fin=False, mask=mask)
    if kind == "continuation":
        return raw_frame(0, payload, fin=draw(st.booleans()), mask=mask)
    if kind == "length-msb":
        return bytes((0x82, 0xFF)) + (1 << 63 | len(payload)).to_bytes(8, "big") + mask
    if kind == "close":
        return raw_frame(8, draw(close_payloads()), mask=mask)
    # Any header at all, a short payload after it.
    return bytes((draw(st.integers(0, 255)), draw(st.integers(0, 125)) | 0x80)) + mask + payload


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Messages and control frames, an invalid frame now and then, a close perhaps."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        choice = draw(st.sampled_from(["message"] * 6 + ["control"] * 2 + ["invalid"]))
        if choice == "message":
            parts.extend(draw(messages()))
        elif choice == "control":
            parts.append(draw(controls()))
        else:
            parts.append(draw(invalid_frames()))
    if draw(st.booleans()):
        parts.append(raw_frame(8, draw(close_payloads()), mask=draw(masks)))
    return b"".join(parts)


class ClientToServerTests(SynchronousTestCase):
    """Random client frames: `ServerFrames` reads them as wsproto does."""

    @settings(max_examples=600, deadline=None)
    @given(streams(), st.lists(st.integers(0, 1 << 16), max_size=6))
    def test_random_streams_read_as_wsproto_reads_them(self, data: bytes, cuts: list[int]) -> None:
        chunks = cut(data, cuts)
        self.assertEqual(by_vinom(chunks), by_wsproto(chunks))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("binary"), st.binary(max_size=70000), st.integers(1, 3)),
                st.tuples(st.just("text"), st.text(max_size=200), st.integers(1, 3)),
                st.tuples(st.just("ping"), st.binary(max_size=125), st.just(1)),
            ),
            max_size=5,
        ),
        st.one_of(st.none(), st.tuples(close_codes.filter(lambda c: c >= 1000), texts)),
        st.lists(st.integers(0, 1 << 18), max_size=6),
    )
    def test_what_a_wsproto_client_writes(
        self, sends: list[tuple[str, Any, int]], close: tuple[int, str] | None,
        cuts: list[int],
    ) -> None:  # fmt: skip
        """wsproto's client writes (masked, fragmented, pings between fragments)."""
        client = FrameProtocol(client=True, extensions=[])
        data = b""
        for kind, payload, fragments in sends:
            if kind == "ping":
                data += client.ping(payload)
                continue
            step = max(1, len(payload) // fragments)
            pieces = [payload[i : i + step] for i in range(0, len(payload), step)] or [payload]
            for i, piece in enumerate(pieces):
                data += client.send_data(piece, fin=i == len(pieces) - 1)
                if i == 0 and len(pieces) > 1:
                    data += client.ping(b"between")
        if close is not None:
            with contextlib.suppress(TypeError, ValueError):  # a code wsproto will not send
                data += client.close(close[0], close[1])
        chunks = cut(data, cuts)
        self.assertEqual(by_vinom(chunks), by_wsproto(chunks))


class ServerToClientTests(SynchronousTestCase):
    """What `ServerFrames` writes, read by wsproto's client."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("binary"), st.binary(max_size=70000)),
                st.tuples(st.just("text"), st.text(max_size=300)),
                st.tuples(st.just("ping"), st.binary(max_size=125)),
            ),
            max_size=6,
        ),
        st.integers(3000, 4999) | st.sampled_from([1000, 1001, 1009, 1011]),
        st.text(max_size=200),
    )
    def test_frames_written_read_back(
        self, sends: list[tuple[str, Any]], code: int, reason: str
    ) -> None:
        frames = ServerFrames(2048)
        client = FrameProtocol(client=True, extensions=[])
        for kind, payload in sends:
            write = {"binary": frames.binary, "text": frames.text, "ping": frames.ping}[kind]
            # A text message is written from its UTF-8 bytes.
            client.receive_bytes(write(payload.encode("utf-8") if kind == "text" else payload))
            [got] = list(client.received_frames())
            self.assertEqual((got.opcode.name.lower(), got.payload), (kind, payload))
            self.assertTrue(got.message_finished)
        client.receive_bytes(frames.close(code, reason))
        [closed] = list(client.received_frames())
        got_code, got_reason = closed.payload
        # The reason is cut to fit a control frame (125 bytes), on a character's edge.
        self.assertEqual(got_code, code)
        self.assertTrue(reason.startswith(got_reason))
        self.assertLessEqual(len(got_reason.encode("utf-8")), 123)
        self.assertEqual(frames.state, CLOSING)
        self.assertEqual(frames.close(1000), b"")  # one close frame only

    def test_accept_key_of_rfc_6455(self) -> None:
        # RFC 6455, 1.3's example.
        self.assertEqual(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")


class LimitTests(SynchronousTestCase):
    """What wsproto has no opinion on: the message size and the closing handshake."""

    @settings(max_examples=200, deadline=None)
    @given(st.integers(1, 4), st.integers(1, 3000), st.lists(st.integers(0, 1 << 14), max_size=5))
    def test_a_message_over_the_limit_fails_with_1009_and_the_peers_close_is_read(
        self, fragments: int, over: int, cuts: list[int]
    ) -> None:
        """However it is fragmented and cut, a message over `max_message` fails the
        connection with 1009 (a close frame to write) without its payload being
        delivered; the framing stays sound, so the peer's close that follows is read."""
        limit = 2048
        client = FrameProtocol(client=True, extensions=[])
        payload = b"m" * (limit + over)
        step = -(-len(payload) // fragments)
        data = client.send_data(b"before", fin=True)
        for i in range(0, len(payload), step):
            data += client.send_data(payload[i : i + step], fin=i + step >= len(payload))
        data += client.close(1000, "bye")
        frames = ServerFrames(limit)
        events = [e for chunk in cut(data, cuts) for e in frames.receive(chunk)]
        self.assertEqual(events[0], b"before")
        failure = events[1]
        assert isinstance(failure, ProtocolFailure)
        self.assertEqual(failure.code, 1009)
        length = bytes((len(failure.reply) - 2,))
        self.assertEqual(failure.reply[:4], b"\x88" + length + b"\x03\xf1")
        self.assertEqual(events[2:], [CloseReceived(1000, "bye", b"")])
        self.assertEqual(frames.state, CLOSED)

    def test_an_oversized_frame_is_refused_at_its_header(self) -> None:
        """A header announcing a payload over the limit fails at once: nothing of the
        payload is awaited or held (a claimed gigabyte costs nothing)."""
        frames = ServerFrames(2048)
        header = bytes((0x82, 0xFF)) + (1 << 30).to_bytes(8, "big") + b"abcd"
        [failure] = frames.receive(header)
        assert isinstance(failure, ProtocolFailure)
        self.assertEqual(failure.code, 1009)
        self.assertEqual(frames.receive(b"x" * 65536), [])

    def test_a_message_at_the_limit_is_delivered(self) -> None:
        client = FrameProtocol(client=True, extensions=[])
        frames = ServerFrames(2048)
        data = client.send_data(b"a" * 1000, fin=False) + client.send_data(b"b" * 1048, fin=True)
        self.assertEqual(frames.receive(data), [b"a" * 1000 + b"b" * 1048])

    def test_the_peers_close_is_echoed_and_then_nothing_is_read(self) -> None:
        client = FrameProtocol(client=True, extensions=[])
        frames = ServerFrames(2048)
        [closed] = frames.receive(client.close(4001, "x"))
        self.assertEqual(closed, CloseReceived(4001, "x", b"\x88\x02\x0f\xa1"))
        self.assertEqual(frames.state, CLOSED)
        self.assertEqual(frames.receive(client.send_data(b"late", fin=True)), [])

    def test_after_our_close_data_is_skipped_pings_unanswered_the_close_read(self) -> None:
        client = FrameProtocol(client=True, extensions=[])
        frames = ServerFrames(2048)
        self.assertEqual(frames.state, OPEN)
        self.assertEqual(frames.close(4008, "too many messages")[:4], b"\x88\x13\x0f\xa8")
        data = (client.send_data(b"late", fin=True) + client.ping(b"p")
                + client.send_data(b"x" * 5000, fin=True) + client.close(4008))  # fmt: skip
        self.assertEqual(frames.receive(data), [Ping(b"p", b""), CloseReceived(4008, "", b"")])
        self.assertEqual(frames.state, CLOSED)

    def test_text_that_is_not_utf8_fails_at_its_first_bad_byte(self) -> None:
        """A text frame's payload is checked as it comes (RFC 6455 8.1): a peer is failed
        with 1007 at its first byte that is not UTF-8, before the rest of the frame has
        come (wsproto fails there too); the rest is skipped and the peer's close read."""
        frames = ServerFrames(1 << 16)
        text = "héllo wörld".encode()
        data = raw_frame(1, text + b"\xff" + b"x" * 5000, mask=b"\x01\x23\x45\x67")
        bad = 8 + len(text)  # after the header (a 16-bit length and the mask)
        events = [e for i in range(0, bad, 3) for e in frames.receive(data[i : min(i + 3, bad)])]
        self.assertEqual(events, [])  # UTF-8 so far, split anywhere (a code point too)
        [failure] = frames.receive(data[bad : bad + 1])
        assert isinstance(failure, ProtocolFailure)
        self.assertEqual(failure.code, 1007)
        client = FrameProtocol(client=True, extensions=[])
        self.assertEqual(frames.receive(data[bad + 1 :] + client.close(1000)),
                         [CloseReceived(1000, "", b"")])  # fmt: skip

    def test_the_same_checks_on_a_continuation(self) -> None:
        """The first fragment's unfinished code point goes on into the next frame, which
        arrives a byte at a time: whole, it is one message; a bad byte fails it."""
        for tail, expected in ((b"\xa9 ok", "é ok"), (b"\x41", None)):
            with self.subTest(tail=tail):
                frames = ServerFrames(2048)
                data = raw_frame(1, b"caf\xc3", fin=False) + raw_frame(
                    0, tail, mask=b"\x80\x00\x7f\x01"
                )
                events = [e for i in range(len(data)) for e in frames.receive(data[i : i + 1])]
                if expected is not None:
                    self.assertEqual(events, [TextMessage("caf" + expected)])
                else:
                    [failure] = events
                    assert isinstance(failure, ProtocolFailure)
                    self.assertEqual(failure.code, 1007)

    def test_a_framing_error_discards_what_follows(self) -> None:
        frames = ServerFrames(2048)
        [failure] = frames.receive(raw_frame(2, b"x", mask=None))
        assert isinstance(failure, ProtocolFailure)
        self.assertEqual((failure.code, failure.reply[:4]), (1002, b"\x88\x1e\x03\xea"))
        client = FrameProtocol(client=True, extensions=[])
        self.assertEqual(frames.receive(client.close(1000)), [])
