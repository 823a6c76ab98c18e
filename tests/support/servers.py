"""Test helper: a whole vinom server (makeService) in the test process, on free loopback ports."""

from __future__ import annotations

from typing import Any, cast

from attrs import frozen
from twisted.application.service import IService, MultiService
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support.ports import free_udp_range
from vinom.client.bots import LobbyAddress
from vinom.hosting.service import GameHostingService
from vinom.server.tap import Options, makeService


@frozen
class RunningServer:
    root: MultiService
    lobby: LobbyAddress
    hosting: GameHostingService
    data_dir: str
    # The port of the web server (the WebSocket lobby), when the test asked for --websocket.
    websocket_port: int | None = None

    def service(self, name: str) -> Any:
        return self.root.getServiceNamed(name)


async def start_server(case: TestCase, *args: str, ports: int = 8) -> RunningServer:
    """Start makeService on the real reactor (TLS lobby on a free port); stopped at cleanup."""
    data_dir = case.mktemp()
    base = free_udp_range(ports)
    options = Options()
    options.parseOptions(
        [
            "--lobby", "ssl:0:interface=127.0.0.1",
            "--udp-ports", f"{base}-{base + ports - 1}",
            "--udp-interface", "127.0.0.1",
            "--data-dir", data_dir,
            # Stopped at cleanup: no drain wait (tests/server/test_twistd.py drains for real).
            "--drain-timeout", "0",
            "--ops-port", "none",
            # In this process unless the test asks for worker processes.
            *(() if {"--host-workers", "--game-host"} & set(args) else ("--host-workers", "0")),
            # No web server unless the test asks for one (the default port is fixed).
            *(() if "--websocket" in args else ("--websocket", "none")),
            *args,
        ]
    )
    root = makeService(options, reactor)
    root.startService()
    case.addCleanup(lambda: Deferred.fromCoroutine(_stop(root)))
    listener = root.getServiceNamed("lobby-listener")
    port = await listener.port()
    cert = f"{data_dir}/dev-cert.pem"
    hosting = cast(GameHostingService, root.getServiceNamed("hosting"))
    websocket_port = None
    if "--websocket" in args:
        web = await root.getServiceNamed("web").port()
        websocket_port = web.getHost().port
    return RunningServer(
        root, LobbyAddress("127.0.0.1", port.getHost().port, cert), hosting, data_dir,
        websocket_port,
    )


async def _stop(root: IService) -> None:
    await root.stopService()
