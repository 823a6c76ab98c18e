"""Load side of `play --game arena --transport ws|websocket|webtransport`: the browser's paths.

The arena's bots of benchmarks.arena_load (`ArenaBots`: a velocity input
every 1/`input_rate` seconds once their room plays, the same wire, the same
latencies), on the transports a browser plays over instead of vinom's UDP
sessions, with the connect token of one seat of the bench's arena rooms:

- `websocket` (`ws`: without TLS, as behind a TLS-terminating proxy): each
  player opens `/game` with benchmarks.websocket_load's lean client, sends its
  token, then each input as one binary message; each message the host sends
  (welcome, snaps, states) is one message too. The stream keeps only the
  newest unsent snap of a player who reads late (vinom.hosting.streams).
- `webtransport`: each player is an aioquic client (benchmarks.webtransport_load's
  `QuicPlayer`): its session, its stream with the token first, then its inputs
  as datagrams, as the web client sends them; the host sends snaps as datagrams
  and the rest on the stream (docs/protocol.md section 17).

Per player, in the window: `bytes` is what reached the player's socket from the
server, TCP payload (TLS records and WebSocket frames) or UDP payload (QUIC
packets), no IP, TCP or UDP header, so that it compares with the UDP arena's
`bytes`; `datagrams_in` and `datagrams_out` are the WebSocket messages each
way, or on WebTransport the UDP datagrams (QUIC packets: states, acks, inputs)
each way. The path is not impaired (play refuses `--loss` and `--delay` on these
transports).
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from benchmarks.arena_load import ArenaBots, ArenaPlayer
from benchmarks.loadgen import DONE
from benchmarks.server_worker import match_id
from benchmarks.session_load import Aborted, make_issuer, poll_sockets, raise_fd_limit
from benchmarks.websocket_load import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    SocketPlayer,
    client_context,
    frame,
    open_socket,
    read_available,
)
from benchmarks.webtransport_load import QuicPlayer, WebTransportPlay, open_sessions
from benchmarks.worker import emit
from vinom.protocol.address import HostAddress

# The loop's longest wait: inputs go out on their time, to the millisecond (as
# benchmarks.arena_load's).
STEP_S = 0.002


class WebSocketArena:
    """The arena's players of `rooms` over `/game` WebSockets."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.bots = ArenaBots(settings)
        self.server = (str(settings["host"]), int(settings["websocket_port"]))
        # The token names the room's game host (its UDP address), as the lobby's does.
        self.udp_host = HostAddress(str(settings["host"]), int(settings["port"]))
        self.issuer = make_issuer(bytes.fromhex(settings["key"]))
        self.rooms = range(int(settings["first_room"]), int(settings["last_room"]))
        self.seats = int(settings["seats"])
        self.context = client_context(bool(settings.get("tls", True)))
        self.links: list[SocketPlayer] = []
        self.closed = 0

    def connect_all(self) -> None:
        raise_fd_limit(len(self.rooms) * self.seats + 64)
        now = time.time()
        for room in self.rooms:
            for seat in range(self.seats):
                player = self.bots.make_player(room, seat)
                token = self.issuer.issue_token(player_id=player.me, match_id=match_id(room),
                                                hosts=(self.udp_host,), now=now)  # fmt: skip
                sock = open_socket(self.server, self.context, token.request_packet(), True)
                self.links.append(SocketPlayer(sock, player))
        emit("progress", phase="connect", count=len(self.links), elapsed=0.0)

    def readable(self, index: int, now: float) -> None:
        link = self.links[index]
        sock = link.sock
        player: ArenaPlayer = link.player
        before = sock.bytes_in
        data, ended = read_available(sock)
        if ended is not None:
            self._closed(index, ended)
            return
        player.bytes += sock.bytes_in - before
        link.buffer += data
        receive = self.bots.receive
        for opcode, payload in link.frames():
            if opcode == BINARY:
                player.datagrams_in += 1
                receive(player, payload, now)
            elif opcode == PING:
                self._send(index, frame(PONG, payload))
            elif opcode == CLOSE:
                self._closed(index, "close")
                return

    def send_inputs(self, now: float) -> None:
        next_input = self.bots.next_input
        for index, link in enumerate(self.links):
            player: ArenaPlayer = link.player
            message = next_input(player, now)
            if message is not None:
                player.datagrams_out += 1
                self._send(index, frame(BINARY, message[1]))

    def _send(self, index: int, data: bytes) -> None:
        try:
            self.links[index].sock.sendall(data)
        except (ssl.SSLWantWriteError, BlockingIOError, OSError):
            # A few dozen bytes on a socket with little in flight: not expected.
            self.bots.errors += 1
            codes = self.bots.error_codes
            codes["send"] = codes.get("send", 0) + 1

    def _closed(self, index: int, reason: str) -> None:
        self.closed += 1
        codes = self.bots.error_codes
        codes["closed_" + reason] = codes.get("closed_" + reason, 0) + 1


def run_arena_websocket(settings: dict[str, Any]) -> dict[str, Any]:
    arena = WebSocketArena(settings)
    arena.connect_all()
    players = [link.player for link in arena.links]
    timeline = arena.bots.timeline(settings, players)
    poller, by_fd = poll_sockets([link.sock for link in arena.links])
    clock = time.perf_counter
    timeline.start()
    try:
        while True:
            ready = poller.poll(STEP_S)
            now = clock()
            for fd in ready:
                index = by_fd.get(fd, -1)
                if index < 0:
                    raise Aborted()
                arena.readable(index, now)
            arena.send_inputs(now)
            if timeline.check(now) == DONE:
                break
    finally:
        poller.close()
    result = arena.bots.result(players, timeline, arena.closed, {})
    for link in arena.links:
        link.sock.close()
    return result


class WebTransportArena(WebTransportPlay):
    """The arena's players of `rooms` over WebTransport (the duel's connections,
    timers and session opening; the arena's bots)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.bots = ArenaBots(settings)
        self.seats = int(settings["seats"])

    def create_all(self) -> None:
        raise_fd_limit(len(self.rooms) * self.seats + 64)
        now = time.time()
        for room in self.rooms:
            for seat in range(self.seats):
                player = self.bots.make_player(room, seat)
                token = self.issuer.issue_token(player_id=player.me, match_id=match_id(room),
                                                hosts=(self.udp_host,), now=now)  # fmt: skip
                self.players.append(
                    QuicPlayer(self.server, player, token.request_packet())
                )

    def readable(self, index: int, now: float) -> None:
        link = self.players[index]
        player: ArenaPlayer = link.player
        receive = link.quic.receive_datagram
        server = link.server
        try:
            while True:
                data = link.sock.recv(65536)
                player.datagrams_in += 1
                player.bytes += len(data)
                receive(data, server, now=now)
        except BlockingIOError:
            pass
        self.events(index, now)
        self.transmit(index, now)

    def transmit(self, index: int, now: float) -> None:
        link = self.players[index]
        before = link.datagrams_sent
        super().transmit(index, now)
        link.player.datagrams_out += link.datagrams_sent - before

    def message(self, link: QuicPlayer, data: bytes, now: float) -> None:
        link.welcomed = True  # the host's first message is its welcome
        self.bots.receive(link.player, data, now)

    def send_inputs(self, now: float) -> None:
        """Each input due as a datagram of the session, as the web client sends it."""
        next_input = self.bots.next_input
        for index, link in enumerate(self.players):
            message = next_input(link.player, now)
            if message is not None:
                link.h3.send_datagram(link.session_id, message[1])
                self.transmit(index, now)

    def closed(self, link: QuicPlayer, reason: str) -> None:
        if not link.closed:
            codes = self.bots.error_codes
            codes["closed_" + reason] = codes.get("closed_" + reason, 0) + 1
        super().closed(link, reason)


def run_arena_webtransport(settings: dict[str, Any]) -> dict[str, Any]:
    arena = WebTransportArena(settings)
    arena.create_all()
    players = [link.player for link in arena.players]
    poller, by_fd = poll_sockets([link.sock for link in arena.players])
    clock = time.perf_counter
    try:
        open_sessions(arena, poller, by_fd)
        timeline = arena.bots.timeline(settings, players)
        timeline.start()
        while True:
            now = clock()
            ready = poller.poll(min(STEP_S, arena.due(now)))
            now = clock()
            for fd in ready:
                index = by_fd.get(fd, -1)
                if index < 0:
                    raise Aborted()
                arena.readable(index, now)
            arena.send_inputs(now)
            if timeline.check(now) == DONE:
                break
    finally:
        poller.close()
    closed = sum(1 for link in arena.players if link.closed)
    result = arena.bots.result(players, timeline, closed, {})
    for link in arena.players:
        link.quic.close()
        link.transmit(clock())
        link.sock.close()
    return result
