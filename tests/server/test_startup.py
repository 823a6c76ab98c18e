"""`twistd -n vinom` started as a person starts it, from an empty directory: what it says
when it starts (where to go), the one line it ends with when it cannot start, the
operations token (on Redis: tests/fleet/test_redis_start.py)."""

# slow: starts child processes

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

import twisted
import vinom
from tests.server.test_ops import http_get
from tests.server.test_twistd import ROOT, RUN_TWISTD, Collect
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.waiting import until
from vinom.client.game import connect_game
from vinom.client.lobby import connect_lobby
from vinom.server.build import build_info
from vinom.server.certs import make_self_signed
from vinom.server.endpoints import listen_interface
from vinom.server.startup import Listener, StartupError, is_loopback

TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


class Twistd:
    """One `twistd -n vinom` child process run from an empty directory."""

    def __init__(
        self, case: TestCase, *argv: str, env: dict[str, str] | None = None, pidfile: str = ""
    ) -> None:
        """`argv`: vinom's options (defaults filled in); `pidfile`: twistd's (none)."""
        self.directory = os.path.abspath(case.mktemp())
        os.makedirs(self.directory)
        udp = free_udp_range(2)
        environment = dict(os.environ)
        environment.pop("VINOM_REDIS_PASSWORD", None)
        environment["PYTHONPATH"] = os.pathsep.join([ROOT, environment.get("PYTHONPATH", "")])
        environment.update(env or {})
        defaults = {
            "--lobby": f"ssl:{free_tcp_port()}:interface=127.0.0.1",
            "--websocket": "none",
            "--udp-ports": f"{udp}-{udp + 1}",
            "--ops-port": "tcp:0:interface=127.0.0.1",
            "--host-workers": "0",
        }
        given = {a.partition("=")[0] for a in argv if a.startswith("--")}
        extra = [w for name, value in defaults.items() if name not in given
                 for w in (name, value)]  # fmt: skip
        self.process = Collect()
        self.transport: Any = reactor.spawnProcess(
            self.process, sys.executable,
            [sys.executable, "-c", RUN_TWISTD, "-n", f"--pidfile={pidfile}", "vinom", *extra,
             *argv],
            env=environment, path=self.directory,
        )  # fmt: skip
        case.addCleanup(self._kill)

    @property
    def output(self) -> bytes:
        return self.process.output

    async def wait_for(self, text: bytes, limit: float = 30.0) -> None:
        await until(lambda: text in self.output or self.process.ended.called, repr(text),
                    timeout=limit, every=0.05)  # fmt: skip
        if text not in self.output:
            raise AssertionError(f"no {text!r} in:\n{self.output.decode(errors='replace')}")

    async def ended(self) -> int | None:
        code, _signal = await self.process.ended
        return code

    def url(self, label: str) -> str:
        found = re.search(rb"vinom: " + label.encode() + rb": (\S+)", self.output)
        assert found is not None, self.output.decode(errors="replace")
        return found.group(1).decode()

    async def _kill(self) -> None:
        if not self.process.ended.called:
            self.transport.signalProcess("KILL")
            await self.process.ended


def only_line(case: TestCase, output: bytes, text: str) -> str:
    """The output's one line saying `text`; no traceback and no usage text around it."""
    decoded = output.decode(errors="replace")
    case.assertNotIn("Traceback", decoded)
    case.assertNotIn("Usage:", decoded)
    lines = [line for line in decoded.splitlines() if text in line]
    case.assertEqual(len(lines), 1, decoded)
    return lines[0]


class StartupErrorTests(TestCase):
    """A start that cannot succeed ends with one line naming what to change."""

    timeout = 60

    async def test_a_bad_option_value_is_one_line_without_the_help(self) -> None:
        udp = free_udp_range(2)
        for argv, text in (
            (("--limit", "frame-rate=fast"),
             "vinom: --limit frame-rate must be a number, not 'fast'"),
            (("--ops-port", "bogus:1"), "vinom: --ops-port must be a port"),
            (("--bad",), "vinom: option --bad not recognized"),
            (("--udp-ports", f"{udp}-{udp + 1}", "--websocket", "tcp:0:interface=127.0.0.1",
              "--webtransport", str(udp + 1)),
             f"vinom: --webtransport {udp + 1} is inside --udp-ports {udp}-{udp + 1}"),
        ):
            with self.subTest(argv=argv):
                twistd = Twistd(self, *argv)
                self.assertEqual(await twistd.ended(), 1)
                lines = twistd.output.decode().strip().splitlines()
                self.assertEqual(len(lines), 1, twistd.output.decode())
                self.assertTrue(lines[0].startswith(text), lines[0])
                self.assertIn("twistd vinom --help lists the options", lines[0])

    async def test_a_record_dir_that_cannot_be_written_is_one_line(self) -> None:
        # A directory cannot be made under a file (whoever the server runs as, root too).
        blocker = os.path.abspath(self.mktemp())
        Path(blocker).write_text("a file")
        records = os.path.join(blocker, "records")
        twistd = Twistd(self, "--record-dir", records)
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "--record-dir")
        self.assertEqual(
            line, f"vinom: cannot write match records in --record-dir {records!r}: Not a "
            "directory; name a directory this server's user may write with --record-dir, "
            "or record nothing with --no-record")  # fmt: skip
        # --no-record: no directory needed.
        started = Twistd(self, "--record-dir", records, "--no-record")
        await started.wait_for(b"operations dashboard:")

    async def test_a_port_in_use_names_the_option_that_moves_it(self) -> None:
        taken = reactor.listenTCP(0, ServerFactory(), interface="127.0.0.1")
        self.addCleanup(maybeDeferred, taken.stopListening)
        port = taken.getHost().port
        # A bare port number, as --websocket takes one: the endpoint on loopback.
        twistd = Twistd(self, "--ops-port", str(port))
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "cannot listen")
        self.assertIn(
            f"vinom: cannot listen on 127.0.0.1:{port} for --ops-port: address already in "
            "use; choose another with --ops-port", line,
        )

    async def test_a_unix_socket_that_cannot_be_made_is_named_by_its_path(self) -> None:
        socket = os.path.join(os.path.abspath(self.mktemp()), "ops.sock")  # no such directory
        twistd = Twistd(self, "--ops-port", f"unix:{socket}")
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "cannot listen")
        self.assertIn(f"vinom: cannot listen on unix socket {socket} for --ops-port: ", line)
        self.assertTrue(line.endswith("; choose another with --ops-port"), line)

    async def test_a_lobby_port_in_use_leaves_no_pidfile_and_claims_nothing(self) -> None:
        taken = reactor.listenTCP(0, ServerFactory(), interface="127.0.0.1")
        self.addCleanup(maybeDeferred, taken.stopListening)
        port = taken.getHost().port
        twistd = Twistd(self, "--lobby", f"ssl:{port}:interface=127.0.0.1",
                        pidfile="twistd.pid")  # fmt: skip
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "cannot listen")
        self.assertIn(
            f"vinom: cannot listen on 127.0.0.1:{port} for --lobby: address already in use; "
            "choose another with --lobby", line,
        )  # fmt: skip
        # twistd's pidfile goes with the failed start: the next start is not refused
        # for a process that is not running.
        self.assertEqual(os.listdir(twistd.directory), ["vinom-data"])
        # Nothing said the lobby was on that port.
        self.assertNotIn(b"lobby on", twistd.output)
        self.assertNotIn(b"game(s) at once", twistd.output)

    async def test_a_certificate_that_is_not_pem_is_one_line_naming_it(self) -> None:
        key = write_private(self, make_self_signed("localhost")[1].decode())
        not_pem = os.path.abspath(self.mktemp())
        with open(not_pem, "w") as f:
            f.write("a certificate, the operator thought\n")
        twistd = Twistd(self, "--certificate", not_pem, "--private-key", key)
        self.assertEqual(await twistd.ended(), 1)
        self.assertEqual(
            twistd.output.decode().strip(),
            f"vinom: --certificate {not_pem!r} holds no PEM certificate (a "
            "'-----BEGIN CERTIFICATE-----' block) (twistd vinom --help lists the options)",
        )

    async def test_an_unusable_data_dir_is_one_line(self) -> None:
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as f:
            f.write("a file, not a directory")
        twistd = Twistd(self, "--data-dir", os.path.join(blocker, "data"))
        self.assertEqual(await twistd.ended(), 1)
        line = only_line(self, twistd.output, "--data-dir")
        self.assertIn("is not usable (Not a directory)", line)

    def token_key(self) -> str:
        path = os.path.abspath(self.mktemp())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        return path


class AnnouncementTests(TestCase):
    """After starting, the server says where to go, and logs no line per request."""

    timeout = 60

    async def test_says_where_to_go_once_everything_listens(self) -> None:
        web = free_tcp_port()
        twistd = Twistd(self, "--websocket", f"ssl:{web}:interface=127.0.0.1",
                        "--host-workers", "1")  # fmt: skip
        await twistd.wait_for(b"operations dashboard:")
        await twistd.wait_for(b"game-host worker 0 (pid ")  # ready: /health says ok
        certificate = os.path.join(twistd.directory, "vinom-data", "dev-cert.pem")
        lobby = re.search(rb"--lobby 127\.0\.0\.1:(\d+)", twistd.output)
        assert lobby is not None, twistd.output.decode()
        self.assertIn(
            f"vinom: terminal clients: vinom play GAME --lobby 127.0.0.1:{lobby.group(1).decode()}"
            f" --trust {certificate}".encode(), twistd.output,
        )
        self.assertEqual(twistd.url("play in a browser"), f"https://127.0.0.1:{web}/")
        dashboard = twistd.url("operations dashboard")
        self.assertRegex(dashboard, r"^http://127\.0\.0\.1:\d+/dashboard/$")

        # / of the operations port leads to the dashboard, which is there.
        root = dashboard.removesuffix("dashboard/")
        response = await http_get_response(root)
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/dashboard/"])
        self.assertEqual((await http_get(dashboard))[0], 200)
        self.assertEqual(await http_get(root + "health"), (200, b"ok\n"))
        # No access log by default: none in all the server wrote until it stopped.
        twistd.transport.signalProcess("TERM")
        self.assertEqual(await twistd.ended(), 0, twistd.output.decode())
        self.assertNotIn(b'"GET /health', twistd.output)
        self.assertNotIn(b'"GET /dashboard/', twistd.output)
        # One time stamp per line, a worker's relayed lines included.
        for line in twistd.output.splitlines():
            self.assertLessEqual(len(TIMESTAMP.findall(line)), 1, line)
        # A worker that starts has nothing to say until it stops (WorkerLogTests: what
        # it says, how).
        running, _, _ = twistd.output.partition(b"signal SIGTERM: draining")
        self.assertNotIn(b"[worker 0]", running)

    async def test_an_operations_endpoint_on_a_unix_socket_is_announced_by_its_path(
        self,
    ) -> None:
        # Short: a unix socket's path has a limit of about 100 bytes, which the test
        # directory's paths may pass.
        directory = tempfile.mkdtemp(prefix="vinom-ops-")
        self.addCleanup(shutil.rmtree, directory)
        socket = os.path.join(directory, "ops.sock")
        twistd = Twistd(self, "--ops-port", f"unix:{socket}")
        await twistd.wait_for(b"operations dashboard:")
        self.assertEqual(
            only_line(self, twistd.output, "operations dashboard:").partition(" [")[2],
            f"vinom.server.startup#info] vinom: operations dashboard: unix socket {socket}",
        )
        self.assertNotIn(b"Unhandled error", twistd.output)
        self.assertNotIn(b"#critical]", twistd.output)
        # The socket it names serves the endpoint.
        agent = Agent.usingEndpointFactory(reactor, UNIXSocketEndpoints(socket))
        response = await agent.request(b"GET", b"http://localhost/health")
        self.assertEqual((response.code, await readBody(response)), (200, b"ok\n"))

    async def test_the_access_log_is_an_option(self) -> None:
        twistd = Twistd(self, "--access-log")
        await twistd.wait_for(b"operations dashboard:")
        root = twistd.url("operations dashboard").removesuffix("dashboard/")
        self.assertEqual(await http_get(root + "health"), (200, b"ok\n"))
        await twistd.wait_for(b'"GET /health HTTP/1.1" 200')


class UNIXSocketEndpoints:
    """An `IAgentEndpointFactory` whose every URI is reached through one unix socket."""

    def __init__(self, path: str) -> None:
        self.path = path

    def endpointForURI(self, uri: object) -> UNIXClientEndpoint:
        return UNIXClientEndpoint(reactor, self.path)


# A game that says it hides nothing (`shared_view = True`) yet shows each player their
# own id: the room's check (VINOM_CHECK_VIEWS, on in the tests) logs it as critical.
LEAKY_GAME = """
from vinom.games.tictactoe import TicTacToeGame


class LeakyGame(TicTacToeGame):
    name = "leaky"
    shared_view = True
    offered_by_default = False

    def view(self, state, player_id):
        return {**super().view(state, player_id), "you": player_id}


leaky = LeakyGame()
"""


class WorkerLogTests(TestCase):
    """A game-host worker's log lines reach the server's log at their own level."""

    timeout = 60

    async def test_a_workers_critical_line_is_critical_and_its_pipe_is_not_chatter(
        self,
    ) -> None:
        path = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(path, "twisted", "plugins"))
        with open(os.path.join(path, "twisted", "plugins", "leaky_game.py"), "w") as f:
            f.write(LEAKY_GAME)
        twistd = Twistd(
            self, "--host-workers", "1", "--games", "leaky", "--udp-interface", "127.0.0.1",
            "--limit", "drain-timeout=0",
            env={"PYTHONPATH": os.pathsep.join([ROOT, path, os.environ.get("PYTHONPATH", "")]),
                 "VINOM_CHECK_VIEWS": "1"},
        )  # fmt: skip
        await twistd.wait_for(b"game-host worker 0 (pid ")
        lobby = re.search(rb"--lobby 127\.0\.0\.1:(\d+) --trust (\S+)", twistd.output)
        assert lobby is not None, twistd.output.decode()
        port, trust = int(lobby.group(1)), lobby.group(2).decode()
        clients = [await connect_lobby(reactor, "127.0.0.1", port, trust=trust) for _ in "ab"]
        for n, client in enumerate(clients):
            await client.hello(f"player{n}")
        found = await gatherResults([c.queue("leaky") for c in clients])
        sessions = [await connect_game(reactor, match) for match in found]
        for session in sessions:
            self.addCleanup(session.disconnect)
        await twistd.wait_for(b"SharedViewMismatch")
        [line] = [line for line in twistd.output.decode().splitlines()
                  if "says shared_view = True" in line]  # fmt: skip
        self.assertRegex(
            line, r"^\S+ \[vinom\.rooms\.room#critical\] \[worker 0\] Game leaky says "
                  r"shared_view = True, but view\(state, player\) differs",
        )  # fmt: skip
        # The traceback follows the line, in the same event.
        self.assertIn("vinom.rooms.faults.SharedViewMismatch: game 'leaky'", twistd.output.decode())
        for client in clients:
            await client.close()
        # The worker's pipe opening (and, at the stop, closing) is not logged.
        twistd.transport.signalProcess("TERM")
        self.assertEqual(await twistd.ended(), 0, twistd.output.decode())
        self.assertIn(b"game-host worker 0 (pid ", twistd.output)
        self.assertNotIn(b"connection established", twistd.output)
        self.assertNotIn(b"connection lost", twistd.output)
        self.assertNotIn(b"PipeAddress", twistd.output)


async def http_get_response(url: str, headers: dict[bytes, list[bytes]] | None = None) -> Any:
    """The response (its body read into `.body`) to a GET of `url`."""
    response = await Agent(reactor).request(b"GET", url.encode(), Headers(headers or {}))
    response.body = await readBody(response)
    return response


class OpsTokenTests(TestCase):
    """--ops-token-file guards /status, /metrics; /health and /ready stay open."""

    timeout = 60

    async def test_status_and_metrics_need_the_token(self) -> None:
        token = "s3cret-token-for-ops"
        path = write_private(self, token + "\n")
        # On every interface, with a token: no warning.
        twistd = Twistd(self, "--ops-port", "tcp:0", "--ops-token-file", path)
        await twistd.wait_for(b"operations dashboard:")
        root = twistd.url("operations dashboard").removesuffix("dashboard/")
        self.assertNotIn(b"no --ops-token-file", twistd.output)
        for page in ("status", "metrics"):
            with self.subTest(page=page):
                response = await http_get_response(root + page)
                self.assertEqual(response.code, 401)
                self.assertEqual(response.headers.getRawHeaders(b"www-authenticate"),
                                 [b'Bearer realm="vinom operations"'])  # fmt: skip
                wrong = await http_get_response(
                    root + page, {b"authorization": [b"Bearer " + b"x" * len(token)]}
                )
                self.assertEqual(wrong.code, 401)
                right = await http_get_response(
                    root + page, {b"authorization": [f"Bearer {token}".encode()]}
                )
                self.assertEqual(right.code, 200)
        right = await http_get_response(
            root + "status", {b"authorization": [f"Bearer {token}".encode()]}
        )
        self.assertIn(b'"lobby"', right.body)
        self.assertEqual(await http_get(root + "health"), (200, b"ok\n"))
        self.assertEqual(await http_get(root + "ready"), (200, b"ready\n"))
        # The dashboard's page holds no figures: it loads, then asks for the token.
        code, page = await http_get(root + "dashboard/")
        self.assertEqual(code, 200)
        self.assertIn(b'id="token-form"', page)
        self.assertNotIn(token.encode(), twistd.output)

    async def test_ops_beyond_loopback_without_a_token_warns(self) -> None:
        twistd = Twistd(self, "--ops-port", "tcp:0")
        await twistd.wait_for(b"operations dashboard:")
        line = only_line(self, twistd.output, "no --ops-token-file")
        self.assertIn(
            "vinom: the operations endpoint listens on 0.0.0.0 with no --ops-token-file: "
            "anyone who reaches it reads player names, ids and addresses", line,
        )
        quiet = Twistd(self)  # loopback: nothing to say
        await quiet.wait_for(b"operations dashboard:")
        self.assertNotIn(b"--ops-token-file", quiet.output)

    async def test_a_token_key_file_others_may_read_is_warned_about(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(path, 0o644)
        twistd = Twistd(self, "--token-key-file", path)
        await twistd.wait_for(b"operations dashboard:")
        line = only_line(self, twistd.output, "can be read by others")
        self.assertIn(f"vinom: --token-key-file {path} can be read by others (mode 644); "
                      f"make it private: chmod 600 {path}", line)  # fmt: skip
        os.chmod(path, 0o600)
        private = Twistd(self, "--token-key-file", path)
        await private.wait_for(b"operations dashboard:")
        self.assertNotIn(b"can be read by others", private.output)


def write_private(case: TestCase, text: str) -> str:
    path = os.path.abspath(case.mktemp())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, stat.S_IRUSR | stat.S_IWUSR)
    os.write(fd, text.encode())
    os.close(fd)
    return path


class AboutTests(TestCase):
    """What a server says about itself: its version, and its JSON log lines."""

    timeout = 60

    async def test_version_names_vinom_its_build_and_twisted(self) -> None:
        out, _err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_TWISTD, "vinom", "--version"],
            env={**os.environ, "PYTHONPATH": ROOT}, path=ROOT)  # fmt: skip
        self.assertEqual(code, 0)
        self.assertEqual(out.decode(), f"vinom {vinom.__version__} ({build_info()['code']} "
                                       f"build), Twisted {twisted.__version__}\n")  # fmt: skip

    async def test_json_log_lines_carry_the_rendered_message_and_no_bookkeeping(self) -> None:
        twistd = Twistd(self, "--log-format", "json")
        await twistd.wait_for(b"operations dashboard")
        lines = [json.loads(line) for line in twistd.output.decode().splitlines()
                 if line.startswith("{")]  # fmt: skip
        self.assertTrue(lines)
        for line in lines:
            self.assertEqual(list(line)[:4], ["time", "level", "namespace", "message"])
            self.assertFalse([key for key in line if key.startswith("log_")], line)
        (dashboard,) = [line for line in lines
                        if line["message"].startswith("vinom: operations dashboard: ")]
        self.assertEqual(dashboard["level"], "info")
        self.assertEqual(dashboard["namespace"], "vinom.server.startup")
        self.assertEqual(dashboard["label"], "operations dashboard")
        # The rendered message and its few fields, not Twisted's whole event twice over.
        encoded = json.dumps(dashboard)
        self.assertLess(len(encoded), len(dashboard["message"]) + 200, encoded)


class ListenerTests(TestCase):
    """A Listener listens while it runs, gives its port through `port()`, and turns a
    port in use into the one line naming its option."""

    async def test_port_gives_the_listening_port_until_stopped(self) -> None:
        listener = Listener("tcp:0:interface=127.0.0.1", Factory.forProtocol(Protocol),
                            reactor, "ops-port")  # fmt: skip
        waiting = listener.port()  # asked before it listens: fires once it does
        listener.startService()
        self.addCleanup(listener.stopService)
        port = await waiting
        self.assertIs(await listener.port(), port)
        address = port.getHost()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
        connected = await connectProtocol(endpoint, Protocol())
        connected.transport.loseConnection()
        await listener.stopService()
        with self.assertRaises(ConnectionRefusedError):
            await connectProtocol(endpoint, Protocol())

    def test_a_port_in_use_is_the_one_line(self) -> None:
        taken = reactor.listenTCP(0, ServerFactory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        listener = Listener(f"tcp:{port}:interface=127.0.0.1", ServerFactory(), reactor,
                            "websocket")  # fmt: skip
        with self.assertRaises(StartupError) as raised:
            listener.startService()
        self.assertEqual(
            str(raised.exception),
            f"vinom: cannot listen on 127.0.0.1:{port} for --websocket: address already in "
            "use; choose another with --websocket",
        )
        failed = self.failureResultOf(listener.port(), Exception)
        self.assertEqual(failed.value.port, port)

    def test_a_description_it_cannot_build_or_listen_on_is_one_line(self) -> None:
        with self.assertRaises(StartupError) as raised:
            Listener("vinom-ssl:0:privateKey=/nonexistent.pem", ServerFactory(), reactor, "lobby")
        self.assertEqual(
            str(raised.exception),
            "vinom: cannot listen for --lobby on 'vinom-ssl:0:privateKey=/nonexistent.pem': "
            "'/nonexistent.pem': no such file or directory",
        )
        # A vinom-ssl: without its certificate is built, and cannot listen.
        listener = Listener("vinom-ssl:0:interface=127.0.0.1", ServerFactory(), reactor, "lobby")
        with self.assertRaises(StartupError) as raised:
            listener.startService()
        self.assertEqual(
            str(raised.exception),
            "vinom: cannot listen for --lobby: vinom-ssl: no privateKey= (the certificate's "
            "key) given",
        )


class ListenInterfaceTests(TestCase):
    """The address an --ops-port description binds, read with strports' escapes."""

    def test_interfaces(self) -> None:
        for description, interface, loopback in (
            ("tcp:7390:interface=\\:\\:1", "::1", True),
            ("tcp6:port=7390:interface=\\:\\:1", "::1", True),
            ("tcp:7390:interface=127.0.0.1", "127.0.0.1", True),
            ("tcp:7390:interface=0.0.0.0", "0.0.0.0", False),
            ("tcp:7390", "", False),
            ("ssl:7390:privateKey=a\\:b.pem:interface=localhost", "localhost", True),
        ):
            with self.subTest(description=description):
                self.assertEqual(listen_interface(description), interface)
                self.assertEqual(is_loopback(interface), loopback)
        self.assertIsNone(listen_interface("unix:/tmp/ops.sock"))

    async def test_ops_on_ipv6_loopback_gives_no_warning(self) -> None:
        twistd = Twistd(self, "--ops-port", "tcp6:0:interface=\\:\\:1")
        await twistd.wait_for(b"operations dashboard:")
        self.assertIn(b"http://[::1]:", twistd.output)
        self.assertNotIn(b"--ops-token-file", twistd.output)


class GarbageCollectionTests(TestCase):
    """A started server's collector leaves its start-up objects alone
    (`vinom.net.reactor.settle_garbage_collection`, run by `twistd vinom` and each
    game-host worker once the reactor runs).
    Checked in a child Python: freezing this test process would keep its garbage."""

    def test_start_up_objects_are_frozen_and_young_collections_are_rarer(self) -> None:
        script = (
            "import gc, json\n"
            "from vinom.net.reactor import settle_garbage_collection, GC_YOUNG_THRESHOLD\n"
            "before = gc.get_threshold()[0]\n"
            "settle_garbage_collection()\n"
            "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0],\n"
            "                  GC_YOUNG_THRESHOLD, len(gc.get_objects())]))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT},
        ).stdout
        before, frozen, threshold, configured, left = json.loads(out)
        self.assertEqual(before, 700)
        self.assertEqual(threshold, configured)
        self.assertEqual(configured, 50_000)  # as docs/performance.md says
        self.assertGreater(configured, before)
        # The modules imported so far are frozen; next to nothing is left to walk.
        self.assertGreater(frozen, 10_000)
        self.assertLess(left, 1_000)
