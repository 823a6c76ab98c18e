"""The match scenario's load: lean clients, from a lobby connection (TLS or plain) to a full room.

`run_match` drives `clients` clients, at most `in_flight` at once, in one
plain poll loop: no reactor, no Deferreds, no Twisted TLS transport. Each
client does what `benchmarks.lobby_load.match_client` (the vinom client
library) does, in the same conversation with the server:

1. a non-blocking TCP connection to the lobby and a full TLS handshake
   through pyOpenSSL on the socket itself, with the context the client
   library builds (`CertificateOptions` trusting the given certificate):
   the same library, so the same protocol version, ciphers and key-exchange
   groups, and the server's handshake costs what a real player's costs.
   (The standard library's `ssl` would not do: its OpenSSL may lack the
   post-quantum hybrid group pyOpenSSL's offers, and the server's key
   exchange would get cheaper.) The server's certificate is verified
   against the trusted one and its name checked with service_identity, as
   `optionsForClientTLS` does. By default no session is resumed (every
   client is a new player with a full handshake); with `returning`, the
   clients are `in_flight` players who play again: a new client is the
   player whose last client finished longest ago (player p always on lobby
   p % lobbies), and offers the TLS session of that player's last
   connection to the same lobby, as `vinom.client.lobby.connect_lobby` does
   (`resumed` counts the handshakes the server resumed);
   With `tls` false the lobby listens on plain TCP (as behind a
   TLS-terminating load balancer, `match --lobby-tls off`): no handshake,
   the frames go over the socket as they are;
2. `hello` (with `auth`, the credentials benchmarks.auth makes for the
   player, when the server signs players in), then, after `welcome`,
   `queue` for the game, then `queued` and
   `match_found` (newline-delimited JSON, docs/lobby.md); then TLS
   `close_notify` and close, as `LobbyClient.close` does;
3. the vinom UDP handshake with the game host of the token, through the
   sans-I/O `ClientConnection` (the code of every game client) over a
   connected non-blocking UDP socket, until the first state or phase of the
   full room (`countdown` or `playing`): that moment, from the start of
   step 1, is the client's latency;
4. `leave` on the reliable channel (its own datagram), then the
   redundant `disconnect` packets, so the room ends and its port returns to
   the pool.

With several lobbies (`more_ports`, lobbies on one Redis sharing one
certificate) client i connects to lobby i % N.

Any failure (refused or dropped connection, TLS or certificate error, an
`error` frame, a failed UDP handshake, a match that ends before it is full,
no full room within `timeout` seconds) counts as an error, by kind.

The Twisted path (`match_client`) stays for comparison (`--client twisted`).
Without zope.interface's per-connection `directlyProvides`, memory BIOs,
Deferred chains and the reactor's UDP ports, this one leaves the load
process little beyond the client's own TLS handshake (about half its CPU)
and protocol work, so that the server, not the load, is what the scenario
measures.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import os
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname, verify_ip_address
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.ssl import Certificate, CertificateOptions, platformTrust

from benchmarks.loadgen import Latencies
from benchmarks.lobby_load import FULL_ROOM_PHASES
from vinom.client.game import ENDED_PHASES
from vinom.client.lobby import decode_frame
from vinom.protocol.client import ClientConnection
from vinom.protocol.events import (
    RELIABLE,
    ConnectFailed,
    MessageReceived,
    SessionClosed,
)
from vinom.protocol.tokens import PublicToken

try:
    from vinom.rooms.client_messages import encode_leave
except ImportError:  # a build from before vinom.rooms.client_messages (compare's baseline)
    from vinom.rooms.messages import encode_leave
try:
    from vinom.rooms.message_reading import decode_server_message
except ImportError:  # a build from before vinom.rooms.message_reading (compare's baseline)
    from vinom.rooms.messages import decode_server_message

try:
    # The game protocol the installed vinom's clients speak, said in `hello`.
    from vinom.client.lobby import PROTOCOL
except ImportError:  # a build from before the key (compare's baseline): it says none
    PROTOCOL = None  # type: ignore[assignment]

INF = float("inf")
MAX_DATAGRAM = 2048
# A lobby frame is small, but match_found carries a token (as LobbyClientProtocol).
MAX_LINE = 64 * 1024

# Client phases.
CONNECTING = 0
TLS = 1
LOBBY = 2
GAME = 3
DONE = 4
PHASE_NAMES = ("connect", "tls", "lobby", "game", "done")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class Aborted(Exception):
    """The parent closed our standard input: stop at once."""


class ClientFailed(Exception):
    """One client failed; `kind` is what the error counts go by."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def tls_context(trust: str | None) -> SSL.Context:
    """The OpenSSL context `vinom.client.lobby.client_tls_options` would use.

    `optionsForClientTLS` builds the same `CertificateOptions` (trusting
    `trust`, or the platform's CAs); its per-connection peer verification is
    set here once on the context (`VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT`)
    and the host name is checked after the handshake (`check_peer`).
    """
    if trust is None:
        options = CertificateOptions(trustRoot=platformTrust())
    else:
        with open(trust, "rb") as f:
            options = CertificateOptions(trustRoot=Certificate.loadPEM(f.read()))
    context = options.getContext()
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    return context


def _session_reused(tls: SSL.Connection) -> bool:
    # pyOpenSSL has no session_reused(); its OpenSSL binding has the call. Only
    # counted for the report, so a binding without it counts none.
    from OpenSSL._util import lib

    reused = getattr(lib, "SSL_session_reused", None)
    return bool(reused(tls._ssl)) if reused is not None else False


def default_hostname(host: str) -> str:
    """The name to check in the lobby's certificate (the dev certificate names localhost)."""
    return "localhost" if host in ("127.0.0.1", "::1") else host


class MatchClient:
    """One client's progress: its sockets, its TLS and UDP connections, its buffers."""

    __slots__ = (
        "conn", "deadline", "in_buffer", "index", "lobby", "mask", "match_id", "name",
        "out_buffer", "phase", "player", "server", "sock", "started", "tls", "udp", "wake",
    )

    def __init__(
        self, index: int, name: str, started: float, deadline: float, lobby: int = 0
    ) -> None:
        self.index = index
        self.player = index
        self.name = name
        self.lobby = lobby
        self.match_id = ""
        self.started = started
        self.deadline = deadline
        self.phase = CONNECTING
        self.sock: socket.socket | None = None
        self.tls: SSL.Connection | None = None
        self.mask = 0
        self.in_buffer = b""
        self.out_buffer = b""
        self.udp: socket.socket | None = None
        self.conn: ClientConnection | None = None
        self.server: tuple[str, int] = ("", 0)
        self.wake = INF


class MatchLoad:
    """Runs match clients in one selector loop (see the module docstring).

    With `more_lobbies` (more addresses of lobbies sharing one Redis and one
    certificate) client i connects to lobby i % N, the first being
    (`host`, `port`): `completed_by_lobby` counts the clients each lobby
    took to a full room, `matches_across_lobbies` the matches whose players
    came through more than one.
    """

    def __init__(
        self,
        host: str,
        port: int,
        trust: str | None,
        *,
        more_lobbies: Sequence[tuple[str, int]] = (),
        game: str = "duel",
        hostname: str | None = None,
        timeout: float = 60.0,
        watch_stdin: bool = False,
        returning: int = 0,
        tls: bool = True,
        auth: Callable[[int], dict[str, Any] | None] | None = None,
    ) -> None:
        self.lobbies = [(host, port), *more_lobbies]
        self.hostname = hostname or default_hostname(host)
        self.hostname_is_ip = isIPAddress(self.hostname) or isIPv6Address(self.hostname)
        self.server_name = None if self.hostname_is_ip else self.hostname.encode("idna")
        # None: the lobby listens on plain TCP (as behind a TLS-terminating proxy).
        self.context = tls_context(trust) if tls else None
        self.game = game
        self.timeout = timeout
        self.selector = selectors.DefaultSelector()
        self.stdin: int | None = None
        if watch_stdin:
            import sys

            self.stdin = sys.stdin.fileno()
            self.selector.register(self.stdin, _READ, None)
        self.active: dict[int, MatchClient] = {}
        self.heap: list[tuple[float, int]] = []
        self.latencies = Latencies()
        self.errors: dict[str, int] = {}
        self.completed = 0
        self.completed_by_lobby = [0] * len(self.lobbies)
        # Match id -> the lobby of each of its players that reached the full room.
        self.match_lobbies: dict[str, list[int]] = {}
        self.send_errors = 0
        # (protocol version, cipher, key-exchange group) of the first handshake.
        self.negotiated: tuple[str, str | None, str | None] | None = None
        # Players who play again (see the module docstring): 0 for none; the TLS
        # session of each (player, lobby)'s last connection.
        self.returning = returning
        self.sessions: dict[tuple[int, int], SSL.Session] = {}
        # The players not playing now, the one who finished longest ago first: a
        # player plays again only once their last client has finished.
        self.free_players: deque[int] = deque(range(returning))
        self.resumed = 0
        # Player i's `auth` for its `hello` (benchmarks.auth); None: a guest.
        self.auth = auth

    # -- one client -----------------------------------------------------------

    def start(self, index: int, name: str) -> None:
        """Start client `index`: its TCP connection, then TLS (the clock starts now)."""
        now = time.perf_counter()
        player = self.free_players.popleft() if self.returning else index
        lobby = player % len(self.lobbies)
        address = self.lobbies[lobby]
        client = MatchClient(index, name, now, now + self.timeout, lobby)
        client.player = player
        self.active[index] = client
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        sock.setblocking(False)
        client.sock = sock
        try:
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise ClientFailed(f"connect_{errno.errorcode.get(code, code)}")
            if self.context is not None:
                tls = SSL.Connection(self.context, sock)
                if self.server_name is not None:
                    tls.set_tlsext_host_name(self.server_name)
                tls.set_connect_state()
                session = self.sessions.get((client.player, lobby)) if self.returning else None
                if session is not None:
                    tls.set_session(session)
                client.tls = tls
        except ClientFailed as e:
            self.fail(client, e.kind)
            return
        # Writable once connected; the handshake's first flight goes out then.
        self._want(client, sock, _WRITE)

    def fail(self, client: MatchClient, kind: str) -> None:
        if client.phase == DONE:
            return
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self._finish(client)

    def _finish(self, client: MatchClient) -> None:
        client.phase = DONE
        self.active.pop(client.index, None)
        self._close_lobby(client, notify=False)
        if self.returning:
            self.free_players.append(client.player)
        if client.udp is not None:
            self._forget(client.udp)
            client.udp.close()
            client.udp = None
        client.conn = None
        client.wake = INF

    def _want(self, client: MatchClient, sock: socket.socket, mask: int) -> None:
        if client.mask == mask:
            return
        if client.mask:
            self.selector.modify(sock, mask, client)
        else:
            self.selector.register(sock, mask, client)
        client.mask = mask

    def _forget(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def _close_lobby(self, client: MatchClient, notify: bool) -> None:
        sock, tls = client.sock, client.tls
        client.sock = client.tls = None
        if sock is None:
            return
        if client.mask:
            self._forget(sock)
            client.mask = 0
        if self.returning and notify and tls is not None:
            # The server's tickets came before its first frame: this session resumes.
            session = tls.get_session()
            if session is not None:
                self.sessions[(client.player, client.lobby)] = session
        if notify and tls is not None:
            # close_notify, as LobbyClient.close (loseConnection) sends it.
            with contextlib.suppress(SSL.Error):
                tls.shutdown()
        sock.close()

    # -- lobby ----------------------------------------------------------------

    def _lobby_event(self, client: MatchClient) -> None:
        tls = client.tls
        assert client.sock is not None
        try:
            if client.phase == CONNECTING:
                code = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise ClientFailed(f"connect_{errno.errorcode.get(code, code)}")
                if tls is None:
                    # Plain TCP: the conversation starts once connected.
                    client.phase = LOBBY
                    self._send_hello(client)
                    self._read_lines(client)
                    return
                client.phase = TLS
            if client.phase == TLS:
                assert tls is not None
                try:
                    tls.do_handshake()
                except SSL.WantReadError:
                    self._want(client, client.sock, _READ)
                    return
                except SSL.WantWriteError:
                    self._want(client, client.sock, _WRITE)
                    return
                self._check_peer(tls)
                if self.returning and _session_reused(tls):
                    self.resumed += 1
                if self.negotiated is None:
                    self.negotiated = (
                        tls.get_protocol_version_name(), tls.get_cipher_name(),
                        tls.get_group_name(),
                    )
                client.phase = LOBBY
                self._send_hello(client)
            elif client.out_buffer:
                self._send_buffered(client)
            if client.phase == LOBBY:
                self._read_lines(client)
        except ClientFailed as e:
            self.fail(client, e.kind)
        except SSL.Error as e:
            self.fail(client, f"tls_{type(e).__name__}")
        except OSError as e:
            self.fail(client, f"lobby_{type(e).__name__}")

    def _send_hello(self, client: MatchClient) -> None:
        # The protocol the client speaks: a lobby of another refuses it a token.
        hello: dict[str, Any] = {"type": "hello", "name": client.name, "id": 1}
        if PROTOCOL is not None:
            hello["protocol"] = PROTOCOL
        auth = self.auth(client.player) if self.auth is not None else None
        if auth is not None:
            hello["auth"] = auth
        self._send(client, hello)

    def _check_peer(self, tls: SSL.Connection) -> None:
        try:
            if self.hostname_is_ip:
                verify_ip_address(tls, self.hostname)
            else:
                verify_hostname(tls, self.hostname)
        except VerificationError:
            raise ClientFailed("tls_hostname_mismatch") from None

    def _send(self, client: MatchClient, frame: dict[str, Any]) -> None:
        client.out_buffer += json.dumps(frame).encode() + b"\n"
        self._send_buffered(client)

    def _send_buffered(self, client: MatchClient) -> None:
        sock = client.sock
        assert sock is not None
        writer = client.tls or sock
        try:
            while client.out_buffer:
                sent = writer.send(client.out_buffer)
                client.out_buffer = client.out_buffer[sent:]
        except (SSL.WantWriteError, BlockingIOError):
            self._want(client, sock, _READ | _WRITE)
            return
        except SSL.WantReadError:
            pass
        self._want(client, sock, _READ)

    def _read_lines(self, client: MatchClient) -> None:
        tls, sock = client.tls, client.sock
        assert sock is not None
        reader = tls or sock
        closed = False
        while True:
            try:
                data = reader.recv(65536)
            except (SSL.WantReadError, BlockingIOError):
                if not client.out_buffer:
                    self._want(client, sock, _READ)  # after a WantWrite below
                break
            except SSL.WantWriteError:
                # TLS must write before it can read on (a key update, say): retry
                # the read once the socket takes data.
                self._want(client, sock, _READ | _WRITE)
                break
            except (SSL.ZeroReturnError, SSL.SysCallError):
                closed = True
                break
            if not data:
                closed = True
                break
            client.in_buffer += data
        buffer = client.in_buffer
        while client.phase == LOBBY:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE:
                    raise ClientFailed("lobby_line_too_long")
                break
            line, buffer = buffer[:end], buffer[end + 1:]
            client.in_buffer = buffer
            self._frame(client, line)
        if client.phase == LOBBY and closed:
            raise ClientFailed("lobby_closed")

    def _frame(self, client: MatchClient, line: bytes) -> None:
        frame = decode_frame(line)
        if frame is None:
            return
        kind = frame.get("type")
        if kind == "error":
            raise ClientFailed(f"lobby_{frame.get('code')}")
        if kind == "welcome" and frame.get("id") == 1:
            self._send(client, {"type": "queue", "game": self.game, "id": 2})
        elif kind == "match_found":
            self._close_lobby(client, notify=True)
            self._start_game(client, frame)

    # -- game -----------------------------------------------------------------

    def _start_game(self, client: MatchClient, frame: dict[str, Any]) -> None:
        try:
            token = PublicToken.from_json(frame["token"])
        except (KeyError, TypeError, ValueError):
            raise ClientFailed("lobby_bad_match_found") from None
        host = token.hosts[0]
        if not (isIPAddress(host.host) or isIPv6Address(host.host)):
            raise ClientFailed("game_host_not_an_address")
        client.match_id = str(frame.get("game_id", ""))
        client.phase = GAME
        server = (host.host, host.port)
        udp = socket.socket(socket.AF_INET6 if ":" in host.host else socket.AF_INET,
                            socket.SOCK_DGRAM)
        udp.setblocking(False)
        udp.connect(server)
        client.udp = udp
        client.server = server
        now = time.perf_counter()
        client.conn = ClientConnection(token, now, addresses=[server])
        self.selector.register(udp, _READ, client)
        client.conn.handle_timer(now)
        self._flush(client, now)

    def _flush(self, client: MatchClient, now: float) -> None:
        conn, udp = client.conn, client.udp
        assert conn is not None and udp is not None
        for datagram, _ in conn.datagrams_to_send(now):
            try:
                udp.send(datagram)
            except OSError as e:
                if e.errno == errno.ECONNREFUSED and not conn.is_connected:
                    # Our redundant disconnects after leaving, refused once the
                    # room ended and its port closed: expected, not an error.
                    continue
                # As a lost datagram: the protocol resends, or times out (an error).
                self.send_errors += 1
        when = conn.get_timer()
        if when is not None and when < client.wake:
            client.wake = when
            heapq.heappush(self.heap, (when, client.index))

    def _game_event(self, client: MatchClient, now: float) -> None:
        udp, conn = client.udp, client.conn
        assert udp is not None and conn is not None
        try:
            data = udp.recv(MAX_DATAGRAM)
        except OSError:
            return  # EAGAIN, or ICMP port unreachable (the handshake resends)
        conn.receive_datagram(data, client.server, now)
        self._dispatch(client, now)

    def _dispatch(self, client: MatchClient, now: float) -> None:
        conn = client.conn
        assert conn is not None
        full = False
        failure = None
        while True:
            event = conn.next_event()
            if event is None:
                break
            if type(event) is MessageReceived:
                message = decode_server_message(event.data)
                if message is None or full or failure:
                    continue
                phase = message.get("p")
                if message["t"] in ("state", "phase"):
                    if phase in FULL_ROOM_PHASES:
                        full = True
                    elif phase in ENDED_PHASES:
                        failure = "game_ended_before_full"
            elif isinstance(event, ConnectFailed):
                failure = failure or f"game_connect_{event.reason}"
            elif isinstance(event, SessionClosed):
                failure = failure or f"game_closed_{event.reason}"
        if full:
            self.latencies.record(int((now - client.started) * 1e6))
            self.completed += 1
            self.completed_by_lobby[client.lobby] += 1
            self.match_lobbies.setdefault(client.match_id, []).append(client.lobby)
            # Out of the event loop (a connection closed while its events are
            # read would drop the queued leave): leave, then the disconnects.
            conn.send_message(RELIABLE, encode_leave())
            self._flush(client, now)
            conn.disconnect()
            self._flush(client, now)
            self._finish(client)
        elif failure is not None:
            self._flush(client, now)
            self.fail(client, failure)
        else:
            self._flush(client, now)

    def _timers(self, now: float) -> None:
        heap = self.heap
        active = self.active
        while heap and heap[0][0] <= now:
            when, index = heapq.heappop(heap)
            client = active.get(index)
            if client is None or client.wake != when or client.conn is None:
                continue
            client.wake = INF
            client.conn.handle_timer(now)
            self._dispatch(client, now)

    def _expire(self, now: float) -> None:
        for client in [c for c in self.active.values() if c.deadline <= now]:
            self.fail(client, f"timeout_{PHASE_NAMES[client.phase]}")

    # -- the loop -------------------------------------------------------------

    def run(
        self,
        clients: int,
        in_flight: int,
        name: Callable[[int], str] = lambda i: f"m{i}",
        progress: Callable[[int], None] | None = None,
        progress_every: float = 0.5,
    ) -> None:
        """Run `clients` clients, `in_flight` at a time, until each completed or failed."""
        started = 0
        select = self.selector.select
        next_check = time.perf_counter() + progress_every
        while True:
            while started < clients and len(self.active) < in_flight:
                self.start(started, name(started))
                started += 1
            if started >= clients and not self.active:
                return
            now = time.perf_counter()
            wait = next_check - now
            if self.heap:
                wait = min(wait, self.heap[0][0] - now)
            for key, _ in select(max(0.0, wait)):
                client = key.data
                if client is None:
                    if not os.read(key.fd, 4096):
                        raise Aborted()
                    continue
                if callable(client):  # a pipe of the native load (benchmarks.native_load)
                    client()
                    continue
                if client.phase == DONE:
                    continue
                if client.phase == GAME:
                    if key.fileobj is client.udp:
                        self._game_event(client, time.perf_counter())
                else:
                    self._lobby_event(client)
            now = time.perf_counter()
            self._timers(now)
            if now >= next_check:
                next_check = now + progress_every
                self._expire(now)
                if progress is not None:
                    progress(self.completed + sum(self.errors.values()))

    @property
    def matches_across_lobbies(self) -> int:
        """Matches whose players (those that reached the full room) used different lobbies."""
        return sum(1 for lobbies in self.match_lobbies.values() if len(set(lobbies)) > 1)

    def close(self) -> None:
        for client in list(self.active.values()):
            self._finish(client)
        self.selector.close()


def run_match(settings: dict[str, Any]) -> dict[str, Any]:
    """The load of the match scenario (settings as `benchmarks.match` passes them)."""
    from benchmarks.auth import credentials
    from benchmarks.session_load import raise_fd_limit
    from benchmarks.worker import cpu_seconds, emit

    clients = int(settings["clients"])
    in_flight = int(settings["in_flight"])
    # A TCP and a UDP socket per client in flight, and a margin.
    raise_fd_limit(2 * in_flight + 64)
    native: dict[str, Any] = {}
    if settings.get("native"):
        from benchmarks.native_load import NativeMatchLoad

        native["program"] = settings["native"]
    load = (NativeMatchLoad if native else MatchLoad)(
        settings["host"], int(settings["port"]), settings.get("trust"),
        more_lobbies=[(settings["host"], int(port)) for port in settings.get("more_ports", ())],
        game=settings.get("game", "duel"),
        timeout=float(settings.get("client_timeout", 60.0)),
        watch_stdin=True,
        returning=in_flight if settings.get("returning") else 0,
        tls=bool(settings.get("tls", True)),
        # Every player's credentials made before the window (benchmarks.auth).
        auth=credentials(settings.get("auth"), in_flight if settings.get("returning") else clients),
        **native,
    )
    emit("measuring")
    started = time.perf_counter()
    cpu_start = cpu_seconds()
    try:
        load.run(
            clients, in_flight,
            progress=lambda done: emit(
                "progress", count=done, elapsed=time.perf_counter() - started
            ),
        )
        if native:
            native = load.finish_native()  # type: ignore[attr-defined]
    finally:
        load.close()
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_start
    emit("window_end", elapsed=wall)
    errors = sum(load.errors.values())
    return {
        "clients": clients,
        "tls": " ".join(str(part) for part in load.negotiated or ()),
        "completed": load.completed,
        "completed_by_lobby": load.completed_by_lobby,
        "matches_across_lobbies": load.matches_across_lobbies,
        "errors": errors,
        "error_kinds": load.errors,
        "window_s": wall,
        "load_cpu_s": cpu,
        "histogram": load.latencies.encoded(),
        "send_errors": load.send_errors,
        "resumed": load.resumed,
        # `match --client native`: vinom_load's summary (its own CPU time).
        **({"native": native} if native else {}),
    }
