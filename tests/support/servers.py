"""Test helpers: a whole vinom server (makeService) in the test process, on free loopback
ports; and a real `twistd -n vinom` child process, with games installed as a user installs one."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from attrs import frozen
from twisted.application.service import IService, MultiService
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress
from vinom.hosting.service import GameHostingService
from vinom.server.tap import Options, makeService

ROOT = str(Path(__file__).resolve().parents[2])


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
            "--limit", "drain-timeout=0",
            "--ops-port", "none",
            # In this process unless the test asks for worker processes.
            *(() if {"--host-workers", "--matches"} & set(args) else ("--matches", "here")),
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


def install_files(directory: str, files: Mapping[str, str]) -> str:
    """Write `files` (path: text) under `directory`/path, as a user installs a game (a
    plugin module in `twisted/plugins/`, a package); that directory, to put on a path."""
    path = os.path.join(directory, "path")
    for name, text in files.items():
        target = Path(path, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    os.makedirs(os.path.join(path, "twisted", "plugins"), exist_ok=True)
    return path


@frozen
class RunningTwistd:
    """A `twistd -n vinom` child process started by start_twistd."""

    # Its output so far (stdout and stderr), and `ended` (tests.server.test_twistd.Collect).
    process: Any
    data_dir: str
    # The TLS lobby's port, and the web server's when web=True.
    lobby_port: int | None
    web_port: int | None

    @property
    def output(self) -> bytes:
        return cast(bytes, self.process.output)

    @property
    def cert(self) -> str:
        """The dev certificate the server made for its TLS listeners."""
        return os.path.join(self.data_dir, "dev-cert.pem")

    @property
    def lobby(self) -> LobbyAddress:
        assert self.lobby_port is not None
        return LobbyAddress("127.0.0.1", self.lobby_port, self.cert)

    @property
    def url(self) -> str:
        """The page's URL (web=True)."""
        return f"https://127.0.0.1:{self.web_port}/"


async def start_twistd(
    case: TestCase,
    files: Mapping[str, str],
    *options: str,
    web: bool = False,
    game_server: bool = True,
    role: str | None = None,
    ready: bytes | None = None,
    wait: float = 30.0,
) -> RunningTwistd:
    """A real `twistd -n vinom` child process, once it printed its start-up line; killed
    at cleanup.

    `files` (path: text) are installed (install_files) in a directory put on the
    server's path; the `options` follow vinom's own. A game server listens on
    loopback: a TLS lobby on a free port, two UDP ports, and the web server when
    `web` (else --websocket none); with `game_server=False` (`twistd vinom gateway`) only
    the `options`, --data-dir and --ops-port none are given. `role`: the subcommand, first
    (none: the whole server). `ready` is the
    start-up line waited for: by default the page's line when `web`, else the
    service's "starting on"."""
    # Here, not at the top: the test modules that start a server in their own
    # process import this module, and need not import tests/server/test_twistd.py.
    from tests.server.test_twistd import RUN_TWISTD, Collect

    data_dir = os.path.abspath(case.mktemp())
    os.makedirs(data_dir, exist_ok=True)
    path = install_files(data_dir, files)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, path, env.get("PYTHONPATH", "")) if p)
    lobby_port = web_port = None
    served: tuple[str, ...] = ()
    if game_server:
        lobby_port, udp = free_tcp_port(), free_udp_range(2)
        web_port = free_tcp_port() if web else None
        served = (
            "--lobby", f"ssl:{lobby_port}:interface=127.0.0.1",
            "--websocket", f"ssl:{web_port}:interface=127.0.0.1" if web else "none",
            "--udp-ports", f"{udp}-{udp + 1}", "--udp-interface", "127.0.0.1",
            "--public-host", "127.0.0.1", "--limit", "drain-timeout=0",
        )  # fmt: skip
    process = Collect()
    transport = reactor.spawnProcess(
        process, sys.executable,
        [
            sys.executable, "-c", RUN_TWISTD, "-n", "--pidfile=", "vinom",
            *(() if role is None else (role,)), *served,
            "--data-dir", data_dir, "--ops-port", "none", *options,
        ],
        env=env, path=data_dir,
    )  # fmt: skip

    async def stop() -> None:
        if not process.ended.called:
            transport.signalProcess("KILL")
        await process.ended
        # Kept beside its data for a failure's post-mortem (trial keeps _trial_temp).
        with open(os.path.join(data_dir, "twistd.log"), "wb") as log:
            log.write(process.output)

    case.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    if ready is None:
        # The page's line: the web server is listening.
        ready = b"play in a browser" if web else b"starting on"

    def said() -> str:
        return process.output.decode(errors="replace")

    def started() -> bool:
        case.assertFalse(process.ended.called, said())
        return ready in process.output

    await until(started, lambda: f"{ready!r} in:\n{said()}", wait, every=0.05)
    return RunningTwistd(process, data_dir, lobby_port, web_port)
