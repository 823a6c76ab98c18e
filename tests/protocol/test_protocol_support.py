"""Shared fixtures for the UDP protocol tests: fixed keys, a fake admission, a simulated network.

`Net` is a small discrete-event simulation: datagrams between one
`ServerEndpoint` and any number of `ClientConnection`s travel with a latency,
optional jitter (reordering), loss and duplication, and every timer fires at
its time. No sockets, no reactor; time is the simulation's own.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from vinom.protocol.address import HostAddress
from vinom.protocol.client import ClientConnection
from vinom.protocol.config import ClientConfig, HostConfig, IssuerConfig, ProtocolConfig
from vinom.protocol.events import ConnectFailed, MessageReceived, SessionClosed, SessionConnected
from vinom.protocol.interfaces import Admission
from vinom.protocol.server import ServerEndpoint
from vinom.protocol.tokens import PublicToken, TokenIssuer

WALL = 1_700_000_000.0
TOKEN_KEY = bytes(range(32))
APPLICATION_ID = 0x1234
HOST = HostAddress("10.0.0.1", 40000)
SERVER_ADDR = ("10.0.0.1", 40000)
CLIENT_ADDR = ("192.0.2.7", 50001)
OTHER_ADDR = ("198.51.100.9", 50002)


class FakeAdmission:
    """An endpoint's `admit`: accepts everyone unless told otherwise; records what it
    was asked."""

    def __init__(self, verdict: Admission = Admission.ACCEPT) -> None:
        self.verdict = verdict
        self.per_player: dict[str, Admission] = {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, player_id: str, match_id: str, now: float) -> Admission:
        self.calls.append((player_id, match_id))
        return self.per_player.get(player_id, self.verdict)


class Net:
    """One server, many clients, a lossy network between them (see module docstring)."""

    def __init__(
        self,
        *,
        admission: FakeAdmission | None = None,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        latency: float = 0.005,
        jitter: float = 0.0,
        host_config: dict[str, Any] | None = None,
        protocol: ProtocolConfig | None = None,
        session_timeout: float = 5.0,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self.now = 1000.0
        self.wall = WALL
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.latency = latency
        self.jitter = jitter
        self.protocol = protocol or ProtocolConfig(token_key=TOKEN_KEY,
                                                   application_id=APPLICATION_ID)
        self.issuer = TokenIssuer(IssuerConfig(self.protocol, session_timeout=session_timeout))
        self.admission = admission or FakeAdmission()
        self.server = ServerEndpoint(
            HostConfig(self.protocol, (HOST,), **(host_config or {})),
            self.admission,
            wall_clock=lambda: self.wall,
            **({} if random_bytes is None else {"random_bytes": random_bytes}),
        )
        self.random_bytes = random_bytes
        self.clients: dict[tuple[str, int], ClientConnection] = {}
        self.server_events: list[Any] = []
        self.client_events: dict[tuple[str, int], list[Any]] = {}
        self._queue: list[tuple[float, int, bytes, tuple[str, int], tuple[str, int]]] = []
        self._counter = 0
        # Every datagram put on the wire: (time, source, destination, bytes).
        self.wire: list[tuple[float, tuple[str, int], tuple[str, int], bytes]] = []

    def token(self, player_id: str = "p-1", match_id: str = "m-1",
              hosts: tuple[HostAddress, ...] = (HOST,), **kw: Any) -> PublicToken:
        return self.issuer.issue_token(player_id=player_id, match_id=match_id, hosts=hosts,
                                       now=kw.pop("now", self.wall), **kw)

    def connect(self, token: PublicToken | None = None, addr: tuple[str, int] = CLIENT_ADDR,
                config: ClientConfig | None = None,
                addresses: list[tuple[str, int]] | None = None) -> ClientConnection:
        more = {} if self.random_bytes is None else {"random_bytes": self.random_bytes}
        client = ClientConnection(token or self.token(), self.now, config=config,
                                  addresses=addresses, wall_clock=lambda: self.wall, **more)
        self.clients[addr] = client
        self.client_events.setdefault(addr, [])
        return client

    # -- moving packets ---------------------------------------------------

    def _put(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        self.wire.append((self.now, src, dst, data))
        if self.loss and self.rng.random() < self.loss:
            return
        copies = 2 if self.duplicate and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            delay = self.latency + (self.rng.uniform(0, self.jitter) if self.jitter else 0.0)
            self._counter += 1
            heapq.heappush(self._queue, (self.now + delay, self._counter, data, src, dst))

    def collect(self) -> None:
        """Put everything the endpoints want to send on the wire."""
        for data, dst in self.server.datagrams_to_send(self.now):
            self._put(data, SERVER_ADDR, tuple(dst))
        for addr, client in self.clients.items():
            for data, dst in client.datagrams_to_send(self.now):
                self._put(data, addr, tuple(dst))
        self.drain_events()

    def drain_events(self) -> None:
        while (ev := self.server.next_event()) is not None:
            self.server_events.append(ev)
        for addr, client in self.clients.items():
            while (ev := client.next_event()) is not None:
                self.client_events[addr].append(ev)

    def _next_time(self) -> float | None:
        times = []
        if self._queue:
            times.append(self._queue[0][0])
        t = self.server.get_timer()
        if t is not None:
            times.append(t)
        for client in self.clients.values():
            t = client.get_timer()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def run(self, duration: float) -> None:
        """Advance simulated time by `duration`, delivering and firing everything due."""
        end = self.now + duration
        self.collect()
        while True:
            t = self._next_time()
            if t is None or t > end:
                break
            if t > self.now:
                self.wall += t - self.now
                self.now = t
            self.step()
        self.wall += end - self.now
        self.now = end
        self.collect()

    def step(self) -> None:
        queue = self._queue
        while queue and queue[0][0] <= self.now:
            _, _, data, src, dst = heapq.heappop(queue)
            if dst == SERVER_ADDR:
                self.server.receive_datagram(data, src, self.now)
            elif dst in self.clients:
                self.clients[dst].receive_datagram(data, src, self.now)
            self.collect()
        t = self.server.get_timer()
        if t is not None and t <= self.now:
            self.server.handle_timer(self.now)
        for client in self.clients.values():
            t = client.get_timer()
            if t is not None and t <= self.now:
                client.handle_timer(self.now)
        self.collect()

    # -- conveniences -----------------------------------------------------

    def events_of(self, kind: type, addr: tuple[str, int] | None = None) -> list[Any]:
        source = self.server_events if addr is None else self.client_events[addr]
        return [e for e in source if isinstance(e, kind)]

    def connected(self, addr: tuple[str, int] = CLIENT_ADDR) -> SessionConnected | None:
        found = self.events_of(SessionConnected, addr)
        return found[0] if found else None

    def failed(self, addr: tuple[str, int] = CLIENT_ADDR) -> ConnectFailed | None:
        found = self.events_of(ConnectFailed, addr)
        return found[0] if found else None

    def closed(self, addr: tuple[str, int] | None = None) -> list[SessionClosed]:
        return self.events_of(SessionClosed, addr)

    def messages(self, addr: tuple[str, int] | None = None) -> list[MessageReceived]:
        return self.events_of(MessageReceived, addr)

    def sent_by(self, src: tuple[str, int]) -> list[bytes]:
        return [d for _, s, _, d in self.wire if s == src]
