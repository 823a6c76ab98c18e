"""The floor under `play --transport websocket`: the same moves on bare autobahn sockets.

`python -m benchmarks play --transport websocket --bare` runs this server in
place of vinom's `/game` (vinom.hosting.websocket): the same twisted.web site with an
autobahn `WebSocketResource` at `/game`, over Twisted's TLS with a fresh
self-signed certificate (plain TCP for `--transport ws`), the same autobahn
protocol options as vinom's game socket, and the same messages, so the same
load (benchmarks.websocket_load) plays it unchanged. What it leaves out is
everything of vinom's between the socket and the game: the token is read
but not checked, and a move is one dictionary update and one msgpack state
sent to both players of the room, with no game host, seat router, room, rate
limit or output holding. Its CPU per move is what Twisted's TLS and
autobahn's framing cost on their own for this traffic: the lowest a game
socket built on them can reach.
"""

from __future__ import annotations

from typing import Any

import msgpack
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.ssl import PrivateCertificate
from twisted.web.resource import Resource
from twisted.web.server import Site

from benchmarks.server_worker import Ready
from vinom.protocol.config import ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.tokens import peek_request_token

_packb = msgpack.packb
_unpackb = msgpack.unpackb


class BareRoom:
    """Both sockets of one duel room and each player's last move."""

    __slots__ = ("seq", "sockets", "version")

    def __init__(self) -> None:
        self.sockets: list[BareGameSocket] = []
        self.seq: dict[str, int] = {}
        self.version = 0

    def broadcast(self, phase: str, applied: Any = None) -> None:
        self.version += 1
        state = _packb(
            {"t": "state", "v": self.version, "p": phase, "r": 60.0, "s": {"seq": self.seq},
             "i": applied}
        )  # fmt: skip
        for socket in self.sockets:
            socket.sendMessage(state, isBinary=True)


class BareGameSocket(WebSocketServerProtocol):
    """The token, then moves: each one applied if it is the next of its player."""

    room: BareRoom | None = None
    me = ""

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N803 (autobahn)
        factory: BareGameSocketFactory = self.factory
        room = self.room
        if room is None:
            self._seat(factory, payload)
            return
        message = _unpackb(payload)
        seq = message["a"]["seq"]
        if seq == room.seq[self.me] + 1:
            room.seq[self.me] = seq
            factory.applied += 1
        else:
            factory.rejected += 1
        room.broadcast("playing", message.get("i"))

    def _seat(self, factory: BareGameSocketFactory, token: bytes) -> None:
        peeked = peek_request_token(token, factory.protocol_config, 0.0, factory.aead)
        if isinstance(peeked, str):
            self.sendClose(4001, peeked)
            return
        room = factory.rooms.setdefault(peeked.match_id, BareRoom())
        self.room = room
        self.me = peeked.player_id
        room.sockets.append(self)
        room.seq[self.me] = 0
        room.broadcast("playing" if len(room.sockets) == 2 else "waiting")


class BareGameSocketFactory(WebSocketServerFactory):
    protocol = BareGameSocket

    def __init__(self, key: bytes, reactor: Any) -> None:
        super().__init__(server="vinom-bare", reactor=reactor)
        self.protocol_config = ProtocolConfig(token_key=key)
        self.aead = new_aead(key)
        self.rooms: dict[str, BareRoom] = {}
        self.applied = 0
        self.rejected = 0
        # vinom.hosting.websocket's options, so that only vinom's own work differs.
        self.setProtocolOptions(
            maxMessagePayloadSize=2048, maxFramePayloadSize=2048, failByDrop=False,
            openHandshakeTimeout=10.0, webStatus=False, autoPingInterval=5.0,
            autoPingTimeout=10.0, allowedOrigins=["*"], allowNullOrigin=True,
        )  # fmt: skip


def start_bare_game_socket(reactor: Any, settings: dict[str, Any]) -> Ready:
    """`/game` served by `BareGameSocketFactory`; ready fields as the `rooms` kind's."""
    from vinom.server.certs import make_self_signed

    interface = settings.get("interface", "127.0.0.1")
    factory = BareGameSocketFactory(bytes.fromhex(settings["key"]), reactor)
    root = Resource()
    root.putChild(b"game", WebSocketResource(factory))
    site = Site(root)
    site.noisy = False
    if settings.get("tls", True):
        cert, key = make_self_signed("localhost")
        options = PrivateCertificate.loadPEM(cert + key).options()
        port = reactor.listenSSL(0, site, options, interface=interface).getHost().port
    else:
        port = reactor.listenTCP(0, site, interface=interface).getHost().port

    def counters() -> dict[str, Any]:
        return {"actions_applied": factory.applied, "actions_rejected": factory.rejected}

    # The load seals tokens for this UDP address; nothing listens there.
    return {"port": 9, "ports": [9], "websocket_port": int(port)}, counters
