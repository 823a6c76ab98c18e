"""A lobby player over real TLS, for the tests that drive a running lobby frame by frame:
`Player` keeps every frame it receives; `connect_raw` connects one that has said
nothing yet, `connect_player` one the lobby has welcomed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from vinom.client.bots import LobbyAddress
from vinom.client.lobby import PROTOCOL

Frame = dict[str, Any]


class Player(LineOnlyReceiver):
    """A lobby client that sends what it is told and keeps every frame it receives."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.closed: Deferred[BaseException] = Deferred()
        self._waiters: list[tuple[Callable[[Frame], bool], Deferred[Frame]]] = []
        self._next_id = 0
        # The id the lobby welcomed this player with.
        self.player_id = ""

    def request(self, frame: Frame) -> Deferred[Frame]:
        """Send a frame with a fresh id; fires with the reply to it."""
        self._next_id += 1
        request_id = self._next_id
        self.sendLine(json.dumps({**frame, "id": request_id}).encode())
        return self.when(lambda f: f.get("id") == request_id)

    def lineReceived(self, line: bytes) -> None:
        frame = json.loads(line)
        self.frames.append(frame)
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(frame):
                self._waiters.remove(waiter)
                d.callback(frame)

    def when(self, predicate: Callable[[Frame], bool], after: int = 0) -> Deferred[Frame]:
        """Fires with the first frame matching `predicate`, among those received from the
        `after`th on (already received or later)."""
        d: Deferred[Frame] = Deferred()
        for frame in self.frames[after:]:
            if predicate(frame):
                d.callback(frame)
                return d
        self._waiters.append((predicate, d))
        return d

    def of_type(self, kind: str) -> Deferred[Frame]:
        return self.when(lambda f: f["type"] == kind)

    def connectionLost(self, reason: Failure = ConnectionDone()) -> None:  # noqa: B008
        self.closed.callback(reason.value)


async def connect_raw(case: TestCase, lobby: LobbyAddress) -> Player:
    """A `Player` connected to `lobby` over TLS (trusting its certificate file) that
    has said nothing yet."""
    with open(lobby.trust or "", "rb") as f:
        trust = Certificate.loadPEM(f.read())
    player = Player()
    endpoint = SSL4ClientEndpoint(
        reactor, lobby.host, lobby.port, optionsForClientTLS("localhost", trustRoot=trust)
    )
    await connectProtocol(endpoint, player)
    case.addCleanup(abort_player, player)
    return player


async def connect_player(case: TestCase, lobby: LobbyAddress, name: str) -> Player:
    """A `Player` connected to `lobby` (trusting its certificate file) and welcomed."""
    player = await connect_raw(case, lobby)
    welcome = await player.request({"type": "hello", "name": name, "protocol": PROTOCOL})
    case.assertEqual(welcome["type"], "welcome")
    player.player_id = welcome["player_id"]
    return player


def abort_player(player: Player) -> Deferred[BaseException] | None:
    # Only if a failed test left the connection open: trial must see a clean reactor.
    if player.closed.called:
        return None
    assert player.transport is not None
    player.transport.abortConnection()  # type: ignore[attr-defined]
    return player.closed
