"""Load side of `play --game arena --spectators N`: N spectators watching arena room 0.

Each spectator is a `ClientConnection` (in one `session_load.Driver` poll
loop) holding a connect token of a spectator id (vinom.hosting.spectators:
`SPECTATOR_PREFIX` and a number) for the first bench room's match, sealed
with the key the harness shares with the server, as the lobby seals one for
`spectate` (docs/lobby.md). The host seats none of them: each gets the
match's public view as it changes (one encoding, the same bytes to all).
The spectators only read; the players' load process (benchmarks.arena_load)
measures what they cost the players.

In the window: `messages` (state and phase messages each spectator got),
`bytes` (the UDP payload bytes of every datagram from the host) and
`datagrams`, per spectator.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.loadgen import DONE, Timeline
from benchmarks.server_worker import match_id
from benchmarks.session_load import MAX_DATAGRAM, Client, Driver, make_issuer, raise_fd_limit
from benchmarks.worker import emit
from vinom.protocol.address import HostAddress


class Spectator:
    __slots__ = ("bytes", "datagrams", "messages")

    def __init__(self) -> None:
        self.bytes = self.datagrams = self.messages = 0


class SpectatorDriver(Driver):
    """Connects the spectators, then counts what they receive."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__((settings["host"], int(settings["port"])))
        self.issuer = make_issuer(bytes.fromhex(settings["key"]))
        self.count = int(settings["spectators"])
        self.connected = 0
        self.failed = 0
        self.measuring = False

    def connect_all(self, limit: float) -> None:
        # Imported here: a build without spectators cannot run this load at all.
        from vinom.hosting.spectators import SPECTATOR_PREFIX

        raise_fd_limit(self.count + 64)
        now = time.perf_counter()
        for n in range(self.count):
            token = self.issuer.issue_token(
                player_id=f"{SPECTATOR_PREFIX}bench-{n}", match_id=match_id(0),
                hosts=(HostAddress(*self.server),), now=time.time(),
            )  # fmt: skip
            client = self.add(token, now)
            client.data = Spectator()
        deadline = time.perf_counter() + limit
        while self.connected + self.failed < self.count:
            now = self.step(0.01)
            if now > deadline:
                raise RuntimeError(
                    f"only {self.connected} of {self.count} spectators connected in {limit:g} s"
                )
            emit("progress", phase="connect", count=self.connected, elapsed=0.0)
        if self.failed:
            raise RuntimeError(f"{self.failed} spectators were refused ({dict(self.events)})")

    def on_connected(self, client: Client, now: float) -> None:
        self.connected += 1

    def on_closed(self, client: Client, reason: str, now: float) -> None:
        self.failed += 1

    def _readable(self, client: Client, now: float) -> None:
        try:
            data = client.sock.recv(MAX_DATAGRAM)
        except OSError:
            return
        if self.measuring:
            client.data.datagrams += 1
            client.data.bytes += len(data)
        client.conn.receive_datagram(data, client.server, now)
        self._dispatch(client, now)
        self.flush(client, now)

    def on_message(self, client: Client, channel: int, data: bytes, now: float) -> None:
        if self.measuring:
            client.data.messages += 1

    def start_window(self) -> None:
        self.measuring = True


def run_spectators(settings: dict[str, Any]) -> dict[str, Any]:
    driver = SpectatorDriver(settings)
    driver.connect_all(float(settings.get("connect_limit", 30.0)))
    timeline = Timeline(
        float(settings["warmup"]),
        float(settings["duration"]),
        on_measure=driver.start_window,
        progress=lambda: {"count": sum(c.data.messages for c in driver.clients.values())},
    )
    timeline.start()
    while timeline.check(driver.step(0.05)) != DONE:
        pass
    watchers = [client.data for client in driver.clients.values()]
    closed = sum(n for name, n in driver.events.items() if name.startswith("closed_"))
    result = {
        "spectators": len(watchers),
        "spectator_messages": [w.messages for w in watchers],
        "spectator_bytes": [w.bytes for w in watchers],
        "spectator_datagrams": [w.datagrams for w in watchers],
        # A spectator's session that ended in the window (the match cannot end in it).
        "errors": closed,
        "window_s": timeline.window_s,
        "load_cpu_s": timeline.load_cpu_s,
        "session_events": dict(driver.events),
    }
    driver.close()
    return result
