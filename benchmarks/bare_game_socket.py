"""The floor under `play --transport ws|websocket`: the same moves on bare Twisted sockets.

`python -m benchmarks play --transport websocket --bare` runs this server in
place of vinom's `/game` (vinom.hosting.websocket): the same twisted.web site,
whose `/game` answers the WebSocket upgrade and hands the connection over to a
bare Twisted protocol framing with vinom's own codec (vinom.net.websocket,
what vinom's game socket frames with), over the TLS listener vinom's
`/game` has in the benchmark (plain TCP for `--transport ws`), and the same
messages, so the same load (benchmarks.websocket_load) plays it unchanged.
What it leaves out is everything of vinom's between the framing and the game:
the token is read but not checked, and a move is one dictionary update and
one msgpack state sent to both players of the room, with no game host, seat
router, room, rate limit, liveness ping or output holding. Its CPU per move
is what Twisted's TCP (and TLS), the framing and msgpack cost on their own
for this traffic: the lowest a game socket on Twisted can reach.
"""

from __future__ import annotations

from typing import Any

import msgpack
from twisted.internet.protocol import Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from benchmarks.server_worker import Ready, listen_site

try:
    from vinom.net.upgrade import accept_upgrade
except ImportError:  # a build from before vinom.net.upgrade: the key given as well
    from vinom.hosting.websocket import accept_upgrade as _accept_with_key

    def accept_upgrade(request: Any, protocol: Any) -> None:
        _accept_with_key(request, protocol, request.getHeader("sec-websocket-key") or "")
from vinom.net.websocket import OPEN, CloseReceived, Ping, ProtocolFailure, ServerFrames
from vinom.protocol.config import ProtocolConfig
from vinom.protocol.crypto import new_aead
from vinom.protocol.tokens import peek_request_token

_packb = msgpack.packb
_unpackb = msgpack.unpackb
# vinom.hosting.websocket's message limit for what a player sends.
MAX_MESSAGE = 2048


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
            socket.send(state)


class BareGameSocket(Protocol):
    """The token, then moves: each one applied if it is the next of its player."""

    def __init__(self, factory: BareGameSocketFactory) -> None:
        self.factory = factory
        self.frames = ServerFrames(MAX_MESSAGE)
        self.room: BareRoom | None = None
        self.me = ""

    def send(self, payload: bytes) -> None:
        self.transport.write(self.frames.binary(payload))  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        frames = self.frames
        for event in frames.receive(data):
            if type(event) is bytes:
                if frames.state is OPEN:
                    self.message(event)
            elif isinstance(event, Ping | CloseReceived | ProtocolFailure):
                self.transport.write(event.reply)  # type: ignore[union-attr]
                if not isinstance(event, Ping):
                    self.transport.loseConnection()  # type: ignore[union-attr]

    def message(self, payload: bytes) -> None:
        factory = self.factory
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
            self.transport.write(self.frames.close(4001, peeked))  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        room = factory.rooms.setdefault(peeked.match_id, BareRoom())
        self.room = room
        self.me = peeked.player_id
        room.sockets.append(self)
        room.seq[self.me] = 0
        room.broadcast("playing" if len(room.sockets) == 2 else "waiting")


class BareGameSocketFactory:
    def __init__(self, key: bytes) -> None:
        self.protocol_config = ProtocolConfig(token_key=key)
        self.aead = new_aead(key)
        self.rooms: dict[str, BareRoom] = {}
        self.applied = 0
        self.rejected = 0


class BareUpgrade(Resource):
    """`/game`: any upgrade request answered with 101, its connection handed to a
    `BareGameSocket` (vinom's `GameSocketResource` does so after its checks)."""

    isLeaf = True

    def __init__(self, factory: BareGameSocketFactory) -> None:
        super().__init__()
        self.factory = factory

    def render_GET(self, request: Request) -> int:
        if request.channel.transport is not None:  # (None: the connection went meanwhile)
            accept_upgrade(request, BareGameSocket(self.factory))
        return NOT_DONE_YET


def start_bare_game_socket(reactor: Any, settings: dict[str, Any]) -> Ready:
    """`/game` served by `BareGameSocketFactory`; ready fields as the `rooms` kind's."""
    interface = settings.get("interface", "127.0.0.1")
    factory = BareGameSocketFactory(bytes.fromhex(settings["key"]))
    root = Resource()
    root.putChild(b"game", BareUpgrade(factory))
    site = Site(root)
    site.noisy = False
    port = listen_site(reactor, site, interface, settings.get("tls", True))

    def counters() -> dict[str, Any]:
        return {"actions_applied": factory.applied, "actions_rejected": factory.rejected}

    # The load seals tokens for this UDP address; nothing listens there. `server` names
    # what served the run in play's figures.
    ready = {"port": 9, "ports": [9], "websocket_port": int(port), "server": "bare twisted"}
    return ready, counters
