"""What a new gateway connection speaks, read from its first bytes (sans-I/O).

`sniff(data, limit)` looks at the bytes a client has sent so far and answers
`None` (need more), a `Sniffed` (what to route on) or a `Refused` (close the
connection, counting `reason`). It never consumes: the gateway replays every
byte it read to the backend unchanged. The kinds (docs/gateway.md):

- `tls`: a TLS record of type handshake (0x16) holding a ClientHello; its
  server name (SNI) and ALPN protocols are read without decrypting anything;
- `http`: an HTTP/1.x request line and its headers, up to the blank line; the
  path, the query's `realm` and `player` are read from the request target;
- `lobby`: a plain lobby line, the first newline-ended JSON frame of the
  lobby protocol (docs/lobby.md); `hello`'s `realm`, and the player id of
  `hello.previous` or of `reconnect`, are read from it.

A PROXY protocol header from a client is refused (`proxy_header`): only the
gateway speaks it, to its backends.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from attrs import field, frozen

# The longest first message the gateway reads before it decides (a ClientHello with
# large key shares is under 2 KiB; a lobby frame at most 4096 bytes plus its newline).
DEFAULT_LIMIT = 8192
# The seconds a client has to send enough to decide.
DEFAULT_TIMEOUT = 5.0

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_HTTP_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
# A lobby frame is a JSON object: its first byte, after optional blanks.
_BLANKS = b" \t\r\n"
_MAX_ID = 64


@frozen
class Sniffed:
    """What a connection speaks and what a rule may route on."""

    kind: str  # "tls", "http" or "lobby"
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    path: str | None = None
    realm: str | None = None
    player_id: str | None = None
    query: Mapping[str, str] = field(factory=dict)


@frozen
class Refused:
    """The connection is closed: `reason` is counted (docs/gateway.md lists them)."""

    reason: str


Decision = Sniffed | Refused | None


def sniff(data: bytes, limit: int = DEFAULT_LIMIT) -> Decision:
    """Decide on the bytes received so far (module docstring)."""
    if not data:
        return None
    first = data[0]
    if first == 0x16:
        decision = _tls(data)
    elif data.startswith(PROXY_V2_SIGNATURE[: len(data)]) or data.startswith(
        b"PROXY "[: len(data)]
    ):
        decision = Refused("proxy_header") if len(data) >= 6 else None
    elif first in b"{" or first in _BLANKS:
        decision = _lobby(data)
    elif any((m + b" ").startswith(data[: len(m) + 1]) for m in _HTTP_METHODS):
        decision = _http(data)
    else:
        decision = Refused("unknown_protocol")
    if decision is None and len(data) >= limit:
        return Refused("too_large")
    return decision


# -- TLS ------------------------------------------------------------------------


def _tls(data: bytes) -> Decision:
    """The ClientHello, gathered from as many handshake records as it spans."""
    handshake = b""
    at = 0
    while True:
        if len(data) < at + 5:
            return None
        kind, major, length = data[at], data[at + 1], int.from_bytes(data[at + 3 : at + 5])
        if kind != 0x16 or major != 3 or length == 0 or length > 16384:
            return Refused("bad_tls")
        if len(data) < at + 5 + length:
            return None
        handshake += data[at + 5 : at + 5 + length]
        at += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != 1:  # not a ClientHello
                return Refused("bad_tls")
            size = int.from_bytes(handshake[1:4])
            if len(handshake) >= 4 + size:
                try:
                    return _client_hello(handshake[4 : 4 + size])
                except (IndexError, ValueError):
                    return Refused("bad_tls")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("short")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n))

    def vector(self, n: int) -> _Reader:
        return _Reader(self.take(self.number(n)))

    @property
    def left(self) -> int:
        return len(self.data) - self.at


# An extension's type and the length of its data.
_EXTENSION_HEADER = struct.Struct("!HH")


def _skip(body: bytes, at: int, n: int) -> int:
    """The offset after the vector at `at` whose length takes `n` bytes (ValueError if
    `body` is shorter)."""
    end = at + n + int.from_bytes(body[at : at + n])
    if end > len(body) or at + n > len(body):
        raise ValueError("short")
    return end


def _client_hello(body: bytes) -> Sniffed:
    # Walked by offsets, not copied: of its many extensions (a post-quantum key share
    # alone is over 1 KiB) only the server name and ALPN are read.
    at = _skip(body, 2 + 32, 1)  # session id, after the legacy version and random
    at = _skip(body, at, 2)  # cipher suites
    at = _skip(body, at, 1)  # compression methods
    sni: str | None = None
    alpn: list[str] = []
    if at < len(body):
        end = _skip(body, at, 2)  # extensions
        at += 2
        while at < end:
            if at + 4 > end:
                raise ValueError("short")
            kind, size = _EXTENSION_HEADER.unpack_from(body, at)
            data_end = at + 4 + size
            if data_end > end:
                raise ValueError("short")
            if kind == 0:  # server_name
                names = _Reader(body[at + 4 : data_end]).vector(2)
                while names.left:
                    name_type, name = names.number(1), names.vector(2).data
                    if name_type == 0:
                        sni = name.decode("ascii").lower()
            elif kind == 16:  # application_layer_protocol_negotiation
                protocols = _Reader(body[at + 4 : data_end]).vector(2)
                while protocols.left:
                    alpn.append(protocols.vector(1).data.decode("ascii", "replace"))
            at = data_end
    return Sniffed("tls", sni=sni, alpn=tuple(alpn))


# -- HTTP -----------------------------------------------------------------------


def _http(data: bytes) -> Decision:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    request_line = data[: data.find(b"\r\n")]
    try:
        method, target, version = request_line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        return Refused("bad_http")
    if method.encode() not in _HTTP_METHODS or not version.startswith("HTTP/1."):
        return Refused("bad_http")
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query))
    return Sniffed("http", path=parts.path or "/", realm=_short(query.get("realm")),
                   player_id=_short(query.get("player")), query=query)  # fmt: skip


# -- the lobby's first frame ----------------------------------------------------


def _lobby(data: bytes) -> Decision:
    end = data.find(b"\n")
    if end < 0:
        return None
    line = data[:end].strip(_BLANKS)
    if not line:  # a blank line before the first frame: the lobby skips it too
        rest = data[end + 1 :]
        return _lobby(rest) if rest else None
    try:
        frame = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return Refused("bad_lobby_frame")
    if not isinstance(frame, dict):
        return Refused("bad_lobby_frame")
    realm = player_id = None
    if frame.get("type") == "hello":
        realm = _short(frame.get("realm"))
        previous = frame.get("previous")
        if isinstance(previous, dict):
            player_id = _short(previous.get("player_id"))
    elif frame.get("type") == "reconnect":
        player_id = _short(frame.get("player_id"))
    return Sniffed("lobby", realm=realm, player_id=player_id)


def _short(value: object) -> str | None:
    """A string field worth routing on: a string of 1 to 64 characters, else None."""
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_ID else None
