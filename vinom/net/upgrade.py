"""The WebSocket opening handshake on twisted.web, for vinom's two sockets.

The lobby's `/lobby` (vinom.lobby.websocket) and the game session's `/game`
(vinom.hosting.websocket) are twisted.web resources that take the upgrade
themselves and hand the connection to a protocol on vinom's own framing
(`ServerFrames`, vinom.net.websocket): `refusal` checks an upgrade request
(RFC 6455 4.2.1: `Upgrade: websocket`, `Connection: Upgrade`, version 13, a
Sec-WebSocket-Key of 16 bytes, an Origin the `OriginPolicy` allows),
`refuse` answers one that fails, `client_address` says whom it counts as
(behind trusted proxies, X-Forwarded-For), and `accept_upgrade` answers 101
and makes the connection the protocol's.
"""

from __future__ import annotations

import base64

from attrs import frozen
from twisted.internet.interfaces import IPushProducer, ITransport
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.web.server import Request

from vinom.net.origins import OriginPolicy, forwarded_client_address, peer_host_of
from vinom.net.websocket import accept_key

__all__ = ["Refusal", "accept_upgrade", "client_address", "refusal", "refuse"]


@frozen
class Refusal:
    """An upgrade refused: the HTTP status, the text (reason phrase and body), and the
    reason it is counted under (`origin`; the others are malformed requests)."""

    status: int
    text: str
    reason: str


def refusal(request: Request, policy: OriginPolicy) -> Refusal | None:
    """What is wrong with the upgrade `request`, None if nothing is."""
    header = request.getHeader
    upgrade = (header("upgrade") or "").lower()
    connection = [token.strip() for token in (header("connection") or "").lower().split(",")]
    if upgrade != "websocket" or "upgrade" not in connection:
        return Refusal(426, "a WebSocket upgrade is expected here", "not_websocket")
    if header("sec-websocket-version") != "13":
        return Refusal(426, "WebSocket version 13 is expected", "version")
    if not _valid_key(header("sec-websocket-key") or ""):
        return Refusal(400, "a bad Sec-WebSocket-Key", "bad_key")
    origin = header("origin")
    if origin is not None and not policy.allows(origin):
        return Refusal(403, "origin not allowed", "origin")
    return None


def refuse(request: Request, refused: Refusal) -> bytes:
    """The upgrade refused: its text as the status line's reason phrase and as the body."""
    if refused.reason == "version":
        request.setHeader(b"sec-websocket-version", b"13")
    request.setResponseCode(refused.status, refused.text.encode("utf-8"))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return refused.text.encode("utf-8")


def client_address(request: Request, trusted_proxies: int) -> str | None:
    """The address the request's connection counts as (`forwarded_client_address`);
    None if the connection went while the request was read."""
    transport: ITransport | None = request.channel.transport
    if transport is None:
        return None
    values = request.requestHeaders.getRawHeaders("x-forwarded-for")
    forwarded = {"x-forwarded-for": ", ".join(values)} if values else {}
    return forwarded_client_address(peer_host_of(transport), forwarded, trusted_proxies)


def accept_upgrade(request: Request, protocol: Protocol) -> None:
    """The upgrade `request` asked for answered with 101 and its connection handed to
    `protocol`: the HTTP channel lets go of the transport, whose protocol becomes
    `protocol` (inside a TLS wrapper, the wrapped protocol). The connection must still
    be open (`client_address` is not None)."""
    channel = request.channel
    transport: ITransport | None = channel.transport
    if transport is None:
        raise ValueError("the connection of the upgrade request went")
    key = request.getHeader("sec-websocket-key") or ""
    channel.setTimeout(None)
    channel.transport = None
    if isinstance(transport, ProtocolWrapper):
        transport.wrappedProtocol = protocol
    else:
        transport.protocol = protocol  # type: ignore[attr-defined]
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_key(key).encode("ascii")
        + b"\r\n\r\n"
    )
    protocol.makeConnection(transport)
    # The channel may have paused the transport's reading while it handled the request.
    reading = IPushProducer(transport, None)
    if reading is not None:
        reading.resumeProducing()


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False
