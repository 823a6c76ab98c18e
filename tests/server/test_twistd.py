"""`twistd -n vinom` as a real child process: answers a TLS hello, stops cleanly on SIGTERM."""

# slow: starts child processes

from __future__ import annotations

import os
import random
import re
import stat
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support.identity_provider import AUDIENCE, ISSUER, IdentityProvider
from tests.support.lobby_players import connect_raw
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.waiting import until
from tests.support.websocket_client import connect_websocket
from vinom.client.bots import BotDriver
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import PROTOCOL, LobbyAddress, LobbyError, connect_lobby, jwt_auth
from vinom.games.registry import GameRegistry
from vinom.server.build import build_info

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TWISTD = "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"




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
        web = free_tcp_port()
        transport, process, port, cert = await self.start_twistd(
            "--websocket", f"ssl:{web}:interface=127.0.0.1"
        )
        self.assertIn(cert.encode(), process.output)  # its path is logged for clients
        # One line says who the players are: anonymous, by default.
        self.assertIn(b"vinom: players are anonymous: any name, a fresh player id each time "
                      b"(--auth guest)", process.output)  # fmt: skip
        # The match records' directory is made at start, private: records hold seeds.
        records = os.path.join(os.path.dirname(cert), "records")
        self.assertEqual(oct(stat.S_IMODE(os.stat(records).st_mode)), oct(0o700))
        self.assertNotIn(b"can be read by others", process.output)
        build = build_info()  # the server imports the same vinom as this test
        self.assertIn(
            f"packet path {build['code']}, AEAD {build['aead']}".encode(), process.output
        )
        # vinom's reactor, unless --reactor names another (next test).
        self.assertIn(b"reactor class: vinom.net.reactor.EPollReactor", process.output)

        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        welcome = await lobby.hello("ada")
        self.assertTrue(welcome.player_id.startswith("p-"))
        await lobby.close()
        # The same lobby over WebSocket, with the same certificate.
        browser = await connect_websocket(self, web, cert)
        web_welcome = await browser.request({"type": "hello", "name": "bo", "id": 1})
        self.assertEqual(web_welcome["type"], "welcome")

        transport.signalProcess("TERM")
        code, signal = await process.ended
        # The drain (nothing to wait for here) takes the signal: the process exits 0.
        self.assertEqual((code, signal), (0, None), process.output.decode())
        self.assertIn(b"lobby draining", process.output)
        self.assertIn(b"Server Shut Down", process.output)

    async def test_the_reactor_twistd_is_told_to_use_is_used(self) -> None:
        _, process, port, cert = await self.start_twistd(twistd=("--reactor", "poll"))
        self.assertIn(b"reactor class: twisted.internet.pollreactor.PollReactor", process.output)
        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        self.assertTrue((await lobby.hello("ada")).player_id.startswith("p-"))
        await lobby.close()

    async def test_an_old_client_is_told_to_update_over_tls_and_websocket(self) -> None:
        web = free_tcp_port()
        _, _, port, cert = await self.start_twistd("--websocket", f"ssl:{web}:interface=127.0.0.1")
        # A client from before the "protocol" key says none: it speaks 1 (docs/lobby.md,
        # "The game protocol"), older than the server's.
        self.assertGreater(PROTOCOL, 1)
        tls = await connect_raw(self, LobbyAddress("127.0.0.1", port, cert))
        browser = await connect_websocket(self, web, cert)
        for player in (tls, browser):
            welcome = await player.request({"type": "hello", "name": "old", "id": 1})
            self.assertEqual((welcome["type"], welcome["protocol"]), ("welcome", PROTOCOL))
            refused = await player.request({"type": "queue", "game": "tictactoe", "id": 2})
            self.assertEqual((refused["type"], refused["code"]), ("error", "protocol_outdated"))
            self.assertIn(f"this server speaks game protocol {PROTOCOL}", refused["message"])
            self.assertIn("the client speaks protocol 1", refused["message"])
            self.assertIn("update the client", refused["message"])
        # Clients of the server's protocol, the library's, are matched as ever.
        clients = [await connect_lobby(reactor, "127.0.0.1", port, trust=cert) for _ in "ab"]
        welcomes = [await c.hello(f"new{n}") for n, c in enumerate(clients)]
        self.assertEqual([w.protocol for w in welcomes], [PROTOCOL, PROTOCOL])
        found = await gatherResults([c.queue("tictactoe") for c in clients])
        self.assertEqual(found[0].game_id, found[1].game_id)

    async def test_players_sign_in_with_a_jwt_of_the_provider(self) -> None:
        idp = IdentityProvider()
        idp.add_key("k1", "EdDSA")
        keys = os.path.abspath(self.mktemp())
        with open(keys, "wb") as f:
            f.write(idp.jwks())
        _, process, port, cert = await self.start_twistd(
            "--auth", "jwt", "--auth-key-file", keys, "--auth-issuer", ISSUER,
            "--auth-audience", AUDIENCE,
        )  # fmt: skip
        self.assertIn(b"vinom: players sign in with a JWT from the identity provider",
                      process.output)  # fmt: skip
        lobby = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        self.addCleanup(lobby.close)
        welcome = await lobby.hello("ann", auth=jwt_auth(idp.token("user-1", "k1")))
        # The player is the account the subject names (made at this first sign-in, in the
        # data directory's account database), the same account at the next.
        self.assertTrue(welcome.player_id.startswith("a-"), welcome.player_id)
        again = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        self.addCleanup(again.close)
        second = await again.hello("ann", auth=jwt_auth(idp.token("user-1", "k1")))
        self.assertEqual(second.player_id, welcome.player_id)
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(cert),
                                                    "accounts.sqlite3")))  # fmt: skip
        # An old client, without auth, is told to sign in.
        old = await connect_raw(self, LobbyAddress("127.0.0.1", port, cert))
        refused = await old.request({"type": "hello", "name": "old"})
        self.assertEqual((refused["code"], refused["reason"]), ("auth_failed", "required"))

    async def start_twistd(
        self, *extra: str, twistd: tuple[str, ...] = ()
    ) -> tuple[Any, Collect, int, str]:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        port = free_tcp_port()
        udp = free_udp_range(2)
        process = Collect()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        transport = reactor.spawnProcess(
            process, sys.executable,
            [
                sys.executable, "-c", RUN_TWISTD, "-n", "--pidfile=", *twistd, "vinom",
                "--lobby", f"ssl:{port}:interface=127.0.0.1",
                "--udp-ports", f"{udp}-{udp + 1}", "--data-dir", data_dir,
                "--ops-port", "tcp:0:interface=127.0.0.1",
                *(() if "--websocket" in extra else ("--websocket", "none")), *extra,
            ],
            env=env, path=data_dir,
        )  # fmt: skip
        self.addCleanup(self._kill, transport, process)
        # Said once everything listens, after what runs (the packet path among it).
        await self.output_has(process, b"vinom: operations dashboard:")
        return transport, process, port, os.path.join(data_dir, "dev-cert.pem")

    async def output_has(self, process: Collect, text: bytes, limit: float = 30.0) -> None:
        def said() -> bool:
            self.assertFalse(process.ended.called, process.output.decode(errors="replace"))
            return text in process.output

        await until(said, lambda: f"{text!r} in:\n{process.output.decode(errors='replace')}",
                    limit, every=0.05)  # fmt: skip

    async def two_players(
        self, port: int, cert: str, think_time: float
    ) -> list[tuple[GameSession, BotDriver]]:
        game = GameRegistry.from_plugins().get("tictactoe")
        clients = [await connect_lobby(reactor, "127.0.0.1", port, trust=cert) for _ in "ab"]
        welcomes = [await c.hello(f"player{n}") for n, c in enumerate(clients)]
        found = await gatherResults([c.queue("tictactoe") for c in clients])
        players = []
        for welcome, match in zip(welcomes, found, strict=True):
            session = await connect_game(reactor, match)
            bot = game.make_bot(welcome.player_id, random.Random(welcome.player_id))
            driver = BotDriver(session, bot, think_time=think_time, clock=reactor)
            driver.attach()
            players.append((session, driver))
        return players

    async def test_sigterm_drains_running_matches_then_exits_0(self) -> None:
        transport, process, port, cert = await self.start_twistd("--limit", "drain-timeout=60")
        players = await self.two_players(port, cert, think_time=0.3)
        transport.signalProcess("TERM")
        await self.output_has(process, b"waiting up to 60 s for 1 match(es) to end")
        # No new players, with a clear error; the lobby still answers.
        late = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        await late.hello("late")
        with self.assertRaises(LobbyError) as caught:
            await late.queue("tictactoe")
        self.assertEqual(caught.exception.code, "server_draining")
        # The running match plays to its end, then the process exits 0.
        for session, driver in players:
            final = await session.finished
            driver.cancel()
            self.assertEqual(final["p"], "finished", final)
            await session.disconnect()
        self.assertEqual(await process.ended, (0, None), process.output.decode())
        self.assertIn(b"every match has ended", process.output)
        # A match's start and end are a line each, not Twisted's per-port chatter.
        self.assertIn(b"tictactoe", process.output)
        self.assertNotIn(b"Starting protocol", process.output)
        self.assertNotIn(b"Stopping protocol", process.output)

    async def test_a_second_sigterm_ends_the_wait(self) -> None:
        transport, process, port, cert = await self.start_twistd()
        # Bots that think for a minute: the match would outlast the test.
        players = await self.two_players(port, cert, think_time=60.0)
        transport.signalProcess("TERM")
        await self.output_has(process, b"waiting up to 600 s")
        transport.signalProcess("TERM")
        for session, driver in players:
            final = await session.finished
            driver.cancel()
            self.assertEqual((final["p"], final["reason"]), ("aborted", "shutdown"))
            await session.disconnect()
        self.assertEqual(await process.ended, (0, None), process.output.decode())
        self.assertIn(b"the wait is cut short", process.output)

    async def test_drain_through_workers_ends_what_outlasts_the_timeout(self) -> None:
        transport, process, port, cert = await self.start_twistd(
            "--host-workers", "2", "--limit", "drain-timeout=2"
        )
        worker_pids = await self.ready_workers(process, 2)
        players = await self.two_players(port, cert, think_time=60.0)
        # A player waiting in the queue when SIGTERM comes.
        waiting = await connect_lobby(reactor, "127.0.0.1", port, trust=cert)
        await waiting.hello("waiting")
        in_queue: Deferred[object] = Deferred()
        queued = waiting.queue("maze", on_queued=in_queue.callback)
        await in_queue
        transport.signalProcess("TERM")
        with self.assertRaises(LobbyError) as caught:
            await queued
        self.assertEqual(caught.exception.code, "server_draining")
        # The match outlasts --drain-timeout: it is aborted with `shutdown`, and said so.
        for session, driver in players:
            final = await session.finished
            driver.cancel()
            self.assertEqual((final["p"], final["reason"]), ("aborted", "shutdown"))
            await session.disconnect()
        self.assertEqual(await process.ended, (0, None), process.output.decode())
        # The workers leave with their lobby.
        for pid in worker_pids:
            await self.gone(pid)

    async def test_workers_do_not_outlive_a_killed_lobby(self) -> None:
        transport, process, _port, _cert = await self.start_twistd("--host-workers", "2")
        worker_pids = await self.ready_workers(process, 2)
        transport.signalProcess("KILL")
        await process.ended
        # Their pipe to the lobby closed: each worker stops what it hosts and exits.
        for pid in worker_pids:
            await self.gone(pid)

    async def ready_workers(self, process: Collect, count: int) -> list[int]:
        """The pids of the first `count` game-host workers, once each has said it is ready
        (in any order: worker 1 may be ready before worker 0)."""
        ready = rb"game-host worker \d \(pid (\d+)\) ready"

        def pids() -> list[int]:
            self.assertFalse(process.ended.called, process.output.decode(errors="replace"))
            return [int(p) for p in re.findall(ready, process.output)]

        await until(lambda: len(pids()) >= count,
                    lambda: f"{count} workers ready in:\n{process.output.decode(errors='replace')}",
                    timeout=30, every=0.05)  # fmt: skip
        return pids()[:count]

    async def gone(self, pid: int, limit: float = 10.0) -> None:
        def exited() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        await until(exited, f"worker {pid} to exit with its lobby", limit, every=0.05)

    def _kill(
        self, transport: object, process: Collect
    ) -> Deferred[tuple[int | None, int | None]] | None:
        if process.ended.called:
            return None
        transport.signalProcess("KILL")  # type: ignore[attr-defined]
        return process.ended
