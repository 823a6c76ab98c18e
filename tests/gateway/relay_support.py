"""Helpers for tests that run the UDP relay as a process: `RelayProcess`, a mixin for a
trial TestCase (it uses the case's `mktemp` and `addCleanup`)."""

from __future__ import annotations

import os
import re
import sys

from twisted.internet import reactor

from tests.server.test_ops import http_get, metric_value
from tests.server.test_twistd import ROOT, RUN_TWISTD, Collect
from tests.support.ports import free_udp_range
from tests.support.waiting import until

IDLE_TIMEOUT = 1.0
#: The arguments after Python's that run the relay alone, as an operator does.
RELAY = ["-c", RUN_TWISTD, "-n", "--pidfile=", "vinom", "relay"]


class RelayProcess:
    """`start_relay()` runs `twistd -n vinom relay` on a free port of 127.0.0.1 with
    `self.key_file` as its key; `metrics()` and `metric(name)` read its `/metrics`.
    Mixed into a trial TestCase (before it), whose mktemp, addCleanup and asserts it uses."""

    key_file: str
    relay_port: int
    relay: Collect
    metrics_url: str

    def spawn(self, args: list[str]) -> Collect:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        output = Collect()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        transport = reactor.spawnProcess(output, sys.executable, [sys.executable, *args],
                                         env=env, path=data_dir)  # fmt: skip
        output.transport = transport  # type: ignore[attr-defined]
        output.data_dir = data_dir  # type: ignore[attr-defined]
        self.addCleanup(self._kill_spawned, output)
        return output

    async def _kill_spawned(self, output: Collect) -> None:
        if not output.ended.called:
            output.transport.signalProcess("KILL")  # type: ignore[attr-defined]
            await output.ended

    async def spawned_says(
        self, output: Collect, pattern: str, limit: float = 30.0
    ) -> re.Match[str]:
        def said() -> str:
            return output.output.decode(errors="replace")

        def found() -> re.Match[str] | None:
            self.assertFalse(output.ended.called, said())
            return re.search(pattern, said())

        match = await until(found, lambda: f"{pattern} in:\n{said()}", limit, every=0.05)
        assert isinstance(match, re.Match)
        return match

    async def start_relay(self) -> None:
        self.relay_port = free_udp_range(1)
        self.relay = self.spawn([
            *RELAY, "--relay-ports", str(self.relay_port),
            "--relay-interface", "127.0.0.1", "--relay-host-interface", "127.0.0.1",
            "--relay-key-file", self.key_file, "--relay-idle-timeout", str(IDLE_TIMEOUT),
            "--ops-port", "tcp:0:interface=127.0.0.1",
        ])  # fmt: skip
        found = await self.spawned_says(self.relay, r"operations on (http://\S+/metrics)")
        self.metrics_url = found.group(1)

    async def metrics(self) -> bytes:
        code, body = await http_get(self.metrics_url)
        self.assertEqual(code, 200)
        return body

    async def metric(self, name: str) -> float:
        return metric_value(await self.metrics(), name)


def gateway_relay_options(port: int, key_file: str) -> list[str]:
    """A `twistd vinom gateway`'s options for its UDP relay on `port` of 127.0.0.1, reaching the
    game hosts from 127.0.0.1, routes forgotten after `IDLE_TIMEOUT`."""
    return ["--relay-ports", str(port), "--relay-interface", "127.0.0.1",
            "--relay-host-interface", "127.0.0.1", "--relay-key-file", key_file,
            "--relay-idle-timeout", str(IDLE_TIMEOUT)]  # fmt: skip


def dropped(reason: str) -> str:
    return f'vinom_relay_datagrams_dropped_total{{reason="{reason}"}}'


def forwarded(direction: str) -> str:
    return f'vinom_relay_datagrams_forwarded_total{{direction="{direction}"}}'
