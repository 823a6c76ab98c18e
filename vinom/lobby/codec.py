"""The lobby's wire format, sans-I/O: bytes in, parsed requests or structured errors out.

Frames are newline-delimited JSON objects (UTF-8), each at most
`max_frame_bytes` long not counting the newline; a trailing carriage return is
ignored and blank lines are skipped, so a person can type frames into
`openssl s_client`. Every frame has a string `type`; a client may add an `id`
(a string of at most 64 characters or an integer) that the reply echoes.

`FrameDecoder` splits lazily: `push` buffers bytes and `next_line` hands out
one line at a time, so the lobby applies its limits before parsing each frame.
`parse_frame` never raises: anything that is not a valid request comes out as
a `FrameError` carrying a code from `vinom.lobby.errors`. A frame that grows
past the limit yields one `frame_too_large`, and the decoder discards bytes up
to the next newline and carries on with the frame after it.

`MessageDecoder` is the same for a transport that frames messages itself
(WebSocket text messages): each message is one frame, with no newline.

The requests a frame can hold, and the checks of their fields, are
vinom.lobby.request_types's.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from vinom.lobby import errors
from vinom.lobby.request_types import (
    MAX_ID_LENGTH,
    PARSERS,
    FieldError,
    Request,
    RequestId,
    is_unicode_text,
)

# Integer ids stay within what every JSON implementation represents exactly.
MAX_INT_ID = 2**53 - 1


@frozen
class FrameError:
    """A frame that is not a valid request, with its stable error code."""

    code: str
    message: str
    request_id: RequestId = None


Decoded = Request | FrameError


class FrameDecoder:
    """Splits a byte stream into frames, one at a time.

    `push` only buffers; `next_line` hands out the next complete line. The
    lobby takes lines one by one and checks its limits (closing, rate limit,
    a request still being served) before parsing each, so one read full of
    tiny frames costs no more parsing than the limits allow, and lines not
    yet served wait as raw bytes, not as parsed objects.
    """

    def __init__(self, max_frame_bytes: int = 4096) -> None:
        self._max = max_frame_bytes
        self._buffer = bytearray()
        # Bytes before _start are consumed; no newline lies in [_start, _scanned).
        self._start = 0
        self._scanned = 0
        # True after an oversized frame was reported, until its newline arrives.
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out (complete lines and a partial one)."""
        return len(self._buffer) - self._start

    def push(self, data: bytes) -> None:
        """Take more bytes; nothing is split or parsed yet."""
        if self._discarding and self._start == len(self._buffer):
            # Inside an oversized frame with nothing else waiting: keep nothing before its end.
            end = data.find(b"\n")
            if end < 0:
                return
            self._discarding = False
            self.clear()
            data = data[end + 1 :]
        self._buffer += data

    def next_line(self) -> bytes | FrameError | None:
        """The next frame's bytes, or None when no complete frame is buffered.

        The line comes without its newline and without a carriage return before
        it; a blank (whitespace-only) line comes as b"". A frame longer than the
        limit comes as one `frame_too_large` `FrameError`, and its bytes are
        discarded up to the next newline.
        """
        buffer = self._buffer
        while True:
            start = self._start
            end = buffer.find(b"\n", max(start, self._scanned))
            if end < 0:
                break
            self._start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            if end > start and buffer[end - 1] == 13:  # a carriage return before the newline
                end -= 1
            if end - start > self._max:
                return _too_large(self._max)
            line = bytes(buffer[start:end])
            return line if line.strip() else b""
        # No complete line left: what remains is one partial frame.
        if self._discarding:
            self.clear()
        elif len(buffer) - self._start > self._max + 1:
            # No newline within the limit (and a carriage return, which does not count
            # against it): report once, then drop the rest of this frame.
            self._discarding = True
            self.clear()
            return _too_large(self._max)
        else:
            del buffer[: self._start]
            self._start = 0
            self._scanned = len(buffer)
        return None

    def clear(self) -> None:
        """Drop everything buffered (the connection is closing, or a frame is discarded)."""
        self._buffer.clear()
        self._start = 0
        self._scanned = 0

    def feed(self, data: bytes) -> list[Decoded]:
        """Push `data` and parse every frame completed by it, in order; blank lines are skipped.

        For tools and tests; the lobby takes lines one at a time with `next_line`.
        """
        self.push(data)
        results: list[Decoded] = []
        while (line := self.next_line()) is not None:
            if isinstance(line, FrameError):
                results.append(line)
            elif line:
                results.append(parse_frame(line))
        return results


class MessageDecoder:
    """Frames that arrive whole, one per message (a WebSocket text message).

    The same interface as `FrameDecoder`, for a transport that frames messages
    itself: `push` takes one whole message, which is one frame without a
    newline. A message with a newline (or carriage return) in it is refused
    with `malformed_json`, so a frame means the same on every transport (one
    line of the TCP lobby); one over the size limit with `frame_too_large`;
    a blank one comes out as b"", like a blank line. `refuse` queues an error
    for a message the transport itself could not take (a binary message), in
    its place among the others.
    """

    def __init__(self, max_frame_bytes: int = 4096) -> None:
        self._max = max_frame_bytes
        self._waiting: deque[bytes | FrameError] = deque()
        self._buffered = 0

    @property
    def buffered(self) -> int:
        """Bytes of the messages received and not yet handed out."""
        return self._buffered

    def push(self, message: bytes) -> None:
        """Take one whole message."""
        if len(message) > self._max:
            self._waiting.append(_too_large(self._max))
        elif b"\n" in message or b"\r" in message:
            self._waiting.append(
                FrameError(
                    errors.MALFORMED_JSON,
                    "a message must hold one frame on one line (no newline in it)",
                )
            )
        elif not message.strip():
            self._waiting.append(b"")
        else:
            self._waiting.append(message)
            self._buffered += len(message)

    def refuse(self, error: FrameError) -> None:
        """A message the transport could not take: `error` is its answer, in turn."""
        self._waiting.append(error)

    def next_line(self) -> bytes | FrameError | None:
        """The next message's frame (b"" if blank) or its error; None if none waits."""
        if not self._waiting:
            return None
        item = self._waiting.popleft()
        if isinstance(item, bytes):
            self._buffered -= len(item)
        return item

    def clear(self) -> None:
        """Drop every message waiting (the connection is closing)."""
        self._waiting.clear()
        self._buffered = 0


def _too_large(limit: int) -> FrameError:
    return FrameError(errors.FRAME_TOO_LARGE, f"a frame may be at most {limit} bytes")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every frame: json.loads with keyword arguments builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _load(line: bytes) -> Any:
    """The JSON value of a frame; ValueError (or RecursionError) if it is not strict JSON."""
    return _JSON.decode(line.decode("utf-8"))


def request_id_of(line: bytes) -> RequestId:
    """The valid `id` of a frame, or None: to answer a frame that will not be served."""
    try:
        obj = _load(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        raw_id = obj.get("id")
        if _valid_id(raw_id):
            return raw_id
    return None


def parse_frame(line: bytes) -> Decoded:
    """Parse one frame (without its newline) into a request or a `FrameError`."""
    try:
        obj = _load(line)
    except UnicodeDecodeError:
        return FrameError(errors.MALFORMED_JSON, "a frame must be UTF-8 encoded JSON")
    except (ValueError, RecursionError):
        # RecursionError: a few thousand nested brackets fit in one frame.
        return FrameError(errors.MALFORMED_JSON, "the frame is not valid JSON")
    if not isinstance(obj, dict):
        return FrameError(errors.NOT_AN_OBJECT, "a frame must be a JSON object")
    request_id: RequestId = None
    if "id" in obj:
        raw_id = obj["id"]
        if not _valid_id(raw_id):
            return FrameError(
                errors.INVALID_FIELD,
                f"'id' must be a string of at most {MAX_ID_LENGTH} characters or an integer",
            )
        request_id = raw_id
    if "type" not in obj:
        return FrameError(errors.MISSING_FIELD, "a frame needs a 'type'", request_id)
    kind = obj["type"]
    if not isinstance(kind, str):
        return FrameError(errors.INVALID_FIELD, "'type' must be a string", request_id)
    parser = PARSERS.get(kind)
    if parser is None:
        return FrameError(
            errors.UNKNOWN_TYPE, f"unknown frame type {quote_for_message(kind)}", request_id
        )
    try:
        return parser(obj, request_id)
    except FieldError as e:
        return FrameError(e.code, e.message, request_id)


def _valid_id(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_ID_LENGTH and is_unicode_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -MAX_INT_ID <= value <= MAX_INT_ID
    return False


def quote_for_message(text: str, limit: int = 32) -> str:
    """Client text shown in an error message: JSON-quoted and cut to `limit` characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(shown)


def encode_frame(frame: Mapping[str, Any]) -> bytes:
    """One frame on the wire: compact JSON and a newline.

    JSON escapes control characters, so nothing inside a frame (a player's
    name, say) can ever contain the newline that ends it; ASCII-only output
    also survives a lone surrogate a client put in its request id.
    """
    return _ENCODER.encode(frame).encode("ascii") + b"\n"


# One encoder for every frame: json.dumps with keyword arguments builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def error_frame(
    code: str, message: str, request_id: RequestId = None, fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An `error` frame; `id` is always present (null when unknown). `fields` come
    between the code and the message (an `auth_failed`'s `reason`)."""
    if fields:
        return {"type": "error", "code": code, **fields, "message": message, "id": request_id}
    return {"type": "error", "code": code, "message": message, "id": request_id}


def queued_frame(game: str, queue: str, position: int | None, **more: Any) -> dict[str, Any]:
    """A `queued` frame: searching for a match of `game` in `queue`, at `position` (None:
    not known); `more` adds a party's `party_id`, or a requeued ticket's `requeued` and
    `reason`."""
    frame = {"type": "queued", "game": game, "queue": queue, "position": position}
    return {**frame, "status": "searching", **more}
