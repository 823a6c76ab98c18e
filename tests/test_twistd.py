"""`twistd -n vinom` as a real child process: answers a TLS hello, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import socket
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.servers import free_udp_range
from vinom.build import build_info
from vinom.client.lobby import connect_lobby

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TWISTD = "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, ProcessDone | ProcessTerminated):
            self.ended.callback((value.exitCode, value.signal))
        else:
            self.ended.callback((None, None))


class TwistdTests(TestCase):
    timeout = 60

    async def test_serves_tls_hello_and_stops_on_sigterm(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        port = free_tcp_port()
        udp = free_udp_range(2)
        process = Collect()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        transport = reactor.spawnProcess(
            process,
            sys.executable,
            [
                sys.executable, "-c", RUN_TWISTD,
                "-n", "--pidfile=", "vinom",
                "--lobby", f"ssl:{port}:interface=127.0.0.1",
                "--udp-ports", f"{udp}-{udp + 1}",
                "--data-dir", data_dir,
            ],
            env=env,
            path=data_dir if os.path.isdir(data_dir) else None,
        )
        self.addCleanup(self._kill, transport, process)

        waited = 0.0
        while b"starting on" not in process.output:
            self.assertFalse(process.ended.called, process.output.decode(errors="replace"))
            self.assertLess(waited, 30, process.output.decode(errors="replace"))
            await deferLater(reactor, 0.1, lambda: None)
            waited += 0.1
        cert = os.path.join(data_dir, "dev-cert.pem")
        self.assertIn(cert.encode(), process.output)  # its path is logged for clients
        build = build_info()  # the server imports the same vinom as this test
        self.assertIn(
            f"packet path {build['code']}, AEAD {build['aead']}".encode(), process.output
        )

        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        welcome = await lobby.hello("ada")
        self.assertTrue(welcome.player_id.startswith("p-"))
        await lobby.close()

        transport.signalProcess("TERM")
        code, signal = await process.ended
        # twistd shuts the services down, then ends itself with the signal it got,
        # as a well-behaved Unix daemon does (so a supervisor sees why it stopped).
        self.assertIn((code, signal), [(0, None), (None, 15)], process.output.decode())
        self.assertIn(b"lobby draining", process.output)
        self.assertIn(b"Server Shut Down", process.output)

    def _kill(
        self, transport: object, process: Collect
    ) -> Deferred[tuple[int | None, int | None]] | None:
        if process.ended.called:
            return None
        transport.signalProcess("KILL")  # type: ignore[attr-defined]
        return process.ended
