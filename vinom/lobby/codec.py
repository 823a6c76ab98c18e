"""The lobby's wire format, sans-I/O: bytes in, parsed requests or structured errors out.

Frames are newline-delimited JSON objects (UTF-8), each at most
`max_frame_bytes` long not counting the newline; a trailing carriage return is
ignored and blank lines are skipped, so a person can type frames into
`openssl s_client`. Every frame has a string `type`; a client may add an `id`
(a string of at most 64 characters or an integer) that the reply echoes.

`FrameDecoder.feed` never raises: anything that is not a valid request comes
out as a `FrameError` carrying a code from `vinom.lobby.errors`. A frame that
grows past the limit yields one `frame_too_large`, and the decoder discards
bytes up to the next newline and carries on with the frame after it.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen

from vinom.lobby import errors

RequestId = str | int | None

MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 32
MAX_GAME_LENGTH = 64
MAX_PLAYER_ID_LENGTH = 64
MAX_SECRET_LENGTH = 128
# Integer ids stay within what every JSON implementation represents exactly.
MAX_INT_ID = 2**53 - 1
MAX_RATING = 1e9


@frozen
class Hello:
    """`hello`: the first frame of a new player; `name` is shown to other players."""

    request_id: RequestId
    name: str


@frozen
class Queue:
    """`queue`: put the player in the queue of `game`."""

    request_id: RequestId
    game: str
    rating: float | None


@frozen
class Cancel:
    """`cancel`: leave the queue."""

    request_id: RequestId


@frozen
class Ping:
    """`ping`: liveness check, answered with `pong`."""

    request_id: RequestId


@frozen
class Reconnect:
    """`reconnect`: a player of a running match asks for a fresh connect token."""

    request_id: RequestId
    player_id: str
    secret: str


Request = Hello | Queue | Cancel | Ping | Reconnect


@frozen
class FrameError:
    """A frame that is not a valid request, with its stable error code."""

    code: str
    message: str
    request_id: RequestId = None


Decoded = Request | FrameError


class FrameDecoder:
    """Splits a byte stream into frames and parses each one."""

    def __init__(self, max_frame_bytes: int = 4096) -> None:
        self._max = max_frame_bytes
        self._buffer = bytearray()
        # True after an oversized frame was reported, until its newline arrives.
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the end of a frame (never more than the limit)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Decoded]:
        """Take more bytes; return every request or error completed by them, in order."""
        self._buffer += data
        results: list[Decoded] = []
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            elif end - start > self._max:
                results.append(_too_large(self._max))
            else:
                line = bytes(buffer[start:end])
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.strip():
                    results.append(parse_frame(line))
            start = end + 1
        del buffer[:start]
        if self._discarding:
            buffer.clear()
        elif len(buffer) > self._max:
            # No newline within the limit: report once, then drop the rest of this frame.
            results.append(_too_large(self._max))
            self._discarding = True
            buffer.clear()
        return results


def _too_large(limit: int) -> FrameError:
    return FrameError(errors.FRAME_TOO_LARGE, f"a frame may be at most {limit} bytes")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_frame(line: bytes) -> Decoded:
    """Parse one frame (without its newline) into a request or a `FrameError`."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return FrameError(errors.MALFORMED_JSON, "a frame must be UTF-8 encoded JSON")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
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
    parser = _PARSERS.get(kind)
    if parser is None:
        return FrameError(
            errors.UNKNOWN_TYPE, f"unknown frame type {quote_for_message(kind)}", request_id
        )
    try:
        return parser(obj, request_id)
    except _FieldError as e:
        return FrameError(e.code, e.message, request_id)


def _valid_id(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_ID_LENGTH
    if isinstance(value, int) and not isinstance(value, bool):
        return -MAX_INT_ID <= value <= MAX_INT_ID
    return False


def quote_for_message(text: str, limit: int = 32) -> str:
    """Client text shown in an error message: JSON-quoted and cut to `limit` characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(shown)


class _FieldError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _string(obj: Mapping[str, Any], name: str, max_length: int) -> str:
    if name not in obj:
        raise _FieldError(errors.MISSING_FIELD, f"'{obj['type']}' needs a '{name}'")
    value = obj[name]
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise _FieldError(
            errors.INVALID_FIELD,
            f"'{name}' must be a non-empty string of at most {max_length} characters",
        )
    return value


def _parse_hello(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    name = _string(obj, "name", MAX_NAME_LENGTH * 4).strip()
    if (
        not name
        or len(name) > MAX_NAME_LENGTH
        or any(unicodedata.category(c).startswith("C") for c in name)
    ):
        raise _FieldError(
            errors.INVALID_FIELD,
            f"'name' must be 1 to {MAX_NAME_LENGTH} printable characters",
        )
    return Hello(request_id, name)


def _parse_queue(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    game = _string(obj, "game", MAX_GAME_LENGTH)
    rating = obj.get("rating")
    if rating is not None:
        if (
            isinstance(rating, bool)
            or not isinstance(rating, int | float)
            or not math.isfinite(rating)
            or abs(rating) > MAX_RATING
        ):
            raise _FieldError(errors.INVALID_FIELD, "'rating' must be a finite number or null")
        rating = float(rating)
    return Queue(request_id, game, rating)


def _parse_cancel(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    return Cancel(request_id)


def _parse_ping(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    return Ping(request_id)


def _parse_reconnect(obj: Mapping[str, Any], request_id: RequestId) -> Request:
    player_id = _string(obj, "player_id", MAX_PLAYER_ID_LENGTH)
    secret = _string(obj, "secret", MAX_SECRET_LENGTH)
    return Reconnect(request_id, player_id, secret)


_PARSERS: dict[str, Callable[[Mapping[str, Any], RequestId], Request]] = {
    "hello": _parse_hello,
    "queue": _parse_queue,
    "cancel": _parse_cancel,
    "ping": _parse_ping,
    "reconnect": _parse_reconnect,
}

REQUEST_TYPES = frozenset(_PARSERS)


def encode_frame(frame: Mapping[str, Any]) -> bytes:
    """One frame on the wire: compact JSON and a newline.

    JSON escapes control characters, so nothing inside a frame (a player's
    name, say) can ever contain the newline that ends it; ASCII-only output
    also survives a lone surrogate a client put in its request id.
    """
    return json.dumps(frame, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def error_frame(code: str, message: str, request_id: RequestId = None) -> dict[str, Any]:
    """An `error` frame; `id` is always present (null when unknown)."""
    return {"type": "error", "code": code, "message": message, "id": request_id}
