"""Load side of `play --transport webtransport`: the duel players over WebTransport.

Each player does what a browser with WebTransport does on the server's
`--webtransport` port (docs/protocol.md section 17): a QUIC connection with
HTTP/3 (aioquic's client, the library the server drives) on a UDP socket of
its own, an extended CONNECT to `/game`, then one bidirectional stream on
which it sends its connect token (the 1200-byte `request` packet, sealed with
the bench's shared key for its seat, as for UDP and the WebSocket) and then
its moves, each message a `u32` big-endian length and msgpack. The server
sends the welcome and first state on that stream and, once the player has
sent its first move, its states as datagrams. The players play as
`websocket_load`'s do: `{"seq": n}` as soon as a state shows its n - 1, one
move in flight, each move timed from sending it to the first state showing it.

A state is a datagram, which QUIC does not send again: a player whose move no
state has shown within `RESEND_S` sends `sync` (the room then sends the
current state on the stream), as a client that lost states does; those are
counted in `resends` (a state lost, or later than that behind a saturated
server: each sync is then more work for it, as a resend is over UDP).

The players share one epoll loop, no reactor: a readable socket feeds its
connection, and a heap of the connections' aioquic timers (acknowledgements,
loss detection) fires each one when it is due.
"""

from __future__ import annotations

import contextlib
import heapq
import socket
import struct
import time
from typing import Any

import msgpack
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DatagramReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived

from benchmarks.loadgen import DONE, Latencies, play_timeline
from benchmarks.room_load import RESEND_S, Player
from benchmarks.server_worker import match_id, player_id
from benchmarks.session_load import Aborted, make_issuer, poll_sockets, raise_fd_limit
from benchmarks.worker import emit
from vinom.protocol.address import HostAddress

try:
    from vinom.rooms.client_messages import encode_action
except ImportError:  # a build from before vinom.rooms.client_messages (compare's baseline)
    from vinom.rooms.messages import encode_action

_unpackb = msgpack.unpackb
_LENGTH = struct.Struct(">I")
_SYNC = msgpack.packb({"t": "sync"})
# Seconds every player has to open its session and be welcomed.
CONNECT_LIMIT_S = 30.0


class QuicPlayer:
    """One player's QUIC connection, its HTTP/3 session and stream, and its UDP socket."""

    __slots__ = ("buffer", "closed", "datagrams_sent", "h3", "player", "quic", "server",
                 "session_id", "sock", "stream_id", "timer_at", "token", "welcomed")  # fmt: skip

    def __init__(self, server: tuple[str, int], player: Any, token: bytes) -> None:
        # `player`: the load's player (a duel `Player`, or an arena one).
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                          max_datagram_frame_size=65536,
                                          server_name="localhost")  # fmt: skip
        # The bench server's certificate is a fresh self-signed one (a browser takes
        # it by its hash, serverCertificateHashes).
        configuration.verify_mode = 0
        self.quic = QuicConnection(configuration=configuration)
        self.h3 = H3Connection(self.quic, enable_webtransport=True)
        self.server = server
        self.player = player
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.session_id = -1
        self.stream_id = -1
        self.buffer = b""
        self.timer_at: float | None = None
        self.welcomed = False
        self.closed = ""
        self.datagrams_sent = 0  # UDP datagrams (QUIC packets) sent

    def connect(self, now: float) -> None:
        """The QUIC handshake's first packet and the CONNECT request behind it."""
        self.quic.connect(self.server, now=now)
        self.session_id = self.quic.get_next_available_stream_id()
        self.h3.send_headers(self.session_id, [
            (b":method", b"CONNECT"), (b":protocol", b"webtransport"), (b":scheme", b"https"),
            (b":authority", b"localhost"), (b":path", b"/game"),
        ])  # fmt: skip

    def send(self, message: bytes) -> None:
        """One message on the session's stream (after `open_stream`)."""
        self.quic.send_stream_data(self.stream_id, _LENGTH.pack(len(message)) + message)

    def open_stream(self) -> None:
        """The session was accepted: its stream, with the token first."""
        self.stream_id = self.h3.create_webtransport_stream(self.session_id)
        self.send(self.token)

    def transmit(self, now: float) -> float | None:
        """Send what the connection has to send; its next timer (a new one to schedule)
        or None if it did not change."""
        sock = self.sock
        for data, addr in self.quic.datagrams_to_send(now=now):
            self.datagrams_sent += 1
            # A full socket buffer is a lost packet: QUIC sends it again.
            with contextlib.suppress(BlockingIOError):
                sock.sendto(data, addr)
        at = self.quic.get_timer()
        if at == self.timer_at:
            return None
        self.timer_at = at
        return at

    def frames(self, data: bytes) -> list[bytes]:
        """The whole messages received on the stream so far."""
        buffer = self.buffer + data
        out = []
        at = 0
        end = len(buffer)
        while end - at >= 4:
            (length,) = _LENGTH.unpack_from(buffer, at)
            if end - at < 4 + length:
                break
            out.append(buffer[at + 4 : at + 4 + length])
            at += 4 + length
        self.buffer = buffer[at:]
        return out


class WebTransportPlay:
    """The duel players of `rooms` over WebTransport, with play's move logic."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.server = (str(settings["host"]), int(settings["webtransport_port"]))
        # The token names the room's game host (its UDP address), as the lobby's does.
        self.udp_host = HostAddress(str(settings["host"]), int(settings["port"]))
        self.issuer = make_issuer(bytes.fromhex(settings["key"]))
        self.rooms = range(int(settings["first_room"]), int(settings["last_room"]))
        self.players: list[QuicPlayer] = []
        self.timers: list[tuple[float, int]] = []
        self.latencies = Latencies()
        self.measuring = False
        self.moves = 0
        self.messages = 0
        self.errors = 0
        self.resends = 0
        self.error_codes: dict[str, int] = {}

    def create_all(self) -> None:
        raise_fd_limit(2 * len(self.rooms) + 64)
        now = time.time()
        for room in self.rooms:
            for seat in (0, 1):
                me = player_id(room, seat)
                token = self.issuer.issue_token(player_id=me, match_id=match_id(room),
                                                hosts=(self.udp_host,), now=now)  # fmt: skip
                self.players.append(QuicPlayer(self.server, Player(me), token.request_packet()))

    def start(self, index: int, now: float) -> None:
        self.players[index].connect(now)
        self.transmit(index, now)

    def transmit(self, index: int, now: float) -> None:
        at = self.players[index].transmit(now)
        if at is not None:
            heapq.heappush(self.timers, (at, index))

    def due(self, now: float) -> float:
        """Fire the timers that are due; seconds until the next one (at most 0.05)."""
        timers = self.timers
        players = self.players
        while timers and timers[0][0] <= now:
            at, index = heapq.heappop(timers)
            link = players[index]
            if link.timer_at != at:
                continue  # replaced by a later one
            link.timer_at = None
            link.quic.handle_timer(now=now)
            self.events(index, now)
            self.transmit(index, now)
        return min(0.05, max(0.0, timers[0][0] - now)) if timers else 0.05

    def readable(self, index: int, now: float) -> None:
        link = self.players[index]
        receive = link.quic.receive_datagram
        server = link.server
        try:
            while True:
                data = link.sock.recv(65536)
                receive(data, server, now=now)
        except BlockingIOError:
            pass
        self.events(index, now)
        self.transmit(index, now)

    def events(self, index: int, now: float) -> None:
        link = self.players[index]
        quic = link.quic
        while (event := quic.next_event()) is not None:
            if isinstance(event, StreamDataReceived) and event.stream_id == link.stream_id:
                # The stream this player opened: aioquic's client would read the
                # server's bytes on it as HTTP/3 frames; they are the session's messages.
                for message in link.frames(event.data):
                    self.message(link, message, now)
                continue
            if isinstance(event, ConnectionTerminated):
                self.closed(link, "connection")
                continue
            for h3_event in link.h3.handle_event(event):
                if isinstance(h3_event, DatagramReceived):
                    self.message(link, h3_event.data, now)
                elif (isinstance(h3_event, HeadersReceived)
                      and h3_event.stream_id == link.session_id):  # fmt: skip
                    status = dict(h3_event.headers).get(b":status")
                    if status == b"200":
                        link.open_stream()
                    else:
                        self.closed(link, f"refused_{status!r}")

    def message(self, link: QuicPlayer, data: bytes, now: float) -> None:
        self.messages += 1
        try:
            message = _unpackb(data)
            kind = message["t"]
        except Exception:
            self.errors += 1
            return
        player = link.player
        if kind == "state":
            player.playing = message["p"] == "playing"
            if not player.playing:
                return
            mine = message["s"]["seq"][player.me]
            if mine >= player.sent:
                if player.sent and self.measuring:
                    self.moves += 1
                    self.latencies.record(int((now - player.sent_at) * 1e6))
                player.sent = mine + 1
                player.sent_at = now
                link.send(encode_action({"seq": player.sent}))
        elif kind == "welcome":
            link.welcomed = True
        elif kind == "error":
            self.errors += 1
            code = str(message.get("code"))
            self.error_codes[code] = self.error_codes.get(code, 0) + 1

    def resend_late(self, now: float) -> None:
        """`sync` for each move no state has shown within RESEND_S (lost or late)."""
        for index, link in enumerate(self.players):
            player = link.player
            if player.playing and player.sent and now - player.sent_at > RESEND_S:
                player.sent_at = now  # its latency is lost anyway: measure from here
                self.resends += 1
                link.send(_SYNC)
                self.transmit(index, now)

    def closed(self, link: QuicPlayer, reason: str) -> None:
        if link.closed:
            return
        link.closed = reason
        key = "closed_" + reason
        self.error_codes[key] = self.error_codes.get(key, 0) + 1

    def mark_window(self) -> None:
        for link in self.players:
            link.player.sent_before = link.player.sent


def open_sessions(play: WebTransportPlay, poller: Any, by_fd: dict[int, int]) -> None:
    """Start every player's connection and wait until the host welcomed each one."""
    clock = time.perf_counter
    now = clock()
    for index in range(len(play.players)):
        play.start(index, now)
    deadline = now + CONNECT_LIMIT_S
    welcomed = 0
    while welcomed < len(play.players):
        for fd in poller.poll(play.due(clock())):
            index = by_fd.get(fd, -1)
            if index < 0:
                raise Aborted()
            play.readable(index, clock())
        welcomed = sum(1 for link in play.players if link.welcomed)
        failed = [link.closed for link in play.players if link.closed]
        if failed or clock() > deadline:
            raise RuntimeError(
                f"{len(play.players) - welcomed} of {len(play.players)} WebTransport "
                f"players not welcomed ({', '.join(sorted(set(failed))) or 'timed out'})"
            )
    emit("progress", phase="connect", count=len(play.players), elapsed=0.0)


def run_play_webtransport(settings: dict[str, Any]) -> dict[str, Any]:
    play = WebTransportPlay(settings)
    play.create_all()
    poller, by_fd = poll_sockets([link.sock for link in play.players])
    poll = poller.poll
    readable = play.readable
    clock = time.perf_counter
    try:
        open_sessions(play, poller, by_fd)
        timeline = play_timeline(settings, play)
        timeline.start()
        next_check = clock() + RESEND_S / 2
        while True:
            ready = poll(play.due(clock()))
            now = clock()
            for fd in ready:
                index = by_fd.get(fd, -1)
                if index < 0:
                    raise Aborted()
                readable(index, now)
            if now >= next_check:
                next_check = now + RESEND_S / 2
                play.resend_late(now)
                if timeline.check(now) == DONE:
                    break
    finally:
        poller.close()
    closed = sum(1 for link in play.players if link.closed)
    result = {
        "moves": play.moves,
        "messages": play.messages,
        "errors": play.errors + closed,
        "error_codes": dict(play.error_codes),
        "resends": play.resends,
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "histogram": play.latencies.encoded(),
        "moves_by_host": [sum(p.player.sent - p.player.sent_before for p in play.players)],
        "send_errors": 0,
    }
    for link in play.players:
        link.quic.close()
        link.transmit(clock())
        link.sock.close()
    return result
