"""Load side of the session scenarios: many lean vinom clients in one plain-socket loop.

A `Driver` runs vinom's sans-I/O `ClientConnection` (the very code game
clients use) for each of its clients over a connected, non-blocking UDP
socket of its own, in one epoll loop with one timer heap: no reactor,
no Deferreds, no per-client objects beyond the connection and a slot. This
keeps the load generator's cost per message close to the protocol's own
cost, so that the server, not the load, is what a scenario measures.
Scenarios subclass it and react in `on_connected`, `on_message` and
`on_closed`.

Tokens are sealed here with the key the bench shares with the server
process, as the lobby would seal them; the server admits their players.
"""

from __future__ import annotations

import contextlib
import heapq
import resource
import select
import selectors
import socket
import struct
import sys
import time
from collections import Counter
from typing import Any

from benchmarks.loadgen import DONE, Latencies, Timeline
from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import ClientConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import ConnectFailed, MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.tokens import PublicToken, TokenIssuer

STAMP = struct.Struct("<q")
INF = float("inf")
MAX_DATAGRAM = 2048


class Aborted(Exception):
    """The parent closed our standard input: stop at once."""


def raise_fd_limit(wanted: int) -> None:
    """Allow `wanted` open files if the hard limit permits (one socket per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def make_issuer(key: bytes, session_timeout: float = 5.0) -> TokenIssuer:
    """Seals tokens the way the lobby does, with the bench's shared key."""
    return TokenIssuer(
        IssuerConfig(
            protocol=ProtocolConfig(token_key=key),
            token_lifetime=3600.0,
            session_timeout=session_timeout,
        )
    )


class Poller:
    """Readable file descriptors: `select.epoll` where available, else `selectors`."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()

    def register(self, fd: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            assert self._selector is not None
            self._selector.register(fd, selectors.EVENT_READ)

    def unregister(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._selector is not None
                self._selector.unregister(fd)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        else:
            assert self._selector is not None
            self._selector.close()

    def poll(self, timeout: float) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _ in self._epoll.poll(timeout, 1024)]
        assert self._selector is not None
        return [key.fd for key, _ in self._selector.select(timeout)]


class Client:
    """One client: its socket, its connection, and a slot for the scenario's state."""

    __slots__ = ("conn", "data", "index", "prefix", "server", "sock", "started", "wake")

    def __init__(
        self, index: int, sock: socket.socket, conn: ClientConnection, server: tuple[str, int]
    ) -> None:
        self.index = index
        self.sock = sock
        self.conn = conn
        self.server = server
        self.wake = INF
        self.started = 0.0
        self.data: Any = None
        # A route token to put in front of every datagram (`play --relay`), or nothing.
        self.prefix = b""


class Driver:
    """Runs many `ClientConnection`s, one socket each, in one poll loop."""

    def __init__(self, server: tuple[str, int], config: ClientConfig | None = None) -> None:
        self.server = server
        self.config = config or ClientConfig()
        # Readiness by file descriptor: epoll directly where there is one (a
        # selectors.Selector costs a wrapper object and two lookups per event).
        self._poller = Poller()
        self._stdin = sys.stdin.fileno()
        self._poller.register(self._stdin)
        self._by_fd: dict[int, Client] = {}
        self.clients: dict[int, Client] = {}
        self._heap: list[tuple[float, int]] = []
        self._next_index = 0
        self.send_errors = 0
        self.events: Counter[str] = Counter()

    # -- clients ------------------------------------------------------------

    def add(
        self, token: PublicToken, now: float, server: tuple[str, int] | None = None,
        prefix: bytes = b"",
    ) -> Client:
        """Start a client presenting `token` to `server` (default: the driver's); its
        handshake begins at once. `prefix` goes in front of every datagram it sends
        (a route token, when `server` is a UDP relay)."""
        server = self.server if server is None else server
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(server)
        conn = ClientConnection(token, now, config=self.config, addresses=[server])
        index = self._next_index
        self._next_index += 1
        client = Client(index, sock, conn, server)
        client.prefix = prefix
        client.started = now
        self.clients[index] = client
        fd = sock.fileno()
        self._by_fd[fd] = client
        self._poller.register(fd)
        conn.handle_timer(now)
        self.flush(client, now)
        return client

    def remove(self, client: Client) -> None:
        """Forget a client and close its socket (send anything it still has first)."""
        self.flush(client, time.perf_counter())
        self.clients.pop(client.index, None)
        fd = client.sock.fileno()
        if self._by_fd.get(fd) is client:
            del self._by_fd[fd]
            self._poller.unregister(fd)
        client.sock.close()
        client.wake = INF

    def flush(self, client: Client, now: float) -> None:
        """Transmit what the connection has queued and re-arm its timer."""
        conn = client.conn
        out = conn.datagrams_to_send(now)
        if out:
            send = client.sock.send
            prefix = client.prefix
            for datagram, _ in out:
                try:
                    send(prefix + datagram if prefix else datagram)
                except OSError:
                    self.send_errors += 1
        when = conn.get_timer()
        if when is not None and when < client.wake:
            client.wake = when
            heapq.heappush(self._heap, (when, client.index))

    # -- scenario hooks -----------------------------------------------------

    def on_connected(self, client: Client, now: float) -> None:
        """The handshake completed."""

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        """A whole message arrived."""

    def on_closed(self, client: Client, reason: str, now: float) -> None:
        """The session ended, or the handshake failed (`reason` from the event)."""

    # -- the loop -----------------------------------------------------------

    def _readable(self, client: Client, now: float) -> None:
        # One datagram per wake-up: epoll is level-triggered and reports the
        # socket again if more is queued, and a client rarely has more than one
        # datagram waiting; reading until EAGAIN would cost a second system call
        # and an exception for almost every datagram.
        try:
            data = client.sock.recv(MAX_DATAGRAM)
        except OSError:
            # EAGAIN (a spurious wake-up) or ICMP port unreachable.
            return
        client.conn.receive_datagram(data, client.server, now)
        self._dispatch(client, now)
        self.flush(client, now)

    def _dispatch(self, client: Client, now: float) -> None:
        conn = client.conn
        next_event = conn.next_event
        while True:
            event = next_event()
            if event is None:
                return
            if type(event) is MessageReceived:
                self.on_message(client, event.channel, event.data, now)
            elif isinstance(event, SessionConnected):
                self.events["connected"] += 1
                self.on_connected(client, now)
            elif isinstance(event, SessionClosed):
                self.events["closed_" + event.reason] += 1
                self.on_closed(client, event.reason, now)
            elif isinstance(event, ConnectFailed):
                self.events["failed_" + event.reason] += 1
                self.on_closed(client, event.reason, now)

    def _timers(self, now: float) -> None:
        heap = self._heap
        clients = self.clients
        while heap and heap[0][0] <= now:
            when, index = heapq.heappop(heap)
            client = clients.get(index)
            if client is None or client.wake != when:
                continue
            client.wake = INF
            client.conn.handle_timer(now)
            self._dispatch(client, now)
            if client.index in clients:
                self.flush(client, now)

    def step(self, max_wait: float = 0.05) -> float:
        """Wait for datagrams or the next timer (at most `max_wait` s), handle them;
        returns `now` (perf_counter seconds)."""
        heap = self._heap
        wait = max_wait
        if heap:
            wait = min(max_wait, max(0.0, heap[0][0] - time.perf_counter()))
        ready = self._poller.poll(wait)
        now = time.perf_counter()
        by_fd = self._by_fd
        for fd in ready:
            client = by_fd.get(fd)  # None: removed by an earlier handler
            if client is not None:
                self._readable(client, now)
            elif fd == self._stdin:
                raise Aborted()
        self._timers(now)
        return now

    def run_until(self, done: Any, limit: float) -> float:
        """Step until `done()` is true; RuntimeError after `limit` seconds."""
        deadline = time.perf_counter() + limit
        while True:
            now = self.step()
            if done():
                return now
            if now > deadline:
                raise RuntimeError(f"gave up after {limit:g} s ({dict(self.events)})")

    def close(self) -> None:
        for client in list(self.clients.values()):
            self.remove(client)


def host_of(options: Any) -> tuple[str, int]:
    return (options["host"], int(options["port"]))


# -- udp-echo (vinom half) ----------------------------------------------------


class EchoDriver(Driver):
    """Connects the echo clients; `run_echo` then carries their sessions on lean."""

    def __init__(self, server: tuple[str, int]) -> None:
        from benchmarks.lean_client import handover_config

        super().__init__(server, handover_config())
        self.connected = 0
        self.failed = 0

    def on_connected(self, client: Client, now: float) -> None:
        self.connected += 1

    def on_closed(self, client: Client, reason: str, now: float) -> None:
        self.failed += 1


def run_echo(options: Any) -> dict[str, Any]:
    """The vinom half of udp-echo (options as in `benchmarks.echo_load.Options`).

    The handshakes go through `ClientConnection`; the echoes through
    `LeanSession` (see benchmarks.lean_client: the same datagrams for less
    CPU, so that the host, not this process, is what the scenario measures).
    Like the bare half: one message per datagram, every datagram answered on
    its own, and a socket read at most as many times per wake-up as it has
    messages in flight (see echo_load.run_bare).
    """
    from benchmarks.echo_load import EchoWindow, split_window
    from benchmarks.lean_client import LeanSession

    server = host_of(options)
    clients = int(options["clients"])
    shares = split_window(int(options["window"]), clients)
    if int(options["channel"]) != 0:
        raise ValueError("the lean echo client carries channel 0 only")
    driver = EchoDriver(server)
    issuer = make_issuer(bytes.fromhex(options["key"]))
    hosts = (HostAddress(*server),)
    now = time.perf_counter()
    members = []
    for i in range(clients):
        token = issuer.issue_token(
            player_id=f"echo-{i:04d}", match_id="bench-echo", hosts=hosts, now=time.time()
        )
        members.append(driver.add(token, now))
    driver.run_until(lambda: driver.connected + driver.failed >= clients, 15.0)
    if driver.failed:
        raise RuntimeError(f"{driver.failed} of {clients} echo clients failed to connect")
    sessions = [LeanSession(client.conn) for client in members]
    sockets = [client.sock for client in members]
    padding = bytes(max(0, int(options["size"]) - STAMP.size))
    pack = STAMP.pack
    unpack_from = STAMP.unpack_from
    clock_ns = time.perf_counter_ns
    send_errors = [0]

    def send(sock: socket.socket, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            try:
                sock.send(datagram)
            except OSError:
                send_errors[0] += 1

    def send_share(index: int) -> None:
        for _ in range(shares[index]):
            send(sockets[index], sessions[index].seal([pack(clock_ns()) + padding]))

    window = EchoWindow(options, clients, send_share)
    poll, by_fd = window.start(sockets)
    record = window.latencies.record
    count = 0
    measuring = window.measuring
    try:
        while not window.done:
            for fd in poll(0.05):
                index = by_fd.get(fd, -1)
                if index < 0:
                    raise Aborted()
                sock = sockets[index]
                session = sessions[index]
                receive = session.receive
                seal = session.seal
                for _ in range(shares[index]):  # as in echo_load.run_bare
                    try:
                        data = sock.recv(MAX_DATAGRAM)
                    except BlockingIOError:
                        break
                    except OSError:
                        continue
                    messages = receive(data)
                    if not messages:
                        if session.ack_owed:
                            send(sock, seal(messages))
                        continue
                    now_ns = clock_ns()
                    replies = []
                    for message in messages:
                        if measuring:
                            record((now_ns - unpack_from(message)[0]) // 1000)
                            count += 1
                        replies.append(pack(now_ns) + padding)
                    # The replies to one datagram share one, as ClientConnection's would.
                    send(sock, seal(replies))
                window.heard(index)
            count, measuring = window.tick(time.perf_counter(), count)
    finally:
        window.close()
    closed = sum(1 for session in sessions if session.closed)
    unexpected = sum(session.unexpected for session in sessions)
    if closed or unexpected:
        raise RuntimeError(f"{closed} echo sessions closed, {unexpected} unexpected bodies")
    for client in members:
        client.sock.close()
    return {**window.result(), "send_errors": send_errors[0]}


def poll_sockets(sockets: list[socket.socket]) -> tuple[Poller, dict[int, int]]:
    """A poller over `sockets` and standard input (readable: the parent is gone), and
    each socket's index by file descriptor (standard input has none)."""
    poller = Poller()
    by_fd = {sock.fileno(): index for index, sock in enumerate(sockets)}
    for fd in by_fd:
        poller.register(fd)
    poller.register(sys.stdin.fileno())
    return poller, by_fd


# -- handshake ----------------------------------------------------------------


class HandshakeDriver(Driver):
    """Keeps `slots` handshakes in progress: each one that completes disconnects and
    makes room for a fresh client with a fresh token."""

    def __init__(self, server: tuple[str, int], issuer: TokenIssuer, slots: int) -> None:
        # One disconnect packet instead of ten: on loopback nothing is lost, and
        # the server's cost of dropping nine redundant copies is not handshake work.
        super().__init__(server, ClientConfig(disconnect_redundancy=1))
        self.issuer = issuer
        self.slots = slots
        self.hosts = (HostAddress(*server),)
        self.latencies = Latencies()
        self.measuring = False
        self.count = 0
        self.failures = 0
        self.issued = 0

    def start_one(self, now: float) -> None:
        self.issued += 1
        token = self.issuer.issue_token(
            player_id=f"hs-{self.issued:x}", match_id="bench-handshake", hosts=self.hosts,
            now=time.time(),
        )
        self.add(token, now)

    def on_connected(self, client: Client, now: float) -> None:
        if self.measuring:
            self.count += 1
            self.latencies.record(int((now - client.started) * 1e6))
        client.conn.disconnect()
        self.remove(client)
        self.start_one(now)

    def on_closed(self, client: Client, reason: str, now: float) -> None:
        if client.index in self.clients:
            if self.measuring:
                self.failures += 1
            self.remove(client)
            self.start_one(now)


def run_handshake(options: Any) -> dict[str, Any]:
    """Completed handshakes per second with `slots` in flight."""
    server = host_of(options)
    slots = int(options["slots"])
    raise_fd_limit(slots + 64)
    driver = HandshakeDriver(server, make_issuer(bytes.fromhex(options["key"])), slots)

    def on_measure() -> None:
        driver.measuring = True
        driver.latencies.clear()
        driver.count = 0
        driver.failures = 0

    timeline = Timeline(
        float(options["warmup"]),
        float(options["duration"]),
        on_measure=on_measure,
        progress=lambda: {"count": driver.count},
    )
    timeline.start()
    now = time.perf_counter()
    for _ in range(slots):
        driver.start_one(now)
    while timeline.check(driver.step()) != DONE:
        pass
    count = driver.count
    failures = driver.failures
    driver.close()
    return {
        "count": count,
        "failures": failures,
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "histogram": driver.latencies.encoded(),
        "send_errors": driver.send_errors,
        "events": dict(driver.events),
    }
