"""Load side of `play --transport websocket`: the duel players on `/game` WebSockets.

Each player opens `wss://HOST:PORT/game` on the bench server's game socket
(vinom.hosting.websocket, TLS as `twistd vinom` serves it; `ws://` with `tls` false,
as behind a TLS-terminating proxy), sends its connect token
(the 1200-byte `request` packet, sealed with the bench's shared key for its
seat of the bench's duel rooms, as for UDP) and then plays exactly as
`room_load.run_play`'s players do: `{"seq": n}` as soon as a state shows its
n - 1, one move in flight, each move timed from sending it to the first
state showing it. A WebSocket is reliable, so no move is ever sent again.

The client is lean, so that the server, not the load, is the limit: Python's
`ssl` on non-blocking sockets in one epoll loop and the few lines of RFC 6455
a client needs (the opening handshake, masked binary frames, pongs). Its
masking key is zero, which leaves the payload as it is (the server unmasks
as it would any key).
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
import time
from typing import Any

import msgpack

from benchmarks.loadgen import DONE, Latencies, play_timeline
from benchmarks.room_load import Player
from benchmarks.server_worker import match_id, player_id
from benchmarks.session_load import Aborted, make_issuer, poll_sockets, raise_fd_limit
from benchmarks.worker import emit
from vinom.protocol.address import HostAddress

try:
    from vinom.rooms.client_messages import encode_action
except ImportError:  # a build from before vinom.rooms.client_messages (compare's baseline)
    from vinom.rooms.messages import encode_action

_unpackb = msgpack.unpackb
_ZERO_MASK = b"\0\0\0\0"
BINARY, CLOSE, PING, PONG = 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (masked with the zero key)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + _ZERO_MASK + payload


def read_available(sock: Any) -> tuple[bytes, str | None]:
    """What a non-blocking (TLS) socket holds now, and why it ended if it did: "eof"
    or "error" (then what was read with it is of no use)."""
    data = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(data), "eof"
            data.append(chunk)
    except (ssl.SSLWantReadError, BlockingIOError):
        return b"".join(data), None
    except OSError:
        return b"".join(data), "error"


class SocketPlayer:
    """One player's TLS socket and the bytes of frames not yet whole."""

    __slots__ = ("buffer", "player", "sock")

    def __init__(self, sock: Any, player: Any) -> None:
        # `sock`: a socket or a `WireSocket`; `player`: the load's player (a duel
        # `Player`, or benchmarks.arena_web_load's arena player).
        self.sock = sock
        self.player = player
        self.buffer = b""

    def frames(self) -> list[tuple[int, bytes]]:
        """The whole server frames received so far (unmasked, unfragmented: vinom's)."""
        out = []
        buf = self.buffer
        at = 0
        end = len(buf)
        while end - at >= 2:
            first, second = buf[at], buf[at + 1]
            n = second & 0x7F
            head = 2
            if n == 126:
                if end - at < 4:
                    break
                (n,) = struct.unpack_from("!H", buf, at + 2)
                head = 4
            elif n == 127:
                if end - at < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, at + 2)
                head = 10
            if end - at < head + n:
                break
            out.append((first & 0x0F, buf[at + head : at + head + n]))
            at += head + n
        self.buffer = buf[at:]
        return out


class WireSocket:
    """A client socket, over TLS (`ssl.SSLObject` on memory buffers) or not, that counts
    in `bytes_in` what the server sent it on the wire: the TCP payload, TLS records
    and all. What `open_socket` returns when asked to count; the loads read it as
    they read a socket (`recv` raises BlockingIOError when nothing is ready)."""

    __slots__ = ("bytes_in", "incoming", "outgoing", "raw", "tls")

    def __init__(self, raw: socket.socket, context: ssl.SSLContext | None) -> None:
        self.raw = raw
        self.bytes_in = 0
        self.tls: ssl.SSLObject | None = None
        if context is None:
            return
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise RuntimeError("the server closed the TLS handshake") from None
        self._flush()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.raw.sendall(data)

    def _feed(self) -> bool:
        data = self.raw.recv(65536)
        self.bytes_in += len(data)
        self.incoming.write(data)
        return bool(data)

    def recv(self, size: int) -> bytes:
        """Bytes from the server (b"" at its end); BlockingIOError if none are ready."""
        tls = self.tls
        if tls is None:
            data = self.raw.recv(size)
            self.bytes_in += len(data)
            return data
        while True:
            try:
                return tls.read(size)
            except ssl.SSLWantReadError:
                if not self._feed():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def sendall(self, data: bytes) -> None:
        if self.tls is None:
            self.raw.sendall(data)
        else:
            self.tls.write(data)
            self._flush()

    def setblocking(self, flag: bool) -> None:
        self.raw.setblocking(flag)

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()


def client_context(tls: bool) -> ssl.SSLContext | None:
    """The players' TLS context (None: plain `ws://`). The bench server's certificate
    is a fresh self-signed one: not verified."""
    if not tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def open_socket(
    server: tuple[str, int], context: ssl.SSLContext | None, token: bytes, counting: bool = False
) -> Any:
    """A `/game` WebSocket (over TLS unless `context` is None), opened (blocking) and
    sent `token`; then non-blocking. A `WireSocket` if `counting`, else a socket."""
    raw = socket.create_connection(server, timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock: Any
    if counting:
        sock = WireSocket(raw, context)
    else:
        sock = raw if context is None else context.wrap_socket(raw, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET /game HTTP/1.1\r\nHost: localhost:{server[1]}\r\nUpgrade: websocket\r\n"
         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    )  # fmt: skip
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed the WebSocket handshake")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"WebSocket handshake refused: {answer.splitlines()[0]!r}")
    # Nothing follows the 101 before the token (the server speaks after it).
    sock.sendall(frame(BINARY, token))
    sock.setblocking(False)
    return sock


class WebSocketPlay:
    """The duel players of `rooms` over `/game`, with play's move logic."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.server = (str(settings["host"]), int(settings["websocket_port"]))
        self.udp_host = HostAddress(str(settings["host"]), int(settings["port"]))
        self.issuer = make_issuer(bytes.fromhex(settings["key"]))
        self.rooms = range(int(settings["first_room"]), int(settings["last_room"]))
        self.context = client_context(bool(settings.get("tls", True)))
        self.players: list[SocketPlayer] = []
        self.latencies = Latencies()
        self.measuring = False
        self.moves = 0
        self.messages = 0
        self.errors = 0
        self.resends = 0  # (never: TCP resends for it; a tally every play load has)
        self.closed = 0
        self.error_codes: dict[str, int] = {}

    def connect_all(self) -> None:
        raise_fd_limit(2 * len(self.rooms) + 64)
        for room in self.rooms:
            for seat in (0, 1):
                me = player_id(room, seat)
                token = self.issuer.issue_token(
                    player_id=me, match_id=match_id(room), hosts=(self.udp_host,),
                    now=time.time(),
                )  # fmt: skip
                sock = open_socket(self.server, self.context, token.request_packet())
                self.players.append(SocketPlayer(sock, Player(me)))
            emit("progress", phase="connect", count=len(self.players), elapsed=0.0)

    def readable(self, index: int, now: float) -> None:
        link = self.players[index]
        data, ended = read_available(link.sock)
        if ended is not None:
            self._closed(index, ended)
            return
        link.buffer += data
        player = link.player
        moved = False
        for opcode, payload in link.frames():
            if opcode == BINARY:
                self.messages += 1
                try:
                    message = _unpackb(payload)
                    kind = message["t"]
                except Exception:
                    self.errors += 1
                    continue
                if kind == "state":
                    player.playing = message["p"] == "playing"
                    if not player.playing:
                        continue
                    mine = message["s"]["seq"][player.me]
                    if mine >= player.sent and not moved:
                        if player.sent and self.measuring:
                            self.moves += 1
                            self.latencies.record(int((now - player.sent_at) * 1e6))
                        player.sent = mine + 1
                        player.sent_at = now
                        self.send(index, frame(BINARY, encode_action({"seq": player.sent})))
                        moved = True
                elif kind == "error":
                    self.errors += 1
                    code = str(message.get("code"))
                    self.error_codes[code] = self.error_codes.get(code, 0) + 1
            elif opcode == PING:
                self.send(index, frame(PONG, payload))
            elif opcode == CLOSE:
                self._closed(index, "close")
                return

    def send(self, index: int, data: bytes) -> None:
        try:
            self.players[index].sock.sendall(data)
        except (ssl.SSLWantWriteError, BlockingIOError, OSError):
            # A few dozen bytes on a socket with nothing else in flight: not expected.
            self.errors += 1
            self.error_codes["send"] = self.error_codes.get("send", 0) + 1

    def _closed(self, index: int, reason: str) -> None:
        self.closed += 1
        self.error_codes["closed_" + reason] = self.error_codes.get("closed_" + reason, 0) + 1

    def mark_window(self) -> None:
        for link in self.players:
            link.player.sent_before = link.player.sent


def run_play_websocket(settings: dict[str, Any]) -> dict[str, Any]:
    play = WebSocketPlay(settings)
    play.connect_all()

    timeline = play_timeline(settings, play)
    poller, by_fd = poll_sockets([link.sock for link in play.players])
    poll = poller.poll
    readable = play.readable
    clock = time.perf_counter
    timeline.start()
    next_check = clock() + 0.1
    try:
        while True:
            ready = poll(0.05)
            now = clock()
            for fd in ready:
                index = by_fd.get(fd, -1)
                if index < 0:
                    raise Aborted()
                readable(index, now)
            if now >= next_check:
                next_check = now + 0.1
                if timeline.check(now) == DONE:
                    break
    finally:
        poller.close()
    if play.closed:
        play.errors += play.closed
    result = {
        "moves": play.moves,
        "messages": play.messages,
        "errors": play.errors,
        "error_codes": dict(play.error_codes),
        "resends": 0,
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "histogram": play.latencies.encoded(),
        "moves_by_host": [sum(p.player.sent - p.player.sent_before for p in play.players)],
        "send_errors": 0,
    }
    for link in play.players:
        link.sock.close()
    return result
